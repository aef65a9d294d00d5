"""Solvers of the Layer-Peeled Model behind one call, :func:`solve`."""
from __future__ import annotations

import math

from ..problem import LPMProblem
from .nuclear import solve_nuclear
from .reduced import solve_reduced
from .result import SolveResult, factorize
from .sdp import SDP_MAX_K, solve_sdp

METHODS = ("auto", "reduced", "first-order", "first-order-torch", "sdp", "sdp-scs")
REDUCED_MAX_GROUPS = 12  # above this many distinct counts the dense first-order method is used


def _torch_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def choose_method(problem: LPMProblem) -> str:
    """Reduced when counts fall into a few groups; else first-order, on the GPU when there is one."""
    if len(problem.groups) <= REDUCED_MAX_GROUPS:
        return "reduced"
    return "first-order-torch" if _torch_cuda() else "first-order"


def solve(problem: LPMProblem, method: str = "auto", *, tol: float = 1e-9, p: int | None = None, force: bool = False,
          **options) -> SolveResult:
    """Solve ``problem`` to a certified relative gap ``tol`` (gap <= tol * value).

    ``method``: 'auto' (records what it chose), 'reduced', 'first-order' (numpy),
    'first-order-torch' (GPU when present), 'sdp' (cvxpy + Clarabel) or 'sdp-scs'.
    ``p``: feature dimension of the returned W, H; an error names the smallest that works.
    ``force``: run an SDP beyond the size it solves in about a minute (:data:`SDP_MAX_K`).
    """
    if not isinstance(problem, LPMProblem):
        raise TypeError(f"solve() takes an LPMProblem, got {type(problem).__name__}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if not (isinstance(tol, (int, float)) and math.isfinite(tol) and 0 < tol < 1):
        raise ValueError(f"tol must be a number in (0, 1), got {tol!r}")
    chosen = choose_method(problem) if method == "auto" else method
    if chosen == "reduced":
        result = solve_reduced(problem, tol=tol, **options)
    elif chosen == "first-order":
        result = solve_nuclear(problem, tol=tol, backend="numpy", **options)
    elif chosen == "first-order-torch":
        result = solve_nuclear(problem, tol=tol, backend="torch", **options)
    else:
        solver = "SCS" if chosen == "sdp-scs" else "CLARABEL"
        if problem.K > SDP_MAX_K[solver] and not force:
            raise ValueError(f"--method {chosen} at K = {problem.K} would run for many minutes (a {2 * problem.K} x "
                             f"{2 * problem.K} semidefinite program; about a minute at K = {SDP_MAX_K[solver]}): use "
                             "--method auto (certified to the same gap), or --force to run it anyway")
        result = solve_sdp(problem, solver=solver, tol=tol, **options)
    if p is not None:
        result.factors(p)  # raises with the smallest valid p
        result.p = p
    result.info["requested_method"] = method
    return result


__all__ = ["solve", "choose_method", "solve_sdp", "solve_nuclear", "solve_reduced", "SolveResult", "factorize", "METHODS"]
