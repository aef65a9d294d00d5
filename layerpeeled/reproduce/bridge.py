"""The bridge from trained networks to the model: for every network, the minority geometry that
three calibrations of the LPM predict, set beside what was measured.

- ``measured``: the constrained LPM at the network's measured E_W = mean |w_k|^2 and E_H = mean
  over classes of the mean |h|^2, with its class counts;
- ``weight-decay``: the penalized LPM at the run's own weight decay, lambda_W = lambda_H = wd,
  and its bias decayed by wd as in training (SGD decays every parameter alike);
- ``fitted``: the constrained LPM at one effective E_H E_W for the whole series, fitted to the
  other runs' minority cosines and judged on the held-out run (leave-one-out);
- ``fitted-decay``: the penalized LPM at one effective weight decay (lambda_W = lambda_H = lambda_b)
  for the whole series, fitted and judged the same way.
A vanished minority in the model (cosine undefined, the limit of full collapse) counts as cosine
1 when errors are taken.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..imbalance import INF_SURROGATE
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


def _counts(record: dict) -> tuple:
    counts = np.asarray(record["class_counts"], dtype=float)
    if (counts == 0).any():
        counts[counts == 0] = counts.max() / INF_SURROGATE
    return tuple(counts.tolist())


def compared(flat: dict) -> dict:
    """The quantities the bridge compares, from flat geometry fields (a model's or a network's)."""
    out = {k: flat.get(k) for k in COMPARED[:3]}
    minority, majority = flat.get("minority_w_norm2"), flat.get("majority_w_norm2")
    out["norm_ratio"] = None if minority is None or not majority else minority / majority
    out["minority_vanished"] = flat.get("minority_vanished")
    return out


_PREDICTIONS: dict = {}  # a series' fitted calibration solves the same problems for every held-out run


def _predict(problem) -> dict:
    key = (tuple(problem.counts.tolist()), tuple(problem.describe().items()))
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


def model_problem(record: dict, calibration: str, weight_decay: float | None = None, product: float | None = None):
    """The LPM a calibration solves for one network record (``product``: the fitted parameter)."""
    counts = _counts(record)
    if calibration == "measured":
        return LPMProblem(counts, record["EH"], record["EW"])
    if calibration == "weight-decay":
        return PenalizedLPM(counts, weight_decay, weight_decay, weight_decay)
    if calibration == "fitted":
        return LPMProblem(counts, product, 1.0)
    if calibration == "fitted-decay":
        return PenalizedLPM(counts, product, product, product)
    raise ValueError(f"calibration must be one of {list(CALIBRATIONS)}, got {calibration!r}")


def bridge(record: dict, weight_decay: float) -> dict:
    """The measured and weight-decay calibrations of one network record, next to its measurement."""
    meas = compared(record)
    pred = {c: _predict(model_problem(record, c, weight_decay)) for c in ("measured", "weight-decay")}
    return {"EH": record["EH"], "EW": record["EW"], "measured": meas, "predicted": pred,
            "abs_error": {c: _errors(p, meas) for c, p in pred.items()}}


def fit_product(records: list[dict], calibration: str = "fitted") -> float:
    """The parameter of a fitted calibration (on its grid in :data:`FITS`) whose predicted minority
    cosines are closest to the measured ones on average over ``records``."""
    def loss(value):
        errs = [_errors(_predict(model_problem(r, calibration, product=value)), compared(r)).get("minority_w_cos")
                for r in records]
        errs = [e for e in errs if e is not None]
        return np.mean(errs) if errs else np.inf

    return float(min(FITS[calibration], key=loss))


def bridge_series(records: list[dict]) -> list[dict]:
    """Every calibration for every run of a series (records carry their ``config``): the fitted ones
    leave-one-out, so each run is predicted by a parameter fitted without it (nor its other seeds)."""
    from .scales import without_seed

    out = []
    for rec in records:
        b = bridge(rec, rec["config"]["weight_decay"])
        others = [r for r in records if without_seed(r["config"]) != without_seed(rec["config"])] or records
        for calibration, key in (("fitted", "fitted_product"), ("fitted-decay", "fitted_decay")):
            value = fit_product(others, calibration)
            b[key] = value
            b["predicted"][calibration] = _predict(model_problem(rec, calibration, product=value))
            b["abs_error"][calibration] = _errors(b["predicted"][calibration], b["measured"])
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
    return {"config": config, "epoch": record["epoch"], **bridge(record, config["weight_decay"])}


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
