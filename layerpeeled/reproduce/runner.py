"""Network sweeps on Dask: one task per training configuration, keyed and stored atomically.

A task trains into ``runs/<key>/`` (resuming from its checkpoint if a previous sweep was killed)
and then writes its record with :class:`ResultStore`; finished configurations are never sent
again. A local cluster is started by default; ``scheduler`` sends the same tasks to an existing
Dask cluster (for example one started by dask-jobqueue on SLURM) that sees the same folder.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..sweeps import ResultStore, config_key
from ..sweeps.parallel import check_workers, dask_client, run_tasks, shared_folder


def run_folder(root, config: dict) -> Path:
    return Path(root) / "runs" / config_key(config)


def train_task(config: dict, root: str, data_dir: str | None, threads: int | None = None) -> dict:
    """Train one configuration (resuming if it was interrupted) and store its final record.
    ``threads``: torch compute threads (None: torch's default for the worker's machine)."""
    import torch

    from ..networks.config import TrainConfig
    from ..networks.train import train

    if threads:
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
    check_workers(workers)
    root = Path(root).resolve()
    data_dir = str(Path(data_dir).resolve()) if data_dir else None
    store = ResultStore(root)
    todo = [c for c in configs if not store.has(c)]
    if todo:
        cores = os.cpu_count() or 1
        # one single-threaded run per core: runs scale perfectly across processes, while a run's own
        # threads wait for each other, and for any core that another program is using
        workers = workers or max(1, min(len(todo), cores))
        threads = None if scheduler else max(1, cores // workers)
        with dask_client(scheduler, workers, threads) as client:
            shared_folder(client, root)
            run_tasks(train_task, [(c, str(root), data_dir, threads) for c in todo], client,
                      keys=[f"train-{config_key(c)}" for c in todo], progress=progress, desc="network sweep")
    store.export()
    return store
