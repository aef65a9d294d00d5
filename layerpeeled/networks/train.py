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
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..atomic import atomic_path, atomic_write_text, output_folder
from ..imbalance import model_counts, ratio_label
from ..jsonio import dumps
from ..losses import parse_loss
from .config import TrainConfig, load_run_config
from .data import load_dataset, long_tailed_subset, oversample, step_subset, stratified_subset, to_tensor
from .measure import measure
from .models import build_model

CHECKPOINT_FORMAT = "layerpeeled-checkpoint-2"  # tensors and plain data only: loadable with weights_only=True
PROBE_PER_CLASS = 100  # test images per class measured at intermediate epochs (the final epoch uses all)
CHANNELS_LAST_MODELS = ("cnn", "vgg11", "vgg13", "resnet18")  # convolutional: NHWC kernels are faster on CPU


def measurement_epochs(epochs: int, count: int) -> set[int]:
    return set(np.unique(np.round(np.logspace(0, math.log10(epochs), count)).astype(int)).tolist()) | {epochs}


def resolve_device(device: str | None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but this machine has no CUDA GPU")
    return torch.device(device)


class RunData:
    """The imbalanced training subset and the whole test set, as normalised tensors on ``device``.

    ``probe`` indexes a fixed, class-stratified part of the test set: intermediate measurements use
    it, the final one the whole test set (measuring is otherwise a large share of a short run).
    """

    def __init__(self, config: TrainConfig, device: torch.device, memory_format=torch.contiguous_format):
        ds = load_dataset(config.dataset, config.data_dir)
        K = ds.num_classes
        if config.KA > K:
            raise ValueError(f"KA = {config.KA} exceeds the {K} classes of {config.dataset}")
        if config.imbalance == "step":
            idx = step_subset(ds.train_y, config.KA, config.R, config.majority_size, config.seed, K)
        else:  # geometry still splits head (classes < K_A) from tail
            idx = long_tailed_subset(ds.train_y, config.majority_size, config.R, config.seed, K)
        idx = oversample(idx, ds.train_y, range(config.KA, K), config.wr)
        self.K, self.KA = K, config.KA
        self.x = to_tensor(ds.train_x[idx], config.dataset).to(device, memory_format=memory_format)
        self.y = torch.from_numpy(ds.train_y[idx]).to(device)
        self.test_x = to_tensor(ds.test_x, config.dataset).to(device, memory_format=memory_format)
        self.test_y = torch.from_numpy(ds.test_y).to(device)
        self.probe = torch.from_numpy(stratified_subset(ds.test_y, PROBE_PER_CLASS)).to(device)
        self.counts = np.bincount(ds.train_y[idx], minlength=K)
        self.weights = config.class_weights(K)  # loss factors: re-weighting the minority
        self.loss, self.classifier = config.loss, config.classifier  # what the model beside each measurement needs


def training_loss(spec: str, counts, device, weights=None):
    """The mean loss over a batch of logits (SPEC §1), its per-class coefficients fixed by the training
    counts as the model sees them (:func:`layerpeeled.imbalance.model_counts`); label smoothing is
    torch's, which is SPEC's (1 - eps) CE + (eps / K) sum_j CE_j.
    ``weights``: a factor on each class's examples (re-weighting, SPEC §2.7); the loss's coefficients
    then see the weighted counts, as an oversampled run would."""
    loss = parse_loss(spec)
    coef = loss.coefficients(model_counts(counts, weights))
    factor = None if weights is None or np.all(np.asarray(weights) == 1) else torch.as_tensor(
        np.asarray(weights, dtype=np.float32), device=device)
    if coef is not None:
        scale, shift, margin = (torch.as_tensor(c, dtype=torch.float32, device=device) for c in coef)

    def fn(logits, y):
        u = logits if coef is None else logits * scale + shift - margin[y][:, None] * F.one_hot(y, logits.shape[1])
        if factor is None:
            return F.cross_entropy(u, y, label_smoothing=loss.eps)
        return (factor[y] * F.cross_entropy(u, y, label_smoothing=loss.eps, reduction="none")).mean()

    return fn


def load_checkpoint(path: Path, device) -> dict:
    """A checkpoint written by :func:`train`, loaded without running any code it might contain
    (``weights_only=True``: tensors and plain data only); anything else is refused clearly."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # corrupt, truncated, empty, or a pickle that asks for code
        raise ValueError(f"cannot load checkpoint {path}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                         f" -- it is corrupt, truncated or not a layerpeeled checkpoint (only tensors and plain data "
                         f"are accepted, nothing in it is run); delete it to start the run again") from None
    missing = [k for k in ("format", "model", "optimizer", "scheduler", "generator", "epoch", "records") if
               not isinstance(state, dict) or k not in state]
    if missing or state["format"] != CHECKPOINT_FORMAT:
        raise ValueError(f"checkpoint {path} is not a {CHECKPOINT_FORMAT} checkpoint (missing {missing or 'nothing'}, "
                         f"format {state.get('format') if isinstance(state, dict) else None!r}); delete it to start again")
    return state


def check_resumable(config: TrainConfig, out: Path, resume: bool) -> None:
    """Refuse to overwrite a run, to resume nothing, or to resume a run under another configuration."""
    ckpt_path = output_folder(out, create=False) / "checkpoint.pt"
    if ckpt_path.exists() and not resume:
        raise FileExistsError(f"{out} already holds a run: pass --resume to continue it or choose another --out")
    if resume and not ckpt_path.exists():
        raise FileNotFoundError(f"nothing to resume: {ckpt_path} does not exist")
    if resume:
        diff = load_run_config(out).differences(config)
        if diff:
            raise ValueError(f"{out} holds a run with another configuration; differing fields (saved, asked): "
                             + ", ".join(f"{k} ({a!r}, {b!r})" for k, (a, b) in diff.items()))


def train(config: TrainConfig, out, resume: bool = False, device: str | None = None, progress: bool = True,
          stop_after: int | None = None) -> dict:
    """Train ``config`` into folder ``out``; returns the final record.

    ``resume`` continues from ``out/checkpoint.pt``; ``stop_after`` ends after that epoch (as an
    interruption would), leaving a resumable run.
    """
    out = Path(out)
    ckpt_path = out / "checkpoint.pt"
    check_resumable(config, out, resume)
    dev = resolve_device(device)
    fmt = torch.channels_last if config.model in CHANNELS_LAST_MODELS else torch.contiguous_format
    data = RunData(config, dev, fmt)
    torch.manual_seed(config.seed)
    model = build_model(config.model, data.x.shape[1], data.K)
    if config.classifier == "etf":
        model.fix_classifier_to_etf(config.seed)
    model = model.to(dev, memory_format=fmt)
    criterion = training_loss(config.loss, data.counts, dev, data.weights)
    opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(config.milestones), gamma=0.1)
    gen = torch.Generator().manual_seed(config.seed)
    start, records = 0, []
    if resume:
        state = load_checkpoint(ckpt_path, dev)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        gen.set_state(state["generator"])
        start, records = state["epoch"], json.loads(state["records"])
    else:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "config.json", dumps(config.to_json(), indent=1))
    when = measurement_epochs(config.epochs, config.measurements)
    last = min(config.epochs, stop_after or config.epochs)
    n = len(data.y)
    bar = tqdm(range(start + 1, last + 1), desc=f"{config.model} R={ratio_label(config.R)}", unit="epoch",
               disable=not progress, initial=start, total=config.epochs)
    for epoch in bar:
        model.train()
        t0, loss_sum, correct = time.perf_counter(), 0.0, 0
        perm = torch.randperm(n, generator=gen).to(dev)
        for i in range(0, n, config.batch_size):
            batch = perm[i:i + config.batch_size]
            if len(batch) < 2:  # BatchNorm cannot normalise a single example
                continue
            logits = model(data.x[batch])
            loss = criterion(logits, data.y[batch])
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
                   "images_per_second": n / seconds, **measure(model, data, whole_test=epoch == config.epochs)}
            records.append(rec)
            atomic_write_text(out / "records.json", dumps(records))
            _write_table(out, records)
        with atomic_path(ckpt_path) as tmp:
            torch.save({"format": CHECKPOINT_FORMAT, "model": model.state_dict(), "optimizer": opt.state_dict(),
                        "scheduler": sched.state_dict(), "generator": gen.get_state(), "epoch": epoch,
                        "records": dumps(records)}, tmp)
    if last == config.epochs and records:
        from .plots import plot_run

        plot_run(records, out / "metrics.png", title=f"{config.model} on {config.dataset}, K_A = {config.KA}, "
                 f"R = {ratio_label(config.R)}, w_r = {config.wr}" + (f", reweight {config.reweight}" if config.reweight > 1 else ""))
    return records[-1] if records else {}


def _write_table(out: Path, records: list[dict]) -> None:
    import pandas as pd

    flat = [{k: v for k, v in r.items() if not isinstance(v, (list, dict))} for r in records]
    atomic_write_text(out / "records.csv", pd.DataFrame(flat).to_csv(index=False))
