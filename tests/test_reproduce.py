"""Dask sweeps that survive a kill, the model-network bridge, and the report."""
import html
import json
import math
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from fakedata import write_fashion

from layerpeeled import LPMProblem, solve
from layerpeeled.problem import PenalizedLPM
from layerpeeled.networks.models import build_model

from layerpeeled.networks.config import make_config
from layerpeeled.networks.train import RunData, train
from layerpeeled.reproduce import scales
from layerpeeled.reproduce.bridge import FITS, bridge_run, bridge_series, mean_errors
from layerpeeled.reproduce.pipeline import reproduce
from layerpeeled.reproduce.runner import run_folder
from layerpeeled.sweeps import ResultStore

TINY = scales.Scale("cpu", dict(nA=24, epochs=2, batch_size=16, measurements=1, milestones=(1,)),
                    (1.0, 4.0, math.inf), (5,), 4.0, (1, 4))


def _configs(n):
    return [make_config("cpu", nA=24, epochs=3, batch_size=16, measurements=1, R=R).to_json() | {"data_dir": None}
            for R in (1.0, 2.0, 3.0, 4.0, 6.0, 8.0)[:n]]


SWEEP = """
import json, sys
from layerpeeled.reproduce.runner import run_networks
run_networks(json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], workers=1, progress=False)
"""


@pytest.mark.slow
def test_dask_sweep_killed_half_way_resumes_without_redoing(tmp_path):
    data = write_fashion(tmp_path / "data", n_train=400, n_test=60)
    root = tmp_path / "sweep"
    configs = _configs(6)
    proc = subprocess.Popen([sys.executable, "-c", SWEEP, json.dumps(configs), str(root), str(data)],
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = ResultStore(root)
    deadline = time.time() + 300
    while time.time() < deadline and len(list(store.records_dir.glob("*.json"))) < 2:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole sweep, workers included, dies at once
    proc.wait()
    done = {p.name: p.stat().st_mtime_ns for p in store.records_dir.glob("*.json")}
    assert 2 <= len(done) < 6, "the kill should land half-way"
    ckpts = {c["R"]: run_folder(root, c) / "checkpoint.pt" for c in configs if store.has(c)}
    stamps = {R: p.stat().st_mtime_ns for R, p in ckpts.items()}
    subprocess.run([sys.executable, "-c", SWEEP, json.dumps(configs), str(root), str(data)], check=True, timeout=600)
    assert all(store.has(c) for c in configs)  # nothing lost
    for name, mtime in done.items():
        assert (store.records_dir / name).stat().st_mtime_ns == mtime  # nothing redone
    for R, p in ckpts.items():
        assert p.stat().st_mtime_ns == stamps[R]
    for c in configs:
        assert json.loads(store.path(c).read_text())["config"] == c
    import pandas as pd

    assert len(pd.read_csv(root / "table.csv")) == 6


def test_bridge_predicts_from_the_networks_own_numbers(tmp_path):
    data = write_fashion(tmp_path / "data", n_train=400, n_test=60)
    cfg = make_config("cpu", data_dir=str(data), nA=30, epochs=2, batch_size=16, measurements=1, R=3.0)
    train(cfg, tmp_path / "run", progress=False)
    b = bridge_run(tmp_path / "run")
    assert b["epoch"] == 2
    # energies recomputed from the saved network, the model solved by another method
    model = build_model("cnn", 1, 10)
    model.load_state_dict(torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["model"])
    model.eval()
    run_data = RunData(cfg, torch.device("cpu"))
    with torch.no_grad():
        H = model.features(run_data.x).double().numpy()
    y = run_data.y.numpy()
    W = model.classifier.weight.detach().double().numpy()
    EH = np.mean([(H[y == k] ** 2).sum(1).mean() for k in range(10)])
    EW = (W**2).sum(1).mean()
    assert b["EH"] == pytest.approx(EH, rel=1e-6)  # float32 features, other batching and b["EW"] == pytest.approx(EW, rel=1e-12)
    ref = solve(LPMProblem([30] * 5 + [10] * 5, EH, EW), "first-order", tol=1e-11).geometry
    assert b["predicted"]["measured"]["minority_w_cos"] == pytest.approx(ref.groups[1].w_cos, abs=1e-6)
    assert b["predicted"]["measured"]["norm_ratio"] == pytest.approx(ref.groups[1].w_norm2 / ref.groups[0].w_norm2,
                                                                     rel=1e-6)
    pen = solve(PenalizedLPM([30] * 5 + [10] * 5, 5e-4, 5e-4, 5e-4), "first-order", tol=1e-11).geometry
    got = b["predicted"]["weight-decay"]
    if pen.groups[1].vanished:
        assert got["minority_vanished"] and got["minority_w_cos"] is None
    else:
        assert got["minority_w_cos"] == pytest.approx(pen.groups[1].w_cos, abs=1e-6)
    G = W @ W.T
    cos = G / np.sqrt(np.outer(np.diag(G), np.diag(G)))
    measured = cos[5:, 5:][~np.eye(5, dtype=bool)].mean()
    assert b["measured"]["minority_w_cos"] == pytest.approx(measured, rel=1e-9)
    assert b["abs_error"]["measured"]["minority_w_cos"] == pytest.approx(abs(ref.groups[1].w_cos - measured), abs=1e-6)
    with pytest.raises(FileNotFoundError, match="no finished training run"):
        bridge_run(tmp_path)


def _model_record(R, E, wd=5e-4):
    """What a network would record if its minority geometry were the LPM's at E_H E_W = E."""
    counts = [1000] * 5 + [max(1000 // R, 1) if R != "inf" else 0] * 5
    model = solve(LPMProblem([c or 1e-9 for c in counts], E, 1.0), tol=1e-12).geometry.flat()
    return {**model, "class_counts": counts, "EH": 50.0, "EW": 2.0,
            "config": {"R": R, "KA": 5, "wr": 1, "weight_decay": wd}}


def test_fitted_calibration_recovers_a_known_product_leave_one_out():
    E = float(FITS["fitted"][23])  # 10^1.3: the series is generated by the model at this product
    records = [_model_record(R, E) for R in (10, 30, 100, 1000)]
    bridges = bridge_series(records)
    for rec, b in zip(records, bridges):
        assert b["fitted_product"] == pytest.approx(E, rel=1e-12)  # fitted without the run itself
        assert b["abs_error"]["fitted"]["minority_w_cos"] < 1e-6  # solved at tol 1e-9 here, 1e-12 there
        measured = solve(LPMProblem(rec["class_counts"], 50.0, 2.0), tol=1e-12).geometry.flat()
        assert b["predicted"]["measured"]["minority_w_cos"] == pytest.approx(measured["minority_w_cos"], abs=1e-7)
    errors = mean_errors(bridges)
    assert errors["fitted"]["minority_w_cos"] < 1e-6 < errors["measured"]["minority_w_cos"]
    # a run that disagrees with the others is predicted from them, not from itself
    odd = bridge_series(records[:3] + [_model_record(1000, 0.3)])
    assert odd[3]["fitted_product"] == pytest.approx(E) and odd[3]["abs_error"]["fitted"]["minority_w_cos"] > 1e-3


def test_fitted_decay_recovers_a_known_weight_decay_leave_one_out():
    lam = float(FITS["fitted-decay"][22])  # 10^-2.8: the series is the penalized model's at this decay
    records = []
    for R in (2, 5, 20, 100):
        counts = [1000] * 5 + [1000 / R] * 5
        model = solve(PenalizedLPM(counts, lam, lam, lam), tol=1e-12).geometry.flat()
        records.append({**model, "class_counts": counts, "EH": 50.0, "EW": 2.0,
                        "config": {"R": R, "KA": 5, "wr": 1, "weight_decay": 5e-4}})
    assert len({round(r["minority_w_cos"], 3) for r in records if r["minority_w_cos"] is not None}) >= 2
    for b in bridge_series(records):
        assert b["fitted_decay"] == pytest.approx(lam, rel=1e-12)
        assert b["abs_error"]["fitted-decay"]["minority_w_cos"] < 1e-6


@pytest.mark.slow
def test_reproduce_all_writes_a_report_referencing_every_figure(tmp_path, monkeypatch):
    monkeypatch.setitem(scales.SCALES, "tiny", TINY)
    data = write_fashion(tmp_path / "data", n_train=400, n_test=60)
    report = reproduce(["all"], scale="tiny", out=tmp_path / "out", data_dir=str(data), workers=2, progress=False,
                       seeds=2)
    text = report.read_text()
    pngs = sorted(p.name for p in (tmp_path / "out" / "figures").glob("*.png"))
    assert pngs == sorted(["model_cosine_vs_R.png", "networks_cosine_vs_R.png", "model_vs_networks.png",
                           "networks_oversampling.png", "bridge_model_vs_network.png", "nc_over_training.png"])
    assert "Seed spread: the standard deviation of the minority cosine across seeds is" in text
    settings = html.unescape(text)
    assert '"torch": "' in settings and '"git commit"' in settings and '"seeds": 2' in settings
    embedded = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,', text)
    assert sorted(embedded) == pngs
    for head in ("(a)", "(b)", "(c)", "(d)", "how close the model came"):
        assert head in text
    assert "mean |model - network|" in text and "closest on the minority cosine" in text


def test_reproduce_rejects_unknown_figures_and_scales(tmp_path):
    with pytest.raises(ValueError, match="unknown figure"):
        reproduce(["e"], out=tmp_path)
    with pytest.raises(ValueError, match="unknown scale 'huge'"):
        reproduce(["a"], scale="huge", out=tmp_path)


class _BlindClient:
    """Stands in for a Dask client whose second worker mounts another file system."""

    def run(self, fn, path):
        return {"tcp://a:1": fn(path), "tcp://b:2": False}


def test_workers_that_cannot_see_the_folder_are_named(tmp_path, monkeypatch):
    from layerpeeled.sweeps.parallel import shared_folder

    monkeypatch.chdir(tmp_path)
    with pytest.raises(RuntimeError, match=r"workers \['tcp://b:2'\] cannot see .*/out"):
        shared_folder(_BlindClient(), "out")
    assert list((tmp_path / "out").iterdir()) == []  # the probe is cleaned up


def test_dask_model_sweep_with_a_relative_out_lands_in_the_callers_folder(tmp_path, monkeypatch):
    from layerpeeled.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["sweep", "--R", "1,10,100", "--KA", "3,5", "--workers", "2", "--out", "rel"]) == 0
    store = ResultStore(tmp_path / "rel")
    assert len(store.records()) == 6 and (tmp_path / "rel" / "table.csv").is_file()
    dask = {json.dumps(r["config"], sort_keys=True): r for r in store.records()}
    assert main(["sweep", "--R", "1,10,100", "--KA", "3,5", "--out", "serial"]) == 0
    for r in ResultStore(tmp_path / "serial").records():  # warm starts follow each run's order: equal to the gaps
        other = dask[json.dumps(r["config"], sort_keys=True)]
        assert abs(r["value"] - other["value"]) <= r["gap"] + other["gap"]


@pytest.mark.slow
def test_smoke_scale_runs_and_a_rerun_redoes_nothing(tmp_path, monkeypatch):
    from layerpeeled.cli import main

    data = write_fashion(tmp_path / "data", n_train=1200, n_test=100)
    monkeypatch.chdir(tmp_path)
    argv = ["reproduce", "b", "--scale", "smoke", "--workers", "1", "--data", str(data), "--out", "out"]
    assert main(argv) == 0
    records = tmp_path / "out" / "networks" / "records"
    stamps = {p.name: p.stat().st_mtime_ns for p in records.glob("*.json")}
    assert len(stamps) == 3 and (tmp_path / "out" / "report.html").is_file()
    assert main(argv) == 0
    assert {p.name: p.stat().st_mtime_ns for p in records.glob("*.json")} == stamps


def test_seeds_repeat_each_configuration_and_spread_is_measured():
    configs = scales.network_configs("b", TINY, seeds=3)
    assert len(configs) == 3 * len(TINY.ratios) and sorted({c["seed"] for c in configs}) == [666, 667, 668]
    assert scales.network_configs("b", TINY)[0] == configs[0]  # one seed: the runs of before, unchanged
    from layerpeeled.reproduce.figures import seed_spread

    recs = [{"config": c, "minority_w_cos": 0.1 * (c["seed"] - 666)} for c in configs]
    assert seed_spread(recs) == pytest.approx(np.std([0.0, 0.1, 0.2]))
    assert seed_spread(recs[:1]) is None
    with pytest.raises(ValueError, match="--seeds must be a positive integer, got 0"):
        scales.network_configs("b", TINY, seeds=0)
