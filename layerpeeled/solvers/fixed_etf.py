"""The LPM with its classifier held at a simplex ETF (Yang et al. 2022), only the features optimised.

With W the simplex ETF of energy E_W (|w_k|^2 = E_W, cos = -1/(K-1)), W W^T = E_W K/(K-1) C with
C = I - 11^T/K. The logits z_k = W h_k range over the zero-sum vectors, and the cheapest feature
giving z_k has |h_k|^2 = (K-1)/(K E_W) |z_k|^2, so the feature budget becomes a ball:

    min_Z sum_k (n_k/N) L(z_k, k)   s.t.  Z 1 = 0,  |Z|_F^2 <= K^2 E_H E_W / (K-1),

a convex problem with an easy projection (centre the rows, then scale into the ball) and an exact
certificate, the Frank-Wolfe gap <g, Z> + rho |g C|_F. No eigendecomposition is needed.
"""
from __future__ import annotations

import math
import time

import numpy as np

from ..geometry.gram import GramStats
from .proxgrad import certified_gap, proximal_gradient
from .nuclear import objective_for
from .result import SolveResult


def _centre(Z):
    return Z - Z.mean(axis=1, keepdims=True)


class FixedETFLogits:
    """The solution: logits Z (rows zero-sum), the ETF classifier and the features it implies."""

    def __init__(self, Z: np.ndarray, problem):
        self.Z, self.K, self.EW = np.asarray(Z, dtype=float), problem.K, problem.EW
        self.c = math.sqrt(self.EW * self.K / (self.K - 1))  # W = c B, B an orthonormal basis of zero-sum vectors

    def expand(self) -> np.ndarray:
        return self.Z

    def rank(self) -> int:
        """The ETF spans K - 1 dimensions: features and classifiers need p >= K - 1."""
        return self.K - 1

    def _basis(self) -> np.ndarray:
        return np.linalg.qr(np.eye(self.K) - 1.0 / self.K)[0][:, : self.K - 1]

    def factors(self, p: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """W (rows: the ETF) and class means H = Z W^{+T} in R^p."""
        p = self.K - 1 if p is None else p
        if isinstance(p, bool) or not isinstance(p, (int, np.integer)) or p < self.K - 1:
            raise ValueError(f"p = {p!r} is too small: a simplex ETF of K = {self.K} classes needs p >= {self.K - 1}")
        B = self._basis()
        W, H = np.zeros((self.K, p)), np.zeros((self.K, p))
        W[:, : self.K - 1] = self.c * B
        H[:, : self.K - 1] = self.Z @ B / self.c
        return W, H

    def gram_stats(self, problem) -> tuple[GramStats, GramStats]:
        idx = [g.classes for g in problem.groups]
        C = np.eye(self.K) - 1.0 / self.K
        return (GramStats.from_matrix(self.c**2 * C, idx), GramStats.from_matrix(self.Z @ self.Z.T / self.c**2, idx))


def solve_fixed_etf(problem, *, tol: float = 1e-9, max_iter: int = 50000, callback=None) -> SolveResult:
    """Optimise the features under a classifier held at the simplex ETF (K x K, no eigendecompositions)."""
    start = time.perf_counter()
    K = problem.K
    rho = K * math.sqrt(problem.EH * problem.EW / (K - 1))

    def project(Z, step=None):
        Z = _centre(Z)
        norm = float(np.linalg.norm(Z))
        return Z if norm <= rho else Z * (rho / norm)

    def gap(Z, f, g):
        return certified_gap(float((g * Z).sum()), rho, float(np.linalg.norm(_centre(g))), f)

    Z0 = rho / math.sqrt(K - 1) * (np.eye(K) - 1.0 / K)  # the balanced optimum
    out = proximal_gradient(Z0, objective_for(problem, Z0), project, gap, lipschitz=0.5 * float(problem.weights.max()),
                            tol=tol, max_iter=max_iter, callback=callback)
    return SolveResult(problem=problem, value=out.value, gap=out.gap, method="fixed-etf",
                       status="optimal" if out.converged else "max_iter", iterations=out.iterations,
                       seconds=time.perf_counter() - start, solution=FixedETFLogits(out.x, problem))
