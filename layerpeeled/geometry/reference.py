"""Reference geometries to measure a solution or a network against (SPEC §3).

SELI (Thrampoulidis et al. 2022): with the simplex-encoded labels Z = (I - 11^T/K) Y (Y the K x N
one-hot labels), W^T W is proportional to (Z Z^T)^{1/2} and H^T H to (Z^T Z)^{1/2}. With D = diag(n_k)
and C = I - 11^T/K these are (C D C)^{1/2} for the classifiers and, for the class means,
D^{-1/2} (D^{1/2} C D^{1/2})^{1/2} D^{-1/2}. Both are constant on the blocks of classes with equal
counts, so they are computed in the block algebra of the reduced solver (G x G matrices, any K):
A = sum_g a_g Pi_g + sum_gh M_gh u_g u_h^T, with Pi_g the zero-sum projector of group g and
u_g = 1_g / sqrt(K_g); products and square roots act on a and M separately.
"""
from __future__ import annotations

import numpy as np

from .gram import GramStats


def _sqrtm(M: np.ndarray) -> np.ndarray:
    w, V = np.linalg.eigh(0.5 * (M + M.T))
    return (V * np.sqrt(np.clip(w, 0.0, None))) @ V.T


def _stats(sizes, a, M) -> GramStats:
    K = np.asarray(sizes, dtype=float)
    base = np.diag(M) / K
    return GramStats.from_blocks(K, a * (1 - 1 / K) + base, base - a / K, M / np.sqrt(np.outer(K, K)))


def seli(sizes, counts) -> tuple[GramStats, GramStats]:
    """Block statistics of the SELI classifier Gram and class-mean feature Gram for groups of
    ``sizes`` classes with ``counts`` examples each (unit scale: distances are scale-free)."""
    K, n = np.asarray(sizes, dtype=float), np.asarray(counts, dtype=float)
    v = np.sqrt(K / K.sum())
    C = np.eye(K.size) - np.outer(v, v)
    W = _stats(K, np.sqrt(n), _sqrtm(C @ np.diag(n) @ C))
    root = np.sqrt(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = np.where(n > 0, 1.0 / root, 0.0)
    H = _stats(K, root * inv**2, np.outer(inv, inv) * _sqrtm(np.outer(root, root) * C))
    return W, H
