"""``lpm reproduce``: train what a figure needs (on Dask), draw it, and write the report."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from ..atomic import output_folder
from ..collapse.figures import model_curve
from ..networks.data import FASHION_MNIST_DIR
from ..sweeps import ResultStore, config_key
from ..sweeps.parallel import check_workers
from . import figures as netfig
from ..imbalance import INF_SURROGATE, ratio_label
from .bridge import CALIBRATIONS, bridge_series, summarise
from .figures import seed_spread
from .remedies import remedies_sections
from .report import write_report
from .runner import run_networks
from .scales import FIGURES, get_scale, network_configs


def fashion_mnist_available(data_dir=None) -> bool:
    root = Path(data_dir) if data_dir else FASHION_MNIST_DIR
    return any((root / f"train-images-idx3-ubyte{ext}").is_file() for ext in ("", ".gz"))


def _records(store, configs):
    out = []
    for c in configs:
        rec = store.get(c)
        if rec is None:
            raise RuntimeError(f"no record for configuration {c}: the network sweep did not finish")
        out.append(rec)
    return out


def _bridge_rows(records, bridges):
    rows = []
    for r, b in zip(records, bridges):
        row = {"K_A": r["config"]["KA"], "R": ratio_label(r["config"]["R"]), "w_r": r["config"]["wr"],
               "seed": r["config"]["seed"],
               "weight decay": r["config"]["weight_decay"], "train acc": r["train_acc"], "test acc": r["test_acc"],
               "minority test acc": r["test_acc_minority"], "E_W": b["EW"], "E_H": b["EH"],
               "cos measured": b["measured"]["minority_w_cos"]}
        row.update({f"cos {c}": b["predicted"][c]["minority_w_cos"] for c in CALIBRATIONS if c in b["predicted"]})
        row["fitted E_H E_W"], row["fitted decay"] = b.get("fitted_product"), b.get("fitted_decay")
        row["W to model"], row["H to model"] = r.get("w_model_distance"), r.get("h_model_distance")
        row["norm ratio measured"] = b["measured"]["norm_ratio"]
        row.update({f"norm ratio {c}": b["predicted"][c]["norm_ratio"] for c in CALIBRATIONS if c in b["predicted"]})
        rows.append(row)
    return rows


BRIDGE_TEXT = ("For every trained network four calibrations of the LPM predict its minority geometry from its class "
               f"counts (R = inf solved as R = {INF_SURROGATE:g}), its loss and its classifier: the constrained model at "
               "the measured energies E_W = mean |w_k|^2, E_H = mean over classes of the mean |h|^2; the penalized model "
               "at the run's weight decay (lambda_W = lambda_H = lambda_b = wd); the constrained model at one effective "
               "E_H E_W and the penalized model at one effective weight decay, each fitted on the other runs of the same "
               "figure (leave-one-out). A vanished minority counts as cosine 1. ")


def environment() -> dict:
    """What a reader needs to cite or rerun a report: versions, the git commit, the machine."""
    import platform
    import subprocess

    import numpy
    import torch

    from .. import __version__

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                                text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu ({os.cpu_count()} cores)"
    return {"layerpeeled": __version__, "git commit": commit, "python": platform.python_version(),
            "numpy": numpy.__version__, "torch": torch.__version__, "device": device, "platform": platform.platform()}


def _seed_text(records) -> str:
    spread = seed_spread(records)
    if spread is None:
        return " One seed per configuration: run with --seeds 3 or more to see the noise these errors compare with."
    return (f" Seed spread: the standard deviation of the minority cosine across seeds is {spread:.3f} on average; "
            "a model error below it is within the noise.")


def _histories(store, configs) -> list:
    """(label, per-epoch records) of each run, read from its run folder."""
    out = []
    for c in configs:
        folder = Path(store.get(c)["run"])
        extra = "".join(f", {k}={c[k]}" for k in ("loss", "classifier", "reweight") if k in c)
        label = f"K_A={c['KA']}, R={ratio_label(c['R'])}, wd={c['weight_decay']:g}, w_r={c['wr']}{extra}, seed={c['seed']}"
        out.append((label, json.loads((folder / "records.json").read_text())))
    return out


def reproduce(figures, scale: str = "cpu", out="results", dataset: str = "fashion-mnist", data_dir=None,
              KA_values=None, scheduler=None, workers=None, formats=("png",), progress=True, seeds: int = 1,
              finished_only: bool = False) -> Path:
    """Make the requested figures (a-d, 'all', 'quick' or 'remedies') and return the path of the
    report; ``seeds`` repeats every network run with that many seeds; ``finished_only`` trains
    nothing and reports on the runs a sweep under ``out`` has finished so far."""
    sc = get_scale(scale)
    figures = list(figures)
    if "all" in figures:
        figures = list(FIGURES)
    if "quick" in figures:
        figures = ["a"] + (["b"] if dataset != "fashion-mnist" or fashion_mnist_available(data_dir) else [])
    bad = [f for f in figures if f not in FIGURES + ("remedies",)]
    if bad:
        raise ValueError(f"unknown figure(s) {bad}; choose among {list(FIGURES)}, 'all', 'quick' or 'remedies'")
    check_workers(workers)
    out = output_folder(Path(out).resolve())  # Dask workers elsewhere must write where the caller reads
    figdir = out / "figures"
    sections, timings = [], {}
    if "a" in figures:
        t = time.perf_counter()
        paths, data = model_curve(figdir, formats=formats)
        onsets = {KA: d["onset"] for KA, d in data.items()}
        timings["a"] = time.perf_counter() - t
        sections.append({"title": "(a) The Layer-Peeled Model: minority collapse against R", "figures": paths[:1],
                         "text": "K = 10, E_H = 5, E_W = 1, R = 10^(0.1 i), i = 0..40; exact onsets: " + ", ".join(
                             f"K_A = {k}: R_0 = {o.onset:.8g}" + (f", R_v = {o.vanish:.8g}" if o.vanish else "")
                             for k, o in onsets.items()) + f". Computed in {timings['a']:.2f} s.",
                         "settings": {"K": 10, "EH": 5.0, "EW": 1.0, "KA": list(data), "ratios": "10^(0.1 i), i=0..40"}})
    net_figs = [f for f in figures if f != "a"]
    if net_figs:
        configs = {f: network_configs(f, sc, dataset, KA_values, seeds) for f in net_figs}
        if finished_only:
            store = ResultStore(out / "networks")
            configs = {f: [c for c in cs if store.has(c)] for f, cs in configs.items()}
            empty = [f for f, cs in configs.items() if not cs]
            if empty:
                raise RuntimeError(f"--finished-only: no finished run under {out / 'networks'} for {empty}; run "
                                   "without it to train them")
        union = list({config_key(c): c for cs in configs.values() for c in cs}.values())  # (b) and (c) share runs
        if not finished_only:
            t = time.perf_counter()
            store = run_networks(union, out / "networks", data_dir, scheduler=scheduler, workers=workers,
                                 progress=progress)
            timings["training"] = time.perf_counter() - t
        title = f"{dataset}, scale {scale} ({union[0]['model']}, {union[0]['epochs']} epochs, n_A = {union[0]['nA'] or 'paper'})"
        all_recs, all_bridges = [], []
        for f in [f for f in net_figs if f != "remedies"]:
            recs = _records(store, configs[f])
            bridges = bridge_series(recs)
            all_recs += recs
            all_bridges += bridges
            if f == "b":
                paths = netfig.networks_vs_ratio(recs, figdir, f"(b) networks: {title}", formats)
                head = "(b) Networks: mean minority classifier cosine and minority test accuracy against R"
            elif f == "c":
                paths = netfig.model_vs_networks(recs, bridges, figdir, f"(c) model vs networks: {title}", formats)
                head = "(c) The model against networks at two weight decays"
            else:
                paths = netfig.oversampling(recs, bridges, figdir, f"(d) oversampling at R = {sc.oversampling_R:g}: {title}", formats)
                head = f"(d) Oversampling the minority at R = {sc.oversampling_R:g}"
            sections.append({"title": head, "figures": [p for p in paths if p.suffix == ".png"],
                             "text": summarise(bridges) + "." + _seed_text(recs), "table": _bridge_rows(recs, bridges),
                             "settings": configs[f]})
        if "remedies" in net_figs:
            sections += remedies_sections(_records(store, configs["remedies"]), sc, figdir, title, formats, timings)
        if all_recs:
            paths = netfig.bridge_overlay(all_recs, all_bridges, figdir,
                                          "Four calibrations of the model (open markers) over the networks (solid)", formats)
            sections.append({"title": "The bridge: how close the model came", "figures": [p for p in paths if p.suffix == ".png"],
                             "text": BRIDGE_TEXT + summarise(all_bridges) + "." + _seed_text(all_recs)})
        paths = netfig.nc_over_training(_histories(store, union), figdir, f"NC1-NC4 over training: {title}", formats)
        sections.append({"title": "Neural collapse over training, per run", "figures": [p for p in paths if p.suffix == ".png"],
                         "text": "Papyan-Han-Donoho metrics at the measurement epochs of every run (class-balanced "
                                 "weighting; classes without examples left out)."})
    settings = {"figures": figures, "scale": scale, "dataset": dataset, "data_dir": str(data_dir or FASHION_MNIST_DIR),
                "seeds": seeds, "finished runs only": finished_only, "scheduler": scheduler or "local Dask cluster",
                "seconds": {k: round(v, 1) for k, v in timings.items()}, "environment": environment()}
    return write_report(out, sections, f"layerpeeled: reproducing Fang et al. (PNAS 2021), scale {scale}", settings)
