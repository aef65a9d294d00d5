"""The proximal-gradient loop behind every first-order solver, on its own and where its step rule matters."""
import cvxpy as cp
import numpy as np
import pytest

from layerpeeled import LPMProblem, solve, step_counts
from layerpeeled.solvers.proxgrad import certified_gap, project_l1_nonneg, proximal_gradient


def _l1_ball_quadratic(rng, n=40, spread=1e-4):
    """f(x) = sum d_i (x_i - c_i)^2 / 2 + 1 over an l1 ball holding a third of |c|_1, curvatures d
    spread over ``spread`` (an optimum with many nonzero coordinates, none at its unconstrained value)."""
    d = np.geomspace(spread, 1.0, n)
    c = rng.normal(size=n)
    radius = np.abs(c).sum() / 3

    def value_grad(x):
        r = x - c
        return float(0.5 * d @ r**2) + 1.0, d * r

    def project(v, step):
        return np.sign(v) * project_l1_nonneg(np.abs(v), radius)

    def gap(x, f, g):
        return certified_gap(float(g @ x), radius, float(np.abs(g).max()), f)

    return d, c, radius, value_grad, project, gap


def test_matches_cvxpy_on_an_ill_conditioned_quadratic(rng):
    d, c, radius, value_grad, project, gap = _l1_ball_quadratic(rng)
    out = proximal_gradient(np.zeros(d.size), value_grad, project, gap, lipschitz=1.0, tol=1e-10, max_iter=5000)
    x = cp.Variable(d.size)
    ref = cp.Problem(cp.Minimize(0.5 * cp.sum(cp.multiply(d, cp.square(x - c))) + 1.0), [cp.norm1(x) <= radius])
    ref.solve(solver="CLARABEL")
    assert out.converged and out.gap <= 1e-10 * out.value
    assert out.value - out.gap <= ref.value + 1e-8 and abs(out.value - ref.value) <= 1e-7
    assert np.abs(out.x).sum() <= radius * (1 + 1e-12)
    assert np.count_nonzero(out.x) > 5


def test_out_of_steps_returns_the_best_certified_point(rng):
    d, c, radius, value_grad, project, gap = _l1_ball_quadratic(rng, spread=1e-6)
    out = proximal_gradient(np.zeros(d.size), value_grad, project, gap, lipschitz=1.0, tol=1e-14, max_iter=3)
    assert not out.converged and out.iterations == 3
    assert out.gap == pytest.approx(gap(out.x, *value_grad(out.x)))


def test_large_margins_take_few_steps():
    """At E_H E_W = 1000 the losses are ~1e-15 and their curvature as small: steps bounded by the
    Lipschitz constant (accelerated gradient) took 356 to certify this problem; steps that follow
    the measured curvature take tens. The loss's rounding there moves f by ~1e-7 of itself between
    iterates that differ by rounding, so the acceptance test must not rest on differences of f alone."""
    P = LPMProblem(step_counts(5, 5, 100.0, nA=5000), 1000.0, 1.0)
    dense, red = solve(P, "first-order", tol=1e-9), solve(P, "reduced", tol=1e-9)
    assert dense.status == "optimal" and dense.iterations < 100
    assert abs(dense.value - red.value) <= dense.gap + red.gap
