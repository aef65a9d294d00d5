"""What defines a training run, as plain validated data (no torch needed to build or check one).

A run folder keeps its configuration as ``config.json``; sweeps key runs by the same JSON (with the
data folder left out, since it names where data lie, not what is trained).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from ..imbalance import minority_count, parse_ratio, ratio_from_json, ratio_to_json
from ..losses import parse_loss
from .data import DATASETS, MAJORITY_SIZE

IMBALANCES = ("step", "long-tailed")
DEFAULT_LOSS = "cross-entropy"
DEFAULT_CLASSIFIER = "learned"
CLASSIFIERS = ("learned", "etf")
MODEL_NAMES = ("cnn", "mlp", "resnet18", "vgg11", "vgg13")  # built by networks.models.build_model


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a run (the preset only fills defaults)."""

    dataset: str = "fashion-mnist"
    data_dir: str | None = None
    model: str = "vgg11"
    KA: int = 5
    R: float = 1.0  # n_A / n_B (step) or n_max / n_min (long-tailed); math.inf: no minority examples
    imbalance: str = "step"  # "step" (K_A majority classes) or "long-tailed" (n_k = n_A R^(-k/(K-1)))
    wr: int = 1  # oversampling factor of the minority
    reweight: int = 1  # factor on the loss of every minority example (SPEC §2.7: the model sees counts n_B * reweight)
    nA: int | None = None  # majority examples per class (default: the paper's 6000 / 5000)
    epochs: int = 350
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 128
    milestones: tuple = (116, 233)  # epochs after which the learning rate is divided by 10
    seed: int = 666
    measurements: int = 12  # log-spaced measurement epochs (the last epoch is always measured)
    loss: str = DEFAULT_LOSS  # a loss spec (layerpeeled.losses), on the network's logits and training counts
    classifier: str = DEFAULT_CLASSIFIER  # "etf": the classifier weight held at a simplex ETF (unit-norm rows)

    def __post_init__(self):
        if self.dataset not in DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; choose one of {list(DATASETS)}")
        if self.model not in MODEL_NAMES:
            raise ValueError(f"unknown model {self.model!r}; choose one of {sorted(MODEL_NAMES)}")
        for name in ("epochs", "batch_size", "KA", "wr", "reweight", "measurements"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        if self.nA is not None and (isinstance(self.nA, bool) or not isinstance(self.nA, int) or self.nA < 1):
            raise ValueError(f"nA must be a positive integer, got {self.nA!r}")
        for name in ("lr", "weight_decay", "momentum"):
            v = getattr(self, name)
            if isinstance(v, bool) or not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
        object.__setattr__(self, "R", parse_ratio(self.R))
        if self.imbalance not in IMBALANCES:
            raise ValueError(f"imbalance must be one of {IMBALANCES}, got {self.imbalance!r}")
        if self.imbalance == "long-tailed" and math.isinf(self.R):
            raise ValueError("long-tailed imbalance needs a finite ratio R = n_max / n_min")
        if self.imbalance == "step":
            minority_count(self.majority_size, self.R)  # refuses an R that leaves no minority example
        object.__setattr__(self, "loss", parse_loss(self.loss).spec)
        if self.classifier not in CLASSIFIERS:
            raise ValueError(f"classifier must be one of {CLASSIFIERS}, got {self.classifier!r}")
        try:
            object.__setattr__(self, "milestones", tuple(int(m) for m in self.milestones))
        except (TypeError, ValueError):
            raise ValueError(f"milestones must be a list of epochs, got {self.milestones!r}") from None

    @property
    def majority_size(self) -> int:
        return self.nA or MAJORITY_SIZE[self.dataset]

    def class_weights(self, K: int) -> np.ndarray:
        """The loss factor of each class: ``reweight`` on the minority (classes K_A..K-1), 1 elsewhere."""
        return np.where(np.arange(K) >= self.KA, float(self.reweight), 1.0)

    def to_json(self) -> dict:
        d = asdict(self)
        d["R"] = ratio_to_json(self.R)
        d["milestones"] = list(self.milestones)
        for key, default in (("loss", DEFAULT_LOSS), ("classifier", DEFAULT_CLASSIFIER), ("reweight", 1)):
            if d[key] == default:  # runs keyed before these options existed keep their keys
                del d[key]
        return d

    @classmethod
    def from_json(cls, d: dict, source: str = "configuration") -> "TrainConfig":
        if not isinstance(d, dict):
            raise ValueError(f"{source}: a training configuration must be a JSON object, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"{source}: unknown training options {unknown}; known: {sorted(known)}")
        d = {"imbalance": "step", **d}
        d["R"] = ratio_from_json(d.get("R", 1.0))
        return cls(**d)

    def differences(self, other: "TrainConfig") -> dict:
        """{field: (self's value, other's value)} for the fields that change what is trained (the data
        folder only says where the data lie, so it may differ)."""
        a, b = asdict(self), asdict(other)
        return {k: (a[k], b[k]) for k in a if a[k] != b[k] and k != "data_dir"}


PRESETS = {
    "paper": dict(model="vgg11", epochs=350, lr=0.1, momentum=0.9, weight_decay=5e-4, batch_size=128,
                  milestones=(116, 233), seed=666, nA=None),
    # small CNN, 1000 majority examples per class: the K_A = 5 R-series in about half an hour on 2 cores
    "cpu": dict(model="cnn", epochs=60, lr=0.05, momentum=0.9, weight_decay=5e-4, batch_size=128,
                milestones=(30, 45), seed=666, nA=1000),
}


def make_config(preset: str = "cpu", **overrides) -> TrainConfig:
    """A preset with any field overridden (None values are ignored)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    known = {f.name for f in fields(TrainConfig)}
    bad = sorted(set(overrides) - known)
    if bad:
        raise ValueError(f"unknown training options {bad}; known: {sorted(known)}")
    return TrainConfig(**{**PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None}})


def load_run_config(folder) -> TrainConfig:
    """The configuration a run folder was started with (its ``config.json``)."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{folder} holds no run: {path} does not exist")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); the run folder is damaged") from None
    return TrainConfig.from_json(data, source=str(path))
