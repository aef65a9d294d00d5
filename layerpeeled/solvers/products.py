"""Large dense work split by rows over the cores a dense CPU solve may use (``LPM_THREADS``).

Dense solves hold BLAS to one thread (:func:`layerpeeled.solvers.one_thread`): OpenBLAS's own
threads spin while they wait for each other, and with another process on the second core two of
them made a K = 200 solve 2.9x slower than one. Row blocks of one product, Gram matrix or
elementwise evaluation, each computed by a Python thread in one single-threaded numpy call (numpy
releases the GIL there), wait for each other once per call: a busy core delays only the block on
it (measured at K = 1000: 1.2-1.3x faster on an idle 2-core machine, 1.01-1.08x slower beside a
busy process; benchmarks/README.md). Only numpy arrays are split; torch keeps its own threads.
"""
from __future__ import annotations

import contextlib
import contextvars
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

SPLIT_FROM = 400  # rows from which work is split (measured: 1.05x slower at K = 300, 1.15x faster at 500)
_blocks = contextvars.ContextVar("layerpeeled_row_blocks", default=1)
_pool: tuple[int, ThreadPoolExecutor] | None = None  # (threads, pool)
_pool_lock = threading.Lock()


def _forget_pool() -> None:
    """In a forked child: the parent's threads did not come along (nor may its lock be free)."""
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


@contextlib.contextmanager
def row_blocks(blocks: int):
    """Within the block, :func:`matmul`, :func:`gram` and :func:`for_row_blocks` split large numpy work
    into ``blocks`` row blocks computed concurrently."""
    token = _blocks.set(max(1, int(blocks)))
    try:
        yield
    finally:
        _blocks.reset(token)


def matmul(A, B):
    """A @ B, with A's rows split into the current :func:`row_blocks` for a numpy matrix product of
    at least SPLIT_FROM rows (any other product as it is)."""
    if not isinstance(A, np.ndarray) or A.ndim != 2 or getattr(B, "ndim", 0) != 2:
        return A @ B
    out = np.empty((A.shape[0], B.shape[1]), dtype=np.result_type(A, B))
    for_row_blocks(lambda rows: np.matmul(A[rows], B, out=out[rows]), A.shape[0])
    return out


def gram(A):
    """A^T A, as the sum of the Gram matrices of A's :func:`row_blocks` (each a symmetric BLAS
    product) for a numpy A of at least SPLIT_FROM rows."""
    total, *rest = for_row_blocks(lambda rows: A[rows].T @ A[rows], A.shape[0], A)
    for part in rest:
        total += part  # in place: each part is a fresh product
    return total


def for_row_blocks(work, rows: int, like=None) -> list:
    """[work(block) for the row slices ``block`` of range(rows)], the slices being the current
    :func:`row_blocks` computed concurrently from SPLIT_FROM rows (numpy releases the GIL in BLAS and
    in elementwise operations on large arrays), one slice otherwise or where ``like`` is not numpy."""
    blocks = _blocks.get() if rows >= SPLIT_FROM and (like is None or isinstance(like, np.ndarray)) else 1
    if blocks == 1:
        return [work(slice(0, rows))]
    edges = np.linspace(0, rows, blocks + 1).astype(int)
    slices = [slice(a, b) for a, b in zip(edges[:-1], edges[1:])]
    pending = [_workers(blocks - 1).submit(work, block) for block in slices[1:]]
    return [work(slices[0])] + [job.result() for job in pending]


def _workers(count: int) -> ThreadPoolExecutor:
    """The process's pool of at least ``count`` threads (solves may run in several threads at once)."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool[0] < count:
            if _pool is not None:
                _pool[1].shutdown(wait=False)
            _pool = (count, ThreadPoolExecutor(count, thread_name_prefix="layerpeeled-rows"))
        return _pool[1]
