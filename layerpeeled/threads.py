"""How many threads layerpeeled's own numerical work runs on, read from the environment.

Imports nothing heavy: the ``lpm`` command settles its thread environment before numpy loads.
"""
from __future__ import annotations

import os

THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS")
SOLVER_THREADS = "LPM_THREADS"  # cores a dense CPU solve splits its large operations over
MOST_SOLVER_THREADS = 8


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system reports one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def user_set_threads(environ=os.environ) -> bool:
    """Whether a BLAS or OpenMP thread count is exported (the user's choice wins over ours)."""
    return any(name in environ for name in THREAD_VARIABLES)


def solver_threads(environ=os.environ) -> int:
    """The row blocks a dense CPU solve computes concurrently (:mod:`layerpeeled.solvers.products`):
    ``LPM_THREADS`` (a positive integer, or 'auto' for the cores this process may use, at most
    MOST_SOLVER_THREADS); unset, 'auto' unless a BLAS or OpenMP thread count is exported, 1 if one is
    (those threads are then the parallelism asked for)."""
    value = environ.get(SOLVER_THREADS)
    if value is None:
        value = "1" if user_set_threads(environ) else "auto"
    if value.strip().lower() == "auto":
        return min(available_cores(), MOST_SOLVER_THREADS)
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 1:
        raise ValueError(f"{SOLVER_THREADS} must be a positive integer or 'auto', got {value!r}")
    return count
