"""Minority Collapse: figure (a)'s 41-point model sweep plus the three onsets, against the paper's
approach of 41 full SDP solves with SCS (issue: Minority Collapse); the remedies figure's model part
against the same solves written in cvxpy (issue: remedies)."""
from __future__ import annotations

import time

from common import table

from layerpeeled import LPMProblem, solve, step_counts
from layerpeeled.collapse import find_onset
from layerpeeled.collapse.onset import find_penalized_onset
from layerpeeled.collapse.sweep import model_configs, paper_ratios, sweep_in_memory


def run(args) -> str:
    ratios = paper_ratios()
    t = time.perf_counter()
    recs = sweep_in_memory(model_configs(ratios, KA=[5], KB=[5]))
    t_sweep = time.perf_counter() - t
    t = time.perf_counter()
    onsets = {KA: find_onset(KA, 10 - KA, 5.0, 1.0) for KA in (3, 5, 7)}
    t_onsets = time.perf_counter() - t
    ours = t_sweep + t_onsets
    t = time.perf_counter()
    worst = 0.0
    for R, rec in zip(ratios, recs):
        r = solve(LPMProblem(step_counts(5, 5, R), 5.0, 1.0), "sdp-scs")
        worst = max(worst, abs(r.value - rec["value"]) / rec["value"])
    t_scs = time.perf_counter() - t
    rows = [["41 reduced solves (K_A = 5)", t_sweep, ""], ["3 exact onsets (K_A = 3, 5, 7; rel 1e-9)", t_onsets,
            ", ".join(f"R_0({k}) = {o.onset:.9g}" for k, o in onsets.items())],
            ["ours in total", ours, ""], ["41 SCS solves of the full SDP (the paper's approach)", t_scs,
            f"largest relative value difference to ours {worst:.1e}"], ["SCS / ours", f"{t_scs / ours:.0f}x", ""]]
    text = "K = 10, E_H = 5, E_W = 1, R = 10^(0.1 i), i = 0..40:\n\n" + table(["work", "seconds", "notes"], rows)
    rows = []
    for E in args.onset_products:
        t = time.perf_counter()
        o = find_onset(5, 5, E, 1.0, rel=args.onset_rel)
        rows.append(["constrained", f"E_H E_W = {E:g}", time.perf_counter() - t, o.evaluations, o.onset, o.vanish])
        print(rows[-1], flush=True)
    for lb in [None if b == "none" else float(b) for b in args.onset_biases]:
        t = time.perf_counter()
        o = find_penalized_onset(5, 5, 5000.0, 5e-4, 5e-4, lb, rel=args.onset_rel)
        rows.append(["penalized", f"n_A = 5000, lambda = 5e-4, lambda_b = {lb}", time.perf_counter() - t, o.evaluations,
                     o.onset, o.vanish])
        print(rows[-1], flush=True)
    return text + (f"\n\nOnsets, K_A = K_B = 5, relative precision {args.onset_rel:g} in R:\n\n"
                   + table(["form", "setting", "seconds", "margin evaluations", "R_0", "R_v"], rows)) + remedies()


def remedies() -> str:
    """The model part of `lpm reproduce remedies` (9 remedies x 41 ratios, n_A = 1000), each remedy's
    curve timed, beside the same reduced programs solved by Clarabel through cvxpy."""
    from layerpeeled.reproduce.remedies import REMEDIES, model_curves, model_problem
    from layerpeeled.solvers.reduced import solve_reduced_cvxpy

    ratios, rows, total, worst = paper_ratios(), [], 0.0, 0.0
    for name, remedy in REMEDIES.items():
        t = time.perf_counter()
        curve = model_curves(ratios, 1000.0, remedies={name: remedy})[name]
        ours = time.perf_counter() - t
        total += ours
        if remedy.classifier != "learned":
            rows.append([remedy.label, ours, "", "", "fixed ETF: no cvxpy twin of its first-order method"])
            continue
        t = time.perf_counter()
        for R, rec in zip(ratios, curve):
            ref = solve_reduced_cvxpy(model_problem(remedy, R, 1000.0))
            worst = max(worst, abs(ref.value - rec["value"]) / rec["value"])
        cvx = time.perf_counter() - t
        rows.append([remedy.label, ours, cvx, f"{cvx / ours:.0f}x", ""])
    rows.append(["all nine remedies (the figure's model part)", total, "", "", f"largest relative value difference "
                 f"to cvxpy {worst:.1e}"])
    return ("\n\nThe remedies figure's model part (K = 10, K_A = 5, n_A = 1000, E_H = 5, E_W = 1, 41 ratios per "
            "remedy):\n\n" + table(["remedy", "seconds", "cvxpy + Clarabel seconds", "cvxpy / ours", "notes"], rows))


def add_args(p):
    p.add_argument("--onset-products", type=float, nargs="+", default=[5.0, 100.0, 1000.0])
    p.add_argument("--onset-rel", type=float, default=1e-9)
    p.add_argument("--onset-biases", nargs="+", default=["none", "5e-4", "0"],
                   help="lambda_b of the penalized onsets: none (no bias), a decay, or 0 (free)")
