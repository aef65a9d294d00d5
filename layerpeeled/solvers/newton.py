"""Second-order polish of the reduced programs (constrained and penalized) on a factored form.

The reduced programs have few unknowns, yet proximal gradient needs tens of steps on them, and
thousands with a bias at large counts, where they are badly conditioned. Writing each |b_g| as
alpha_g gamma_g and M = A B^T (A, B of G columns) turns the nuclear norm into half a squared norm:

    sum_g |b_g| + |M|_*  =  min over factorisations of  (|alpha|^2 + |gamma|^2 + |A|^2 + |B|^2) / 2.

So the penalized program becomes smooth and unconstrained, f(x(theta)) + mu |theta|^2 / 2, and the
constrained one smooth on the sphere |theta|^2 = 2 tau. The logits are linear in x and x is
bilinear in theta, hence exact Hessians cost a few small products, and Newton's method (eigenvalues
floored, for the rotations of the factors and for saddles) converges in a handful of steps from
a loose proximal-gradient point. Zero blocks (collapsed or vanished classifiers) are
nondegenerate minimisers of the factored problem wherever strict complementarity holds, so no
face has to be guessed. Nothing here is trusted: the caller certifies the returned point with the
convex program's own gap and falls back to proximal gradient when the polish does not reach the
tolerance.
"""
from __future__ import annotations

import numpy as np

from .proxgrad import Outcome

MAX_STEPS = 40  # Newton steps before handing back to proximal gradient
# Proximal gradient runs first, to a loose relative gap (at most HANDOVER_STEPS steps), and Newton
# polishes from there: Barzilai-Borwein steps get there in tens of cheap steps and spare Newton steps
# (each a dense eigendecomposition over ~2G^2 unknowns, several of them from far off). Below
# MANY_GROUPS groups a loose hand-over (HANDOVER_FEW) is quickest; from MANY_GROUPS on, where a
# Newton step costs tens of proximal ones, a tight one (HANDOVER_MANY) leaves a single Newton step.
# Measured on 25 reduced problems (benchmarks/README.md). The penalized program with a bias is the
# exception: proximal gradient crawls there (thousands of steps), so Newton starts from the
# balanced optimum.
MANY_GROUPS = 10
HANDOVER_STEPS = 300
HANDOVER_FEW, HANDOVER_MANY = 1e-3, 1e-6
WARM_STEPS = 8  # Newton steps tried from a warm start before starting afresh
CERTIFY_BELOW = 1e-3  # a Newton step whose relative decrement exceeds this is not worth certifying after


class FactoredProgram:
    """f(x) over the reduced x = (b, M.ravel(), beta) with its exact Hessian, and the factored
    variables theta = (alpha, gamma, A, B, beta) with b[free] = alpha * gamma, M = A B^T.

    ``derivatives(x) -> (f, grad)`` over all of x; ``logits(x)`` the stacked distinct row logits
    (d, others.ravel()), linear in x; ``coef`` the loss's map of them (see :mod:`layerpeeled.losses`);
    ``decay``: the Hessian diagonal of the bias penalty."""

    def __init__(self, derivatives, logits, loss, omega, mult, coef, G, free, hold_M, n_bias, decay=None):
        self.derivatives, self.loss, self.omega, self.mult, self.coef = derivatives, loss, omega, mult, coef
        self.G, self.free, self.nf = G, np.asarray(free, bool), int(np.sum(free))
        self.r = 0 if hold_M else G
        self.nb = n_bias
        self.n = G + G * G + n_bias
        J = np.stack([logits(e) for e in np.eye(self.n)], axis=1)  # (G + G^2, n): probed once
        rows = np.concatenate([np.arange(G)[:, None], G + np.arange(G * G).reshape(G, G)], axis=1)
        self.Jg = J[rows]  # (G, 1 + G, n): the logits of a class of group g, target first
        self.decay = np.zeros(self.n) if decay is None else np.concatenate([np.zeros(G + G * G), decay])
        self.n_theta = 2 * self.nf + 2 * G * self.r + n_bias
        self.factor = np.r_[np.ones(self.n_theta - n_bias), np.zeros(n_bias)]  # coordinates in the norm
        self._jacobian_pattern()

    def _jacobian_pattern(self):
        """Where the entries of d x / d theta and of the chain rule's bilinear part sit (fixed)."""
        G, r, nf = self.G, self.r, self.nf
        J = np.zeros((self.n, self.n_theta))
        J[G + G * G:, self.n_theta - self.nb:] = np.eye(self.nb)
        self._J0 = J  # the bias's constant entries; the others are filled per call
        self._free_rows = np.flatnonzero(self.free)  # b_g = alpha_g gamma_g for these groups
        i, j, k = (a.ravel() for a in np.meshgrid(np.arange(G), np.arange(G), np.arange(r), indexing="ij"))
        m = G + i * G + j  # M[i, j] = sum_k A[i, k] B[j, k]
        self._dA = (m, 2 * nf + i * r + k, j * r + k)  # d M[i, j] / d A[i, k] = B[j, k]
        self._dB = (m, 2 * nf + G * r + j * r + k, i * r + k)  # d M[i, j] / d B[j, k] = A[i, k]
        self._pair = i * G + j  # the bilinear part pairs A[i, k] with B[j, k] through g_M[i, j]

    def split(self, theta):
        nf, G, r = self.nf, self.G, self.r
        a, c, rest = theta[:nf], theta[nf:2 * nf], theta[2 * nf:]
        return a, c, rest[:G * r].reshape(G, r), rest[G * r:2 * G * r].reshape(G, r), rest[2 * G * r:]

    def x_of(self, theta):
        alpha, gamma, A, B, beta = self.split(theta)
        b = np.zeros(self.G)
        b[self.free] = alpha * gamma
        M = A @ B.T if self.r else np.zeros((self.G, self.G))
        return np.concatenate([b, M.ravel(), beta])

    def theta_of(self, x):
        """A balanced factorisation of x (so |theta|^2 / 2 = |b|_1 + |M|_*)."""
        G = self.G
        b, M, beta = x[:G][self.free], x[G:G + G * G].reshape(G, G), x[G + G * G:]
        parts = [np.sqrt(np.abs(b)), np.sign(b) * np.sqrt(np.abs(b))]
        if self.r:
            U, s, Vh = np.linalg.svd(M)
            parts += [(U * np.sqrt(s)).ravel(), (Vh.T * np.sqrt(s)).ravel()]
        return np.concatenate(parts + [beta])

    def hessian_x(self, x):
        u = self.Jg @ x
        H = self.loss.row_hessians(u[:, 0], u[:, 1:], self.mult, self.coef) * self.omega[:, None, None]
        J = self.Jg.reshape(-1, self.n)  # sum over groups of Jg^T H Jg as one product (not a 4-index einsum)
        return J.T @ (H @ self.Jg).reshape(-1, self.n) + np.diag(self.decay)

    def jacobian(self, theta):
        """d x / d theta, (n, n_theta)."""
        alpha, gamma, A, B, _ = self.split(theta)
        nf, J, rows = self.nf, self._J0.copy(), self._free_rows
        J[rows, np.arange(nf)] = gamma
        J[rows, nf + np.arange(nf)] = alpha
        if self.r:
            J[self._dA[:2]] = B.ravel()[self._dA[2]]
            J[self._dB[:2]] = A.ravel()[self._dB[2]]
        return J

    def curvature(self, g):
        """sum_i g_i d^2 x_i / d theta^2: the bilinear part of the chain rule."""
        G, nf = self.G, self.nf
        C = np.zeros((self.n_theta, self.n_theta))
        i = np.arange(nf)
        C[i, nf + i] = C[nf + i, i] = g[:G][self.free]
        if self.r:
            v = g[G:G + G * G][self._pair]
            C[self._dA[1], self._dB[1]] = C[self._dB[1], self._dA[1]] = v
        return C

    def model(self, theta):
        """f, its gradient and Hessian in theta."""
        x = self.x_of(theta)
        f, g = self.derivatives(x)
        return (f, *self.chain(theta, x, g))

    def chain(self, theta, x, g):
        """Gradient and Hessian in theta from x = x_of(theta) and the gradient g in x."""
        J = self.jacobian(theta)
        return J.T @ g, J.T @ self.hessian_x(x) @ J + self.curvature(g)


def _project_out(H, u):
    """P H P for P = I - u u^T (u a unit vector), in rank-one updates instead of two products."""
    Hu = H @ u
    return H - np.outer(u, Hu) - np.outer(Hu, u) + float(u @ Hu) * np.outer(u, u)


def _newton_step(grad, hess):
    """-H^{-1} g with |eigenvalues| floored: a descent direction even off convexity, and the
    rotations of the factors (zero curvature, zero gradient) left alone."""
    w, V = np.linalg.eigh(0.5 * (hess + hess.T))
    floor = 1e-12 * max(float(np.abs(w).max()), 1e-300)
    return -V @ ((V.T @ grad) / np.maximum(np.abs(w), floor))


def polish(fp: FactoredProgram, x, certify, *, tol, mu=None, radius=None, max_steps=None, start=None):
    """Newton on the factored program from ``x``, until ``certify(x) -> (F, gap, x')`` (x' the
    point it certified, x itself or its projection) gives gap <= tol F. ``start``: certify(x) where
    the caller has it already.

    Penalized (``mu``): minimise f + mu |theta|^2 / 2. Constrained (``radius`` tau): minimise log f
    on |theta|^2 = 2 tau, stepping in the sphere's tangent space. A point is certified once the
    Newton decrement of the step that reached it fell below :data:`CERTIFY_BELOW` (relative), and
    at the end. Returns (F, gap, x', steps) of the best certified point, the start included."""
    theta = fp.theta_of(x)
    if radius is not None:
        theta *= np.sqrt(2 * radius) / max(np.linalg.norm(theta), 1e-300)
    best = (*(certify(x) if start is None else start), 0)
    penalty = 0.0 if mu is None else mu

    def evaluate(th):
        """(merit, f, grad of f in x, x) at theta."""
        x_th = fp.x_of(th)
        f, g = fp.derivatives(x_th)
        return (f + 0.5 * penalty * float(fp.factor @ th**2) if radius is None else np.log(f)), f, g, x_th

    here, certified = evaluate(theta), True
    limit = MAX_STEPS if max_steps is None else max_steps
    for step in range(1, limit + 1):
        if certified and best[1] <= tol * abs(best[0]):
            break
        m0, f, gx, x_th = here
        g, H = fp.chain(theta, x_th, gx)
        if radius is None:
            g = g + penalty * fp.factor * theta
            d = _newton_step(g, H + penalty * np.diag(fp.factor))
        else:  # Riemannian Newton on the sphere for log f (same minimisers; near-linear where f ~ e^-margin)
            g, H = g / f, H / f - np.outer(g, g) / f**2
            u = theta / np.linalg.norm(theta)
            lam = -float(u @ g) / np.linalg.norm(theta)
            g = g - u * (u @ g)
            d = _newton_step(g, _project_out(H + lam * np.eye(theta.size), u) + np.outer(u, u))
            d = d - u * (u @ d)
        t = 1.0
        while t > 1e-8:
            trial = theta + t * d
            if radius is not None:
                trial *= np.sqrt(2 * radius) / np.linalg.norm(trial)
            there = evaluate(trial)
            if there[0] <= m0 + 1e-4 * t * float(g @ d) or there[0] <= m0 + 1e-15 * abs(m0):
                break
            t *= 0.5
        else:
            break  # no decrease along the Newton direction: leave it to the caller
        theta, here = trial, there
        decrement = -float(g @ d) / (1.0 if radius is not None else max(abs(m0), 1e-300))
        certified = decrement <= CERTIFY_BELOW or step == limit
        if certified:
            best = _better(best, certify(here[3]), step)
    if not certified:
        best = _better(best, certify(here[3]), step)
    return best


def _better(best, cert, step):
    F, gap, x_cert = cert
    return (F, gap, x_cert, step) if gap < best[1] else best


def warm_start(warm: dict | None):
    """The start a run of nearby solves carries (``warm``: a dict passed from solve to solve, or None)."""
    return None if warm is None else warm.get("x")


def keep_warm(warm: dict | None, result) -> None:
    """Remember a reduced solve's solution as the next solve's start."""
    if warm is not None and "x" in result.state:
        warm["x"] = result.state["x"]


def first_order_then_newton(run, fp: FactoredProgram, certify, *, tol, warm=None, first_steps=None, **form):
    """Proximal gradient to a loose gap (``run(x0, tol, max_iter) -> Outcome``, x0 None for its own
    start, max_iter None for its own limit; 0 steps: the start certified as it is), Newton polish to
    ``tol``, and proximal gradient again from the polished point if the polish fell short.
    ``first_steps``: the most proximal steps before Newton (0: Newton from the start; None:
    :data:`HANDOVER_STEPS`). ``warm``: a nearby solution (a neighbour in a sweep or a bracket) to
    polish first, skipping the first phase when that suffices; ignored unless it has this program's
    shape. Returns the outcome and the number of Newton steps."""
    if warm is not None and np.shape(warm) == (fp.n,):  # a start of another shape is no neighbour: ignored
        F, gap, x, steps = polish(fp, warm, certify, tol=tol, max_steps=WARM_STEPS, **form)
        if gap <= tol * abs(F):
            return _snapped(run, x, F, gap, 0, tol), steps
    handover = HANDOVER_FEW if fp.G < MANY_GROUPS else HANDOVER_MANY
    out = run(None, max(tol, handover), HANDOVER_STEPS if first_steps is None else first_steps)
    if out.converged and out.gap <= tol * abs(out.value):
        return out, 0
    F, gap, x, steps = polish(fp, out.x, certify, tol=tol, start=(out.value, out.gap, out.x), **form)
    if gap <= tol * abs(F):
        return _snapped(run, x, F, gap, out.iterations, tol), steps
    again = run(x, tol, None)
    return Outcome(again.x, again.value, again.gap, out.iterations + again.iterations, again.converged), steps


def _snapped(run, x, F, gap, iterations, tol):
    """One proximal step from Newton's point: blocks that are zero at the optimum come out exactly
    zero (Newton only drives them towards it), as the proximal solvers return them; kept when it
    is certified to ``tol`` too."""
    snap = run(x, tol, 1)
    if snap.gap <= tol * abs(snap.value):
        return Outcome(snap.x, snap.value, snap.gap, iterations + 1, True)
    return Outcome(x, F, gap, iterations, True)
