"""``lpm onset``, ``lpm sweep`` and ``lpm figures``: where Minority Collapse begins, and maps of it."""
from __future__ import annotations

from contextlib import nullcontext

from ..collapse.mitigation import MITIGATIONS
from ..jsonio import dumps
from ..plotting import FORMATS, check_formats
from ..solvers import METHODS
from .values import LOSS_HELP, VALUES_HELP, add_parallel_args, chosen_form, parse_values


def register(sub):
    from . import HelpFormatter

    p = sub.add_parser("onset", help="exact collapse onset R_0 and vanishing onset R_v for step imbalance",
                       formatter_class=HelpFormatter, epilog=VALUES_HELP)
    p.add_argument("--KA", type=int, default=5, help="majority classes K_A")
    p.add_argument("--KB", type=int, default=5, help="minority classes K_B (at least 2)")
    p.add_argument("--EH", type=float, default=None, help="constrained form: feature energy budget E_H (mean squared "
                                                          "feature norm; default 5)")
    p.add_argument("--EW", type=float, default=None, help="constrained form: classifier energy budget E_W (mean squared "
                                                          "classifier norm; default 1)")
    _add_penalized_args(p, lists=False)
    p.add_argument("--loss", default="cross-entropy", help=LOSS_HELP)
    p.add_argument("--rel", type=float, default=1e-9, help="relative precision of the onsets in R")
    p.add_argument("--R", default=None, help="also report the smallest oversampling factor avoiding collapse at this "
                                             "finite ratio R = n_A/n_B >= 1")
    p.add_argument("--products", default=None, help="onsets as a function of E_H*E_W instead (a value list, e.g. "
                                                    "logspace:-1:2:7)")
    add_parallel_args(p, "the --products scan")
    p.add_argument("--json", action="store_true", help="print one strict JSON object on the last line")
    p.set_defaults(run=run_onset)

    p = sub.add_parser("sweep", help="solve a grid of step-imbalanced models into a resumable table",
                       formatter_class=HelpFormatter, epilog=VALUES_HELP)
    p.add_argument("--R", default="logspace:0:4:41", help="ratios R = n_A/n_B (a value list)")
    p.add_argument("--KA", default="5", help="majority classes K_A (a value list)")
    p.add_argument("--KB", default="5", help="minority classes K_B (a value list)")
    p.add_argument("--EH", default=None, help="constrained form: feature energy budgets E_H (a value list; default 5)")
    p.add_argument("--EW", default=None, help="constrained form: classifier energy budgets E_W (a value list; default 1)")
    p.add_argument("--E", default=None, help="constrained form: values of the product E_H*E_W instead (sets E_H = E, "
                                             "E_W = 1)")
    _add_penalized_args(p, lists=True)
    p.add_argument("--wr", default="1", help="oversampling / re-weighting factors w_r >= 1 of the minority (a value "
                                             "list; constrained form only)")
    p.add_argument("--mitigation", default="oversample", choices=MITIGATIONS, help="how w_r is applied")
    p.add_argument("--loss", default="cross-entropy", help=LOSS_HELP)
    p.add_argument("--method", default="auto", choices=METHODS, help="solver")
    p.add_argument("--tol", type=float, default=1e-9, help="certified relative gap of every solve")
    p.add_argument("--out", required=True, help="folder of the records and table.csv (re-runs skip finished configurations)")
    add_parallel_args(p, "the solves")
    p.set_defaults(run=run_sweep_cmd)

    p = sub.add_parser("figures", help="write the model figures: cosine vs R, onset phase diagram, oversampling",
                       formatter_class=HelpFormatter)
    p.add_argument("--out", default="figures", help="folder of the figures")
    p.add_argument("--format", default="png", help=f"comma list among {', '.join(FORMATS)}")
    p.add_argument("--quick", action="store_true", help="coarse phase diagram (seconds instead of a minute)")
    _add_penalized_args(p, lists=False, constrained_nA=False)
    p.set_defaults(run=run_figures)


def _add_penalized_args(p, lists: bool, constrained_nA: bool = True) -> None:
    """The penalized form's options (``lists``: each a value list, for sweeps; ``constrained_nA``:
    the command's constrained form takes --nA too, as a count scale)."""
    kind, each = (str, " (a value list)") if lists else (float, "")
    also = ("; the constrained form sees it only through count-based losses such as ldam (default 1 there)"
            if constrained_nA else "; give it with --lambda-W and --lambda-H")
    p.add_argument("--nA", type=kind, default=None, help="majority examples per class n_A: the penalized form needs it "
                   f"(its answer depends on absolute counts){also}{each}")
    p.add_argument("--lambda-W", dest="lambda_W", type=kind, default=None, help=f"penalized form: classifier penalty{each}")
    p.add_argument("--lambda-H", dest="lambda_H", type=kind, default=None,
                   help=f"penalized form: feature penalty, summed over examples{each}")
    p.add_argument("--lambda-b", dest="lambda_b", type=kind, default=None,
                   help=f"penalized form: bias penalty, 0 for a free bias (default: no bias){each}")


def _client(args):
    """A Dask client when the user asked for parallel work, else nothing (serial in this process)."""
    from ..sweeps.parallel import check_workers, dask_client

    if args.scheduler or (check_workers(args.workers) or 1) > 1:
        return dask_client(args.scheduler, args.workers)
    return nullcontext(None)


PENALIZED = ("nA", "lambda_W", "lambda_H", "lambda_b")  # the penalized form's options
PENALTIES = PENALIZED[1:]  # what selects the penalized form in onset and sweep, where --nA also scales the constrained one
PENALIZED_REQUIRED = ("nA", "lambda_W", "lambda_H")


def _penalized_onset(args):
    """The penalized form's onsets when any of its options is given (never mixed with --EH/--EW)."""
    from ..collapse.onset import find_penalized_onset

    if chosen_form(args, ("EH", "EW", "products"), PENALTIES, PENALIZED_REQUIRED) == "constrained":
        return None
    return find_penalized_onset(args.KA, args.KB, args.nA, args.lambda_W, args.lambda_H, args.lambda_b, rel=args.rel,
                                loss=args.loss)


def run_onset(args) -> int:
    from ..collapse import find_onset, min_oversampling, onset_vs_energy
    from ..imbalance import parse_ratio

    R = None if args.R is None else parse_ratio(args.R, "--R", allow_inf=False)
    if not (0 < args.rel < 1):
        raise ValueError(f"--rel must be a number in (0, 1), got {args.rel!r}")
    penalized = _penalized_onset(args)
    if args.products:
        products = parse_values(args.products, "products")
        with _client(args) as client:
            onsets = onset_vs_energy(args.KA, args.KB, products, rel=args.rel, client=client, progress=not args.json,
                                     loss=args.loss, nA=1.0 if args.nA is None else args.nA)
        rows = [{"EH*EW": E, "onset": o.onset, "vanish": o.vanish} for E, o in zip(products, onsets)]
        if args.json:
            print(dumps({"KA": args.KA, "KB": args.KB, "onsets": rows}))
        for row in [] if args.json else rows:
            print(f"E_H*E_W = {row['EH*EW']:<10.4g} R_0 = {_fmt(row['onset']):<14} R_v = {_fmt(row['vanish'])}")
        return 0
    o = penalized or find_onset(args.KA, args.KB, 5.0 if args.EH is None else args.EH,
                                1.0 if args.EW is None else args.EW, rel=args.rel, loss=args.loss,
                                nA=1.0 if args.nA is None else args.nA)
    out = o.to_dict()
    if R is not None:
        out["R"], out["min_wr"] = R, min_oversampling(R, o.onset)
    if args.json:
        print(dumps(out))
        return 0
    form = (f"E_H = {o.EH:g}, E_W = {o.EW:g}" + (f", n_A = {o.nA:g}" if o.nA != 1 else "") if o.penalized is None else
            ", ".join(f"{k} = {v:g}" for k, v in o.penalized.items() if k in ("nA", "lambda_W", "lambda_H") and v is not None)
            + (", no bias" if o.penalized["lambda_b"] is None else f", lambda_b = {o.penalized['lambda_b']:g}"))
    print(f"K_A = {o.KA}, K_B = {o.KB}, {form}, loss {o.loss} ({o.evaluations} margin evaluations, {o.seconds:.3g} s)")
    unresolved = {note.split()[0] for note in o.notes if "not resolved" in note}  # "collapse" / "vanishing"
    print(f"collapse onset  R_0 = {_fmt(o.onset)}" + (
        f"   margins {o.onset_margins[0]:+.2e} at R = {o.onset_bracket[0]:.10g}, {o.onset_margins[1]:+.2e} at {o.onset_bracket[1]:.10g}"
        if o.onset_bracket else "   (see the note)" if "collapse" in unresolved else "   (no collapse up to R = 1e15)"))
    print(f"vanishing onset R_v = {_fmt(o.vanish)}" + (
        "" if o.vanish else "   (see the note)" if "vanishing" in unresolved
        else "   (minority classifiers never vanish up to R = 1e15)"))
    if o.penalized is not None:
        print(f"minority examples per class at the onsets: n_B = {_fmt(o.penalized['onset_nB'])} (collapse), "
              f"{_fmt(o.penalized['vanish_nB'])} (vanishing)")
        print(f"closed form sqrt(n_B)/N = sqrt(lambda_W lambda_H): R_0 = {_fmt(o.penalized['onset_closed_form'])}"
              + ("" if o.penalized["onset_closed_form"] else " (collapsed at every R >= 1)"))
    if R is not None:
        print(f"at R = {R:g}: oversample the minority by w_r > {out['min_wr']:.8g} to avoid collapse")
    for note in o.notes:
        print("note:", note)
    return 0


def _fmt(v):
    return "none" if v is None else f"{v:.10g}"


def run_sweep_cmd(args) -> int:
    from ..collapse.sweep import model_configs, run_sweep
    from ..sweeps import ResultStore

    common = dict(KA=parse_values(args.KA, "KA", int), KB=parse_values(args.KB, "KB", int), wr=parse_values(args.wr, "wr"),
                  mitigation=args.mitigation, loss=args.loss, method=args.method, tol=args.tol)
    if chosen_form(args, ("EH", "EW", "E"), PENALTIES, PENALIZED_REQUIRED) == "penalized":
        form = {k: parse_values(getattr(args, k), k.replace("_", "-")) for k in PENALIZED_REQUIRED}
        form["lambda_b"] = None if args.lambda_b is None else parse_values(args.lambda_b, "lambda-b")
    elif args.E:
        if args.EH or args.EW:
            raise ValueError("--E sets E_H = E and E_W = 1: give either --E or --EH/--EW")
        form = dict(EH=parse_values(args.E, "E"), EW=[1.0])
    else:
        form = dict(EH=parse_values(args.EH or "5", "EH"), EW=parse_values(args.EW or "1", "EW"))
    if "EH" in form and args.nA is not None:
        form["scale"] = parse_values(args.nA, "nA")
    configs = model_configs(parse_values(args.R, "R"), **common, **form)
    store = ResultStore(args.out)
    done = sum(store.has(c) for c in configs)
    print(f"{len(configs)} configurations, {done} already in {args.out}")
    run_sweep(configs, store, scheduler=args.scheduler, workers=args.workers)
    print(f"table: {store.folder / 'table.csv'}")
    return 0


def run_figures(args) -> int:
    from ..collapse.figures import all_model_figures
    from ..problem import PenalizedLPM

    formats = check_formats([f.strip() for f in args.format.split(",")])
    penalized = None
    if chosen_form(args, (), PENALIZED, PENALIZED_REQUIRED) == "penalized":
        penalized = {k: getattr(args, k) for k in PENALIZED}
        PenalizedLPM([args.nA, args.nA / 2], args.lambda_W, args.lambda_H, args.lambda_b)  # checks the values first
    for path in all_model_figures(args.out, formats=formats, quick=args.quick, penalized=penalized):
        print(path)
    return 0
