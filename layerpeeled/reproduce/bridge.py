"""The bridge from trained networks to the model: for every network, the minority geometry that
four calibrations of the LPM predict, set beside what was measured. Every calibration models the
run's class counts (times its loss factors when it re-weights the minority), its loss and its
classifier (a fixed-ETF run is compared with the fixed-ETF model).

- ``measured``: the constrained LPM at the network's measured E_W = mean |w_k|^2 and E_H = mean
  over classes of the mean |h|^2 (the run's model twin);
- ``weight-decay``: the penalized LPM at the run's own weight decay, lambda_W = lambda_H = wd,
  and its bias decayed by wd as in training (SGD decays every parameter alike);
- ``fitted``: the constrained LPM at one effective E_H E_W for the whole series, fitted to the
  other runs' minority cosines and judged on the held-out run (leave-one-out);
- ``fitted-decay``: the penalized LPM at one effective weight decay (lambda_W = lambda_H = lambda_b)
  for the whole series, fitted and judged the same way.
The penalized calibrations need a learned classifier and, with the network's bias, a loss unchanged
when all logits shift (not ``vs``/``cdt``); other runs go without them. A vanished minority in the model (cosine undefined, the limit of full collapse) counts as cosine
1 when errors are taken.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..imbalance import model_counts
from ..losses import parse_loss
from ..networks.measure import model_twin
from ..problem import LPMProblem, PenalizedLPM
from ..solvers import solve

COMPARED = ("minority_w_cos", "majority_w_cos", "between_cos", "norm_ratio")
CALIBRATIONS = {
    "measured": "constrained LPM at the measured E_H, E_W",
    "weight-decay": "penalized LPM at the run's weight decay",
    "fitted": "constrained LPM at one fitted E_H E_W (leave-one-out)",
    "fitted-decay": "penalized LPM at one fitted weight decay (leave-one-out)",
}
FITS = {  # the one parameter each fitted calibration searches, on a log grid
    "fitted": np.logspace(-1, 3, 41),  # E_H E_W
    "fitted-decay": np.logspace(-5, -1, 41),  # lambda_W = lambda_H = lambda_b
}


def compared(flat: dict) -> dict:
    """The quantities the bridge compares, from flat geometry fields (a model's or a network's)."""
    out = {k: flat.get(k) for k in COMPARED[:3]}
    minority, majority = flat.get("minority_w_norm2"), flat.get("majority_w_norm2")
    out["norm_ratio"] = None if minority is None or not majority else minority / majority
    out["minority_vanished"] = flat.get("minority_vanished")
    return out


_PREDICTIONS: dict = {}  # a series' fitted calibration solves the same problems for every held-out run


def _predict(problem) -> dict | None:
    if problem is None:
        return None
    key = (tuple(problem.counts.tolist()), tuple(problem.describe().items()), problem.loss.spec)
    if key not in _PREDICTIONS:
        _PREDICTIONS[key] = compared(solve(problem).geometry.flat())
    return _PREDICTIONS[key]


def _errors(pred: dict, meas: dict) -> dict:
    def value(d, key):
        if key == "minority_w_cos" and d.get("minority_vanished"):
            return 1.0  # full collapse: the limit of the cosine as the classifiers shrink together
        return d[key]

    pairs = {k: (value(pred, k), value(meas, k)) for k in COMPARED}
    return {k: abs(a - b) for k, (a, b) in pairs.items() if a is not None and b is not None}


def model_problem(record: dict, config: dict, calibration: str, product: float | None = None):
    """The LPM a calibration solves for one network record of a run with training configuration
    ``config`` (JSON, as in config.json); ``product``: the fitted parameter. None where the
    calibration does not apply to the run (module docstring) or, for ``measured``, where the run's
    energies are beyond what the model resolves in double precision."""
    if calibration not in CALIBRATIONS:
        raise ValueError(f"calibration must be one of {list(CALIBRATIONS)}, got {calibration!r}")
    loss, classifier = config.get("loss", "cross-entropy"), config.get("classifier", "learned")
    weights = record.get("class_weights")
    if calibration == "measured":
        return model_twin(record["class_counts"], record["EH"], record["EW"], loss, classifier, weights)
    counts = tuple(model_counts(record["class_counts"], weights).tolist())
    if calibration == "fitted":
        return LPMProblem(counts, product, 1.0, loss, classifier)
    if classifier != "learned" or not parse_loss(loss).shift_invariant:
        return None
    decay = config["weight_decay"] if calibration == "weight-decay" else product
    return PenalizedLPM(counts, decay, decay, decay, loss)


def bridge(record: dict, config: dict) -> dict:
    """The measured and weight-decay calibrations of one network record, next to its measurement."""
    meas = compared(record)
    pred = {c: _predict(model_problem(record, config, c)) for c in ("measured", "weight-decay")}
    pred = {c: p for c, p in pred.items() if p is not None}
    return {"EH": record["EH"], "EW": record["EW"], "measured": meas, "predicted": pred,
            "abs_error": {c: _errors(p, meas) for c, p in pred.items()}}


def fit_product(records: list[dict], calibration: str = "fitted") -> float | None:
    """The parameter of a fitted calibration (on its grid in :data:`FITS`) whose predicted minority
    cosines are closest to the measured ones on average over ``records`` (which carry their
    ``config``); None when the calibration applies to none of them."""
    def loss(value):
        preds = [(_predict(model_problem(r, r["config"], calibration, value)), r) for r in records]
        errs = [_errors(p, compared(r)).get("minority_w_cos") for p, r in preds if p is not None]
        errs = [e for e in errs if e is not None]
        return np.mean(errs) if errs else np.inf

    best = min(FITS[calibration], key=loss)
    return None if np.isinf(loss(best)) else float(best)


def bridge_series(records: list[dict]) -> list[dict]:
    """Every calibration for every run of a series (records carry their ``config``): the fitted ones
    leave-one-out, so each run is predicted by a parameter fitted without it (nor its other seeds)."""
    from .scales import without_seed

    out = []
    for rec in records:
        b = bridge(rec, rec["config"])
        others = [r for r in records if without_seed(r["config"]) != without_seed(rec["config"])] or records
        for calibration, key in (("fitted", "fitted_product"), ("fitted-decay", "fitted_decay")):
            value = fit_product(others, calibration)
            b[key] = value
            pred = None if value is None else _predict(model_problem(rec, rec["config"], calibration, value))
            if pred is not None:
                b["predicted"][calibration] = pred
                b["abs_error"][calibration] = _errors(pred, b["measured"])
        out.append(b)
    return out


def bridge_run(run_folder) -> dict:
    """The measured and weight-decay calibrations for a finished run folder of ``lpm train``."""
    folder = Path(run_folder)
    path = folder / "records.json"
    if not path.is_file():
        raise FileNotFoundError(f"{folder} holds no finished training run (no records.json)")
    config = json.loads((folder / "config.json").read_text())
    record = json.loads(path.read_text())[-1]
    return {"config": config, "epoch": record["epoch"], **bridge(record, config)}


def mean_errors(bridges: list[dict]) -> dict:
    """{calibration: {quantity: mean absolute error over the runs where both are defined}}."""
    out = {}
    for c in CALIBRATIONS:
        per = {}
        for key in COMPARED:
            errs = [b["abs_error"][c][key] for b in bridges if c in b["abs_error"] and key in b["abs_error"][c]]
            if errs:
                per[key] = float(np.mean(errs))
        if per:
            out[c] = per
    return out


def summarise(bridges: list[dict]) -> str:
    """How close each calibration came, and which came closest on the minority cosine, in words."""
    table = mean_errors(bridges)
    if not table:
        return "no comparable quantities"
    parts = [f"{CALIBRATIONS[c]}: mean |model - network| minority cosine "
             f"{e.get('minority_w_cos', float('nan')):.3f}, majority cosine {e.get('majority_w_cos', float('nan')):.3f}, "
             f"norm ratio {e.get('norm_ratio', float('nan')):.3f}" for c, e in table.items()]
    ranked = sorted((e["minority_w_cos"], c) for c, e in table.items() if "minority_w_cos" in e)
    if ranked:
        parts.append(f"closest on the minority cosine over {len(bridges)} runs: {CALIBRATIONS[ranked[0][1]]}")
    return "; ".join(parts)
