"""``lpm solve``: solve one LPM and print its value, certificate and geometry."""
from __future__ import annotations

import contextlib
import sys

from .values import LOSS_HELP

PAPER_COUNTS = "5000x5,50x5"  # the paper's K = 10, K_A = 5, R = 100 setting
LONG_SOLVE_K = 30  # SDP solves beyond this many classes print the solver's iterations (unless --json)
LONG_DENSE_K = 300  # dense first-order solves from this many classes (a second or more) show their gap on stderr


def add_problem_args(p, counts_default: str | None = PAPER_COUNTS):
    p.add_argument("--counts", default=counts_default, required=counts_default is None,
                   help="class counts n_k (examples per class): NxM items (M classes of N examples), a list "
                        "6000,6000,600, or @file")
    p.add_argument("--EH", type=float, default=None, help="constrained form: feature energy budget E_H (mean over "
                                                          "classes of the mean squared feature norm; default 5)")
    p.add_argument("--EW", type=float, default=None, help="constrained form: classifier energy budget E_W (mean "
                                                          "squared classifier norm; default 1)")
    p.add_argument("--lambda-W", dest="lambda_W", type=float, default=None,
                   help="penalized (weight-decay) form: classifier penalty lambda_W (with --lambda-H; no default)")
    p.add_argument("--lambda-H", dest="lambda_H", type=float, default=None,
                   help="penalized form: feature penalty lambda_H, summed over all N examples (no default)")
    p.add_argument("--lambda-b", dest="lambda_b", type=float, default=None,
                   help="penalized form: bias penalty lambda_b; 0 is a free bias (default: no bias at all)")
    p.add_argument("--loss", default="cross-entropy", help=LOSS_HELP)
    p.add_argument("--classifier", default="learned", choices=("learned", "etf"),
                   help="etf: the classifier held at a simplex ETF of energy E_W (Yang et al. 2022), only the "
                        "features optimised (constrained form)")


def problem_from_args(args):
    """The constrained model (--EH/--EW) or the penalized one (--lambda-W/--lambda-H[/--lambda-b]), never both."""
    from ..problem import LPMProblem, PenalizedLPM
    from .values import chosen_form

    if chosen_form(args, ("EH", "EW"), ("lambda_W", "lambda_H", "lambda_b"), ("lambda_W", "lambda_H")) == "penalized":
        if args.classifier != "learned":
            raise ValueError("--classifier etf is defined for the constrained form (--EH/--EW), not with --lambda-*")
        return PenalizedLPM(args.counts, args.lambda_W, args.lambda_H, args.lambda_b, args.loss)
    return LPMProblem(args.counts, 5.0 if args.EH is None else args.EH, 1.0 if args.EW is None else args.EW, args.loss,
                      args.classifier)


def register(sub):
    from ..solvers import METHODS
    from . import HelpFormatter

    p = sub.add_parser("solve", help="solve one Layer-Peeled Model", description=__doc__, formatter_class=HelpFormatter)
    add_problem_args(p)
    p.add_argument("--method", default="auto", choices=METHODS, help="solver")
    p.add_argument("--p", type=int, default=None, help="feature dimension of W, H (default: the optimum's rank)")
    p.add_argument("--tol", type=float, default=1e-9, help="certified relative gap to reach (gap <= tol * value)")
    p.add_argument("--check-every", type=int, default=None,
                   help="dense first-order solves: steps between certificate checks (default: every step up to "
                        "K = 100, every 10th beyond)")
    p.add_argument("--force", action="store_true", help="run an SDP method beyond the size it solves in about a minute")
    p.add_argument("--json", action="store_true", help="print one strict JSON object on the last line")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..jsonio import dumps
    from ..solvers import choose_method, dense_logit_solver, solve

    problem = problem_from_args(args)
    chosen = choose_method(problem) if args.method == "auto" else args.method
    dense = dense_logit_solver(problem, chosen)
    options = {}
    if args.check_every is not None:
        if not dense:
            raise ValueError(f"--check-every applies to the dense first-order solvers (--method first-order or "
                             f"first-order-torch), not to {chosen}")
        options["check_every"] = args.check_every
    if args.method.startswith("sdp") and problem.K > LONG_SOLVE_K and not args.json:
        print(f"solving a {2 * problem.K} x {2 * problem.K} SDP; the solver reports its iterations:", flush=True)
        options["verbose"] = True
    with _gap_progress(dense and problem.K >= LONG_DENSE_K, f"{chosen} K={problem.K}", args.tol) as callback:
        if callback is not None:
            options["callback"] = callback
        result = solve(problem, args.method, tol=args.tol, p=args.p, force=args.force, **options)
    if args.json:
        print(dumps(result.to_dict()))
    else:
        print(result.summary())
    return 0 if result.status in ("optimal", "optimal_inaccurate") else 1


@contextlib.contextmanager
def _gap_progress(show: bool, label: str, tol: float):
    """A solver callback showing steps and the certified relative gap on stderr (tqdm, on a terminal),
    or None."""
    if not show:
        yield None
        return
    from tqdm.auto import tqdm

    with tqdm(desc=label, unit=" steps", disable=None, file=sys.stderr) as bar:
        def callback(step, value, gap):
            bar.set_postfix_str(f"rel. gap {gap / abs(value):.1e} (tol {tol:g})" if value else f"gap {gap:.1e}",
                                refresh=False)
            bar.update(step - bar.n)

        yield callback
