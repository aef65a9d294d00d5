"""``lpm train``: train a network on step-imbalanced data and record its collapse."""
from __future__ import annotations

import math
from ..networks.data import DATASETS
from ..networks.models import MODELS
from ..networks.train import IMBALANCES, PRESETS, make_config, train

OVERRIDABLE = {"nA": int, "epochs": int, "lr": float, "momentum": float, "weight_decay": float,
               "batch_size": int, "seed": int, "measurements": int}


def register(sub):
    p = sub.add_parser("train", help="train a network on imbalanced FashionMNIST / CIFAR-10 and measure its geometry")
    p.add_argument("--preset", default="cpu", choices=sorted(PRESETS),
                   help="cpu: small CNN, 1000 majority images per class, 60 epochs; paper: VGG11, SPEC §4 (for a GPU)")
    p.add_argument("--dataset", default="fashion-mnist", choices=DATASETS)
    p.add_argument("--data", dest="data_dir", default=None, help="dataset folder (default: Debian's FashionMNIST)")
    p.add_argument("--model", default=None, choices=sorted(MODELS))
    p.add_argument("--KA", type=int, default=5, help="majority classes 0..KA-1 (default 5)")
    p.add_argument("--R", type=float, default=100.0, help="imbalance ratio n_A/n_B; inf: no minority examples")
    p.add_argument("--wr", type=int, default=1, help="oversample every minority example this many times")
    p.add_argument("--imbalance", default="step", choices=IMBALANCES,
                   help="step: K_A classes of n_A, the rest n_A // R; long-tailed: n_k = n_A R^(-k/(K-1))")
    for name, kind in OVERRIDABLE.items():
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, type=kind, default=None, help=f"override the preset's {name}")
    p.add_argument("--milestones", default=None, help="comma list of epochs dividing the learning rate by 10")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (default: CUDA when present)")
    p.add_argument("--out", required=True, help="run folder: config, records, checkpoint, figure")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.set_defaults(run=run)


def run(args) -> int:
    overrides = {k: getattr(args, k) for k in ("dataset", "data_dir", "model", "KA", "R", "wr", "imbalance", *OVERRIDABLE)}
    if args.milestones:
        overrides["milestones"] = tuple(int(m) for m in args.milestones.split(","))
    config = make_config(args.preset, **overrides)
    rec = train(config, args.out, resume=args.resume, device=args.device)
    R = "inf" if math.isinf(config.R) else f"{config.R:g}"
    cos = rec.get("minority_w_cos")
    print(f"{config.model} on {config.dataset}, K_A = {config.KA}, R = {R}, w_r = {config.wr}: "
          f"train acc {rec['train_acc']:.4f}, test acc {rec['test_acc']:.4f}, minority cosine "
          f"{'undefined' if cos is None else f'{cos:.4f}'}, NC1 {rec['nc1']:.3g}")
    print(f"run folder: {args.out}")
    return 0
