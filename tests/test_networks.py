"""Datasets, models, tiny real trainings, resume, and network-side geometry."""
import gzip
import json
import math

import numpy as np
import pytest
import torch
from fakedata import idx_bytes, write_cifar, write_fashion

from layerpeeled import LPMProblem, solve
from layerpeeled.cli import main
from layerpeeled.networks.data import (FASHION_MNIST_DIR, DataError, load_cifar10, load_fashion_mnist, oversample,
                                       read_idx, step_subset, long_tailed_subset, stratified_subset, to_tensor)
from layerpeeled.networks.measure import classifier_geometry
from layerpeeled.networks.models import build_model
from layerpeeled.networks.config import make_config
from layerpeeled.networks.train import PROBE_PER_CLASS, RunData, train


def test_idx_roundtrip_and_errors(tmp_path):
    folder = write_fashion(tmp_path / "f", n_train=50, n_test=20)
    ds = load_fashion_mnist(folder)
    assert ds.train_x.shape == (50, 1, 28, 28) and ds.test_y.shape == (20,) and ds.num_classes == 10
    raw = write_fashion(tmp_path / "raw", n_train=30, n_test=10, gz=False)
    assert load_fashion_mnist(raw).train_x.shape[0] == 30
    # truncated file: header announces more than is there
    data = gzip.decompress((folder / "train-images-idx3-ubyte.gz").read_bytes())
    (folder / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(data[:-100]))
    with pytest.raises(DataError, match="truncated or corrupt"):
        load_fashion_mnist(folder)
    (folder / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="corrupt or truncated gzip"):
        load_fashion_mnist(folder)
    bad = tmp_path / "bad.idx"
    bad.write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(DataError, match="bad magic"):
        read_idx(bad)
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="train-images-idx3-ubyte"):
        load_fashion_mnist(tmp_path / "empty")
    y = np.zeros(5, np.uint8)
    (tmp_path / "mismatch").mkdir()
    for prefix, n in (("train", 6), ("t10k", 6)):
        (tmp_path / "mismatch" / f"{prefix}-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros((n, 28, 28), np.uint8)))
        (tmp_path / "mismatch" / f"{prefix}-labels-idx1-ubyte").write_bytes(idx_bytes(y))
    with pytest.raises(DataError, match="do not match"):
        load_fashion_mnist(tmp_path / "mismatch")


def test_cifar_batches_and_errors(tmp_path):
    ds = load_cifar10(write_cifar(tmp_path / "c"))
    assert ds.train_x.shape == (300, 3, 32, 32) and ds.test_x.shape == (60, 3, 32, 32)
    (tmp_path / "c" / "data_batch_3").write_bytes(b"garbage")
    with pytest.raises(DataError, match="data_batch_3 is corrupt"):
        load_cifar10(tmp_path / "c")
    (tmp_path / "c" / "data_batch_3").unlink()
    with pytest.raises(DataError, match="data_batch_3 not found"):
        load_cifar10(tmp_path / "c")
    with pytest.raises(DataError, match="needs a folder"):
        load_cifar10(None)


def test_normalisation_and_resize():
    x = np.full((2, 1, 28, 28), 73, np.uint8)
    t = to_tensor(x, "fashion-mnist")
    assert t.shape == (2, 1, 32, 32) and torch.allclose(t, torch.tensor((73 / 255 - 0.2860) / 0.3530), atol=1e-6)
    c = to_tensor(np.zeros((1, 3, 32, 32), np.uint8), "cifar10")
    assert torch.allclose(c[0, :, 0, 0], -torch.tensor([0.4914, 0.4822, 0.4465]) / torch.tensor([0.247, 0.243, 0.261]))


def test_paper_subsets():
    labels = np.repeat(np.arange(10), 100)
    idx = step_subset(labels, 5, 10.0, 60, seed=666)
    counts = np.bincount(labels[idx], minlength=10)
    assert counts.tolist() == [60] * 5 + [6] * 5
    assert np.array_equal(idx, step_subset(labels, 5, 10.0, 60, seed=666))  # seeded
    assert not np.array_equal(idx, step_subset(labels, 5, 10.0, 60, seed=1))
    small = step_subset(labels, 5, 10.0, 30, seed=666)  # the first n of each class of the same shuffle
    assert set(small[labels[small] == 0]) <= set(idx[labels[idx] == 0])
    none = step_subset(labels, 5, math.inf, 60, seed=0)
    assert np.bincount(labels[none], minlength=10).tolist() == [60] * 5 + [0] * 5
    with pytest.raises(ValueError, match=r"n_A // R = 60 // 1000 = 0 .* R = inf experiment"):
        step_subset(labels, 5, 1000.0, 60, 0)  # refused, not silently the R = inf experiment
    over = oversample(idx, labels, range(5, 10), 10)
    assert np.bincount(labels[over], minlength=10).tolist() == [60] * 10
    lt = np.bincount(labels[long_tailed_subset(labels, 100, 10.0, 0)], minlength=10)
    assert lt[0] == 100 and lt[-1] == 10 and np.all(np.diff(lt) <= 0)
    with pytest.raises(ValueError, match="fewer than the 200"):
        step_subset(labels, 5, 1.0, 200, 0)
    with pytest.raises(ValueError, match="R must be >= 1"):
        step_subset(labels, 5, 0.5, 10, 0)
    with pytest.raises(ValueError, match="w_r must be an integer >= 1, got 0"):
        oversample(idx, labels, [5], 0)


@pytest.mark.parametrize("name", ["cnn", "mlp", "vgg11", "vgg13", "resnet18"])
@pytest.mark.parametrize("channels", [1, 3])
def test_models_share_one_interface(name, channels):
    m = build_model(name, channels, 7).eval()
    x = torch.randn(2, channels, 32, 32)
    h = m.features(x)
    assert h.shape == (2, m.feature_dim) and m(x).shape == (2, 7)
    assert torch.allclose(m(x), m.classifier(h)) and m.classifier.bias is not None
    assert m.feature_dim == {"vgg11": 4096, "vgg13": 4096, "resnet18": 512}.get(name, m.feature_dim)


def test_configuration_knows_exactly_the_buildable_models():
    from layerpeeled.networks.config import MODEL_NAMES
    from layerpeeled.networks.models import MODELS

    assert sorted(MODEL_NAMES) == sorted(MODELS)  # the torch-free list the CLI offers, and what is built


def test_unknown_model_and_options():
    with pytest.raises(ValueError, match="unknown model 'vgg19'"):
        build_model("vgg19", 1, 10)
    with pytest.raises(ValueError, match="unknown model 'alexnet'"):
        make_config("cpu", model="alexnet")
    with pytest.raises(ValueError, match="unknown preset 'gpu'"):
        make_config("gpu")
    with pytest.raises(ValueError, match=r"unknown training options \['lrate'\]"):
        make_config("cpu", lrate=0.1)
    with pytest.raises(ValueError, match="epochs must be a positive integer, got 0"):
        make_config("cpu", epochs=0)


def _tiny(tmp_path, **kw):
    folder = write_fashion(tmp_path / "data", n_train=600, n_test=100)
    return make_config("cpu", **{"data_dir": str(folder), "nA": 40, "epochs": 2, "batch_size": 32, "measurements": 2, **kw})


def _reload(cfg, run):
    """The trained network and its data, rebuilt from the run folder (independently of train())."""
    model = build_model(cfg.model, 1, 10)
    model.load_state_dict(torch.load(run / "checkpoint.pt", weights_only=True)["model"])
    return model.eval(), RunData(cfg, torch.device("cpu"))


def test_tiny_training_writes_a_complete_run(tmp_path):
    cfg = _tiny(tmp_path, R=4.0)
    rec = train(cfg, tmp_path / "run", progress=False)
    run = tmp_path / "run"
    for name in ("config.json", "records.csv", "records.json", "checkpoint.pt", "metrics.png"):
        assert (run / name).exists(), name
    assert rec["class_counts"] == [40] * 5 + [10] * 5 and rec["test_examples"] == 100
    # the recorded numbers, recomputed from the saved network
    model, data = _reload(cfg, run)
    with torch.no_grad():
        pred, test_pred = model(data.x).argmax(1), model(data.test_x).argmax(1)
    assert rec["train_acc"] == pytest.approx(float((pred == data.y).float().mean()), abs=1e-12)
    minority = data.test_y >= 5
    assert rec["test_acc_minority"] == pytest.approx(float((test_pred[minority] == data.test_y[minority]).float().mean()))
    W = model.classifier.weight.detach().double()
    assert rec["EW"] == pytest.approx(float((W**2).sum(1).mean()), rel=1e-12)
    assert rec["minority_w_cos"] == pytest.approx(float(np.mean([
        torch.nn.functional.cosine_similarity(W[i], W[j], dim=0) for i in range(5, 10) for j in range(5, 10) if i != j])),
        rel=1e-9)
    assert "class-balanced" in rec["nc_weighting"]
    import pandas as pd

    table = pd.read_csv(run / "records.csv")
    assert table["epoch"].tolist() == [1, 2] and "minority_w_cos" in table
    with pytest.raises(FileExistsError, match="--resume"):
        train(cfg, run, progress=False)


def test_intermediate_measurements_use_the_stratified_probe(tmp_path):
    data = write_fashion(tmp_path / "data", n_train=600, n_test=3000)
    cfg = make_config("cpu", data_dir=str(data), nA=40, epochs=2, batch_size=32, measurements=2, R=4.0)
    train(cfg, tmp_path / "run", progress=False)
    first, last = json.loads((tmp_path / "run" / "records.json").read_text())
    assert first["test_examples"] == 10 * PROBE_PER_CLASS and last["test_examples"] == 3000
    probe = stratified_subset(np.repeat(np.arange(10), 300), PROBE_PER_CLASS)
    assert np.bincount(np.repeat(np.arange(10), 300)[probe]).tolist() == [PROBE_PER_CLASS] * 10


def test_resume_is_bit_identical(tmp_path):
    cfg = _tiny(tmp_path, R=2.0, epochs=3, measurements=3)
    train(cfg, tmp_path / "straight", progress=False)
    train(cfg, tmp_path / "broken", progress=False, stop_after=1)  # interrupted after epoch 1
    train(cfg, tmp_path / "broken", progress=False, resume=True)
    a = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "broken" / "checkpoint.pt", weights_only=True)
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    strip = lambda recs: [{k: v for k, v in r.items() if k != "images_per_second"} for r in json.loads(recs)]
    assert strip(a["records"]) == strip(b["records"])
    with pytest.raises(ValueError, match="another configuration"):
        train(_tiny(tmp_path, R=2.0, epochs=4), tmp_path / "broken", progress=False, resume=True)


def test_infinite_ratio_and_cifar(tmp_path):
    rec = train(_tiny(tmp_path, R=math.inf, epochs=1, measurements=1), tmp_path / "inf", progress=False)
    assert rec["class_counts"][5:] == [0] * 5 and rec["train_acc_minority"] is None and rec["nc_classes"] == 5
    cifar = write_cifar(tmp_path / "cifar", per_batch=40)
    cfg = make_config("cpu", dataset="cifar10", data_dir=str(cifar), nA=15, epochs=1, batch_size=16,
                      measurements=1, R=3.0)
    assert train(cfg, tmp_path / "c", progress=False)["class_counts"] == [15] * 5 + [5] * 5


def test_long_tailed_training(tmp_path):
    rec = train(_tiny(tmp_path, R=4.0, imbalance="long-tailed", epochs=1, measurements=1), tmp_path / "lt", progress=False)
    counts = rec["class_counts"]
    assert counts[0] == 40 and counts[-1] == 10 and all(a >= b for a, b in zip(counts, counts[1:]))
    with pytest.raises(ValueError, match="imbalance must be one of"):
        _tiny(tmp_path, imbalance="zipf")
    with pytest.raises(ValueError, match="finite ratio"):
        _tiny(tmp_path, imbalance="long-tailed", R=math.inf)


def test_network_geometry_equals_model_geometry():
    r = solve(LPMProblem("100x4,1x3", 5, 1))
    W, H = r.factors()
    net = classifier_geometry(W, 4, [100] * 4 + [1] * 3, H)
    model = r.geometry
    for a, b in zip(net.groups, model.groups):
        for f in ("w_norm2", "h_norm2", "w_cos", "h_cos", "w_spread"):
            x, y = getattr(a, f), getattr(b, f)
            assert (x is None and y is None) or np.isclose(x, y, rtol=1e-6, atol=1e-9), f
    assert np.isclose(net.w_etf_distance, model.w_etf_distance, atol=1e-9)


@pytest.mark.slow
@pytest.mark.skipif(not (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").exists(),
                    reason="Debian's dataset-fashion-mnist is not installed (make test installs it when root)")
def test_real_fashion_mnist_tiny_run(tmp_path, capsys):
    assert main(["train", "--KA", "5", "--R", "10", "--nA", "100", "--epochs", "2", "--preset", "cpu",
                 "--out", str(tmp_path / "run")]) == 0
    rec = json.loads((tmp_path / "run" / "records.json").read_text())[-1]
    assert rec["class_counts"] == [100] * 5 + [10] * 5
    assert rec["test_acc"] > 0.3  # real images: two epochs already beat chance by far


@pytest.mark.parametrize("spec", ["cross-entropy", "la:tau=1", "vs:gamma=0.2,tau=1", "cdt:gamma=0.3", "ldam:C=0.5",
                                  "ls:eps=0.1"])
def test_training_loss_is_the_models_loss_on_a_batch(spec):
    """The torch loss on network logits equals the model's loss rows (layerpeeled.losses) averaged."""
    from layerpeeled.losses import parse_loss
    from layerpeeled.networks.train import training_loss

    counts = np.array([400, 400, 400, 30, 30, 0])  # a class without examples (R = inf) too
    gen = torch.Generator().manual_seed(3)
    logits, y = torch.randn(12, 6, generator=gen, dtype=torch.float64) * 3, torch.tensor([0, 1, 2, 3, 4] * 2 + [0, 3])
    got = float(training_loss(spec, counts, "cpu")(logits.float(), y))
    loss = parse_loss(spec)
    model_counts = np.where(counts > 0, counts, counts.max() / 1e12)
    coef = loss.row_coefficients(model_counts)
    Z = logits.numpy()
    rows = []
    for i, k in enumerate(y.tolist()):
        c = None if coef is None else tuple(np.atleast_1d(a[k]) if a.ndim == 1 else a for a in coef)
        others, mult = Z[i][None, :], (np.arange(6) != k)[None, :].astype(float)
        rows.append(loss.rows(np.array([Z[i, k]]), others, mult, c)[0][0])
    assert got == pytest.approx(float(np.mean(rows)), rel=1e-5)


@pytest.mark.parametrize("spec", ["la:tau=1", "ldam:C=0.5", "ls:eps=0.1", "vs:gamma=0.2,tau=1"])
def test_tiny_training_with_each_loss(tmp_path, spec):
    cfg = _tiny(tmp_path, R=4.0, loss=spec)
    rec = train(cfg, tmp_path / "run", progress=False)
    assert cfg.loss == spec and json.loads((tmp_path / "run" / "config.json").read_text())["loss"] == spec
    assert np.isfinite(rec["epoch_loss"]) and rec["minority_w_cos"] is not None
    assert "loss" not in _tiny(tmp_path).to_json()  # cross-entropy runs keep the keys they had before losses
    with pytest.raises(ValueError, match="unknown loss"):
        _tiny(tmp_path, loss="focal")


def test_tiny_training_with_a_fixed_etf_classifier(tmp_path):
    cfg = _tiny(tmp_path, R=4.0, classifier="etf")
    rec = train(cfg, tmp_path / "run", progress=False)
    model, _ = _reload(cfg, tmp_path / "run")
    W = model.classifier.weight.detach().double()
    G = W @ W.T
    assert torch.allclose(torch.diag(G), torch.ones(10, dtype=torch.float64), atol=1e-6)  # unit-norm rows, untrained
    assert torch.allclose(G[~torch.eye(10, dtype=bool)], torch.full((90,), -1 / 9, dtype=torch.float64), atol=1e-6)
    assert rec["minority_w_cos"] == pytest.approx(-1 / 9, abs=1e-6) and rec["EW"] == pytest.approx(1.0, abs=1e-6)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["classifier"] == "etf"
    assert "classifier" not in _tiny(tmp_path).to_json()
    with pytest.raises(ValueError, match="classifier must be one of"):
        _tiny(tmp_path, classifier="frozen")
