"""``lpm solve``: solve one LPM and print its value, certificate and geometry."""
from __future__ import annotations

import json

from ..problem import LPMProblem
from ..solvers import METHODS, solve

PAPER_COUNTS = "5000x5,50x5"  # the paper's K = 10, K_A = 5, R = 100 setting


def add_problem_args(p, counts_default: str | None = PAPER_COUNTS):
    p.add_argument("--counts", default=counts_default, required=counts_default is None,
                   help="class counts: NxM items (M classes of N examples), a list 6000,6000,600, or @file "
                        f"(default {counts_default})")
    p.add_argument("--EH", type=float, default=5.0, help="feature energy budget E_H (default 5)")
    p.add_argument("--EW", type=float, default=1.0, help="classifier energy budget E_W (default 1)")


def register(sub):
    p = sub.add_parser("solve", help="solve one Layer-Peeled Model", description=__doc__)
    add_problem_args(p)
    p.add_argument("--method", default="auto", choices=METHODS, help="solver (default: auto)")
    p.add_argument("--p", type=int, default=None, help="feature dimension of W, H (default: the optimum's rank)")
    p.add_argument("--tol", type=float, default=1e-9, help="certified relative gap to reach (default 1e-9)")
    p.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    p.set_defaults(run=run)


def run(args) -> int:
    result = solve(LPMProblem(args.counts, args.EH, args.EW), args.method, tol=args.tol, p=args.p)
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        print(result.summary())
    return 0 if result.status in ("optimal", "optimal_inaccurate") else 1
