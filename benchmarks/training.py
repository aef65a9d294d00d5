"""Training throughput: our in-memory tensor loop against a plain torch DataLoader loop over the
same data, model and optimizer, measured in the same run (issue: Networks)."""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from common import table
from torch.utils.data import DataLoader, TensorDataset

from layerpeeled.networks.models import build_model


def _images_per_second(model_name, x, y, loader: bool, seconds: float) -> float:
    torch.manual_seed(0)
    model = build_model(model_name, x.shape[1], 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    model.train()
    if loader:
        batches = DataLoader(TensorDataset(x, y), batch_size=128, shuffle=True)
    gen = torch.Generator().manual_seed(0)
    done, start = 0, None
    while True:
        it = iter(batches) if loader else (torch.randperm(len(y), generator=gen).split(128))
        for b in it:
            xb, yb = b if loader else (x[b], y[b])
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(xb), yb).backward()
            opt.step()
            if start is None:  # the first step warms up allocators; time the rest
                start = time.perf_counter()
                continue
            done += len(yb)
            if time.perf_counter() - start > seconds:
                return done / (time.perf_counter() - start)


def run(args) -> str:
    torch.set_num_threads(args.threads)
    x = torch.randn(args.images, 1, 32, 32)
    y = torch.randint(0, 10, (args.images,))
    rows = []
    for name in args.models:
        ours = _images_per_second(name, x, y, loader=False, seconds=args.seconds)
        plain = _images_per_second(name, x, y, loader=True, seconds=args.seconds)
        rows.append([name, ours, plain, f"{ours / plain:.2f}x"])
        print(rows[-1], flush=True)
    return (f"1 x 32 x 32 inputs, batch 128, SGD with momentum, {args.threads} threads, {args.seconds:g} s per cell:\n\n"
            + table(["model", "ours img/s", "DataLoader img/s", "ours / DataLoader"], rows))


def add_args(p):
    p.add_argument("--models", nargs="+", default=["cnn", "vgg11"])
    p.add_argument("--images", type=int, default=4096)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--threads", type=int, default=2)
