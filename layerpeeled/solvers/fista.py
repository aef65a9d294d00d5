"""Accelerated proximal gradient, stopped by a certified gap.

FISTA with backtracking on the step size and O'Donoghue-Candes gradient restart. The caller supplies
the smooth objective, the proximal step of the nonsmooth part (a projection onto a nuclear-norm ball
for the constrained model, singular-value soft-thresholding for the penalized one) and the gap;
the same loop drives the full K x K problems (numpy or torch arrays) and the symmetry-reduced ones.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Callable

from ..losses import namespace


@dataclass
class FistaOutcome:
    x: object
    value: float
    gap: float
    iterations: int
    converged: bool


def project_l1_nonneg(v, radius):
    """Euclidean projection of a nonnegative vector onto {u >= 0, sum u <= radius}."""
    xp = namespace(v)
    if float(xp.sum(v)) <= radius:
        return v
    s = -xp.sort(-v)
    cs = xp.cumsum(s, axis=0)
    j = xp.arange(1, s.shape[0] + 1, dtype=s.dtype, device=getattr(s, "device", None))
    rho = int(xp.sum(s - (cs - radius) / j > 0)) - 1
    theta = (float(cs[rho]) - radius) / (rho + 1)
    return xp.maximum(v - theta, xp.zeros_like(v))


def certified_gap(inner: float, radius: float, dual_norm: float, value: float) -> float:
    """Frank-Wolfe gap <g, x> + radius * ||g||_dual, padded by its own floating-point rounding.

    The two terms nearly cancel at an optimum; the pad (a few ulps of the terms and of the value)
    keeps the reported bound on value - optimum valid even where the exact gap is 0.
    """
    gap = inner + radius * dual_norm
    return max(gap, 0.0) + 16 * 2.0**-52 * (abs(inner) + radius * dual_norm + abs(value))


def _dot(a, b) -> float:
    return float((a * b).sum())


def fista(
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
) -> FistaOutcome:
    """Minimise F = f + g (f smooth convex, g convex with an easy prox) until ``gap(x, f, grad) <= tol * F``.

    ``value_grad(x) -> (f, grad)``; ``prox(v, step)`` = argmin_x g(x) + |x - v|^2 / (2 step) (for a
    constraint set: the Euclidean projection); ``total(x, f)`` = F(x) (default: f, the constrained
    case); ``gap`` must be a valid upper bound on F(x) - min F (what the caller reports as certificate).
    """
    if isinstance(check_every, bool) or not isinstance(check_every, numbers.Integral) or check_every < 1:
        raise ValueError(f"check_every must be a positive integer (steps between gap checks), got {check_every!r}")
    total = total or (lambda x, f: f)
    x = prox(x0, 0.0)
    fx, gx = value_grad(x)
    y, fy, gy = x, fx, gx
    t, L = 1.0, lipschitz
    best = None  # (gap, x, f) of the best certified iterate: returned if tol is out of reach
    for it in range(1, max_iter + 1):
        while True:
            x_new = prox(y - gy / L, 1.0 / L)
            f_new, g_new = value_grad(x_new)
            d = x_new - y
            # curvature test on gradient differences (for convex f it implies the usual sufficient
            # decrease f(x_new) <= f(y) + <g, d> + L|d|^2/2); unlike f(x_new) - f(y) it keeps full
            # precision near the optimum, where function differences drown in rounding
            if _dot(g_new - gy, d) <= 0.5 * L * _dot(d, d):
                break
            L *= 2.0
        if it % check_every == 0:
            gap_x, F_new = gap(x_new, f_new, g_new), total(x_new, f_new)
            if callback is not None:
                callback(it, F_new, gap_x)
            if gap_x <= tol * abs(F_new):
                return FistaOutcome(x_new, F_new, gap_x, it, True)
            if best is None or gap_x < best[0]:
                best = (gap_x, x_new, F_new)
        if _dot(y - x_new, x_new - x) > 0:  # momentum points uphill: restart
            t = 1.0
            y, fy, gy = x_new, f_new, g_new
        else:
            t_new = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t * t))
            y = x_new + ((t - 1.0) / t_new) * (x_new - x)
            t = t_new
            fy, gy = value_grad(y)
        x, fx, gx = x_new, f_new, g_new
        L *= 0.9
    gap_x, Fx = gap(x, fx, gx), total(x, fx)
    if best is not None and best[0] < gap_x:
        gap_x, x, Fx = best
    return FistaOutcome(x, Fx, gap_x, max_iter, gap_x <= tol * abs(Fx))
