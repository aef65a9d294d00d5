"""Block statistics of a Gram matrix over groups of classes: what every geometry report is built from.

Model solutions and trained networks alike reduce to these numbers, so a network's classifier and
the model's optimum are measured by the same code. A block-symmetric Gram (the symmetry-reduced
solver's) gives them in closed form, at a cost independent of K.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GramStats:
    """Per-group and between-group statistics of a Gram matrix G = A A^T (rows = classes)."""

    sizes: np.ndarray  # classes per group
    norm2: np.ndarray  # mean squared norm per group
    min_norm2: np.ndarray  # smallest squared norm per group
    cos: np.ndarray  # mean cosine between distinct members (nan for one-class groups)
    dist: np.ndarray  # mean distance between distinct members (nan for one-class groups)
    cross_cos: np.ndarray  # G x G mean cosine between members of two groups (diagonal: cos)
    fro2: float  # ||G||_F^2
    trace: float  # tr G
    total: float  # 1^T G 1
    block_mean: np.ndarray  # G x G mean entry between distinct members of two groups (diagonal: within a group)

    @classmethod
    def from_matrix(cls, gram, groups) -> "GramStats":
        """Statistics of a full K x K Gram matrix, groups given as sequences of class indices."""
        gram = np.asarray(gram, dtype=float)
        d = np.clip(np.diag(gram), 0.0, None)
        norms = np.sqrt(d)
        with np.errstate(divide="ignore", invalid="ignore"):
            cosm = gram / np.outer(norms, norms)
        dist = np.sqrt(np.clip(d[:, None] + d[None, :] - 2 * gram, 0.0, None))
        idx = [np.asarray(g, dtype=int) for g in groups]
        G = len(idx)
        cos, mdist, cross = np.full(G, np.nan), np.full(G, np.nan), np.full((G, G), np.nan)
        mean = np.zeros((G, G))
        for a, ia in enumerate(idx):
            off = ~np.eye(ia.size, dtype=bool)
            if ia.size > 1:
                cos[a] = cosm[np.ix_(ia, ia)][off].mean()
                mdist[a] = dist[np.ix_(ia, ia)][off].mean()
                mean[a, a] = gram[np.ix_(ia, ia)][off].mean()
            for b, ib in enumerate(idx):
                cross[a, b] = cos[a] if a == b else cosm[np.ix_(ia, ib)].mean()
                if a != b:
                    mean[a, b] = gram[np.ix_(ia, ib)].mean()
        return cls(
            sizes=np.array([i.size for i in idx]), norm2=np.array([d[i].mean() for i in idx]),
            min_norm2=np.array([d[i].min() for i in idx]), cos=cos, dist=mdist, cross_cos=cross,
            fro2=float((gram**2).sum()), trace=float(d.sum()), total=float(gram.sum()), block_mean=mean,
        )

    @classmethod
    def from_blocks(cls, sizes, diag, off, cross) -> "GramStats":
        """Statistics of a block-symmetric Gram: value ``diag[g]`` on the diagonal of group g,
        ``off[g]`` between distinct members of g, ``cross[g, h]`` between members of g and h."""
        K = np.asarray(sizes, dtype=float)
        diag = np.clip(np.asarray(diag, dtype=float), 0.0, None)
        off, cross = np.asarray(off, dtype=float), np.array(cross, dtype=float)
        norms = np.sqrt(diag)
        many = K > 1
        with np.errstate(divide="ignore", invalid="ignore"):
            cos = np.where(many, off / diag, np.nan)
            cross_cos = cross / np.outer(norms, norms)
        np.fill_diagonal(cross_cos, cos)
        dist = np.where(many, np.sqrt(np.clip(2 * (diag - off), 0.0, None)), np.nan)
        pairs = np.outer(K, K)
        np.fill_diagonal(cross, 0.0)
        within = np.where(many, K * (K - 1) * off, 0.0)
        mean = cross.copy()
        np.fill_diagonal(mean, np.where(many, off, 0.0))
        return cls(
            sizes=K.astype(int), norm2=diag, min_norm2=diag, cos=cos, dist=dist, cross_cos=cross_cos,
            fro2=float((K * diag**2).sum() + np.where(many, K * (K - 1) * off**2, 0.0).sum() + (pairs * cross**2).sum()),
            trace=float((K * diag).sum()), total=float((K * diag).sum() + within.sum() + (pairs * cross).sum()),
            block_mean=mean,
        )

    @property
    def K(self) -> int:
        return int(self.sizes.sum())

    def inner(self, other: "GramStats") -> float:
        """<G, S> for a Gram S that is constant on the blocks of the same groups (a reference geometry,
        or the model's block-symmetric optimum): it needs only G's block means."""
        K = self.sizes.astype(float)
        pairs = np.outer(K, K) - np.diag(K)  # ordered pairs of distinct classes in each block
        return float((K * self.norm2 * other.norm2).sum() + (pairs * self.block_mean * other.block_mean).sum())

    def distance(self, other: "GramStats") -> float:
        """|| G/||G||_F - S/||S||_F ||_F for S block-constant on the same groups (0: same shape)."""
        if self.fro2 <= 0 or other.fro2 <= 0:
            return float("nan")
        return float(np.sqrt(max(2.0 - 2.0 * self.inner(other) / np.sqrt(self.fro2 * other.fro2), 0.0)))

    def etf_distance(self) -> float:
        """|| G/||G||_F - E/||E||_F ||_F with E = I - 11^T/K, the simplex ETF Gram (0 = exact ETF)."""
        if self.fro2 <= 0:
            return float("nan")
        inner = (self.trace - self.total / self.K) / np.sqrt(self.fro2 * (self.K - 1))
        return float(np.sqrt(max(2.0 - 2.0 * inner, 0.0)))


def normalized_distance(A, B) -> float:
    """|| A/||A||_F - B/||B||_F ||_F for two Gram matrices of the same classes (0: same shape up to scale;
    nan when either is zero)."""
    A, B = np.asarray(A, dtype=float), np.asarray(B, dtype=float)
    a, b = np.linalg.norm(A), np.linalg.norm(B)
    if a <= 0 or b <= 0:
        return float("nan")
    return float(np.linalg.norm(A / a - B / b))
