import numpy as np
import pytest

from layerpeeled import LPMProblem, long_tailed_counts, parse_counts, step_counts


def test_counts_syntax(tmp_path):
    assert parse_counts("5000x5,50x5").tolist() == [5000] * 5 + [50] * 5
    assert parse_counts("6000,6000,600").tolist() == [6000, 6000, 600]
    assert parse_counts("2.5x2, 1").tolist() == [2.5, 2.5, 1]
    f = tmp_path / "c.txt"
    f.write_text("# majority\n100x2\n10 10\n")
    assert parse_counts(f"@{f}").tolist() == [100, 100, 10, 10]


@pytest.mark.parametrize("text, needle", [
    ("5000x5,0x5", "'0'"), ("5000x5,-3", "'-3'"), ("5000xq", "5000xq"), ("5000x0", "5000x0"),
    ("abc,1", "'abc'"), ("1,,2", "''"), ("nan,1", "'nan'"), ("inf,1", "'inf'"), ("", "non-empty"),
    ("@/no/such/file", "/no/such/file"),
])
def test_bad_counts_strings_name_the_value(text, needle):
    with pytest.raises(ValueError) as err:
        LPMProblem(text)
    assert needle in str(err.value)


@pytest.mark.parametrize("counts, needle", [
    ([5.0], "K >= 2"), ([], "K >= 2"), ([1.0, 0.0], "class 1 has count 0.0"),
    ([1.0, np.nan], "class 1 has count nan"), ([np.inf, 1.0], "class 0 has count inf"),
    ([1.0, -2.0], "class 1 has count -2.0"), (["a", 1], "list of positive numbers"),
])
def test_bad_counts_arrays(counts, needle):
    with pytest.raises(ValueError, match=needle.replace("(", r"\(")):
        LPMProblem(counts)


@pytest.mark.parametrize("field", ["EH", "EW"])
@pytest.mark.parametrize("value", [0, -1, np.nan, np.inf, "x"])
def test_bad_energies(field, value):
    with pytest.raises(ValueError, match=f"{field} must be a positive finite number, got {value!r}"):
        LPMProblem([1, 2], **{field: value})


def test_empty_counts_file(tmp_path):
    f = tmp_path / "empty"
    f.write_text("# nothing\n")
    with pytest.raises(ValueError, match="holds no counts"):
        parse_counts(f"@{f}")


def test_derived_quantities():
    P = LPMProblem("3x2,1x3", EH=4, EW=1)
    assert P.K == 5 and np.isclose(P.weights.sum(), 1) and np.isclose(P.weights[0], 3 / 9)
    assert np.isclose(P.radius, 5 * 2.0)
    assert [(g.count, g.classes) for g in P.groups] == [(3.0, (0, 1)), (1.0, (2, 3, 4))]
    # groups follow first appearance, not sorted order, and need not be contiguous
    Q = LPMProblem([1, 5, 1, 5])
    assert [(g.count, g.classes) for g in Q.groups] == [(1.0, (0, 2)), (5.0, (1, 3))]


def test_imbalance_builders():
    assert step_counts(2, 3, 10, nA=100).tolist() == [100, 100, 10, 10, 10]
    lt = long_tailed_counts(5, 100, n_max=1000)
    assert np.isclose(lt[0], 1000) and np.isclose(lt[-1], 10) and np.all(np.diff(lt) < 0)
    with pytest.raises(ValueError, match="KA must be an integer >= 1, got 0"):
        step_counts(0, 3, 10)
    with pytest.raises(ValueError, match="R must be a positive finite number, got -1"):
        step_counts(2, 3, -1)
