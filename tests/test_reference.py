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


@pytest.mark.parametrize("spec", ["cross-entropy", "la:tau=1"])
def test_fixed_etf_model_against_a_direct_convex_solve(spec):
    """Classifier held at the ETF of energy E_W; cvxpy over the class-mean features themselves."""
    import cvxpy as cp

    from layerpeeled.losses import parse_loss

    counts, EH, EW = np.array([300.0] * 3 + [30.0] * 2 + [3.0] * 2), 3.0, 2.0
    K = counts.size
    P = LPMProblem(counts, EH, EW, spec, classifier="etf")
    r = solve(P, tol=1e-10)
    B = np.linalg.qr(np.eye(K) - 1.0 / K)[0][:, : K - 1]
    W = np.sqrt(EW * K / (K - 1)) * B  # rows: a simplex ETF with |w_k|^2 = E_W
    H = cp.Variable((K, K - 1))
    Z, w, loss = H @ W.T, counts / counts.sum(), parse_loss(spec)
    obj = sum(w[k] * loss.cvxpy_row(Z[k, :], k, counts) for k in range(K))
    prob = cp.Problem(cp.Minimize(obj), [cp.sum_squares(H) <= K * EH])
    prob.solve(solver="CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
    assert r.value == pytest.approx(prob.value, rel=1e-6) and r.value - prob.value <= r.gap + 1e-8
    Wr, Hr = r.factors()
    assert np.allclose(Hr @ Wr.T, r.logits, atol=1e-10) and (Hr**2).sum() / K <= EH * (1 + 1e-9)
    assert np.allclose(Wr @ Wr.T, W @ W.T, atol=1e-12)
    ours, ref = r.geometry.groups, np.asarray(H.value) @ np.asarray(H.value).T
    assert ours[2].h_norm2 == pytest.approx(np.diag(ref)[5:].mean(), rel=1e-3, abs=1e-6)
    assert ours[0].w_cos == pytest.approx(-1 / (K - 1)) and r.geometry.w_etf_distance < 1e-12
