import mpmath
import numpy as np
import torch

from layerpeeled.losses import CrossEntropy

ce = CrossEntropy()


def _full(Z):
    return np.diag(Z).copy(), Z, 1.0 - np.eye(Z.shape[0])


def test_matches_naive_formula_and_gradient(rng):
    Z = rng.normal(size=(6, 6)) * 3
    loss, d_t, d_o = ce.rows(*_full(Z))
    naive = np.log(np.exp(Z).sum(1)) - np.diag(Z)
    assert np.allclose(loss, naive, rtol=1e-13)
    # gradient of row losses w.r.t. Z by central differences
    G = d_o + np.diag(d_t)
    eps = 1e-6
    for k, j in [(0, 0), (0, 3), (4, 2), (5, 5)]:
        E = np.zeros_like(Z)
        E[k, j] = eps
        num = (ce.rows(*_full(Z + E))[0][k] - ce.rows(*_full(Z - E))[0][k]) / (2 * eps)
        assert np.isclose(G[k, j], num, rtol=1e-7, atol=1e-10)


def test_tiny_and_huge_losses_keep_relative_precision():
    mpmath.mp.dps = 50
    for gap in [30.0, 200.0, 600.0, -600.0]:
        Z = np.array([[gap, 0.0, -1.0], [0.5, gap + 1, 0.0], [0.0, 0.0, gap]])
        loss, _, _ = ce.rows(*_full(Z))
        for k in range(3):
            ref = mpmath.log1p(sum(mpmath.exp(mpmath.mpf(z) - mpmath.mpf(Z[k, k])) for j, z in enumerate(Z[k]) if j != k))
            assert abs(loss[k] - float(ref)) <= 1e-14 * float(ref), (gap, k)


def test_multiplicities_equal_repeated_entries(rng):
    t = rng.normal(size=3)
    vals = rng.normal(size=(3, 2))
    mult = np.array([[2.0, 3.0], [1.0, 0.0], [4.0, 1.0]])
    loss, d_t, d_o = ce.rows(t, vals, mult)
    for r in range(3):
        row = np.concatenate([[t[r]], np.repeat(vals[r], mult[r].astype(int))])
        assert np.isclose(loss[r], np.log(np.exp(row).sum()) - t[r], rtol=1e-13)
    assert np.allclose(d_t + d_o.sum(1), 0.0)  # shift invariance of cross-entropy


def test_torch_and_numpy_agree(rng):
    Z = rng.normal(size=(5, 5))
    a = ce.rows(*_full(Z))
    b = ce.rows(*(torch.as_tensor(x) for x in _full(Z)))
    for x, y in zip(a, b):
        assert np.allclose(x, y.numpy(), rtol=1e-14)
