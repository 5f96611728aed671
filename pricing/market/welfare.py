r"""Reference convex program for the coupled market (DESIGN.md §4), solved with cvxpy.

Primal welfare maximization in variables scaled to each segment's reference point
(p*, H*): demand q̃_k = q_k/H*_k, supply s̃_j = s_j/H*_j, flows x̃_e = x_e/H*_{k(e)} on each
edge e = (j → k(e)), shortage z̃_k and surplus ỹ_k in H*_k units:

    maximize   Σ_k M_k u_k(q̃_k) − Σ_j M_j s̃_j^{r_j}/r_j − Σ_e τ_e H*_{k(e)} x̃_e
               − Σ_{k capped} cap_k H*_k z̃_k + Σ_{k floored} floor_k H*_k ỹ_k
    subject to q̃_k + ỹ_k = Σ_{e into k} x̃_e + z̃_k                 (dual → rate p_k)
               s̃_j = Σ_{e out of j} (H*_{k(e)}/H*_j) x̃_e           (dual → wage w_j)
               x̃, z̃, ỹ ≥ 0   (z̃ only where a cap is set, ỹ only where a floor is)

with money scales M_k = p*_k H*_k, supply exponents r_j = 1 + 1/η_j and the Box–Cox utility
u(q̃) = (q̃^a − 1)/a, a = 1 + 1/ε_k (u = log q̃ at ε_k = −1). Since u′(q̃) = q̃^{1/ε},
U′(q) = p*_k (q/H*_k)^{1/ε_k} is the inverse demand; the supply term likewise
differentiates to the inverse supply. Components do not interact, so each component's
welfare is divided by its own geometric-mean money scale N_c: the optimum is unchanged
and every weight m_k = M_k/N_c is of order one, which gives every component the same
relative accuracy (one global N leaves segments with small M_k at ~1e-5).

The duals λ of the balance rows as written are the derivatives of the scaled optimum
with respect to the rows' right-hand sides, positive in cvxpy's convention:
p_k = λ_k N_c/H*_k and w_j = λ_j N_c/H*_j. Stationarity in z̃ and ỹ gives
p_k ≤ cap_k and p_k ≥ floor_k, in x̃ the edge condition w_j ≥ p_k − τ_e with equality on
used edges.

Cones, one vectorized constraint per kind with an array of exponents. The utility's
constant is dropped and its cone variable shifted, t = 1 + a t′, so the objective carries
m t′ = m u rather than m t/a, a near-constant that grows without bound as a → 0:

    a > 0 (ε < −1):        1 + a t′ ≤ q̃^a     PowCone3D(q̃, 1, 1 + a t′, a)        + m t′
    a < 0 (−1 < ε < 0):    1 + a t′ ≥ q̃^a     PowCone3D(1 + a t′, q̃, 1, 1/(1−a))  + m t′
    log:                   t′ ≤ log q̃          ExpCone(t′, 1, q̃)                    + m t′
    supply:                t ≥ s̃^r             PowCone3D(t, 1, s̃, 1/r)              − m t/r

The supply term is left unshifted on purpose: it keeps the solver's objective near
−Σ m/r, so the relative gap tolerance acts per segment whatever their number.

Near ε = −1 no cone is exact and well conditioned: power cones with an exponent within
~1e-4 of 0 or 1 stall Clarabel, because the information sits in the O(a) deviation of
q̃^a from 1. For 0 < |a| < A = :data:`A_MIN` the utility is the blend
(1 − c) log q̃ + c u_{±A}(q̃), c = |a|/A, a concave function whose Taylor series in
L = log q̃ matches u_a up to L + aL²/2; its marginal utility differs from q̃^{1/ε} by a
relative a(A − a)L²/2 ≤ A²L²/8 ≈ 1.3e-7 L² (a == 0 exactly is the plain log).

Scale: Clarabel stalls on this program from about a thousand segments on (random
markets, coupled or not, end at its iteration limit or InsufficientProgress: its second
step falls short and the dual-scaling fallback crawls), while SCS solves 10,000 coupled
segments in 15–80 s to ~1e-8. The status says which happened; choosing the fallback is
the caller's business.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Any

import cvxpy as cp
import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from cvxpy.atoms.affine.binary_operators import multiply
from cvxpy.constraints.exponential import ExpCone
from cvxpy.constraints.power import PowCone3D

from pricing.market.interior import CoupledProblem

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: smallest |a| = |1 + 1/ε| modelled by its own power cone (module docstring)
A_MIN = 1e-3

#: Clarabel: the default step fraction (0.99) stalls often; on 150 random coupled
#: 200-segment markets 0.9 still failed 8 times (InsufficientProgress within a dozen
#: iterations), 0.8 once. Tolerances 1e-10 and 1e-11 leave rates up to ~1e-6 off on some
#: markets; 1e-12 gives ~1e-9, and tighter ones mostly end AlmostSolved (reported as
#: optimal_inaccurate). SCS is the first-order fallback: slower on small problems, but it
#: also solves the large ones.
_OPTIONS: dict[str, dict[str, Any]] = {
    "CLARABEL": {
        "max_step_fraction": 0.8,
        "tol_gap_abs": 1e-12,
        "tol_gap_rel": 1e-12,
        "tol_feas": 1e-12,
    },
    "SCS": {"eps_abs": 1e-9, "eps_rel": 1e-9, "max_iters": 100_000},
}


@dataclass(frozen=True)
class WelfareSolution:
    rate: FloatArray  # listed rate p_k per segment (USD/h)
    wage: FloatArray  # wage w_j per pool (= segment position), listed terms
    flow: FloatArray  # hours per edge of the problem, home edges included
    shortage: FloatArray  # hours of demand unmet at a binding cap (0 where no cap)
    surplus: FloatArray  # hours of supply idle at a binding floor (0 where no floor)
    status: str  # cvxpy status, or "error: <message>" if the solver raised
    solver: str
    compile_seconds: float
    solve_seconds: float


def solve_welfare(pb: CoupledProblem, solver: str = "CLARABEL") -> WelfareSolution:
    """Solve the welfare program of the module docstring; never raises on solver failure."""
    if solver not in _OPTIONS:
        raise ValueError(f"solver must be one of {sorted(_OPTIONS)}, got {solver!r}")
    program = _Program.build(pb)
    problem = program.problem
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            # an inaccurate solve is reported through the status string instead
            warnings.filterwarnings("ignore", "Solution may be inaccurate", UserWarning)
            problem.solve(solver=solver, **_OPTIONS[solver])  # type: ignore[no-untyped-call]
        status = str(problem.status)
    except cp.error.SolverError as exc:
        status = f"error: {exc}"
    compile_seconds = float(problem.compilation_time or 0.0)
    stats = problem.solver_stats
    if stats is not None and stats.solve_time is not None:
        solve_seconds = float(stats.solve_time)
    else:
        solve_seconds = time.perf_counter() - start - compile_seconds
    # the last iterate of an unsolved program (e.g. user_limit) is no answer: NaN instead
    solved = status in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE)
    return program.solution(solved, status, solver, compile_seconds, solve_seconds)


@dataclass(frozen=True)
class _Program:
    """The program of one problem in scaled variables, with what its solution is read from."""

    pb: CoupledProblem
    problem: cp.Problem
    x: cp.Variable
    z: cp.Variable
    y: cp.Variable
    segment_balance: cp.Constraint
    pool_balance: cp.Constraint
    norm: FloatArray
    capped: IntArray
    floored: IntArray

    @classmethod
    def build(cls, pb: CoupledProblem) -> _Program:
        """Variables, balances, cones and objective of the module docstring."""
        n, m = pb.p_star.size, pb.pool.size
        hs = pb.h_star
        norm = _component_scale(pb.component, pb.p_star * hs)
        capped = np.flatnonzero(np.isfinite(pb.cap))
        floored = np.flatnonzero(np.isfinite(pb.floor))
        h_edge = hs[pb.segment]
        # q̃, s̃ ≥ 0 is implied by the cones; stating it keeps Clarabel's early iterates
        # better centred (fewer stalls measured)
        q = cp.Variable(n, nonneg=True)
        s = cp.Variable(n, nonneg=True)
        x = cp.Variable(m, nonneg=True)
        z = cp.Variable(capped.size, nonneg=True)
        y = cp.Variable(floored.size, nonneg=True)
        segment_rows = q - _incidence(pb.segment, np.ones(m), n) @ x
        if capped.size:
            segment_rows = segment_rows - _incidence(capped, np.ones(capped.size), n) @ z
        if floored.size:
            segment_rows = segment_rows + _incidence(floored, np.ones(floored.size), n) @ y
        segment_balance = segment_rows == 0
        pool_balance = _incidence(pb.pool, h_edge / hs[pb.pool], n) @ x - s == 0
        weight = pb.p_star * hs / norm
        constraints, utility = _utility(pb, q, weight)
        r = 1.0 + 1.0 / pb.eta
        t_supply = cp.Variable(n)
        constraints.append(PowCone3D(t_supply, np.ones(n), s, 1 / r))
        objective = (
            utility - (weight / r) @ t_supply - (pb.friction * h_edge / norm[pb.segment]) @ x
        )
        if capped.size:
            objective = objective - (pb.cap[capped] * hs[capped] / norm[capped]) @ z
        if floored.size:
            objective = objective + (pb.floor[floored] * hs[floored] / norm[floored]) @ y
        problem = cp.Problem(cp.Maximize(objective), [segment_balance, pool_balance, *constraints])
        return cls(pb, problem, x, z, y, segment_balance, pool_balance, norm, capped, floored)

    def solution(
        self, solved: bool, status: str, solver: str, compile_s: float, solve_s: float
    ) -> WelfareSolution:
        """Rates and wages from the balances' duals, flows and bound hours rescaled."""
        pb, n, hs = self.pb, self.pb.p_star.size, self.pb.h_star
        shortage = np.zeros(n)
        shortage[self.capped] = _value(self.z.value, self.capped.size, solved) * hs[self.capped]
        surplus = np.zeros(n)
        surplus[self.floored] = _value(self.y.value, self.floored.size, solved) * hs[self.floored]
        return WelfareSolution(
            rate=_value(self.segment_balance.dual_value, n, solved) * self.norm / hs,
            wage=_value(self.pool_balance.dual_value, n, solved) * self.norm / hs,
            flow=_value(self.x.value, pb.pool.size, solved) * hs[pb.segment],
            shortage=shortage if solved else np.full(n, np.nan),
            surplus=surplus if solved else np.full(n, np.nan),
            status=status,
            solver=solver,
            compile_seconds=compile_s,
            solve_seconds=solve_s,
        )


def _utility(
    pb: CoupledProblem, q: cp.Variable, weight: FloatArray
) -> tuple[list[cp.Constraint], Any]:
    """The clients' utility terms: power cones with an array of exponents, an exponential
    cone where ε is within A_MIN of −1 (module docstring)."""
    n = pb.p_star.size
    constraints: list[cp.Constraint] = []
    a = 1.0 + 1.0 / pb.eps
    blended = np.abs(a) < A_MIN
    a_cone = np.where(blended, np.sign(a) * A_MIN, a)
    share = np.divide(a, a_cone, out=np.zeros(n), where=a_cone != 0)  # weight of the power cone
    utility: Any = 0.0
    for idx in (np.flatnonzero(a_cone > 0), np.flatnonzero(a_cone < 0)):
        if idx.size:
            t = cp.Variable(idx.size)
            ai, ones = a_cone[idx], np.ones(idx.size)
            shifted = 1 + multiply(ai, t)
            constraints.append(
                PowCone3D(q[idx], ones, shifted, ai)
                if ai[0] > 0
                else PowCone3D(shifted, q[idx], ones, 1 / (1 - ai))
            )
            utility = utility + (weight * share)[idx] @ t
    idx = np.flatnonzero(blended)
    if idx.size:
        t = cp.Variable(idx.size)
        constraints.append(ExpCone(t, np.ones(idx.size), q[idx]))
        utility = utility + (weight * (1 - share))[idx] @ t
    return constraints, utility


def _component_scale(component: IntArray, money: FloatArray) -> FloatArray:
    """Per segment, the geometric mean of its component's money scales."""
    n_comp = int(component.max()) + 1 if component.size else 0
    log_sum = np.bincount(component, np.log(money), n_comp)
    count = np.bincount(component, minlength=n_comp)
    return np.exp(log_sum / np.maximum(count, 1))[component]


def _incidence(row: IntArray, value: FloatArray, n_rows: int) -> sp.csr_array:
    """Sparse matrix with ``value[i]`` at (row[i], i): one column per edge or bound."""
    return sp.csr_array((value, (row, np.arange(row.size))), shape=(n_rows, row.size))


def _value(v: Any, size: int, solved: bool) -> FloatArray:
    """A variable's value or a constraint's dual as floats; NaN unless solved."""
    if v is None or not solved:
        return np.full(size, np.nan)
    return np.asarray(v, dtype=np.float64).reshape(size)
