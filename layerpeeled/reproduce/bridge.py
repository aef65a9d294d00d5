"""The bridge from a trained network to the model: measure its E_W, E_H and class counts, solve
the matching LPM, and set the predicted minority geometry beside the measured one."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..imbalance import INF_SURROGATE
from ..problem import LPMProblem
from ..solvers import solve

COMPARED = ("minority_w_cos", "majority_w_cos", "between_cos", "norm_ratio")


def _counts(record: dict) -> np.ndarray:
    counts = np.asarray(record["class_counts"], dtype=float)
    if (counts == 0).any():
        counts[counts == 0] = counts.max() / INF_SURROGATE
    return counts


def compared(flat: dict) -> dict:
    """The quantities the bridge compares, from flat geometry fields (a model's or a network's)."""
    out = {k: flat.get(k) for k in COMPARED[:3]}
    minority, majority = flat.get("minority_w_norm2"), flat.get("majority_w_norm2")
    out["norm_ratio"] = None if minority is None or not majority else minority / majority
    out["minority_vanished"] = flat.get("minority_vanished")
    return out


def bridge(record: dict) -> dict:
    """Prediction of the LPM with the network's measured energies and counts, next to the measurement."""
    problem = LPMProblem(_counts(record), EH=record["EH"], EW=record["EW"])
    result = solve(problem)
    pred, meas = compared(result.geometry.flat()), compared(record)
    errors = {k: abs(pred[k] - meas[k]) for k in COMPARED if pred[k] is not None and meas[k] is not None}
    return {"EH": record["EH"], "EW": record["EW"], "value": result.value, "gap": result.gap,
            "method": result.method, "predicted": pred, "measured": meas, "abs_error": errors}


def bridge_run(run_folder) -> dict:
    """The bridge for a finished run folder of ``lpm train``."""
    folder = Path(run_folder)
    path = folder / "records.json"
    if not path.is_file():
        raise FileNotFoundError(f"{folder} holds no finished training run (no records.json)")
    config = json.loads((folder / "config.json").read_text())
    record = json.loads(path.read_text())[-1]
    return {"config": config, "epoch": record["epoch"], **bridge(record)}


def summarise(bridges: list[dict]) -> str:
    """One sentence on how close the model came, from mean absolute errors over runs."""
    parts = []
    for key in COMPARED:
        errs = [b["abs_error"][key] for b in bridges if key in b["abs_error"]]
        if errs:
            parts.append(f"{key.replace('_', ' ')}: mean |model - network| = {np.mean(errs):.3f} over {len(errs)} runs")
    return "; ".join(parts) if parts else "no comparable quantities"
