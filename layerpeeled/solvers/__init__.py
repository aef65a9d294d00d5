"""Solvers of the Layer-Peeled Model behind one call, :func:`solve`."""
from __future__ import annotations

import contextlib
import math

from ..problem import LPMProblem, PenalizedLPM
from ..threads import solver_threads, user_set_threads
from .nuclear import solve_nuclear, torch_device
from .products import row_blocks
from .fixed_etf import solve_fixed_etf
from .penalized import solve_penalized_cvxpy, solve_penalized_dense, solve_penalized_reduced
from .reduced import solve_reduced
from .result import SolveResult, factorize
from .sdp import SDP_MAX_K, solve_sdp

METHODS = ("auto", "reduced", "first-order", "first-order-torch", "sdp", "sdp-scs")
REDUCED_MAX_GROUPS = 12  # up to this many distinct counts `auto` picks the reduced solver at any K
REDUCED_MAX_GROUPS_CPU = 40  # the most it picks it for on the CPU, at large K (see reduced_max_groups)


def _torch_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def reduced_max_groups(K: int) -> int:
    """The most distinct counts for which `auto` picks the reduced solver over a dense CPU solve at
    K classes. The reduced solve's cost does not depend on K and grows like G^5.7 (Newton on
    2G + 2G^2 factored unknowns); a dense one grows like K^2.6 (an eigendecomposition per step, more
    steps at larger K). Measured crossovers (benchmarks/README.md): G ~ 12 at K = 60, 25 at K = 200,
    beyond 33 at K = 500 and 40 at K = 1000: hence 21 (K/200)^0.46, kept between 12 and 40."""
    return int(min(REDUCED_MAX_GROUPS_CPU, max(REDUCED_MAX_GROUPS, 21 * (K / 200) ** 0.46)))


def choose_method(problem) -> str:
    """Reduced when counts fall into few groups (more of them at large K, where dense CPU solves are
    slow: :func:`reduced_max_groups`); else first-order, on the GPU when there is one (a GPU makes
    dense solves fast, so the reduced solver keeps only the first 12 groups there). The fixed-ETF
    model has its own first-order method."""
    if isinstance(problem, LPMProblem) and problem.classifier == "etf":
        return "first-order"
    G = len(problem.groups)
    if G <= REDUCED_MAX_GROUPS:
        return "reduced"
    cuda = isinstance(problem, LPMProblem) and _torch_cuda()  # torch is imported only past 12 groups
    if not cuda and G <= reduced_max_groups(problem.K):
        return "reduced"
    return "first-order-torch" if cuda else "first-order"


def dense_logit_solver(problem, method: str) -> bool:
    """Whether ``method`` (a chosen one, not 'auto') runs a dense proximal solver of the K x K logits:
    the constrained or penalized form's first-order solver, which take a start (``x0``) and
    ``check_every``; the fixed-ETF model's first-order method takes neither."""
    return method.startswith("first-order") and not (isinstance(problem, LPMProblem) and problem.classifier == "etf")


def solve(problem: LPMProblem | PenalizedLPM, method: str = "auto", *, tol: float = 1e-9, p: int | None = None, force: bool = False,
          **options) -> SolveResult:
    """Solve ``problem`` to a certified relative gap ``tol`` (gap <= tol * value).

    ``method``: 'auto' (records what it chose), 'reduced', 'first-order' (numpy),
    'first-order-torch' (GPU when present), 'sdp' (cvxpy + Clarabel) or 'sdp-scs'.
    ``p``: feature dimension of the returned W, H; an error names the smallest that works.
    ``force``: run an SDP beyond the size it solves in about a minute (:data:`SDP_MAX_K`).
    """
    if not isinstance(problem, (LPMProblem, PenalizedLPM)):
        raise TypeError(f"solve() takes an LPMProblem or a PenalizedLPM, got {type(problem).__name__}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if not (isinstance(tol, (int, float)) and math.isfinite(tol) and 0 < tol < 1):
        raise ValueError(f"tol must be a number in (0, 1), got {tol!r}")
    chosen = choose_method(problem) if method == "auto" else method
    if chosen.startswith("sdp"):
        _check_sdp_size(problem, chosen, force)
    torch_cpu = chosen == "first-order-torch" and not str(torch_device(options.get("device"))).startswith("cuda")
    with one_thread(torch_cpu) if chosen == "first-order" or torch_cpu else contextlib.nullcontext():
        if isinstance(problem, LPMProblem) and problem.classifier == "etf":
            if method not in ("auto", "first-order"):
                raise ValueError(f"method {method!r} does not solve the fixed-ETF model; use auto or first-order")
            result = solve_fixed_etf(problem, tol=tol, **options)
        elif isinstance(problem, PenalizedLPM):
            result = _solve_penalized(problem, chosen, tol, options)
        elif chosen == "reduced":
            result = solve_reduced(problem, tol=tol, **options)
        elif chosen == "first-order":
            result = solve_nuclear(problem, tol=tol, backend="numpy", **options)
        elif chosen == "first-order-torch":
            result = solve_nuclear(problem, tol=tol, backend="torch", **options)
        else:
            result = solve_sdp(problem, solver=_sdp_solver(chosen), tol=tol, **options)
    if p is not None:
        result.factors(p)  # raises with the smallest valid p
        result.p = p
    result.info["requested_method"] = method
    return result


@contextlib.contextmanager
def one_thread(torch_cpu: bool = False):
    """Dense solves on the CPU run BLAS on one thread, and torch's own pool for the torch solver on
    the CPU (``torch_cpu``): on a machine whose other core was busy, a second thread made a K = 200
    solve 2.9x slower with numpy and 2.5x with torch (benchmarks/README.md); on an idle one it gained
    nothing there. Large numpy work is split into row blocks over the cores instead
    (:mod:`.products`, ``LPM_THREADS``: :func:`layerpeeled.threads.solver_threads`). A thread count
    the user exported wins. The ~1 ms this costs is why the reduced solver (milliseconds, tiny
    matrices) does without."""
    with row_blocks(solver_threads()):
        if user_set_threads():
            yield
            return
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1, user_api="blas"):
            if not torch_cpu:
                yield
                return
            import torch

            before = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                yield
            finally:
                torch.set_num_threads(before)


def _sdp_solver(method: str) -> str:
    return "SCS" if method == "sdp-scs" else "CLARABEL"


def _check_sdp_size(problem, method: str, force: bool) -> None:
    limit = SDP_MAX_K[_sdp_solver(method)]
    if problem.K > limit and not force:
        raise ValueError(f"--method {method} at K = {problem.K} would run for many minutes (a semidefinite program "
                         f"of size {2 * problem.K}; about a minute at K = {limit}): use --method auto (certified to "
                         "the same gap), or --force to run it anyway")


def _solve_penalized(problem: PenalizedLPM, method: str, tol: float, options: dict) -> SolveResult:
    """The penalized form: reduced or dense proximal gradient, or its cvxpy formulation for 'sdp'."""
    if method == "reduced":
        return solve_penalized_reduced(problem, tol=tol, **options)
    if method == "first-order":
        return solve_penalized_dense(problem, tol=tol, **options)
    if method.startswith("sdp"):
        return solve_penalized_cvxpy(problem, solver=_sdp_solver(method), tol=tol, **options)
    raise ValueError(f"method {method!r} does not solve the penalized form; use auto, reduced, first-order, sdp or sdp-scs")


__all__ = ["solve", "choose_method", "solve_sdp", "solve_nuclear", "solve_reduced", "SolveResult", "factorize", "METHODS"]
