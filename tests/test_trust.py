"""Issue 9: files a user hands us never run code, every --json answer is strict JSON, bad input
ends in a clear error naming the value, and the CLI starts without heavy imports."""
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from fakedata import idx_bytes, write_cifar, write_fashion

from layerpeeled import LPMProblem, solve
from layerpeeled.cli import THREAD_ENVIRONMENT, configure_threads, main
from layerpeeled.threads import solver_threads
from layerpeeled.jsonio import dumps, loads
from layerpeeled.networks.config import make_config
from layerpeeled.networks.data import DataError, load_cifar10, load_fashion_mnist
from layerpeeled.networks.train import train
from layerpeeled.sweeps import ResultStore


class Exploit:
    """A pickle that, when loaded, runs a shell command creating ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _strict(text: str):
    return loads(text.strip().splitlines()[-1])


def _tiny_run(tmp_path, **kw):
    data = write_fashion(tmp_path / "data", n_train=400, n_test=60)
    cfg = make_config("cpu", data_dir=str(data), nA=30, epochs=2, batch_size=16, measurements=1, R=3.0, **kw)
    train(cfg, tmp_path / "run", progress=False, stop_after=1)
    return cfg, tmp_path / "run"


# --- safety ---------------------------------------------------------------------------------

def test_crafted_checkpoint_is_refused_and_never_run(tmp_path, capsys):
    cfg, run = _tiny_run(tmp_path)
    marker = tmp_path / "pwned"
    torch.save({"model": Exploit(marker)}, run / "checkpoint.pt")
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--out", str(run), "--resume"])
    assert exit_.value.code == 2 and not marker.exists()
    err = capsys.readouterr().err
    assert "cannot load checkpoint" in err and "checkpoint.pt" in err and "nothing in it is run" in err


@pytest.mark.parametrize("content", [b"", b"garbage, not a checkpoint", b"PK\x03\x04truncated zip"])
def test_empty_or_garbage_checkpoint_gives_a_clear_error(tmp_path, content):
    cfg, run = _tiny_run(tmp_path)
    (run / "checkpoint.pt").write_bytes(content)
    with pytest.raises(ValueError, match="cannot load checkpoint .*delete it to start the run again"):
        train(cfg, run, progress=False, resume=True)


def test_checkpoint_of_another_shape_is_refused(tmp_path):
    cfg, run = _tiny_run(tmp_path)
    torch.save({"weights": torch.zeros(3)}, run / "checkpoint.pt")
    with pytest.raises(ValueError, match="not a layerpeeled-checkpoint-2 checkpoint"):
        train(cfg, run, progress=False, resume=True)


def test_crafted_cifar_batch_is_refused_and_never_run(tmp_path):
    folder = write_cifar(tmp_path / "c", per_batch=20)
    marker = tmp_path / "pwned"
    with open(folder / "data_batch_2", "wb") as fh:
        pickle.dump({b"data": Exploit(marker), b"labels": [0]}, fh)
    with pytest.raises(DataError, match="data_batch_2 is corrupt .*refusing to load posix.system"):
        load_cifar10(folder)
    assert not marker.exists()


# --- strict output --------------------------------------------------------------------------

def test_solve_json_is_strict_and_documents_undefined_cosines(capsys):
    assert main(["solve", "--counts", "5000x5,50x5,7", "--json"]) == 0
    out = _strict(capsys.readouterr().out)
    one = out["groups"][2]
    assert one["classes"] == 1 and one["w_cos"] is None and one["w_cos_note"] == "one class"
    assert out["details"]["blocks"]["e"][2] is None  # a one-class group has no within-group logit
    assert "multiplier" not in out and "b_gradient" not in json.dumps(out)  # solver internals stay out
    assert main(["solve", "--counts", "10x5,1x5", "--EH", "0.5", "--json"]) == 0
    vanished = _strict(capsys.readouterr().out)["groups"][1]
    assert vanished["vanished"] and vanished["w_cos"] is None and vanished["w_cos_note"] == "vanished"
    assert _strict(dumps(solve(LPMProblem("10x5,1x5", 0.5, 1)).to_dict()))["w_cross_cos"][0][1] is None


def test_dumps_turns_non_finite_into_null():
    assert dumps({"a": float("nan"), "b": [np.inf, np.float64(2.5)], "c": np.array([1.0, -np.inf])}) == \
        '{"a": null, "b": [null, 2.5], "c": [1.0, null]}'
    with pytest.raises(ValueError, match="NaN is not a JSON value"):
        loads('{"a": NaN}')


@pytest.mark.parametrize("R", ["inf", "-5", "0", "0.5", "nan", "x"])
def test_onset_refuses_bad_ratios(R, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["onset", "--R", R, "--json"])
    assert exit_.value.code == 2
    assert f"--R must be a finite number >= 1, got '{R}'" in capsys.readouterr().err or R == "x"


def test_onset_json_with_ratio_is_strict(capsys):
    assert main(["onset", "--KA", "5", "--KB", "5", "--R", "1000", "--json"]) == 0
    out = _strict(capsys.readouterr().out)
    assert out["vanish"] is None and out["min_wr"] == pytest.approx(1000 / out["onset"])


# --- bad input ------------------------------------------------------------------------------

def test_label_outside_the_classes_is_named_with_its_file(tmp_path):
    folder = write_fashion(tmp_path / "f", n_train=50, n_test=20, gz=False)
    labels = np.zeros(50, np.uint8)
    labels[17] = 10
    (folder / "train-labels-idx1-ubyte").write_bytes(idx_bytes(labels))
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte: label 10 at position 17 is outside 0..9"):
        load_fashion_mnist(folder)


def test_ratio_leaving_no_minority_example_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["train", "--nA", "50", "--R", "1000", "--out", str(tmp_path / "r")])
    assert "n_A // R = 50 // 1000 = 0" in capsys.readouterr().err and not (tmp_path / "r").exists()


@pytest.mark.parametrize("argv, needle", [
    (["sweep", "--R", "1,10", "--workers", "-1", "--out", "{tmp}/s"], "--workers must be a positive integer, got -1"),
    (["onset", "--products", "1,2", "--workers", "0"], "--workers must be a positive integer, got 0"),
    (["reproduce", "a", "--workers", "-1", "--out", "{tmp}/r"], "--workers must be a positive integer, got -1"),
    (["sweep", "--R", "1,10", "--out", "{tmp}/file"], "is a file, not a folder"),
    (["figures", "--quick", "--out", "{tmp}/file"], "is a file, not a folder"),
    (["reproduce", "a", "--out", "{tmp}/file"], "is a file, not a folder"),
    (["train", "--out", "{tmp}/file", "--epochs", "1"], "is a file, not a folder"),
    (["solve", "--EH", "1e300", "--EW", "1e300"], "E_H*E_W = 1e+300 * 1e+300 is too large for K = 10"),
    (["solve", "--counts", "1x80", "--method", "sdp"], "--method sdp at K = 80 would run for many minutes"),
    (["onset", "--rel", "0"], "--rel must be a number in (0, 1), got 0.0"),
    (["sweep", "--R", "linspace:1:2:0", "--out", "{tmp}/s"], "cannot read 'linspace:1:2:0'"),
])
def test_bad_command_lines_exit_2_naming_the_value(tmp_path, capsys, argv, needle):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(SystemExit) as exit_:
        main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    assert exit_.value.code == 2
    assert needle in capsys.readouterr().err


def test_unreachable_scheduler_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["sweep", "--R", "1,10", "--scheduler", "tcp://127.0.0.1:9", "--out", str(tmp_path / "s")])
    assert exit_.value.code == 2 and "cannot reach the Dask scheduler at 'tcp://127.0.0.1:9'" in capsys.readouterr().err


def test_sweep_record_of_the_wrong_shape_is_named(tmp_path):
    store = ResultStore(tmp_path)
    config = {"R": 1.0}
    store.path(config).write_text('["valid", "json"]')
    with pytest.raises(ValueError, match=r"record .*\.json is valid JSON but not a sweep record"):
        store.get(config)
    store.path(config).write_text('{"config": {"R": NaN}}')
    with pytest.raises(ValueError, match="corrupt record"):
        store.records()


def test_resume_with_only_out_reads_the_runs_config(tmp_path, capsys):
    cfg, run = _tiny_run(tmp_path, seed=3)
    assert main(["train", "--out", str(run), "--resume"]) == 0
    assert len(json.loads((run / "records.json").read_text())) >= 1
    assert "R = 3" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["train", "--out", str(run), "--resume", "--epochs", "5", "--seed", "3"])
    err = capsys.readouterr().err
    assert "differing fields (saved, asked): epochs (2, 5)" in err and "seed" not in err and "lr" not in err


# --- start-up and threads -------------------------------------------------------------------

def test_solve_imports_nothing_heavy():
    code = ("import sys; from layerpeeled.cli import main; main(['solve', '--json']); "
            "print(sorted(m for m in ('torch', 'dask', 'distributed', 'matplotlib', 'cvxpy', 'pandas', "
            "'scipy.optimize', 'tqdm') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_thread_environment_defaults_yield_to_the_user():
    env = {"OMP_WAIT_POLICY": "ACTIVE"}
    configure_threads(env)
    assert env["OMP_WAIT_POLICY"] == "ACTIVE"
    assert all(env[k] == v for k, v in THREAD_ENVIRONMENT.items() if k != "OMP_WAIT_POLICY")
    assert env["LPM_THREADS"] == "auto"  # no thread count exported: dense solves split over the cores
    env = {"OMP_NUM_THREADS": "1"}  # the user asked for one thread: no row blocks either
    configure_threads(env)
    assert "LPM_THREADS" not in env and solver_threads(env) == 1 and solver_threads({"LPM_THREADS": "2"}) == 2
