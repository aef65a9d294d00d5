"""Shared command-line pieces: value lists (``1,10,100``, ``logspace:0:4:41``, ``linspace:1:5:9``)
and the options that send work to Dask."""
from __future__ import annotations

import math

import numpy as np

LOSS_HELP = ("loss of the model: cross-entropy, la:tau=1 (logit adjustment), vs:gamma=0.2,tau=1 (vector "
             "scaling), cdt:gamma=0.3 (class-dependent temperature), ldam:C=0.5 (margins), ls:eps=0.1 (label "
             "smoothing); parameters left out take these defaults (SPEC §1)")
VALUES_HELP = ("Value lists: a comma list (1,10,100), logspace:a:b:n (n values from 10^a to 10^b, evenly spaced "
               "in log scale; logspace:0:4:41 is 1, 10^0.1, ..., 10^4) or linspace:a:b:n (n values from a to b).")


def parse_values(text: str, name: str, kind=float) -> list:
    """A comma list, or ``logspace:a:b:n`` (10^a .. 10^b, n points) / ``linspace:a:b:n``."""
    text = str(text).strip()
    try:
        if text.startswith(("logspace:", "linspace:")):
            head, a, b, n = text.split(":")
            if int(n) < 1:
                raise ValueError
            fn = np.logspace if head == "logspace" else np.linspace
            values = fn(float(a), float(b), int(n)).tolist()
        else:
            values = [kind(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"--{name}: cannot read {text!r}; give a comma list such as 1,10,100 or "
                         f"logspace:0:4:41 / linspace:1:5:9") from None
    bad = [v for v in values if isinstance(v, float) and not math.isfinite(v)]
    if bad:
        raise ValueError(f"--{name}: {text!r} holds the non-finite value {bad[0]!r}")
    return values


def add_parallel_args(p, what: str) -> None:
    p.add_argument("--workers", type=int, default=None,
                   help=f"run {what} on a local Dask cluster of this many processes (default: in this process)")
    p.add_argument("--scheduler", default=None,
                   help=f"run {what} on an existing Dask cluster at this address (tcp://host:8786); --out must "
                        "be on a file system its workers mount at the same path")


def chosen_form(args, constrained: tuple, penalized: tuple, required: tuple) -> str:
    """'constrained' or 'penalized', from which options were given (None = not given): the two forms'
    options never mix, and a penalized choice needs all of ``required``."""
    def flags(names):
        return [f"--{n.replace('_', '-')}" for n in names if getattr(args, n, None) is not None]

    given, budgets = flags(penalized), flags(constrained)
    if given and budgets:
        raise ValueError(f"{', '.join(budgets)} (constrained form) and {', '.join(given)} (penalized form) cannot be "
                         "combined: choose one form")
    if not given:
        return "constrained"
    missing = [f"--{n.replace('_', '-')}" for n in required if getattr(args, n, None) is None]
    if missing:
        raise ValueError(f"the penalized form needs {', '.join(missing)} too (it has no defaults)")
    return "penalized"
