import json
import re
import subprocess
import sys

import pytest

from layerpeeled import LPMProblem, solve
from layerpeeled.cli import main


def test_json_contract(capsys):
    assert main(["solve", "--counts", "5000x5,50x5", "--EH", "5", "--EW", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ["value", "gap", "method", "seconds", "groups"]:
        assert key in out
    assert [g["count"] for g in out["groups"]] == [5000, 50]
    for g in out["groups"]:
        assert set(g) >= {"count", "classes", "w_norm2", "h_norm2", "w_cos", "vanished"}
    assert out["groups"][1]["w_cos"] == pytest.approx(1.0, abs=1e-6)
    assert out["gap"] <= 1e-9 * out["value"]


def test_counts_order_and_methods(capsys, tmp_path):
    f = tmp_path / "counts"
    f.write_text("50x2 5000x3")
    assert main(["solve", "--counts", f"@{f}", "--method", "first-order", "--tol", "1e-8", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [g["count"] for g in out["groups"]] == [50, 5000] and out["method"] == "nuclear-numpy"


def test_readable_summary_prints_the_solution(capsys):
    assert main(["solve"]) == 0
    text = capsys.readouterr().out
    r = solve(LPMProblem("5000x5,50x5", 5, 1))
    value = float(re.search(r"value (\S+)", text).group(1))
    gap = float(re.search(r"within (\S+) of the optimum", text).group(1))
    assert abs(value - r.value) <= 1e-11 * r.value and gap <= 1e-9 * value
    rows = [line.split() for line in text.splitlines() if line.split()[:2] in (["5000", "5"], ["50", "5"])]
    assert float(rows[1][4]) == pytest.approx(r.geometry.groups[1].w_cos, abs=1e-4)  # minority cosine column


@pytest.mark.parametrize("args, needle", [
    (["--counts", "5000x5,0x5"], "'0'"), (["--EH", "-1"], "EH must be a positive finite number, got -1.0"),
    (["--p", "2"], "p >= 5"), (["--tol", "5"], "tol must be a number in (0, 1), got 5.0"),
])
def test_bad_input_exits_2_with_message(args, needle):
    proc = subprocess.run([sys.executable, "-m", "layerpeeled", "solve", *args], capture_output=True, text=True)
    assert proc.returncode == 2 and needle in proc.stderr


def test_check_every_reaches_the_dense_solver(capsys):
    """--check-every sets the steps between certificate checks: a converged run stops on a check."""
    argv = ["solve", "--counts", "5000x3,500x3,50x3,5x3", "--method", "first-order", "--tol", "1e-8", "--json"]
    assert main(argv + ["--check-every", "7"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["status"] == "optimal" and out["iterations"] % 7 == 0 and out["gap"] <= 1e-8 * out["value"]


@pytest.mark.parametrize("argv, needle", [
    (["--check-every", "0", "--method", "first-order"], "check_every must be a positive integer (steps between gap checks), got 0"),
    (["--check-every", "5"], "--check-every applies to the dense first-order solvers"),  # auto picks reduced here
    (["--check-every", "5", "--method", "sdp"], "not to sdp"),
])
def test_check_every_outside_the_dense_solvers_is_refused(argv, needle, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["solve"] + argv)
    assert exit_.value.code == 2 and needle in capsys.readouterr().err


def test_long_dense_solves_report_their_gap(monkeypatch, capsys):
    """From LONG_DENSE_K classes a dense solve gets a progress callback (shown on a terminal);
    smaller ones and other methods run without."""
    import layerpeeled.solvers as solvers
    from layerpeeled.cli import solve_cmd

    seen, real = [], solvers.solve

    def spy(problem, method, **options):
        seen.append(options.get("callback"))
        return real(problem, method, **options)

    monkeypatch.setattr(solvers, "solve", spy)
    monkeypatch.setattr(solve_cmd, "LONG_DENSE_K", 6)
    assert main(["solve", "--counts", "5000x3,50x3", "--method", "first-order", "--json"]) == 0
    assert main(["solve", "--counts", "5000x2,50x2", "--method", "first-order", "--json"]) == 0
    assert main(["solve", "--counts", "5000x3,50x3", "--json"]) == 0
    assert callable(seen[0]) and seen[1] is None and seen[2] is None
    seen[0](10, 2.0, 1e-3)  # what the solver calls it with: step, value, gap
