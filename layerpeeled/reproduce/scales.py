"""Which networks each figure trains, at each scale.

``smoke`` is three tiny runs, to try a cluster before launching real work;
``paper`` is SPEC §4 (VGG11, 6000 majority images per class, 350 epochs: for a GPU or a cluster);
``cpu`` the ``cpu`` training preset (small CNN, 1000 per class, 60 epochs: about 20 minutes per
R-series on 2 cores); ``quick`` a demonstration in minutes (300 per class, 20 epochs), which may
stop short of the terminal phase of training.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..networks.config import make_config

INF = math.inf


@dataclass(frozen=True)
class Scale:
    preset: str
    overrides: dict
    ratios: tuple
    KA_values: tuple
    oversampling_R: float
    oversampling_wr: tuple
    weight_decays: tuple = (5e-4, 5e-3)
    remedy_ratios: tuple = (10.0, 100.0, 1000.0)  # the networks of `lpm reproduce remedies`


SCALES = {
    "smoke": Scale("cpu", dict(nA=100, epochs=3, milestones=(2,), measurements=2), (1.0, 10.0, INF), (5,), 10.0, (1, 10),
                   remedy_ratios=(10.0,)),
    # quick: 4 runs in about 4 minutes on 2 shared cores (measured in README.md)
    "quick": Scale("cpu", dict(nA=150, epochs=15, batch_size=64, milestones=(8, 12), measurements=5),
                   (1.0, 10.0, 100.0, INF), (5,),
                   100.0, (1, 10, 100), remedy_ratios=(10.0, 100.0)),  # n_A = 150 leaves no minority at R = 1000
    "cpu": Scale("cpu", {}, (1.0, 10.0, 100.0, 1000.0, INF), (5,), 1000.0, (1, 10, 100, 1000)),
    "paper": Scale("paper", {}, (1.0, 10.0, 100.0, 1000.0, INF), (3, 5, 7), 1000.0, (1, 10, 100, 1000)),
}
FIGURES = ("a", "b", "c", "d")  # the paper's; "remedies" goes beyond it (reproduce.remedies)


def get_scale(name: str) -> Scale:
    if name not in SCALES:
        raise ValueError(f"unknown scale {name!r}; choose one of {sorted(SCALES)}")
    return SCALES[name]


def _config(scale: Scale, dataset: str, **fields) -> dict:
    """A training configuration as plain JSON data (the sweep key): no data folder in it."""
    return make_config(scale.preset, dataset=dataset, **{**scale.overrides, **fields}).to_json() | {"data_dir": None}


def network_configs(figure: str, scale: Scale, dataset: str = "fashion-mnist", KA_values=None,
                    seeds: int = 1) -> list[dict]:
    """The training runs behind figure b, c or d, each repeated with ``seeds`` seeds (the preset's
    seed, then the next integers)."""
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"--seeds must be a positive integer, got {seeds!r}")
    KA_values = tuple(KA_values or scale.KA_values)
    if figure == "b":
        grid = [dict(KA=ka, R=R) for ka in KA_values for R in scale.ratios]
    elif figure == "c":
        grid = [dict(KA=KA_values[0], R=R, weight_decay=wd) for wd in scale.weight_decays for R in scale.ratios]
    elif figure == "d":
        grid = [dict(KA=KA_values[0], R=scale.oversampling_R, wr=w) for w in scale.oversampling_wr]
    elif figure == "remedies":  # the largest ratio first: its runs say the most if a sweep is cut short
        from .remedies import REMEDIES

        grid = [dict(KA=KA_values[0], R=R, **r.training(R)) for R in sorted(scale.remedy_ratios, reverse=True)
                for r in REMEDIES.values()]
    else:
        raise ValueError(f"figure {figure!r} trains no networks; networks are behind b, c, d and remedies")
    base = make_config(scale.preset).seed
    return [_config(scale, dataset, **fields, seed=base + i) for fields in grid for i in range(seeds)]


def without_seed(config: dict) -> tuple:
    """What identifies a configuration up to its seed (runs that differ only by seed are one point)."""
    return tuple(sorted((k, str(v)) for k, v in config.items() if k != "seed"))
