"""Dask sweeps that survive a kill, the model-network bridge, and the report."""
import json
import math
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from fakedata import write_fashion

from layerpeeled.networks.config import make_config
from layerpeeled.networks.train import train
from layerpeeled.reproduce import scales
from layerpeeled.reproduce.bridge import bridge_run
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


def test_bridge_reads_a_finished_run(tmp_path):
    data = write_fashion(tmp_path / "data", n_train=400, n_test=60)
    cfg = make_config("cpu", data_dir=str(data), nA=30, epochs=2, batch_size=16, measurements=1, R=3.0)
    train(cfg, tmp_path / "run", progress=False)
    b = bridge_run(tmp_path / "run")
    assert b["EW"] > 0 and b["EH"] > 0 and b["gap"] <= 1e-8 * b["value"]
    assert set(b["predicted"]) >= {"minority_w_cos", "norm_ratio"} and b["epoch"] == 2
    with pytest.raises(FileNotFoundError, match="no finished training run"):
        bridge_run(tmp_path)


@pytest.mark.slow
def test_reproduce_all_writes_a_report_referencing_every_figure(tmp_path, monkeypatch):
    monkeypatch.setitem(scales.SCALES, "tiny", TINY)
    data = write_fashion(tmp_path / "data", n_train=400, n_test=60)
    report = reproduce(["all"], scale="tiny", out=tmp_path / "out", data_dir=str(data), workers=2, progress=False)
    text = report.read_text()
    pngs = sorted(p.name for p in (tmp_path / "out" / "figures").glob("*.png"))
    assert pngs == sorted(["model_cosine_vs_R.png", "networks_cosine_vs_R.png", "model_vs_networks.png",
                           "networks_oversampling.png", "bridge_model_vs_network.png"])
    embedded = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,', text)
    assert sorted(embedded) == pngs
    for head in ("(a)", "(b)", "(c)", "(d)", "how close the model came"):
        assert head in text
    assert "mean |model - network|" in text


def test_reproduce_rejects_unknown_figures_and_scales(tmp_path):
    with pytest.raises(ValueError, match="unknown figure"):
        reproduce(["e"], out=tmp_path)
    with pytest.raises(ValueError, match="unknown scale 'huge'"):
        reproduce(["a"], scale="huge", out=tmp_path)
