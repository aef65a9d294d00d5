"""First-order solver for the nuclear-norm form of the LPM (SPEC §2.3), on numpy or torch.

For p >= K the LPM is  min_Z sum_k (n_k/N) L(Z_k, k)  s.t. ||Z||_* <= K sqrt(E_H E_W), a K x K
problem with no PSD cone. Each step is one SVD; the Frank-Wolfe gap
<grad f(Z), Z> + tau * sigma_max(grad f(Z)) certifies f(Z) - f* at the returned Z.
"""
from __future__ import annotations

import time

import numpy as np
from array_api_compat import array_namespace

from ..problem import LPMProblem
from .proxgrad import certified_gap, proximal_gradient, project_l1_nonneg
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
    numpy float64), its constants (class weights, the loss's coefficients, the identity and its
    complement: 2 K^2 numbers, 1.6 GB at K = 10 000) made once per solve instead of at every step."""
    like = np.zeros(0) if like is None else like
    xp = array_namespace(like)
    K, device = problem.K, getattr(like, "device", None)
    eye = xp.eye(K, dtype=like.dtype, device=device)
    off = 1.0 - eye
    w = xp.asarray(problem.weights, dtype=like.dtype, device=device)
    coef = problem.loss.row_coefficients(problem.counts)
    if coef is not None:
        coef = tuple(xp.asarray(np.ascontiguousarray(c), dtype=like.dtype, device=device) for c in coef)

    def value_grad(Z):
        loss, d_target, d_others = problem.loss.rows(xp.linalg.diagonal(Z), Z, off, coef)
        return float(xp.sum(w * loss)), w[:, None] * (d_others + eye * d_target[:, None])

    return value_grad


def shrink_singular_values(Z, shrink):
    """Z with its singular values s replaced by ``shrink(s)`` (nonnegative, ordered like s; ``shrink``
    may return s itself for "unchanged"): the proximal step of a nuclear-norm ball or penalty.

    Singular pairs come from the symmetric eigenproblem of Z^T Z, about 3x cheaper than an SVD;
    Z V scales each right singular vector by its singular value, so U is never formed. Only the
    r pairs left nonzero are multiplied back (2 K^2 r flops instead of 2 K^3: the optimum of a
    long-tailed K = 1000 problem has rank ~330).
    """
    xp = array_namespace(Z)
    lam, V = xp.linalg.eigh(Z.T @ Z)  # ascending: what survives a shrinkage is the last r
    s = xp.sqrt(xp.maximum(lam, 0.0 * lam))
    shrunk = shrink(s)
    if shrunk is s:
        return Z
    first = Z.shape[1] - int(xp.sum((shrunk > 0) & (s > 0)))  # a rounding-level theta < 0 lifts zeros
    V = V[:, first:]
    return ((Z @ V) * (shrunk[first:] / s[first:])) @ V.T


def project_nuclear(Z, radius: float):
    """Euclidean projection onto {||Z||_* <= radius}: the singular values projected onto an l1 ball."""
    return shrink_singular_values(Z, lambda s: project_l1_nonneg(s, radius))


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
    top = max(float(xp.linalg.eigvalsh(G.T @ G)[-1]), 0.0)
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


def dense_check_every(K: int, check_every: int | None = None) -> int:
    """How often a dense solver computes its gap: ``check_every`` when given, else every step up to
    K = 100 and every 5th beyond (a gap costs a spectral computation, dear at large K)."""
    return (1 if K <= 100 else 5) if check_every is None else check_every


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
    """Solve the nuclear-norm form by projected gradient with spectral steps; certify by the Frank-Wolfe gap.

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
    out = proximal_gradient(
        Z0,
        objective_for(problem, Z0),
        lambda Z, step: project_nuclear(Z, tau),
        lambda Z, f, g: frank_wolfe_gap(Z, g, tau, f, tol),
        lipschitz=0.5 * float(problem.weights.max()),
        tol=tol,
        max_iter=max_iter,
        check_every=dense_check_every(problem.K, check_every),
        callback=callback,
    )
    Z = out.x.cpu().numpy() if backend == "torch" else np.asarray(out.x)
    label = f"nuclear-{backend}" + (f"-{device}" if backend == "torch" else "")
    return SolveResult.from_logits(
        problem, Z, value=out.value, gap=out.gap, method=label,
        status="optimal" if out.converged else "max_iter", iterations=out.iterations,
        seconds=time.perf_counter() - start,
    )
