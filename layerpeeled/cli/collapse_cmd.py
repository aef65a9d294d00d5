"""``lpm onset``, ``lpm sweep`` and ``lpm figures``: where Minority Collapse begins, and maps of it."""
from __future__ import annotations

import json

from ..collapse import find_onset, min_oversampling
from ..collapse.figures import all_model_figures
from ..collapse.mitigation import MITIGATIONS
from ..collapse.sweep import LOSSES, model_configs, run_sweep
from ..plotting import FORMATS
from ..solvers import METHODS
from ..sweeps import ResultStore
from .values import parse_values


def register(sub):
    p = sub.add_parser("onset", help="exact collapse onset R_0 and vanishing onset R_v for step imbalance")
    p.add_argument("--KA", type=int, default=5, help="majority classes (default 5)")
    p.add_argument("--KB", type=int, default=5, help="minority classes (default 5)")
    p.add_argument("--EH", type=float, default=5.0)
    p.add_argument("--EW", type=float, default=1.0)
    p.add_argument("--rel", type=float, default=1e-9, help="relative precision of the onsets in R (default 1e-9)")
    p.add_argument("--R", type=float, default=None, help="also report the smallest oversampling factor avoiding collapse at this R")
    p.add_argument("--products", default=None, help="onsets as a function of E_H*E_W instead, e.g. logspace:-1:2:7")
    p.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    p.set_defaults(run=run_onset)

    p = sub.add_parser("sweep", help="solve a grid of step-imbalanced models into a resumable table")
    p.add_argument("--R", default="logspace:0:4:41", help="ratios (default logspace:0:4:41)")
    p.add_argument("--KA", default="5")
    p.add_argument("--KB", default="5")
    p.add_argument("--EH", default="5")
    p.add_argument("--EW", default="1")
    p.add_argument("--E", default=None, help="values of the product E_H*E_W (sets E_H = E, E_W = 1)")
    p.add_argument("--wr", default="1", help="oversampling / re-weighting factors of the minority")
    p.add_argument("--mitigation", default="oversample", choices=MITIGATIONS)
    p.add_argument("--loss", default="cross-entropy", choices=sorted(LOSSES))
    p.add_argument("--method", default="auto", choices=METHODS)
    p.add_argument("--tol", type=float, default=1e-9)
    p.add_argument("--out", required=True, help="folder of the records and table.csv (re-runs skip finished configurations)")
    p.set_defaults(run=run_sweep_cmd)

    p = sub.add_parser("figures", help="write the model figures: cosine vs R, onset phase diagram, oversampling")
    p.add_argument("--out", default="figures", help="folder (default ./figures)")
    p.add_argument("--format", default="png", help=f"comma list among {FORMATS} (default png)")
    p.add_argument("--quick", action="store_true", help="coarse phase diagram (seconds instead of a minute)")
    p.set_defaults(run=run_figures)


def run_onset(args) -> int:
    if args.products:
        rows = []
        for E in parse_values(args.products, "products"):
            o = find_onset(args.KA, args.KB, E, 1.0, rel=args.rel)
            rows.append({"EH*EW": E, "onset": o.onset, "vanish": o.vanish})
            if not args.json:
                print(f"E_H*E_W = {E:<10.4g} R_0 = {_fmt(o.onset):<14} R_v = {_fmt(o.vanish)}")
        if args.json:
            print(json.dumps({"KA": args.KA, "KB": args.KB, "onsets": rows}))
        return 0
    o = find_onset(args.KA, args.KB, args.EH, args.EW, rel=args.rel)
    out = o.to_dict()
    if args.R is not None:
        out["R"], out["min_wr"] = args.R, min_oversampling(args.R, o.onset)
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"K_A = {o.KA}, K_B = {o.KB}, E_H = {o.EH:g}, E_W = {o.EW:g} ({o.evaluations} margin evaluations, {o.seconds:.3g} s)")
    print(f"collapse onset  R_0 = {_fmt(o.onset)}" + (
        f"   margins {o.onset_margins[0]:+.2e} at R = {o.onset_bracket[0]:.10g}, {o.onset_margins[1]:+.2e} at {o.onset_bracket[1]:.10g}"
        if o.onset_bracket else "   (no collapse up to R = 1e15)"))
    print(f"vanishing onset R_v = {_fmt(o.vanish)}" + ("" if o.vanish else "   (minority classifiers never vanish up to R = 1e15)"))
    if args.R is not None:
        print(f"at R = {args.R:g}: oversample the minority by w_r > {out['min_wr']:.8g} to avoid collapse")
    for note in o.notes:
        print("note:", note)
    return 0


def _fmt(v):
    return "none" if v is None else f"{v:.10g}"


def run_sweep_cmd(args) -> int:
    products = parse_values(args.E, "E") if args.E else None
    configs = model_configs(
        parse_values(args.R, "R"), KA=parse_values(args.KA, "KA", int), KB=parse_values(args.KB, "KB", int),
        EH=products or parse_values(args.EH, "EH"), EW=[1.0] if products else parse_values(args.EW, "EW"),
        wr=parse_values(args.wr, "wr"), mitigation=args.mitigation, loss=args.loss, method=args.method, tol=args.tol)
    store = ResultStore(args.out)
    done = sum(store.has(c) for c in configs)
    print(f"{len(configs)} configurations, {done} already in {args.out}")
    run_sweep(configs, store)
    print(f"table: {store.folder / 'table.csv'}")
    return 0


def run_figures(args) -> int:
    formats = [f.strip() for f in args.format.split(",")]
    for path in all_model_figures(args.out, formats=formats, quick=args.quick):
        print(path)
    return 0
