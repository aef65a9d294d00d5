"""layerpeeled: the Layer-Peeled Model of deep classifiers (Fang, He, Long, Su, PNAS 2021).

    >>> from layerpeeled import LPMProblem, solve
    >>> result = solve(LPMProblem("5000x5,50x5", EH=5, EW=1))
    >>> result.value, result.gap, result.geometry.groups[1].w_cos
"""
from .problem import Group, LPMProblem, long_tailed_counts, parse_counts, step_counts
from .solvers import SolveResult, solve

__version__ = "0.1.0"
__all__ = ["LPMProblem", "Group", "solve", "SolveResult", "parse_counts", "step_counts", "long_tailed_counts"]
