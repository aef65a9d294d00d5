"""Reference solver: the 2K x 2K semidefinite relaxation through cvxpy (SPEC §2.2).

X = [H; W][H; W]^T >= 0, minimise sum_k (n_k/N) L(X[k, K:2K], k) under the two trace budgets.
Exact for p >= 2K; here it serves as the independent cross-check of the other solvers. Its
certificate is computed like theirs: the logit block is scaled into the nuclear-norm ball and
the Frank-Wolfe gap is evaluated there, so solver tolerances never leak into the reported bound.
"""
from __future__ import annotations

import time

import numpy as np

from ..problem import LPMProblem
from .certificate import frank_wolfe_gap
from .nuclear import logit_objective
from .result import SolveResult

SDP_SOLVERS = ("CLARABEL", "SCS")
SDP_MAX_K = {"CLARABEL": 50, "SCS": 100}  # about a minute on 2 cores (benchmarks/README.md); beyond: only when forced


def solve_sdp(problem: LPMProblem, *, solver: str = "CLARABEL", tol: float = 1e-9, verbose: bool = False) -> SolveResult:
    """Solve the SDP relaxation with Clarabel (default) or SCS."""
    import cvxpy as cp

    solver = solver.upper()
    if solver not in SDP_SOLVERS:
        raise ValueError(f"SDP solver must be one of {SDP_SOLVERS}, got {solver!r}")
    start = time.perf_counter()
    K, loss = problem.K, problem.loss
    X = cp.Variable((2 * K, 2 * K), PSD=True)
    w = problem.weights
    objective = sum(w[k] * loss.cvxpy_row(X[k, K:], k, problem.counts) for k in range(K))
    constraints = [cp.trace(X[:K, :K]) <= K * problem.EH, cp.trace(X[K:, K:]) <= K * problem.EW]
    prob = cp.Problem(cp.Minimize(objective), constraints)
    opts = {"CLARABEL": {"tol_gap_abs": tol, "tol_gap_rel": tol, "tol_feas": tol},
            "SCS": {"eps_abs": max(tol, 1e-7), "eps_rel": max(tol, 1e-7), "max_iters": 200000}}[solver]
    prob.solve(solver=solver, verbose=verbose, **opts)
    if X.value is None:
        raise RuntimeError(f"{solver} failed on {problem!r}: status {prob.status}")
    Z = np.array(X.value[:K, K:])
    nuc = np.linalg.svd(Z, compute_uv=False).sum()
    if nuc > problem.radius:  # solver tolerance may leave it just outside: scale back in
        Z *= problem.radius / nuc
    value, grad = logit_objective(problem, Z)
    stats = prob.solver_stats
    return SolveResult.from_logits(
        problem, Z, value=value, gap=frank_wolfe_gap(Z, grad, problem.radius, value), method=f"sdp-{solver.lower()}",
        status=prob.status, iterations=int(stats.num_iters or 0), seconds=time.perf_counter() - start,
        info={"sdp_value": float(prob.value), "sdp_solve_seconds": float(stats.solve_time or 0.0)},
    )
