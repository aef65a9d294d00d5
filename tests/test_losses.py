import dataclasses
import json

import mpmath
import numpy as np
import pytest
import torch

from layerpeeled.losses import CrossEntropy

ce = CrossEntropy()


def _full(Z):
    return np.diag(Z).copy(), Z, 1.0 - np.eye(Z.shape[0])


def test_matches_naive_formula_and_gradient(rng):
    Z = rng.normal(size=(6, 6)) * 3
    loss, d_t, d_o = ce.rows(*_full(Z))
    naive = np.log(np.exp(Z).sum(1)) - np.diag(Z)
    assert np.allclose(loss, naive, rtol=1e-13)
    # gradient of row losses w.r.t. Z by central differences
    G = d_o + np.diag(d_t)
    eps = 1e-6
    for k, j in [(0, 0), (0, 3), (4, 2), (5, 5)]:
        E = np.zeros_like(Z)
        E[k, j] = eps
        num = (ce.rows(*_full(Z + E))[0][k] - ce.rows(*_full(Z - E))[0][k]) / (2 * eps)
        assert np.isclose(G[k, j], num, rtol=1e-7, atol=1e-10)


def test_tiny_and_huge_losses_keep_relative_precision():
    mpmath.mp.dps = 50
    for gap in [30.0, 200.0, 600.0, -600.0]:
        Z = np.array([[gap, 0.0, -1.0], [0.5, gap + 1, 0.0], [0.0, 0.0, gap]])
        loss, _, _ = ce.rows(*_full(Z))
        for k in range(3):
            ref = mpmath.log1p(sum(mpmath.exp(mpmath.mpf(z) - mpmath.mpf(Z[k, k])) for j, z in enumerate(Z[k]) if j != k))
            assert abs(loss[k] - float(ref)) <= 1e-14 * float(ref), (gap, k)


def test_multiplicities_equal_repeated_entries(rng):
    t = rng.normal(size=3)
    vals = rng.normal(size=(3, 2))
    mult = np.array([[2.0, 3.0], [1.0, 0.0], [4.0, 1.0]])
    loss, d_t, d_o = ce.rows(t, vals, mult)
    for r in range(3):
        row = np.concatenate([[t[r]], np.repeat(vals[r], mult[r].astype(int))])
        assert np.isclose(loss[r], np.log(np.exp(row).sum()) - t[r], rtol=1e-13)
    assert np.allclose(d_t + d_o.sum(1), 0.0)  # shift invariance of cross-entropy


def test_torch_and_numpy_agree(rng):
    Z = rng.normal(size=(5, 5))
    a = ce.rows(*_full(Z))
    b = ce.rows(*(torch.as_tensor(x) for x in _full(Z)))
    for x, y in zip(a, b):
        assert np.allclose(x, y.numpy(), rtol=1e-14)


# ---- the other losses of SPEC §1 -------------------------------------------------------------

from layerpeeled.losses import LOSSES, parse_loss  # noqa: E402
from layerpeeled.problem import LPMProblem, PenalizedLPM  # noqa: E402
from layerpeeled.solvers import solve  # noqa: E402

SPECS = ["la:tau=1", "vs:gamma=0.2,tau=1", "cdt:gamma=0.3", "ldam:C=0.5", "ls:eps=0.1"]


def _spec_loss(spec, Z, counts):
    """SPEC §1's formula for each loss, written out per row (independent of the package's code)."""
    name, params = parse_loss(spec).name, parse_loss(spec).values
    K = len(counts)
    n = np.asarray(counts, float)
    logpi = np.log(n / n.sum())
    out = []
    for k in range(K):
        z = Z[k].copy()
        if name == "la":
            u = z + params["tau"] * logpi
        elif name in ("vs", "cdt"):
            u = (n / n.max()) ** params["gamma"] * z + params.get("tau", 0.0) * logpi
        elif name == "ldam":
            u = z - params["C"] / n[k] ** 0.25 * np.eye(K)[k]
        else:
            u = z
        ce = lambda j: np.log(np.exp(u - u.max()).sum()) + u.max() - u[j]
        out.append((1 - params["eps"]) * ce(k) + params["eps"] / K * sum(ce(j) for j in range(K)) if name == "ls" else ce(k))
    return np.array(out)


@pytest.mark.parametrize("spec", SPECS)
def test_rows_match_the_spec_formulas_with_gradients_and_hessians(spec, rng):
    loss, counts = parse_loss(spec), np.array([400.0, 400.0, 30.0, 7.0])
    Z = rng.normal(size=(4, 4)) * 2
    coef = loss.row_coefficients(counts)
    val, d_t, d_o = loss.rows(*_full(Z), coef)
    assert np.allclose(val, _spec_loss(spec, Z, counts), rtol=1e-12)
    G, eps = d_o + np.diag(d_t), 1e-6
    for k, j in [(0, 0), (1, 3), (3, 2), (2, 2)]:
        E = np.zeros_like(Z)
        E[k, j] = eps
        num = (_spec_loss(spec, Z + E, counts)[k] - _spec_loss(spec, Z - E, counts)[k]) / (2 * eps)
        assert G[k, j] == pytest.approx(num, rel=1e-6, abs=1e-9)
    # Hessians of the distinct-value rows (reduced form) against differences of their gradients
    t, v, mult = rng.normal(size=2), rng.normal(size=(2, 3)), np.array([[1.0, 3.0, 2.0], [2.0, 0.0, 5.0]])
    rc = (np.array([1.3, 0.7]), np.array([0.2, -0.1]), np.array([[1.3, 0.7, 0.9]]), np.array([[0.2, 0.4, -0.3]]))
    H = loss.row_hessians(t, v, mult, rc)

    def grad(u):
        _, gt, go = loss.rows(u[:, 0], u[:, 1:], mult, rc)
        return np.concatenate([gt[:, None], go], axis=1)

    u = np.concatenate([t[:, None], v], axis=1)
    for j in range(4):
        E = np.zeros_like(u)
        E[:, j] = eps
        assert np.allclose(H[:, :, j], (grad(u + E) - grad(u - E)) / (2 * eps), atol=1e-7), (spec, j)


@pytest.mark.parametrize("spec, base", [("la:tau=0", "cross-entropy"), ("vs:gamma=0,tau=0", "cross-entropy"),
                                        ("cdt:gamma=0", "cross-entropy"), ("ldam:C=0", "cross-entropy"),
                                        ("ls:eps=0", "cross-entropy"), ("vs:gamma=0,tau=1", "la:tau=1"),
                                        ("cdt:gamma=0.3", "vs:gamma=0.3,tau=0")])
def test_limits_reduce_to_the_simpler_loss(spec, base):
    for P in (LPMProblem([600, 600, 60, 6], 4.0, 1.0, spec), PenalizedLPM([600, 600, 60, 6], 1e-3, 1e-3, None, spec)):
        a, b = solve(P, tol=1e-11), solve(dataclasses.replace(P, loss=base), tol=1e-11)
        assert a.value == pytest.approx(b.value, rel=1e-9)


@pytest.mark.parametrize("spec", SPECS)
def test_balanced_counts_give_a_simplex_etf(spec):
    r = solve(LPMProblem([100.0] * 6, 3.0, 1.0, spec), tol=1e-11)
    assert r.geometry.groups[0].w_cos == pytest.approx(-1 / 5, abs=1e-7)


def _cvxpy_nuclear(spec, counts, radius):
    """The nuclear-norm form (SPEC §2.3) with SPEC §1's loss written directly in cvxpy."""
    import cvxpy as cp

    loss, n = parse_loss(spec), np.asarray(counts, float)
    K, w = n.size, n / n.sum()
    logpi, p = np.log(w), loss.values
    Z = cp.Variable((K, K))
    rows = []
    for k in range(K):
        if loss.name == "la":
            u = Z[k, :] + p["tau"] * logpi
        elif loss.name in ("vs", "cdt"):
            u = cp.multiply((n / n.max()) ** p["gamma"], Z[k, :]) + p.get("tau", 0.0) * logpi
        elif loss.name == "ldam":
            u = Z[k, :] - p["C"] / n[k] ** 0.25 * np.eye(K)[k]
        else:
            u = Z[k, :]
        ce = cp.log_sum_exp(u) - u[k]
        rows.append(ce + p["eps"] * (u[k] - cp.sum(u) / K) if loss.name == "ls" else ce)
    prob = cp.Problem(cp.Minimize(sum(w[k] * rows[k] for k in range(K))), [cp.normNuc(Z) <= radius])
    prob.solve(solver="CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
    return prob.value, np.array(Z.value)


@pytest.mark.parametrize("spec", SPECS)
def test_each_loss_matches_an_independent_cvxpy_formulation(spec):
    counts = [800.0, 800.0, 800.0, 40.0, 40.0, 3.0]
    P = LPMProblem(counts, 2.0, 1.0, spec)
    value, Z = _cvxpy_nuclear(spec, counts, P.radius)
    for method in ("reduced", "first-order"):
        r = solve(P, method, tol=1e-10)
        assert r.value == pytest.approx(value, rel=1e-6) and r.value - value <= r.gap + 1e-8 * value
        ref = solve(P, "sdp").geometry  # the SDP (cvxpy rows) for the minority geometry too
        top = max(g.w_norm2 for g in ref.groups)
        for a, b in zip(r.geometry.groups, ref.groups):
            assert a.w_norm2 == pytest.approx(b.w_norm2, abs=1e-5 * top)
            if a.w_cos is not None and b.w_cos is not None:
                assert a.w_cos == pytest.approx(b.w_cos, abs=1e-4)
    # the logits of the independent solve give the same minority cosine as ours
    U, s, Vt = np.linalg.svd(Z)
    W = Vt.T * np.sqrt(s)
    minority = W[3:5] / np.linalg.norm(W[3:5], axis=1, keepdims=True)
    ours = solve(P, tol=1e-10).geometry.groups[1]
    if ours.w_cos is not None and np.linalg.norm(W[3:5]) > 1e-3:
        assert float(minority[0] @ minority[1]) == pytest.approx(ours.w_cos, abs=1e-3)


def test_loss_specs_and_their_errors():
    assert parse_loss("la").spec == "la:tau=1" and parse_loss("vs:tau=0.5").values == {"gamma": 0.2, "tau": 0.5}
    assert parse_loss("cross-entropy") == parse_loss("cross-entropy") and set(LOSSES) == {
        "cross-entropy", "la", "vs", "cdt", "ldam", "ls"}
    for bad, needle in [("focal", "choose one of"), ("la:tau=-1", "tau must be"), ("ls:eps=1", "eps must be in"),
                        ("ldam:m=1", "no parameter 'm'"), ("vs:gamma", "write name=value"), ("la:tau=nan", "tau must be")]:
        with pytest.raises(ValueError, match=needle):
            parse_loss(bad)
    assert not parse_loss("vs:gamma=0.2").shift_invariant and parse_loss("vs:gamma=0").shift_invariant
    with pytest.raises(ValueError, match="a bias needs a loss unchanged"):
        solve(PenalizedLPM([10, 10, 1], 1e-3, 1e-3, 0.0, "cdt:gamma=0.3"))


@pytest.mark.parametrize("spec", ["la:tau=1", "vs:gamma=0.2,tau=1", "ldam:C=0.5"])
def test_onset_per_loss_inside_a_bisection_of_full_solves(spec):
    from conftest import log_bisect

    from layerpeeled.collapse.onset import find_onset

    on = find_onset(5, 5, 5.0, 1.0, rel=1e-8, loss=spec)
    assert on.loss == spec and on.onset is not None and on.onset_margins[0] > 0 > on.onset_margins[1]

    def collapsed(R):
        # n_A = 1 as the constrained onsets take it (ldam's margins C / n^(1/4) see absolute counts)
        g = solve(LPMProblem([1.0] * 5 + [1.0 / R] * 5, 5.0, 1.0, spec), "first-order", tol=1e-12).geometry
        return g.groups[1].vanished or g.groups[1].w_spread < 1e-5

    lo, hi = log_bisect(collapsed, on.onset / 3, on.onset * 3, steps=10)
    assert lo <= on.onset <= hi


def test_constrained_onsets_see_the_count_scale_only_through_count_based_losses(tmp_path, capsys):
    """n_A scales the constrained model's counts: cross-entropy sees ratios only, ldam's margins see n_A
    (the onset at n_A = 1000 lies inside a bisection of full solves at that scale)."""
    from conftest import log_bisect

    from layerpeeled.cli import main
    from layerpeeled.collapse.onset import find_onset
    from layerpeeled.collapse.sweep import model_configs, sweep_in_memory

    ce = [find_onset(5, 5, 5.0, 1.0, rel=1e-9, nA=n).onset for n in (1.0, 1000.0)]
    assert ce[0] == pytest.approx(ce[1], rel=1e-8)
    on = find_onset(5, 5, 5.0, 1.0, rel=1e-8, loss="ldam:C=0.5", nA=1000.0)
    assert on.onset != pytest.approx(find_onset(5, 5, 5.0, 1.0, rel=1e-8, loss="ldam:C=0.5").onset, rel=1e-2)

    def collapsed(R):
        g = solve(LPMProblem([1000.0] * 5 + [1000.0 / R] * 5, 5.0, 1.0, "ldam:C=0.5"), "first-order", tol=1e-12).geometry
        return g.groups[1].vanished or g.groups[1].w_spread < 1e-5

    lo, hi = log_bisect(collapsed, on.onset / 3, on.onset * 3, steps=10)
    assert lo <= on.onset <= hi
    assert main(["onset", "--loss", "ldam:C=0.5", "--nA", "1000", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["nA"] == 1000.0 and out["onset"] == pytest.approx(on.onset, rel=1e-7)
    rec = sweep_in_memory(model_configs([20.0], loss="ldam:C=0.5", scale=[1000.0]))[0]
    assert rec["config"]["nA"] == 1000.0 and "nA" not in model_configs([20.0])[0]  # older sweeps keep their keys
    direct = solve(LPMProblem([1000.0] * 5 + [50.0] * 5, 5.0, 1.0, "ldam:C=0.5"))
    assert abs(rec["value"] - direct.value) <= rec["gap"] + direct.gap
    assert main(["sweep", "--R", "20", "--nA", "1000", "--loss", "ldam:C=0.5", "--out", str(tmp_path / "s")]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["onset", "--nA", "1000", "--lambda-W", "1e-3"])
    assert "the penalized form needs --lambda-H" in capsys.readouterr().err


def test_label_smoothing_keeps_the_minority_apart():
    """ls:eps=0.1 at E_H E_W = 5: no collapse and no vanishing (full solves agree up to R = 1e6)."""
    from layerpeeled.collapse.onset import find_onset

    on = find_onset(5, 5, 5.0, 1.0, rel=1e-6, loss="ls:eps=0.1")
    assert on.onset is None and on.vanish is None
    g = solve(LPMProblem([1000.0] * 5 + [1e-3] * 5, 5.0, 1.0, "ls:eps=0.1"), tol=1e-10).geometry.groups[1]
    assert not g.vanished and g.w_spread > 0.1


def test_cli_loss_option(tmp_path, capsys):
    import csv

    from layerpeeled.cli import main
    from layerpeeled.jsonio import loads

    assert main(["solve", "--counts", "500x3,5x3", "--loss", "ldam", "--json"]) == 0
    out = loads(capsys.readouterr().out.strip().splitlines()[-1])
    direct = solve(LPMProblem([500] * 3 + [5] * 3, 5.0, 1.0, "ldam:C=0.5"))
    assert out["loss"] == "ldam:C=0.5" and out["value"] == pytest.approx(direct.value, rel=1e-9)
    assert main(["sweep", "--R", "1,50", "--KA", "3", "--KB", "3", "--loss", "la:tau=0.5", "--out", str(tmp_path)]) == 0
    assert {row["loss"] for row in csv.DictReader(open(tmp_path / "table.csv"))} == {"la:tau=0.5"}
    assert main(["onset", "--KA", "3", "--KB", "3", "--loss", "vs:gamma=0.3", "--json"]) == 0
    assert loads(capsys.readouterr().out.strip().splitlines()[-1])["loss"] == "vs:gamma=0.3,tau=1"
    for cmd in (["solve", "--loss", "focal"], ["onset", "--loss", "ls:eps=2"], ["sweep", "--loss", "la:t=1", "--out", "x"]):
        with pytest.raises(SystemExit):
            main(cmd)
        assert "loss" in capsys.readouterr().err
