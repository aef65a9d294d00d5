"""Training on imbalanced data with per-epoch checkpoints and geometry measurements (SPEC §4).

Data live in memory as tensors; an epoch is a seeded permutation sliced into batches (no
DataLoader, no per-sample Python). Every epoch ends with an atomic checkpoint holding the model,
optimizer, scheduler and the batch-order generator, so a resumed run ends bit-identical to an
uninterrupted one.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..atomic import atomic_path, atomic_write_text
from .data import MAJORITY_SIZE, load_dataset, long_tailed_subset, oversample, step_subset, to_tensor
from .measure import measure
from .models import MODELS, build_model


IMBALANCES = ("step", "long-tailed")


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
    nA: int | None = None  # majority examples per class (default: the paper's 6000 / 5000)
    epochs: int = 350
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 128
    milestones: tuple = (116, 233)  # epochs after which the learning rate is divided by 10
    seed: int = 666
    measurements: int = 12  # log-spaced measurement epochs (the last epoch is always measured)

    def __post_init__(self):
        if self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}; choose one of {sorted(MODELS)}")
        for name in ("epochs", "batch_size", "KA", "wr", "measurements"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if self.nA is not None and (not isinstance(self.nA, int) or self.nA < 1):
            raise ValueError(f"nA must be a positive integer, got {self.nA!r}")
        for name in ("lr", "weight_decay", "momentum"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
        if not (self.R >= 1):
            raise ValueError(f"R must be >= 1 (inf: no minority examples), got {self.R!r}")
        if self.imbalance not in IMBALANCES:
            raise ValueError(f"imbalance must be one of {IMBALANCES}, got {self.imbalance!r}")
        if self.imbalance == "long-tailed" and math.isinf(self.R):
            raise ValueError("long-tailed imbalance needs a finite ratio R = n_max / n_min")
        object.__setattr__(self, "milestones", tuple(int(m) for m in self.milestones))

    @property
    def majority_size(self) -> int:
        return self.nA or MAJORITY_SIZE[self.dataset]

    def to_json(self) -> dict:
        d = asdict(self)
        d["R"] = "inf" if math.isinf(self.R) else self.R
        d["milestones"] = list(self.milestones)
        return d

    @classmethod
    def from_json(cls, d: dict) -> "TrainConfig":
        d = {"imbalance": "step", **d}
        d["R"] = math.inf if d["R"] == "inf" else d["R"]
        return cls(**d)


PRESETS = {
    "paper": dict(model="vgg11", epochs=350, lr=0.1, momentum=0.9, weight_decay=5e-4, batch_size=128,
                  milestones=(116, 233), seed=666, nA=None),
    # small CNN, 1000 majority examples per class: the K_A = 5 R-series in about an hour on 2 cores
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


def measurement_epochs(epochs: int, count: int) -> set[int]:
    return set(np.unique(np.round(np.logspace(0, math.log10(epochs), count)).astype(int)).tolist()) | {epochs}


def resolve_device(device: str | None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but this machine has no CUDA GPU")
    return torch.device(device)


class RunData:
    """The imbalanced training subset and the whole test set, as normalised tensors on ``device``."""

    def __init__(self, config: TrainConfig, device: torch.device):
        ds = load_dataset(config.dataset, config.data_dir)
        K = ds.num_classes
        if config.KA > K:
            raise ValueError(f"KA = {config.KA} exceeds the {K} classes of {config.dataset}")
        if config.imbalance == "step":
            idx = step_subset(ds.train_y, config.KA, config.R, config.majority_size, config.seed, K)
        else:  # geometry still splits head (classes < K_A) from tail
            idx = long_tailed_subset(ds.train_y, config.majority_size, config.R, config.seed)
        idx = oversample(idx, ds.train_y, range(config.KA, K), config.wr)
        self.K, self.KA = K, config.KA
        self.x = to_tensor(ds.train_x[idx], config.dataset).to(device)
        self.y = torch.from_numpy(ds.train_y[idx]).to(device)
        self.test_x = to_tensor(ds.test_x, config.dataset).to(device)
        self.test_y = torch.from_numpy(ds.test_y).to(device)
        self.counts = np.bincount(ds.train_y[idx], minlength=K)


def train(config: TrainConfig, out, resume: bool = False, device: str | None = None, progress: bool = True,
          stop_after: int | None = None) -> dict:
    """Train ``config`` into folder ``out``; returns the final record.

    ``resume`` continues from ``out/checkpoint.pt``; ``stop_after`` ends after that epoch (as an
    interruption would), leaving a resumable run.
    """
    out = Path(out)
    ckpt_path = out / "checkpoint.pt"
    if ckpt_path.exists() and not resume:
        raise FileExistsError(f"{out} already holds a run: pass --resume to continue it or choose another --out")
    if resume and not ckpt_path.exists():
        raise FileNotFoundError(f"nothing to resume: {ckpt_path} does not exist")
    if resume:
        saved = TrainConfig.from_json(json.loads((out / "config.json").read_text()))
        if saved != config:
            raise ValueError(f"{out} holds a run with another configuration: {saved.to_json()}")
    dev = resolve_device(device)
    data = RunData(config, dev)
    torch.manual_seed(config.seed)
    model = build_model(config.model, data.x.shape[1], data.K).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(config.milestones), gamma=0.1)
    gen = torch.Generator().manual_seed(config.seed)
    start, records = 0, []
    if resume:
        state = torch.load(ckpt_path, map_location=dev, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        gen.set_state(state["generator"])
        start, records = state["epoch"], state["records"]
    else:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "config.json", json.dumps(config.to_json(), indent=1))
    when = measurement_epochs(config.epochs, config.measurements)
    last = min(config.epochs, stop_after or config.epochs)
    n = len(data.y)
    bar = tqdm(range(start + 1, last + 1), desc=f"{config.model} R={config.R:g}", unit="epoch", disable=not progress,
               initial=start, total=config.epochs)
    for epoch in bar:
        model.train()
        t0, loss_sum, correct = time.perf_counter(), 0.0, 0
        perm = torch.randperm(n, generator=gen).to(dev)
        for i in range(0, n, config.batch_size):
            batch = perm[i:i + config.batch_size]
            if len(batch) < 2:  # BatchNorm cannot normalise a single example
                continue
            logits = model(data.x[batch])
            loss = F.cross_entropy(logits, data.y[batch])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += float(loss.detach()) * len(batch)
            correct += int((logits.argmax(1) == data.y[batch]).sum())
        lr = opt.param_groups[0]["lr"]
        sched.step()
        seconds = time.perf_counter() - t0
        bar.set_postfix(loss=f"{loss_sum / n:.4f}", acc=f"{correct / n:.4f}")
        if epoch in when:
            rec = {"epoch": epoch, "lr": lr, "epoch_loss": loss_sum / n, "epoch_acc": correct / n,
                   "images_per_second": n / seconds, **measure(model, data)}
            records.append(rec)
            atomic_write_text(out / "records.json", json.dumps(records))
            _write_table(out, records)
        with atomic_path(ckpt_path) as tmp:
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                        "generator": gen.get_state(), "epoch": epoch, "records": records}, tmp)
    if last == config.epochs and records:
        from .plots import plot_run

        plot_run(records, out / "metrics.png", title=f"{config.model} on {config.dataset}, K_A = {config.KA}, "
                 f"R = {config.R:g}, w_r = {config.wr}")
    return records[-1] if records else {}


def _write_table(out: Path, records: list[dict]) -> None:
    import pandas as pd

    flat = [{k: v for k, v in r.items() if not isinstance(v, (list, dict))} for r in records]
    atomic_write_text(out / "records.csv", pd.DataFrame(flat).to_csv(index=False))
