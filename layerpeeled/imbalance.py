"""Imbalance vocabulary in one place (SPEC §1): ratios R (R = inf: no minority examples), the
majority/minority split of step imbalance, integer subset counts for networks, and the counts the
model sees for a training set."""
from __future__ import annotations

import math

import numpy as np

INF_LABEL = "inf"  # how R = inf is spelled in configurations, records, tables and labels
INF_SURROGATE = 1e12  # the LPM needs counts > 0: R = inf (no minority examples) is solved as this ratio


def parse_ratio(value, name: str = "R", allow_inf: bool = True) -> float:
    """A ratio R >= 1 from a number or text; ``inf`` (when allowed) means no minority examples."""
    try:
        R = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number >= 1{' or inf' if allow_inf else ''}, got {value!r}") from None
    if math.isnan(R) or R < 1 or (math.isinf(R) and not allow_inf):
        need = "a number >= 1 (or inf: no minority examples)" if allow_inf else "a finite number >= 1"
        raise ValueError(f"{name} must be {need}, got {value!r}")
    return R


def ratio_to_json(R: float):
    return INF_LABEL if math.isinf(R) else float(R)


def ratio_from_json(value) -> float:
    return math.inf if value == INF_LABEL else float(value)


def ratio_label(R) -> str:
    """Short text for a ratio: '100', '1e+03', 'inf'."""
    R = ratio_from_json(R)
    return INF_LABEL if math.isinf(R) else f"{R:g}"


def step_groups(K: int, KA: int) -> list[list[int]]:
    """Classes 0..K_A-1 are the majority, K_A..K-1 the minority (one group when K_A = K)."""
    return [list(range(KA)), list(range(KA, K))] if KA < K else [list(range(K))]


def minority_count(nA: int, R: float) -> int:
    """n_B = n_A // R for a network subset; R = inf gives 0. A finite R that leaves no minority
    example would silently be the R = inf experiment, so it is refused."""
    if math.isinf(R):
        return 0
    nB = int(nA // R)
    if nB < 1:
        raise ValueError(f"n_A // R = {nA} // {R:g} = 0 leaves the minority without examples: that is the "
                         f"R = inf experiment; pass R = inf, a smaller R (at most {nA}) or a larger n_A")
    return nB


def model_counts(counts, weights=None) -> np.ndarray:
    """A training set's class counts as the model sees them: times each class's loss factor (re-weighting,
    SPEC §2.7), and a class without examples (R = inf) INF_SURROGATE times fewer than the largest."""
    counts = np.asarray(counts, dtype=float) * (1.0 if weights is None else np.asarray(weights, dtype=float))
    return np.where(counts > 0, counts, counts.max() / INF_SURROGATE)
