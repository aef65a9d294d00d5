"""Everyday use on a small shared machine (issue 9): `lpm solve` start-up against the bare import
of numpy and scipy.linalg, and training / solver throughput under each thread setting while a
second process keeps one core busy (BLAS threads; the dense solver's row blocks). Every cell runs in a fresh process (thread settings are read
when a library loads), and ratios compare cells of the same run."""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager

from common import table

TRAIN = """
import json, sys, time, torch, torch.nn.functional as F
from layerpeeled.networks.models import build_model
name, fmt, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
mf = torch.channels_last if fmt == "channels_last" else torch.contiguous_format
torch.manual_seed(0)
x = torch.randn(2048, 1, 32, 32).contiguous(memory_format=mf)
y = torch.randint(0, 10, (2048,))
model = build_model(name, 1, 10).to(memory_format=mf)
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
def rate(step):
    step(); t, n = time.perf_counter(), 0
    while time.perf_counter() - t < seconds:
        n += step()
    return n / (time.perf_counter() - t)
def train_step():
    b = torch.randint(0, 2048, (128,))
    opt.zero_grad(); F.cross_entropy(model(x[b]), y[b]).backward(); opt.step(); return 128
@torch.no_grad()
def eval_step():
    model.eval(); model(x[:1000]); return 1000
print(json.dumps([rate(train_step), rate(eval_step)]))
"""

SOLVE = """
import json, sys, time
from layerpeeled import LPMProblem, long_tailed_counts, solve
K, tol = int(sys.argv[1]), float(sys.argv[2])
P = LPMProblem(long_tailed_counts(K, 100.0, n_max=5000), 5.0, 1.0)
t = time.perf_counter(); r = solve(P, "first-order", tol=tol)
print(json.dumps(time.perf_counter() - t))
"""


@contextmanager
def busy_core(enabled: bool):
    """A second process spinning on one core for the duration (the 'shared machine')."""
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if enabled else None
    try:
        yield
    finally:
        if proc:
            proc.kill()
            proc.wait()


def _run(code: str, env: dict, *argv, environ=os.environ) -> object:
    out = subprocess.run([sys.executable, "-c", code, *argv], env={**environ, **env}, capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _startup(args) -> list:
    lpm = os.path.join(os.path.dirname(sys.executable), "lpm")
    cells = {"python -c 'import numpy, scipy.linalg'": [sys.executable, "-c", "import numpy, scipy.linalg"],
             "lpm solve --json (default problem)": [lpm, "solve", "--json"]}
    rows, base = [], None
    for label, cmd in cells.items():
        times = []
        for _ in range(args.startup_repeats):
            t = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            times.append(time.perf_counter() - t)
        med = statistics.median(times)
        base = base or med
        rows.append([label, med, f"{med / base:.2f}x"])
    return rows


def run(args) -> str:
    out = [f"Start-up (median of {args.startup_repeats} runs, wall seconds of the whole process):\n",
           table(["command", "seconds", "vs import"], _startup(args))]
    settings = [("2 threads, OpenMP active wait", {"OMP_NUM_THREADS": "2", "OMP_WAIT_POLICY": "ACTIVE"}),
                ("2 threads, passive wait (ours)", {"OMP_NUM_THREADS": "2", "OMP_WAIT_POLICY": "PASSIVE"}),
                ("1 thread", {"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"})]
    for busy in (False, True):
        rows = []
        with busy_core(busy):
            for label, env in settings:
                for fmt in ("contiguous", "channels_last"):
                    train, evaluate = _run(TRAIN, env, args.train_model, fmt, str(args.cell_seconds))
                    rows.append([label, fmt, train, evaluate])
                    print(rows[-1], flush=True)
        base_t, base_e = rows[2][2], rows[2][3]  # passive wait, contiguous
        rows = [r + [f"{r[2] / base_t:.2f}x", f"{r[3] / base_e:.2f}x"] for r in rows]
        out.append(f"\n`{args.train_model}` training / measurement throughput (images/s), batch 128 / 1000, "
                   f"{args.cell_seconds:g} s per cell, {'a second process spinning on one core' if busy else 'quiet machine'}:\n")
        out.append(table(["threads", "memory format", "train img/s", "eval img/s", "train vs passive+contiguous", "eval vs passive+contiguous"], rows))
    rows = []
    for busy in (False, True):
        with busy_core(busy):
            for threads in ("1", "2"):
                seconds = _run(SOLVE, {"OPENBLAS_NUM_THREADS": threads, "OMP_NUM_THREADS": threads}, "200", "1e-8")
                rows.append(["busy" if busy else "quiet", threads, seconds])
                print(rows[-1], flush=True)
    out.append("\nFirst-order solve, long-tailed K = 200 to gap 1e-8, by numpy BLAS threads:\n")
    out.append(table(["machine", "BLAS threads", "seconds"], rows))
    rows = []
    for busy in (False, True):
        with busy_core(busy):
            for blocks in ("1", "2"):
                env = {name: value for name, value in os.environ.items() if not name.endswith("NUM_THREADS")}
                seconds = _run(SOLVE, {"LPM_THREADS": blocks}, str(args.split_K), "1e-7", environ=env)
                rows.append(["busy" if busy else "quiet", blocks, seconds])
                print(rows[-1], flush=True)
        rows[-1].append(f"{rows[-1][2] / rows[-2][2]:.2f}x")
        rows[-2].append("1.00x")
    out.append(f"\nFirst-order solve, long-tailed K = {args.split_K} to gap 1e-7, BLAS on one thread, by row "
               "blocks (LPM_THREADS):\n")
    out.append(table(["machine", "row blocks", "seconds", "vs 1 block"], rows))
    return "\n".join(out)


def add_args(p):
    p.add_argument("--startup-repeats", type=int, default=5)
    p.add_argument("--train-model", default="cnn")
    p.add_argument("--cell-seconds", type=float, default=8.0, help="seconds per throughput cell")
    p.add_argument("--split-K", type=int, default=1000, help="classes of the row-block solve")
