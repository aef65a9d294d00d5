"""Every solver against closed forms, against each other, and against its own certificate."""
import numpy as np
import pytest
from conftest import balanced_value

from layerpeeled import LPMProblem, solve, step_counts
from layerpeeled.problem import PenalizedLPM
from layerpeeled.solvers import nuclear, solve_nuclear
from layerpeeled.solvers.nuclear import logit_objective
from layerpeeled.losses import CrossEntropy

ENERGIES = [(5.0, 1.0), (1.0, 1.0), (0.3, 2.0), (30.0, 30.0)]  # the last: losses ~1e-14


def _random_start(K, tau, rng):
    Z = rng.normal(size=(K, K))
    return Z * (0.7 * tau / np.linalg.svd(Z, compute_uv=False).sum())


def _lpm_objective(W, H, counts):
    """The LPM objective straight from W and the class means H: mean cross-entropy per example."""
    Z = H @ W.T
    return float(counts @ (np.log(np.exp(Z - Z.max(1, keepdims=True)).sum(1)) + Z.max(1) - np.diag(Z)) / counts.sum())


@pytest.mark.parametrize("K", [2, 3, 10, 50, 200])
@pytest.mark.parametrize("EH, EW", ENERGIES)
def test_balanced_closed_form_reduced(K, EH, EW):
    r = solve(LPMProblem([7.0] * K, EH, EW), "reduced", tol=1e-12)
    exact = balanced_value(K, EH, EW)
    assert r.method == "reduced" and r.status == "optimal"
    assert abs(r.value - exact) <= 1e-9 * exact
    assert r.value - exact <= r.gap * (1 + 1e-9) + 1e-15 * exact


@pytest.mark.parametrize("K", [2, 3, 10, 50, 200])
@pytest.mark.parametrize("EH, EW", ENERGIES)
def test_balanced_closed_form_first_order_from_random_start(K, EH, EW, rng):
    P = LPMProblem([3.0] * K, EH, EW)
    # the certificate bounds the value, whose error is second order in the distance to the optimum:
    # geometry to 1e-5 needs the value to ~1e-13 (at E_H E_W = 900, losses ~1e-14, rounding allows 1e-11)
    r = solve_nuclear(P, tol=1e-11 if EH * EW > 100 else 1e-13, x0=_random_start(K, P.radius, rng))
    exact = balanced_value(K, EH, EW)
    assert r.status == "optimal"
    assert abs(r.value - exact) <= 1e-9 * exact
    assert r.value - exact <= r.gap * (1 + 1e-9) + 1e-15 * exact
    # the optimum is a simplex ETF with h_k = sqrt(E_H/E_W) w_k (SPEC §2.4)
    W, H = r.factors()
    assert np.allclose((W**2).sum(1), EW, rtol=1e-5)
    cos = (W @ W.T) / EW
    assert np.allclose(cos[~np.eye(K, dtype=bool)], -1 / (K - 1), atol=1e-5)
    assert np.allclose(H, np.sqrt(EH / EW) * W, atol=1e-4 * np.sqrt(EH))
    assert r.geometry.w_etf_distance < 1e-5


@pytest.mark.parametrize("K", [2, 3, 10])
@pytest.mark.parametrize("EH, EW", ENERGIES[:3])
def test_balanced_closed_form_sdp(K, EH, EW):
    r = solve(LPMProblem([1.0] * K, EH, EW), "sdp")
    exact = balanced_value(K, EH, EW)
    assert abs(r.value - exact) <= 1e-6 * exact
    assert r.value - exact <= r.gap * (1 + 1e-9) + 1e-15


def _random_counts(rng):
    """3..6 classes in 1..3 groups of equal counts, counts spread over three decades."""
    K = int(rng.integers(3, 7))
    levels = np.round(10 ** rng.uniform(0, 3, size=int(rng.integers(1, 4))), 2)
    return levels[rng.integers(0, levels.size, size=K)]


@pytest.mark.parametrize("seed", range(22))
def test_three_solvers_agree_and_certificates_hold(seed):
    rng = np.random.default_rng(seed)
    counts = _random_counts(rng)
    EH, EW = float(rng.uniform(0.2, 8)), float(rng.uniform(0.2, 3))
    P = LPMProblem(counts, EH, EW)
    results = {m: solve(P, m, tol=1e-11) for m in ["reduced", "first-order", "sdp"]}
    best = min(r.value for r in results.values())
    for m, r in results.items():
        assert r.value - best <= r.gap * (1 + 1e-9) + 1e-13 * best, m  # gap bounds the error
        # W, H reproduce the value and respect the budgets
        W, H = r.factors()
        assert abs(_lpm_objective(W, H, P.counts) - r.value) <= 1e-9 * r.value, m
        assert (W**2).sum() / P.K <= EW * (1 + 1e-9) and (H**2).sum() / P.K <= EH * (1 + 1e-9), m
    red, fo, sdp = results["reduced"], results["first-order"], results["sdp"]
    assert abs(red.value - fo.value) <= 1e-9 * best
    assert abs(sdp.value - best) <= 1e-6 * best
    assert red.rank == fo.rank
    gr, gf = red.geometry.groups, fo.geometry.groups
    for a, b in zip(gr, gf):
        assert a.vanished == b.vanished and np.isclose(a.w_norm2, b.w_norm2, rtol=1e-4, atol=1e-7)
        if a.w_cos is not None and b.w_cos is not None:
            assert abs(a.w_cos - b.w_cos) < 1e-3


@pytest.mark.parametrize("seed", range(8))
def test_reduced_and_dense_agree_on_wide_random_problems(seed, monkeypatch):
    """K from 3 to 200, counts over four decades in up to 12 groups, E_H E_W from 0.1 to 1000: the
    reduced and the dense first-order solver (with proximal steps on full and on tracked partial
    spectra) land within their certified gaps of each other, with the same rank, the SDP agrees
    where it is small, and the balanced factorisation reproduces the value."""
    rng = np.random.default_rng(100 + seed)
    K = int(np.round(np.exp(rng.uniform(np.log(3), np.log(200)))))
    G = int(rng.integers(1, min(K, 12) + 1))
    levels = np.round(10 ** rng.uniform(0, 4, size=G), 2)
    product = float(10 ** rng.uniform(-1, 3))
    EH = float(10 ** rng.uniform(-0.5, 0.5)) * np.sqrt(product)
    P = LPMProblem(levels[rng.integers(0, G, size=K)], EH, product / EH)
    red, fo = solve(P, "reduced", tol=1e-9), solve(P, "first-order", tol=1e-9)
    monkeypatch.setattr(nuclear, "TRACK_FROM", 0)  # tracked wherever the subspace stays within K / 2
    tracked = solve(P, "first-order", tol=1e-9)
    assert red.status == fo.status == tracked.status == "optimal"
    for dense in (fo, tracked):
        assert abs(red.value - dense.value) <= red.gap + dense.gap
        assert red.rank == dense.rank
    if K <= 12:  # the SDP (Clarabel) where it takes seconds: losses here reach 1e-10, below its
        sdp = solve(P, "sdp")  # absolute accuracy, so it is held to its own certificate, not to 1e-6
        assert red.value - red.gap <= sdp.value <= red.value + sdp.gap
        assert sdp.gap <= 1e-6 * sdp.value + 1e-7  # Clarabel: about 1e-8 absolute on these losses
    W, H = red.factors()
    Z = H @ W.T  # losses down to 1e-11 here: log1p of the off-target exponentials keeps their digits
    losses = np.log1p((np.exp(Z - np.diag(Z)[:, None]) * (1 - np.eye(K))).sum(1))
    assert abs(P.counts @ losses / P.counts.sum() - red.value) <= 1e-9 * red.value


@pytest.mark.parametrize("product", [0.5, 5.0, 40.0])
def test_value_depends_on_product_of_energies_only(product):
    counts = step_counts(3, 2, 20.0)
    values = [solve(LPMProblem(counts, EH, product / EH), tol=1e-12).value for EH in (0.5, 1.0, 7.0)]
    assert np.ptp(values) <= 1e-10 * values[0]


def test_precision_when_losses_are_tiny():
    P = LPMProblem(step_counts(3, 3, 10.0), EH=400.0, EW=100.0)
    red = solve(P, "reduced", tol=1e-10)
    fo = solve(P, "first-order", tol=1e-10)
    assert 0 < red.value < 1e-20
    assert abs(red.value - fo.value) <= 1e-8 * red.value
    assert red.gap <= 1e-10 * red.value


def test_reduced_cost_does_not_grow_with_K():
    small = solve(LPMProblem("5000x5,50x5"), "reduced", tol=1e-10)
    huge = solve(LPMProblem("5000x50000,50x50000"), "reduced", tol=1e-10)  # K = 100000: never a K x K array
    assert huge.status == "optimal" and huge.iterations < 20 * small.iterations
    major, minor = huge.geometry.groups
    assert major.classes == 50000 and huge.gap <= 1e-10 * huge.value
    # here the minority vanishes and the majority alone is a simplex holding the whole budget
    assert minor.vanished and major.w_norm2 == pytest.approx(2.0, rel=1e-9)
    assert major.w_cos == pytest.approx(-1 / 49999, rel=1e-9)


def test_reduced_blocks_expand_to_the_full_optimum():
    P = LPMProblem([10.0, 1.0, 10.0, 1.0, 1.0], 5, 1)
    r = solve(P, "reduced", tol=1e-12)
    Z = r.logits
    assert np.isclose(logit_objective(P, Z)[0], r.value, rtol=1e-12)
    assert np.isclose(np.linalg.svd(Z, compute_uv=False).sum(), P.radius, rtol=1e-12)
    b = r.info["blocks"]
    assert np.isclose(Z[0, 0], b["d"][0]) and np.isclose(Z[0, 2], b["e"][0]) and np.isclose(Z[0, 1], b["c"][0][1])


def test_p_too_small_names_the_smallest(rng):
    P = LPMProblem("100x3,1x3")
    r = solve(P)
    with pytest.raises(ValueError, match=f"p >= {r.rank}"):
        solve(P, p=r.rank - 1)
    W, H = solve(P, p=r.rank + 4).factors()
    assert W.shape == (6, r.rank + 4)


def test_torch_backend_matches_numpy():
    P = LPMProblem("20x2,5x2,1x2", 5, 1)
    a, b = solve(P, "first-order", tol=1e-11), solve(P, "first-order-torch", tol=1e-11)
    assert abs(a.value - b.value) <= 1e-9 * a.value and "torch" in b.method


@pytest.mark.parametrize("loss", ["cross-entropy", "la:tau=1"])
def test_torch_backend_at_large_K_matches_numpy(loss, monkeypatch):
    """The torch solver on numpy's large-K path (TRACK_FROM lowered: long-tailed K = 150 has rank
    57 with cross-entropy, so most steps take tracked partial spectra; 62 with logit adjustment,
    whose per-class constants the objective slices by rows, too many to track): values within the
    gaps."""
    from layerpeeled import long_tailed_counts
    from layerpeeled.solvers import nuclear

    monkeypatch.setattr(nuclear, "TRACK_FROM", 0)
    P = LPMProblem(long_tailed_counts(150, 1000.0, n_max=5000), 5.0, 1.0, loss)
    a, b = solve(P, "first-order", tol=1e-9), solve(P, "first-order-torch", tol=1e-9, device="cpu")
    assert a.status == b.status == "optimal" and abs(a.value - b.value) <= a.gap + b.gap


def test_scs_runs_and_agrees():
    P = LPMProblem("10x2,1x2", 5, 1)
    r = solve(P, "sdp-scs")
    assert r.method == "sdp-scs" and abs(r.value - solve(P, tol=1e-12).value) <= 1e-5 * r.value


def test_auto_records_its_choice():
    assert solve(LPMProblem("5x3,1x3")).method == "reduced"
    rng = np.random.default_rng(0)
    r = solve(LPMProblem(rng.uniform(1, 2, size=15)))
    assert r.method.startswith("nuclear") and r.info["requested_method"] == "auto"


def _grouped(K, G):
    return np.repeat(np.round(5000 * 0.01 ** (np.arange(G) / (G - 1))), K // G)


def test_auto_gives_the_reduced_solver_more_groups_at_large_k(monkeypatch):
    from layerpeeled import solvers

    monkeypatch.setattr(solvers, "_torch_cuda", lambda: False)
    assert [solvers.reduced_max_groups(K) for K in (10, 60, 200, 1000, 10**5)] == [12, 12, 21, 40, 40]
    assert solvers.choose_method(LPMProblem(_grouped(200, 20))) == "reduced"
    assert solvers.choose_method(LPMProblem(_grouped(40, 20))) == "first-order"
    assert solvers.choose_method(PenalizedLPM(_grouped(200, 20))) == "reduced"
    monkeypatch.setattr(solvers, "_torch_cuda", lambda: True)  # a GPU: dense solves past 12 groups
    assert solvers.choose_method(LPMProblem(_grouped(200, 20))) == "first-order-torch"
    assert solvers.choose_method(PenalizedLPM(_grouped(200, 20))) == "reduced"  # no torch path there


def test_reduced_and_dense_agree_past_twelve_groups():
    P = LPMProblem(_grouped(64, 16), 5.0, 1.0)
    red, dense = solve(P, "reduced"), solve(P, "first-order")
    assert red.status == dense.status == "optimal"
    assert abs(red.value - dense.value) <= red.gap + dense.gap


@pytest.mark.parametrize("bad", [dict(method="newton"), dict(tol=0), dict(tol=2), dict(tol=float("nan"))])
def test_bad_solver_options(bad):
    with pytest.raises(ValueError, match=repr(list(bad.values())[0]).replace("(", r"\(")):
        solve(LPMProblem("1x2"), **bad)


@pytest.mark.parametrize("bad", [0, -5, 2.5, True])
@pytest.mark.parametrize("problem", [LPMProblem("10x3,1x2"), PenalizedLPM("10x3,1x2", 1e-3, 1e-3)])
def test_dense_solvers_name_a_bad_gap_interval(problem, bad):
    with pytest.raises(ValueError, match=f"check_every must be a positive integer.*got {bad!r}"):
        solve(problem, "first-order", check_every=bad)


def test_loss_must_be_a_loss():
    with pytest.raises(ValueError, match="unknown loss 'mse'; choose one of"):
        LPMProblem("1x2", loss="mse")
    with pytest.raises(TypeError, match="loss must be a layerpeeled.losses.Loss or a loss spec string"):
        LPMProblem("1x2", loss=3)
    assert isinstance(LPMProblem("1x2").loss, CrossEntropy) and LPMProblem("1x2", loss="la").loss.spec == "la:tau=1"


@pytest.mark.parametrize("method", ["first-order", "first-order-torch"])
def test_dense_cpu_solves_run_on_one_thread(method, monkeypatch):
    """Unless the user exported a thread count, a dense solve on the CPU holds BLAS (and torch's
    pool, for the torch solver) to one thread (a busy second core makes two threads slower than
    one), splits its large numpy work over LPM_THREADS row blocks (default: the cores) and gives
    the pools back afterwards."""
    import torch
    from threadpoolctl import threadpool_info

    import layerpeeled.solvers as solvers
    from layerpeeled.solvers import products
    from layerpeeled.threads import THREAD_VARIABLES, available_cores

    for name in THREAD_VARIABLES + ("LPM_THREADS",):
        monkeypatch.delenv(name, raising=False)
    pools = lambda: [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
    seen, real = [], solvers.solve_nuclear

    def spy(*args, **kw):
        seen.append((pools(), torch.get_num_threads(), products._blocks.get()))
        return real(*args, **kw)

    before = (pools(), torch.get_num_threads())
    monkeypatch.setattr(solvers, "solve_nuclear", spy)
    problem = LPMProblem(step_counts(3, 2, 10.0), 5.0, 1.0)
    solve(problem, method, device="cpu")
    blas, torch_threads, blocks = seen[0]
    assert all(n == 1 for n in blas) and blocks == min(available_cores(), 8)
    if method.endswith("torch"):
        assert torch_threads == 1
    assert (pools(), torch.get_num_threads()) == before and products._blocks.get() == 1
    monkeypatch.setenv("LPM_THREADS", "3")
    solve(problem, method, device="cpu")
    assert seen[1][2] == 3
    monkeypatch.delenv("LPM_THREADS")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the user's choice: their threads, no blocks of ours
    solve(problem, method, device="cpu")
    assert seen[2][2] == 1


@pytest.mark.parametrize("value", ["0", "-2", "two", ""])
def test_bad_solver_thread_count_is_named(value, monkeypatch):
    monkeypatch.setenv("LPM_THREADS", value)
    with pytest.raises(ValueError, match=f"LPM_THREADS must be a positive integer or 'auto', got {value!r}"):
        solve(LPMProblem(step_counts(3, 2, 10.0), 5.0, 1.0), "first-order")


def test_shrinking_singular_values_matches_the_svd(rng):
    """The eigh-based proximal steps (only the surviving pairs multiplied back) against an SVD, on a
    full-rank matrix, a rank-deficient one (zero singular values, ties) and one already inside the ball."""
    from layerpeeled.solvers.proxgrad import project_l1_nonneg
    from layerpeeled.solvers.nuclear import project_nuclear, shrink_singular_values

    low = rng.normal(size=(30, 4)) @ rng.normal(size=(4, 30))
    for Z in (rng.normal(size=(30, 30)), low, np.kron(np.eye(5), np.ones((2, 2)))):
        U, s, Vh = np.linalg.svd(Z)
        for radius in (0.3 * s.sum(), 0.9 * s.sum(), s.sum(), 2 * s.sum()):
            expected = (U * project_l1_nonneg(s, radius)) @ Vh
            assert np.allclose(project_nuclear(Z, radius), expected, atol=1e-9 * s[0])
        threshold = 0.5 * s[0]
        soft = shrink_singular_values(Z, lambda v: np.maximum(v - threshold, 0.0))
        assert np.allclose(soft, (U * np.maximum(s - threshold, 0.0)) @ Vh, atol=1e-9 * s[0])


def _nuclear_norm(Z):
    return float(np.linalg.svd(Z, compute_uv=False).sum())


def test_tracked_shrink_follows_a_solve_and_stays_feasible():
    """Along a projected-gradient path of a long-tailed K = 150 problem the tracked proximal step
    (partial spectrum) returns a feasible point with an orthonormal thin SVD at every step, keeps
    tracking once it has started, and its points converge onto the full eigendecomposition's."""
    from layerpeeled import long_tailed_counts
    from layerpeeled.solvers.nuclear import TrackedShrink, etf_logits, objective_for, shrink_factored
    from layerpeeled.solvers.proxgrad import project_l1_nonneg, proximal_gradient

    P = LPMProblem(long_tailed_counts(150, 1000.0, n_max=5000), 5.0, 1.0)  # rank 57: tracked below K / 2
    tau, tracked = P.radius, TrackedShrink(P.K, track=True)
    ball = lambda s: project_l1_nonneg(s, tau)  # noqa: E731
    errors, fallbacks = [], []

    def project(Y, step):
        fallbacks.append(tracked.basis is None)
        Z, U, kept, V = tracked(Y, ball)
        assert _nuclear_norm(Z) <= tau * (1 + 1e-12)
        assert np.allclose(U.T @ U, np.eye(kept.size), atol=1e-9) and np.allclose(V.T @ V, np.eye(kept.size), atol=1e-9)
        assert np.allclose((U * kept) @ V.T, Z, atol=1e-12 * tau)
        exact = shrink_factored(Y, ball)[0]
        errors.append(np.linalg.norm(Z - exact) / np.linalg.norm(exact))
        return Z

    proximal_gradient(etf_logits(P.K, tau), objective_for(P), project, lambda Z, f, g: np.inf,
                      lipschitz=0.5 * float(P.weights.max()), tol=0.0, max_iter=80)
    first = fallbacks.index(False)  # once the rank is below K / 2 (~10 steps), tracked for good
    assert not any(fallbacks[first:]) and first <= 20
    assert max(errors[-10:]) < 1e-7 and max(errors[-10:]) < 1e-2 * max(errors[first:first + 10])


def test_tracked_shrink_on_a_poor_subspace_is_feasible_and_falls_back(rng):
    """A subspace that misses Y's top pairs still gives a feasible point; one the kept pairs fill
    hands over to the full eigendecomposition, whose answer is exact."""
    from layerpeeled.solvers.nuclear import TrackedShrink, shrink_factored
    from layerpeeled.solvers.proxgrad import project_l1_nonneg

    Y = rng.normal(size=(60, 60)) * np.logspace(0, -2, 60)
    s = np.linalg.svd(Y, compute_uv=False)
    for radius in (0.2 * s.sum(), 0.9 * s.sum()):
        ball = lambda v: project_l1_nonneg(v, radius)  # noqa: E731
        tracked = TrackedShrink(60, track=True)
        tracked.basis = np.linalg.qr(rng.normal(size=(60, 24)))[0]  # random: not Y's subspace
        Z, U, kept, V = tracked(Y, ball)
        assert _nuclear_norm(Z) <= radius * (1 + 1e-12)
        if kept.size > 24 - 8:  # the kept pairs reached the margin: the full answer
            assert np.allclose(Z, shrink_factored(Y, ball)[0], atol=1e-12 * s[0])
