"""One Dask layer for every sweep: model grids, onset scans and network trainings.

Tasks run on a local cluster by default or on an existing one (``scheduler``), for example one
that dask-jobqueue started on SLURM. Results that must outlive the sweep go to a folder the
caller names; it is resolved to an absolute path before any task leaves, and every worker must
see it (checked with a probe file, so a cluster without a shared file system fails at once with a
clear message instead of writing results into the workers' own folders).
"""
from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path

from tqdm.auto import tqdm

from ..atomic import output_folder

CONNECT_TIMEOUT_S = 10  # how long to try an unreachable scheduler before saying so
# worker settings for tasks that are long loops of numeric work rather than data-frame chunks:
# no statistical profiler sampling every 10 ms, freed memory kept for the next batch
WORKER_CONFIG = {"distributed.worker.profile.enabled": False}


def check_workers(workers) -> int | None:
    if workers is None:
        return None
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"--workers must be a positive integer, got {workers!r}")
    return workers


@contextmanager
def dask_client(scheduler: str | None = None, workers: int | None = None, threads: int = 1, environ: dict | None = None):
    """A Dask client: connected to ``scheduler``, or to a local cluster of ``workers`` processes,
    each running one task at a time with ``threads`` compute threads and ``environ`` set."""
    import dask
    from dask.distributed import Client, LocalCluster

    workers = check_workers(workers) or 1
    if scheduler:
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            raise RuntimeError(f"cannot reach the Dask scheduler at {scheduler!r} within {CONNECT_TIMEOUT_S} s "
                               f"({type(exc).__name__}); is it running, and is the address right "
                               f"(for example tcp://host:8786)?") from None
        try:
            yield client
        finally:
            client.close()
        return
    env = {"OMP_NUM_THREADS": threads, "OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_NUM_THREADS": 1, "LPM_THREADS": threads,
           "MALLOC_TRIM_THRESHOLD_": 2**30, **(environ or {})}
    settings = {**WORKER_CONFIG, **{f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in env.items()}}
    with dask.config.set(settings):
        # ":0": any free port, so a second sweep on the machine starts without a port-in-use warning
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0")
        client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def shared_folder(client, folder) -> Path:
    """``folder`` as an absolute path that every worker of ``client`` can see (else an error)."""
    folder = output_folder(Path(folder).resolve())
    probe = folder / f".probe-{uuid.uuid4().hex}"
    probe.write_text("layerpeeled")
    try:
        seen = client.run(os.path.isfile, str(probe))
    finally:
        probe.unlink(missing_ok=True)
    blind = sorted(w for w, ok in seen.items() if not ok)
    if blind:
        raise RuntimeError(f"Dask workers {blind} cannot see {folder}: give --out a folder on a file system "
                           "that the workers mount at the same path")
    return folder


def run_tasks(fn, items: list, client, keys: list[str] | None = None, progress: bool = True, desc: str = "tasks") -> list:
    """``[fn(*item) for item in items]`` as Dask tasks, in order; a failed task's error is raised here."""
    from dask.distributed import as_completed

    keys = keys or [None] * len(items)
    futures = [client.submit(fn, *item, key=key, pure=False) for item, key in zip(items, keys)]
    for fut in tqdm(as_completed(futures), total=len(futures), desc=desc, unit="task", disable=not progress):
        fut.result()
    return [f.result() for f in futures]
