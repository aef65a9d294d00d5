"""Core solvers: SDP (Clarabel, SCS) vs first-order vs reduced on two-level problems, and the
first-order solver alone on long-tailed counts (issue: Core)."""
from __future__ import annotations

import time

from common import table, timed

from layerpeeled import LPMProblem, long_tailed_counts, solve, step_counts
from layerpeeled.collapse.sweep import solve_warm
from layerpeeled.problem import PenalizedLPM
from layerpeeled.solvers.reduced import solve_reduced_cvxpy

LOSSES_BENCHED = ("cross-entropy", "la:tau=1", "vs:gamma=0.2,tau=1", "cdt:gamma=0.3", "ldam:C=0.5", "ls:eps=0.1")


def _baseline(run, ours, t_ours, enabled: bool) -> list:
    """A baseline solve's seconds, relative value difference to ours and time ratio (or "skipped")."""
    if not enabled:
        return ["skipped", "", ""]
    t, r = timed(run)
    return [t, f"{abs(r.value - ours.value) / ours.value:.1e}", f"{t / t_ours:.0f}x"]


def run(args) -> str:
    out = []
    rows = []
    for K in args.two_level_K:
        P = LPMProblem(step_counts(K // 2, K // 2, 100.0, nA=5000), 5.0, 1.0)
        t_red, red = timed(lambda: solve(P, "reduced", tol=1e-9), repeats=20)
        row = [K, t_red * 1e3, f"{red.gap:.1e}"]
        t_fo, fo = timed(lambda: solve(P, "first-order", tol=1e-9))
        row += [t_fo, f"{fo.gap:.1e}", f"{abs(fo.value - red.value) / red.value:.1e}"]
        for method, limit in (("sdp", args.max_clarabel_K), ("sdp-scs", args.max_scs_K)):
            row += _baseline(lambda: solve(P, method), red, t_red, K <= limit)
        rows.append(row)
        print(rows[-1], flush=True)
    out.append("Two-level problems, K_A = K_B = K/2, R = 100, E_H = 5, E_W = 1 (tol 1e-9 relative):\n")
    out.append(table(["K", "reduced ms", "reduced gap", "first-order s", "f-o gap", "f-o rel. diff",
                      "Clarabel s", "rel. diff", "Clarabel/reduced", "SCS s", "rel. diff", "SCS/reduced"], rows))
    rows = []
    for K in args.reduced_K:
        P = LPMProblem(step_counts(K // 2, K // 2, 100.0, nA=5000), 5.0, 1.0)
        t_red, red = timed(lambda: solve(P, "reduced", tol=1e-9), repeats=20)
        row = [K, t_red * 1e3, red.iterations, red.info["newton_steps"], f"{red.gap / red.value:.1e}"]
        for solver in ("CLARABEL", "SCS"):
            t, r = timed(lambda: solve_reduced_cvxpy(P, solver=solver), repeats=3)
            row += [t * 1e3, r.info["solve_seconds"] * 1e3, f"{(r.value - red.value) / red.value:.1e}",
                    f"{t / t_red:.0f}x"]
        rows.append(row)
        print(rows[-1], flush=True)
    out.append("\nThe reduced program alone, K_A = K_B = K/2, R = 100, E_H = 5, E_W = 1: ours (tol 1e-9, median of 20) "
               "and cvxpy on the same program (median of 3; 'solver ms' is the solver's own time, without cvxpy's "
               "compilation):\n")
    out.append(table(["K", "ours ms", "prox-grad steps", "Newton steps", "ours rel. gap", "Clarabel ms", "solver ms",
                      "rel. diff", "Clarabel/ours", "SCS ms", "solver ms", "rel. diff", "SCS/ours"], rows))
    rows = []
    for spec in LOSSES_BENCHED:
        P = LPMProblem(step_counts(5, 5, 100.0, nA=5000), 5.0, 1.0, spec)
        t_red, red = timed(lambda: solve(P, "reduced", tol=1e-9), repeats=20)
        t_cvx, cvx = timed(lambda: solve_reduced_cvxpy(P), repeats=3)
        t_fo, fo = timed(lambda: solve(P, "first-order", tol=1e-9))
        rows.append([spec, t_red * 1e3, red.info["newton_steps"], f"{red.gap / red.value:.1e}", t_cvx * 1e3,
                     f"{(cvx.value - red.value) / red.value:.1e}", t_fo * 1e3, f"{(fo.value - red.value) / red.value:.1e}"])
        print(rows[-1], flush=True)
    out.append("\nEach loss, K_A = K_B = 5, R = 100, E_H = 5, E_W = 1: the reduced solve (median of 20) against cvxpy/Clarabel "
               "on the same reduced program and the dense first-order solver:\n")
    out.append(table(["loss", "reduced ms", "Newton steps", "rel. gap", "cvxpy ms", "rel. diff", "first-order ms",
                      "rel. diff"], rows))
    rows = []
    for K in args.long_tailed_K:
        P = LPMProblem(long_tailed_counts(K, 100.0, n_max=5000), 5.0, 1.0)
        t, r = timed(lambda: solve(P, "first-order", tol=args.long_tailed_tol))
        row = [K, t, r.iterations, f"{r.gap / r.value:.1e}", r.rank, r.status]
        for method, limit in (("sdp", args.max_clarabel_K), ("sdp-scs", args.max_scs_K)):
            row += _baseline(lambda: solve(P, method, tol=args.long_tailed_tol, force=True), r, t, K <= limit)
        rows.append(row)
        print(rows[-1], flush=True)
    out.append(f"\nLong-tailed counts n_k = 5000 * 100^(-k/(K-1)), E_H = 5, E_W = 1, first-order (numpy), "
               f"tol {args.long_tailed_tol:g} relative, against the full SDP (Clarabel, SCS):\n")
    out.append(table(["K", "seconds", "iterations", "rel. gap", "rank", "status", "Clarabel s", "rel. diff",
                      "Clarabel/ours", "SCS s", "rel. diff", "SCS/ours"], rows))
    out.append(_warm_sweep(args.warm_sweep_K, args.long_tailed_tol))
    out.append(_many_groups())
    out.append(_crossover(args.crossover_K))
    rows = []
    for K in args.penalized_K:
        for lb, label in ((None, "none"), (5e-4, "decayed"), (0.0, "free")):
            P = PenalizedLPM(step_counts(K // 2, K // 2, 100.0, nA=5000), 5e-4, 5e-4, lb)
            t_red, red = timed(lambda: solve(P, "reduced", tol=1e-9), repeats=5)
            t_fo, fo = timed(lambda: solve(P, "first-order", tol=1e-9))
            row = [K, label, t_red * 1e3, f"{red.gap / red.value:.1e}", t_fo, f"{abs(fo.value - red.value) / red.value:.1e}"]
            row += _baseline(lambda: solve(P, "sdp"), red, t_red, K <= args.max_clarabel_K)
            rows.append(row)
            print(rows[-1], flush=True)
    out.append("\nPenalized form, K_A = K_B = K/2, n_A = 5000, R = 100, lambda_W = lambda_H = 5e-4 (tol 1e-9 relative):\n")
    out.append(table(["K", "bias", "reduced ms", "reduced rel. gap", "first-order s", "f-o rel. diff", "cvxpy/Clarabel s",
                      "rel. diff", "Clarabel/reduced"], rows))
    out.append(_penalized_long_tailed(args.penalized_long_tailed_K, args.long_tailed_tol))
    return "\n".join(out)


def _penalized_long_tailed(Ks, tol: float) -> str:
    """The penalized form where only the dense solver applies (every count distinct), by bias."""
    rows = []
    for K in Ks:
        for lb, label in ((None, "none"), (5e-4, "decayed"), (0.0, "free")):
            P = PenalizedLPM(long_tailed_counts(K, 100.0, n_max=5000), 1e-4, 1e-4, lb)
            t, r = timed(lambda: solve(P, "first-order", tol=tol))
            rows.append([K, label, t, r.iterations, f"{r.gap / r.value:.1e}", r.rank, r.status])
            print(rows[-1], flush=True)
    return (f"\nPenalized form, long-tailed n_k = 5000 * 100^(-k/(K-1)), lambda_W = lambda_H = 1e-4, dense "
            f"first-order (the only solver at these sizes), tol {tol:g} relative:\n\n"
            + table(["K", "bias", "seconds", "steps", "rel. gap", "rank", "status"], rows))


def _warm_sweep(K: int, tol: float) -> str:
    """Sweeps of long-tailed ratios solved cold and from each neighbour's solution (``solve_warm``):
    the constrained form, and the penalized one without and with a free bias."""
    ratios = [10 ** (1 + 0.1 * i) for i in range(6)]
    sweeps = {"constrained, E_H = 5, E_W = 1": lambda c: LPMProblem(c, 5.0, 1.0)}
    for lb, name in ((None, "no bias"), (0.0, "free bias")):
        sweeps[f"penalized 1e-4, 1e-4, {name}"] = lambda c, lb=lb: PenalizedLPM(c, 1e-4, 1e-4, lb)
    rows = []
    for form, make in sweeps.items():
        problems = [make(long_tailed_counts(K, rho, n_max=5000)) for rho in ratios]
        runs = {}
        for label in ("cold", "warm", "warm", "cold"):  # the better of two, in both orders: a process's first
            start, warm = time.perf_counter(), ({} if label == "warm" else None)  # solves run slower
            results = [solve_warm(P, warm, tol=tol) for P in problems]
            seconds = min(time.perf_counter() - start, runs.get(label, (float("inf"),))[0])
            runs[label] = (seconds, sum(r.iterations for r in results), f"{max(r.gap / r.value for r in results):.1e}")
        pair = [[form, label, *runs[label]] for label in ("cold", "warm")]
        pair[0].append("1.00x")
        pair[1].append(f"{pair[0][2] / pair[1][2]:.2f}x")
        rows += pair
        print(pair, flush=True)
    return (f"\nSweeps of 6 long-tailed ratios rho = 10^(1 + 0.1 i), K = {K}, tol {tol:g}: each solve cold, or "
            "started from the previous one's solution (seconds: the better of two runs, cold-warm-warm-cold):\n\n"
            + table(["form", "starts", "seconds", "steps in all", "largest rel. gap", "speed-up"], rows))


def _grouped_counts(G: int, per_group: int) -> list[float]:
    """G groups of ``per_group`` classes with equal counts 5000 * 100^(-g/(G-1))."""
    return [round(5000 * 100 ** (-g / (G - 1)), 2) for g in range(G) for _ in range(per_group)]


def _many_groups() -> str:
    """The reduced solver as the number of distinct counts grows to the most `auto` gives it
    (REDUCED_MAX_GROUPS): as released (proximal gradient to the hand-over gap, then Newton) and with
    Newton from the balanced optimum (the earlier rule below 7 groups), against the dense solver."""
    from layerpeeled.solvers import REDUCED_MAX_GROUPS, newton

    rows = []
    for G in (2, 6, newton.MANY_GROUPS, REDUCED_MAX_GROUPS):
        P = LPMProblem(_grouped_counts(G, 60 // G), 5.0, 1.0)
        t_red, red = timed(lambda: solve(P, "reduced", tol=1e-9), repeats=5)
        released, newton.HANDOVER_STEPS = newton.HANDOVER_STEPS, 0
        try:
            t_old, old = timed(lambda: solve(P, "reduced", tol=1e-9), repeats=5)
        finally:
            newton.HANDOVER_STEPS = released
        t_fo, fo = timed(lambda: solve(P, "first-order", tol=1e-9))
        rows.append([G, P.K, t_red * 1e3, red.info["newton_steps"], f"{red.gap / red.value:.1e}", t_old * 1e3,
                     old.info["newton_steps"], f"{t_old / t_red:.1f}x", t_fo * 1e3,
                     f"{abs(fo.value - red.value) / red.value:.1e}", f"{t_fo / t_red:.1f}x"])
        print(rows[-1], flush=True)
    return ("\nK ~ 60 classes in G groups of equal counts 5000 * 100^(-g/(G-1)), E_H = 5, E_W = 1, tol 1e-9: "
            "the reduced solve (median of 5), the same with Newton from the balanced optimum (the earlier "
            "rule below 7 groups), and the dense first-order solve:\n\n"
            + table(["G", "K", "reduced ms", "Newton steps", "rel. gap", "Newton first ms", "Newton steps",
                     "Newton first/ours", "first-order ms", "rel. diff", "first-order/ours"], rows))


def _crossover(Ks) -> str:
    """At the most distinct counts `auto` gives the reduced solver at each K (reduced_max_groups):
    reduced against dense, the choice's justification measured."""
    from layerpeeled.solvers import choose_method, reduced_max_groups

    rows = []
    for K in Ks:
        G = reduced_max_groups(K)
        P = LPMProblem(_grouped_counts(G, -(-K // G)), 5.0, 1.0)  # at least K classes
        t_red, red = timed(lambda: solve(P, "reduced", tol=1e-9))
        t_fo, fo = timed(lambda: solve(P, "first-order", tol=1e-9))
        rows.append([P.K, G, choose_method(P), t_red, red.info["newton_steps"], f"{red.gap / red.value:.1e}", t_fo,
                     fo.iterations, f"{abs(fo.value - red.value) / red.value:.1e}", f"{t_fo / t_red:.1f}x"])
        print(rows[-1], flush=True)
    return ("\nThe most groups `auto` gives the reduced solver on the CPU at each K (G groups of equal counts "
            "5000 * 100^(-g/(G-1)), E_H = 5, E_W = 1, tol 1e-9): reduced against dense first-order:\n\n"
            + table(["K", "G", "auto picks", "reduced s", "Newton steps", "rel. gap", "first-order s", "steps",
                     "rel. diff", "first-order/reduced"], rows))


def add_args(p):
    p.add_argument("--two-level-K", type=int, nargs="+", default=[10, 20, 50])
    p.add_argument("--reduced-K", type=int, nargs="+", default=[10, 1000, 100000])
    p.add_argument("--long-tailed-K", type=int, nargs="+", default=[50, 200, 500, 1000])
    p.add_argument("--warm-sweep-K", type=int, default=200, help="K of the long-tailed sweep solved cold and warm")
    p.add_argument("--long-tailed-tol", type=float, default=1e-7)
    p.add_argument("--crossover-K", type=int, nargs="+", default=[60, 200, 500],
                   help="K at which reduced and dense solves are compared at auto's largest group count")
    p.add_argument("--penalized-K", type=int, nargs="+", default=[10, 20, 50])
    p.add_argument("--penalized-long-tailed-K", type=int, nargs="+", default=[200, 500])
    p.add_argument("--max-clarabel-K", type=int, default=50, help="largest K given to Clarabel (K = 100: tens of minutes)")
    p.add_argument("--max-scs-K", type=int, default=100, help="largest K given to SCS")
