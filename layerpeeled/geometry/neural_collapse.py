"""Papyan-Han-Donoho neural-collapse metrics NC1-NC4 on features, imbalance-aware (SPEC §3).

Weighting (reported with the numbers): every class counts equally. The global mean is the mean of
the class means, Sigma_B = (1/K) sum_k (mu_k - mu)(mu_k - mu)^T and Sigma_W = (1/K) sum_k Cov_k,
with Cov_k the within-class covariance of class k (1/n_k normalisation). An example-weighted
global mean would let the majority define the centre and hide the minority's geometry. Classes
without examples (R = inf) have no mean and are left out of NC1-NC4.
"""
from __future__ import annotations

import numpy as np

WEIGHTING = "class-balanced: global mean = mean of class means; Sigma_B, Sigma_W averaged over classes"


def class_means(features: np.ndarray, labels: np.ndarray, num_classes: int):
    """Class means (K x p; NaN rows for absent classes) and the per-class counts."""
    counts = np.bincount(labels, minlength=num_classes)
    sums = np.zeros((num_classes, features.shape[1]))
    np.add.at(sums, labels, features)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts[:, None], counts


def _cosines(A: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(A, axis=1)
    C = (A @ A.T) / np.outer(n, n)
    return C[~np.eye(len(A), dtype=bool)]


def nc_metrics(features, labels, W, b=None, predictions=None) -> dict:
    """NC1-NC4 for features (n x p) with labels, classifier W (K x p) and bias b.

    ``predictions`` (the network's own argmax) defaults to argmax(features W^T + b).
    """
    features = np.asarray(features, dtype=float)
    labels = np.asarray(labels)
    W = np.asarray(W, dtype=float)
    K = W.shape[0]
    means, counts = class_means(features, labels, K)
    present = counts > 0
    mu = means[present]
    Wp = W[present]
    Kp = int(present.sum())
    centre = mu.mean(0)
    Mc = mu - centre
    Sb = Mc.T @ Mc / Kp
    dev = features - means[labels]
    Sw = np.zeros_like(Sb)
    for k in np.flatnonzero(present):  # class-balanced within-class covariance
        d = dev[labels == k]
        Sw += d.T @ d / (counts[k] * Kp)
    nc1 = float(np.trace(Sw @ np.linalg.pinv(Sb, rcond=1e-10)) / Kp)
    mnorm, wnorm = np.linalg.norm(Mc, axis=1), np.linalg.norm(Wp, axis=1)
    cm, cw = _cosines(Mc), _cosines(Wp)
    Mt = Mc.T  # p x K: columns are centred class means
    nc3 = float(np.linalg.norm(Wp.T / np.linalg.norm(Wp) - Mt / np.linalg.norm(Mt)))
    logits = features @ W.T + (0 if b is None else np.asarray(b))
    pred = np.argmax(logits, 1) if predictions is None else np.asarray(predictions)
    dists = (mu**2).sum(1)[None, :] - 2 * features @ mu.T  # + |h|^2, the same for every class
    ncc = np.flatnonzero(present)[np.argmin(dists, 1)]
    return {
        "nc1": nc1,
        "nc2_norm_means": float(mnorm.std() / mnorm.mean()),
        "nc2_norm_classifier": float(wnorm.std() / wnorm.mean()),
        "nc2_cos_std_means": float(cm.std()), "nc2_cos_std_classifier": float(cw.std()),
        "nc2_etf_cos_means": float(np.abs(cm + 1 / (Kp - 1)).mean()),
        "nc2_etf_cos_classifier": float(np.abs(cw + 1 / (Kp - 1)).mean()),
        "nc3": nc3,
        "nc4": float(np.mean(pred != ncc)),
        "nc_classes": Kp,
        "nc_weighting": WEIGHTING,
    }
