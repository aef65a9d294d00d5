"""layerpeeled: the Layer-Peeled Model of deep classifiers (Fang, He, Long, Su, PNAS 2021).

    >>> from layerpeeled import LPMProblem, solve
    >>> result = solve(LPMProblem("5000x5,50x5", EH=5, EW=1))
    >>> result.value, result.gap, result.geometry.groups[1].w_cos

Names are imported on first use, so ``import layerpeeled.cli`` (the ``lpm`` command) loads nothing
heavy before it has set its thread environment.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"
_EXPORTS = {"LPMProblem": "problem", "Group": "problem", "parse_counts": "problem", "step_counts": "problem",
            "long_tailed_counts": "problem", "solve": "solvers", "SolveResult": "solvers"}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
