"""Proximal gradient with spectral step lengths, stopped by a certified gap.

SpaRSA (Wright, Nowak & Figueiredo 2009), the proximal form of spectral projected gradient (Birgin,
Martinez & Raydan 2000): each step is one proximal step of length 1/L, L a Barzilai-Borwein estimate
of the curvature along the last move (the two estimates alternate), kept under a nonmonotone
sufficient-decrease test. The steps follow the loss's own curvature, which shrinks like the loss
where margins are large (losses ~e^-margin): there a step bounded by the Lipschitz constant, as in
accelerated gradient (FISTA, this module's method until it was measured against it:
benchmarks/README.md), moves ~1e-15 of the way. The caller supplies the smooth objective, the
proximal step of the nonsmooth part (a projection onto a nuclear-norm ball for the constrained
model, singular-value soft-thresholding for the penalized one) and the gap; the same loop drives the
full K x K problems (numpy or torch arrays) and the symmetry-reduced ones.
"""
from __future__ import annotations

import numbers
from collections import deque
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..losses import namespace


@dataclass
class Outcome:
    x: object
    value: float
    gap: float
    iterations: int
    converged: bool


def project_l1_nonneg(v, radius):
    """Euclidean projection of a nonnegative vector onto {u >= 0, sum u <= radius}.

    Far outside the ball v - theta cancels (a step to ~1e17 leaves the kept entries with an
    absolute error ~ulp(1e17) = 16), so the result is scaled back into the ball where rounding put
    it outside: every certificate here assumes a feasible point."""
    xp = namespace(v)
    if float(xp.sum(v)) <= radius:
        return v
    s = -xp.sort(-v)
    cs = xp.cumsum(s, axis=0)
    j = xp.arange(1, s.shape[0] + 1, dtype=s.dtype, device=getattr(s, "device", None))
    rho = max(int(xp.sum(s - (cs - radius) / j > 0)) - 1, 0)  # -1 only where the test cancelled
    theta = (float(cs[rho]) - radius) / (rho + 1)
    u = xp.maximum(v - theta, xp.zeros_like(v))
    total = float(xp.sum(u))
    return u * (radius / total) if total > radius else u


def certified_gap(inner: float, radius: float, dual_norm: float, value: float) -> float:
    """Frank-Wolfe gap <g, x> + radius * ||g||_dual, padded by its own floating-point rounding.

    The two terms nearly cancel at an optimum; the pad (a few ulps of the terms and of the value)
    keeps the reported bound on value - optimum valid even where the exact gap is 0.
    """
    gap = inner + radius * dual_norm
    return max(gap, 0.0) + 16 * 2.0**-52 * (abs(inner) + radius * dual_norm + abs(value))


MEMORY = 10  # objective values the nonmonotone test compares against
SUFFICIENT = 1e-4  # the fraction of the model decrease a step must achieve
TINY = 2.0**-1022  # the smallest normal double: a curvature estimate never drops to 0


def _dot(a, b) -> float:
    """<a, b>: one BLAS dot product for numpy arrays (no product array), elementwise otherwise."""
    return float(np.vdot(a, b)) if isinstance(a, np.ndarray) else float((a * b).sum())


def check_interval(check_every) -> int:
    """``check_every`` (steps between gap checks) if it is a positive integer, else a ValueError naming it."""
    if isinstance(check_every, bool) or not isinstance(check_every, numbers.Integral) or check_every < 1:
        raise ValueError(f"check_every must be a positive integer (steps between gap checks), got {check_every!r}")
    return int(check_every)


def proximal_gradient(
    x0,
    value_grad: Callable,
    prox: Callable,
    gap: Callable,
    *,
    lipschitz: float,
    tol: float,
    max_iter: int,
    check_every: int = 1,
    callback: Callable | None = None,
    total: Callable | None = None,
) -> Outcome:
    """Minimise F = f + g (f smooth convex, g convex with an easy prox) until ``gap(x, f, grad) <= tol * F``.

    ``value_grad(x) -> (f, grad)``; ``prox(v, step)`` = argmin_x g(x) + |x - v|^2 / (2 step) (for a
    constraint set: the Euclidean projection); ``total(x, f)`` = F(x) (default: f, the constrained
    case); ``gap`` must be a valid upper bound on F(x) - min F (what the caller reports as certificate);
    ``lipschitz``: a bound on the curvature of f (the first step's, and a cap on the estimates).
    """
    check_every = check_interval(check_every)
    total = total or (lambda x, f: f)
    x = prox(x0, 0.0)
    fx, gx = value_grad(x)
    recent = deque([total(x, fx)], maxlen=MEMORY)
    L = lipschitz
    best = None  # (gap, x, F) of the best certified iterate: returned if tol is out of reach
    for it in range(1, max_iter + 1):
        reference = max(recent)
        while True:
            x_new = prox(x - gx / L, 1.0 / L)
            f_new, g_new = value_grad(x_new)
            F_new = total(x_new, f_new)
            d, y = x_new - x, g_new - gx
            dd, yd = _dot(d, d), _dot(y, d)
            # nonmonotone decrease, or the curvature test on gradient differences: for convex f it
            # implies the monotone decrease F(x_new) <= F(x) - L|d|^2/2 and, unlike differences of F,
            # keeps full precision near the optimum and at large margins, where they drown in rounding
            if F_new <= reference - 0.5 * SUFFICIENT * L * dd or yd <= 0.5 * L * dd:
                break
            L *= 2.0
        if it % check_every == 0:
            gap_x = gap(x_new, f_new, g_new)
            if callback is not None:
                callback(it, F_new, gap_x)
            if gap_x <= tol * abs(F_new):
                return Outcome(x_new, F_new, gap_x, it, True)
            if best is None or gap_x < best[0]:
                best = (gap_x, x_new, F_new)
        if yd > 0 and dd > 0:  # Barzilai-Borwein: |y|^2/<y,d> and <y,d>/|d|^2 in turn
            L = min(max(_dot(y, y) / yd if it % 2 == 0 else yd / dd, TINY), max(lipschitz, L))
        else:  # no curvature seen along d: a longer step
            L = max(L / 10.0, TINY)
        x, fx, gx = x_new, f_new, g_new
        recent.append(F_new)
    gap_x, Fx = gap(x, fx, gx), total(x, fx)
    if best is not None and best[0] < gap_x:
        gap_x, x, Fx = best
    return Outcome(x, Fx, gap_x, max_iter, gap_x <= tol * abs(Fx))
