"""What every solver returns: value, certificate, solution, geometry (scipy.optimize style)."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from ..geometry.gram import GramStats
from ..geometry.report import Geometry, group_geometry
from ..jsonio import jsonable
from ..problem import LPMProblem

RANK_RTOL = 1e-7  # singular values below this fraction of the largest count as zero


class DenseLogits:
    """A K x K logit matrix Z = H W^T with the factorisation the model implies: the SVD of the
    weighted logits Y = S Z (S = problem.row_scale) gives W W^T = c (Y^T Y)^{1/2} and
    (S H)(S H)^T = (Y Y^T)^{1/2} / c, c = problem.classifier_scale (SPEC §1, §2.3)."""

    def __init__(self, Z: np.ndarray, row_scale: np.ndarray):
        self.Z = np.asarray(Z, dtype=float)
        self.row_scale = np.asarray(row_scale, dtype=float)

    def expand(self) -> np.ndarray:
        return self.Z

    @cached_property
    def _svd(self):
        return np.linalg.svd(self.row_scale[:, None] * self.Z)

    def rank(self) -> int:
        s = self._svd[1]
        return int((s > RANK_RTOL * s[0]).sum()) if s[0] > 0 else 0

    def gram_stats(self, problem) -> tuple[GramStats, GramStats]:
        U, s, Vh = self._svd
        c, inv = problem.classifier_scale, 1.0 / self.row_scale
        idx = [g.classes for g in problem.groups]
        return (GramStats.from_matrix(c * (Vh.T * s) @ Vh, idx),
                GramStats.from_matrix(np.outer(inv, inv) * ((U * s) @ U.T) / c, idx))


def factorize(problem, Z: np.ndarray, p: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Classifier W and class means H (K x p) with H W^T = Z and the norms the model implies
    (see :class:`DenseLogits`). ``p`` defaults to the rank of Z, the smallest that represents it."""
    S = problem.row_scale
    U, s, Vh = np.linalg.svd(S[:, None] * Z)
    r = int((s > RANK_RTOL * s[0]).sum()) if s[0] > 0 else 0
    p = r if p is None else p
    if isinstance(p, bool) or not isinstance(p, (int, np.integer)) or p < max(r, 1):
        raise ValueError(f"p = {p!r} is too small: this optimum has rank {r}, so the feature dimension "
                         f"must be an integer p >= {max(r, 1)}")
    root = np.sqrt(s[:r])
    scale = np.sqrt(problem.classifier_scale)
    W, H = np.zeros((Z.shape[0], p)), np.zeros((Z.shape[0], p))
    W[:, :r] = scale * Vh[:r].T * root
    H[:, :r] = U[:, :r] * root / scale / S[:, None]
    return W, H


@dataclass
class SolveResult:
    """A solved LPM. ``value`` is the mean loss per example at the returned solution; ``gap`` is a
    computed upper bound on ``value - optimum`` (the Frank-Wolfe gap of the nuclear-norm form)."""

    problem: LPMProblem
    value: float
    gap: float
    method: str
    status: str
    iterations: int
    seconds: float
    solution: object = field(repr=False)  # DenseLogits or the reduced solver's block form
    p: int | None = None  # the feature dimension W and H are returned in (None: the rank)
    bias: np.ndarray | None = None  # class biases b (penalized form with a bias), else None
    info: dict = field(default_factory=dict, repr=False)  # method-specific details, part of the public answer
    state: dict = field(default_factory=dict, repr=False)  # solver internals for other algorithms (onsets), not output

    @classmethod
    def from_logits(cls, problem, Z, **kw) -> "SolveResult":
        return cls(problem=problem, solution=DenseLogits(Z, problem.row_scale), **kw)

    @property
    def logits(self) -> np.ndarray:
        """The K x K logit matrix Z_kj = h_k . w_j (expanded from blocks for the reduced solver)."""
        return self.solution.expand()

    @property
    def rank(self) -> int:
        """Rank of the optimal logit matrix: features in R^p represent it exactly iff p >= rank."""
        return self.solution.rank()

    def factors(self, p: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(W, H): classifier rows and class-mean features in R^p (default: ``self.p`` or the rank)."""
        p = self.p if p is None else p
        own = getattr(self.solution, "factors", None)  # a solution with a classifier of its own (fixed ETF)
        return own(p) if own is not None else factorize(self.problem, self.logits, p)

    @property
    def W(self) -> np.ndarray:
        return self.factors()[0]

    @property
    def H(self) -> np.ndarray:
        return self.factors()[1]

    @cached_property
    def _grams(self):
        return self.solution.gram_stats(self.problem)

    @cached_property
    def geometry(self) -> Geometry:
        return group_geometry([g.count for g in self.problem.groups], *self._grams)

    @property
    def energies(self) -> tuple[float, float]:
        """(E_W, E_H) of the solution: mean squared classifier norm, mean squared class-mean norm."""
        w_stats, h_stats = self._grams
        return w_stats.trace / self.problem.K, h_stats.trace / self.problem.K

    def to_dict(self) -> dict:
        """The public answer as strict-JSON-ready data (undefined numbers are None); README lists every key."""
        EW, EH = self.energies
        return jsonable({
            "value": self.value, "gap": self.gap, "method": self.method, "status": self.status,
            "iterations": self.iterations, "seconds": self.seconds, "K": self.problem.K,
            **self.problem.describe(), "EH": EH, "EW": EW, "loss": self.problem.loss.spec, "rank": self.rank,
            "bias_values": self.bias, **self.geometry.to_dict(), "details": self.info,
        })

    def summary(self) -> str:
        head = (f"{self.problem!r}\nmethod {self.method}: {self.status} after {self.iterations} iterations "
                f"in {self.seconds:.3g} s\nvalue {self.value:.12g}  (certified: within {self.gap:.2e} of the optimum)"
                f"\nrank of the logit matrix {self.rank} (features need p >= {self.rank})")
        return head + "\n" + self.geometry.summary()
