"""Minority Collapse: onsets against SDP bisection, monotone trends, mitigation, sweeps, figures."""
import json

import numpy as np
import pytest
from conftest import log_bisect

from layerpeeled import LPMProblem, solve, step_counts
from layerpeeled.problem import PenalizedLPM
from layerpeeled.cli import main
from layerpeeled.collapse import effective_counts, find_onset, min_oversampling
from layerpeeled.collapse.sweep import model_configs, paper_ratios, run_sweep, sweep_in_memory
from layerpeeled.sweeps import ResultStore


def _sdp_minority(KA, KB, R, E):
    """Minority spread (relative to the majority norm) and squared norm, from a full SDP solve."""
    g = solve(LPMProblem(step_counts(KA, KB, R), E, 1.0), "sdp", tol=1e-10).geometry.groups[1]
    return g.w_spread, g.w_norm2


@pytest.mark.parametrize("KA, KB, E", [(2, 2, 5.0), (3, 2, 2.0)])
def test_collapse_onset_inside_sdp_bisection_bracket(KA, KB, E):
    onset = find_onset(KA, KB, E, 1.0).onset
    lo, hi = log_bisect(lambda R: _sdp_minority(KA, KB, R, E)[0] < 1e-3, 1.05, 1e5, steps=12)
    assert lo <= onset <= hi and hi / lo < 1.02


def test_vanish_onset_inside_sdp_bisection_bracket():
    KA, KB, E = 3, 2, 0.5
    on = find_onset(KA, KB, E, 1.0)
    assert on.vanish is not None and on.vanish >= on.onset
    lo, hi = log_bisect(lambda R: _sdp_minority(KA, KB, R, E)[1] < 1e-6, 1.001, 1e3, steps=12)  # norm < 1e-3
    assert lo <= on.vanish <= hi


@pytest.mark.parametrize("KA, KB, E", [(5, 5, 5.0), (3, 7, 1.0), (7, 3, 5.0), (4, 2, 20.0)])
def test_spread_zero_beyond_onset_positive_before(KA, KB, E):
    on = find_onset(KA, KB, E, 1.0)
    assert on.onset_margins[0] > 0 > on.onset_margins[1]  # the bracket evidence
    before = solve(LPMProblem(step_counts(KA, KB, on.onset * 0.98), E, 1.0), tol=1e-12).geometry.groups[1]
    after = solve(LPMProblem(step_counts(KA, KB, on.onset * 1.02), E, 1.0), tol=1e-12).geometry.groups[1]
    assert before.w_spread > 1e-3 and before.w_cos < 1 - 1e-5
    assert after.w_spread < 1e-6 and (after.vanished or after.w_cos > 1 - 1e-9)


def test_onset_is_precise_to_many_digits():
    a = find_onset(5, 5, 5.0, 1.0, rel=1e-10).onset
    b = find_onset(5, 5, 5.0, 1.0, rel=1e-7).onset
    assert abs(a - b) <= 1e-6 * a


def test_monotone_trends():
    for KA in (3, 5, 7):
        recs = sweep_in_memory(model_configs(paper_ratios(), KA=[KA], KB=[10 - KA]))
        cos = [r["minority_w_cos"] for r in recs if r["minority_w_cos"] is not None]
        norms = [r["minority_w_norm2"] for r in recs]
        assert np.all(np.diff(cos) >= -1e-9), KA  # the minority closes up as R grows
        assert np.all(np.diff(norms) <= 1e-9), KA  # and shrinks
    by_energy = [find_onset(5, 5, E, 1.0, rel=1e-6).onset for E in (0.5, 2.0, 8.0)]
    assert by_energy[0] < by_energy[1] < by_energy[2]  # bigger budgets delay collapse
    by_KA = [find_onset(KA, 10 - KA, 5.0, 1.0, rel=1e-6).onset for KA in (3, 5, 7)]
    assert by_KA[0] > by_KA[1] > by_KA[2]  # more majority classes collapse the minority sooner


@pytest.mark.parametrize("how", ["oversample", "reweight"])
@pytest.mark.parametrize("R, wr", [(1000.0, 10.0), (100.0, 100.0), (50.0, 3.5)])
def test_mitigation_is_the_problem_with_ratio_R_over_wr(how, R, wr):
    counts = effective_counts(step_counts(4, 3, R, nA=600), wr, slice(4, None), how)
    mitigated = solve(LPMProblem(counts, 5, 1), tol=1e-11)
    equivalent = solve(LPMProblem(step_counts(4, 3, R / wr), 5, 1), tol=1e-11)
    assert abs(mitigated.value - equivalent.value) <= 1e-9 * equivalent.value
    for a, b in zip(mitigated.geometry.groups, equivalent.geometry.groups):
        assert np.isclose(a.w_norm2, b.w_norm2, rtol=1e-6)


def test_oversampling_matches_explicit_duplicated_examples():
    """Per-example objective with each minority example repeated w_r times equals the LPM value."""
    nA, nB, wr = 6, 2, 3
    counts = effective_counts([nA, nA, nB, nB], wr, [2, 3])
    r = solve(LPMProblem(counts, 4, 1), tol=1e-12)
    W, H = r.factors()
    examples = [k for k, n in enumerate([nA, nA, nB * wr, nB * wr]) for _ in range(int(n))]
    Z = H[examples] @ W.T
    per_example = np.log(np.exp(Z).sum(1)) - Z[np.arange(len(examples)), examples]
    assert np.isclose(per_example.mean(), r.value, rtol=1e-12)
    # the feature budget is a per-class mean: duplicating examples leaves it unchanged
    assert np.isclose(np.mean([(H[k] ** 2).sum() for k in range(4)]), 4.0, rtol=1e-9)


def test_min_oversampling():
    on = find_onset(5, 5, 5.0, 1.0).onset
    w = min_oversampling(1000.0, on)
    assert np.isclose(w, 1000.0 / on) and min_oversampling(on / 2, on) == 1.0 and min_oversampling(5.0, None) == 1.0
    above = solve(LPMProblem(effective_counts(step_counts(5, 5, 1000.0), w * 1.05, slice(5, None)), 5, 1))
    below = solve(LPMProblem(effective_counts(step_counts(5, 5, 1000.0), w * 0.95, slice(5, None)), 5, 1))
    assert above.geometry.groups[1].w_spread > 1e-4 and below.geometry.groups[1].w_spread < 1e-7


@pytest.mark.parametrize("kwargs, needle", [
    (dict(KA=5, KB=1), "KB >= 2"), (dict(KA=0, KB=5), "KA must be a positive integer, got 0"),
    (dict(KA=5, KB=5, EH=-1.0), "EH must be a positive finite number, got -1.0"),
])
def test_onset_bad_parameters(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        find_onset(**kwargs)


def test_bad_mitigation():
    with pytest.raises(ValueError, match="w_r must be a finite number >= 1, got 0.5"):
        effective_counts([1, 1], 0.5, [1])
    with pytest.raises(ValueError, match="mitigation must be one of"):
        effective_counts([1, 1], 2, [1], "smote")
    with pytest.raises(ValueError, match="unknown loss .hinge.; choose one of"):
        model_configs([1.0], loss="hinge")


def test_sweep_resumes_without_redoing(tmp_path):
    store = ResultStore(tmp_path)
    configs = model_configs([1.0, 10.0, 100.0], KA=[3, 5], KB=[4])
    run_sweep(configs[:4], store, progress=False)
    stamps = {p.name: p.stat().st_mtime_ns for p in store.records_dir.glob("*.json")}
    (store.records_dir / ".junk.json.tmp").write_text("{half")  # what a kill mid-write could leave
    records = run_sweep(configs, store, progress=False)
    assert len(records) == 6
    for p in store.records_dir.glob("*.json"):
        if p.name in stamps:
            assert p.stat().st_mtime_ns == stamps[p.name]  # finished work untouched
    import pandas as pd

    table = pd.read_csv(tmp_path / "table.csv")
    assert len(table) == 6 and {"R", "KA", "minority_w_cos", "gap", "method"} <= set(table.columns)


def test_cli_onset_json_and_sweep(capsys, tmp_path):
    assert main(["onset", "--KA", "5", "--KB", "5", "--EH", "5", "--EW", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["onset"] == pytest.approx(find_onset(5, 5).onset, rel=1e-9) and out["vanish"] is None
    assert main(["onset", "--KA", "7", "--KB", "3", "--EH", "0.5", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["vanish"] > 1
    assert main(["sweep", "--R", "logspace:0:2:3", "--E", "1,5", "--out", str(tmp_path)]) == 0
    assert len(ResultStore(tmp_path).records()) == 6
    with pytest.raises(SystemExit):
        main(["sweep", "--R", "logspace:0:2", "--out", str(tmp_path)])
    assert "cannot read 'logspace:0:2'" in capsys.readouterr().err


def test_cli_figures(tmp_path, capsys):
    assert main(["figures", "--out", str(tmp_path), "--quick", "--format", "png,svg"]) == 0
    for stem in ("model_cosine_vs_R", "onset_phase_diagram", "model_oversampling"):
        assert (tmp_path / f"{stem}.png").stat().st_size > 10000 and (tmp_path / f"{stem}.svg").exists()


def _full_spread(KA, KB, R, E, method="reduced"):
    """Minority spread from a full solve (the whole program, no face held), certified to 1e-12."""
    return solve(LPMProblem(step_counts(KA, KB, R), E, 1.0), method, tol=1e-12).geometry.groups[1]


@pytest.mark.parametrize("KA, KB, E, method", [(6, 2, 100.0, "first-order"), (50, 2, 1000.0, "reduced")])
def test_onsets_at_network_energies_inside_a_bisection_of_full_solves(KA, KB, E, method):
    """Networks live at E_H E_W ~ 100-1000, where onsets lie at R ~ 1e5-1e13."""
    on = find_onset(KA, KB, E, 1.0)
    lo, hi = log_bisect(lambda R: _full_spread(KA, KB, R, E, method).w_spread < 1e-6, on.onset / 2, on.onset * 2, steps=9)
    assert lo <= on.onset <= hi and hi / lo < 1.01
    if on.vanish is not None:
        assert _full_spread(KA, KB, on.vanish * 0.99, E, method).w_norm2 > 1e-6
        assert _full_spread(KA, KB, on.vanish * 1.01, E, method).vanished


def test_onset_beyond_the_search_range_is_reported_as_none():
    on = find_onset(5, 5, 1000.0, 1.0, rel=1e-6)
    assert on.onset is None and on.vanish is None
    assert _full_spread(5, 5, 1e12, 1000.0).w_spread > 1e-3  # indeed not collapsed at R = 1e12


def test_dense_sweep_starts_from_its_neighbour():
    """Along a long-tailed sweep (too many distinct counts for the reduced solver) each first-order
    solve starts from the previous logits scaled onto its ball: same certified value, fewer steps."""
    from layerpeeled import long_tailed_counts
    from layerpeeled.collapse.sweep import solve_warm

    problems = [LPMProblem(long_tailed_counts(30, rho, n_max=1000), EH, 1.0) for rho, EH in ((50.0, 5.0), (63.0, 5.0))]
    warm = {}
    solve_warm(problems[0], warm)
    assert warm["logits"]["x0"].shape == (30, 30)
    warmed, cold = solve_warm(problems[1], warm), solve_warm(problems[1], None)
    assert warmed.method == cold.method == "nuclear-numpy"
    assert abs(warmed.value - cold.value) <= warmed.gap + cold.gap
    assert warmed.iterations < cold.iterations


@pytest.mark.parametrize("lb", [None, 0.0])
def test_penalized_dense_sweep_starts_from_its_neighbour(lb):
    """The penalized form along a long-tailed sweep: each dense solve starts from the previous logits
    and bias, lands within the certified gaps of a cold solve, in fewer steps."""
    from layerpeeled import long_tailed_counts
    from layerpeeled.collapse.sweep import solve_warm

    problems = [PenalizedLPM(long_tailed_counts(30, rho, n_max=1000), 1e-3, 1e-3, lb) for rho in (50.0, 63.0)]
    warm = {}
    solve_warm(problems[0], warm)
    assert warm["penalized_logits"]["x0"].shape == (30, 30) and "logits" not in warm
    warmed, cold = solve_warm(problems[1], warm), solve_warm(problems[1], None)
    assert warmed.method == cold.method == "first-order-numpy"
    assert abs(warmed.value - cold.value) <= warmed.gap + cold.gap
    assert warmed.iterations < cold.iterations
    with pytest.raises(ValueError, match="x0 must be a 30 x 30"):
        solve(problems[1], "first-order", x0=np.zeros((3, 3)))
    if lb is not None:
        with pytest.raises(ValueError, match="bias0 must hold 30"):
            solve(problems[1], "first-order", bias0=np.zeros(3))
