"""Losses convex in the logits, written for rows with repeated entries.

A row is a target logit t and other logits v_j, each appearing m_j times (m_j = 1 for a plain
K x K logit matrix with the diagonal given multiplicity 0; m_j = class counts of a group in the
symmetry-reduced program). One formula thus serves the full and the reduced solvers.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
from array_api_compat import array_namespace, is_numpy_array


def namespace(x):
    """numpy itself for numpy arrays (no wrapper overhead on tiny problems), else the array-API one."""
    return np if is_numpy_array(x) else array_namespace(x)


class Loss(ABC):
    """A loss L(z, k) convex in the logits z. Subclasses give values and gradients on repeated rows."""

    name: str = "loss"
    shift_invariant: bool = False  # L(z + c 1, k) = L(z, k) for every c

    @abstractmethod
    def rows(self, target, others, mult):
        """Per-row loss and gradients for rows (target, others with multiplicities ``mult``).

        Returns ``(loss, d_target, d_others)``; ``d_others`` is the derivative with respect to each
        distinct value, i.e. already summed over its multiplicity.
        """

    @abstractmethod
    def row_hessians(self, target, others, mult):
        """Per-row Hessians with respect to (target, each distinct other value), shape
        (rows, 1 + C, 1 + C), index 0 the target (numpy only: for second-order steps)."""

    @abstractmethod
    def cvxpy_row(self, logits, k):
        """The loss of one logit row with target class k as a cvxpy expression (for the SDP)."""


class CrossEntropy(Loss):
    """Softmax cross-entropy, evaluated in a form that keeps full relative precision down to ~1e-300.

    With D = v - t and m = max(0, max D), the loss is m + log1p(expm1(-m) + sum mult exp(D - m)):
    no cancellation when the loss is tiny (well-separated logits), no overflow when it is huge.
    """

    name = "cross-entropy"
    shift_invariant = True  # unchanged when every logit moves by the same amount (a bias can be centred)

    def rows(self, target, others, mult):
        xp = namespace(others)
        live = mult > 0
        D = xp.where(live, others - target[:, None], 0.0 * others)
        m = xp.max(D, axis=1)
        m = xp.maximum(m, 0.0 * m)  # the target's own offset is 0
        e = mult * xp.exp(D - m[:, None])  # dead entries: mult 0 times a finite number
        s = xp.sum(e, axis=1)
        loss = m + xp.log1p(xp.expm1(-m) + s)
        p = e / (xp.exp(-m) + s)[:, None]
        return loss, -xp.sum(p, axis=1), p

    def row_hessians(self, target, others, mult):
        """diag(q) - q q^T for the softmax q over (target, others with their multiplicities); the
        target's own entry as q_t (1 - q_t) = q_t sum q_j, exact even when the loss is ~1e-300."""
        _, _, p = self.rows(target, others, mult)
        rest = p.sum(axis=1)
        q = np.concatenate([(1.0 - rest)[:, None], p], axis=1)
        H = -q[:, :, None] * q[:, None, :]
        i = np.arange(q.shape[1])
        H[:, i, i] += q
        H[:, 0, 0] = q[:, 0] * rest
        return H

    def cvxpy_row(self, logits, k):
        import cvxpy as cp

        return cp.log_sum_exp(logits) - logits[k]

    def __repr__(self) -> str:
        return "CrossEntropy()"


LOSSES = {"cross-entropy": CrossEntropy}  # loss names accepted wherever a loss is chosen by name
