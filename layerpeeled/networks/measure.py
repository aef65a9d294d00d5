"""What a network's training run records: accuracies, NC1-NC4, classifier geometry per group
(through the same functions as the model solutions), the measured energies E_W, E_H, and the
distance of its geometry to its model twin: the LPM optimum with the same class counts, energies,
loss and classifier (SPEC §3)."""
from __future__ import annotations

import numpy as np
import torch

from ..geometry.gram import GramStats, normalized_distance
from ..geometry.neural_collapse import class_means, nc_metrics
from ..geometry.report import group_geometry
from ..imbalance import model_counts, step_groups


@torch.no_grad()
def _features(model, x, batch: int = 1000):
    model.eval()
    feats, logits = [], []
    for i in range(0, len(x), batch):
        h = model.features(x[i:i + batch])
        feats.append(h.double().cpu())
        logits.append(model.classifier(h).double().cpu())
    return torch.cat(feats).numpy(), torch.cat(logits).numpy()


def _accuracies(prefix: str, pred, y, K: int, KA: int) -> dict:
    out = {f"{prefix}_acc": float(np.mean(pred == y))}
    groups = step_groups(K, KA) + [[]]  # no minority group when K_A = K
    for name, classes in zip(("majority", "minority"), groups):
        mask = np.isin(y, classes)
        out[f"{prefix}_acc_{name}"] = float(np.mean(pred[mask] == y[mask])) if mask.any() else None
    for k in range(K):
        m = y == k
        out[f"{prefix}_acc_class{k}"] = float(np.mean(pred[m] == y[m])) if m.any() else None
    return out


def classifier_geometry(W: np.ndarray, KA: int, counts, H_means: np.ndarray | None = None):
    """Majority/minority geometry of classifier rows W (and class means), as for model solutions."""
    groups = step_groups(W.shape[0], KA)
    gcounts = [float(np.mean([counts[k] for k in g])) for g in groups]
    h_stats = None if H_means is None or np.isnan(H_means).any() else GramStats.from_matrix(H_means @ H_means.T, groups)
    return group_geometry(gcounts, GramStats.from_matrix(W @ W.T, groups), h_stats)


def model_twin(counts, EH: float, EW: float, loss: str = "cross-entropy", classifier: str = "learned", weights=None):
    """The constrained LPM a network is compared with: its class counts as the model sees them
    (:func:`layerpeeled.imbalance.model_counts`), its measured E_H and E_W, its loss and its
    classifier. None where the energies are beyond what double precision resolves (a run whose
    norms blew up has no twin)."""
    from ..problem import LPMProblem, resolvable_energies

    counts = model_counts(counts, weights)
    if not resolvable_energies(len(counts), EH, EW):
        return None
    return LPMProblem(tuple(counts.tolist()), EH, EW, loss, classifier)


def twin_distances(W: np.ndarray, means: np.ndarray, counts, EH: float, EW: float, loss: str, classifier: str,
                   weights=None) -> dict:
    """Distances of the classifier Gram W W^T and of the centred class-mean Gram C M M^T C
    (C = I - 11^T/K: a network's features carry a common offset that its bias absorbs) to those of the
    model twin (None where the twin does not exist, e.g. energies so large that every loss underflows,
    or where a class has no examples and hence no mean)."""
    from ..solvers import solve

    out = {"w_model_distance": None, "h_model_distance": None}
    twin = model_twin(counts, EH, EW, loss, classifier, weights)
    if twin is None:
        return out
    Wm, Hm = solve(twin).factors()
    out["w_model_distance"] = normalized_distance(W @ W.T, Wm @ Wm.T)
    if not np.isnan(means).any():
        C = np.eye(len(means)) - 1.0 / len(means)
        out["h_model_distance"] = normalized_distance(C @ means @ means.T @ C, C @ Hm @ Hm.T @ C)
    return out


def measure(model, data, whole_test: bool = True) -> dict:
    """One record of measurements on the training subset and the test set (``whole_test=False``:
    on its fixed stratified probe ``data.probe`` only; ``test_examples`` says which)."""
    H, logits = _features(model, data.x)
    y = data.y.cpu().numpy()
    test_x, test_y = (data.test_x, data.test_y) if whole_test else (data.test_x[data.probe], data.test_y[data.probe])
    _, test_logits = _features(model, test_x)
    ty = test_y.cpu().numpy()
    W = model.classifier.weight.detach().double().cpu().numpy()
    b = model.classifier.bias.detach().double().cpu().numpy()
    rec = {**_accuracies("train", logits.argmax(1), y, data.K, data.KA),
           **_accuracies("test", test_logits.argmax(1), ty, data.K, data.KA),
           **nc_metrics(H, y, W, b, predictions=logits.argmax(1))}
    means, counts = class_means(H, y, data.K)
    present = counts > 0
    sq = np.zeros(data.K)
    np.add.at(sq, y, (H**2).sum(1))
    rec["EW"] = float((W**2).sum(1).mean())
    rec["EH"] = float((sq[present] / counts[present]).mean())  # (1/K) sum_k (1/n_k) sum_i |h_ki|^2
    rec.update(classifier_geometry(W, data.KA, data.counts, means).flat())
    rec["class_counts"] = data.counts.tolist()
    if np.any(data.weights != 1):
        rec["class_weights"] = data.weights.tolist()
    rec.update(twin_distances(W, means, data.counts, rec["EH"], rec["EW"], data.loss, data.classifier,
                              data.weights))
    rec["test_examples"] = int(len(ty))
    return rec
