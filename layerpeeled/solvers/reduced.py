"""The symmetry-reduced LPM (SPEC §2.5): G groups of equal counts, G + G^2 unknowns, any K.

Averaging an optimum over permutations inside each group gives a block-symmetric logit matrix
    Z = sum_g a_g Pi_g + sum_{g,h} M_gh u_g u_h^T,
with Pi_g the projector on zero-sum vectors of group g (rank K_g - 1) and u_g = 1_g / sqrt(K_g).
These pieces are mutually orthogonal, so ||Z||_* = sum_g (K_g - 1)|a_g| + ||M||_*, and with
b_g = (K_g - 1) a_g the problem is again a nuclear-norm ball, over (b, M) in R^G x R^{G x G}.
In class terms: d_g = Z_kk, e_g = Z_kj (k != j in g), c_gh = Z_kj (k in g, j in h).
The Frank-Wolfe gap computed here equals that of the full K x K problem at the expanded Z.
"""
from __future__ import annotations

import time
from functools import cached_property

import numpy as np

from ..geometry.gram import GramStats
from ..problem import LPMProblem
from .proxgrad import certified_gap, proximal_gradient, project_l1_nonneg
from .newton import FactoredProgram, first_order_then_newton
from .result import RANK_RTOL, SolveResult


def group_row_scale(problem) -> np.ndarray:
    """The problem's row scale (constant on each group of equal counts), one value per group."""
    return np.array([problem.row_scale[g.classes[0]] for g in problem.groups], dtype=float)


class BlockLogits:
    """A block-symmetric logit matrix Z, kept through its weighted form Y = S Z (S = the problem's
    row scale, constant on each group) as (a, M) of Y for groups of sizes K_g."""

    def __init__(self, problem, b: np.ndarray, M: np.ndarray):
        self.groups = problem.groups
        self.sizes = np.array([g.size for g in problem.groups], dtype=float)
        self.scale = group_row_scale(problem)
        many = self.sizes > 1
        self.a = np.where(many, b / np.where(many, self.sizes - 1, 1), 0.0)
        self.M = M

    def _logit_blocks(self):
        """(a, M) of Z itself: row group g of Y divided by its scale."""
        return self.a / self.scale, self.M / self.scale[:, None]

    @property
    def blocks(self) -> dict:
        """d_g (diagonal), e_g (within group, off-diagonal), c_gh (between groups) of Z."""
        K, (a, M) = self.sizes, self._logit_blocks()
        e = (np.diag(M) - a) / K
        c = M / np.sqrt(np.outer(K, K))
        np.fill_diagonal(c, np.nan)
        return {"d": e + a, "e": np.where(K > 1, e, np.nan), "c": c}

    @cached_property
    def classes(self) -> list[np.ndarray]:
        return [np.asarray(g.classes) for g in self.groups]

    def expand(self) -> np.ndarray:
        a, M = self._logit_blocks()
        K = int(self.sizes.sum())
        Z = np.zeros((K, K))
        for g, ig in enumerate(self.classes):
            for h, ih in enumerate(self.classes):
                Z[np.ix_(ig, ih)] = M[g, h] / np.sqrt(ig.size * ih.size)
            Z[np.ix_(ig, ig)] += a[g] * (np.eye(ig.size) - 1.0 / ig.size)
        return Z

    @cached_property
    def _svd(self):
        return np.linalg.svd(self.M)

    def rank(self) -> int:
        s = self._svd[1]
        top = max(float(np.abs(self.a).max()), float(s[0]))
        if top == 0:
            return 0
        live = np.abs(self.a) > RANK_RTOL * top
        return int(((self.sizes - 1) * live).sum() + (s > RANK_RTOL * top).sum())

    def gram_stats(self, problem) -> tuple[GramStats, GramStats]:
        """W W^T = c (Y^T Y)^{1/2} and H H^T = S^{-1} (Y Y^T)^{1/2} S^{-1} / c in block form."""
        U, s, Vh = self._svd
        c = problem.classifier_scale
        K, a = self.sizes, np.abs(self.a)
        out = []
        for root, scale in (((Vh.T * s) @ Vh, c * np.ones((self.sizes.size,) * 2)),
                            ((U * s) @ U.T, np.outer(1 / self.scale, 1 / self.scale) / c)):
            base = np.diag(root) / K
            g = np.diag(scale)
            out.append(GramStats.from_blocks(
                K, g * (a * (1 - 1 / K) + base), g * (base - a / K), scale * root / np.sqrt(np.outer(K, K))))
        return tuple(out)


class ReducedProgram:
    """Objective, gradient, projection and gap of the reduced problem over x = (b, M.ravel())."""

    def __init__(self, problem: LPMProblem, collapsed=()):
        self.problem = problem
        groups = problem.groups
        self.G = len(groups)
        self.K = np.array([g.size for g in groups], dtype=float)
        self.many = self.K > 1
        # b_g is a variable for groups of several classes, unless the group is held collapsed (b_g = 0)
        self.free = self.many & ~np.isin(np.arange(self.G), collapsed)
        self.omega = np.array([g.size * g.count for g in groups]) / problem.counts.sum()
        self.mult = np.tile(self.K, (self.G, 1))  # c_gh appears K_h times in a row of group g
        np.fill_diagonal(self.mult, self.K - 1)  # e_g appears K_g - 1 times
        self.sqrtKK = np.sqrt(np.outer(self.K, self.K))
        self.inv_Km1 = np.where(self.many, 1.0 / np.maximum(self.K - 1, 1), 0.0)  # a_g = b_g / (K_g - 1)
        self.diag = np.diag_indices(self.G)
        self.coef = problem.loss.row_coefficients([g.count for g in groups])  # the loss's map of each group's logits

    @property
    def tau(self) -> float:
        """The nuclear-norm radius (constrained form only; the penalized form has none)."""
        return self.problem.radius

    def split(self, x):
        return x[: self.G], x[self.G:].reshape(self.G, self.G)

    def row_logits(self, x, bias=None):
        """The distinct logits of a class of each group, linear in (x, bias): its own (d_g) and
        those of the others (``others[g, h]``: c_gh, with e_g on the diagonal).

        ``bias``: per-group bias beta_g added to the logits of every class of group g (None: no bias).
        """
        b, M = self.split(x)
        a = b * self.inv_Km1
        e = (M[self.diag] - a) / self.K
        d = e + a
        others = M / self.sqrtKK
        others[self.diag] = e
        if bias is not None:  # column h of the logits (classes of group h) is shifted by beta_h
            others = others + bias[None, :]
            d = d + bias
        return d, others

    def derivatives(self, x, bias=None):
        """Objective and its gradient in every coordinate, b_g of held-collapsed groups included;
        with a ``bias`` (see :meth:`row_logits`) its gradient too, summed over the group's classes."""
        K = self.K
        loss, d_t, d_o = self.problem.loss.rows(*self.row_logits(x, bias), self.mult, self.coef)
        d_t, d_o = self.omega * d_t, self.omega[:, None] * d_o
        d_e = d_o[self.diag]
        gM = d_o / self.sqrtKK
        gM[self.diag] = (d_t + d_e) / K
        gb = (d_t * (1 - 1 / K) - d_e / K) * self.inv_Km1
        if bias is None:
            return float(self.omega @ loss), gb, gM
        return float(self.omega @ loss), gb, gM, d_o.sum(axis=0) + d_t

    def value_grad(self, x):
        """Objective and gradient over the free coordinates (what the solver moves)."""
        f, gb, gM = self.derivatives(x)
        return f, self.free_gradient(gb, gM)

    def free_gradient(self, gb, gM):
        """The gradient as the solver's flat vector, zero on held-collapsed and one-class groups."""
        return np.concatenate([np.where(self.free, gb, 0.0), gM.ravel()])

    def project(self, x):
        b, M = self.split(x)
        U, s, Vh = np.linalg.svd(M)
        v = project_l1_nonneg(np.concatenate([np.abs(b), s]), self.tau)
        return np.concatenate([np.sign(b) * v[: self.G], ((U * v[self.G:]) @ Vh).ravel()])

    def gap(self, x, f, g) -> float:
        gb, gM = self.split(g)
        return certified_gap(float(g @ x), self.tau, self.dual_norm(g), f)

    def dual_norm(self, g) -> float:
        """max(|g_b|_inf, sigma_max(g_M)) over the free coordinates: the multiplier at an optimum."""
        gb, gM = self.split(g)
        return max(float(np.abs(gb[self.free]).max(initial=0.0)), float(np.linalg.svd(gM, compute_uv=False)[0]))

    def certify(self, x):
        """(value, certified gap, the feasible point they refer to) at x projected on the ball."""
        x = self.project(x)
        f, g = self.value_grad(x)
        return f, self.gap(x, f, g), x

    def factored(self) -> FactoredProgram:
        def derivatives(x):
            f, gb, gM = self.derivatives(x)
            return f, np.concatenate([gb, gM.ravel()])

        def logits(x):
            d, others = self.row_logits(x)
            return np.concatenate([d, others.ravel()])

        return FactoredProgram(derivatives, logits, self.problem.loss, self.omega, self.mult, self.coef, self.G,
                               self.free, hold_M=False, n_bias=0)

    def start(self):
        """The balanced optimum (a simplex ETF): b_g = tau (K_g - 1)/(K - 1), M = 0 but its group part."""
        K = self.K.sum()
        u = np.sqrt(self.K / K)
        M = self.tau / (K - 1) * (np.eye(self.G) - np.outer(u, u))
        if self.G == 1:
            M[:] = 0.0  # exactly, not the rounding of 1 - 1
        return np.concatenate([np.where(self.free, self.tau / (K - 1) * (self.K - 1), 0.0), M.ravel()])


def solve_reduced(problem: LPMProblem, *, tol: float = 1e-9, max_iter: int = 200000, callback=None,
                  collapsed=(), warm=None) -> SolveResult:
    """Solve the symmetry-reduced program; cost depends on the number of groups, not on K.

    ``collapsed``: indices of groups whose classifiers are held identical (b_g = 0), the face on
    which collapse onsets are located; the certificate then refers to that restricted program.
    """
    start = time.perf_counter()
    prog = ReducedProgram(problem, collapsed)

    def run(x0, goal, steps):
        return proximal_gradient(prog.start() if x0 is None else x0, prog.value_grad, lambda x, step: prog.project(x),
                                 prog.gap, lipschitz=float(prog.omega.max()), tol=goal,
                                 max_iter=max_iter if steps is None else steps, callback=callback, check_every=2)

    out, newton_steps = first_order_then_newton(run, prog.factored(), prog.certify, tol=tol, radius=prog.tau,
                                                 warm=warm)
    b, M = prog.split(out.x)
    sol = BlockLogits(problem, b, M)
    _, gb, gM = prog.derivatives(out.x)
    return SolveResult(problem=problem, value=out.value, gap=out.gap, method="reduced",
                       status="optimal" if out.converged else "max_iter", iterations=out.iterations,
                       seconds=time.perf_counter() - start, solution=sol,
                       info={"blocks": {k: v.tolist() for k, v in sol.blocks.items()}, "newton_steps": newton_steps},
                       state={"multiplier": prog.dual_norm(prog.free_gradient(gb, gM)), "b_gradient": gb.tolist(),
                              "x": out.x})


def solve_reduced_cvxpy(problem: LPMProblem, *, solver: str = "CLARABEL", tol: float = 1e-9) -> SolveResult:
    """The reduced program written directly in cvxpy (exponential and PSD cones): an independent check
    of :func:`solve_reduced` and the baseline of its benchmark. Its certificate is computed like the
    others', at the point cvxpy returns (scaled into the ball if the solver left it just outside)."""
    import cvxpy as cp

    start = time.perf_counter()
    prog = ReducedProgram(problem)
    G, K = prog.G, prog.K
    b, M = cp.Variable(G), cp.Variable((G, G))
    a = cp.multiply(b, prog.inv_Km1)
    e = (cp.diag(M) - a) / K
    d = e + a
    coef = problem.loss.coefficients(np.array([g.count for g in problem.groups]))
    scale, shift, margin = (np.ones(G), np.zeros(G), np.zeros(G)) if coef is None else coef
    eps, rows = problem.loss.eps, []
    for g in range(G):  # the loss of a class of group g on its mapped logits (see layerpeeled.losses)
        t = scale[g] * d[g] + shift[g] - margin[g]
        same = [scale[g] * e[g] + shift[g]] if K[g] > 1 else []
        other = {h: scale[h] * M[g, h] / prog.sqrtKK[g, h] + shift[h] for h in range(G) if h != g}
        terms = [t] + [u + np.log(K[g] - 1) for u in same] + [u + np.log(K[h]) for h, u in other.items()]
        row = cp.log_sum_exp(cp.hstack(terms)) - t
        if eps:
            total = t + sum((K[g] - 1) * u for u in same) + sum(K[h] * u for h, u in other.items())
            row = row + eps * (t - total / K.sum())
        rows.append(row)
    constraint = cp.norm1(b[np.flatnonzero(prog.many)]) + cp.normNuc(M) <= prog.tau if prog.many.any() else \
        cp.normNuc(M) <= prog.tau
    cvx = cp.Problem(cp.Minimize(sum(prog.omega[g] * rows[g] for g in range(G))), [constraint])
    opts = {"CLARABEL": {"tol_gap_abs": tol, "tol_gap_rel": tol, "tol_feas": tol},
            "SCS": {"eps_abs": max(tol, 1e-7), "eps_rel": max(tol, 1e-7), "max_iters": 200000}}[solver.upper()]
    cvx.solve(solver=solver.upper(), **opts)
    if b.value is None:
        raise RuntimeError(f"{solver} failed on the reduced program of {problem!r}: status {cvx.status}")
    x = prog.project(np.concatenate([np.where(prog.many, b.value, 0.0), np.asarray(M.value).ravel()]))
    value, gap, x = prog.certify(x)
    sol = BlockLogits(problem, *prog.split(x))
    return SolveResult(problem=problem, value=value, gap=gap, method=f"reduced-cvxpy-{solver.lower()}",
                       status=cvx.status, iterations=int(cvx.solver_stats.num_iters or 0),
                       seconds=time.perf_counter() - start, solution=sol,
                       info={"cvxpy_value": float(cvx.value), "solve_seconds": float(cvx.solver_stats.solve_time or 0.0)})
