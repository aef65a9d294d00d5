"""The second-order polish of the reduced programs: exact derivatives, and answers that agree with
proximal gradient alone (the polish is only ever a faster route to a point the same gap certifies)."""
import numpy as np
import pytest

from layerpeeled.losses import CrossEntropy
from layerpeeled.problem import LPMProblem, PenalizedLPM
from layerpeeled.solvers import newton
from layerpeeled.solvers.penalized import PenalizedReduced, solve_penalized_reduced
from layerpeeled.solvers.reduced import ReducedProgram, solve_reduced


def test_cross_entropy_row_hessians_match_differences(rng):
    ce = CrossEntropy()
    t, v = rng.normal(size=3), rng.normal(size=(3, 4)) * 2
    mult = np.array([[1.0, 2.0, 3.0, 0.0], [4.0, 1.0, 1.0, 1.0], [2.0, 2.0, 0.0, 5.0]])
    H = ce.row_hessians(t, v, mult)

    def grad(u):  # gradient over (target, distinct others) of every row
        _, d_t, d_o = ce.rows(u[:, 0], u[:, 1:], mult)
        return np.concatenate([d_t[:, None], d_o], axis=1)

    u, eps = np.concatenate([t[:, None], v], axis=1), 1e-6
    for j in range(5):
        E = np.zeros_like(u)
        E[:, j] = eps
        num = (grad(u + E) - grad(u - E)) / (2 * eps)
        assert np.allclose(H[:, :, j], num, atol=1e-8), j
    assert np.allclose(H, np.swapaxes(H, 1, 2))


def test_row_hessians_keep_precision_at_tiny_losses():
    ce = CrossEntropy()
    H = ce.row_hessians(np.array([0.0]), np.array([[-700.0, -705.0]]), np.array([[3.0, 1.0]]))
    q = np.array([3 * np.exp(-700.0), np.exp(-705.0)])
    assert H[0, 0, 0] == pytest.approx(q.sum(), rel=1e-12) and H[0, 1, 1] == pytest.approx(q[0], rel=1e-12)


def _factored_cases():
    P = LPMProblem([500] * 3 + [20] * 2 + [3] * 2, EH=4, EW=1)
    yield ReducedProgram(P).factored(), 3
    yield ReducedProgram(P, collapsed=[1]).factored(), 3
    for lb in (None, 0.0, 1e-2):
        Q = PenalizedLPM([400] * 3 + [30] * 2 + [5] * 3, 1e-2, 2e-2, lb)
        yield PenalizedReduced(Q).factored(), 3
    yield PenalizedReduced(PenalizedLPM([400] * 3 + [5] * 3, 1e-2, 1e-2, 0.0), collapsed=[1], zero_between=True).factored(), 2


@pytest.mark.parametrize("case", range(6))
def test_factored_gradient_and_hessian_match_differences(case, rng):
    fp, _ = list(_factored_cases())[case]
    theta = rng.normal(size=fp.n_theta) * 0.7
    f, g, H = fp.model(theta)

    def value(th):
        return fp.derivatives(fp.x_of(th))[0]

    eps = 1e-5
    for j in rng.choice(fp.n_theta, size=min(8, fp.n_theta), replace=False):
        e = np.zeros(fp.n_theta)
        e[j] = eps
        assert (value(theta + e) - value(theta - e)) / (2 * eps) == pytest.approx(g[j], rel=1e-6, abs=1e-9)
        num = (fp.model(theta + e)[1] - fp.model(theta - e)[1]) / (2 * eps)
        assert np.allclose(H[:, j], num, rtol=1e-5, atol=1e-8), j


def test_balanced_factorisation_carries_the_nuclear_norm(rng):
    fp = ReducedProgram(LPMProblem([100] * 2 + [10] * 2 + [1] * 3, EH=2, EW=1)).factored()
    x = np.concatenate([rng.normal(size=3), rng.normal(size=9)])
    theta = fp.theta_of(x)
    assert np.allclose(fp.x_of(theta), x)
    b, M = x[:3], x[3:].reshape(3, 3)
    assert 0.5 * theta @ theta == pytest.approx(np.abs(b).sum() + np.linalg.svd(M, compute_uv=False).sum())


PROBLEMS = [
    ("c", dict(counts=[5000] * 5 + [50] * 5, EH=5, EW=1), {}),
    ("c", dict(counts=[5000] * 5 + [5] * 5, EH=100, EW=1), {"collapsed": [1]}),
    ("c", dict(counts=[5000] * 5 + [500] * 5, EH=1000, EW=1), {}),
    ("c", dict(counts=[600] * 3 + [60] * 3 + [6] * 4, EH=0.3, EW=1), {}),
    ("p", dict(counts=[5000] * 5 + [50] * 5, lambda_W=5e-4, lambda_H=5e-4, lambda_b=5e-4), {}),
    ("p", dict(counts=[5000] * 5 + [5] * 5, lambda_W=5e-4, lambda_H=5e-4, lambda_b=0.0), {}),
    ("p", dict(counts=[300] * 3 + [30] * 3 + [3] * 4, lambda_W=1e-3, lambda_H=1e-3), {}),
    ("p", dict(counts=[1000] * 4 + [2] * 2, lambda_W=2e-3, lambda_H=2e-3, lambda_b=0.0),
     {"collapsed": [1], "zero_between": True}),
]


@pytest.mark.parametrize("kind, spec, face", PROBLEMS)
def test_polish_agrees_with_proximal_gradient_alone(kind, spec, face, monkeypatch):
    P = LPMProblem(**spec) if kind == "c" else PenalizedLPM(**spec)
    run = solve_reduced if kind == "c" else solve_penalized_reduced
    fast = run(P, tol=1e-10, **face)
    assert fast.status == "optimal" and fast.gap <= 1e-10 * fast.value
    assert fast.info["newton_steps"] > 0  # the polish did the work ...
    monkeypatch.setattr(newton, "MAX_STEPS", 0)  # ... and without it (the fall-back path) the same answer
    slow = run(P, tol=1e-10, **face)
    assert slow.status == "optimal" and slow.info["newton_steps"] == 0
    assert abs(fast.value - slow.value) <= fast.gap + slow.gap
    for a, b in zip(fast.geometry.groups, slow.geometry.groups):
        assert a.vanished == b.vanished and a.w_norm2 == pytest.approx(b.w_norm2, rel=1e-3, abs=1e-9)
        assert (a.w_spread is None) == (b.w_spread is None)
        if a.w_spread is not None:
            assert a.w_spread == pytest.approx(b.w_spread, rel=1e-3, abs=1e-4)
    if fast.bias is not None:
        assert np.allclose(fast.bias, slow.bias, atol=1e-4 * (1 + np.abs(slow.bias).max()))


def test_warm_start_from_a_neighbour_gives_the_same_certified_answer():
    P = PenalizedLPM([5000] * 5 + [50] * 5, 5e-4, 5e-4, 5e-4)
    neighbour = solve_penalized_reduced(PenalizedLPM([5000] * 5 + [55] * 5, 5e-4, 5e-4, 5e-4))
    cold, warm = solve_penalized_reduced(P), solve_penalized_reduced(P, warm=neighbour.state["x"])
    assert warm.iterations <= 1 and 0 < warm.info["newton_steps"] <= newton.WARM_STEPS  # Newton (and a final prox step)
    assert abs(warm.value - cold.value) <= warm.gap + cold.gap and warm.gap <= 1e-9 * warm.value
    C = LPMProblem([5000] * 5 + [50] * 5, 100.0, 1.0)
    other = solve_reduced(LPMProblem([5000] * 3 + [500] * 3 + [5] * 4, 100.0, 1.0))  # 3 groups: not a neighbour
    ignored = solve_reduced(C, warm=other.state["x"])
    assert ignored.iterations > 0 and ignored.gap <= 1e-9 * ignored.value


def test_spectral_bounds_and_the_gap_they_certify(rng):
    from layerpeeled.solvers.certificate import frank_wolfe_gap, spectral_bounds

    for G in (rng.normal(size=(300, 300)), np.outer(rng.normal(size=50), rng.normal(size=50)) * 1e-200,
              np.diag([1.0, 1e-12, 0.0]), np.zeros((5, 5))):
        exact = np.linalg.svd(G, compute_uv=False)[0]
        nominal, upper = spectral_bounds(G)
        assert exact <= upper <= exact * (1 + 1e-9) + 1e-300 and nominal == pytest.approx(exact, rel=1e-10, abs=1e-300)
    Z, G = rng.normal(size=(40, 40)), rng.normal(size=(40, 40))
    radius = float(np.linalg.svd(Z, compute_uv=False).sum())
    exact = frank_wolfe_gap(Z, G, radius, 1.0)  # singular values
    for tol in (1e-3, 1e6):  # a gap it cannot certify (cheap bound) and one it certifies cheaply
        assert exact <= frank_wolfe_gap(Z, G, radius, 1.0, tol) <= exact * (1 + 1e-9)
