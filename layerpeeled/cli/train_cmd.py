"""``lpm train``: train a network on step-imbalanced data and record its collapse."""
from __future__ import annotations

from ..networks.config import IMBALANCES, MODEL_NAMES, PRESETS
from ..networks.data import DATASETS
from .values import LOSS_HELP

# options a preset fills and the command line may override: name -> (type, help)
OVERRIDABLE = {"nA": (int, "majority examples per class n_A (preset: 1000 for cpu, 6000/5000 for paper)"),
               "epochs": (int, "training epochs"), "lr": (float, "initial learning rate"),
               "momentum": (float, "SGD momentum"), "weight_decay": (float, "weight decay (L2 penalty on all weights)"),
               "batch_size": (int, "examples per batch"), "seed": (int, "seed of the subset, the initialisation and "
                                                                         "the batch order"),
               "measurements": (int, "number of log-spaced measurement epochs (the last epoch is always measured)")}
DEFAULTS = {"KA": 5, "R": 100.0, "wr": 1, "imbalance": "step", "dataset": "fashion-mnist"}  # of a new run


def register(sub):
    from . import HelpFormatter

    p = sub.add_parser("train", help="train a network on imbalanced FashionMNIST / CIFAR-10 and measure its geometry",
                       formatter_class=HelpFormatter,
                       epilog=f"Defaults of a new run: {DEFAULTS}; --resume reads the run's own config.json, and any "
                              "option given with it must agree with the saved run.")
    p.add_argument("--preset", default="cpu", choices=sorted(PRESETS),
                   help="cpu: small CNN, 1000 majority images per class, 60 epochs; paper: VGG11, SPEC §4 (for a GPU)")
    p.add_argument("--dataset", default=None, choices=DATASETS, help="dataset (new run: fashion-mnist)")
    p.add_argument("--data", dest="data_dir", default=None, help="dataset folder (default: Debian's FashionMNIST)")
    p.add_argument("--model", default=None, choices=sorted(MODEL_NAMES), help="network (default: the preset's)")
    p.add_argument("--KA", type=int, default=None, help="majority classes 0..KA-1 (new run: 5)")
    p.add_argument("--R", default=None, help="imbalance ratio n_A/n_B >= 1; inf: no minority examples (new run: 100)")
    p.add_argument("--wr", type=int, default=None, help="oversample every minority example this many times (new run: 1)")
    p.add_argument("--reweight", type=int, default=None, help="multiply the loss of every minority example by this "
                   "factor (the model sees n_B times it, SPEC §2.7; count-based losses see the weighted counts) (new run: 1)")
    p.add_argument("--imbalance", default=None, choices=IMBALANCES,
                   help="step: K_A classes of n_A, the rest n_A // R; long-tailed: n_k = n_A R^(-k/(K-1)) (new run: step)")
    for name, (kind, text) in OVERRIDABLE.items():
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, type=kind, default=None, help=f"{text} (default: the preset's)")
    p.add_argument("--milestones", default=None, help="comma list of epochs after which the learning rate is divided "
                                                      "by 10 (default: the preset's)")
    p.add_argument("--loss", default=None, help=LOSS_HELP.replace("of the model", "on the network's logits, its "
                                                                   "coefficients from the training counts") + " (new run: cross-entropy)")
    p.add_argument("--classifier", default=None, choices=("learned", "etf"),
                   help="etf: the classifier weight held at a simplex ETF with unit-norm rows (Yang et al. 2022; "
                        "the bias still trains) (new run: learned)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (auto: CUDA when present)")
    p.add_argument("--out", required=True, help="run folder: config, records, checkpoint, figure")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..imbalance import parse_ratio, ratio_label
    from ..networks.config import TrainConfig, load_run_config, make_config
    from ..networks.train import train

    given = {k: getattr(args, k) for k in ("dataset", "data_dir", "model", "KA", "R", "wr", "reweight", "imbalance", "loss",
                                           "classifier", *OVERRIDABLE)}
    if args.milestones:
        try:
            given["milestones"] = tuple(int(m) for m in args.milestones.split(","))
        except ValueError:
            raise ValueError(f"--milestones: cannot read {args.milestones!r}; give epochs such as 30,45") from None
    if given["R"] is not None:
        given["R"] = parse_ratio(given["R"], "--R")
    given = {k: v for k, v in given.items() if v is not None}
    if args.resume:  # the run's own configuration, with whatever was given checked against it
        saved = load_run_config(args.out)
        config = TrainConfig.from_json({**saved.to_json(), **given})
    else:
        config = make_config(args.preset, **{**DEFAULTS, **given})
    rec = train(config, args.out, resume=args.resume, device=args.device)
    cos = rec.get("minority_w_cos")
    print(f"{config.model} on {config.dataset}, K_A = {config.KA}, R = {ratio_label(config.R)}, w_r = {config.wr}, "
          f"reweight {config.reweight}, loss {config.loss}, classifier {config.classifier}: "
          f"train acc {rec['train_acc']:.4f}, test acc {rec['test_acc']:.4f}, minority cosine "
          f"{'undefined' if cos is None else f'{cos:.4f}'}, NC1 {rec['nc1']:.3g}")
    print(f"run folder: {args.out}")
    return 0
