"""Losses convex in the logits, written for rows with repeated entries (SPEC §1).

A row is a target logit t and other logits v_j, each appearing m_j times (m_j = 1 for a plain
K x K logit matrix with the diagonal given multiplicity 0; m_j = class counts of a group in the
symmetry-reduced program). One formula thus serves the full and the reduced solvers.

Every loss here is cross-entropy of an affine map of the logits, with optional label smoothing:
    L(z, k) = CE(u, k) + eps (u_k - mean_j u_j),   u_j = Delta_j z_j + o_j - m_k [j = k],
with per-class coefficients (Delta, o, m) fixed by the class counts: logit adjustment
o = tau log pi; vector scaling Delta_j = (n_j / n_max)^gamma with o = tau log pi; class-dependent
temperature (vector scaling with tau = 0); LDAM margins m_j = C / n_j^(1/4); label smoothing eps.
Classes of equal count get equal coefficients, so the symmetry reduction still holds.
"""
from __future__ import annotations

import math

import numpy as np
from array_api_compat import array_namespace


def namespace(x):
    """numpy itself for numpy arrays (no wrapper overhead on tiny problems), else the array-API one."""
    return np if isinstance(x, np.ndarray) else array_namespace(x)


class Loss:
    """Cross-entropy (the default) and the base of the other losses: values, gradients and Hessians
    on repeated rows, and cvxpy rows for the reference solvers.

    ``coef``, where a method takes it, is ``(t_scale, t_shift, o_scale, o_shift)``: the affine map
    of the target logit and of the other logits of each row (see :meth:`row_coefficients`); None
    is the identity."""

    name = "cross-entropy"
    params: dict = {}  # parameter name -> default value
    eps = 0.0  # label smoothing

    def __init__(self, **params):
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            allowed = ", ".join(self.params) or "none"
            raise ValueError(f"loss {self.name!r} has no parameter {unknown[0]!r} (its parameters: {allowed})")
        self.values = {**self.params, **{k: float(v) for k, v in params.items()}}
        for key, value in self.values.items():
            self._check(key, value)

    def _check(self, key: str, value: float) -> None:
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"loss {self.name!r}: {key} must be a finite number >= 0, got {value!r}")

    @property
    def spec(self) -> str:
        """The string that selects this loss (``la:tau=1``), as the command line takes it."""
        return self.name + ("" if not self.values else ":" + ",".join(f"{k}={v:g}" for k, v in self.values.items()))

    @property
    def shift_invariant(self) -> bool:
        """L(z + c 1, k) = L(z, k) for every c: true when every Delta_j = 1 (a bias can then be centred)."""
        return True

    def coefficients(self, counts) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(Delta, o, m) per class for these class counts, or None for plain cross-entropy."""
        return None

    def row_coefficients(self, counts):
        """``coef`` for rows whose classes have these counts (classes, or groups of equal counts):
        row k's target is mapped by (Delta_k, o_k - m_k), its column j by (Delta_j, o_j)."""
        c = self.coefficients(np.asarray(counts, dtype=float))
        if c is None:
            return None
        scale, shift, margin = c
        return scale, shift - margin, scale[None, :], shift[None, :]

    def rows(self, target, others, mult, coef=None):
        """Per-row loss and gradients for rows (target, others with multiplicities ``mult``).

        Returns ``(loss, d_target, d_others)``; ``d_others`` is the derivative with respect to each
        distinct value, i.e. already summed over its multiplicity.
        """
        xp = namespace(others)
        target, others = _mapped(target, others, coef)
        loss, d_t, d_o = _cross_entropy(xp, target, others, mult)
        if self.eps:
            count = 1.0 + xp.sum(mult, axis=1)  # classes per row
            mean = (target + xp.sum(mult * xp.where(mult > 0, others, 0.0 * others), axis=1)) / count
            loss = loss + self.eps * (target - mean)
            d_t = d_t + self.eps * (1.0 - 1.0 / count)
            d_o = d_o - self.eps * mult / count[:, None]
        if coef is not None:
            d_t, d_o = d_t * coef[0], d_o * coef[2]
        return loss, d_t, d_o

    def row_hessians(self, target, others, mult, coef=None):
        """Per-row Hessians with respect to (target, each distinct other value), shape (rows, 1 + C,
        1 + C), index 0 the target (numpy only: for second-order steps). diag(q) - q q^T for the
        softmax q over the mapped logits, the target's own entry as q_t sum q_j (exact even when the
        loss is ~1e-300), scaled by the affine map; label smoothing adds only linear terms."""
        p = _cross_entropy(np, *_mapped(target, others, coef), mult)[2]
        rest = p.sum(axis=1)
        q = np.concatenate([(1.0 - rest)[:, None], p], axis=1)
        H = -q[:, :, None] * q[:, None, :]
        i = np.arange(q.shape[1])
        H[:, i, i] += q
        H[:, 0, 0] = q[:, 0] * rest
        if coef is not None:
            scale = np.concatenate([np.broadcast_to(coef[0], rest.shape)[:, None], np.broadcast_to(coef[2], p.shape)],
                                   axis=1)
            H = H * scale[:, :, None] * scale[:, None, :]
        return H

    def __eq__(self, other) -> bool:
        return isinstance(other, Loss) and self.spec == other.spec

    def __hash__(self) -> int:
        return hash(self.spec)

    def cvxpy_row(self, logits, k, counts):
        """The loss of one logit row with target class k as a cvxpy expression (for the SDP)."""
        import cvxpy as cp

        K = logits.shape[0]
        c = self.coefficients(np.asarray(counts, dtype=float))
        u = logits if c is None else cp.multiply(c[0], logits) + (c[1] - c[2][k] * np.eye(K)[k])
        loss = cp.log_sum_exp(u) - u[k]
        return loss + self.eps * (u[k] - cp.sum(u) / K) if self.eps else loss

    def __repr__(self) -> str:
        return f"Loss({self.spec!r})"


def _mapped(target, others, coef):
    """The rows' logits under a loss's affine map ``coef`` (unchanged for None)."""
    if coef is None:
        return target, others
    return coef[0] * target + coef[1], coef[2] * others + coef[3]


def _cross_entropy(xp, target, others, mult):
    """Cross-entropy of rows and its gradient (the softmax over others, summed over multiplicity),
    as m + log1p(expm1(-m) + sum mult exp(D - m)), D = v - t, m = max(0, max D): full relative
    precision down to ~1e-300 (well-separated logits), no overflow when it is huge."""
    live = mult > 0
    D = xp.where(live, others - target[:, None], 0.0 * others)
    m = xp.max(D, axis=1)
    m = xp.maximum(m, 0.0 * m)  # the target's own offset is 0
    e = mult * xp.exp(D - m[:, None])  # dead entries: mult 0 times a finite number
    s = xp.sum(e, axis=1)
    p = e / (xp.exp(-m) + s)[:, None]
    return m + xp.log1p(xp.expm1(-m) + s), -xp.sum(p, axis=1), p


class CrossEntropy(Loss):
    """Softmax cross-entropy."""


def _log_priors(counts):
    return np.log(counts / counts.sum())


class LogitAdjusted(Loss):
    """Logit adjustment (Menon et al. 2021): CE(z + tau log pi, k)."""

    name, params = "la", {"tau": 1.0}

    def coefficients(self, counts):
        K = counts.size
        return np.ones(K), self.values["tau"] * _log_priors(counts), np.zeros(K)


class VectorScaling(Loss):
    """Vector scaling (Kini et al. 2021): CE(Delta z + tau log pi, k), Delta_j = (n_j/n_max)^gamma."""

    name, params = "vs", {"gamma": 0.2, "tau": 1.0}

    @property
    def shift_invariant(self) -> bool:
        return self.values["gamma"] == 0

    def coefficients(self, counts):
        K = counts.size
        return (counts / counts.max()) ** self.values["gamma"], self.values.get("tau", 0.0) * _log_priors(counts), \
            np.zeros(K)


class ClassTemperature(VectorScaling):
    """Class-dependent temperature (Ye et al. 2020): vector scaling with tau = 0."""

    name, params = "cdt", {"gamma": 0.3}


class LDAM(Loss):
    """LDAM margins (Cao et al. 2019, without the scale s): CE(z - m_k e_k, k), m_j = C / n_j^(1/4)."""

    name, params = "ldam", {"C": 0.5}

    def coefficients(self, counts):
        K = counts.size
        return np.ones(K), np.zeros(K), self.values["C"] / counts**0.25


class LabelSmoothing(Loss):
    """Label smoothing: (1 - eps) CE(z, k) + (eps/K) sum_j CE(z, j)."""

    name, params = "ls", {"eps": 0.1}

    def _check(self, key, value):
        if not (0.0 <= value < 1.0):
            raise ValueError(f"loss 'ls': eps must be in [0, 1), got {value!r}")

    @property
    def eps(self) -> float:
        return self.values["eps"]


LOSSES = {cls.name: cls for cls in (CrossEntropy, LogitAdjusted, VectorScaling, ClassTemperature, LDAM, LabelSmoothing)}


def parse_loss(spec) -> Loss:
    """A loss from its spec string: ``cross-entropy``, ``la:tau=1``, ``vs:gamma=0.2,tau=1``,
    ``cdt:gamma=0.3``, ``ldam:C=0.5``, ``ls:eps=0.1`` (parameters not given take those defaults)."""
    if isinstance(spec, Loss):
        return spec
    name, _, rest = str(spec).strip().partition(":")
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)} (e.g. la:tau=1)")
    params = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, value = item.partition("=")
        try:
            if not eq:
                raise ValueError
            params[key.strip()] = float(value)
        except ValueError:
            raise ValueError(f"loss {name!r}: cannot read {item!r}; write name=value, e.g. {LOSSES[name]().spec}") from None
    return LOSSES[name](**params)
