"""The Layer-Peeled Model as plain, validated data (SPEC §1).

A problem is the class counts n_k, the energy budgets E_H and E_W and a loss. Everything a solver
needs (class weights n_k/N, the nuclear-norm radius, the groups of equal counts) derives from it.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from .losses import CrossEntropy, Loss, parse_loss

CLASSIFIERS = ("learned", "etf")  # a learned classifier, or one held at a simplex ETF (Yang et al. 2022)
MAX_MARGIN = 650.0  # exp(-650) ~ 1e-282: beyond such logit margins every loss underflows double precision
_ITEM = re.compile(r"^\s*([^xX*\s]+)\s*(?:[xX*]\s*(\S+))?\s*$")


def balanced_margin(K: int, EH: float, EW: float) -> float:
    """The logit margin K sqrt(E_H E_W)/(K-1) of the balanced optimum (a simplex ETF) at these budgets."""
    return K / (K - 1) * math.sqrt(EH) * math.sqrt(EW)


def resolvable_energies(K: int, EH: float, EW: float) -> bool:
    """Whether double precision resolves the constrained model at these budgets: the balanced margin
    stays within MAX_MARGIN (beyond it every loss underflows)."""
    return balanced_margin(K, EH, EW) <= MAX_MARGIN


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


def _validated_counts(counts) -> np.ndarray:
    counts = parse_counts(counts) if isinstance(counts, str) else counts
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
    return arr


class _Counts:
    """What both forms of the model derive from the class counts."""

    counts: np.ndarray
    loss: Loss

    def _check_loss(self):
        if isinstance(self.loss, str):  # a spec string such as "la:tau=1"
            object.__setattr__(self, "loss", parse_loss(self.loss))
        if not isinstance(self.loss, Loss):
            raise TypeError(f"loss must be a layerpeeled.losses.Loss or a loss spec string, got {self.loss!r}")

    @property
    def K(self) -> int:
        return int(self.counts.size)

    @property
    def weights(self) -> np.ndarray:
        """n_k / N: the weight of class k in the mean loss per training example."""
        return self.counts / self.counts.sum()

    @cached_property
    def groups(self) -> tuple[Group, ...]:
        """Classes with equal counts, in the order their count first appears (computed once: the
        reduced solvers ask often, and K may be 100 000)."""
        values, first, inverse = np.unique(self.counts, return_index=True, return_inverse=True)
        members = np.split(np.argsort(inverse, kind="stable"), np.cumsum(np.bincount(inverse))[:-1])
        return tuple(Group(float(values[j]), tuple(members[j].tolist())) for j in np.argsort(first))

    def _counts_repr(self) -> str:
        return ",".join(f"{g.count:g}x{g.size}" for g in self.groups)


@dataclass(frozen=True)
class LPMProblem(_Counts):
    """The constrained Layer-Peeled Model: counts n_k, budgets E_H, E_W, and a loss convex in the logits.

    ``counts`` accepts an array of positive numbers or a counts string (see :func:`parse_counts`).
    """

    counts: np.ndarray
    EH: float = 5.0
    EW: float = 1.0
    loss: Loss = field(default_factory=CrossEntropy)
    classifier: str = "learned"  # "etf": W held at a simplex ETF of energy E_W, only the features optimised

    def __post_init__(self):
        object.__setattr__(self, "counts", _validated_counts(self.counts))
        if self.classifier not in CLASSIFIERS:
            raise ValueError(f"classifier must be one of {CLASSIFIERS}, got {self.classifier!r}")
        object.__setattr__(self, "EH", _positive_finite("EH", self.EH))
        object.__setattr__(self, "EW", _positive_finite("EW", self.EW))
        if not resolvable_energies(self.K, self.EH, self.EW):
            margin = balanced_margin(self.K, self.EH, self.EW)
            bound = (MAX_MARGIN * (self.K - 1) / self.K) ** 2
            raise ValueError(f"E_H*E_W = {self.EH:.4g} * {self.EW:.4g} is too large for K = {self.K}: the balanced margin "
                             f"K sqrt(E_H E_W)/(K-1) = {margin:.4g} makes every loss underflow double precision "
                             f"(exp(-{MAX_MARGIN:g}) ~ 1e-282), so no solver can resolve the optimum; keep "
                             f"E_H*E_W <= {bound:.4g}")
        self._check_loss()

    @property
    def radius(self) -> float:
        """tau = K * sqrt(E_H * E_W), the nuclear-norm bound on the logit matrix (SPEC §2.3)."""
        return self.K * math.sqrt(self.EH * self.EW)

    @property
    def classifier_scale(self) -> float:
        """c in W W^T = c (Y^T Y)^{1/2}, (S H)(S H)^T = (Y Y^T)^{1/2} / c for the weighted logits Y = S Z."""
        return math.sqrt(self.EW / self.EH)

    @property
    def row_scale(self) -> np.ndarray:
        """S: the constrained model's nuclear norm weighs every class alike."""
        return np.ones(self.K)

    def describe(self) -> dict:
        return {"form": "constrained", "EH_budget": self.EH, "EW_budget": self.EW, "classifier": self.classifier}

    def with_counts(self, counts) -> "LPMProblem":
        return LPMProblem(counts, self.EH, self.EW, self.loss, self.classifier)

    def __repr__(self) -> str:
        fixed = ", classifier=etf" if self.classifier == "etf" else ""
        return (f"LPMProblem(counts={self._counts_repr()}, EH={self.EH:g}, EW={self.EW:g}, loss={self.loss.spec}"
                f"{fixed})")


@dataclass(frozen=True)
class PenalizedLPM(_Counts):
    """The penalized (weight-decay) Layer-Peeled Model of SPEC §1:

        min (1/N) sum_ki L(W h_ki + b, k) + (lambda_W/2)|W|_F^2 + (lambda_H/2) sum_ki |h_ki|^2 + (lambda_b/2)|b|^2,

    the feature penalty summed over all N examples. ``lambda_b``: None (no bias, b = 0), > 0 (a
    decayed bias) or 0 (a free bias). Unlike the constrained form, the answer depends on the
    absolute counts n_k.
    """

    counts: np.ndarray
    lambda_W: float = 5e-4
    lambda_H: float = 5e-4
    lambda_b: float | None = None
    loss: Loss = field(default_factory=CrossEntropy)

    def __post_init__(self):
        object.__setattr__(self, "counts", _validated_counts(self.counts))
        object.__setattr__(self, "lambda_W", _positive_finite("lambda_W", self.lambda_W))
        object.__setattr__(self, "lambda_H", _positive_finite("lambda_H", self.lambda_H))
        if self.lambda_b is not None:
            try:
                lb = float(self.lambda_b)
            except (TypeError, ValueError):
                lb = math.nan
            if not math.isfinite(lb) or lb < 0:
                raise ValueError(f"lambda_b must be a finite number >= 0 (0: a free bias) or None (no bias), "
                                 f"got {self.lambda_b!r}")
            object.__setattr__(self, "lambda_b", lb)
        self._check_loss()

    @property
    def bias(self) -> str:
        """'none' (b = 0), 'decayed' (lambda_b > 0) or 'free' (lambda_b = 0)."""
        return "none" if self.lambda_b is None else "decayed" if self.lambda_b > 0 else "free"

    @property
    def mu(self) -> float:
        """sqrt(lambda_W lambda_H): the weight of |D^{1/2} Z|_* in the convex form."""
        return math.sqrt(self.lambda_W * self.lambda_H)

    @property
    def classifier_scale(self) -> float:
        """c in W W^T = c (Y^T Y)^{1/2}, (D^{1/2} H)(D^{1/2} H)^T = (Y Y^T)^{1/2} / c, Y = D^{1/2} Z."""
        return math.sqrt(self.lambda_H / self.lambda_W)

    @property
    def row_scale(self) -> np.ndarray:
        """S = D^{1/2}: the penalty sums feature norms over examples, so class k weighs sqrt(n_k)."""
        return np.sqrt(self.counts)

    def describe(self) -> dict:
        return {"form": "penalized", "lambda_W": self.lambda_W, "lambda_H": self.lambda_H, "lambda_b": self.lambda_b,
                "bias": self.bias}

    def with_counts(self, counts) -> "PenalizedLPM":
        return PenalizedLPM(counts, self.lambda_W, self.lambda_H, self.lambda_b, self.loss)

    def __repr__(self) -> str:
        bias = "no bias" if self.lambda_b is None else f"lambda_b={self.lambda_b:g}"
        return (f"PenalizedLPM(counts={self._counts_repr()}, lambda_W={self.lambda_W:g}, lambda_H={self.lambda_H:g}, "
                f"{bias}, loss={self.loss.spec})")
