"""Model sweeps over R, K_A, K_B, the energies (or the penalties), w_r and the loss: one certified solve per
configuration."""
from __future__ import annotations

import itertools
import math

from tqdm.auto import tqdm

from ..losses import parse_loss
from ..problem import LPMProblem, PenalizedLPM, step_counts
from ..solvers import choose_method, dense_logit_solver, solve
from ..solvers.newton import keep_warm, warm_start
from ..sweeps import ResultStore, config_key
from .mitigation import effective_counts

TASKS_PER_WORKER = 8  # a Dask sweep sends its solves in this many chunks per worker (each solve is milliseconds)


def model_configs(R, KA=(5,), KB=(5,), EH=(5.0,), EW=(1.0,), wr=(1.0,), mitigation="oversample",
                  loss="cross-entropy", method="auto", tol=1e-9, nA=None, lambda_W=None, lambda_H=None,
                  lambda_b=None, scale=None) -> list[dict]:
    """The grid (Cartesian product) of step-imbalanced model configurations.

    Constrained form: budgets ``EH``, ``EW``; ``scale``: majority examples per class n_A (default 1:
    only count-based losses such as ldam see it; configurations then carry ``nA``). Penalized
    (weight-decay) form: give ``nA`` (majority examples per class), ``lambda_W`` and ``lambda_H``
    (and ``lambda_b``: None for no bias, 0 for a free one) instead; ``EH``/``EW`` are then ignored,
    and ``wr`` must be 1 (SPEC defines oversampling for the constrained form only)."""
    common = dict(mitigation=mitigation, loss=parse_loss(loss).spec, method=method, tol=float(tol))
    if nA is None and lambda_W is None and lambda_H is None and lambda_b is None:
        grid = itertools.product(_values("R", R), _values("KA", KA), _values("KB", KB), _values("EH", EH),
                                 _values("EW", EW), _values("wr", wr), [None] if scale is None else _values("nA", scale))
        return [dict(R=float(r), KA=int(ka), KB=int(kb), EH=float(eh), EW=float(ew), wr=float(w), **common,
                     **({} if n is None else {"nA": float(n)}))
                for r, ka, kb, eh, ew, w, n in grid]
    if nA is None or lambda_W is None or lambda_H is None:
        raise ValueError("the penalized form needs nA, lambda_W and lambda_H")
    if any(float(w) != 1.0 for w in _values("wr", wr)):
        raise ValueError(f"oversampling (wr = {list(_values('wr', wr))}) is defined for the constrained form only; "
                         "use wr = 1 with the penalized form")
    grid = itertools.product(_values("R", R), _values("KA", KA), _values("KB", KB), _values("nA", nA),
                             _values("lambda_W", lambda_W), _values("lambda_H", lambda_H), _values("lambda_b", lambda_b))
    return [dict(R=float(r), KA=int(ka), KB=int(kb), nA=float(n), lambda_W=float(lw), lambda_H=float(lh),
                 lambda_b=None if lb is None else float(lb), wr=1.0, **common)
            for r, ka, kb, n, lw, lh, lb in grid]


def _values(name, v):
    v = list(v) if isinstance(v, (list, tuple, range)) or hasattr(v, "__array__") else [v]
    if not v:
        raise ValueError(f"{name} needs at least one value")
    return v


def config_problem(config: dict) -> LPMProblem | PenalizedLPM:
    """The model of one sweep configuration, constrained or penalized (see :func:`model_configs`)."""
    loss = parse_loss(config["loss"])
    if "lambda_W" in config:
        counts = step_counts(config["KA"], config["KB"], config["R"], config["nA"])
        return PenalizedLPM(counts, config["lambda_W"], config["lambda_H"], config["lambda_b"], loss)
    counts = step_counts(config["KA"], config["KB"], config["R"], config.get("nA", 1.0))
    counts = effective_counts(counts, config["wr"], slice(config["KA"], None), config["mitigation"])
    return LPMProblem(counts, config["EH"], config["EW"], loss)


def solve_warm(problem, warm: dict | None, method: str = "auto", tol: float = 1e-9):
    """``solve(problem)`` starting from the previous solve's solution kept in ``warm`` (a dict carried
    along a run of nearby solves; None: a cold solve), which then keeps this one's: a reduced solve
    polishes the neighbour's reduced solution; a dense first-order solve starts from the
    neighbour's logits, scaled onto its own ball for the constrained model, with the neighbour's
    bias for the penalized one (fewer steps along a sweep in R; measured in benchmarks/README.md)."""
    chosen = choose_method(problem) if method == "auto" else method
    penalized = isinstance(problem, PenalizedLPM)
    dense = dense_logit_solver(problem, chosen)
    key = "penalized_logits" if penalized else "logits"
    options = {}
    if chosen == "reduced":
        options["warm"] = warm_start(warm)
    elif dense and warm and key in warm and warm[key]["x0"].shape == (problem.K, problem.K):
        options = dict(warm[key])
        if not penalized:  # the neighbour's logits, scaled onto this ball
            options["x0"] = options["x0"] * (problem.radius / options.pop("radius"))
    result = solve(problem, method, tol=tol, **options)
    keep_warm(warm, result)
    if dense and warm is not None:
        warm[key] = {"x0": result.logits, **({"bias0": result.bias} if penalized else {"radius": problem.radius})}
    return result


def solve_config(config: dict, warm: dict | None = None) -> dict:
    """The record of one configuration: certificate, cost, and majority/minority geometry.

    ``warm``: a dict carried along a run of configurations; a reduced solve then starts from the
    previous reduced solution (a Newton polish from a neighbour; ignored where shapes differ)."""
    result = solve_warm(config_problem(config), warm, config["method"], config["tol"])
    rec = {k: getattr(result, k) for k in ("value", "gap", "method", "status", "iterations", "seconds")}
    rec["EW_opt"], rec["EH_opt"] = result.energies  # the energies of the optimum (the budgets, when constrained)
    rec.update(result.geometry.flat())  # R = w_r: one group, which is then majority and minority alike
    return rec


def solve_into(configs: list[dict], folder: str) -> int:
    """Solve ``configs`` and store each record in ``folder`` as soon as it is done (a Dask task)."""
    store, warm = ResultStore(folder), {}
    for config in configs:
        store.put(config, solve_config(config, warm))
    return len(configs)


def run_sweep(configs: list[dict], store: ResultStore, progress: bool = True, scheduler: str | None = None,
              workers: int | None = None) -> list[dict]:
    """Solve every configuration not yet in ``store``; return all their records, in config order.

    With ``scheduler`` or ``workers`` > 1 the solves run as Dask tasks (see :mod:`layerpeeled.sweeps.parallel`).
    """
    from ..sweeps.parallel import check_workers

    # solved in order of R within each setting, so that each solve starts from its neighbour's solution
    todo = sorted((c for c in configs if not store.has(c)),
                  key=lambda c: (sorted((k, str(v)) for k, v in c.items() if k != "R"), c["R"]))
    if todo and (scheduler or (check_workers(workers) or 1) > 1):
        from ..sweeps.parallel import dask_client, run_tasks, shared_folder

        with dask_client(scheduler, workers) as client:
            folder = str(shared_folder(client, store.folder))
            size = max(1, math.ceil(len(todo) / (TASKS_PER_WORKER * max(1, len(client.scheduler_info()["workers"])))))
            chunks = [todo[i:i + size] for i in range(0, len(todo), size)]
            run_tasks(solve_into, [(chunk, folder) for chunk in chunks], client,
                      keys=[f"solve-{config_key(chunk[0])}" for chunk in chunks], progress=progress, desc="model sweep")
    else:
        warm = {}
        for config in tqdm(todo, desc="model sweep", unit="solve", disable=not progress):
            store.put(config, solve_config(config, warm))
    store.export()
    return [store.get(c) for c in configs]


def sweep_in_memory(configs: list[dict]) -> list[dict]:
    """Records without a store (for figures and benchmarks)."""
    warm = {}
    return [{"config": c, **solve_config(c, warm)} for c in configs]


def paper_ratios(n: int = 41, step: float = 0.1) -> list[float]:
    """R = 10^(0.1 i), i = 0..40: the paper's model figure grid."""
    return [math.pow(10.0, step * i) for i in range(n)]
