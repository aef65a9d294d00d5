"""Certificates of the nuclear-norm forms: the flattened dual bound is valid for every loss, and as
accurate as the value where the Frank-Wolfe gap is not (constrained and penalized); feasibility
survives far-away steps."""
import numpy as np
import pytest

from layerpeeled import LPMProblem, long_tailed_counts, solve
from layerpeeled.problem import PenalizedLPM
from layerpeeled.solvers.certificate import flattened_dual_gap, frank_wolfe_gap, softmax_map
from layerpeeled.solvers.nuclear import etf_logits, objective_for, shrink_factored
from layerpeeled.solvers.penalized import PenalizedDense
from layerpeeled.solvers.proxgrad import project_l1_nonneg, proximal_gradient

LOSSES = ["cross-entropy", "la:tau=1", "vs:gamma=0.2,tau=1", "cdt:gamma=0.3", "ldam:C=0.5", "ls:eps=0.1"]


def _iterates(P, steps):
    """Projected-gradient iterates of P, with the singular subspaces their projection kept."""
    tau, value_grad, kept = P.radius, objective_for(P), []

    def project(Z, step):
        kept.append(shrink_factored(Z, lambda s: project_l1_nonneg(s, tau)))
        return kept[-1][0]

    seen = []
    proximal_gradient(etf_logits(P.K, tau), value_grad, project,
                      lambda Z, f, g: seen.append((Z, f, g, *kept[-1][1:])) or np.inf,
                      lipschitz=0.5 * float(P.weights.max()), tol=1e-12, max_iter=steps)
    return value_grad, seen


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("EH", [0.5, 5.0, 300.0])
def test_flattened_bound_is_valid_and_tracks_the_value_error(loss, EH):
    P = LPMProblem([500.0] * 3 + [50.0] * 4 + [5.0] * 5, EH, 1.0, loss=loss)
    value_grad, seen = _iterates(P, 80)
    ref = solve(P, "reduced", tol=1e-12)  # an independent method
    slack = 1e-14 * ref.value
    softmax = softmax_map(P, seen[0][0])
    ratios = []
    for Z, f, G, U, s, V in seen[4::5]:
        flat = flattened_dual_gap(value_grad, softmax, P.radius, Z, f, G, U, s, V)
        assert f - ref.value <= flat + slack  # valid: f - optimum <= flat, and the optimum <= ref.value
        fw = frank_wolfe_gap(Z, G, P.radius, f)
        if fw > 1e-9 * f:  # not yet converged to rounding
            ratios.append(flat / fw)
    if EH >= 5:  # (at E_H E_W = 0.5 a few steps reach rounding)
        assert min(ratios) < 0.1  # and far tighter than the Frank-Wolfe gap somewhere along the way


def test_long_tailed_solve_certifies_in_fewer_steps():
    """Long-tailed K = 120: the solve stops on the flattened bound, well before the Frank-Wolfe gap
    would let it, and its value is within that bound of the one certified by the Frank-Wolfe gap."""
    P = LPMProblem(long_tailed_counts(120, 100.0, n_max=5000), 5.0, 1.0)
    r = solve(P, "first-order", tol=1e-9)
    Z = r.logits
    f, G = objective_for(P)(Z)
    assert r.status == "optimal" and r.gap <= 1e-9 * r.value
    assert frank_wolfe_gap(Z, G, P.radius, f) > 10 * r.gap
    value_grad, seen = _iterates(P, 400)
    fw_steps = next(i for i, (Z, f, G, *_) in enumerate(seen, 1) if frank_wolfe_gap(Z, G, P.radius, f) <= 1e-9 * f)
    assert r.iterations < fw_steps / 2
    assert abs(seen[fw_steps - 1][1] - r.value) <= r.gap + 1e-9 * r.value


def test_projection_far_outside_the_ball_stays_feasible():
    """A step to ~1e17 cancels v - theta down to the last bits (the l1 projection returned 64 for a
    radius of 60, and a certificate then certified an infeasible point)."""
    for v in ([9.96784853e16, 3e16, 1.0], [9.96784853e16, 9.96784853e16, 1.0]):
        u = project_l1_nonneg(np.array(v), 60.0)
        assert (u >= 0).all() and u.sum() <= 60.0 * (1 + 4 * 2.0**-52)
    Z = np.array([[4.98392427e16, -4.98392427e16], [-4.98392427e16, 4.98392427e16]])
    out = shrink_factored(Z, lambda s: project_l1_nonneg(s, 60.0))[0]
    assert np.linalg.svd(out, compute_uv=False).sum() <= 60.0 * (1 + 1e-12)


@pytest.mark.parametrize("loss", LOSSES)
def test_penalized_bound_is_valid_along_the_path(loss):
    """Every gap the penalized dense solver reports (the flattened one included) bounds its value's
    distance to the reduced solver's optimum."""
    P = PenalizedLPM([500.0] * 3 + [50.0] * 4 + [5.0] * 5, 1e-3, 1e-3, loss=loss)
    ref = solve(P, "reduced", tol=1e-12)
    prog, reported = PenalizedDense(P, tol=1e-12), []

    def gap(x, f, g):
        reported.append((prog.total(x, f), prog.gap(x, f, g)))
        return reported[-1][1]

    proximal_gradient(np.zeros(P.K**2), prog.value_grad, prog.prox, gap, lipschitz=prog.lipschitz, tol=1e-12,
                      max_iter=120, total=prog.total)
    assert all(F - ref.value <= g + 1e-14 * ref.value for F, g in reported)


def test_penalized_long_tailed_solve_stops_on_the_flattened_bound():
    P = PenalizedLPM(long_tailed_counts(120, 100.0, n_max=5000), 1e-4, 1e-4)
    r = solve(P, "first-order", tol=1e-9)
    classic = PenalizedDense(P)  # no proximal point remembered: the gap of the module docstring alone
    x = classic.pack(P.row_scale[:, None] * r.logits, np.zeros(0))
    assert r.status == "optimal" and classic.gap(x, *classic.value_grad(x)) > 10 * r.gap
    tight = solve(P, "first-order", tol=1e-12)
    assert abs(r.value - tight.value) <= r.gap + tight.gap
