"""SELI and the distances to reference geometries (SPEC §3), against their defining formulas."""
import numpy as np
import pytest

from layerpeeled.geometry.gram import GramStats
from layerpeeled.geometry.reference import seli
from layerpeeled.problem import LPMProblem
from layerpeeled.solvers import solve


def sqrtm(A):
    """The PSD square root by eigendecomposition (A^T A-type matrices are singular here)."""
    w, V = np.linalg.eigh(A)
    return (V * np.sqrt(np.clip(w, 0.0, None))) @ V.T


def _groups(counts):
    out = {}
    for k, n in enumerate(counts):
        out.setdefault(n, []).append(k)
    return list(out.values()), list(out)


@pytest.mark.parametrize("counts", [[3, 3, 2, 1, 1], [4, 4, 4, 4], [5, 1, 1, 1], [2, 3, 5, 7]])
def test_seli_matches_its_defining_formula(counts):
    K, N = len(counts), sum(counts)
    Y = np.zeros((K, N))
    Y[np.repeat(np.arange(K), counts), np.arange(N)] = 1.0
    Zhat = (np.eye(K) - 1.0 / K) @ Y  # simplex-encoded labels
    W = (sqrtm(Zhat @ Zhat.T))
    means = (Y / np.array(counts)[:, None]) @ (sqrtm(Zhat.T @ Zhat)) @ (Y / np.array(counts)[:, None]).T
    groups, gcounts = _groups(counts)
    w, h = seli([len(g) for g in groups], gcounts)
    for full, block in ((W, w), (means, h)):
        stats = GramStats.from_matrix(full, groups)
        scale = stats.trace / block.trace
        assert np.allclose(stats.norm2, scale * block.norm2, atol=1e-9)
        assert np.allclose(stats.block_mean, scale * block.block_mean, atol=1e-9)
        assert stats.distance(block) < 1e-7


def test_distances_to_references():
    balanced = solve(LPMProblem([50.0] * 5, 5.0, 1.0)).geometry
    assert balanced.w_etf_distance < 1e-7 and balanced.w_seli_distance < 1e-7  # SELI = ETF when balanced
    P = LPMProblem([600] * 3 + [60] * 3 + [6] * 4, 5.0, 1.0)
    red, dense = solve(P, "reduced", tol=1e-11).geometry, solve(P, "first-order", tol=1e-11).geometry
    assert red.w_seli_distance == pytest.approx(dense.w_seli_distance, abs=1e-6) and red.w_seli_distance > 1e-3
    assert red.h_seli_distance == pytest.approx(dense.h_seli_distance, abs=1e-6)
    # the block formula of <G, S> against a full K x K computation
    rng = np.random.default_rng(0)
    A = rng.normal(size=(10, 6))
    groups, gcounts = _groups([600] * 3 + [60] * 3 + [6] * 4)
    G, (S, _) = A @ A.T, seli([len(g) for g in groups], gcounts)
    Sfull = np.zeros((10, 10))
    for a, ia in enumerate(groups):
        for b, ib in enumerate(groups):
            Sfull[np.ix_(ia, ib)] = S.block_mean[a, b]
        Sfull[ia, ia] = S.norm2[a]
    exact = np.linalg.norm(G / np.linalg.norm(G) - Sfull / np.linalg.norm(Sfull))
    assert GramStats.from_matrix(G, groups).distance(S) == pytest.approx(exact, rel=1e-10)
