"""Certificates for the nuclear-norm form (SPEC §2.3): upper bounds on f(Z) - min f over the ball.

The Frank-Wolfe gap <G, Z> + tau sigma_max(G) is the duality gap at the dual point G = grad f(Z).
At an optimum of rank r the dual optimum's top r singular values are equal (the normal cone of the
nuclear ball), but near it G's top cluster is spread by an amount first order in the distance to
the optimum, and sigma_max reads the top of the spread: the gap is first order where the value
error is second order (measured at long-tailed K = 200: gaps 1e-4 to 1e-6 while the value is right
to 1e-9 to 1e-11, so most of a solve's steps went to the certificate). Weak duality holds at every
dual point, so :func:`flattened_dual_gap` flattens the cluster: on the singular subspaces U, V of Z
the gradient is replaced by -mu U V^T, logits Z' whose gradient is that flattened point are found
from the loss's softmax, and
    min f  >=  f(Z') - <grad f(Z'), Z'> - tau sigma_max(grad f(Z'))   (Fenchel-Young, weak duality),
with the gradient recomputed at Z' and sigma_max bounded from above, so the bound holds whatever Z'
is; mu maximises it, a concave problem in one variable with derivative <Z'(mu), U V^T> - tau.
"""
from __future__ import annotations

import numpy as np
from array_api_compat import array_namespace

from .products import gram, matmul
from .proxgrad import certified_gap

FLOOR = 2.0**-10  # a softmax entry is moved down to at most this fraction of itself (never through 0)
RESOLVED = 2.0**-23  # singular values below this fraction of the largest (sqrt(eps)) may be rounding
NEWTON_STEPS = 4  # for mu: the bound is second order in its error, Newton converges quadratically


def spectral_bounds(G) -> tuple[float, float]:
    """sigma_max(G) from the largest eigenvalue of G^T G (eigenvalues only: ~2x cheaper than singular
    values): the computed value, and an upper bound. The computed Gram matrix is off by at most
    K eps |G|_F^2 in norm and the eigensolver adds a backward error of order K eps |G^T G|; both are
    added before the square root, so the bound holds, but it is looser than an SVD's."""
    xp = array_namespace(G)
    K, eps = G.shape[0], 2.0**-52
    scale = float(xp.max(xp.abs(G)))
    if scale == 0.0:
        return 0.0, 0.0
    G = G / scale  # squares of gradients ~1e-200 (losses ~e^-600) would underflow
    top = max(float(xp.linalg.eigvalsh(gram(G))[-1]), 0.0)
    return scale * top**0.5, scale * (top * (1.0 + K * eps) + 2.0 * K * eps * float(xp.sum(G * G))) ** 0.5


def gap_by_sigma_max(gap_of, G, target: float | None = None) -> float:
    """``gap_of(sigma_max(G))`` for a gap that grows with sigma_max: from the cheap upper bound of
    :func:`spectral_bounds` when the bound settles whether the gap is within ``target``, from
    singular values when only they can (and always when ``target`` is None)."""
    if target is not None:
        nominal, upper = spectral_bounds(G)
        gap = gap_of(upper)
        if gap <= target or gap_of(nominal) > target:
            return gap
    return gap_of(float(array_namespace(G).linalg.svdvals(G)[0]))


def frank_wolfe_gap(Z, grad, radius: float, value: float, tol: float | None = None) -> float:
    """max over the ball of <grad, Z - Y>: an upper bound on f(Z) - f* for feasible Z (``tol``:
    inside the solver, where a cheap sigma_max that settles the stopping test is enough)."""
    inner = float(array_namespace(Z).sum(grad * Z))
    return gap_by_sigma_max(lambda sigma: certified_gap(inner, radius, sigma, value), grad,
                            None if tol is None else tol * abs(value))


def flattened_first(flattened, gap_of, G, V, target: float | None) -> float:
    """min(``flattened()``, gap_of(sigma_max(G))) for the flattened bound and a gap that grows with
    sigma_max (Frank-Wolfe's, the penalized form's), the flattened bound first: near an optimum it
    is the smaller, and the other one's spectral computation is skipped where the flattened bound
    settles the stopping test (``target``, as in :func:`gap_by_sigma_max`) or where gap_of(|G v|), a
    floor of the other (v the top column of V, the nuclear-norm variable's right singular vectors,
    ascending), already exceeds it."""
    flat = flattened()
    if target is not None and flat <= target:
        return flat
    if V.shape[1] and gap_of(float(array_namespace(G).linalg.vector_norm(G @ V[:, -1]))) >= flat:
        return flat
    return min(flat, gap_by_sigma_max(gap_of, G, target))


def softmax_map(problem, like=None):
    """(scale, labels, Delta) with grad f(Z) = scale * (softmax of the loss's mapped logits - labels),
    entrywise, for every loss of this package: scale_kj = (n_k/N) Delta_j, labels = (1 - eps) I + eps/K,
    Delta_j the scale of logit j (1 but for vector scaling); on the namespace and device of ``like``
    (default: numpy float64)."""
    like = np.zeros(0) if like is None else like
    xp = array_namespace(like)
    K, device = problem.K, getattr(like, "device", None)
    coef = problem.loss.row_coefficients(problem.counts)
    delta = np.ones((1, K)) if coef is None else np.asarray(coef[2], dtype=float).reshape(1, K)
    eps = problem.loss.eps
    labels = np.full((K, K), eps / K) + (1.0 - eps) * np.eye(K)
    scale = problem.weights[:, None] * delta
    as_x = lambda a: xp.asarray(np.ascontiguousarray(a), dtype=like.dtype, device=device)  # noqa: E731
    return as_x(scale), as_x(labels), as_x(delta)


def flattened_dual_gap(value_grad, softmax, radius: float, Z, f: float, G, U, s, V,
                       target: float | None = None) -> float:
    """An upper bound on f(Z) - min f over the ball of ``radius`` from the flattened dual point
    (module docstring; ``U, s, V``: the thin SVD of Z, from the projection that made it; ``target``:
    as in :func:`gap_by_sigma_max`), the best over :func:`flattened_logits`; inf if there is none."""
    return least_dual_gap(value_grad, flattened_logits(Z, G, U, s, V, softmax, radius=radius), f,
                          lambda inner, sigma, fp: certified_gap(inner, radius, sigma, abs(f) + abs(fp)), target)


def least_dual_gap(value_grad, candidates, f: float, gap_of, target: float | None, row_scale=None) -> float:
    """The least of the gaps at candidate logits Z' (inf without a finite one): ``gap_of(inner, sigma,
    f(Z'))`` with inner = <grad f(Z'), Z'> + f - f(Z'), the linearisation of the smooth part at Z'
    measured from the value f, and sigma bounds the spectral norm of the gradient with respect to
    the nuclear-norm variable (row_scale * Z, rows), settled as in :func:`gap_by_sigma_max`."""
    best = float("inf")
    for Zp in candidates:
        fp, Gp = value_grad(Zp)
        if np.isfinite(fp):
            inner = float(array_namespace(Zp).sum(Gp * Zp)) + f - fp
            GY = Gp if row_scale is None else Gp / row_scale[:, None]
            best = min(best, gap_by_sigma_max(lambda sigma: gap_of(inner, sigma, fp), GY, target))
    return best


def flattened_logits(Z, G, U, s, V, softmax, *, radius: float | None = None, penalty: float | None = None,
                     row_scale=None) -> list:
    """Logits at which a dual bound is tight near an optimum, from the logits Z, their gradient G and
    the thin SVD U diag(s) V^T of the nuclear-norm variable Y = row_scale * Z (rows; Y = Z without
    ``row_scale``); ``softmax``: :func:`softmax_map`. First the flattened point: the gradient with
    respect to Y with its block on the resolved singular pairs set to -mu I, mu = ``penalty`` for the
    penalized form, else chosen to maximise the bound over the ball of ``radius`` (Newton on its
    derivative). Then, with label smoothing, the logits whose softmax is the smoothed labels: the
    unconstrained minimum, the optimum where the ball or the penalty does not bind."""
    xp = array_namespace(Z)
    scale, labels, delta = softmax
    q = G / scale + labels
    live, one = q > 0, xp.ones_like(q)
    log_q = xp.log(xp.where(live, q, one))
    candidates = [_flattened_softmax(xp, Z, G, U, s, V, softmax, q, live, log_q, radius, penalty, row_scale)]
    if bool(xp.all(labels > 0)):
        candidates.append(xp.where(live, labels, one))
    return [Z + (xp.log(m) - log_q) / delta for m in candidates if m is not None]


def _flattened_softmax(xp, Z, G, U, s, V, softmax, q, live, log_q, radius, penalty, row_scale):
    """The softmax of :func:`flattened_logits`' flattened point; None without resolved pairs."""
    resolved = s > RESOLVED * float(xp.max(s)) if s.shape[0] else s > 0
    if not bool(xp.any(resolved)):
        return None
    U, V = U[:, resolved], V[:, resolved]
    scale, labels, delta = softmax
    zero, one = xp.zeros_like(q), xp.ones_like(q)
    rows = 1.0 if row_scale is None else row_scale[:, None]
    M = U.T @ matmul(G / rows, V)  # ~ -mu I at an optimum
    left = U * rows  # the block, mapped back to the logits
    start = xp.where(live, (G - matmul(left @ M, V.T)) / scale + labels, one)  # the moved softmax is start - mu rate
    block = matmul(left, V.T)  # the direction of the block, in the logits
    rate = xp.where(live, block / scale, zero)
    floor = FLOOR * xp.where(live, q, one)

    def moved(mu):
        return xp.maximum(start - mu * rate, floor)

    if penalty is not None:
        return moved(penalty)
    UV = block if row_scale is None else matmul(U, V.T)
    weight = UV / delta
    inner = float(xp.sum(Z * UV))

    def slope(mu):  # <Z'(mu), UV> - tau and its derivative in mu
        m = moved(mu)
        return (inner + float(xp.sum((xp.log(m) - log_q) * weight)) - radius,
                -float(xp.sum(xp.where(m > floor, rate / m, zero) * weight)))

    # Newton on the bound's derivative, written out: importing scipy.optimize takes ~0.4 s, more
    # than a K = 200 solve spends on its certificates
    mu = -float(xp.sum(xp.linalg.diagonal(M))) / U.shape[1]
    for _ in range(NEWTON_STEPS):
        value, derivative = slope(mu)
        if not derivative < 0:  # flat (or nan): stop where it is, any mu gives a valid bound
            break
        mu -= value / derivative
        if abs(value / derivative) <= 1e-9 * abs(mu):
            break
    return moved(mu)
