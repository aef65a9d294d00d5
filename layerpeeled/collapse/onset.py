"""Where Minority Collapse begins, from the optimality conditions of the reduced program.

For step imbalance (group A: K_A classes of n_A, group B: K_B classes of n_A/R) the minority
classifiers coincide exactly when b_B = 0 at the optimum of the reduced program. On the face
b_B = 0 the restricted optimum has multiplier mu (the dual norm of its gradient over the free
coordinates); it is optimal for the full program iff |df/db_B| <= mu. The collapse margin
    phi_c(R) = |df/db_B| / mu - 1
is a smooth signed function of R, negative exactly in the collapsed regime: its root is the onset
R_0, found by bracketing and Brent's method on log R. The minority classifiers vanish when the
optimum is b_A = tau with everything else 0 (the majority alone forms a simplex); that point is
optimal iff phi_v(R) = max(|df/db_B|, sigma_max(df/dM)) / |df/db_A| - 1 <= 0, whose root is R_v.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from ..losses import CrossEntropy
from ..problem import LPMProblem, PenalizedLPM, step_counts
from ..solvers.newton import keep_warm, warm_start
from ..solvers.penalized import solve_penalized_reduced
from ..solvers.reduced import ReducedProgram, solve_reduced

R_MIN, R_MAX = 1.0 + 1e-9, 1e15  # R -> 1 merges the groups; beyond R_MAX we call it "never"


def margin_tol(rel: float) -> float:
    """Relative certified gap of the restricted solves, tight enough for an onset to precision rel
    (1e-12 at the default rel = 1e-9 reproduces the onsets of 1e-13 solves to 1e-11 relative, at
    E_H E_W = 5 and 100, while 1e-13 solves take minutes at R ~ 1e8: benchmarks/README.md)."""
    return min(1e-8, max(1e-12, rel * 1e-3))


def _problem(KA: int, KB: int, R: float, EH: float, EW: float, loss="cross-entropy", nA: float = 1.0) -> LPMProblem:
    return LPMProblem(step_counts(KA, KB, R, nA), EH, EW, loss)


def collapse_margin(KA: int, KB: int, R: float, EH: float = 5.0, EW: float = 1.0, tol: float = 1e-13,
                    warm: dict | None = None, loss="cross-entropy", nA: float = 1.0) -> float:
    """phi_c(R): negative iff the minority classifiers coincide at the optimum.

    ``warm``: a dict carried from call to call of one search; each restricted solve starts from the
    previous one's solution (a Newton polish from a neighbour instead of a solve from scratch)."""
    if KB < 2:
        raise ValueError(f"collapse needs at least two minority classes, got KB = {KB!r}")
    r = solve_reduced(_problem(KA, KB, R, EH, EW, loss, nA), collapsed=[1], tol=tol, warm=warm_start(warm))
    keep_warm(warm, r)
    return abs(r.state["b_gradient"][1]) / r.state["multiplier"] - 1.0


def vanish_margin(KA: int, KB: int, R: float, EH: float = 5.0, EW: float = 1.0, loss="cross-entropy",
                  nA: float = 1.0) -> float:
    """phi_v(R) (<= 0 iff the optimum has vanished minority classifiers); closed form, no solve."""
    if KA < 2:  # a single majority class cannot form a simplex on its own
        return math.inf
    prog = ReducedProgram(_problem(KA, KB, R, EH, EW, loss, nA))
    x = np.zeros(2 + 4)
    x[0] = prog.tau
    _, gb, gM = prog.derivatives(x)
    if gb[0] >= 0:  # growing the majority simplex does not lower the loss: that point is no optimum
        return math.inf
    return max(abs(gb[1]), float(np.linalg.norm(gM, 2))) / -gb[0] - 1.0


@dataclass(frozen=True)
class Onset:
    """Onsets for (K_A, K_B, E_H E_W); ``bracket`` = ratios just below/above with margins of each sign."""

    KA: int
    KB: int
    EH: float | None  # constrained form (None for the penalized one)
    EW: float | None
    onset: float | None  # R_0: smallest ratio with identical minority classifiers (None: never)
    vanish: float | None  # R_v: smallest ratio with zero minority classifiers (None: never)
    onset_bracket: tuple | None = None
    onset_margins: tuple | None = None
    vanish_bracket: tuple | None = None
    evaluations: int = 0
    seconds: float = 0.0
    notes: list = field(default_factory=list)
    penalized: dict | None = None  # penalized form: nA, lambda_W, lambda_H, lambda_b, and n_B at each onset
    loss: str = "cross-entropy"  # the loss's spec string
    nA: float | None = None  # constrained form: majority examples per class (only count-based losses see it)

    def to_dict(self) -> dict:
        return asdict(self)


def _check_classes(KA, KB) -> None:
    for name, v in (("KA", KA), ("KB", KB)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if KB < 2:
        raise ValueError(f"the onset of collapse needs KB >= 2 minority classes, got KB = {KB!r}")


def _root(fn, lo: float, hi: float, rel: float):
    """Brent's method on log R between a positive and a non-positive margin."""
    from scipy.optimize import brentq

    return math.exp(brentq(lambda t: fn(math.exp(t)), math.log(lo), math.log(hi), xtol=rel / 4, rtol=rel / 4))


def _first_sign_change(fn, start: float = R_MIN):
    """Scan R upward by decades from ``start`` to the first non-positive margin: (lo, hi) or None."""
    lo = start
    hi = 10.0
    if fn(lo) <= 0:
        return lo, lo
    while hi <= R_MAX:
        if fn(hi) <= 0:
            return lo, hi
        lo, hi = hi, hi * 10.0
    return None


def find_onset(KA: int, KB: int, EH: float = 5.0, EW: float = 1.0, rel: float = 1e-9, loss="cross-entropy",
               nA: float = 1.0) -> Onset:
    """R_0 and R_v for step imbalance, each to relative precision ``rel`` in R (counts n_A and n_A/R:
    the constrained model sees only ratios, except through count-based losses such as ldam's margins
    C / n^(1/4), whose onsets depend on ``nA``).

    Both margins are assumed to change sign once (checked: a bracket of opposite signs is returned).
    """
    start = time.perf_counter()
    _check_classes(KA, KB)
    loss = _problem(KA, KB, 2.0, EH, EW, loss, nA).loss  # validates the energies, the loss and n_A
    calls, warm = [0], {}

    def phi_c(R):
        calls[0] += 1
        return collapse_margin(KA, KB, R, EH, EW, tol=margin_tol(rel), warm=warm, loss=loss, nA=nA)

    def phi_v(R):
        calls[0] += 1
        return vanish_margin(KA, KB, R, EH, EW, loss, nA)

    out, notes = _locate(phi_c, phi_v, rel)
    return Onset(KA, KB, float(EH), float(EW), out["onset"][0], out["vanish"][0], out["onset"][1], out["onset"][2],
                 out["vanish"][1], calls[0], time.perf_counter() - start, notes, loss=loss.spec, nA=float(nA))


def _locate(phi_c, phi_v, rel: float):
    """Roots of the collapse and vanishing margins in R, each with the bracket of opposite signs."""
    out, notes = {}, []
    for key, fn in (("vanish", phi_v), ("onset", phi_c)):
        span = _first_sign_change(fn)
        if span is None:
            out[key] = (None, None, None)
            continue
        lo, hi = span
        root = lo if lo == hi else _root(fn, lo, hi, rel)
        delta = max(rel, 1e-7)
        below, above = max(root * (1 - delta), R_MIN), root * (1 + delta)
        evidence = (fn(below), fn(above))
        if root > R_MIN and not evidence[0] > 0 >= evidence[1]:  # margins at huge R drown in the solves' rounding
            notes.append(f"{'collapse' if key == 'onset' else 'vanishing'} margin changes sign near R = {root:.3g} "
                         f"but not across it (margins {evidence[0]:+.2e}, {evidence[1]:+.2e}): not resolved, "
                         "reported as none")
            out[key] = (None, None, None)
            continue
        out[key] = (root, (below, above), evidence)
    if out["onset"][0] is not None and out["vanish"][0] is not None and out["vanish"][0] < out["onset"][0] * (1 - 1e-6):
        notes.append("vanishing found below the collapse onset: check the margins")
    return out, notes


def _penalized(KA, KB, R, nA, lambda_W, lambda_H, lambda_b, loss="cross-entropy") -> PenalizedLPM:
    return PenalizedLPM(step_counts(KA, KB, R, nA), lambda_W, lambda_H, lambda_b, loss)


def penalized_collapse_margin(KA, KB, R, nA, lambda_W, lambda_H, lambda_b=None, tol=1e-12, warm=None,
                              loss="cross-entropy") -> float:
    """Penalized form: |df/db_B| / mu - 1 at the optimum with the minority classifiers held identical
    (negative iff that is the full optimum: soft-thresholding keeps b_B = 0 exactly when |df/db_B| <= mu).
    ``warm`` as in :func:`collapse_margin`."""
    P = _penalized(KA, KB, R, nA, lambda_W, lambda_H, lambda_b, loss)
    r = solve_penalized_reduced(P, collapsed=[1], tol=tol, warm=warm_start(warm))
    keep_warm(warm, r)
    return abs(r.state["b_gradient"][1]) / P.mu - 1.0


def penalized_vanish_margin(KA, KB, R, nA, lambda_W, lambda_H, lambda_b=None, tol=1e-12, warm=None,
                            loss="cross-entropy") -> float:
    """Penalized form: max(|df/db_B|, sigma_max(df/dM)) / mu - 1 at the optimum with the majority
    alone forming a simplex (b_B = 0, M = 0; the bias free as the model says): <= 0 iff the minority
    classifiers vanish at the full optimum. ``warm`` as in :func:`collapse_margin`."""
    if KA < 2:
        return math.inf
    P = _penalized(KA, KB, R, nA, lambda_W, lambda_H, lambda_b, loss)
    r = solve_penalized_reduced(P, collapsed=[1], zero_between=True, tol=tol, warm=warm_start(warm))
    keep_warm(warm, r)
    return max(abs(r.state["b_gradient"][1]), r.state["M_gradient_norm"]) / P.mu - 1.0


def penalized_collapse_threshold(KA: int, KB: int, nA: float, lambda_W: float, lambda_H: float) -> float | None:
    """The collapse onset of the penalized form in closed form (cross-entropy, any bias mode; the
    other losses change df/db_B, and their onsets are located numerically).

    On the face b_B = 0 every class of group B has the same logit in a minority row, so the
    softmax gives the target and the other K_B - 1 minority classes equal mass and df/db_B
    = -n_B / N in logit coordinates, -sqrt(n_B) / N in Y = D^{1/2} Z, whatever the rest of the
    solution. Collapse is therefore exact iff sqrt(n_B) / N <= sqrt(lambda_W lambda_H), with
    N = K_A n_A + K_B n_B: a two-cluster threshold of the kind Hong & Ling (2023) state. With
    s = sqrt(n_B) the boundary is K_B mu s^2 - s + K_A n_A mu = 0; its smaller root gives R_0 =
    n_A / s^2. Returns None where collapse holds at every R >= 1 (no root, or a root at R <= 1).
    """
    mu = math.sqrt(lambda_W * lambda_H)
    disc = 1.0 - 4.0 * KA * KB * nA * mu * mu
    if disc < 0:
        return None
    s = 2.0 * KA * nA * mu / (1.0 + math.sqrt(disc))  # the smaller root, without cancellation
    R = nA / (s * s)
    return R if R > 1.0 else None


def find_penalized_onset(KA: int, KB: int, nA: float, lambda_W: float, lambda_H: float, lambda_b: float | None = None,
                         rel: float = 1e-9, loss="cross-entropy") -> Onset:
    """R_0 and R_v (and n_B = n_A / R at each) of the penalized form for step imbalance with n_A
    majority examples per class, each to relative precision ``rel`` in R."""
    start = time.perf_counter()
    _check_classes(KA, KB)
    loss = _penalized(KA, KB, 2.0, nA, lambda_W, lambda_H, lambda_b, loss).loss  # validates the penalties, n_A, loss
    calls, warm_c, warm_v = [0], {}, {}
    args = (nA, lambda_W, lambda_H, lambda_b)

    def phi_c(R):
        calls[0] += 1
        return penalized_collapse_margin(KA, KB, R, *args, tol=margin_tol(rel), warm=warm_c, loss=loss)

    def phi_v(R):
        calls[0] += 1
        return penalized_vanish_margin(KA, KB, R, *args, tol=margin_tol(rel), warm=warm_v, loss=loss)

    out, notes = _locate(phi_c, phi_v, rel)
    nB = {k: None if out[k][0] is None else nA / out[k][0] for k in ("onset", "vanish")}
    info = {"nA": float(nA), "lambda_W": float(lambda_W), "lambda_H": float(lambda_H),
            "lambda_b": None if lambda_b is None else float(lambda_b), "onset_nB": nB["onset"], "vanish_nB": nB["vanish"],
            "onset_closed_form": penalized_collapse_threshold(KA, KB, nA, lambda_W, lambda_H)
            if loss == CrossEntropy() else None}
    return Onset(KA, KB, None, None, out["onset"][0], out["vanish"][0], out["onset"][1], out["onset"][2],
                 out["vanish"][1], calls[0], time.perf_counter() - start, notes, penalized=info, loss=loss.spec)


def onset_vs_energy(KA: int, KB: int, products, rel: float = 1e-7, client=None, progress: bool = False,
                    loss="cross-entropy", nA: float = 1.0) -> list[Onset]:
    """R_0 and R_v as functions of E_H E_W (the model depends on the product only); with a Dask
    ``client`` each product is one task."""
    items = [(KA, KB, float(E), 1.0, rel, loss, nA) for E in products]
    if client is None:
        return [find_onset(*item) for item in items]
    from ..sweeps.parallel import run_tasks

    return run_tasks(find_onset, items, client, progress=progress, desc="onsets")
