"""The network figures (b) cosine and minority accuracy vs R per K_A, (c) model vs networks at two
weight decays, (d) oversampling, the bridge overlay of predicted on measured minority geometry, and
NC1-NC4 over training. Runs that differ only by their seed are one point: the mean, with a band of
plus or minus one standard deviation across seeds."""
from __future__ import annotations

import math

import numpy as np

from ..imbalance import ratio_from_json
from ..plotting import pyplot, save_figure

plt = pyplot()


def _x(R) -> float:
    """Plot position of a ratio: log10 R, with R = inf one decade right of the largest finite value."""
    R = ratio_from_json(R)
    return math.inf if math.isinf(R) else math.log10(R)


def _axis(ax, ratios):
    xs = [_x(R) for R in ratios]
    finite = [x for x in xs if math.isfinite(x)]
    inf_at = (max(finite) if finite else 0) + 1
    ticks = sorted(set(x if math.isfinite(x) else inf_at for x in xs))
    ax.set_xticks(ticks, [f"$10^{{{t:g}}}$" if t != inf_at else "$\\infty$" for t in ticks])
    ax.set_xlabel("imbalance ratio R")
    ax.grid(alpha=0.3)
    return lambda R: inf_at if math.isinf(_x(R)) else _x(R)


def _nan(v):
    return np.nan if v is None else v


def _by(records, key):
    out = {}
    for r in records:
        out.setdefault(r["config"][key], []).append(r)
    return out


def _points(items, x_of, value):
    """(xs, means, stds) over the items sharing each x (the seeds of one configuration), sorted by x."""
    by = {}
    for item in items:
        by.setdefault(x_of(item), []).append(value(item))
    xs = sorted(by)
    vals = [[v for v in by[x] if v is not None] for x in xs]
    return (xs, np.array([np.mean(v) if v else np.nan for v in vals]),
            np.array([np.std(v) if len(v) > 1 else 0.0 for v in vals]))


def _line(ax, points, style, color, label, **kw):
    xs, mean, std = points
    ax.plot(xs, mean, style, color=color, label=label, **kw)
    if np.any(std > 0):
        ax.fill_between(xs, mean - std, mean + std, color=color, alpha=0.15, lw=0)


def _predicted(bridge: dict, calibration: str, key: str = "minority_w_cos"):
    """A calibration's prediction, None where it does not apply to the run (no twin, no bias...)."""
    return bridge["predicted"].get(calibration, {}).get(key)


def seed_spread(records, key: str = "minority_w_cos") -> float | None:
    """Mean over configurations of the standard deviation of ``key`` across seeds (None: one seed)."""
    from .scales import without_seed

    groups = {}
    for r in records:
        if r.get(key) is not None:
            groups.setdefault(without_seed(r["config"]), []).append(r[key])
    stds = [np.std(v) for v in groups.values() if len(v) > 1]
    return float(np.mean(stds)) if stds else None


def networks_vs_ratio(records, folder, title, formats=("png",)):
    """Figure (b): measured mean minority classifier cosine and minority test accuracy against R, per K_A."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, key, label in ((a1, "minority_w_cos", "mean cosine between minority classifiers"),
                           (a2, "test_acc_minority", "test accuracy on the minority classes")):
        pos = _axis(ax, [r["config"]["R"] for r in records])
        for i, (KA, recs) in enumerate(sorted(_by(records, "KA").items())):
            _line(ax, _points(recs, lambda r: pos(r["config"]["R"]), lambda r: r.get(key)), "o-", f"C{i}",
                  f"$K_A$ = {KA}")
        ax.set_ylabel(label)
        ax.legend()
    fig.suptitle(title)
    return save_figure(fig, folder, "networks_cosine_vs_R", formats)


def model_vs_networks(records, bridges, folder, title, formats=("png",)):
    """Figure (c): networks at each weight decay (solid) and two model calibrations (dashed, dotted)."""
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    pos = _axis(ax, [r["config"]["R"] for r in records])
    pairs = list(zip(records, bridges))
    x_of = lambda p: pos(p[0]["config"]["R"])
    for i, wd in enumerate(sorted({r["config"]["weight_decay"] for r in records})):
        sel = [p for p in pairs if p[0]["config"]["weight_decay"] == wd]
        _line(ax, _points(sel, x_of, lambda p: p[0]["minority_w_cos"]), "o-", f"C{i}", f"network, weight decay {wd:g}")
        _line(ax, _points(sel, x_of, lambda p: _predicted(p[1], "measured")), "s--", f"C{i}",
              f"LPM with the measured $E_H, E_W$, weight decay {wd:g}", mfc="none")
        _line(ax, _points(sel, x_of, lambda p: _predicted(p[1], "weight-decay")), "^:", f"C{i}",
              f"penalized LPM at weight decay {wd:g}", mfc="none")
    ax.set_ylabel("mean cosine between minority classifiers")
    ax.set_title(title)
    ax.legend(fontsize=7)
    return save_figure(fig, folder, "model_vs_networks", formats)


def oversampling(records, bridges, folder, title, formats=("png",)):
    """Figure (d): minority cosine and test accuracy against the oversampling factor w_r."""
    pairs = list(zip(records, bridges))
    x_of = lambda p: p[0]["config"]["wr"]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2))
    _line(a1, _points(pairs, x_of, lambda p: p[0]["minority_w_cos"]), "o-", "C0", "network")
    _line(a1, _points(pairs, x_of, lambda p: _predicted(p[1], "measured")), "s--", "C1",
          "LPM (measured energies)", mfc="none")
    a1.set_ylabel("mean cosine between minority classifiers")
    _line(a2, _points(pairs, x_of, lambda p: p[0]["test_acc"]), "o-", "C0", "test accuracy, all classes")
    _line(a2, _points(pairs, x_of, lambda p: p[0]["test_acc_minority"]), "s-", "C2", "test accuracy, minority classes")
    a2.set_ylabel("test accuracy")
    for a in (a1, a2):
        a.set_xscale("log")
        a.set_xlabel("oversampling factor $w_r$")
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    fig.suptitle(title)
    return save_figure(fig, folder, "networks_oversampling", formats)


def bridge_overlay(records, bridges, folder, title, formats=("png",)):
    """Each calibration's prediction (dashed) over the measured minority geometry (solid)."""
    from .bridge import CALIBRATIONS

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, key, label in ((axes[0], "minority_w_cos", "mean cosine between minority classifiers"),
                           (axes[1], "norm_ratio", "minority / majority squared classifier norm")):
        pos = _axis(ax, [r["config"]["R"] for r in records])
        groups = {}
        for r, b in zip(records, bridges):
            groups.setdefault((r["config"]["KA"], r["config"]["weight_decay"], r["config"]["wr"]), []).append((r, b))
        for i, ((KA, wd, wr), pairs) in enumerate(sorted(groups.items())):
            x_of = lambda p: pos(p[0]["config"]["R"])
            tag = f"$K_A$={KA}, wd={wd:g}" + (f", $w_r$={wr}" if wr != 1 else "")
            _line(ax, _points(pairs, x_of, lambda p: p[1]["measured"][key]), "o-", f"C{i}", f"network, {tag}", lw=2)
            for style, cal in zip(("s--", "^:", "v-.", "D:"), CALIBRATIONS):
                _line(ax, _points(pairs, x_of, lambda p: _predicted(p[1], cal, key)), style, f"C{i}",
                      f"{CALIBRATIONS[cal]}, {tag}", mfc="none", alpha=0.8)
        ax.set_ylabel(label)
        ax.legend(fontsize=6)
    fig.suptitle(title)
    return save_figure(fig, folder, "bridge_model_vs_network", formats)


NC_PANELS = (("nc1", "NC1 (within-class variability)", "log"),
             ("nc2_etf_cos_classifier", "NC2: mean |cos + 1/(K-1)|, classifiers", "linear"),
             ("nc3", "NC3 (self-duality)", "linear"), ("nc4", "NC4 (network vs nearest centre)", "linear"))


def nc_over_training(histories: list[tuple[str, list[dict]]], folder, title, formats=("png",)):
    """NC1-NC4 against the epoch for every run (``histories``: (label, records over epochs))."""
    fig, axes = plt.subplots(2, 2, figsize=(11, 7), sharex=True)
    for ax, (key, label, scale) in zip(axes.flat, NC_PANELS):
        for i, (name, recs) in enumerate(histories):
            ax.plot([r["epoch"] for r in recs], [_nan(r.get(key)) for r in recs], "o-", ms=2, color=f"C{i % 10}",
                    label=name)
        ax.set_xscale("log")
        ax.set_yscale(scale)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("epoch")
    axes[0][0].legend(fontsize=6)
    fig.suptitle(title)
    return save_figure(fig, folder, "nc_over_training", formats)


def _collapse_value(cos, vanished):
    """A minority cosine for plotting: vanished classifiers (full collapse) plot at 1."""
    return 1.0 if vanished else _nan(cos)


def remedies_model(curves: dict, folder, title, formats=("png",)):
    """The model's minority cosines against R for each remedy: classifiers and class means."""
    from .remedies import REMEDIES

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8), sharey=True)
    for ax, key, label in ((axes[0], "minority_w_cos", "mean cosine between minority classifiers"),
                           (axes[1], "minority_h_cos", "mean cosine between minority class means")):
        for i, (name, recs) in enumerate(curves.items()):
            ys = [_collapse_value(r[key], r["minority_vanished"]) for r in recs]
            ax.plot([r["R"] for r in recs], ys, "o-" if i < 5 else "s--", ms=3, color=f"C{i}", label=REMEDIES[name].label)
            gone = [r["R"] for r in recs if r["minority_vanished"]]
            ax.plot(gone, [1.0] * len(gone), "x", color=f"C{i}", ms=6)
        ax.set_xscale("log")
        ax.set_xlabel("imbalance ratio R = $n_A/n_B$")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, loc="center right")
    fig.suptitle(title + "\nx: the minority classifiers vanish (full collapse, cosine undefined, drawn at 1)")
    return save_figure(fig, folder, "remedies_model", formats)


def remedies_networks(rows: list[dict], folder, title, formats=("png",)):
    """Networks (solid) and their model twins (dashed, open) per remedy: minority cosine and accuracy."""
    from .remedies import REMEDIES

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(13, 4.8))
    for ax, (net, model), label in ((a1, ("cos network", "cos model"), "mean cosine between minority classifiers"),
                                    (a2, ("minority test acc", "model minority recognised"),
                                     "minority accuracy")):
        pos = _axis(ax, [r["R"] for r in rows])
        for i, name in enumerate(REMEDIES):
            sel = [r for r in rows if r["remedy"] == name]
            if not sel:
                continue
            x_of = lambda r: pos(r["R"])
            _line(ax, _points(sel, x_of, lambda r: r[net]), "o-", f"C{i}", REMEDIES[name].label)
            _line(ax, _points(sel, x_of, lambda r: 1.0 if model == "cos model" and r["model vanished"] else r[model]),
                  "s--", f"C{i}", None, mfc="none", alpha=0.8)
        ax.set_ylabel(label)
    a2.legend(fontsize=7)
    fig.suptitle(title + "\nsolid: networks (accuracy on the test set); dashed, open: the LPM at each network's measured "
                 "energies, counts, loss, classifier (accuracy: minority class means recognised)")
    return save_figure(fig, folder, "remedies_networks", formats)
