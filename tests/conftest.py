import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(20210)


def balanced_value(K, EH, EW):
    """SPEC §2.4: log(1 + (K-1) exp(-K sqrt(E_H E_W)/(K-1)))."""
    return np.log1p((K - 1) * np.exp(-K * np.sqrt(EH * EW) / (K - 1)))


def log_bisect(predicate, lo, hi, steps):
    """Bisection in log scale between predicate(lo) False and predicate(hi) True; the final bracket."""
    assert not predicate(lo) and predicate(hi)
    for _ in range(steps):
        mid = float(np.sqrt(lo * hi))
        lo, hi = (lo, mid) if predicate(mid) else (mid, hi)
    return lo, hi
