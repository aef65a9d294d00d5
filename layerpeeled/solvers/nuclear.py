"""First-order solver for the nuclear-norm form of the LPM (SPEC §2.3), on numpy or torch.

For p >= K the LPM is  min_Z sum_k (n_k/N) L(Z_k, k)  s.t. ||Z||_* <= K sqrt(E_H E_W), a K x K
problem with no PSD cone. Each step is one symmetric eigendecomposition; the better of the
Frank-Wolfe gap and the flattened dual bound (:mod:`.certificate`) certifies f(Z) - f* at the
returned Z.
"""
from __future__ import annotations

import time

import numpy as np
from array_api_compat import array_namespace

from ..problem import LPMProblem
from .certificate import flattened_dual_gap, flattened_first, frank_wolfe_gap, softmax_map
from .products import for_row_blocks, gram, matmul
from .proxgrad import certified_gap, check_interval, proximal_gradient, project_l1_nonneg
from .result import SolveResult


def _torch():
    try:
        import torch
    except ImportError:
        raise ImportError("the torch backend needs PyTorch: pip install 'layerpeeled[torch]'") from None
    return torch


def torch_device(device: str | None) -> str:
    """The torch solver's device: the one asked for, else CUDA when present, else the CPU."""
    return device or ("cuda" if _torch().cuda.is_available() else "cpu")


def logit_objective(problem: LPMProblem, Z):
    """f(Z) = sum_k (n_k/N) L(Z_k, k) and its gradient, on the array namespace of Z (one evaluation;
    iterative solvers bind the constants once with :func:`objective_for`)."""
    return objective_for(problem, Z)(Z)


def objective_for(problem: LPMProblem, like=None):
    """Z -> (f(Z), gradient) for K x K logits on the namespace and device of ``like`` (default:
    numpy float64), its constants (class weights, the loss's coefficients, the identity's
    complement: K^2 numbers, 0.8 GB at K = 10 000) made once per solve instead of at every step."""
    like = np.zeros(0) if like is None else like
    xp = array_namespace(like)
    K, device = problem.K, getattr(like, "device", None)
    off = 1.0 - xp.eye(K, dtype=like.dtype, device=device)
    w = xp.asarray(problem.weights, dtype=like.dtype, device=device)
    coef = problem.loss.row_coefficients(problem.counts)
    if coef is not None:
        coef = tuple(xp.asarray(np.ascontiguousarray(c), dtype=like.dtype, device=device) for c in coef)

    def value_grad(Z):
        diagonal, grad = xp.linalg.diagonal(Z), xp.empty_like(Z)

        def rows(block):  # rows are independent: a block per core (products.for_row_blocks)
            part = None if coef is None else tuple(c if c.shape[0] == 1 else c[block] for c in coef)
            loss, d_target, d_others = problem.loss.rows(diagonal[block], Z[block], off[block], part)
            grad[block] = w[block, None] * d_others  # 0 on the diagonal (multiplicity 0 there)
            own = xp.arange(block.start, block.stop, device=device)
            grad[own, own] = w[block] * d_target
            return float(xp.sum(w[block] * loss))

        return sum(for_row_blocks(rows, K, Z)), grad

    return value_grad


def shrink_factored(Z, shrink):
    """Z with its singular values s replaced by ``shrink(s)`` (nonnegative, ordered like s; ``shrink``
    may return s itself for "unchanged"), as (Z', U, s', V) with Z' = U diag(s') V^T its thin SVD
    (the pairs it keeps): the proximal step of a nuclear-norm ball or penalty.

    Singular pairs come from the symmetric eigenproblem of Z^T Z, about 3x cheaper than an SVD;
    Z V scales each right singular vector by its singular value. Only the r pairs left nonzero are
    multiplied back (2 K^2 r flops instead of 2 K^3: the optimum of a long-tailed K = 1000 problem
    has rank ~330).
    """
    return _shrink_fully(Z, shrink)[0]


def _shrink_fully(Z, shrink):
    """(:func:`shrink_factored`'s answer, all right singular vectors ascending, the number kept)."""
    lam, V = array_namespace(Z).linalg.eigh(gram(Z))  # ascending: what survives a shrinkage is the last r
    s, shrunk, kept = _shrunk_spectrum(lam, shrink, Z.shape[0])
    first = s.shape[0] - kept
    U, Vk, sk = matmul(Z, V[:, first:]) / s[first:], V[:, first:], shrunk[first:]
    return ((Z if shrunk is s else matmul(U * sk, Vk.T)), U, sk, Vk), V, kept


def _shrunk_spectrum(lam, shrink, rows: int):
    """(s, shrink(s), how many pairs stay nonzero) from the eigenvalues lam of Z^T Z, ascending, Z
    with ``rows`` rows. Eigenvalues within the Gram matrix's rounding (rows eps lam_max) count as 0:
    their square roots (~1e-7 s_max where Z has a null space, as the balanced start does) are
    rounding, and a left vector Z v / s made from one would not be a unit vector."""
    xp = array_namespace(lam)
    floor = rows * 2.0**-52 * max(float(xp.max(lam)), 0.0) if lam.shape[0] else 0.0
    s = xp.sqrt(xp.where(lam > floor, lam, 0.0 * lam))
    shrunk = shrink(s)
    return s, shrunk, int(xp.sum((shrunk > 0) & (s > 0)))  # a rounding-level theta < 0 lifts zeros


TRACK_FROM = 200  # K from which proximal steps track a partial spectrum (measured: benchmarks/README.md)
MARGIN = 16  # columns a tracked subspace holds beyond the pairs kept (at least; 10 % at large rank)


class TrackedShrink:
    """:func:`shrink_factored` at the successive points of one solve, on a partial spectrum.

    The pairs that survive a shrinkage are Y's top r; along a solve they change a little per step.
    So the right singular subspace of the last step (r columns and a margin) is carried over, moved
    by one subspace-iteration step Y^T Y Q, and a Rayleigh-Ritz step on it gives the top pairs:
    four products of K x K by K x m matrices (the rebuilt point's included), a QR and an m x m
    eigenproblem instead of a K x K one (178 against 330 ms a step at K = 1000, rank 331). Pairs
    outside the subspace are taken as zeroed. The point returned is feasible whatever the subspace
    (orthonormal pairs with the kept values) and the certificates hold at any point. A full
    eigendecomposition starts the tracking and takes over when the kept pairs reach the margin;
    tracking stops where the subspace would exceed half of K (it then costs more than it saves).
    ``track``: whether to track at all (default: from K = TRACK_FROM)."""

    def __init__(self, K: int, track: bool | None = None):
        self.track = K >= TRACK_FROM if track is None else track
        self.basis = None

    def __call__(self, Y, shrink):
        """shrink_factored(Y, shrink), from the tracked subspace where it holds the kept pairs."""
        xp = array_namespace(Y)
        if self.basis is not None:
            Q = xp.linalg.qr(matmul(Y.T, matmul(Y, self.basis)))[0]  # one subspace-iteration step towards Y's top pairs
            B = matmul(Y, Q)
            lam, W = xp.linalg.eigh(gram(B))  # Rayleigh-Ritz: Y Q = (B W) W^T, B W with orthogonal columns
            s, shrunk, kept = _shrunk_spectrum(lam, shrink, Y.shape[0])
            m = s.shape[0]
            if kept <= m - MARGIN // 2:  # else the kept pairs may reach beyond the subspace
                V = matmul(Q, W[:, -min(m, self._width(kept)):])
                U, Vk, sk = matmul(B, W[:, m - kept:]) / s[m - kept:], V[:, V.shape[1] - kept:], shrunk[m - kept:]
                self.basis = self._next(V, kept, Y.shape[1])
                return matmul(U * sk, Vk.T), U, sk, Vk
        out, V, kept = _shrink_fully(Y, shrink)
        self.basis = self._next(V, kept, Y.shape[1])
        return out

    @staticmethod
    def _width(kept: int) -> int:
        return kept + max(MARGIN, kept // 10)

    def _next(self, V, kept: int, K: int):
        """The subspace the next step starts from: the top kept columns of V and a margin."""
        width = self._width(kept)
        return V[:, -width:] if self.track and 0 < kept and width <= K // 2 else None


def shrink_singular_values(Z, shrink):
    """Z with its singular values shrunk (see :func:`shrink_factored`)."""
    return shrink_factored(Z, shrink)[0]


def project_nuclear(Z, radius: float):
    """Euclidean projection onto {||Z||_* <= radius}: the singular values projected onto an l1 ball."""
    return shrink_factored(Z, lambda s: project_l1_nonneg(s, radius))[0]


FLAT_EVERY = 5  # steps between flattened bounds: one costs more than a step up to K ~ 100


class FlattenedSchedule:
    """When a dense solver's gap check tries the flattened bound: on checks at least FLAT_EVERY steps
    after the last one that did (``check_every`` steps apart), at the point the last proximal step
    made (whose singular pairs the bound needs)."""

    def __init__(self, check_every: int):
        self.every, self.checks = max(1, FLAT_EVERY // check_every), 0

    def due(self, point, made) -> bool:
        self.checks += 1
        return made is not None and made[0] is point and self.checks % self.every == 0


class NuclearBall:
    """The constrained model's proximal step and certificate: projection onto the ball, which keeps
    the singular subspaces of the point it made, and the better of the Frank-Wolfe gap and the
    flattened dual bound there (:mod:`.certificate`; the latter on every check that is at least
    FLAT_EVERY steps after the last one that tried it, the former alone on the others)."""

    def __init__(self, problem: LPMProblem, value_grad, like, tol: float, check_every: int):
        self.radius, self.value_grad, self.tol = problem.radius, value_grad, tol
        self.softmax = softmax_map(problem, like)
        self.last = None  # the latest projection and its thin SVD
        self.shrink = TrackedShrink(problem.K)
        self.schedule = FlattenedSchedule(check_every)

    def project(self, Z, step=0.0):
        self.last = self.shrink(Z, lambda s: project_l1_nonneg(s, self.radius))
        return self.last[0]

    def gap(self, Z, f: float, G) -> float:
        if not self.schedule.due(Z, self.last):
            return frank_wolfe_gap(Z, G, self.radius, f, self.tol)
        inner, target = float(array_namespace(Z).sum(G * Z)), self.tol * abs(f)
        return flattened_first(
            lambda: flattened_dual_gap(self.value_grad, self.softmax, self.radius, Z, f, G, *self.last[1:], target),
            lambda sigma: certified_gap(inner, self.radius, sigma, f), G, self.last[3], target)


def dense_check_every(K: int, check_every: int | None = None) -> int:
    """How often a dense solver computes its gap: ``check_every`` when given, else every step up to
    K = 100 and every 10th beyond: there a check (spectral bounds, the flattened point) costs 2-3
    steps, more than the 4-5 steps a 10-step interval overshoots by on average (measured 1.0-1.3x
    faster than every 5th at K = 150-1000: benchmarks/README.md)."""
    return (1 if K <= 100 else 10) if check_every is None else check_interval(check_every)


def etf_logits(K: int, radius: float) -> np.ndarray:
    """The balanced optimum's logit matrix, radius/(K-1) * (I - 11^T/K): the natural starting point."""
    return radius / (K - 1) * (np.eye(K) - np.full((K, K), 1.0 / K))


def solve_nuclear(
    problem: LPMProblem,
    *,
    tol: float = 1e-9,
    max_iter: int = 20000,
    backend: str = "numpy",
    device: str | None = None,
    check_every: int | None = None,
    callback=None,
    x0=None,
) -> SolveResult:
    """Solve the nuclear-norm form by projected gradient with spectral steps; certify by the better of
    the Frank-Wolfe gap and the flattened dual bound (:class:`NuclearBall`).

    ``backend='torch'`` runs on ``device`` (default: CUDA when available, else CPU) in float64.
    ``x0``: a K x K starting logit matrix (default: the balanced optimum, a simplex ETF).
    """
    start = time.perf_counter()
    tau = problem.radius
    Z0 = etf_logits(problem.K, tau) if x0 is None else np.asarray(x0, dtype=float)
    if Z0.shape != (problem.K, problem.K):
        raise ValueError(f"x0 must be a {problem.K} x {problem.K} logit matrix, got shape {Z0.shape}")
    if backend == "torch":
        torch = _torch()
        device = torch_device(device)
        Z0 = torch.as_tensor(Z0, dtype=torch.float64, device=device)
    elif backend != "numpy":
        raise ValueError(f"backend must be 'numpy' or 'torch', got {backend!r}")
    value_grad = objective_for(problem, Z0)
    check_every = dense_check_every(problem.K, check_every)
    ball = NuclearBall(problem, value_grad, Z0, tol, check_every)
    out = proximal_gradient(
        Z0,
        value_grad,
        ball.project,
        ball.gap,
        lipschitz=0.5 * float(problem.weights.max()),
        tol=tol,
        max_iter=max_iter,
        check_every=check_every,
        callback=callback,
    )
    Z = out.x.cpu().numpy() if backend == "torch" else np.asarray(out.x)
    label = f"nuclear-{backend}" + (f"-{device}" if backend == "torch" else "")
    return SolveResult.from_logits(
        problem, Z, value=out.value, gap=out.gap, method=label,
        status="optimal" if out.converged else "max_iter", iterations=out.iterations,
        seconds=time.perf_counter() - start,
    )
