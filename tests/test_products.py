"""Row-block splitting of dense work (solvers.products): the same numbers as the unsplit work."""
import numpy as np
import pytest

from layerpeeled import LPMProblem, long_tailed_counts, solve
from layerpeeled.solvers import nuclear, products
from layerpeeled.solvers.products import for_row_blocks, gram, matmul, row_blocks


@pytest.mark.parametrize("blocks", [1, 2, 3, 7])
def test_split_products_equal_plain_ones(blocks, rng):
    A, B = rng.normal(size=(450, 300)), rng.normal(size=(300, 41))
    with row_blocks(blocks):
        np.testing.assert_allclose(matmul(A, B), A @ B, rtol=0, atol=1e-12)
        np.testing.assert_allclose(matmul(A.T, A[:, :5]), A.T[:, :] @ A[:, :5], rtol=0, atol=1e-12)
        G = gram(A)
        np.testing.assert_allclose(G, A.T @ A, rtol=0, atol=1e-11)
        assert np.array_equal(G, G.T)
        parts = for_row_blocks(lambda rows: (rows.start, rows.stop), 450)
        assert parts[0][0] == 0 and parts[-1][1] == 450 and len(parts) == blocks
        assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))  # contiguous, in order
        assert len(for_row_blocks(lambda rows: rows, products.SPLIT_FROM - 1)) == 1  # small work stays whole
    np.testing.assert_array_equal(matmul(A, B[:, 0]), A @ B[:, 0])  # a vector is never split


def test_torch_arrays_are_not_split():
    torch = pytest.importorskip("torch")
    A = torch.ones((500, 500), dtype=torch.float64)
    with row_blocks(4):
        assert len(for_row_blocks(lambda rows: rows, 500, A)) == 1
        assert torch.equal(matmul(A, A), A @ A) and torch.equal(gram(A), A.T @ A)


@pytest.mark.parametrize("loss", ["cross-entropy", "la:tau=1", "vs:gamma=0.2,tau=1", "ls:eps=0.1"])
def test_split_objective_equals_the_whole_one(loss, rng, monkeypatch):
    """The dense objective's rows evaluated in blocks (with per-row and per-column loss constants)."""
    problem = LPMProblem(long_tailed_counts(60, 50.0, n_max=500), 5.0, 1.0, loss=loss)
    Z = rng.normal(size=(60, 60))
    f1, g1 = nuclear.objective_for(problem)(Z)
    monkeypatch.setattr(products, "SPLIT_FROM", 0)
    with row_blocks(3):
        f3, g3 = nuclear.objective_for(problem)(Z)
    assert f3 == pytest.approx(f1, rel=1e-14)
    np.testing.assert_allclose(g3, g1, rtol=0, atol=1e-15 * np.abs(g1).max())


def test_split_dense_solve_agrees_with_the_whole_one(monkeypatch):
    """A tracked dense solve with every operation split (SPLIT_FROM = 0) reaches the same certified
    value as the unsplit one."""
    problem = LPMProblem(long_tailed_counts(80, 100.0, n_max=5000), 5.0, 1.0)
    monkeypatch.setattr(nuclear, "TRACK_FROM", 0)
    whole = solve(problem, "first-order", tol=1e-9)
    monkeypatch.setattr(products, "SPLIT_FROM", 0)
    monkeypatch.setenv("LPM_THREADS", "2")
    split = solve(problem, "first-order", tol=1e-9)
    assert whole.status == split.status == "optimal"
    assert abs(whole.value - split.value) <= whole.gap + split.gap


def _split_product_sum(seed):
    rng = np.random.default_rng(seed)
    A, B = rng.normal(size=(500, 50)), rng.normal(size=(50, 3))
    with row_blocks(2):
        return float(np.abs(matmul(A, B) - A @ B).max())


@pytest.mark.timeout(60)
def test_split_work_runs_in_forked_children_and_concurrent_threads():
    """A forked child makes its own pool (the parent's threads do not come along), and solves
    running in several threads at once share one."""
    import multiprocessing
    from concurrent.futures import ThreadPoolExecutor

    assert _split_product_sum(0) < 1e-12  # the parent's pool exists now
    with multiprocessing.get_context("fork").Pool(2) as children:
        assert max(children.map(_split_product_sum, range(4))) < 1e-12
    with ThreadPoolExecutor(4) as threads:
        assert max(threads.map(_split_product_sum, range(8))) < 1e-12
