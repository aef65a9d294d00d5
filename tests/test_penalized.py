"""The penalized (weight-decay) model of SPEC §1: its convex form against a direct nonconvex
minimisation over W, H (features per example), three solvers against each other and their
certificates, and the balanced closed form (Zhu et al. 2021)."""
import json

import numpy as np
import pytest
from conftest import log_bisect
from scipy.optimize import minimize

from layerpeeled.cli import main
from layerpeeled.jsonio import loads
from layerpeeled.problem import PenalizedLPM
from layerpeeled.solvers import nuclear, solve

BIASES = [None, 0.05, 0.0]  # no bias, decayed, free


def _direct(counts, lW, lH, lb, p, rng, restarts=3):
    """SPEC §1 as written: one feature vector per example, minimised over (W, H, b) with L-BFGS."""
    counts = np.asarray(counts, dtype=int)
    K, N = counts.size, counts.sum()
    labels = np.repeat(np.arange(K), counts)

    def objective(theta):
        W = theta[:K * p].reshape(K, p)
        H = theta[K * p:K * p + N * p].reshape(N, p)
        b = theta[K * p + N * p:] if lb is not None else np.zeros(K)
        Z = H @ W.T + b
        m = Z.max(1, keepdims=True)
        e = np.exp(Z - m)
        s = e.sum(1, keepdims=True)
        loss = (np.log(s[:, 0]) + m[:, 0] - Z[np.arange(N), labels]).mean()
        P = e / s
        P[np.arange(N), labels] -= 1
        P /= N
        f = loss + lW / 2 * (W**2).sum() + lH / 2 * (H**2).sum() + (lb or 0) / 2 * (b**2).sum()
        gW, gH = P.T @ H + lW * W, P @ W + lH * H
        grad = [gW.ravel(), gH.ravel()] + ([P.sum(0) + (lb or 0) * b] if lb is not None else [])
        return f, np.concatenate(grad)

    size = K * p + N * p + (K if lb is not None else 0)
    best = min((minimize(objective, rng.normal(size=size), jac=True, method="L-BFGS-B",
                         options={"maxiter": 20000, "gtol": 1e-12, "ftol": 1e-15}) for _ in range(restarts)),
               key=lambda r: r.fun)
    return best.fun


@pytest.mark.parametrize("lb", BIASES)
@pytest.mark.parametrize("counts, lW, lH", [([4, 4, 2, 2], 1e-2, 1e-2), ([6, 2, 2], 3e-2, 5e-3), ([3, 3, 3, 1], 2e-3, 4e-2)])
def test_convex_form_equals_direct_minimisation(counts, lW, lH, lb, rng):
    P = PenalizedLPM(counts, lW, lH, lb)
    r = solve(P, tol=1e-11)
    direct = _direct(counts, lW, lH, lb, p=len(counts) + 1, rng=rng)
    assert r.value <= direct + 1e-9  # the convex form is a lower bound that the network attains
    assert direct - r.value <= 1e-7 * r.value


def _random_problem(rng, lb):
    K = int(rng.integers(3, 7))
    levels = np.round(10 ** rng.uniform(0, 3, size=int(rng.integers(1, 4))))
    counts = levels[rng.integers(0, levels.size, size=K)]
    lW, lH = 10 ** rng.uniform(-4, -1.5, size=2)
    return PenalizedLPM(counts, lW, lH, lb)


@pytest.mark.parametrize("lb", BIASES)
@pytest.mark.parametrize("seed", range(6))
def test_three_solvers_agree_and_certificates_hold(seed, lb):
    rng = np.random.default_rng(seed)
    P = _random_problem(rng, lb)
    results = {m: solve(P, m, tol=1e-10) for m in ("reduced", "first-order", "sdp")}
    best = min(r.value for r in results.values())
    for m, r in results.items():
        assert r.value - best <= r.gap * (1 + 1e-9) + 1e-13 * best, m  # every certificate bounds the error
    red, dense, ref = results["reduced"], results["first-order"], results["sdp"]
    assert red.gap <= 1e-10 * red.value and dense.gap <= 1e-10 * dense.value
    assert abs(red.value - dense.value) <= 2e-10 * best and abs(ref.value - best) <= 1e-6 * best
    for a, b in zip(red.energies, dense.energies):
        assert np.isclose(a, b, rtol=1e-4, atol=1e-8)
    if lb is not None:
        assert np.allclose(red.bias, dense.bias, atol=1e-4 * (1 + np.abs(dense.bias).max()))
        assert abs(red.bias @ np.ones(P.K)) < 1e-9 * (1 + np.abs(red.bias).max())  # reported centred


@pytest.mark.parametrize("track", [False, True])
@pytest.mark.parametrize("lb", BIASES)
def test_dense_solver_past_a_hundred_classes_matches_the_reduced_one(lb, track, monkeypatch):
    """K = 120 in three groups: the dense solver's large-K path (gap every tenth step, cheap sigma_max
    bound, eigh-based soft-thresholding on full or tracked partial spectra, bias rescaled to the
    logits' curvature) against the reduced program of the same problem. Before the rescaling a
    decayed bias had not reached 1e-3 in 15 000 steps."""
    monkeypatch.setattr(nuclear, "TRACK_FROM", 0 if track else 10**9)
    P = PenalizedLPM([5000.0] * 40 + [500.0] * 40 + [50.0] * 40, 2e-5, 2e-5, lb)
    red, dense = solve(P, "reduced", tol=1e-9), solve(P, "first-order", tol=1e-9, max_iter=3000)
    assert dense.status == "optimal" and dense.gap <= 1e-9 * dense.value
    assert abs(red.value - dense.value) <= red.gap + dense.gap
    assert red.rank == dense.rank
    if lb is not None:
        assert np.allclose(red.bias, dense.bias, atol=1e-4 * (1 + np.abs(red.bias).max()))


@pytest.mark.parametrize("lb", BIASES)
def test_factors_reproduce_the_value_and_energies(lb):
    P = PenalizedLPM([40, 40, 40, 4, 4], 2e-3, 1e-3, lb)
    r = solve(P, tol=1e-12)
    W, H = r.factors(p=6)
    b = np.zeros(P.K) if r.bias is None else r.bias
    Z = H @ W.T + b
    ce = np.log(np.exp(Z).sum(1)) - np.diag(Z)
    value = (P.counts @ ce / P.counts.sum() + P.lambda_W / 2 * (W**2).sum()
             + P.lambda_H / 2 * P.counts @ (H**2).sum(1) + (lb or 0) / 2 * b @ b)
    assert abs(value - r.value) <= 1e-10 * r.value
    EW, EH = r.energies
    assert np.isclose(EW, (W**2).sum(1).mean(), rtol=1e-10) and np.isclose(EH, (H**2).sum(1).mean(), rtol=1e-10)


@pytest.mark.parametrize("K, n, lW, lH", [(4, 10.0, 1e-2, 2e-3), (10, 5000.0, 5e-4, 5e-4), (3, 100.0, 1e-4, 1e-2)])
@pytest.mark.parametrize("lb", BIASES)
def test_balanced_closed_form(K, n, lW, lH, lb):
    """Zhu et al. (2021): a simplex ETF with margin rho = log((1 - (K-1) q)/q), q = sqrt(lW lH n),
    while q < 1/K; the zero solution (value log K) beyond. Any bias is 0 by symmetry."""
    q = np.sqrt(lW * lH * n)
    rho = np.log((1 - (K - 1) * q) / q) if q < 1 / K else 0.0
    value = np.log1p((K - 1) * np.exp(-rho)) + q * (K - 1) * rho
    r = solve(PenalizedLPM([n] * K, lW, lH, lb), tol=1e-12)
    assert abs(r.value - value) <= 1e-10 * value and r.value - value <= r.gap + 1e-15
    EW, EH = r.energies
    assert np.isclose(EW, np.sqrt(lH / lW) * np.sqrt(n) * rho * (K - 1) / K, rtol=1e-7, atol=1e-12)
    if rho > 0:
        assert r.geometry.groups[0].w_cos == pytest.approx(-1 / (K - 1), abs=1e-7)
    if lb is not None:
        assert np.abs(r.bias).max() < 1e-7


def test_beyond_the_threshold_everything_is_zero():
    r = solve(PenalizedLPM([100.0] * 4, 1e-1, 1e-1), tol=1e-12)  # q = 1 >= 1/K
    assert r.value == pytest.approx(np.log(4), rel=1e-12) and r.energies == (0.0, 0.0)


def test_cli_penalized_json_and_errors(capsys):
    argv = ["solve", "--counts", "500x5,5x5", "--lambda-W", "5e-4", "--lambda-H", "5e-4", "--lambda-b", "0", "--json"]
    assert main(argv) == 0
    out = loads(capsys.readouterr().out.strip().splitlines()[-1])
    r = solve(PenalizedLPM("500x5,5x5", 5e-4, 5e-4, 0.0))
    assert out["form"] == "penalized" and out["bias"] == "free" and out["lambda_b"] == 0.0
    assert out["value"] == pytest.approx(r.value, rel=1e-9) and out["gap"] <= 1e-9 * out["value"]
    assert (out["EW"], out["EH"]) == pytest.approx(r.energies, rel=1e-6)
    assert len(out["bias_values"]) == 10 and [g["count"] for g in out["groups"]] == [500, 5]
    assert main(["solve", "--counts", "500x5,5x5", "--lambda-W", "5e-4", "--lambda-H", "5e-4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["bias"] == "none" and out["bias_values"] is None and out["lambda_b"] is None
    for args, needle in [(["--lambda-W", "1e-3"], "needs --lambda-H too"),
                         (["--EW", "1", "--lambda-H", "1e-3"], "cannot be combined"),
                         (["--lambda-W", "1e-3", "--lambda-H", "-2"], "lambda_H must be a positive finite number, got -2.0"),
                         (["--lambda-W", "1e-3", "--lambda-H", "1", "--lambda-b", "nan"], "lambda_b must be a finite number >= 0"),
                         (["--lambda-W", "1e-3", "--lambda-H", "1", "--method", "first-order-torch"], "does not solve the penalized form")]:
        with pytest.raises(SystemExit):
            main(["solve", *args])
        assert needle in capsys.readouterr().err


def _minority(KA, KB, R, nA, lW, lH, lb, method="first-order"):
    """Minority spread (relative to the majority norm) and squared classifier norm from a full solve
    (by default the dense K x K solver: no symmetry reduction, no restricted face)."""
    g = solve(PenalizedLPM([nA] * KA + [nA / R] * KB, lW, lH, lb), method, tol=1e-12).geometry
    return g.groups[g.minority].w_spread, g.groups[g.minority].w_norm2 / g.groups[g.majority].w_norm2


@pytest.mark.parametrize("lb", [None, 1e-3, 0.0])
def test_penalized_collapse_onset_inside_a_bisection_of_full_solves(lb):
    from layerpeeled.collapse.onset import find_penalized_onset

    KA, KB, nA, lW, lH = 3, 2, 200.0, 1e-3, 1e-3
    on = find_penalized_onset(KA, KB, nA, lW, lH, lb, rel=1e-8)
    assert on.onset is not None and on.onset_margins[0] > 0 > on.onset_margins[1]
    lo, hi = log_bisect(lambda R: _minority(KA, KB, R, nA, lW, lH, lb)[0] < 1e-5, 1.01, 1e6, steps=16)
    assert lo <= on.onset <= hi and hi / lo < 1.01
    assert on.penalized["onset_nB"] == pytest.approx(nA / on.onset)
    before = _minority(KA, KB, on.onset * 0.97, nA, lW, lH, lb, "reduced")[0]
    after = _minority(KA, KB, on.onset * 1.03, nA, lW, lH, lb, "reduced")[0]
    assert before > 1e-3 and (after is None or after < 1e-6)


@pytest.mark.parametrize("lb", [0.0, 2e-3])
def test_penalized_vanishing_onset_matches_full_solves(lb):
    """With a bias the minority classifiers vanish beyond R_v (the bias alone serves the minority)."""
    from layerpeeled.collapse.onset import find_penalized_onset

    KA, KB, nA, lW, lH = 4, 2, 100.0, 2e-3, 2e-3
    on = find_penalized_onset(KA, KB, nA, lW, lH, lb, rel=1e-8)
    assert on.vanish is not None and on.vanish >= on.onset * (1 - 1e-6)
    below = _minority(KA, KB, on.vanish * 0.97, nA, lW, lH, lb)[1]
    above = _minority(KA, KB, on.vanish * 1.03, nA, lW, lH, lb)[1]
    assert below > 1e-6 and above < 1e-9


def test_a_minority_that_never_vanishes_is_reported_as_none():
    """Here, without a bias, the minority classifiers keep a norm at any R (with a bias they vanish)."""
    from layerpeeled.collapse.onset import find_penalized_onset

    on = find_penalized_onset(4, 2, 100.0, 2e-3, 2e-3, None, rel=1e-6)
    assert on.vanish is None and on.onset is not None
    ratio = _minority(4, 2, 1e6, 100.0, 2e-3, 2e-3, None)[1]
    assert ratio > 0.01  # minority / majority squared norm stays away from 0


def test_cli_penalized_onset(capsys):
    assert main(["onset", "--KA", "3", "--KB", "2", "--nA", "200", "--lambda-W", "1e-3", "--lambda-H", "1e-3", "--json"]) == 0
    out = loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["EH"] is None and out["penalized"]["nA"] == 200 and out["onset"] > 1
    for args, needle in [(["--nA", "100", "--lambda-W", "1e-3"], "needs --lambda-H too"),
                         (["--EH", "5", "--nA", "100", "--lambda-W", "1", "--lambda-H", "1"], "cannot be combined")]:
        with pytest.raises(SystemExit):
            main(["onset", *args])
        assert needle in capsys.readouterr().err


@pytest.mark.parametrize("KA, KB, nA, lW, lH", [(3, 2, 200.0, 1e-3, 1e-3), (5, 5, 5000.0, 5e-4, 5e-4),
                                                (2, 4, 50.0, 4e-3, 1e-3), (7, 3, 1000.0, 1e-4, 2e-3)])
def test_collapse_onset_equals_the_two_cluster_threshold(KA, KB, nA, lW, lH):
    """sqrt(n_B)/N = sqrt(lambda_W lambda_H) at the onset, whatever the bias (onset.penalized_collapse_threshold)."""
    from layerpeeled.collapse.onset import find_penalized_onset, penalized_collapse_threshold

    closed = penalized_collapse_threshold(KA, KB, nA, lW, lH)
    nB = nA / closed
    assert np.sqrt(nB) / (KA * nA + KB * nB) == pytest.approx(np.sqrt(lW * lH), rel=1e-12)
    for lb in (None, 0.0, 1e-2):
        on = find_penalized_onset(KA, KB, nA, lW, lH, lb, rel=1e-9)
        assert on.onset == pytest.approx(closed, rel=1e-8) and on.penalized["onset_closed_form"] == closed


def test_threshold_sides_by_full_solves():
    """Dense full solves (no reduction, no face) on both sides of the closed-form onset."""
    from layerpeeled.collapse.onset import penalized_collapse_threshold

    KA, KB, nA, lW, lH = 2, 3, 60.0, 5e-3, 2e-3
    R0 = penalized_collapse_threshold(KA, KB, nA, lW, lH)
    for lb in (None, 1e-2):
        assert _minority(KA, KB, R0 * 0.95, nA, lW, lH, lb)[0] > 1e-3
        after = _minority(KA, KB, R0 * 1.05, nA, lW, lH, lb)[0]
        assert after is None or after < 1e-6


def test_no_threshold_when_collapse_holds_at_every_ratio():
    from layerpeeled.collapse.onset import penalized_collapse_threshold

    # 4 K_A K_B n_A mu^2 > 1: sqrt(n_B)/N < mu for every n_B, so even at R = 1.5 the minority collapses
    assert penalized_collapse_threshold(5, 5, 5000.0, 1.5e-3, 1.5e-3) is None
    spread, norm_ratio = _minority(5, 5, 1.5, 5000.0, 1.5e-3, 1.5e-3, None)
    assert spread < 1e-6 and norm_ratio > 1e-3  # collapsed, not vanished


def test_penalized_sweep_records_equal_direct_solves_and_resume(tmp_path, capsys):
    import csv

    args = ["sweep", "--R", "1,40,1000", "--KA", "3", "--KB", "2", "--nA", "200", "--lambda-W", "1e-3",
            "--lambda-H", "1e-3,3e-3", "--lambda-b", "0", "--out", str(tmp_path)]
    assert main(args) == 0
    rows = list(csv.DictReader(open(tmp_path / "table.csv")))
    assert len(rows) == 6
    for row in rows:
        R, lH = float(row["R"]), float(row["lambda_H"])
        direct = solve(PenalizedLPM([200.0] * 3 + [200.0 / R] * 2, 1e-3, lH, 0.0), "first-order", tol=1e-10)
        assert float(row["value"]) == pytest.approx(direct.value, rel=1e-8)
        assert float(row["EW_opt"]) == pytest.approx(direct.energies[0], rel=1e-5)
        spread = direct.geometry.groups[direct.geometry.minority].w_spread
        assert (row["minority_w_spread"] == "") == (spread is None)
    capsys.readouterr()
    assert main(args) == 0
    assert "6 configurations, 6 already" in capsys.readouterr().out
    for bad, needle in [(["--EH", "5"], "cannot be combined"), (["--wr", "1,10"], "constrained form only")]:
        with pytest.raises(SystemExit):
            main(args + bad)
        assert needle in capsys.readouterr().err


def test_cli_penalized_figures(tmp_path):
    assert main(["figures", "--out", str(tmp_path), "--quick", "--nA", "1000", "--lambda-W", "1e-3",
                 "--lambda-H", "1e-3"]) == 0
    for stem in ("penalized_model_cosine_vs_R", "penalized_onset_phase_diagram"):
        assert (tmp_path / f"{stem}.png").stat().st_size > 10000
    with pytest.raises(SystemExit):
        main(["figures", "--out", str(tmp_path), "--nA", "1000", "--lambda-W", "-1", "--lambda-H", "1e-3"])


@pytest.mark.parametrize("track", [False, True])
def test_nuclear_norm_at_proximal_points_equals_the_singular_values(track, monkeypatch):
    """At a proximal point the dense solver takes |Y|_* from the pairs it made (no K x K SVD per
    step): equal to the sum of singular values to rounding, full or tracked spectra, and the
    singular values themselves anywhere else."""
    from layerpeeled.solvers.penalized import PenalizedDense

    monkeypatch.setattr(nuclear, "TRACK_FROM", 0 if track else 10**9)
    P = PenalizedLPM([5000.0] * 20 + [50.0] * 40, 1e-3, 1e-3)
    prog, rng = PenalizedDense(P), np.random.default_rng(3)
    v0 = prog.pack(rng.normal(size=(60, 60)) @ np.diag(np.logspace(0, -3, 60)), np.zeros(0))
    for _ in range(6):  # nearby points, about 12 pairs kept: tracked after the first
        tracked = prog.shrink.basis is not None
        x = prog.prox(v0 + 1e-3 * rng.normal(size=v0.shape), 2.0 / P.mu)
        exact = np.linalg.svd(prog.split(x)[0], compute_uv=False).sum()
        assert abs(prog.nuclear_norm(x) - exact) <= 1e-13 * exact
    assert tracked == track
    y = x.copy()  # the same matrix, but not the proximal point object: singular values
    assert abs(prog.nuclear_norm(y) - np.linalg.svd(prog.split(y)[0], compute_uv=False).sum()) <= 1e-15 * exact


@pytest.mark.parametrize("lb", [0.0, 1e-2])
def test_balanced_bias_bound_holds_and_closes(lb, rng):
    """The dense solver's bound at the dual point whose bias is optimal for the iterate's logits:
    at points with the logits moved by up to 1e-3 and the bias by 1e-4 to 1e-1 from the optimum it
    bounds F - F* (F* from a tight reduced solve); with the logits at the optimum it is far below
    the bound at the iterate, whose bias part is first order in the bias gradient (the reason biased
    solves had taken 2-4x the steps of unbiased ones)."""
    from layerpeeled.solvers.penalized import PenalizedDense

    P = PenalizedLPM([5000.0] * 3 + [500.0] * 3 + [50.0] * 3, 2e-4, 2e-4, lb)
    F_star = solve(P, "reduced", tol=1e-13).value
    optimum = solve(P, "first-order", tol=1e-12)
    prog = PenalizedDense(P)
    for move_Y in (0.0, 1e-3):
        for move_b in (1e-4, 1e-2, 1e-1):
            Y = P.row_scale[:, None] * optimum.logits * (1 + move_Y * rng.normal(size=(P.K, P.K)))
            x = prog.prox(prog.pack(Y, optimum.bias + move_b * rng.normal(size=P.K)), 0.0)  # feasible
            f, g = prog.value_grad(x)
            F = prog.total(x, f)
            Yx, b = prog.split(x)
            balanced = prog.balanced_gap(Yx, b - b.mean(), f, F, prog.nuclear_norm(x), None)
            classic = prog.gap(x, f, g)  # no target: the bound at the iterate
            assert F - F_star <= balanced * (1 + 1e-9) + 1e-14 * F_star
            if move_Y == 0 and move_b <= 1e-2:
                assert balanced < 1e-2 * classic
