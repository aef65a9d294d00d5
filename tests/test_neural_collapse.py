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


def _reference_nc(H, y, W, b):
    """NC1-NC4 written out class by class from SPEC §3 (class-balanced weighting), independently of
    the vectorised implementation: loops, explicit outer products, an eigendecomposition for Sigma_B^+."""
    K = W.shape[0]
    present = [k for k in range(K) if np.any(y == k)]
    Kp = len(present)
    mu = {k: H[y == k].mean(axis=0) for k in present}
    centre = sum(mu[k] for k in present) / Kp
    Sb = sum(np.outer(mu[k] - centre, mu[k] - centre) for k in present) / Kp
    Sw = sum(sum(np.outer(h - mu[k], h - mu[k]) for h in H[y == k]) / np.sum(y == k) for k in present) / Kp
    lam, V = np.linalg.eigh(Sb)
    keep = lam > 1e-10 * lam.max()
    Sb_pinv = (V[:, keep] / lam[keep]) @ V[:, keep].T
    out = {"nc1": np.trace(Sw @ Sb_pinv) / Kp}
    M = np.array([mu[k] - centre for k in present])
    Wp = W[present]
    for name, A in (("means", M), ("classifier", Wp)):
        norms = np.array([np.linalg.norm(a) for a in A])
        out[f"nc2_norm_{name}"] = norms.std() / norms.mean()
        cos = [A[i] @ A[j] / (norms[i] * norms[j]) for i in range(Kp) for j in range(Kp) if i != j]
        out[f"nc2_cos_std_{name}"] = np.std(cos)
        out[f"nc2_etf_cos_{name}"] = np.mean([abs(c + 1 / (Kp - 1)) for c in cos])
    out["nc3"] = np.linalg.norm(Wp / np.linalg.norm(Wp) - M / np.linalg.norm(M))
    disagree = 0
    for h, label in zip(H, y):
        net = int(np.argmax(W @ h + b))
        nearest = present[int(np.argmin([np.linalg.norm(h - mu[k]) for k in present]))]
        disagree += net != nearest
    out["nc4"] = disagree / len(y)
    return out


@pytest.mark.parametrize("absent", [False, True])
def test_matches_an_independent_implementation_on_imbalanced_data(rng, absent):
    counts = [40, 40, 40, 6, 3] + ([0] if absent else [2])
    feats, labels, M = _collapsed(6, 9, counts, rng, noise=1.2)
    W = M + 0.8 * rng.normal(size=M.shape)
    b = 0.3 * rng.normal(size=6)
    ours = nc_metrics(feats, labels, W, b)
    ref = _reference_nc(feats, labels, W, b)
    for key, value in ref.items():
        assert np.isclose(ours[key], value, rtol=1e-9, atol=1e-12), key
    assert ours["nc_classes"] == (5 if absent else 6) and 0 < ours["nc4"] < 1  # the metrics are not trivially 0
