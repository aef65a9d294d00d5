"""The Layer-Peeled Model as plain, validated data (SPEC §1).

A problem is the class counts n_k, the energy budgets E_H and E_W and a loss. Everything a solver
needs (class weights n_k/N, the nuclear-norm radius, the groups of equal counts) derives from it.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .losses import CrossEntropy, Loss

MAX_MARGIN = 650.0  # exp(-650) ~ 1e-282: beyond such logit margins every loss underflows double precision
_ITEM = re.compile(r"^\s*([^xX*\s]+)\s*(?:[xX*]\s*(\S+))?\s*$")


def _positive_finite(name: str, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return v


def parse_counts(text: str) -> np.ndarray:
    """Parse class counts: ``5000x5,50x5`` (M classes of N examples), ``6000,6000,600`` or ``@file``.

    A file holds the same items separated by commas, whitespace or newlines; ``#`` starts a comment.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"counts must be a non-empty string such as '5000x5,50x5', got {text!r}")
    text = text.strip()
    if text.startswith("@"):
        path = Path(text[1:])
        if not path.is_file():
            raise ValueError(f"counts file {str(path)!r} does not exist")
        body = "\n".join(line.split("#", 1)[0] for line in path.read_text().splitlines())
        items = [s for s in re.split(r"[,\s]+", body) if s]
        if not items:
            raise ValueError(f"counts file {str(path)!r} holds no counts")
    else:
        items = text.split(",")
    counts: list[float] = []
    for item in items:
        m = _ITEM.match(item)
        if not m:
            raise ValueError(f"malformed counts item {item!r}: use N (one class of N examples) or NxM (M classes of N)")
        n = _positive_finite(f"class count in item {item!r}", m.group(1))
        reps = 1
        if m.group(2) is not None:
            if not m.group(2).isdigit() or int(m.group(2)) < 1:
                raise ValueError(f"malformed counts item {item!r}: the number of classes after 'x' must be a positive integer")
            reps = int(m.group(2))
        counts.extend([n] * reps)
    return np.asarray(counts, dtype=float)


def step_counts(KA: int, KB: int, R: float, nA: float = 1.0) -> np.ndarray:
    """Step imbalance: K_A classes of n_A examples, then K_B classes of n_A / R (R = inf is not a count)."""
    KA, KB = _class_number("KA", KA, 1), _class_number("KB", KB, 0)
    R = _positive_finite("R", R)
    nA = _positive_finite("nA", nA)
    return np.array([nA] * KA + [nA / R] * KB, dtype=float)


def long_tailed_counts(K: int, ratio: float, n_max: float = 1.0) -> np.ndarray:
    """Exponential (long-tailed) imbalance n_k = n_max * ratio^(-k/(K-1)), k = 0..K-1."""
    K = _class_number("K", K, 2)
    ratio = _positive_finite("ratio", ratio)
    return _positive_finite("n_max", n_max) * ratio ** (-np.arange(K) / (K - 1))


def _class_number(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class Group:
    """Classes sharing one count: the unit of symmetry (SPEC §2.5) and of reported geometry."""

    count: float
    classes: tuple[int, ...]

    @property
    def size(self) -> int:
        return len(self.classes)


@dataclass(frozen=True)
class LPMProblem:
    """The constrained Layer-Peeled Model: counts n_k, budgets E_H, E_W, and a loss convex in the logits.

    ``counts`` accepts an array of positive numbers or a counts string (see :func:`parse_counts`).
    """

    counts: np.ndarray
    EH: float = 5.0
    EW: float = 1.0
    loss: Loss = field(default_factory=CrossEntropy)

    def __post_init__(self):
        counts = parse_counts(self.counts) if isinstance(self.counts, str) else self.counts
        try:
            arr = np.array(counts, dtype=float).reshape(-1)
        except (TypeError, ValueError):
            raise ValueError(f"counts must be a list of positive numbers, got {counts!r}") from None
        if arr.size < 2:
            raise ValueError(f"the model needs K >= 2 classes, got K = {arr.size} (counts {arr.tolist()})")
        bad = np.flatnonzero(~np.isfinite(arr) | (arr <= 0))
        if bad.size:
            k = int(bad[0])
            raise ValueError(f"class counts must be positive and finite; class {k} has count {float(arr[k])!r}")
        arr.setflags(write=False)
        object.__setattr__(self, "counts", arr)
        object.__setattr__(self, "EH", _positive_finite("EH", self.EH))
        object.__setattr__(self, "EW", _positive_finite("EW", self.EW))
        margin = self.K / (self.K - 1) * math.sqrt(self.EH) * math.sqrt(self.EW)
        if margin > MAX_MARGIN:
            bound = (MAX_MARGIN * (self.K - 1) / self.K) ** 2
            raise ValueError(f"E_H*E_W = {self.EH:.4g} * {self.EW:.4g} is too large for K = {self.K}: the balanced margin "
                             f"K sqrt(E_H E_W)/(K-1) = {margin:.4g} makes every loss underflow double precision "
                             f"(exp(-{MAX_MARGIN:g}) ~ 1e-282), so no solver can resolve the optimum; keep "
                             f"E_H*E_W <= {bound:.4g}")
        if not isinstance(self.loss, Loss):
            raise TypeError(f"loss must implement layerpeeled.losses.Loss, got {self.loss!r}")

    @property
    def K(self) -> int:
        return int(self.counts.size)

    @property
    def weights(self) -> np.ndarray:
        """n_k / N: the weight of class k in the mean loss per training example."""
        return self.counts / self.counts.sum()

    @property
    def radius(self) -> float:
        """tau = K * sqrt(E_H * E_W), the nuclear-norm bound on the logit matrix (SPEC §2.3)."""
        return self.K * math.sqrt(self.EH * self.EW)

    @property
    def groups(self) -> tuple[Group, ...]:
        """Classes with equal counts, in the order their count first appears."""
        order: dict[float, list[int]] = {}
        for k, n in enumerate(self.counts.tolist()):
            order.setdefault(n, []).append(k)
        return tuple(Group(n, tuple(ks)) for n, ks in order.items())

    def with_counts(self, counts) -> "LPMProblem":
        return LPMProblem(counts, self.EH, self.EW, self.loss)

    def __repr__(self) -> str:
        desc = ",".join(f"{g.count:g}x{g.size}" for g in self.groups)
        return f"LPMProblem(counts={desc}, EH={self.EH:g}, EW={self.EW:g}, loss={self.loss.name})"
