"""Network sweeps on Dask: one task per training configuration, keyed and stored atomically.

A task trains into ``runs/<key>/`` (resuming from its checkpoint if a previous sweep was killed)
and then writes its record with :class:`ResultStore`; finished configurations are never sent
again. A local cluster is started by default; ``scheduler`` sends the same tasks to an existing
Dask cluster (for example one started by dask-jobqueue on SLURM) that sees the same folder.
"""
from __future__ import annotations

import os
from pathlib import Path

from tqdm.auto import tqdm

from ..networks.train import TrainConfig, train
from ..sweeps import ResultStore, config_key


def run_folder(root, config: dict) -> Path:
    return Path(root) / "runs" / config_key(config)


def train_task(config: dict, root: str, data_dir: str | None, threads: int = 1) -> dict:
    """Train one configuration (resuming if it was interrupted) and store its final record."""
    import torch

    torch.set_num_threads(threads)
    store = ResultStore(root)
    if store.has(config):
        return {"skipped": True}
    folder = run_folder(root, config)
    cfg = TrainConfig.from_json({**config, "data_dir": data_dir})
    resume = (folder / "checkpoint.pt").exists()
    record = train(cfg, folder, resume=resume, progress=False)
    store.put(config, {"run": str(folder), **record})
    return {"skipped": False}


def run_networks(configs: list[dict], root, data_dir=None, scheduler: str | None = None, workers: int | None = None,
                 progress: bool = True) -> ResultStore:
    """Run every configuration not yet stored under ``root``, in parallel on Dask."""
    import dask
    from dask.distributed import Client, LocalCluster, as_completed

    store = ResultStore(root)
    todo = [c for c in configs if not store.has(c)]
    if todo:
        cluster = None
        if scheduler:
            client = Client(scheduler)
            threads = 1
        else:
            cores = os.cpu_count() or 1
            workers = workers or max(1, min(len(todo), cores // 2 or 1))
            threads = max(1, cores // workers)
            # Dask's worker defaults (trim freed memory above 64 kB, one BLAS thread) suit data
            # frames, not a training loop that allocates batch tensors every step
            environ = {"MALLOC_TRIM_THRESHOLD_": 2**30, "OMP_NUM_THREADS": threads}
            with dask.config.set({f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in environ.items()}):
                cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
            client = Client(cluster)
        try:
            futures = [client.submit(train_task, c, str(root), data_dir, threads, key=f"train-{config_key(c)}", pure=False)
                       for c in todo]
            for fut in tqdm(as_completed(futures), total=len(futures), desc="network sweep", unit="run",
                            disable=not progress):
                fut.result()  # re-raises a failed run's error here
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    store.export()
    return store
