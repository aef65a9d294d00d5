"""Solvers of the penalized (weight-decay) LPM through its convex form (SPEC §1):

    min_{Y, b}  sum_k (n_k/N) L(z_k + b, k) + mu |Y|_* + (lambda_b/2)|b|^2,   Y = D^{1/2} Z, mu = sqrt(lambda_W lambda_H),

by proximal gradient (singular values soft-thresholded), either in the symmetry-reduced
coordinates of :mod:`.reduced` (cost independent of K) or densely on K x K matrices, with cvxpy
as the independent reference.

Certificate. With h the smooth part (loss and bias penalty), F = h + mu|Y|_* and any optimum
(Y*, b*):  F - F* <= <grad_Y h, Y - Y*> + mu|Y|_* - mu|Y*|_* + <grad_b h, b - b*>.
Losses and penalties are >= 0, so mu|Y*|_* <= F* <= F =: mu tau, and the Y part is at most
<G, Y> + mu|Y|_* + tau max(0, sigma_max(G) - mu). For the bias, cross-entropy is unchanged when
every logit moves together, so b* can be taken with sum 0; class j's loss alone then bounds
b*_i - b*_j <= C_j = log(expm1(F/pi_j)) + 2 tau/sqrt(n_j) (|z*_jk| <= tau/sqrt(n_j)), hence
|b*_i| <= B = max_j C_j (and <= sqrt(2F/lambda_b) for a decayed bias); the bias part is at most
|grad_b h|_1 (|b|_inf + B). Every term vanishes at an optimum, so the bound closes. Without a bias
the dense solver also evaluates this bound at the flattened dual point (:mod:`.certificate`),
which is second order in the distance to the optimum where the bound at the iterate is first order.
With a bias it evaluates it, where the bias part dominates, at the logits whose bias is optimal
for the iterate's Y (:meth:`PenalizedDense.balanced_gap`), where that part vanishes.
"""
from __future__ import annotations

import math
import time

import numpy as np

from .proxgrad import proximal_gradient
from .newton import FactoredProgram, first_order_then_newton
from .certificate import flattened_first, flattened_logits, gap_by_sigma_max, least_dual_gap, softmax_map
from .nuclear import FlattenedSchedule, TrackedShrink, dense_check_every, objective_for
from .products import matmul
from .reduced import BlockLogits, ReducedProgram, group_row_scale
from .result import SolveResult

EPS = 2.0**-52
BIAS_NEWTON = 3  # Newton steps on the bias for the balanced dual point (quadratic from a near-optimal bias)


def _log_expm1(x: float) -> float:
    """log(e^x - 1) without overflow for large x."""
    return x + math.log(-math.expm1(-x)) if x > 0 else -math.inf


def bias_bound(problem, F: float, tau: float) -> float:
    """B >= |b*_k| for every class at a sum-zero optimum (see the module docstring; a loss's offsets
    o, target margins m and smoothing eps widen it: class j's loss is at least (1 - eps) CE(u, j))."""
    coef = problem.loss.coefficients(problem.counts)
    spread, margin = (0.0, np.zeros(problem.K)) if coef is None else (float(np.ptp(coef[1])), np.abs(coef[2]))
    keep = 1.0 - problem.loss.eps
    C = max(_log_expm1(F / (w * keep)) + 2 * tau / math.sqrt(n) + spread + m
            for w, n, m in zip(problem.weights, problem.counts, margin))
    if problem.bias == "decayed":
        C = min(C, math.sqrt(2 * F / problem.lambda_b))
    return C


def penalized_gap(problem, F: float, inner: float, nuc: float, dual: float, g_bias=None, bias=None) -> float:
    """Upper bound on F - F* from <G, Y>, |Y|_*, sigma_max(G) and the bias gradient (module docstring),
    padded by its own rounding."""
    mu = problem.mu
    tau = F / mu
    gap = inner + mu * nuc + tau * max(0.0, dual - mu)
    size = abs(inner) + mu * nuc + tau * dual + abs(F)
    if g_bias is not None:
        slack = bias_slack(problem, F, g_bias, bias)
        gap, size = gap + slack, size + slack
    return max(gap, 0.0) + 16 * EPS * size


def bias_slack(problem, F: float, g_bias, bias) -> float:
    """|g_bias|_1 (|bias|_inf + B) >= <g_bias, bias - b*>: the bias's part of the bound (module docstring)."""
    return float(np.abs(g_bias).sum()) * (float(np.abs(bias).max(initial=0.0)) + bias_bound(problem, F, F / problem.mu))


def _check_bias(problem):
    if problem.bias != "none" and not getattr(problem.loss, "shift_invariant", False):
        raise ValueError(f"a bias needs a loss unchanged when all logits move together; {problem.loss.spec} is not")


def _soft(v, t):
    return np.sign(v) * np.maximum(np.abs(v) - t, 0.0)


class PenalizedReduced:
    """The reduced program of the penalized form over x = (b, M.ravel(), beta): (b, M) the block
    coordinates of Y = D^{1/2} Z (see :mod:`.reduced`), beta the per-group bias (absent without bias)."""

    def __init__(self, problem, collapsed=(), zero_between: bool = False):
        _check_bias(problem)
        self.problem = problem
        self.prog = ReducedProgram(problem, collapsed)
        self.zero_between = zero_between  # hold M = 0 (with every b_g collapsed but the first: a vanishing face)
        self.G = self.prog.G
        self.scale = group_row_scale(problem)
        self.has_bias = problem.bias != "none"
        self.decay = (problem.lambda_b or 0.0) * self.prog.K  # lambda_b/2 sum_g K_g beta_g^2

    def split(self, x):
        G = self.G
        return x[:G], x[G:G + G * G].reshape(G, G), x[G + G * G:]

    def _logit_coordinates(self, x):
        """(z, beta): the block coordinates of Z itself (Y's rows divided by their scale), and the bias."""
        bp, Mp, beta = self.split(x)
        return np.concatenate([bp / self.scale, (Mp / self.scale[:, None]).ravel()]), beta

    def derivatives(self, x):
        """Smooth part and its gradient in every coordinate (held ones included): (f, g_b, g_M, g_beta)."""
        z, beta = self._logit_coordinates(x)
        if self.has_bias:
            f, gb, gM, g_beta = self.prog.derivatives(z, beta)
            f += 0.5 * float(self.decay @ beta**2)
            g_beta = g_beta + self.decay * beta
        else:
            (f, gb, gM), g_beta = self.prog.derivatives(z), beta
        return f, gb / self.scale, gM / self.scale[:, None], g_beta

    def value_grad(self, x):
        f, gb, gM, g_beta = self.derivatives(x)
        g = self.prog.free_gradient(gb, 0.0 * gM if self.zero_between else gM)
        return f, np.concatenate([g, g_beta])

    def nuclear(self, x) -> float:
        bp, Mp, _ = self.split(x)
        return float(np.abs(bp).sum() + np.linalg.svd(Mp, compute_uv=False).sum())

    def prox(self, v, step):
        bp, Mp, beta = self.split(v)
        t = self.problem.mu * step
        bp = np.where(self.prog.free, _soft(bp, t), 0.0)
        if self.zero_between:
            Mp = 0.0 * Mp
        else:
            U, s, Vh = np.linalg.svd(Mp)
            Mp = (U * np.maximum(s - t, 0.0)) @ Vh
        return np.concatenate([bp, Mp.ravel(), beta])

    def total(self, x, f):
        return f + self.problem.mu * self.nuclear(x)

    def gap(self, x, f, g):
        G = self.G
        F = self.total(x, f)
        dual = self.prog.dual_norm(g[:G + G * G])
        gb, beta = g[G + G * G:], self.centred(x[G + G * G:])
        return penalized_gap(self.problem, F, float(g[:G + G * G] @ x[:G + G * G]), self.nuclear(x), dual,
                             gb if self.has_bias else None, beta)

    def centred(self, beta):
        """The bias moved to class mean 0: the same objective (cross-entropy ignores a common shift),
        and what the certificate and the answer use."""
        K = self.prog.K
        return beta - float(K @ beta) / K.sum() if beta.size else beta

    def start(self):
        """The balanced optimum at the mean count n = N/K (Zhu et al.: Z = rho (I - 11^T/K) with
        rho = log((1 - (K-1) q)/q), q = sqrt(lambda_W lambda_H n); at least rho = 1, as zero is a
        saddle of the factored program), written with this problem's row scale and restricted to the
        face held: a start of the right scale for the polish."""
        prog, K = self.prog, float(self.prog.K.sum())
        q = self.problem.mu * math.sqrt(float(self.problem.counts.sum()) / K)
        rho = max(math.log((1 - (K - 1) * q) / q) if q * K < 1 else 0.0, 1.0)  # never the saddle at 0
        b = np.where(prog.free, (prog.K - 1) * self.scale * rho, 0.0)
        M = 0.0 * prog.sqrtKK if self.zero_between else \
            self.scale[:, None] * rho * (np.eye(self.G) - prog.sqrtKK / K)
        return np.concatenate([b, M.ravel(), np.zeros(self.G if self.has_bias else 0)])

    def certify(self, x):
        """(value, certified gap, x) of the (restricted) penalized program at x."""
        f, g = self.value_grad(x)
        return self.total(x, f), self.gap(x, f, g), x

    def logits(self, x):
        """The stacked distinct row logits (see :meth:`ReducedProgram.row_logits`), linear in x."""
        z, beta = self._logit_coordinates(x)
        d, others = self.prog.row_logits(z, beta if self.has_bias else None)
        return np.concatenate([d, others.ravel()])

    def factored(self) -> FactoredProgram:
        def derivatives(x):
            f, gb, gM, g_beta = self.derivatives(x)
            return f, np.concatenate([gb, gM.ravel(), g_beta])

        n_bias = self.G if self.has_bias else 0
        return FactoredProgram(derivatives, self.logits, self.problem.loss, self.prog.omega, self.prog.mult,
                               self.prog.coef, self.G, self.prog.free, hold_M=self.zero_between, n_bias=n_bias,
                               decay=self.decay if self.has_bias else None)

    def lipschitz(self) -> float:
        return float((self.prog.omega / self.scale**2).max() + (self.decay.max() if self.has_bias else 0.0))


def solve_penalized_reduced(problem, *, tol: float = 1e-9, max_iter: int = 200000, callback=None,
                            collapsed=(), zero_between: bool = False, warm=None) -> SolveResult:
    """The penalized model in the symmetry-reduced coordinates: G + G^2 (+ G bias) unknowns, any K.

    ``collapsed`` (groups whose classifiers are held identical) and ``zero_between`` (M held at 0)
    restrict it to the faces on which collapse and vanishing onsets are located; the certificate
    then refers to the restricted program, and ``state`` holds the full gradient for their margins.
    ``warm``: the ``state["x"]`` of a nearby solve to start from."""
    start = time.perf_counter()
    prog = PenalizedReduced(problem, collapsed, zero_between)

    def run(x0, goal, steps):
        x0 = prog.start() if x0 is None else x0
        return proximal_gradient(x0, prog.value_grad, prog.prox, prog.gap, lipschitz=prog.lipschitz(), tol=goal,
                                 max_iter=max_iter if steps is None else steps, callback=callback, check_every=2,
                                 total=prog.total)

    out, newton_steps = first_order_then_newton(run, prog.factored(), prog.certify, tol=tol, mu=problem.mu, warm=warm,
                                                first_steps=0 if prog.has_bias else None)
    bp, Mp, beta = prog.split(out.x)
    beta = prog.centred(beta)
    sol = BlockLogits(problem, bp, Mp)
    _, gb, gM, _ = prog.derivatives(out.x)
    bias = np.zeros(problem.K)
    for value, group in zip(beta, problem.groups):
        bias[list(group.classes)] = value
    return SolveResult(problem=problem, value=out.value, gap=out.gap, method="reduced",
                       status="optimal" if out.converged else "max_iter", iterations=out.iterations,
                       seconds=time.perf_counter() - start, solution=sol, bias=bias if prog.has_bias else None,
                       info={"blocks": {k: v.tolist() for k, v in sol.blocks.items()}, "newton_steps": newton_steps},
                       state={"b_gradient": gb.tolist(), "M_gradient_norm": float(np.linalg.norm(gM, 2)), "x": out.x})


class PenalizedDense:
    """The penalized form over x = (Y.ravel(), s b): K x K weighted logits and the class biases (scaled)."""

    def __init__(self, problem, tol: float | None = None, check_every: int | None = None):
        _check_bias(problem)
        self.problem = problem
        self.K = problem.K
        self.scale = problem.row_scale
        self.has_bias = problem.bias != "none"
        self.objective = objective_for(problem)
        self.tol = tol  # inside the solver: the stopping test's relative gap (a cheaper sigma_max settles it)
        self._nuclear = (None, 0.0)
        self._svd = None  # the latest proximal point and the thin SVD of its Y
        self.shrink = TrackedShrink(problem.K)
        self.softmax = softmax_map(problem)
        self.check_every = dense_check_every(problem.K, check_every)
        self.schedule = FlattenedSchedule(self.check_every)
        # The bias moves every logit of its class: its curvature (up to 1/2 + lambda_b) dwarfs that of
        # Y (up to max w_k/n_k / 2, ~1/(2N)), so one step size would crawl in Y (11 000 steps at
        # K = 200). x holds s*b, s chosen so that both blocks take the same step; split and pack
        # convert. Along a run the bias's curvature stays well below its bound: s at 0.2-0.3 times
        # the value that equalises the bounds took 1.3-5x fewer steps on two-level K = 10, 50 and
        # long-tailed K = 200, 500 problems with decayed and free biases (benchmarks/README.md).
        self.lipschitz = float((problem.weights / problem.counts).max())
        self.bias_scale = 0.25 * math.sqrt((1.0 + 2.0 * (problem.lambda_b or 0.0)) / self.lipschitz)

    def split(self, x):
        """(Y, b) from the solver's x."""
        K = self.K
        return x[:K * K].reshape(K, K), x[K * K:] / self.bias_scale

    def pack(self, Y, b):
        """The solver's x from (Y, b)."""
        return np.concatenate([Y.ravel(), b * self.bias_scale])

    def value_grad(self, x):
        Y, b = self.split(x)
        logits = Y / self.scale[:, None] + (b[None, :] if self.has_bias else 0.0)
        f, G = self.objective(logits)
        if not self.has_bias:
            return f, (G / self.scale[:, None]).ravel()
        lb = self.problem.lambda_b
        g_bias = G.sum(0) + lb * b  # d/db; the solver's coordinate is s b, so its gradient is this / s
        return f + 0.5 * lb * float(b @ b), np.concatenate([(G / self.scale[:, None]).ravel(), g_bias / self.bias_scale])

    def prox(self, v, step):
        Y, b = self.split(v)
        threshold = self.problem.mu * step
        shrunk, *svd = self.shrink(Y, lambda s: np.maximum(s - threshold, 0.0))
        x = self.pack(shrunk, b)
        self._svd = (x, *svd)  # for the flattened bound at x
        return x

    def nuclear_norm(self, x) -> float:
        """|Y|_*, remembered for the last x (the solver asks for the gap and the total of the same
        iterate). At a proximal point, made of pairs (u_i, s_i, v_i), it is sum s_i |u_i| |v_i| (the
        pairs' norms absorb their rounding; a K x K SVD per step was half a K = 500 solve's time),
        elsewhere the sum of singular values."""
        if self._nuclear[0] is not x:
            if self._svd is not None and self._svd[0] is x:
                _, U, kept, V = self._svd
                nuc = float(kept @ (np.linalg.norm(U, axis=0) * np.linalg.norm(V, axis=0)))
            else:
                nuc = float(np.linalg.svd(self.split(x)[0], compute_uv=False).sum())
            self._nuclear = (x, nuc)
        return self._nuclear[1]

    def total(self, x, f):
        return f + self.problem.mu * self.nuclear_norm(x)

    def gap(self, x, f, g):
        Y, b = self.split(x)
        K = self.K
        GY, gb = g[:K * K].reshape(K, K), g[K * K:] * self.bias_scale  # gradients in Y and in b
        nuc = self.nuclear_norm(x)
        F = f + self.problem.mu * nuc
        inner = float((GY * Y).sum())
        b = b - b.mean() if b.size else b  # cross-entropy ignores a common shift: centre as the bound assumes
        target = None if self.tol is None else self.tol * abs(F)
        gap_of = lambda sigma: penalized_gap(  # noqa: E731
            self.problem, F, inner, nuc, sigma, gb if self.has_bias else None, b)
        if self.has_bias:
            classic = gap_by_sigma_max(gap_of, GY, target)
            if target is None or classic <= target or classic - bias_slack(self.problem, F, gb, b) > target:
                return classic  # settled, or the Y part alone fails it: the balanced point cannot help
            return min(classic, self.balanced_gap(Y, b, f, F, nuc, target))
        if not self.schedule.due(x, self._svd):
            return gap_by_sigma_max(gap_of, GY, target)
        return flattened_first(lambda: self.flattened_gap(Y, f, GY, F, nuc, target), gap_of, GY, self._svd[3], target)

    def balanced_gap(self, Y, b, f: float, F: float, nuc: float, target) -> float:
        """The gap at the dual point of the logits Z' = Y/S + 1 b'^T whose bias b' is optimal for Y
        (BIAS_NEWTON Newton steps from b). Where the bias part dominates the bound at the iterate
        (first order in its gradient), this one drops it: by convexity, for the loss gradient G' at
        Z' and c' its column sums, F* >= h(Z') - <G', Z'> - tau max(0, sigma_max(G'/S) - mu)
        + min_b <c', b> + (lambda_b/2)|b|^2, the last term -|c'|^2/(2 lambda_b) for a decayed bias and
        at least -|c'|_1 B for a free one (c' sums to 0: a centred b* suffices). Any b' gives a valid
        bound; the optimal one makes c' + lambda_b b' = 0."""
        K, w, lb = self.K, self.problem.weights, self.problem.lambda_b or 0.0
        scale, labels, _ = self.softmax
        Z = Y / self.scale[:, None]
        for step in range(BIAS_NEWTON + 1):
            loss, G = self.objective(Z + b[None, :])
            c = G.sum(0)
            if step == BIAS_NEWTON or not np.isfinite(loss):
                break
            P = G / scale + labels  # the softmax rows; the loss's Hessian in b is diag(P^T w) - P^T diag(w) P
            H = np.diag(w @ P) - matmul(P.T, w[:, None] * P)
            # a free bias moves all classes together at no cost: the flat direction 1 gets curvature
            H += lb * np.eye(K) if lb else float(np.trace(H)) / K**2 * np.ones((K, K))
            try:
                b = b - np.linalg.solve(H, c + lb * b)
            except np.linalg.LinAlgError:  # classes no example gives weight to (softmax ~0): least squares
                b = b - np.linalg.lstsq(H, c + lb * b, rcond=None)[0]
        if not np.isfinite(loss):
            return math.inf
        inner = float(np.vdot(G, Z + b[None, :])) + f - loss
        bias_part = float(c @ c) / (2 * lb) if lb else bias_slack(self.problem, F, c, 0.0)
        return gap_by_sigma_max(lambda sigma: penalized_gap(self.problem, F, inner + bias_part, nuc, sigma),
                                G / self.scale[:, None], target)

    def flattened_gap(self, Y, f: float, GY, F: float, nuc: float, target) -> float:
        """The gap at the flattened dual point (:mod:`.certificate`; without a bias): by convexity and
        |Y*|_* <= tau, F* >= h(Y') - <grad h(Y'), Y'> - tau max(0, sigma_max(grad h(Y')) - mu) for any
        Y', so :func:`penalized_gap` applies with <grad h(Y'), Y'> + h(Y) - h(Y') for <G, Y>."""
        candidates = flattened_logits(Y / self.scale[:, None], GY * self.scale[:, None], *self._svd[1:], self.softmax,
                                      penalty=self.problem.mu, row_scale=self.scale)
        return least_dual_gap(self.objective, candidates, f,
                              lambda inner, sigma, fp: penalized_gap(self.problem, F, inner, nuc, sigma), target,
                              row_scale=self.scale)


def solve_penalized_dense(problem, *, tol: float = 1e-9, max_iter: int = 50000, callback=None,
                          check_every: int | None = None, x0=None, bias0=None) -> SolveResult:
    """The penalized model on K x K matrices (any counts), one symmetric eigendecomposition per step
    (the gap, checked every ``check_every`` steps, adds singular values: every 10th step past K = 100).

    ``x0``: K x K starting logits (default 0); ``bias0``: a starting bias, where the problem has one
    (default 0)."""
    start = time.perf_counter()
    prog = PenalizedDense(problem, tol, check_every)
    K = problem.K
    Z0 = np.zeros((K, K)) if x0 is None else np.asarray(x0, dtype=float)
    if Z0.shape != (K, K):
        raise ValueError(f"x0 must be a {K} x {K} logit matrix, got shape {Z0.shape}")
    b0 = np.zeros(K) if bias0 is None else np.asarray(bias0, dtype=float)
    if prog.has_bias and b0.shape != (K,):
        raise ValueError(f"bias0 must hold {K} class biases, got shape {b0.shape}")
    x0 = prog.pack(prog.scale[:, None] * Z0, b0 if prog.has_bias else np.zeros(0))
    out = proximal_gradient(x0, prog.value_grad, prog.prox, prog.gap, lipschitz=prog.lipschitz, tol=tol,
                            max_iter=max_iter, callback=callback, check_every=prog.check_every,
                            total=prog.total)
    Y, b = prog.split(out.x)
    b = b - b.mean() if b.size else b
    return SolveResult.from_logits(problem, Y / prog.scale[:, None], value=out.value, gap=out.gap,
                                   method="first-order-numpy", status="optimal" if out.converged else "max_iter",
                                   iterations=out.iterations, seconds=time.perf_counter() - start,
                                   bias=b.copy() if prog.has_bias else None)


def solve_penalized_cvxpy(problem, *, solver: str = "CLARABEL", tol: float = 1e-9, verbose: bool = False) -> SolveResult:
    """The convex form written directly in cvxpy (nuclear norm of D^{1/2} Z): the independent reference.
    Its certificate is computed like the others', at the solution cvxpy returns."""
    import cvxpy as cp

    start = time.perf_counter()
    K, w, S = problem.K, problem.weights, problem.row_scale
    Z = cp.Variable((K, K))
    b = cp.Variable(K) if problem.bias != "none" else None
    logits = [Z[k, :] + (b if b is not None else 0) for k in range(K)]
    objective = sum(w[k] * problem.loss.cvxpy_row(logits[k], k, problem.counts) for k in range(K)) + problem.mu * cp.normNuc(
        np.diag(S) @ Z)
    if b is not None and problem.bias == "decayed":
        objective = objective + 0.5 * problem.lambda_b * cp.sum_squares(b)
    prob = cp.Problem(cp.Minimize(objective))
    opts = {"CLARABEL": {"tol_gap_abs": tol, "tol_gap_rel": tol, "tol_feas": tol},
            "SCS": {"eps_abs": max(tol, 1e-7), "eps_rel": max(tol, 1e-7), "max_iters": 200000}}[solver.upper()]
    prob.solve(solver=solver.upper(), verbose=verbose, **opts)
    if Z.value is None:
        raise RuntimeError(f"{solver} failed on {problem!r}: status {prob.status}")
    prog = PenalizedDense(problem)
    x = prog.pack(S[:, None] * Z.value, b.value if b is not None else np.zeros(0))
    f, g = prog.value_grad(x)
    stats = prob.solver_stats
    return SolveResult.from_logits(problem, np.array(Z.value), value=prog.total(x, f), gap=prog.gap(x, f, g),
                                   method=f"cvxpy-{solver.lower()}", status=prob.status,
                                   iterations=int(stats.num_iters or 0), seconds=time.perf_counter() - start,
                                   bias=None if b is None else x[K * K:] - x[K * K:].mean(),
                                   info={"cvxpy_value": float(prob.value)})
