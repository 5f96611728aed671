r"""Batched interior-point method for coupled components: the engine's fast exact path.

The welfare program of DESIGN.md §4 has a dual in the listed rates p_k of the segments
and the wages w_j of the pools (both USD per hour, listed terms):

    minimize   Σ_k CS_k(p_k) + Σ_j PS_j(w_j)
    subject to w_j − p_k + τ_jk ≥ 0     for every edge j → k (home edges k → k, τ = 0)
               cap_k − p_k ≥ 0,  p_k − floor_k ≥ 0     where a bound is set

with CS_k(p) = ∫_p^{p*_k} D_k and PS_j(w) = ∫_{p*_j}^{w} S_j the consumer and producer
surplus relative to the uncoupled clearing point (p*, H*). Writing π = p/p*, ω = w/p*,
D_k(p) = H*_k π^ε and S_j(w) = H*_j ω^η:

    CS_k = H*_k p*_k (1 − π^(ε+1))/(ε+1)      (−H*_k p*_k log π at ε = −1)
    PS_j = H*_j p*_j (ω^(η+1) − 1)/(η+1)

The multipliers of the constraints are the primal quantities: the flow x_jk on each
edge, the shortage z_k at a cap and the surplus y_k at a floor, and stationarity is
market clearing:

    ∂/∂p_k:  D_k(p_k) + y_k = Σ_j x_jk + z_k        ∂/∂w_j:  S_j(w_j) = Σ_k x_jk

with complementarity x_jk (w_j − p_k + τ_jk) = 0 (flows only where p_k − τ_jk = w_j).

**Method.** A primal–dual interior point on this dual, all components at once, with the
barrier terms weighted by each row's money scale m_i = H*_k p*_k so that the central path
x_i s_i = μ m_i means the same relative accuracy everywhere. The slacks s are variables
of their own (an active edge's w − p + τ falls far below the rounding of w and p).
Newton's system is diag(−D′, S′) + Aᵀ diag(x/s) A; eliminating the pools' wages (their
block is diagonal) leaves one dense SPD matrix per component (segments × segments),
assembled so that the large x/s of active edges cancel exactly, and components are padded
to size classes so each class is one batched solve. Mehrotra's predictor sets the
centring target; an Armijo backtracking search on the barrier merit φ_μ (the direction is
a descent direction of it) keeps the iteration globally convergent; step lengths are per
component, and components that finish drop out of the batch. A component is done when
μ ≤ 1e-13 and its clearing residual ≤ 1e-11 of its hours (or ≤ 1e-9 once progress stalls).

**Polish.** Where a row is still undecided (flow and slack both above 1e-9: a degenerate
edge, a floor at the clearing rate) the interior point is only √μ exact; the method of
multipliers on the active set then finishes the component (:func:`_polish`).

Components above :data:`MAX_DENSE` segments are not taken (the caller sends them to the
general convex program), and any that does not converge within :data:`MAX_ITERATIONS`
is returned unconverged with the reason, for the caller to hand on the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: largest component the dense batched solve takes (a 512² system per component)
MAX_DENSE = 512
# padded matrix sizes: cost grows with size³, so classes are close together
_SIZE_CLASSES = np.array(
    [2, 3, 4, 6, 8, 10, 12, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 128, 192, 256, 384, 512]
)
MAX_ITERATIONS = 200
_MU_START = 0.1  # with slacks ≈ 0.1 p*, flows start near H*
_MU_FINAL = 1e-13  # complementarity x·s / (H* p*) at which a component is done …
_RESIDUAL_TOL = 1e-11  # … with its clearing residual, relative to the segment's hours
_MU_ACCEPT = 1e-11  # or, once progress has stalled (rounding), these looser ones
_ACCEPT_TOL = 1e-9
_BOUNDARY = 0.99  # fraction of the distance to the boundary a step may go
_ARMIJO = 1e-4
_WARM_THETA = 1e-3  # relative slack and complementarity of a warm start
_POLISH_RHO = 1e6  # augmented-Lagrangian penalty, relative to the segment's H*/p*
_POLISH_ROUNDS = 12  # at most; it stops at rounding level
_POLISH_CLEAR_TOL = 1e-10  # clearing residual a polished component may end with
_UNDECIDED = 1e-9  # min(x/H*, slack/p*) of a row above which its component is polished


@dataclass(frozen=True)
class CoupledProblem:
    """Segments of coupled components in local positions 0..n-1.

    ``component`` labels must be 0..C-1; edges include the home edges.
    """

    component: IntArray
    eps: FloatArray
    eta: FloatArray
    p_star: FloatArray  # uncoupled clearing rate, the price scale
    h_star: FloatArray  # hours at p_star, the quantity scale
    floor: FloatArray  # NaN: none
    cap: FloatArray
    pool: IntArray  # edge source (pool = segment position)
    segment: IntArray  # edge target
    friction: FloatArray


@dataclass(frozen=True)
class CoupledSolution:
    rate: FloatArray
    wage: FloatArray
    flow: FloatArray  # per edge of the problem
    shortage: FloatArray  # per segment (0 where no cap binds)
    surplus: FloatArray
    converged: BoolArray  # per component
    iterations: IntArray  # per component
    reason: list[str]  # per component, "" when converged


class _Structure:
    """Index bookkeeping of one problem, computed once: size classes, pairs, reductions."""

    def __init__(self, pb: CoupledProblem) -> None:
        comp = pb.component
        n, m = comp.size, pb.pool.size
        self.n_comp = int(comp.max()) + 1 if n else 0
        sizes = np.bincount(comp, minlength=self.n_comp)
        order = np.argsort(comp, kind="stable")
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        local = np.empty(n, np.int64)
        local[order] = np.arange(n) - np.repeat(starts, sizes)
        # size classes 2, 4, 8, … up to MAX_DENSE; larger components are left out
        padded = _SIZE_CLASSES[np.searchsorted(_SIZE_CLASSES, sizes)]
        if (sizes > MAX_DENSE).any():
            raise ValueError(f"components above {MAX_DENSE} segments need the convex program")
        self.buckets: list[tuple[int, int, int, int]] = []  # (size, count, mat start, rhs start)
        mat_offset = np.zeros(self.n_comp, np.int64)
        rhs_offset = np.zeros(self.n_comp, np.int64)
        mat_total = rhs_total = 0
        for size in np.unique(padded).tolist():
            comps = np.flatnonzero(padded == size)
            slot = np.arange(comps.size)
            mat_offset[comps] = mat_total + slot * size * size
            rhs_offset[comps] = rhs_total + slot * size
            self.buckets.append((size, comps.size, mat_total, rhs_total))
            mat_total += comps.size * size * size
            rhs_total += comps.size * size
        self.mat_total, self.rhs_total = mat_total, rhs_total
        self.diag = mat_offset[comp] + local * (padded[comp] + 1)
        self.rhs_index = rhs_offset[comp] + local
        # unit diagonal on padding rows keeps every batched matrix nonsingular
        unit = np.ones(rhs_total)
        unit[self.rhs_index] = 0.0
        pad_rows = np.flatnonzero(unit)
        bucket_of_row = (
            np.searchsorted(
                np.array([b[3] for b in self.buckets] + [rhs_total]), pad_rows, side="right"
            )
            - 1
        )
        sizes_b = np.array([b[0] for b in self.buckets], np.int64)
        mat_b = np.array([b[2] for b in self.buckets], np.int64)
        rhs_b = np.array([b[3] for b in self.buckets], np.int64)
        if pad_rows.size:
            size = sizes_b[bucket_of_row]
            rel = pad_rows - rhs_b[bucket_of_row]
            self.pad_diag = (
                mat_b[bucket_of_row] + (rel // size) * size * size + (rel % size) * (size + 1)
            )
        else:
            self.pad_diag = np.zeros(0, np.int64)
        # pairs of edges out of the same pool: K[k1, k2] −= h1 h2 / Dw_j
        by_pool = np.argsort(pb.pool, kind="stable")
        deg = np.bincount(pb.pool, minlength=n)
        first = np.concatenate([[0], np.cumsum(deg)[:-1]])
        count = deg[pb.pool]
        e1 = np.repeat(np.arange(m), count)
        within = np.arange(e1.size) - np.repeat(np.cumsum(count) - count, count)
        e2 = by_pool[first[pb.pool[e1]] + within]
        distinct = e1 != e2  # the diagonal is assembled per edge, without cancellation
        self.pair_e1, self.pair_e2 = e1[distinct], e2[distinct]
        k1, k2 = pb.segment[self.pair_e1], pb.segment[self.pair_e2]
        flat = mat_offset[comp[k1]] + local[k1] * padded[comp[k1]] + local[k2]
        # two pools may join the same pair of segments: sum pairs per matrix entry with a
        # precomputed sort, and write into one buffer reused every iteration
        order = np.argsort(flat, kind="stable")
        self.pair_e1, self.pair_e2 = self.pair_e1[order], self.pair_e2[order]
        self.pair_pool = pb.pool[self.pair_e1]
        flat = flat[order]
        first_of_run = np.flatnonzero(np.r_[True, flat[1:] != flat[:-1]]) if flat.size else flat
        self.pair_runs = first_of_run
        self.pair_entry = flat[first_of_run]
        self.buffer = np.zeros(mat_total)
        self.has_cap = np.flatnonzero(np.isfinite(pb.cap))
        self.has_floor = np.flatnonzero(np.isfinite(pb.floor))
        # per-component minima and maxima by reduceat over component-sorted positions
        # (every component has segments and rows, so no run is empty)
        row_comp = comp[np.concatenate([pb.segment, self.has_cap, self.has_floor])]
        self.rows = _runs(row_comp, self.n_comp)
        self.segs = _runs(comp, self.n_comp)

    def seg_max(self, values: FloatArray) -> FloatArray:
        order, starts = self.segs
        out: FloatArray = np.maximum.reduceat(values[order], starts)
        return out

    def step(
        self,
        runs: tuple[IntArray, IntArray],
        value: FloatArray,
        change: FloatArray,
        fraction: float | FloatArray,
    ) -> FloatArray:
        """Per component, ``fraction`` × the largest α keeping ``value + α change``
        positive, capped at 1."""
        order, starts = runs
        with np.errstate(divide="ignore"):
            ratio = np.where(change < 0, value / -change, np.inf)
        out: FloatArray = np.minimum(1.0, fraction * np.minimum.reduceat(ratio[order], starts))
        return out


def _runs(labels: IntArray, n_comp: int) -> tuple[IntArray, IntArray]:
    """Positions sorted by component and where each component's run starts."""
    order = np.argsort(labels, kind="stable")
    starts = np.searchsorted(labels[order], np.arange(n_comp))
    return order, starts


def solve_coupled(
    pb: CoupledProblem,
    start: tuple[FloatArray, FloatArray, FloatArray, FloatArray] | None = None,
) -> CoupledSolution:
    """Clear every component of ``pb``: interior point, then an active-set polish."""
    return _polish(pb, _interior_point(pb, start))


def _interior_point(
    pb: CoupledProblem,
    start: tuple[FloatArray, FloatArray, FloatArray, FloatArray] | None = None,
    budget: int = MAX_ITERATIONS,
) -> CoupledSolution:
    """Clear every component of ``pb`` (module docstring); never raises on hard inputs.

    ``start`` is a strictly feasible (rates, wages, multipliers, slacks) to continue from and
    ``budget`` the iterations left; both serve the compaction below.
    """
    st = _Structure(pb)
    comp, seg, pool, tau = pb.component, pb.segment, pb.pool, pb.friction
    n, n_comp = comp.size, st.n_comp
    eps, eta, ps, hs = pb.eps, pb.eta, pb.p_star, pb.h_star
    money = hs * ps
    ic, jf = st.has_cap, st.has_floor
    e1, e2 = st.pair_e1, st.pair_e2
    # constraint rows: edges, then caps, then floors; each with its segment and weight
    row_seg = np.concatenate([seg, ic, jf])
    row_comp = comp[row_seg]
    weight = money[row_seg]
    weight_sum = np.bincount(row_comp, weight, minlength=n_comp)
    scale = np.bincount(comp, money, minlength=n_comp)
    me, mc = seg.size, ic.size

    def slack(p: FloatArray, w: FloatArray) -> FloatArray:
        return np.concatenate([w[pool] - p[seg] + tau, pb.cap[ic] - p[ic], p[jf] - pb.floor[jf]])

    def adjoint(u: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Aᵀu split into its rate and wage parts."""
        a_p: FloatArray = -np.bincount(seg, u[:me], minlength=n).astype(np.float64)
        a_p[ic] -= u[me : me + mc]
        a_p[jf] += u[me + mc :]
        return a_p, np.bincount(pool, u[:me], minlength=n).astype(np.float64)

    def scatter_bounds(lam: FloatArray) -> FloatArray:
        """Shortage plus surplus per segment (the cap and floor multipliers)."""
        out = np.zeros(n)
        out[ic] += lam[me : me + mc]
        out[jf] += lam[me + mc :]
        return out

    def merit(p: FloatArray, w: FloatArray, sl: FloatArray) -> tuple[FloatArray, FloatArray]:
        """The surplus and barrier parts of φ_μ = surplus − μ·barrier per component, at
        rates p, wages w and slacks sl; the surplus is +inf outside the domain."""
        log_pi, log_om = np.log(np.maximum(p, 1e-300) / ps), np.log(w / ps)
        b = eps + 1.0
        safe_b = np.where(b == 0.0, 1.0, b)
        cs = np.where(b == 0.0, -log_pi, -np.expm1(safe_b * log_pi) / safe_b)
        surplus = money * (cs + np.expm1((eta + 1.0) * log_om) / (eta + 1.0))
        log_sl = weight * np.log(np.maximum(sl, 1e-300))
        barrier: FloatArray = np.bincount(row_comp, log_sl, minlength=n_comp).astype(np.float64)
        value: FloatArray = np.bincount(comp, surplus, minlength=n_comp).astype(np.float64)
        bad = np.zeros(n_comp, bool)
        bad[row_comp[~(sl > 0)]] = True
        bad[comp[~(p > 0)]] = True
        value[bad | ~np.isfinite(value) | ~np.isfinite(barrier)] = np.inf
        return value, barrier

    def rhs(
        u: FloatArray, r_p: FloatArray, r_w: FloatArray, he: FloatArray, d_w: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        """Right-hand side of the rate system, and the wage part, for target u."""
        b_p, b_w = adjoint(u)
        rhs_p, rhs_w = -r_p - b_p, -r_w - b_w
        return rhs_p + np.bincount(seg, he * rhs_w[pool] / d_w[pool], minlength=n), rhs_w

    def direction(
        dp: FloatArray,
        rhs_w: FloatArray,
        u: FloatArray,
        h: FloatArray,
        c_w: FloatArray,
        d_w: FloatArray,
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Wage, slack and multiplier steps that go with the rate step ``dp``."""
        he = h[:me]
        dw = (rhs_w + np.bincount(pool, he * dp[seg], minlength=n)) / d_w
        # Δs on edges written so that the large h of active edges cancels exactly
        spread = np.bincount(e1, he[e2] * (dp[seg[e2]] - dp[seg[e1]]), minlength=me)
        ds_e = (rhs_w[pool] - c_w[pool] * dp[seg] + spread) / d_w[pool]
        ds = np.concatenate([ds_e, -dp[ic], dp[jf]]) + r_s
        return dw, ds, -u - h * ds

    if start is None:
        # strictly feasible start: uncoupled rates inside their bounds, wages just above
        lo = np.where(np.isfinite(pb.floor), pb.floor, 0.0)
        gap = np.where(np.isfinite(pb.cap), pb.cap - lo, np.inf)
        p = np.clip(ps, lo + np.minimum(0.01 * gap, 0.01 * lo), lo + 0.99 * gap)
        w = np.full(n, -np.inf)
        np.maximum.at(w, pool, p[seg] - tau)
        w = w + 0.1 * ps
        s = slack(p, w)
        lam = _MU_START * weight / s
    else:
        p, w, lam, s = start
    iterations = np.zeros(n_comp, np.int64)
    converged = np.zeros(n_comp, bool)
    parts: tuple[FloatArray, FloatArray] | None = None  # φ parts at the current iterate
    best = np.full(n_comp, np.inf)
    stalled = np.zeros(n_comp, np.int64)

    for _ in range(budget):
        demand = hs * np.exp(eps * np.log(p / ps))
        supply = hs * np.exp(eta * np.log(w / ps))
        a_p, a_w = adjoint(lam)
        r_p, r_w = -demand - a_p, supply - a_w  # ∇f − Aᵀλ: minus the clearing residuals
        # the slacks are variables of their own (w − p + τ of an active edge is far below
        # the rounding of w and p); r_s is their drift from the rates, kept at rounding
        r_s = slack(p, w) - s
        mu = np.bincount(row_comp, lam * s, minlength=n_comp) / weight_sum
        # each balance against the size of its own terms (a floor or a big pool can put
        # far more hours through a segment than its H*), so rounding is never "residual"
        size_p, size_w = adjoint(lam)
        size_p = demand + np.abs(size_p) + 2.0 * scatter_bounds(lam)
        size_w = supply + size_w
        residual = st.seg_max(np.maximum(np.abs(r_p) / size_p, np.abs(r_w) / size_w))
        # rounding in the barrier Hessian limits the attainable accuracy; a component
        # whose residual has stopped improving below _ACCEPT_TOL is done
        stalled = np.where(residual < 0.5 * best, 0, stalled + 1)
        best = np.minimum(best, residual)
        converged = ((mu <= _MU_FINAL) & (residual <= _RESIDUAL_TOL)) | (
            (mu <= _MU_ACCEPT) & (residual <= _ACCEPT_TOL) & (stalled >= 5)
        )
        if converged.all():
            break
        if 2 * converged.sum() >= n_comp > 1:
            # most components are done: continue with the rest only, so a few slow
            # components do not keep the finished ones in every batched solve
            rest = _continue(pb, ~converged, p, w, lam, s, budget - int(iterations.max()))
            return _merge(pb, converged, p, w, lam, iterations, rest, me, mc)
        iterations[~converged] += 1

        h = lam / s
        he = h[:me]
        c_p = -eps * demand / p  # −D′ and S′, the curvature of the surplus terms
        c_w = eta * supply / w
        d_w = c_w + np.bincount(pool, he, minlength=n)
        others = np.bincount(e1, he[e2], minlength=me)  # Σ h over the pool's other edges
        k_diag = c_p + np.bincount(seg, he * (c_w[pool] + others) / d_w[pool], minlength=n)
        k_diag[ic] += h[me : me + mc]
        k_diag[jf] += h[me + mc :]
        factor = _schur_matrices(st, he, k_diag, d_w)

        # the step is affine in the target: solve once for u = λ and for the unit
        # centring direction m/s, then mix for Mehrotra's σ without refactoring
        zero = np.zeros(n)
        rhs_a, rhs_w_a = rhs(lam + h * r_s, r_p, r_w, he, d_w)
        rhs_c, rhs_w_c = rhs(weight / s, zero, zero, he, d_w)
        dp_a, dp_c = _solve(st, factor, rhs_a, rhs_c)

        # predictor: the affine step sets the centring target (Mehrotra's σ = (μ_aff/μ)³)
        _, ds, dl = direction(dp_a, rhs_w_a, lam, h, c_w, d_w)
        a_pri = st.step(st.rows, s, ds, 1.0)
        a_dual = st.step(st.rows, lam, dl, 1.0)
        s_aff = s + a_pri[row_comp] * ds
        l_aff = lam + a_dual[row_comp] * dl
        mu_aff = np.bincount(row_comp, s_aff * l_aff, minlength=n_comp) / weight_sum
        sigma = np.clip((mu_aff / np.maximum(mu, 1e-300)) ** 3, 0.0, 1.0)
        mu_t = np.maximum(sigma * mu, 0.1 * _MU_FINAL)
        target = mu_t[row_comp] * weight / s
        dp = dp_a - mu_t[comp] * dp_c
        dw, ds, dl = direction(dp, rhs_w_a - mu_t[comp] * rhs_w_c, lam - target, h, c_w, d_w)

        fraction = np.maximum(_BOUNDARY, 1.0 - 10.0 * mu)  # → 1 as μ → 0: full final steps
        a_pri = np.minimum(st.step(st.rows, s, ds, fraction), st.step(st.segs, p, dp, fraction))
        a_dual = st.step(st.rows, lam, dl, fraction)
        # Armijo backtracking on φ_μt for the rates and wages; the direction is a descent
        # direction of φ_μt because the primal–dual Hessian is positive definite. Near the
        # solution φ differences drown in rounding and the full step is taken untested.
        g_p, g_w = adjoint(target)
        slope = np.bincount(comp, (-demand - g_p) * dp + (supply - g_w) * dw, minlength=n_comp)
        tested = ~converged & (slope < -1e-9 * scale)
        if tested.any():
            if parts is None:
                parts = merit(p, w, s)
            phi0 = parts[0] - mu_t * parts[1]
            for _ in range(50):
                a_row = a_pri[row_comp]
                parts = merit(p + a_pri[comp] * dp, w + a_pri[comp] * dw, s + a_row * ds)
                failed = tested & (parts[0] - mu_t * parts[1] > phi0 + _ARMIJO * a_pri * slope)
                if not failed.any():
                    break
                a_pri[failed] *= 0.5
                a_dual[failed] = np.minimum(a_dual[failed], a_pri[failed])
            else:
                parts = None  # the last trial was not the step taken
        else:
            parts = None
        a_pri[converged] = 0.0
        a_dual[converged] = 0.0
        p = p + a_pri[comp] * dp
        w = w + a_pri[comp] * dw
        lam = lam + a_dual[row_comp] * dl
        s = s + a_pri[row_comp] * ds

    shortage = np.zeros(n)
    shortage[ic] = lam[me : me + mc]
    surplus = np.zeros(n)
    surplus[jf] = lam[me + mc :]
    reason = [
        ""
        if ok
        else f"interior point did not converge in {MAX_ITERATIONS} iterations "
        f"(clearing residual {r:.1e} of the segment's hours)"
        for ok, r in zip(converged, residual, strict=True)
    ]
    return CoupledSolution(p, w, lam[:me], shortage, surplus, converged, iterations, reason)


def warm_start(
    pb: CoupledProblem,
    rate: FloatArray,
    flow: FloatArray,
    shortage: FloatArray,
    surplus: FloatArray,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray] | None:
    """A strictly feasible start near an earlier solution (a what-if's baseline): its
    rates nudged inside the bounds, wages a fraction θ above the best edge, multipliers
    its flows or θ-centred; the barrier then starts at μ ≈ θ instead of 0.1. None when
    the earlier solution has gaps."""
    theta = _WARM_THETA
    if not (np.isfinite(rate).all() and np.isfinite(flow).all()):
        return None
    ps = pb.p_star
    lo = np.where(np.isfinite(pb.floor), pb.floor * (1 + theta), 0.0)
    hi = np.where(np.isfinite(pb.cap), pb.cap * (1 - theta), np.inf)
    p = np.clip(rate, lo, np.maximum(hi, lo))
    w = np.full(p.size, -np.inf)
    np.maximum.at(w, pb.pool, p[pb.segment] - pb.friction)
    w = w + theta * ps
    ic, jf = np.flatnonzero(np.isfinite(pb.cap)), np.flatnonzero(np.isfinite(pb.floor))
    slack = np.concatenate(
        [w[pb.pool] - p[pb.segment] + pb.friction, pb.cap[ic] - p[ic], p[jf] - pb.floor[jf]]
    )
    row_seg = np.concatenate([pb.segment, ic, jf])
    centred = theta * (pb.h_star * ps)[row_seg] / slack
    earlier = np.concatenate([flow, shortage[ic], surplus[jf]])
    if not (slack > 0).all():
        return None
    return p, w, np.maximum(earlier, centred), slack


def _continue(
    pb: CoupledProblem,
    keep_comp: BoolArray,
    p: FloatArray,
    w: FloatArray,
    lam: FloatArray,
    s: FloatArray,
    budget: int,
) -> CoupledSolution:
    """Solve the components ``keep_comp`` of ``pb`` from the current iterate."""
    keep = keep_comp[pb.component]
    local = np.cumsum(keep) - 1
    keep_edge = keep[pb.segment]
    me = pb.segment.size
    caps, floors = np.isfinite(pb.cap), np.isfinite(pb.floor)
    mc = int(caps.sum())
    _, comp = np.unique(pb.component[keep], return_inverse=True)
    sub = CoupledProblem(
        component=comp.astype(np.int64),
        eps=pb.eps[keep],
        eta=pb.eta[keep],
        p_star=pb.p_star[keep],
        h_star=pb.h_star[keep],
        floor=pb.floor[keep],
        cap=pb.cap[keep],
        pool=local[pb.pool[keep_edge]],
        segment=local[pb.segment[keep_edge]],
        friction=pb.friction[keep_edge],
    )

    def rows(v: FloatArray) -> FloatArray:
        return np.concatenate(
            [v[:me][keep_edge], v[me : me + mc][keep[caps]], v[me + mc :][keep[floors]]]
        )

    return _interior_point(sub, (p[keep], w[keep], rows(lam), rows(s)), max(budget, 0))


def _merge(
    pb: CoupledProblem,
    converged: BoolArray,
    p: FloatArray,
    w: FloatArray,
    lam: FloatArray,
    iterations: IntArray,
    rest: CoupledSolution,
    me: int,
    mc: int,
) -> CoupledSolution:
    """The finished components' iterate with the continued components' solution."""
    keep = ~converged[pb.component]
    p, w = p.copy(), w.copy()
    p[keep], w[keep] = rest.rate, rest.wage
    flow = lam[:me].copy()
    flow[keep[pb.segment]] = rest.flow
    shortage = np.zeros(p.size)
    shortage[np.isfinite(pb.cap)] = lam[me : me + mc]
    shortage[keep] = rest.shortage
    surplus = np.zeros(p.size)
    surplus[np.isfinite(pb.floor)] = lam[me + mc :]
    surplus[keep] = rest.surplus
    done = converged.copy()
    done[~converged] = rest.converged
    its = iterations.copy()
    its[~converged] += rest.iterations
    reason = [""] * converged.size
    for i, r in zip(np.flatnonzero(~converged).tolist(), rest.reason, strict=True):
        reason[i] = r
    return CoupledSolution(p, w, flow, shortage, surplus, done, its, reason)


def _polish(pb: CoupledProblem, sol: CoupledSolution) -> CoupledSolution:
    """Finish each component exactly on its active set (rows whose multiplier outweighs
    their slack): the method of multipliers for

        minimize Σ CS + Σ PS   subject to   s_i(p, w) = 0 on the active rows,

    one Newton step on the augmented Lagrangian per round,
    (∇²f + ρ AᵀA) Δv = −(∇f − Aᵀ(λ − ρ s)), then λ ← λ − ρ s. With ρ = 1e6 × H*/p* a round
    gains about six digits where a row's pool and segment are alike, fewer where a big pool
    serves a small segment, so it runs up to 12 rounds, stopping at rounding level; the
    same size-class batches solve it. Where the
    interior point stopped at √μ accuracy — a degenerate edge with both flow and reduced
    cost near zero, a floor at the clearing rate — this makes rates and flows exact. A
    component keeps its interior-point answer if none of its rows is undecided (both x/H*
    and slack/p* above 1e-9), or if the polish leaves a negative multiplier or slack, or
    clears worse than 1e-9."""
    st = _Structure(pb)
    comp, seg, pool, tau = pb.component, pb.segment, pb.pool, pb.friction
    n, n_comp = comp.size, st.n_comp
    if n == 0:
        return sol
    eps, eta, ps, hs = pb.eps, pb.eta, pb.p_star, pb.h_star
    ic, jf = st.has_cap, st.has_floor
    me, mc = seg.size, ic.size
    e1, e2 = st.pair_e1, st.pair_e2
    row_seg = np.concatenate([seg, ic, jf])
    row_comp = comp[row_seg]

    def slack(p: FloatArray, w: FloatArray) -> FloatArray:
        return np.concatenate([w[pool] - p[seg] + tau, pb.cap[ic] - p[ic], p[jf] - pb.floor[jf]])

    def clearing(p: FloatArray, w: FloatArray, lam: FloatArray) -> tuple[FloatArray, FloatArray]:
        """∇f − Aᵀλ: minus the clearing residuals of segments and pools."""
        inflow: FloatArray = np.bincount(seg, lam[:me], minlength=n).astype(np.float64)
        inflow[ic] += lam[me : me + mc]
        inflow[jf] -= lam[me + mc :]
        outflow = np.bincount(pool, lam[:me], minlength=n)
        demand = hs * np.exp(eps * np.log(p / ps))
        supply = hs * np.exp(eta * np.log(w / ps))
        return inflow - demand, supply - outflow

    p, w = sol.rate.copy(), sol.wage.copy()
    lam = np.concatenate([sol.flow, sol.shortage[ic], sol.surplus[jf]])
    s0 = slack(p, w)
    active = lam / hs[row_seg] > s0 / ps[row_seg]
    # only components with a row still undecided (flow and slack both well above
    # rounding) need it; the others keep their interior-point answer untouched
    undecided = np.minimum(lam / hs[row_seg], s0 / ps[row_seg]) > _UNDECIDED
    needs = np.zeros(n_comp, bool)
    needs[row_comp[undecided]] = True
    if not needs.any():
        return sol

    def relative_residual(p: FloatArray, w: FloatArray, lam: FloatArray) -> FloatArray:
        """Worst clearing residual per component, each node against its own hours."""
        r_p, r_w = clearing(p, w, lam)
        demand = hs * np.exp(eps * np.log(p / ps))
        supply = hs * np.exp(eta * np.log(w / ps))
        return st.seg_max(np.maximum(np.abs(r_p) / demand, np.abs(r_w) / supply))

    before = relative_residual(p, w, lam)
    lam = np.where(active, lam, 0.0)
    rho = np.where(active, _POLISH_RHO * (hs / ps)[row_seg], 0.0)
    for _ in range(_POLISH_ROUNDS):
        g = np.where(active, slack(p, w), 0.0)
        r_p, r_w = clearing(p, w, lam - rho * g)
        if (
            np.maximum(np.abs(r_p), np.abs(r_w)).max() <= 1e-14 * hs.max()
            and (np.abs(g) <= 1e-15 * ps[row_seg]).all()
        ):
            break
        demand = hs * np.exp(eps * np.log(p / ps))
        supply = hs * np.exp(eta * np.log(w / ps))
        he = rho[:me]
        c_w = eta * supply / w
        d_w = c_w + np.bincount(pool, he, minlength=n)
        others = np.bincount(e1, he[e2], minlength=me)
        k_diag = -eps * demand / p + np.bincount(
            seg, he * (c_w[pool] + others) / d_w[pool], minlength=n
        )
        k_diag[ic] += rho[me : me + mc]
        k_diag[jf] += rho[me + mc :]
        matrices = _schur_matrices(st, he, k_diag, d_w)
        rhs = -r_p + np.bincount(seg, he * -r_w[pool] / d_w[pool], minlength=n)
        (dp,) = _solve(st, matrices, rhs)
        dw = (-r_w + np.bincount(pool, he * dp[seg], minlength=n)) / d_w
        p, w = p + dp, w + dw
        if not ((p > 0).all() and (w > 0).all()):
            return sol
        lam = lam - rho * np.where(active, slack(p, w), 0.0)
    s = slack(p, w)
    after = relative_residual(p, w, lam)
    # rounding: a flow is the difference of its pool's hours, a slack of two rates
    row_hours = np.concatenate([np.maximum(hs[seg], hs[pool]), hs[ic], hs[jf]])
    bad_row = np.where(active, lam < -1e-10 * row_hours, s < -1e-12 * ps[row_seg])
    bad = np.zeros(n_comp, bool)
    bad[row_comp[bad_row]] = True
    # the polish trades the interior point's √μ complementarity error for exactness;
    # its clearing residual may end a little above the interior point's tiny one, but a
    # result that clears worse than _ACCEPT_TOL (or is not finite) is not taken
    bad |= ~(after <= np.maximum(10.0 * before, _POLISH_CLEAR_TOL)) | ~needs
    keep = bad[comp]
    p[keep], w[keep] = sol.rate[keep], sol.wage[keep]
    lam = np.maximum(lam, 0.0)
    flow = np.where(bad[row_comp[:me]], sol.flow, lam[:me])
    shortage, surplus = sol.shortage.copy(), sol.surplus.copy()
    shortage[ic] = np.where(bad[comp[ic]], sol.shortage[ic], lam[me : me + mc])
    surplus[jf] = np.where(bad[comp[jf]], sol.surplus[jf], lam[me + mc :])
    return CoupledSolution(p, w, flow, shortage, surplus, sol.converged, sol.iterations, sol.reason)


def _schur_matrices(
    st: _Structure, he: FloatArray, k_diag: FloatArray, d_w: FloatArray
) -> list[FloatArray]:
    """K = diag(d_p) − B diag(d_w)⁻¹ Bᵀ (B_kj = h_jk), one matrix per component, stacked
    by size class; ``k_diag`` is the diagonal, already reduced."""
    # every iteration writes the same entries (pairs off the diagonal, the diagonal, the
    # padding), so the rest of the buffer keeps the zeros it was created with: no
    # refill of the whole (mostly zero) buffer, which dominated large batches
    k_flat = st.buffer
    if st.pair_runs.size:
        values = -he[st.pair_e1] * he[st.pair_e2] / d_w[st.pair_pool]
        k_flat[st.pair_entry] = np.add.reduceat(values, st.pair_runs)
    k_flat[st.diag] = k_diag
    k_flat[st.pad_diag] = 1.0
    return [
        k_flat[start : start + count * size * size].reshape(count, size, size)
        for size, count, start, _ in st.buckets
    ]


def _solve(st: _Structure, matrices: list[FloatArray], *rhs: FloatArray) -> tuple[FloatArray, ...]:
    """K⁻¹ b for each b in ``rhs``, one batched LU per size class."""
    padded = np.zeros((st.rhs_total, len(rhs)))
    padded[st.rhs_index] = np.stack(rhs, axis=1)
    out = np.empty_like(padded)
    for mats, (size, count, _, start) in zip(matrices, st.buckets, strict=True):
        b = padded[start : start + count * size].reshape(count, size, len(rhs))
        out[start : start + count * size] = np.linalg.solve(mats, b).reshape(-1, len(rhs))
    picked = out[st.rhs_index]
    return tuple(picked[:, j] for j in range(len(rhs)))
