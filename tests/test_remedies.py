"""Imbalance remedies: re-weighting in training, the model twin of a network, the bridge with the
run's own loss and classifier, and `lpm reproduce remedies`."""
import html
import json
import math
import re

import numpy as np
import pytest
import torch
from fakedata import write_fashion

from layerpeeled import LPMProblem, solve
from layerpeeled.geometry.gram import GramStats, normalized_distance
from layerpeeled.networks.config import make_config
from layerpeeled.networks.measure import model_twin, twin_distances
from layerpeeled.networks.train import train, training_loss
from layerpeeled.problem import step_counts
from layerpeeled.reproduce import remedies, scales
from layerpeeled.reproduce.bridge import bridge_series, model_problem
from layerpeeled.reproduce.pipeline import reproduce
from layerpeeled.solvers import choose_method


@pytest.mark.parametrize("spec", ["cross-entropy", "la:tau=1", "ls:eps=0.1"])
def test_reweighting_equals_oversampling_on_a_whole_batch(spec):
    """Multiplying the minority's loss by w equals repeating its examples w times, up to the
    normalisation N'/N of the larger set (SPEC §2.7), count-based losses included."""
    counts, w = np.array([40, 40, 40, 4, 4]), 3
    weights = np.where(np.arange(5) >= 3, float(w), 1.0)
    gen = torch.Generator().manual_seed(0)
    y = torch.tensor([0, 1, 2, 3, 4, 0, 3])
    logits = torch.randn(len(y), 5, generator=gen) * 2
    got = float(training_loss(spec, counts, "cpu", weights)(logits, y))
    repeat = torch.tensor([w if int(k) >= 3 else 1 for k in y])
    over_y, over_logits = y.repeat_interleave(repeat), logits.repeat_interleave(repeat, 0)
    over = float(training_loss(spec, counts * weights, "cpu")(over_logits, over_y))
    assert got == pytest.approx(over * len(over_y) / len(y), rel=1e-6)
    assert float(training_loss(spec, counts, "cpu", np.ones(5))(logits, y)) == pytest.approx(
        float(training_loss(spec, counts, "cpu")(logits, y)), rel=1e-7)


def test_reweight_option_is_validated_and_keeps_old_keys(tmp_path):
    cfg = make_config("cpu", R=10.0, reweight=10)
    assert cfg.to_json()["reweight"] == 10 and cfg.class_weights(10).tolist() == [1.0] * 5 + [10.0] * 5
    assert "reweight" not in make_config("cpu", R=10.0).to_json()  # runs keyed before re-weighting keep their keys
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match=f"reweight must be a positive integer, got {bad!r}"):
            make_config("cpu", reweight=bad)


def test_normalized_distance_matches_the_block_formula():
    rng = np.random.default_rng(1)
    A = rng.normal(size=(7, 4))
    G = A @ A.T
    groups = [range(3), range(3, 7)]
    S = np.full((7, 7), 0.2)
    S[:3, :3], S[3:, 3:] = -0.4, 0.7
    np.fill_diagonal(S, [2.0] * 3 + [1.0] * 4)
    block = GramStats.from_matrix(G, groups).distance(GramStats.from_matrix(S, groups))
    assert normalized_distance(G, S) == pytest.approx(block, rel=1e-12)
    assert normalized_distance(3 * G, G) == pytest.approx(0.0, abs=1e-12)
    assert math.isnan(normalized_distance(np.zeros((7, 7)), G))


def test_a_network_at_its_model_twins_optimum_is_at_distance_zero():
    counts, EH, EW = [50] * 3 + [5] * 3, 4.0, 1.5
    W, H = solve(LPMProblem(counts, EH, EW)).factors()
    offset = np.ones(H.shape[1])  # a common feature offset (a network's bias absorbs it) is centred away
    d = twin_distances(W, H + offset, counts, EH, EW, "cross-entropy", "learned")
    assert d["w_model_distance"] < 1e-6 and d["h_model_distance"] < 1e-6
    other = twin_distances(W, H, counts, EH, EW, "la:tau=1", "learned")  # another loss, another optimum
    assert other["w_model_distance"] > 1e-2
    rebalanced = twin_distances(W, H, [50] * 3 + [5] * 3, EH, EW, "cross-entropy", "learned", [1] * 3 + [10] * 3)
    assert rebalanced["w_model_distance"] > 1e-2  # re-weighting by 10 is the balanced model: an ETF
    assert model_twin([50, 50, 0], 1.0, 1.0).counts[2] == pytest.approx(50 / 1e12)  # R = inf as in the bridge
    huge = twin_distances(W, H, counts, 1e6, 1e6, "cross-entropy", "learned")  # every loss underflows: no twin
    assert huge == {"w_model_distance": None, "h_model_distance": None}
    assert twin_distances(W, H * np.nan, counts, EH, EW, "cross-entropy", "learned")["h_model_distance"] is None


def _record(counts, config, EH=20.0, EW=1.0):
    return {"class_counts": counts, "EH": EH, "EW": EW, "minority_w_cos": 0.3, "majority_w_cos": -0.2,
            "between_cos": -0.1, "minority_w_norm2": 0.5, "majority_w_norm2": 1.0, "config": config}


def test_the_bridge_models_the_runs_own_loss_classifier_and_weights():
    counts = [1000] * 5 + [10] * 5
    base = {"R": 100.0, "KA": 5, "wr": 1, "weight_decay": 5e-4, "seed": 666}
    for extra, classifier, penalized in (({}, "learned", True), ({"loss": "la:tau=1"}, "learned", True),
                                         ({"loss": "vs:gamma=0.2,tau=1"}, "learned", False),
                                         ({"classifier": "etf"}, "etf", False)):
        config = {**base, **extra}
        rec = _record(counts, config)
        twin = model_problem(rec, config, "measured")
        assert twin.loss.spec == config.get("loss", "cross-entropy") and twin.classifier == classifier
        assert (model_problem(rec, config, "weight-decay") is not None) == penalized
        assert (model_problem(rec, config, "fitted-decay", 1e-3) is not None) == penalized
    rec = _record(counts, {**base, "reweight": 100}) | {"class_weights": [1.0] * 5 + [100.0] * 5}
    assert model_problem(rec, rec["config"], "measured").counts.tolist() == [1000.0] * 10
    # the same counts under two losses are two predictions, not one cached answer
    ce, la = (_record(counts, {**base, **e}) for e in ({}, {"loss": "la:tau=1"}))
    b_ce, b_la = bridge_series([ce, la])
    assert b_ce["predicted"]["measured"]["minority_w_cos"] != pytest.approx(b_la["predicted"]["measured"]["minority_w_cos"])
    etf = bridge_series([_record(counts, {**base, "classifier": "etf"})])[0]
    assert set(etf["predicted"]) == {"measured", "fitted"} and etf["fitted_decay"] is None


def test_a_run_whose_norms_blew_up_has_no_twin_and_is_named_not_compared():
    """Re-weighting by 1000 drove a cpu-scale classifier to E_W ~ 1e6: beyond what double precision
    resolves, so the run has no model twin; the bridge and the remedies table say so instead of failing."""
    counts = [1000] * 5 + [1] * 5
    config = {"R": 1000.0, "KA": 5, "wr": 1, "reweight": 1000, "weight_decay": 5e-4, "seed": 666}
    rec = _record(counts, config, EH=56.5, EW=1.36e6) | {"class_weights": [1.0] * 5 + [1000.0] * 5,
                                                        "test_acc": 0.5, "test_acc_minority": 0.1}
    assert model_problem(rec, config, "measured") is None
    assert model_problem(rec, config, "fitted", 10.0).counts.tolist() == [1000.0] * 10  # energies aside
    b = bridge_series([rec])[0]
    assert "measured" not in b["predicted"] and "fitted" in b["predicted"]
    row = remedies.network_row(rec)
    assert row["remedy"] == "reweight" and row["model collapsed"] is None and row["cos model"] is None
    assert remedies.disagreements([row | {"network collapsed": True}]) == []


def test_every_remedy_round_trips_through_its_training_configuration():
    for R in (10.0, 1000.0):
        for name, remedy in remedies.REMEDIES.items():
            config = make_config("cpu", R=R, **remedy.training(R)).to_json()
            assert remedies.remedy_of(config) == name
    with pytest.raises(ValueError, match="applies no single remedy"):
        remedies.remedy_of(make_config("cpu", R=10.0, wr=10, loss="la:tau=1").to_json())
    configs = scales.network_configs("remedies", scales.get_scale("cpu"))
    assert len(configs) == 3 * len(remedies.REMEDIES) and [c["R"] for c in configs[:2]] == [1000.0, 1000.0]
    for name, scale in scales.SCALES.items():  # every scale's ratios leave its minority some examples
        assert len(scales.network_configs("remedies", scale)) == len(scale.remedy_ratios) * len(remedies.REMEDIES)


def test_model_curves_against_closed_forms_and_the_paper_sweep():
    from layerpeeled.collapse.sweep import model_configs, sweep_in_memory

    ratios = [1.0, 3.0, 10.0, 100.0]
    curves = remedies.model_curves(ratios, nA=1000.0)
    for name in ("oversample", "reweight"):  # w_r = R: the balanced model, a simplex ETF (SPEC §2.4, §2.7)
        assert all(r["minority_w_cos"] == pytest.approx(-1 / 9, abs=1e-7) for r in curves[name])
    for r in curves["etf"]:  # the fixed classifier keeps its ETF; the class means follow it here
        assert r["minority_w_cos"] == pytest.approx(-1 / 9, abs=1e-9) and r["minority_recognised"] == 1.0
    paper = sweep_in_memory(model_configs(ratios, KA=[5], KB=[5], EH=[5.0], EW=[1.0]))
    for mine, ref in zip(curves["cross-entropy"], paper):  # cross-entropy sees only ratios: figure (a)'s values
        assert mine["minority_w_cos"] == pytest.approx(ref["minority_w_cos"], abs=1e-6)
    collapsed = curves["cross-entropy"][-1]
    assert collapsed["minority_w_cos"] == pytest.approx(1.0, abs=1e-6) and collapsed["minority_recognised"] == 0.2
    assert choose_method(LPMProblem(step_counts(5, 5, 10.0), 5.0, 1.0, classifier="etf")) == "first-order"


def test_each_loss_remedys_exact_onset_agrees_with_its_certified_curve():
    from layerpeeled.collapse.sweep import paper_ratios

    ratios = paper_ratios()
    curves, onsets = remedies.model_curves(ratios, nA=1000.0), remedies.model_onsets(1000.0)
    assert set(onsets) == {"cross-entropy", "la", "vs", "cdt", "ldam", "ls"}
    for name, on in onsets.items():
        for rec in curves[name]:
            full = rec["minority_vanished"] or rec["minority_w_cos"] > 1 - 1e-6
            if on.onset is not None and abs(rec["R"] / on.onset - 1) > 1e-6:
                assert full == (rec["R"] > on.onset), (name, rec["R"], on.onset)
            if on.onset is None:
                assert not full
            if on.vanish is not None and abs(rec["R"] / on.vanish - 1) > 1e-6:
                assert bool(rec["minority_vanished"]) == (rec["R"] > on.vanish), (name, rec["R"], on.vanish)


def test_minority_recognised_counts_ties_as_shares():
    balanced = solve(LPMProblem([1.0] * 4, 5.0, 1.0))
    assert remedies.minority_recognised(balanced, 2) == 1.0
    assert remedies.minority_recognised(balanced, 4) is None
    vanished = solve(LPMProblem(step_counts(5, 5, 1e6), 5.0, 1.0, "la:tau=1"))
    assert vanished.geometry.groups[1].vanished
    rows = vanished.logits[5:]
    ties = np.isclose(rows, rows.max(axis=1, keepdims=True), atol=1e-9).sum(1)
    assert remedies.minority_recognised(vanished, 5) == pytest.approx(np.mean(1.0 / ties))


def test_disagreements_are_named_per_remedy_and_ratio():
    rows = [{"remedy": "la", "R": 1000.0, "network collapsed": False, "model collapsed": True,
             "cos network": 0.2, "cos model": None},
            {"remedy": "cross-entropy", "R": 1000.0, "network collapsed": True, "model collapsed": True,
             "cos network": 0.7, "cos model": 1.0}]
    found = remedies.disagreements(rows)
    assert len(found) == 1 and found[0].startswith("logit adjustment (la, tau = 1) at R = 1000: the model collapses")
    assert "network 0.20, model 1.00" in found[0]
    rows[0]["minority test acc"], rows[1]["minority test acc"] = 0.3, 0.0
    assert remedies.lost_minorities(rows) == ["cross-entropy (no remedy) at R = 1000"]


@pytest.mark.slow
def test_reproduce_remedies_trains_every_remedy_and_reports_each_beside_its_twin(tmp_path, monkeypatch):
    tiny = scales.Scale("cpu", dict(nA=24, epochs=2, batch_size=16, measurements=1, milestones=(1,)),
                        (1.0,), (5,), 4.0, (1,), remedy_ratios=(4.0,))
    monkeypatch.setitem(scales.SCALES, "tiny", tiny)
    data = write_fashion(tmp_path / "data", n_train=400, n_test=60)
    report = reproduce(["remedies"], scale="tiny", out=tmp_path / "out", data_dir=str(data), workers=2, progress=False)
    text = html.unescape(report.read_text())
    pngs = sorted(p.name for p in (tmp_path / "out" / "figures").glob("*.png"))
    assert pngs == ["nc_over_training.png", "remedies_model.png", "remedies_networks.png"]
    assert "Remedies in the model" in text and "each beside its model twin" in text
    assert ("disagree on collapse" in text) or ("agree on collapse for every remedy" in text)
    records = [json.loads(p.read_text()) for p in (tmp_path / "out" / "networks" / "records").glob("*.json")]
    assert sorted(remedies.remedy_of(r["config"]) for r in records) == sorted(remedies.REMEDIES)
    for r in records:
        assert r["w_model_distance"] is not None and 0 <= r["w_model_distance"] <= 2
        assert ("class_weights" in r) == (remedies.remedy_of(r["config"]) == "reweight")
    rows = len(re.findall(r"<tr><td>", text))
    assert rows == 2 * len(remedies.REMEDIES)  # the model table, then one row per run
    # a sweep looked at half-way: the finished runs only, nothing trained
    store = tmp_path / "out" / "networks" / "records"
    next(store.glob("*.json")).unlink()
    runs = sorted(p.name for p in (tmp_path / "out" / "networks" / "runs").iterdir())
    report = reproduce(["remedies"], scale="tiny", out=tmp_path / "out", data_dir=str(data), progress=False,
                       finished_only=True)
    assert len(re.findall(r"<tr><td>", report.read_text())) == rows - 1
    assert sorted(p.name for p in (tmp_path / "out" / "networks" / "runs").iterdir()) == runs
    assert len(list(store.glob("*.json"))) == len(remedies.REMEDIES) - 1


def test_finished_only_without_finished_runs_says_so(tmp_path):
    with pytest.raises(RuntimeError, match="--finished-only: no finished run under .* for \\['remedies'\\]"):
        reproduce(["remedies"], scale="smoke", out=tmp_path, finished_only=True)
