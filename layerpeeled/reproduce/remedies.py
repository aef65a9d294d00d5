"""The imbalance remedies compared by ``lpm reproduce remedies``: what each changes in training and
in the model, and which remedy a training configuration applies.

Oversampling and re-weighting rebalance fully (w_r = R, the usual practice): the model then sees
balanced counts (SPEC §2.7). The losses take the parameters of their papers' common settings; the
fixed ETF classifier (Yang et al. 2022) trains with cross-entropy.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..networks.config import DEFAULT_CLASSIFIER, DEFAULT_LOSS


@dataclass(frozen=True)
class Remedy:
    label: str
    loss: str = DEFAULT_LOSS
    classifier: str = DEFAULT_CLASSIFIER
    rebalance: str | None = None  # "wr" (oversampling) or "reweight": a factor R on the minority

    def training(self, R: float) -> dict:
        """The training-configuration fields of this remedy at imbalance ratio R."""
        out = {}
        if self.loss != DEFAULT_LOSS:
            out["loss"] = self.loss
        if self.classifier != DEFAULT_CLASSIFIER:
            out["classifier"] = self.classifier
        if self.rebalance:
            out[self.rebalance] = int(round(R))
        return out

    def model_counts(self, counts, KA: int, R: float):
        """The class counts the model sees (rebalancing multiplies the minority's by R)."""
        return [n * R if self.rebalance and k >= KA else n for k, n in enumerate(counts)]


REMEDIES = {
    "cross-entropy": Remedy("cross-entropy (no remedy)"),
    "oversample": Remedy("oversampling, w_r = R", rebalance="wr"),
    "reweight": Remedy("loss re-weighting, w_r = R", rebalance="reweight"),
    "la": Remedy("logit adjustment (la, tau = 1)", loss="la:tau=1"),
    "vs": Remedy("vector scaling (vs, gamma = 0.2, tau = 1)", loss="vs:gamma=0.2,tau=1"),
    "cdt": Remedy("class-dependent temperature (cdt, gamma = 0.3)", loss="cdt:gamma=0.3"),
    "ldam": Remedy("LDAM margins (ldam, C = 0.5)", loss="ldam:C=0.5"),
    "ls": Remedy("label smoothing (ls, eps = 0.1)", loss="ls:eps=0.1"),
    "etf": Remedy("fixed simplex-ETF classifier", classifier="etf"),
}


def remedy_of(config: dict) -> str:
    """Which of :data:`REMEDIES` a training configuration (JSON) applies; ValueError for none or several."""
    found = [name for name, r in REMEDIES.items()
             if config.get("loss", DEFAULT_LOSS) == r.loss and config.get("classifier", DEFAULT_CLASSIFIER) == r.classifier
             and all((config.get(f, 1) > 1) == (r.rebalance == f) for f in ("wr", "reweight"))]
    if len(found) != 1:
        raise ValueError(f"configuration applies no single remedy of {list(REMEDIES)}: loss {config.get('loss')}, "
                         f"classifier {config.get('classifier')}, wr {config.get('wr')}, reweight {config.get('reweight')}")
    return found[0]


COLLAPSE_COS = 0.5  # a mean minority classifier cosine at or above this (or vanished classifiers) counts as collapse


def model_problem(remedy: Remedy, R: float, nA: float, EH: float = 5.0, EW: float = 1.0, KA: int = 5, K: int = 10):
    """The constrained LPM of a remedy at step imbalance R (K_A classes of n_A examples, the rest
    n_A / R): counts rebalanced for oversampling and re-weighting, its loss, its classifier."""
    from ..problem import LPMProblem, step_counts

    counts = remedy.model_counts(step_counts(KA, K - KA, R, nA), KA, R)
    return LPMProblem(counts, EH, EW, remedy.loss, remedy.classifier)


def minority_recognised(result, KA: int) -> float | None:
    """The model's minority accuracy on its own class means: the share of minority classes (K_A..K-1)
    whose logit row puts their own class on top (a tie among m classes counts 1/m)."""
    Z = result.logits
    if KA >= len(Z):
        return None
    scores = []
    for k in range(KA, len(Z)):
        top = np.isclose(Z[k], Z[k].max(), rtol=1e-9, atol=1e-9)
        scores.append(top[k] / top.sum())
    return float(np.mean(scores))


def model_curves(ratios, nA: float, EH: float = 5.0, EW: float = 1.0, KA: int = 5, K: int = 10,
                 remedies: dict | None = None) -> dict:
    """{remedy: [record per R]} for ``remedies`` (default all) with the minority classifier and
    class-mean cosines, whether the minority classifiers vanished, the recognised minority share,
    the optimal value and its certified gap."""
    from ..collapse.sweep import solve_warm

    out = {}
    for name, remedy in (REMEDIES if remedies is None else remedies).items():
        warm, recs = {}, []
        for R in ratios:
            res = solve_warm(model_problem(remedy, R, nA, EH, EW, KA, K), warm)
            flat = res.geometry.flat()
            recs.append({"R": R, "value": res.value, "gap": res.gap, "minority_w_cos": flat.get("minority_w_cos"),
                         "minority_h_cos": flat.get("minority_h_cos"), "minority_vanished": flat.get("minority_vanished"),
                         "minority_recognised": minority_recognised(res, KA)})
        out[name] = recs
    return out


def model_onsets(nA: float, EH: float = 5.0, EW: float = 1.0, KA: int = 5, K: int = 10, rel: float = 1e-7) -> dict:
    """{remedy: exact Onset} for the remedies that change only the loss (cross-entropy included): the
    rebalanced remedies are the balanced model at every R, and a fixed classifier has no onset."""
    from ..collapse.onset import find_onset

    return {name: find_onset(KA, K - KA, EH, EW, rel=rel, loss=r.loss, nA=nA)
            for name, r in REMEDIES.items() if not r.rebalance and r.classifier == DEFAULT_CLASSIFIER}


def collapsed(cos: float | None, vanished: bool | None) -> bool:
    """Minority Collapse by :data:`COLLAPSE_COS`: a vanished minority counts as collapsed."""
    return bool(vanished) or (cos is not None and cos >= COLLAPSE_COS)


def network_row(record: dict) -> dict:
    """One trained network of the remedies series beside its model twin (the constrained LPM at its
    measured energies, with its counts, loss and classifier): minority geometry and accuracy. Class
    means enter through the centred distance to the twin only: a network's recorded class-mean
    cosines are of uncentred ReLU features and do not compare with the model's."""
    from ..solvers import solve
    from .bridge import model_problem as bridge_problem

    config = record["config"]
    problem = bridge_problem(record, config, "measured")
    twin = None if problem is None else solve(problem)
    flat = {} if twin is None else twin.geometry.flat()
    row = {"remedy": remedy_of(config), "R": config["R"], "seed": config["seed"],
           "test acc": record["test_acc"], "minority test acc": record["test_acc_minority"],
           "model minority recognised": None if twin is None else minority_recognised(twin, config["KA"]),
           "cos network": record["minority_w_cos"], "cos model": flat.get("minority_w_cos"),
           "W to model": record.get("w_model_distance"), "H to model": record.get("h_model_distance"),
           "E_H": record["EH"], "E_W": record["EW"]}
    row["network collapsed"] = collapsed(record["minority_w_cos"], record.get("minority_vanished"))
    row["model vanished"] = flat.get("minority_vanished")
    row["model collapsed"] = None if twin is None else collapsed(flat.get("minority_w_cos"), flat.get("minority_vanished"))
    return row


def disagreements(rows: list[dict]) -> list[str]:
    """In words, each remedy and ratio where the model and the networks disagree on collapse (by the
    majority vote of the seeds)."""
    from ..imbalance import ratio_label

    out = []
    for name in REMEDIES:
        for R in dict.fromkeys(r["R"] for r in rows if r["remedy"] == name):
            sel = [r for r in rows if r["remedy"] == name and r["R"] == R and r["model collapsed"] is not None]
            if not sel:
                continue
            net = 2 * sum(r["network collapsed"] for r in sel) > len(sel)
            model = 2 * sum(r["model collapsed"] for r in sel) > len(sel)
            if net != model:
                mean = lambda key: np.mean([r[key] if r[key] is not None else 1.0 for r in sel])
                out.append(f"{REMEDIES[name].label} at R = {ratio_label(R)}: the {'model' if model else 'network'} collapses "
                           f"and the {'network' if model else 'model'} does not (minority cosine: network "
                           f"{mean('cos network'):.2f}, model {mean('cos model'):.2f})")
    return out


def lost_minorities(rows: list[dict]) -> list[str]:
    """Each remedy and ratio where a network recognised no minority test image (collapsed or not)."""
    from ..imbalance import ratio_label

    return sorted({f"{REMEDIES[r['remedy']].label} at R = {ratio_label(r['R'])}" for r in rows
                   if r["minority test acc"] == 0})


def _first_collapse(recs) -> str:
    hit = [r["R"] for r in recs if collapsed(r["minority_w_cos"], r["minority_vanished"])]
    return f"collapses from R = {hit[0]:.3g}" if hit else "does not collapse up to R = " + f"{recs[-1]['R']:.3g}"


def remedies_sections(records: list[dict], scale, figdir, title: str, formats, timings: dict,
                      EH: float = 5.0, EW: float = 1.0) -> list[dict]:
    """The report's two remedies sections: the model's curves (at E_H, E_W and the series' n_A) and
    the networks beside their model twins. ``timings`` receives the seconds each part took."""
    import time

    from ..collapse.sweep import paper_ratios
    from ..imbalance import ratio_label
    from ..networks.config import TrainConfig
    from . import figures as netfig

    config = TrainConfig.from_json({**records[0]["config"], "data_dir": None})
    nA, KA = float(config.majority_size), config.KA
    t = time.perf_counter()
    curves = model_curves(paper_ratios(), nA, EH, EW, KA)
    onsets = model_onsets(nA, EH, EW, KA)
    timings["remedies model"] = time.perf_counter() - t
    paths = netfig.remedies_model(curves, figdir, f"The LPM per remedy: K = 10, $K_A$ = {KA}, $n_A$ = {nA:g}, "
                                  f"$E_H$ = {EH:g}, $E_W$ = {EW:g}", formats)
    words = "; ".join(f"{REMEDIES[n].label} {_first_collapse(recs)}" for n, recs in curves.items())
    table = [{"remedy": REMEDIES[n].label, "first collapse on the grid (cosine >= 0.5)": _first_collapse(recs),
              "exact onset R_0": onsets[n].onset if n in onsets else None,
              "minority vanishes from R_v": onsets[n].vanish if n in onsets else None,
              "note": "; ".join(onsets[n].notes) if n in onsets else "no onset: " + (
                  "the balanced model at every R" if REMEDIES[n].rebalance else "the classifier is fixed")}
             for n, recs in curves.items()]
    model_section = {"title": "Remedies in the model: minority cosines against R", "figures": paths[:1], "table": table,
                     "text": f"The constrained LPM with each remedy's loss, classifier and rebalanced counts (K = 10, "
                             f"K_A = {KA}, n_A = {nA:g}, E_H = {EH:g}, E_W = {EW:g}, R = 10^(0.1 i), i = 0..40), every "
                             f"solve certified. Collapse here means a mean minority classifier cosine >= {COLLAPSE_COS} or "
                             f"vanished minority classifiers: {words}. The table adds each loss's exact onsets (R_0: the minority "
                             f"classifiers coincide; R_v: they vanish), located to 1e-7 in R. Computed in "
                             f"{timings['remedies model']:.1f} s.",
                     "settings": {"K": 10, "KA": KA, "nA": nA, "EH": EH, "EW": EW,
                                  "remedies": {n: r.label for n, r in REMEDIES.items()}}}
    t = time.perf_counter()
    rows = [network_row(r) for r in records]
    paths = netfig.remedies_networks(rows, figdir, f"Remedies in networks: {title}", formats)
    timings["remedies networks"] = time.perf_counter() - t
    found = disagreements(rows)
    verdict = ("Where the model and the networks disagree on collapse: " + "; ".join(found) + "."
               if found else "The model and the networks agree on collapse for every remedy and ratio.")
    lost = lost_minorities(rows)
    if lost:
        verdict += " Networks that recognise no minority test image at all: " + "; ".join(lost) + "."
    blown = [f"{REMEDIES[r['remedy']].label} at R = {ratio_label(r['R'])} (E_H E_W = {r['E_H'] * r['E_W']:.3g})" for r in rows
             if r["model collapsed"] is None]
    if blown:
        verdict += (" Without a model twin, their energies beyond what double precision resolves (norms that "
                    "grew without bound in training): " + "; ".join(blown) + ".")
    net_section = {"title": "Remedies in networks, each beside its model twin", "figures": paths[:1],
                   "text": f"Networks trained with each remedy at R in {sorted(scale.remedy_ratios)}, each set beside the "
                           "constrained LPM with the same class counts, measured energies, loss and classifier (its "
                           "model twin). 'model minority recognised': the share of minority classes whose own logit "
                           "tops their class mean's logit row in the model (ties shared), the model's counterpart of "
                           "minority accuracy. 'W to model', 'H to model': normalised Frobenius distances of the "
                           "network's classifier Gram and centred class-mean Gram to the twin's. Collapse: minority "
                           f"classifier cosine >= {COLLAPSE_COS} (a fixed-ETF classifier cannot collapse; its class "
                           "means can). " + verdict,
                   "table": rows}
    return [model_section, net_section]
