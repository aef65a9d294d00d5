"""SPEC §2 facts, each checked numerically rather than trusted."""
import numpy as np
import pytest

from layerpeeled import LPMProblem, solve
from layerpeeled.geometry.gram import GramStats
from layerpeeled.geometry.neural_collapse import class_means
from layerpeeled.losses import CrossEntropy
from layerpeeled.solvers.nuclear import logit_objective
from layerpeeled.solvers.reduced import BlockLogits, ReducedProgram
from layerpeeled.solvers.result import factorize


def test_fact1_class_means_never_do_worse(rng):
    """Replacing features by their class means keeps the per-class budget and does not raise the loss:
    checked with the package's loss and class means on random, unequal classes."""
    K, p = 4, 6
    counts = np.array([9, 5, 3, 2])
    labels = np.repeat(np.arange(K), counts)
    W = rng.normal(size=(K, p))
    feats = rng.normal(size=(labels.size, p)) * 2
    means, n = class_means(feats, labels, K)
    assert n.tolist() == counts.tolist()

    def loss(F):
        Z = F @ W.T
        return CrossEntropy().rows(Z[np.arange(labels.size), labels], Z, 1.0 - np.eye(K)[labels])[0].mean()

    def budget(F):  # (1/K) sum_k (1/n_k) sum_i |h_ki|^2
        return np.mean([(F[labels == k] ** 2).sum(1).mean() for k in range(K)])

    assert loss(means[labels]) <= loss(feats) - 1e-3  # strictly better here: the features are far from collapsed
    assert budget(means[labels]) <= budget(feats)


def test_fact3_nuclear_norm_is_the_cheapest_factorisation(rng):
    Z = rng.normal(size=(5, 5))
    nuc = np.linalg.svd(Z, compute_uv=False).sum()
    W, H = factorize(LPMProblem([1.0] * 5, EH=1.0, EW=1.0), Z)
    assert np.allclose(H @ W.T, Z) and np.isclose((W**2).sum() + (H**2).sum(), 2 * nuc)
    for _ in range(20):  # any other factorisation costs more
        A = rng.normal(size=(5, 5))
        B = np.linalg.solve(A, H).T  # H = A B^T... rewrite Z = (H) W^T = (A)(B^T W^T)
        H2, W2 = A, W @ B
        assert np.allclose(H2 @ W2.T, Z)
        assert (H2**2).sum() + (W2**2).sum() >= 2 * nuc - 1e-9


def test_fact3_grams_follow_the_svd():
    P = LPMProblem("9x2,1x3", EH=3.0, EW=0.5)
    r = solve(P, "first-order", tol=1e-11)
    U, s, Vh = np.linalg.svd(r.logits)
    W, H = r.factors()
    assert np.allclose(W @ W.T, np.sqrt(P.EW / P.EH) * (Vh.T * s) @ Vh, atol=1e-10)
    assert np.allclose(H @ H.T, np.sqrt(P.EH / P.EW) * (U * s) @ U.T, atol=1e-10)
    assert np.isclose(s.sum(), P.radius, rtol=1e-10)  # the constraint is active for cross-entropy


def test_fact5_block_nuclear_norm_and_losses(rng):
    P = LPMProblem([4.0, 4.0, 4.0, 1.0, 1.0, 2.5], 2, 1)
    prog = ReducedProgram(P)
    b, M = rng.normal(size=3), rng.normal(size=(3, 3))
    b[2] = 0.0  # the one-class group has no within-group part
    Z = BlockLogits(P, b, M).expand()
    K = prog.K
    a = b / np.maximum(K - 1, 1)
    e, d = (np.diag(M) - a) / K, (np.diag(M) - a) / K + a
    assert np.isclose(Z[0, 0], d[0]) and np.isclose(Z[0, 1], e[0]) and np.isclose(Z[3, 0], M[1, 0] / np.sqrt(6))
    # ||Z||_* = sum_g (K_g - 1)|d_g - e_g| + ||M||_*  (SPEC §2.5)
    assert np.isclose(np.linalg.svd(Z, compute_uv=False).sum(),
                      ((K - 1) * np.abs(d - e)).sum() + np.linalg.svd(M, compute_uv=False).sum())
    # the reduced objective and gradient equal the full ones
    x = np.concatenate([b, M.ravel()])
    f, g = prog.value_grad(x)
    F, G = logit_objective(P, Z)
    assert np.isclose(f, F, rtol=1e-13)
    assert np.isclose(np.linalg.svd(G, compute_uv=False)[0], prog.dual_norm(g))  # same certificate
    # class loss of group g: log(e^d + (K_g-1) e^e + sum_h K_h e^c) - d
    c = M / np.sqrt(np.outer(K, K))
    ell0 = np.log(np.exp(d[0]) + 2 * np.exp(e[0]) + 2 * np.exp(c[0, 1]) + np.exp(c[0, 2])) - d[0]
    Zr = Z[0]
    assert np.isclose(ell0, np.log(np.exp(Zr).sum()) - Zr[0])


def test_gram_stats_closed_form_equals_matrix(rng):
    sizes = np.array([3, 1, 4])
    diag, off = np.array([2.0, 1.5, 0.7]), np.array([-0.4, 0.0, 0.1])
    cross = rng.normal(size=(3, 3)) * 0.1
    cross = (cross + cross.T) / 2
    idx = np.repeat(np.arange(3), sizes)
    Gm = cross[np.ix_(idx, idx)]
    for g in range(3):
        ig = np.flatnonzero(idx == g)
        Gm[np.ix_(ig, ig)] = off[g]
        Gm[ig, ig] = diag[g]
    groups = [np.flatnonzero(idx == g) for g in range(3)]
    a, b = GramStats.from_matrix(Gm, groups), GramStats.from_blocks(sizes, diag, off, cross)
    for field in ["norm2", "cos", "dist", "cross_cos"]:
        assert np.allclose(getattr(a, field), getattr(b, field), equal_nan=True), field
    assert np.isclose(a.fro2, b.fro2) and np.isclose(a.total, b.total) and np.isclose(a.etf_distance(), b.etf_distance())


def test_geometry_flags_vanished_minority():
    r = solve(LPMProblem("10x5,1x5", EH=0.5, EW=1.0))  # small budget: the minority classifiers vanish
    minority = r.geometry.groups[1]
    assert minority.vanished and minority.w_cos is None and minority.w_norm2 == pytest.approx(0, abs=1e-12)
    assert r.geometry.w_cross_cos[0][1] is None
    assert not r.geometry.groups[0].vanished


def test_etf_distance_zero_only_for_etf(rng):
    K = 6
    E = np.eye(K) - 1 / K
    assert GramStats.from_matrix(3 * E, [range(K)]).etf_distance() < 1e-7
    A = rng.normal(size=(K, K))
    assert GramStats.from_matrix(A @ A.T, [range(K)]).etf_distance() > 0.1
