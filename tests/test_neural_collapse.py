import numpy as np
import pytest

from layerpeeled.geometry.neural_collapse import nc_metrics


def _etf(K, p, rng):
    Q, _ = np.linalg.qr(rng.normal(size=(p, K)))
    return (np.eye(K) - 1 / K) @ Q.T * np.sqrt(K / (K - 1))  # K x p, unit norms, cos -1/(K-1)


def _collapsed(K, p, counts, rng, noise=0.0):
    M = _etf(K, p, rng) * 3.0
    labels = np.repeat(np.arange(K), counts)
    feats = M[labels] + noise * rng.normal(size=(len(labels), p))
    return feats, labels, M


@pytest.mark.parametrize("counts", [[5] * 4, [20, 20, 3, 3]])
def test_zero_on_exact_simplex_etf(rng, counts):
    feats, labels, M = _collapsed(4, 6, counts, rng)
    m = nc_metrics(feats, labels, W=2.0 * M / 3.0)
    for key in ("nc1", "nc2_norm_means", "nc2_norm_classifier", "nc2_cos_std_means", "nc2_etf_cos_means",
                "nc2_etf_cos_classifier", "nc3", "nc4"):
        assert abs(m[key]) < 1e-10, key


def test_invariant_to_rotation_and_scaling(rng):
    feats, labels, M = _collapsed(5, 8, [30, 30, 30, 4, 4], rng, noise=0.5)
    W = rng.normal(size=(5, 8))
    b = rng.normal(size=5)
    base = nc_metrics(feats, labels, W, b)
    Q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    turned = nc_metrics(3.0 * feats @ Q, labels, 0.5 * W @ Q, 1.5 * b)
    for key, v in base.items():
        if isinstance(v, float):
            assert np.isclose(v, turned[key], rtol=1e-8, atol=1e-12), key
    assert base["nc1"] > 0.01 and base["nc3"] > 0.1


def test_noise_raises_nc1_and_absent_classes_are_skipped(rng):
    feats, labels, M = _collapsed(4, 6, [10, 10, 10, 10], rng, noise=0.3)
    noisy = nc_metrics(feats, labels, M)
    assert noisy["nc1"] > 1e-3
    keep = labels < 3  # class 3 has no examples (R = inf)
    m = nc_metrics(feats[keep], labels[keep], M)
    assert m["nc_classes"] == 3 and np.isfinite(m["nc1"])
