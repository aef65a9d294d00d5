"""The network figures (b) cosine vs R per K_A, (c) model vs networks at two weight decays,
(d) oversampling, and the bridge overlay of predicted on measured minority geometry."""
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


def networks_vs_ratio(records, folder, title, formats=("png",)):
    """Figure (b): measured mean minority classifier cosine against R, one curve per K_A."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    pos = _axis(ax, [r["config"]["R"] for r in records])
    for i, (KA, recs) in enumerate(sorted(_by(records, "KA").items())):
        recs = sorted(recs, key=lambda r: pos(r["config"]["R"]))
        ax.plot([pos(r["config"]["R"]) for r in recs], [_nan(r["minority_w_cos"]) for r in recs], "o-", color=f"C{i}",
                label=f"$K_A$ = {KA}")
    ax.set_ylabel("mean cosine between minority classifiers")
    ax.set_title(title)
    ax.legend()
    return save_figure(fig, folder, "networks_cosine_vs_R", formats)


def model_vs_networks(records, bridges, folder, title, formats=("png",)):
    """Figure (c): networks at each weight decay (solid) and the LPM with their measured energies (dashed)."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    pos = _axis(ax, [r["config"]["R"] for r in records])
    pairs = list(zip(records, bridges))
    for i, wd in enumerate(sorted({r["config"]["weight_decay"] for r in records})):
        sel = sorted([p for p in pairs if p[0]["config"]["weight_decay"] == wd], key=lambda p: pos(p[0]["config"]["R"]))
        xs = [pos(r["config"]["R"]) for r, _ in sel]
        ax.plot(xs, [_nan(r["minority_w_cos"]) for r, _ in sel], "o-", color=f"C{i}", label=f"network, weight decay {wd:g}")
        ax.plot(xs, [_nan(b["predicted"]["minority_w_cos"]) for _, b in sel], "s--", mfc="none", color=f"C{i}",
                label=f"LPM with the measured $E_H, E_W$, weight decay {wd:g}")
    ax.set_ylabel("mean cosine between minority classifiers")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return save_figure(fig, folder, "model_vs_networks", formats)


def oversampling(records, bridges, folder, title, formats=("png",)):
    """Figure (d): minority cosine and test accuracy against the oversampling factor w_r."""
    pairs = sorted(zip(records, bridges), key=lambda p: p[0]["config"]["wr"])
    w = [r["config"]["wr"] for r, _ in pairs]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2))
    a1.plot(w, [_nan(r["minority_w_cos"]) for r, _ in pairs], "o-", label="network")
    a1.plot(w, [_nan(b["predicted"]["minority_w_cos"]) for _, b in pairs], "s--", mfc="none", label="LPM (measured energies)")
    a1.set_ylabel("mean cosine between minority classifiers")
    a2.plot(w, [r["test_acc"] for r, _ in pairs], "o-", label="test accuracy, all classes")
    a2.plot(w, [_nan(r["test_acc_minority"]) for r, _ in pairs], "s-", label="test accuracy, minority classes")
    a2.set_ylabel("test accuracy")
    for a in (a1, a2):
        a.set_xscale("log")
        a.set_xlabel("oversampling factor $w_r$")
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    fig.suptitle(title)
    return save_figure(fig, folder, "networks_oversampling", formats)


def bridge_overlay(records, bridges, folder, title, formats=("png",)):
    """Predicted (LPM with the network's energies and counts) over measured minority geometry."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, label in ((a1, "minority_w_cos", "mean cosine between minority classifiers"),
                           (a2, "norm_ratio", "minority / majority squared classifier norm")):
        pos = _axis(ax, [r["config"]["R"] for r in records])
        groups = {}
        for r, b in zip(records, bridges):
            groups.setdefault((r["config"]["KA"], r["config"]["weight_decay"], r["config"]["wr"]), []).append((r, b))
        for i, ((KA, wd, wr), pairs) in enumerate(sorted(groups.items())):
            pairs.sort(key=lambda p: pos(p[0]["config"]["R"]))
            xs = [pos(r["config"]["R"]) for r, _ in pairs]
            tag = f"$K_A$={KA}, wd={wd:g}" + (f", $w_r$={wr}" if wr != 1 else "")
            ax.plot(xs, [_nan(b["measured"][key]) for _, b in pairs], "o-", color=f"C{i}", label=f"network, {tag}")
            ax.plot(xs, [_nan(b["predicted"][key]) for _, b in pairs], "s--", mfc="none", color=f"C{i}", label=f"LPM, {tag}")
        ax.set_ylabel(label)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    return save_figure(fig, folder, "bridge_model_vs_network", formats)
