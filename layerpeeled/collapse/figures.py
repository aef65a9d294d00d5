"""The model figures: (a) minority cosine against R with onsets and norms, (b) a phase diagram
of the onset over (K_A, E_H E_W), (c) minority cosine against the oversampling factor."""
from __future__ import annotations

import numpy as np

from ..plotting import pyplot, save_figure

plt = pyplot()
from .mitigation import min_oversampling
from .onset import find_onset, find_penalized_onset, onset_vs_energy, penalized_collapse_threshold
from .sweep import model_configs, paper_ratios, sweep_in_memory


def _nan(v):
    return np.nan if v is None else v


def _penalized_title(penalized: dict) -> str:
    bias = "no bias" if penalized.get("lambda_b") is None else f"$\\lambda_b$ = {penalized['lambda_b']:g}"
    return (f"$n_A$ = {penalized['nA']:g}, $\\lambda_W$ = {penalized['lambda_W']:g}, "
            f"$\\lambda_H$ = {penalized['lambda_H']:g}, {bias}")


def model_curve(folder, KA_values=(3, 5, 7), K=10, EH=5.0, EW=1.0, ratios=None, formats=("png",), penalized=None):
    """Figure (a): the paper's model figure (mean minority classifier cosine vs R) plus norms.

    ``penalized``: dict(nA, lambda_W, lambda_H, lambda_b) draws the penalized (weight-decay) form
    instead of the constrained one at E_H, E_W."""
    ratios = paper_ratios() if ratios is None else list(ratios)
    fig, (ax_cos, ax_norm) = plt.subplots(2, 1, figsize=(7, 7.5), sharex=True, height_ratios=[3, 2])
    data = {}
    for i, KA in enumerate(KA_values):
        if penalized is None:
            recs = sweep_in_memory(model_configs(ratios, KA=[KA], KB=[K - KA], EH=[EH], EW=[EW]))
            on = find_onset(KA, K - KA, EH, EW, rel=1e-7)
        else:
            recs = sweep_in_memory(model_configs(ratios, KA=[KA], KB=[K - KA], **penalized))
            on = find_penalized_onset(KA, K - KA, **penalized, rel=1e-7)
        color = f"C{i}"
        cos = [_nan(r["minority_w_cos"]) for r in recs]
        ax_cos.plot(ratios, cos, "o-", ms=3, color=color, label=f"$K_A$ = {KA}")
        ax_norm.plot(ratios, [r["minority_w_norm2"] for r in recs], "o-", ms=3, color=color, label=f"minority, $K_A$ = {KA}")
        ax_norm.plot(ratios, [r["majority_w_norm2"] for r in recs], ":", color=color, label=f"majority, $K_A$ = {KA}")
        for ax in (ax_cos, ax_norm):
            if on.onset is not None:
                ax.axvline(on.onset, color=color, ls="--", lw=1)
            if on.vanish is not None:
                ax.axvline(on.vanish, color=color, ls="-.", lw=1)
        if on.onset is not None:
            ax_cos.annotate(f"$R_0$={on.onset:.4g}", (on.onset, 0.1 + 0.12 * i), color=color, fontsize=8,
                            xytext=(4, 0), textcoords="offset points")
        data[KA] = {"records": recs, "onset": on}
    ax_cos.set_xscale("log")
    ax_cos.set_ylabel("mean cosine between minority classifiers")
    setting = f"$E_H$ = {EH:g}, $E_W$ = {EW:g}" if penalized is None else _penalized_title(penalized)
    ax_cos.set_title(f"Layer-Peeled Model, K = {K}, {setting}\n"
                     "dashed: collapse onset $R_0$, dash-dot: minority classifiers vanish $R_v$ (cosine undefined)")
    ax_cos.legend(loc="lower right")
    ax_cos.grid(alpha=0.3)
    ax_norm.set_xlabel("imbalance ratio R = $n_A/n_B$")
    ax_norm.set_ylabel("mean squared classifier norm")
    ax_norm.legend(fontsize=7, ncol=2)
    ax_norm.grid(alpha=0.3)
    name = "model_cosine_vs_R" if penalized is None else "penalized_model_cosine_vs_R"
    return save_figure(fig, folder, name, formats), data


def penalized_phase_diagram(folder, K=10, nA=5000.0, KA_values=None, mus=None, formats=("png",)):
    """The penalized form's collapse onset over (K_A, sqrt(lambda_W lambda_H)) at n_A, from its
    closed form (:func:`.onset.penalized_collapse_threshold`; the same with or without a bias)."""
    KA_values = list(range(1, K - 1)) if KA_values is None else list(KA_values)
    mus = np.logspace(-5, -2, 31) if mus is None else np.asarray(mus, dtype=float)
    R0 = np.array([[_nan(penalized_collapse_threshold(KA, K - KA, nA, mu, mu)) for mu in mus] for KA in KA_values])
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    mesh = ax.pcolormesh(mus, KA_values, np.log10(R0), shading="nearest", cmap="viridis")
    fig.colorbar(mesh, ax=ax, label="$\\log_{10} R_0$ (blank: collapsed at every R)")
    ax.set_xscale("log")
    ax.set_xlabel("$\\sqrt{\\lambda_W \\lambda_H}$")
    ax.set_ylabel(f"majority classes $K_A$ (K = {K})")
    ax.set_title(f"Penalized form: collapse onset at $n_A$ = {nA:g}\n"
                 "(exact: $\\sqrt{n_B}/N = \\sqrt{\\lambda_W\\lambda_H}$ at $R_0$, any bias)")
    return save_figure(fig, folder, "penalized_onset_phase_diagram", formats), {
        "KA": KA_values, "mu": mus.tolist(), "onset": R0.tolist()}


def phase_diagram(folder, K=10, KA_values=None, products=None, formats=("png",), rel=1e-4):
    """Figure (b): log10 of the collapse onset R_0 over (K_A, E_H E_W), with the vanishing onset R_v
    (each onset to relative precision ``rel``, ample for a colour map)."""
    KA_values = list(range(1, K - 1)) if KA_values is None else list(KA_values)
    products = np.logspace(-1, 2, 13) if products is None else np.asarray(products, dtype=float)
    R0 = np.full((len(KA_values), products.size), np.nan)
    Rv = np.full_like(R0, np.nan)
    for i, KA in enumerate(KA_values):
        for j, on in enumerate(onset_vs_energy(KA, K - KA, products, rel=rel)):
            R0[i, j], Rv[i, j] = _nan(on.onset), _nan(on.vanish)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for ax, grid, title in ((axes[0], R0, "collapse onset $\\log_{10} R_0$"),
                            (axes[1], Rv, "vanishing onset $\\log_{10} R_v$ (blank: never)")):
        mesh = ax.pcolormesh(products, KA_values, np.log10(grid), shading="nearest", cmap="viridis")
        fig.colorbar(mesh, ax=ax)
        ax.set_xscale("log")
        ax.set_xlabel("$E_H E_W$")
        ax.set_title(title)
    axes[0].set_ylabel(f"majority classes $K_A$ (K = {K})")
    fig.suptitle("Where Minority Collapse begins in the Layer-Peeled Model")
    return save_figure(fig, folder, "onset_phase_diagram", formats), {"KA": KA_values, "products": products.tolist(),
                                                                      "onset": R0.tolist(), "vanish": Rv.tolist()}


def oversampling_curve(folder, KA=5, KB=5, R=1000.0, EH=5.0, EW=1.0, factors=None, formats=("png",)):
    """Figure (c): minority cosine against the oversampling factor w_r at ratio R."""
    factors = np.logspace(0, np.log10(R), 31) if factors is None else np.asarray(factors, dtype=float)
    recs = sweep_in_memory(model_configs([R], KA=[KA], KB=[KB], EH=[EH], EW=[EW], wr=list(factors)))
    on = find_onset(KA, KB, EH, EW, rel=1e-7)
    need = min_oversampling(R, on.onset)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(factors, [_nan(r["minority_w_cos"]) for r in recs], "o-", ms=3, label="minority cosine")
    ax.plot(factors, [r["minority_w_norm2"] / r["majority_w_norm2"] for r in recs], "s:", ms=3,
            label="minority / majority squared norm")
    ax.axvline(need, color="k", ls="--", lw=1, label=f"collapse ends above $w_r = R/R_0$ = {need:.4g}")
    ax.set_xscale("log")
    ax.set_xlabel("oversampling factor $w_r$")
    ax.set_ylabel("cosine / norm ratio")
    ax.set_title(f"Oversampling the minority at R = {R:g} (K_A = {KA}, K_B = {KB}, $E_H$ = {EH:g}, $E_W$ = {EW:g})")
    ax.legend()
    ax.grid(alpha=0.3)
    return save_figure(fig, folder, "model_oversampling", formats), {"records": recs, "min_wr": need}


def all_model_figures(folder, formats=("png",), quick: bool = False, penalized: dict | None = None) -> list:
    """Write (a), (b), (c) into ``folder``; ``quick`` uses a coarse phase diagram. ``penalized``
    (nA, lambda_W, lambda_H, lambda_b): (a) and the onset diagram of the penalized form instead (SPEC
    defines oversampling for the constrained form only, so there is no (c))."""
    if penalized is not None:
        ratios = paper_ratios(11, 0.4) if quick else None
        return (model_curve(folder, formats=formats, penalized=penalized, ratios=ratios)[0]
                + penalized_phase_diagram(folder, nA=penalized["nA"], formats=formats)[0])
    paths = model_curve(folder, formats=formats)[0]
    kw = dict(KA_values=[2, 5, 8], products=np.logspace(-1, 2, 4)) if quick else {}
    paths += phase_diagram(folder, formats=formats, **kw)[0]
    paths += oversampling_curve(folder, formats=formats)[0]
    return paths
