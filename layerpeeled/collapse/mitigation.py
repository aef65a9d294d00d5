"""Oversampling and loss re-weighting of the minority (SPEC §2.7).

Repeating each minority example w_r times, or multiplying its loss by w_r, leaves the per-class
feature budget unchanged and multiplies the minority's weight in the mean loss by w_r: the LPM
becomes the one with counts n_B * w_r, i.e. ratio R / w_r. Both routes therefore share one formula.
"""
from __future__ import annotations

import numpy as np

MITIGATIONS = ("oversample", "reweight")


def effective_counts(counts, wr: float, minority, how: str = "oversample") -> np.ndarray:
    """Class counts of the LPM after oversampling (or re-weighting the loss of) ``minority`` by ``wr``."""
    if how not in MITIGATIONS:
        raise ValueError(f"mitigation must be one of {MITIGATIONS}, got {how!r}")
    wr = float(wr)
    if not np.isfinite(wr) or wr < 1:
        raise ValueError(f"the oversampling factor w_r must be a finite number >= 1, got {wr!r}")
    out = np.array(counts, dtype=float)
    out[minority] *= wr
    return out


def min_oversampling(R: float, onset: float | None) -> float:
    """Smallest w_r keeping the minority out of collapse at ratio R: collapse needs R / w_r >= onset,
    so any w_r above R / onset avoids it (1 when R is already below the onset or there is none)."""
    if onset is None or R < onset:
        return 1.0
    return R / onset
