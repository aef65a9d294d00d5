"""The geometry a user reads off a solution or a network (SPEC §3): per group of equal counts.

Cosines of classifiers whose norms are numerically zero are undefined; they are reported as
``None`` with ``vanished=True``, never as the noise a division by ~0 would print.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from .gram import GramStats
from .reference import seli

RECORD_FIELDS = ("w_norm2", "h_norm2", "w_cos", "h_cos", "w_spread", "vanished")
VANISH_RTOL = 1e-10  # a group vanishes when its mean squared norm is below this times the largest
NOTE_VANISHED = "vanished"  # norms numerically zero: the cosine is undefined
NOTE_ONE_CLASS = "one class"  # a group of one class has no pair of classifiers to take a cosine of


def _num(x) -> float | None:
    return None if x is None or not math.isfinite(float(x)) else float(x)


@dataclass(frozen=True)
class GroupGeometry:
    count: float  # examples per class in this group
    classes: int  # number of classes in the group
    w_norm2: float  # mean squared classifier norm
    h_norm2: float | None  # mean squared class-mean feature norm
    w_cos: float | None  # mean cosine between distinct classifiers of the group
    h_cos: float | None
    w_spread: float | None  # mean pairwise classifier distance / mean norm of the largest-count group
    vanished: bool  # classifier norms numerically zero: cosines undefined
    w_cos_note: str | None = None  # why w_cos is None: "vanished" or "one class" (no pair to compare)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Geometry:
    groups: tuple[GroupGeometry, ...]
    w_cross_cos: list  # G x G mean cosines between groups' classifiers (None where undefined)
    w_etf_distance: float | None
    h_etf_distance: float | None
    w_seli_distance: float | None = None  # to SELI (Thrampoulidis et al. 2022) for these counts
    h_seli_distance: float | None = None

    def to_dict(self) -> dict:
        return {
            "groups": [g.to_dict() for g in self.groups],
            "w_cross_cos": self.w_cross_cos,
            "w_etf_distance": self.w_etf_distance,
            "h_etf_distance": self.h_etf_distance,
            "w_seli_distance": self.w_seli_distance,
            "h_seli_distance": self.h_seli_distance,
        }

    @property
    def majority(self) -> int:
        """Index of the majority group: the first with the largest count."""
        counts = [g.count for g in self.groups]
        return counts.index(max(counts))

    @property
    def minority(self) -> int:
        """Index of the minority group: the last with the smallest count (the majority itself when
        all classes have one count, e.g. balanced data or R = w_r)."""
        counts = [g.count for g in self.groups]
        return len(counts) - 1 - counts[::-1].index(min(counts))

    def flat(self) -> dict:
        """Flat record fields ``majority_<field>`` and ``minority_<field>``, the majority-minority
        cosine and the ETF distance: the columns of sweep tables and training records."""
        rec = {f"{name}_{field}": getattr(self.groups[index], field)
               for name, index in (("majority", self.majority), ("minority", self.minority)) for field in RECORD_FIELDS}
        rec["between_cos"] = self.w_cross_cos[self.majority][self.minority]
        rec["w_etf_distance"] = self.w_etf_distance
        rec["w_seli_distance"] = self.w_seli_distance
        return rec

    def summary(self) -> str:
        lines = [f"{'count':>10} {'classes':>7} {'|w|^2':>10} {'|h|^2':>10} {'cos(w)':>9} {'spread':>9}  note"]
        for g in self.groups:
            fmt = lambda v, w=9: f"{v:>{w}.4g}" if v is not None else f"{'—':>{w}}"
            note = {NOTE_VANISHED: "vanished (cosine undefined)", NOTE_ONE_CLASS: "one class (no cosine)"}.get(g.w_cos_note, "")
            lines.append(f"{g.count:>10g} {g.classes:>7d} {g.w_norm2:>10.4g} {fmt(g.h_norm2, 10)} "
                         f"{fmt(g.w_cos)} {fmt(g.w_spread)}  {note}")
        if self.w_etf_distance is not None:
            lines.append(f"distance of W to a simplex ETF: {self.w_etf_distance:.3g}")
        if self.w_seli_distance is not None:
            lines.append(f"distance of W to SELI: {self.w_seli_distance:.3g}")
        return "\n".join(lines)


def group_geometry(counts, w_stats: GramStats, h_stats: GramStats | None = None) -> Geometry:
    """Assemble the per-group report from Gram statistics of W (and of the class means H).

    ``counts`` gives each group's examples-per-class; the largest-count group is the reference
    (majority) for the relative minority spread.
    """
    counts = [float(c) for c in counts]
    vanished = w_stats.norm2 <= VANISH_RTOL * max(float(w_stats.norm2.max()), np.finfo(float).tiny)
    ref = int(np.argmax(counts))
    ref_norm = math.sqrt(w_stats.norm2[ref])
    groups = []
    for g, n in enumerate(counts):
        spread = w_stats.dist[g] / ref_norm if ref_norm > 0 and not vanished[ref] else None
        groups.append(GroupGeometry(
            count=n, classes=int(w_stats.sizes[g]), w_norm2=float(w_stats.norm2[g]),
            h_norm2=None if h_stats is None else float(h_stats.norm2[g]),
            w_cos=None if vanished[g] else _num(w_stats.cos[g]),
            h_cos=None if h_stats is None else _num(h_stats.cos[g]),
            w_spread=_num(spread), vanished=bool(vanished[g]),
            w_cos_note=NOTE_VANISHED if vanished[g] else NOTE_ONE_CLASS if w_stats.sizes[g] < 2 else None,
        ))
    G = len(counts)
    cross = [[None if vanished[a] or vanished[b] else _num(w_stats.cross_cos[a, b]) for b in range(G)] for a in range(G)]
    seli_w, seli_h = seli(w_stats.sizes, counts)
    return Geometry(tuple(groups), cross, _num(w_stats.etf_distance()),
                    None if h_stats is None else _num(h_stats.etf_distance()),
                    _num(w_stats.distance(seli_w)), None if h_stats is None else _num(h_stats.distance(seli_h)))
