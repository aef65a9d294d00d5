"""``lpm reproduce``: the paper's figures, one command each, with an HTML report."""
from __future__ import annotations

from ..networks.data import DATASETS
from ..plotting import FORMATS, check_formats
from ..reproduce.scales import SCALES


def register(sub):
    from . import HelpFormatter

    p = sub.add_parser("reproduce", help="reproduce the paper's figures (a-d) and write an HTML report",
                       formatter_class=HelpFormatter)
    p.add_argument("figures", nargs="+", help="a (model curve), b (networks vs R), c (model vs networks at two weight "
                   "decays), d (oversampling), all (a-d), quick (a, plus b when FashionMNIST is present), or remedies "
                   "(beyond the paper: cross-entropy, oversampling, re-weighting, la, vs, cdt, ldam, ls and a fixed ETF "
                   "classifier, in the model and in networks at the scale's remedy ratios)")
    p.add_argument("--scale", default="cpu", choices=sorted(SCALES),
                   help="smoke: three tiny runs (a cluster check, under a minute); quick: minutes; cpu: small CNN, "
                        "~30 min per R-series on 2 cores; paper: SPEC §4 recipe (GPU/cluster)")
    p.add_argument("--out", default=None, help="output folder (default results/<scale>)")
    p.add_argument("--dataset", default="fashion-mnist", choices=DATASETS, help="dataset")
    p.add_argument("--data", dest="data_dir", default=None, help="dataset folder (default: Debian's FashionMNIST)")
    p.add_argument("--KA", default=None, help="comma list of K_A values for (b) (default: the scale's)")
    p.add_argument("--scheduler", default=None, help="address of an existing Dask scheduler, tcp://host:8786 (default: "
                   "a local cluster); --out must be on a file system its workers mount at the same path")
    p.add_argument("--workers", type=int, default=None, help="local Dask worker processes (default: one per core, at most one per run)")
    p.add_argument("--seeds", type=int, default=1, help="train every network configuration with this many seeds "
                   "(the preset's seed and the next ones); figures show mean and spread")
    p.add_argument("--finished-only", action="store_true", help="train nothing: report on the runs that a sweep under "
                   "--out has finished so far (a long sweep can be looked at while it runs)")
    p.add_argument("--format", default="png", help=f"comma list of figure formats among {', '.join(FORMATS)}")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..reproduce.pipeline import reproduce

    formats = check_formats([f.strip() for f in args.format.split(",")])
    if "png" not in formats:
        formats = ("png",) + formats  # the report embeds PNGs
    try:
        KA = [int(k) for k in args.KA.split(",")] if args.KA else None
    except ValueError:
        raise ValueError(f"--KA: cannot read {args.KA!r}; give a comma list such as 3,5,7") from None
    path = reproduce(args.figures, scale=args.scale, out=args.out or f"results/{args.scale}", dataset=args.dataset,
                     data_dir=args.data_dir, KA_values=KA, scheduler=args.scheduler, workers=args.workers, formats=formats,
                     seeds=args.seeds, finished_only=args.finished_only)
    print(f"report: {path.resolve()}")
    return 0
