r"""Coupled components: the forest first, then a batched interior point for what it leaves.

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
block is diagonal) leaves one SPD matrix K per component (segments × segments), nonzero
where a pool serves both segments, assembled so that the large x/s of active edges
cancel exactly. Components whose edges repeat in at least :data:`_SPARSE_COPIES`
components (planning's copies of a group) form a sparse class: one symbolic Cholesky
factorization in minimum-degree order, then the numeric factorization and the triangular
solves level by level of its elimination tree, batched over the copies (a 92-segment
group's K has ~450 nonzeros and its factor ~440, against 96² dense). Components above
:data:`MAX_DENSE` segments (a connected market: one component of 10^4–10^5) form sparse
Schur blocks (:mod:`pricing.market.sparse_schur`): K as one block-diagonal scipy sparse
matrix, factored LDLᵀ in approximate-minimum-degree order where the pool–segment graph
is nearly a tree, else solved by CG preconditioned by K's maximum spanning forest, to a
relative residual of 0.01 μ (1e-13 at the end: inexact Newton). The other components
are padded to size classes, each class one batched dense solve. Warm starts
(:func:`warm_start`) begin at μ ≈ θ = 1e-5. Mehrotra's predictor sets the
centring target; an Armijo backtracking search on the barrier merit φ_μ (the direction is
a descent direction of it) keeps the iteration globally convergent; step lengths are per
component, and components that finish drop out of the batch. A component is done when
μ ≤ 1e-13 and its clearing residual ≤ 1e-11 of its hours (or ≤ 1e-9 once progress stalls).

The code follows the method in named pieces: :class:`_Rows` holds the rows and the maps
between rows, segments and pools (slacks, Aᵀu, the merit φ, the cold start);
:func:`_assess` computes the residuals and the convergence test, :func:`_newton`
assembles and factors the system, :func:`_direction` computes Mehrotra's direction
(with :func:`_rhs` and :func:`_slack_step`), :func:`_line_search` the step lengths, and
:func:`_interior_point` is the loop over them.

**Polish.** Where a row is still undecided (flow and slack both above 1e-9 of the row's
scale: a degenerate edge, a bound at the clearing rate; an edge is measured against its
smaller end) the interior point is only √μ exact; the method of multipliers on the
active set then finishes the component (:func:`_polish`), in a batch of those
components only, changing the side of a row whose multiplier or slack comes out
negative (an active-set method).

A component that does not converge within :data:`MAX_ITERATIONS` is returned
unconverged with the reason, for the caller to hand on.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from pricing.market.forest import Network, spanning_forest
from pricing.market.pivots import settle
from pricing.market.sparse_schur import (
    CG_RTOL,
    DirectSchur,
    ForestCG,
    Schur,
    SchurPattern,
    factor_directly,
)

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
# rows per component whose own step may stop short of the component's (per-row steps,
# :func:`_row_steps`): this share of its rows, and only while μ is above _OUTLIER_MU
_OUTLIER_SHARE = 1e-3
_OUTLIER_MU = 1e-8
_DRIFT = 1e-9  # slack drift |w − p + τ − s| / p* beyond rounding (:func:`_line_search`)
# the forest finisher (:func:`_forest_try`): first tried once a component's μ is this low,
# again after every hundredfold fall, with at most this many active-set rounds. At
# μ ≈ 1e-6 the rows the interior point has decided are the equilibrium's but for a few,
# which one to three rounds settle (issue 18's 10^4 connected segments: 3 rounds at
# μ 1.2e-6, 17 at 1.6e-5; each round costs about one interior-point iteration)
_FOREST_MU = 1e-4
_FOREST_ROUNDS = 40
_FOREST_AGAIN = 0.01  # tried again once μ has fallen this much since the last try
# rounds of a cold solve's forest (every component), from the uncoupled solution: issue
# 18's markets settle in 30–45 (10^4–10^5 segments, connected or in components of 2–50,
# 10 % bounded or not); 0: no forest first, the interior point from its own cold start
# (the path the tests hold the forest against)
_COLD_ROUNDS = 100
_ARMIJO = 1e-4
# relative slack and complementarity of a warm start: planning's copies (one lever moved
# from the anchor) take 4.1 iterations on average from 1e-5, 6.2 from 1e-3
_WARM_THETA = 1e-5
_POLISH_RHO = 1e6  # augmented-Lagrangian penalty, relative to the segment's H*/p*
_POLISH_ROUNDS = 12  # at most; it stops at rounding level
_POLISH_PASSES = 4  # active sets tried at most (:func:`_active_set`)
# clearing residual a polished component may end with: the bar the interior point accepts
# for itself once it stalls. The polish's own floor is rounding amplified by ρ: a slack's
# rounding (1e-16 p*) times ρ = 1e6 H*/p* moves a multiplier by ~1e-10 H*, and more where
# a big pool serves a small segment (1.3e-10 measured on an AVX-512 machine, 6.7e-12 on
# another), so a bar at 1e-10 sat on that floor and the answer depended on the CPU
_POLISH_CLEAR_TOL = _ACCEPT_TOL
_UNDECIDED = 1e-9  # min(x/H*, slack/p*) of a row above which its component is polished
# CG's relative residual in the interior point: this fraction of μ, between CG_RTOL and
# _CG_RTOL_MAX (a looser solve early on changes no iteration count measured)
_CG_FORCING = 0.01
_CG_RTOL_MAX = 1e-3


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


#: an interior-point iterate: rates, wages, multipliers and slacks
Start = tuple[FloatArray, FloatArray, FloatArray, FloatArray]


class _Buffer:
    """Where K's entries of the dense classes (padded, row-major per component) and of
    the sparse classes (row-major by factor entry, each row holding that entry of every
    member) sit in one flat buffer; :meth:`entry` maps segments to positions."""

    def __init__(self, comp: IntArray, sizes: IntArray, classes: _Classes) -> None:
        n_comp = sizes.size
        cls = classes.of
        self.dense = cls == -1
        self.sizes = sizes
        self.rank = _local(comp, sizes)  # a sparse component's segments in elimination order
        self.stride = np.ones(n_comp, np.int64)  # between a component's stored entries
        self.table_at = np.zeros(n_comp, np.int64)  # its pattern's table in ``where``
        self.mat_offset = np.zeros(n_comp, np.int64)
        self.rhs_offset = np.zeros(n_comp, np.int64)
        self.mat_total = self.rhs_total = 0
        # the dense components are padded to size classes, each class one batched solve
        self.padded = _SIZE_CLASSES[
            np.minimum(np.searchsorted(_SIZE_CLASSES, sizes), _SIZE_CLASSES.size - 1)
        ]
        self.buckets: list[tuple[int, int, int, int]] = []  # (size, count, mat, rhs start)
        pads = [np.zeros(0, np.int64)]
        for size in np.unique(self.padded[self.dense]).tolist():
            comps = np.flatnonzero(self.dense & (self.padded == size))
            slot = np.arange(comps.size)
            self.mat_offset[comps] = self.mat_total + slot * size * size
            self.rhs_offset[comps] = self.rhs_total + slot * size
            # a unit diagonal on padding rows keeps every matrix nonsingular
            n_pad = size - sizes[comps]
            row = np.arange(n_pad.sum()) - np.repeat(np.cumsum(n_pad) - n_pad, n_pad)
            row += np.repeat(sizes[comps], n_pad)
            pads.append(np.repeat(self.mat_offset[comps], n_pad) + row * (size + 1))
            self.buckets.append((size, comps.size, self.mat_total, self.rhs_total))
            self.mat_total += comps.size * size * size
            self.rhs_total += comps.size * size
        self.pad_diag = np.concatenate(pads)
        self.sparse: list[tuple[_Pattern, int, int, int]] = []  # (pattern, count, mat, rhs)
        self.where = self._sparse_classes(comp, classes)

    def _sparse_classes(self, comp: IntArray, classes: _Classes) -> IntArray:
        """Lay out the sparse classes; the concatenated ``where`` tables of their patterns."""
        cls = classes.of
        tables = [np.zeros(0, np.int64)]
        table_total = 0
        by_class = np.argsort(cls, kind="stable")
        n_cls = len(classes.patterns)
        class_start = np.searchsorted(cls[by_class], np.arange(n_cls + 1))
        seg_order = np.argsort(cls[comp], kind="stable")
        seg_start = np.searchsorted(cls[comp][seg_order], np.arange(n_cls + 1))
        for c, pattern in enumerate(classes.patterns):
            comps = by_class[class_start[c] : class_start[c + 1]]
            if not comps.size:  # a continuation without this class's components
                continue
            members = seg_order[seg_start[c] : seg_start[c + 1]]
            self.rank[members] = pattern.rank[self.rank[members]]
            self.mat_offset[comps] = self.mat_total + np.arange(comps.size)
            self.rhs_offset[comps] = self.rhs_total + np.arange(comps.size)
            self.stride[comps] = comps.size
            self.table_at[comps] = table_total
            self.sparse.append((pattern, comps.size, self.mat_total, self.rhs_total))
            self.mat_total += comps.size * pattern.nnz
            self.rhs_total += comps.size * pattern.size
            tables.append(pattern.where.ravel())
            table_total += pattern.size**2
        return np.concatenate(tables)

    def entry(self, c: IntArray, a: IntArray, b: IntArray) -> IntArray:
        """Buffer position of K[a, b] for segments a, b of component c."""
        out = np.empty(c.size, np.int64)
        d = self.dense[c]
        cd, cs = c[d], c[~d]
        rank = self.rank
        out[d] = self.mat_offset[cd] + rank[a[d]] * self.padded[cd] + rank[b[d]]
        inner = rank[a[~d]] * self.sizes[cs] + rank[b[~d]]
        out[~d] = self.mat_offset[cs] + self.stride[cs] * self.where[self.table_at[cs] + inner]
        return out


class _Structure:
    """Index bookkeeping of one problem, computed once: classes, pairs, reductions, and
    where each component's K lives (a dense class, a sparse class of copies, or a sparse
    Schur block of :mod:`pricing.market.sparse_schur`)."""

    def __init__(self, pb: CoupledProblem, classes: _Classes) -> None:
        comp = pb.component
        n = comp.size
        self.n_comp = int(comp.max()) + 1 if n else 0
        sizes = np.bincount(comp, minlength=self.n_comp)
        # pairs of edges out of the same pool: K[k1, k2] −= h1 h2 / Dw_j
        self.pair_e1, self.pair_e2 = _pairs(pb.pool, n)
        self.pair_seg1, self.pair_seg2 = pb.segment[self.pair_e1], pb.segment[self.pair_e2]
        self.pair_pool = pb.pool[self.pair_e1]
        large = classes.of == _LARGE
        in_buffer = ~large[comp]
        self.small = np.flatnonzero(in_buffer)  # segments whose K is in the buffer
        layout = _Buffer(comp, sizes, classes)
        self.buckets, self.sparse, self.pad_diag = layout.buckets, layout.sparse, layout.pad_diag
        self.mat_total, self.rhs_total = layout.mat_total, layout.rhs_total
        small = self.small
        self.diag = layout.entry(comp[small], small, small)
        self.rhs_index = (
            layout.rhs_offset[comp[small]] + layout.rank[small] * layout.stride[comp[small]]
        )
        k1, k2 = self.pair_seg1, self.pair_seg2
        c_pair = comp[k1]
        # a sparse factor keeps the lower triangle (in elimination order) only
        lower = in_buffer[k1] & (layout.dense[c_pair] | (layout.rank[k1] > layout.rank[k2]))
        flat = layout.entry(c_pair[lower], k1[lower], k2[lower])
        # two pools may join the same pair of segments: sum pairs per matrix entry with a
        # precomputed sort (any order of a run's pairs will do: the faster sort), and
        # write into one buffer reused every iteration
        order = np.argsort(flat)
        self.asm_e1 = self.pair_e1[lower][order]
        self.asm_e2 = self.pair_e2[lower][order]
        self.asm_pool = pb.pool[self.asm_e1]
        flat = flat[order]
        first_of_run = np.flatnonzero(np.r_[True, flat[1:] != flat[:-1]]) if flat.size else flat
        self.asm_runs = first_of_run
        self.asm_entry = flat[first_of_run]
        self.buffer = np.zeros(self.mat_total)
        self.schur = _schur_blocks(pb, sizes, large, self.pair_e1, self.pair_e2)
        self.needs_ground = any(isinstance(b, ForestCG) for b, _ in self.schur)
        self.has_cap = np.flatnonzero(np.isfinite(pb.cap))
        self.has_floor = np.flatnonzero(np.isfinite(pb.floor))
        # per-component minima and maxima by reduceat over component-sorted positions
        # (every component has segments and rows, so no run is empty)
        row_comp = comp[np.concatenate([pb.segment, self.has_cap, self.has_floor])]
        self.rows = _runs(row_comp, self.n_comp)
        self.segs = _runs(comp, self.n_comp)
        self.outliers = (_OUTLIER_SHARE * np.bincount(row_comp, minlength=self.n_comp)).astype(
            np.int64
        )

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
        skip: IntArray | None = None,
    ) -> FloatArray:
        """Per component, ``fraction`` × the largest α keeping ``value + α change``
        positive, capped at 1; with ``skip``, the largest α that keeps all but that many
        of the component's entries positive (its ``skip`` smallest ratios ignored)."""
        order, starts = runs
        with np.errstate(divide="ignore"):
            ratio = np.where(change < 0, value / -change, np.inf)
        least = np.minimum.reduceat(ratio[order], starts)
        if skip is not None:
            # few components are large enough to skip any row: one partition each
            ends = np.append(starts[1:], order.size)
            for c in np.flatnonzero(skip > 0).tolist():
                k = int(skip[c])
                least[c] = np.partition(ratio[order[starts[c] : ends[c]]], k)[k]
        out: FloatArray = np.minimum(1.0, fraction * least)
        return out


def _pairs(pool: IntArray, n: int) -> tuple[IntArray, IntArray]:
    """Every ordered pair (e1, e2) of distinct edges out of the same pool."""
    m = pool.size
    by_pool = np.argsort(pool, kind="stable")
    deg = np.bincount(pool, minlength=n)
    first = np.concatenate([[0], np.cumsum(deg)[:-1]])
    count = deg[pool]
    e1 = np.repeat(np.arange(m), count)
    within = np.arange(e1.size) - np.repeat(np.cumsum(count) - count, count)
    e2 = by_pool[first[pool[e1]] + within]
    distinct = e1 != e2  # the diagonal is assembled per edge, without cancellation
    return e1[distinct], e2[distinct]


def _schur_blocks(
    pb: CoupledProblem, sizes: IntArray, large: BoolArray, e1: IntArray, e2: IntArray
) -> list[tuple[Schur, IntArray]]:
    """The large components' K as sparse blocks: one factored directly, one solved by
    CG (:func:`factor_directly` decides per component), each with its pairs' indices."""
    comp = pb.component
    if not large.any():
        return []
    k1, k2 = pb.segment[e1], pb.segment[e2]
    in_large = large[comp[k1]]
    # distinct segment pairs per component (two pools may join the same two segments)
    key = np.unique(k1[in_large & (k1 < k2)] * comp.size + k2[in_large & (k1 < k2)])
    n_pairs = np.bincount(comp[key // comp.size], minlength=sizes.size)
    n_edges = np.bincount(comp[pb.segment], minlength=sizes.size)
    direct = np.array(
        [
            factor_directly(int(s), int(m), int(p))
            for s, m, p in zip(sizes, n_edges, n_pairs, strict=True)
        ]
    )
    blocks: list[tuple[Schur, IntArray]] = []
    for kind, chosen in ((DirectSchur, large & direct), (ForestCG, large & ~direct)):
        if not chosen.any():
            continue
        segs = np.flatnonzero(chosen[comp])
        pairs = np.flatnonzero(chosen[comp[k1]])
        block_comp = (np.cumsum(chosen) - 1)[comp[segs]]
        pattern = SchurPattern.build(segs, block_comp, k1[pairs], k2[pairs], comp.size)
        blocks.append((kind(pattern), pairs))
    return blocks


def _runs(labels: IntArray, n_comp: int) -> tuple[IntArray, IntArray]:
    """Positions sorted by component and where each component's run starts."""
    order = np.argsort(labels, kind="stable")
    starts = np.searchsorted(labels[order], np.arange(n_comp))
    return order, starts


def solve_coupled(pb: CoupledProblem, start: Start | None = None) -> CoupledSolution:
    """Clear every component of ``pb``. Cold, every component is first solved as a forest
    (:mod:`pricing.market.forest`; the rounds compiled per component up to a size,
    :mod:`pricing.market.pivots`) from the uncoupled solution — every segment served by
    its own pool — and those the forest leaves unsettled by the interior point (finished
    on a forest where its active set is decided), then an active-set polish. From a
    ``start`` (a what-if's baseline, :func:`warm_start`: its active set is mostly the
    answer's) every component is tried as a forest first, and the ones it leaves resume
    in the interior point from the forest's last state.

    Why the forest first, for components of every size and shape: measured (CPU time of
    both paths on 10^4–2·10^4 segments of :func:`random_market`), the forest takes
    0.15–0.63 of the interior point's time on components of 2–50 segments whether they
    are trees (0.21), have one extra edge per segment (0.34) or four (0.51), at zero
    friction (0.40) or frictions up to the rate (0.15), with fees in components of 10
    (0.50); on components of 100–300, where the dense systems grow with the cube of the
    size, 0.18 s against 41 s; above the dense limit, where an interior-point iteration
    is a sparse factorization or a CG solve, 10^5 connected segments take 2.6 s against
    13 s on the same loaded machine. The one structure that slows it is density: with
    10 or 20 extra edges per segment it leaves 7–32 % of the components of 2–50 stalled
    for the interior point, and the whole solve still takes 0.57 and 0.69 of the interior
    point's alone. So no component skips the forest. It is a heuristic (an active-set
    method without a proof of convergence), so the interior point stays the method that
    always answers. (The forest's answers are exact to rounding, ~1e-15; the interior
    point's within ~1e-10, so a component moves by that much between the two paths.)

    On an extreme component (a band draw with a tiny elasticity) an iterate can overflow
    or divide by zero; its residual is then NaN, which never passes a convergence test,
    so the component ends unconverged and fails verification. numpy's warnings about it
    say nothing more and are silenced.
    """
    n_comp = int(pb.component.max()) + 1
    everyone = np.ones(n_comp, bool)
    zero = np.zeros(n_comp, np.int64)
    me, mc = pb.segment.size, int(np.isfinite(pb.cap).sum())
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        if start is None:
            if _COLD_ROUNDS == 0:
                classes = _classify(pb)
                return _polish(pb, _interior_point(pb, classes), classes)
            settled, p, w, lam = _forest_try(pb, everyone, pb.p_star, pb.p_star, _COLD_ROUNDS)
            resume = None
        else:
            p, w, lam, s = start
            settled, p, w, lam = _forest_try(pb, everyone, p, w, _FOREST_ROUNDS, (lam, s))
            # the rest resume from the forest's last state, a few rows from the answer
            last = _iterate_solution(pb, p, w, np.maximum(lam, 0.0), everyone, zero)
            resume = warm_start(pb, p, last.flow, last.shortage, last.surplus)
        if settled.all():
            return _iterate_solution(pb, p, w, lam, everyone, zero)
        classes = _classify(pb)
        if resume is None:
            sub, _, _ = _subproblem(pb, ~settled)
            rest = _interior_point(sub, classes.subset(~settled))
        else:
            rest = _continue(pb, classes, ~settled, resume, MAX_ITERATIONS)
        return _polish(pb, _merge(pb, settled, p, w, lam, zero, rest, me, mc), classes)


def _forest_try(
    pb: CoupledProblem,
    ready: BoolArray,
    rate: FloatArray,
    wage: FloatArray,
    rounds: int,
    iterate: tuple[FloatArray, FloatArray] | None = None,
) -> tuple[BoolArray, FloatArray, FloatArray, FloatArray]:
    """The components ``ready`` as a forest (:mod:`pricing.market.forest`), on those
    components only, from the rates and wages given and, as the first forest, the
    home edges (the uncoupled solution) or, given an ``iterate`` (multipliers and
    slacks), the rows whose multiplier outweighs their slack, each relative to its
    scale: the components that settle exactly, and the rates, wages and multipliers
    where it left them (every component of ``ready``; the others' as given)."""
    sub, keep, keep_row = _subproblem(pb, ready)
    net = Network.build(sub)
    if iterate is None:  # the home edges: a forest on every node
        rows = np.flatnonzero(sub.pool == sub.segment)
        lam = np.zeros(keep_row.size)
    else:
        lam, s = iterate
        score = lam[keep_row] / net.hours - s[keep_row] / net.rate
        used = np.flatnonzero(score > 0)
        rows = spanning_forest(net, used, score[used]).rows
    answer = settle(net, rows, np.concatenate([wage[keep], rate[keep], [0.0]]), rounds)
    settled = np.zeros(ready.size, bool)
    settled[ready] = answer.settled
    n = net.n
    rate, wage, lam = rate.copy(), wage.copy(), lam.copy()
    rate[keep], wage[keep] = answer.price[n : 2 * n], answer.price[:n]
    lam[keep_row] = answer.flow
    return settled, rate, wage, lam


class _Rows:
    """The dual's constraint rows — edges (home edges included), then caps, then floors —
    with the maps between rows, segments and pools, and the functions of the module
    docstring that every iteration evaluates on them."""

    def __init__(self, pb: CoupledProblem, classes: _Classes) -> None:
        self.pb = pb
        self.st = st = _Structure(pb, classes)
        self.comp, self.seg, self.pool = pb.component, pb.segment, pb.pool
        self.n, self.n_comp = pb.component.size, st.n_comp
        self.money = pb.h_star * pb.p_star
        self.ic, self.jf = st.has_cap, st.has_floor
        self.me, self.mc = pb.segment.size, st.has_cap.size
        self.row_seg = np.concatenate([pb.segment, self.ic, self.jf])
        self.row_comp = self.comp[self.row_seg]
        # barrier weights: each row's money scale (module docstring)
        self.weight = self.money[self.row_seg]
        self.weight_sum = np.bincount(self.row_comp, self.weight, minlength=self.n_comp)
        self.scale = np.bincount(self.comp, self.money, minlength=self.n_comp)

    def slack(self, p: FloatArray, w: FloatArray) -> FloatArray:
        pb, ic, jf = self.pb, self.ic, self.jf
        return np.concatenate(
            [w[self.pool] - p[self.seg] + pb.friction, pb.cap[ic] - p[ic], p[jf] - pb.floor[jf]]
        )

    def adjoint(self, u: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Aᵀu split into its rate and wage parts."""
        me, mc = self.me, self.mc
        a_p: FloatArray = -np.bincount(self.seg, u[:me], minlength=self.n).astype(np.float64)
        a_p[self.ic] -= u[me : me + mc]
        a_p[self.jf] += u[me + mc :]
        return a_p, np.bincount(self.pool, u[:me], minlength=self.n).astype(np.float64)

    def bounds(self, lam: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Shortage and surplus per segment: the cap and floor multipliers."""
        shortage, surplus = np.zeros(self.n), np.zeros(self.n)
        shortage[self.ic] = lam[self.me : self.me + self.mc]
        surplus[self.jf] = lam[self.me + self.mc :]
        return shortage, surplus

    def hours(self, p: FloatArray, w: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Demand D(p) and supply S(w) of every segment and pool."""
        pb = self.pb
        demand = pb.h_star * np.exp(pb.eps * np.log(p / pb.p_star))
        supply = pb.h_star * np.exp(pb.eta * np.log(w / pb.p_star))
        return demand, supply

    def merit(
        self,
        p: FloatArray,
        w: FloatArray,
        sl: FloatArray,
        segs: IntArray | slice = slice(None),
        rows: IntArray | slice = slice(None),
    ) -> tuple[FloatArray, FloatArray]:
        """The surplus and barrier parts of φ_μ = surplus − μ·barrier per component, at
        rates p and wages w of the segments ``segs`` and slacks sl of the rows ``rows``
        (default all; other components get 0); the surplus is +inf outside the domain."""
        pb, n_comp = self.pb, self.n_comp
        at_seg, at_row = self.comp[segs], self.row_comp[rows]
        ps = pb.p_star[segs]
        log_pi = np.log(np.maximum(p, 1e-300) / ps)
        log_om = np.log(w / ps)
        b = pb.eps[segs] + 1.0
        safe_b = np.where(b == 0.0, 1.0, b)
        cs = np.where(b == 0.0, -log_pi, -np.expm1(safe_b * log_pi) / safe_b)
        eta1 = pb.eta[segs] + 1.0
        surplus = self.money[segs] * (cs + np.expm1(eta1 * log_om) / eta1)
        log_sl = self.weight[rows] * np.log(np.maximum(sl, 1e-300))
        barrier: FloatArray = np.bincount(at_row, log_sl, minlength=n_comp).astype(np.float64)
        value: FloatArray = np.bincount(at_seg, surplus, minlength=n_comp).astype(np.float64)
        bad = np.zeros(n_comp, bool)
        bad[at_row[~(sl > 0)]] = True
        bad[at_seg[~(p > 0)]] = True
        value[bad | ~np.isfinite(value) | ~np.isfinite(barrier)] = np.inf
        return value, barrier

    def row_hours(self) -> FloatArray:
        """The hours a row's multiplier is rounded against: a flow is the difference of
        its pool's hours (the larger of its two ends), a bound's its segment's."""
        hs = self.pb.h_star
        return np.concatenate([np.maximum(hs[self.seg], hs[self.pool]), hs[self.ic], hs[self.jf]])

    def cold_start(self) -> Start:
        """A strictly feasible start: uncoupled rates inside their bounds, wages just
        above the best edge, multipliers on the central path at μ = 0.1."""
        pb = self.pb
        ps = pb.p_star
        lo = np.where(np.isfinite(pb.floor), pb.floor, 0.0)
        gap = np.where(np.isfinite(pb.cap), pb.cap - lo, np.inf)
        p = np.clip(ps, lo + np.minimum(0.01 * gap, 0.01 * lo), lo + 0.99 * gap)
        w = _pool_max(self.pool, p[self.seg] - pb.friction, self.n) + 0.1 * ps
        s = self.slack(p, w)
        return p, w, _MU_START * self.weight / s, s


@dataclass(frozen=True)
class _Newton:
    """The Newton system at one iterate: h = λ/s per row, the pools' diagonal
    d_w = S′ + Σ h, and the factored K of every component."""

    h: FloatArray
    c_w: FloatArray
    d_w: FloatArray
    cw_pool: FloatArray  # c_w and d_w of every edge's pool
    dw_pool: FloatArray
    h_other: FloatArray  # h of the second edge of every pair
    factor: _Factor

    @property
    def he(self) -> FloatArray:
        return self.h[: self.cw_pool.size]


def _newton(rows: _Rows, p: FloatArray, w: FloatArray, lam: FloatArray, s: FloatArray,
            demand: FloatArray, supply: FloatArray) -> _Newton:  # fmt: skip
    """Assemble and factor the Newton system (module docstring) at an iterate."""
    st, seg, pool, n, me, mc = rows.st, rows.seg, rows.pool, rows.n, rows.me, rows.mc
    h = lam / s
    he = h[:me]
    c_p = -rows.pb.eps * demand / p  # −D′ and S′, the curvature of the surplus terms
    c_w = rows.pb.eta * supply / w
    d_w = c_w + np.bincount(pool, he, minlength=n)
    cw_pool, dw_pool, h_other = c_w[pool], d_w[pool], he[st.pair_e2]
    others = np.bincount(st.pair_e1, h_other, minlength=me)  # Σ h over the pool's other edges
    k_diag = c_p + np.bincount(seg, he * (cw_pool + others) / dw_pool, minlength=n)
    k_diag[rows.ic] += h[me : me + mc]
    k_diag[rows.jf] += h[me + mc :]
    ground = None
    if st.needs_ground:  # K's diagonal without the pairs' weights, summed apart
        ground = c_p + np.bincount(seg, he * cw_pool / dw_pool, minlength=n)
        ground[rows.ic] += h[me : me + mc]
        ground[rows.jf] += h[me + mc :]
    factor = _schur(st, he, k_diag, d_w, ground)
    return _Newton(h, c_w, d_w, cw_pool, dw_pool, h_other, factor)


def _rhs(
    rows: _Rows, nt: _Newton, u: FloatArray, r_p: FloatArray, r_w: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Right-hand side of the rate system, and the wage part, for target u."""
    b_p, b_w = rows.adjoint(u)
    rhs_p, rhs_w = -r_p - b_p, -r_w - b_w
    spread = np.bincount(rows.seg, nt.he * rhs_w[rows.pool] / nt.dw_pool, minlength=rows.n)
    return rhs_p + spread, rhs_w


def _slack_step(
    rows: _Rows, nt: _Newton, dp: FloatArray, rhs_w: FloatArray, u: FloatArray, r_s: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Slack and multiplier steps that go with the rate step ``dp``."""
    st = rows.st
    # Δs on edges written so that the large h of active edges cancels exactly
    moved = nt.h_other * (dp[st.pair_seg2] - dp[st.pair_seg1])
    spread = np.bincount(st.pair_e1, moved, minlength=rows.me)
    ds_e = (rhs_w[rows.pool] - nt.cw_pool * dp[rows.seg] + spread) / nt.dw_pool
    ds = np.concatenate([ds_e, -dp[rows.ic], dp[rows.jf]]) + r_s
    return ds, -u - nt.h * ds


@dataclass
class _Progress:
    """Per component: iterations, the best clearing residual so far and for how many
    iterations it has not halved, and the φ parts at the current iterate (if known)."""

    iterations: IntArray
    best: FloatArray
    stalled: IntArray
    parts: tuple[FloatArray, FloatArray] | None = None


@dataclass(frozen=True)
class _Assessment:
    """An iterate's clearing residuals r = ∇f − Aᵀλ, slack drift, μ and convergence."""

    demand: FloatArray
    supply: FloatArray
    r_p: FloatArray
    r_w: FloatArray
    r_s: FloatArray
    mu: FloatArray
    residual: FloatArray  # worst relative clearing residual per component
    converged: BoolArray


def _assess(
    rows: _Rows, p: FloatArray, w: FloatArray, lam: FloatArray, s: FloatArray, pr: _Progress
) -> _Assessment:
    """Residuals and the convergence test of the module docstring (updates ``pr``)."""
    demand, supply = rows.hours(p, w)
    a_p, a_w = rows.adjoint(lam)
    r_p, r_w = -demand - a_p, supply - a_w  # ∇f − Aᵀλ: minus the clearing residuals
    # the slacks are variables of their own (w − p + τ of an active edge is far below
    # the rounding of w and p); r_s is their drift from the rates, kept at rounding
    r_s = rows.slack(p, w) - s
    mu = np.bincount(rows.row_comp, lam * s, minlength=rows.n_comp) / rows.weight_sum
    # each balance against the size of its own terms (a floor or a big pool can put
    # far more hours through a segment than its H*), so rounding is never "residual"
    shortage, surplus = rows.bounds(lam)
    size_p = demand + np.abs(a_p) + 2.0 * (shortage + surplus)
    size_w = supply + a_w
    residual = rows.st.seg_max(np.maximum(np.abs(r_p) / size_p, np.abs(r_w) / size_w))
    # rounding in the barrier Hessian limits the attainable accuracy; a component
    # whose residual has stopped improving below _ACCEPT_TOL is done
    pr.stalled = np.where(residual < 0.5 * pr.best, 0, pr.stalled + 1)
    pr.best = np.minimum(pr.best, residual)
    converged = ((mu <= _MU_FINAL) & (residual <= _RESIDUAL_TOL)) | (
        (mu <= _MU_ACCEPT) & (residual <= _ACCEPT_TOL) & (pr.stalled >= 5)
    )
    return _Assessment(demand, supply, r_p, r_w, r_s, mu, residual, converged)


def _direction(
    rows: _Rows, p: FloatArray, w: FloatArray, lam: FloatArray, s: FloatArray, a: _Assessment
) -> tuple[FloatArray, ...]:
    """Mehrotra's direction (dp, dw, ds, dλ) and its centring target μ_t per component.
    The step is affine in the target: one solve for u = λ and one for the unit centring
    direction m/s, mixed for Mehrotra's σ without refactoring."""
    nt = _newton(rows, p, w, lam, s, a.demand, a.supply)
    comp, row_comp, n = rows.comp, rows.row_comp, rows.n
    zero = np.zeros(n)
    rhs_a, rhs_w_a = _rhs(rows, nt, lam + nt.h * a.r_s, a.r_p, a.r_w)
    rhs_c, rhs_w_c = _rhs(rows, nt, rows.weight / s, zero, zero)
    # inexact Newton where K is solved by CG: the direction needs a residual well below
    # the complementarity still to remove, 1e-13 of the right-hand side in the end
    rtol = float(np.clip(_CG_FORCING * a.mu.max(initial=0.0), CG_RTOL, _CG_RTOL_MAX))
    dp_a, dp_c = _solve(rows.st, nt.factor, rhs_a, rhs_c, rtol=rtol)
    # predictor: the affine step sets the centring target (σ = (μ_aff/μ)³)
    ds, dl = _slack_step(rows, nt, dp_a, rhs_w_a, lam, a.r_s)
    skip = _skip(rows, a.mu)
    a_pri = rows.st.step(rows.st.rows, s, ds, 1.0, skip)
    a_dual = rows.st.step(rows.st.rows, lam, dl, 1.0, skip)
    s_aff = s + _row_steps(rows, s, ds, a_pri, 1.0) * ds
    l_aff = lam + _row_steps(rows, lam, dl, a_dual, 1.0) * dl
    mu_aff = np.bincount(row_comp, s_aff * l_aff, minlength=rows.n_comp) / rows.weight_sum
    sigma = np.clip((mu_aff / np.maximum(a.mu, 1e-300)) ** 3, 0.0, 1.0)
    mu_t = np.maximum(sigma * a.mu, 0.1 * _MU_FINAL)
    target = mu_t[row_comp] * rows.weight / s
    dp = dp_a - mu_t[comp] * dp_c
    rhs_w = rhs_w_a - mu_t[comp] * rhs_w_c
    dw = (rhs_w + np.bincount(rows.pool, nt.he * dp[rows.seg], minlength=n)) / nt.d_w
    ds, dl = _slack_step(rows, nt, dp, rhs_w, lam - target, a.r_s)
    return dp, dw, ds, dl, mu_t, target


def _skip(rows: _Rows, mu: FloatArray) -> IntArray:
    """Rows per component whose own step may fall short of the component's."""
    out: IntArray = np.where(mu > _OUTLIER_MU, rows.st.outliers, 0)
    return out


def _row_steps(
    rows: _Rows,
    value: FloatArray,
    change: FloatArray,
    step: FloatArray,
    fraction: float | FloatArray,
) -> FloatArray:
    """Per row: its component's ``step``, or ``fraction`` of the way to its boundary
    where that is shorter (a row the component's step skipped, :meth:`_Structure.step`)."""
    out: FloatArray = np.minimum(step[rows.row_comp], np.asarray(fraction) * _ratio(value, change))
    return out


def _line_search(
    rows: _Rows,
    it: Start,
    d: tuple[FloatArray, ...],
    a: _Assessment,
    pr: _Progress,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """The step: per component for the rates and wages, per row for the slacks and the
    multipliers. A component steps a fraction of the way to the boundary of all but its
    :data:`_OUTLIER_SHARE` rows that block first (while μ > :data:`_OUTLIER_MU`); those
    rows go that fraction of the way to their own boundary instead. Why: in one
    component of 10^4–10^5 segments there are always a few rows switching between used
    and unused, and with one step for all they cap it at 0.1–0.6 for most of the
    iterations (73 iterations on 10^4 connected segments, 136 on 10^5; with the per-row
    steps 23–32 and ~40). A row cut short leaves its slack apart from w − p + τ (or its
    multiplier apart from the clearing balance) by what it did not step, which the next
    Newton step corrects; below _OUTLIER_MU every row takes the component's step again,
    since there the drift would meet the ~1/μ weights of the active rows.

    Then Armijo backtracking on φ_μt for the rates and wages (the direction is a descent
    direction of φ_μt because the primal–dual Hessian is positive definite); a cut
    shortens the rows' steps with it. Near the solution φ differences drown in rounding
    and the full step is taken untested, and so is the step of a component whose slacks
    have drifted (φ, a function of the slacks, then does not follow the step). Updates
    ``pr.parts`` to φ's parts at the step taken (None if unknown)."""
    p, w, lam, s = it
    dp, dw, ds, dl, mu_t, target = d
    st, comp, row_comp = rows.st, rows.comp, rows.row_comp
    fraction = np.maximum(_BOUNDARY, 1.0 - 10.0 * a.mu)  # → 1 as μ → 0: full final steps
    skip = _skip(rows, a.mu)
    a_pri = np.minimum(st.step(st.rows, s, ds, fraction, skip), st.step(st.segs, p, dp, fraction))
    a_pri = np.minimum(a_pri, st.step(st.segs, w, dw, fraction))
    a_dual = st.step(st.rows, lam, dl, fraction, skip)
    frac_row = fraction[row_comp]
    g_p, g_w = rows.adjoint(target)
    slope = np.bincount(comp, (-a.demand - g_p) * dp + (a.supply - g_w) * dw, minlength=rows.n_comp)
    # φ takes the slacks as they are: where rows cut short have left them apart from
    # w − p + τ, its values do not follow the Newton step, which is then taken untested
    drift = np.zeros(rows.n_comp, bool)
    drift[row_comp[np.abs(a.r_s) > _DRIFT * rows.pb.p_star[rows.row_seg]]] = True
    tested = ~a.converged & ~drift & (slope < -1e-9 * rows.scale)

    def steps() -> tuple[FloatArray, FloatArray, FloatArray]:
        return (
            a_pri,
            _row_steps(rows, s, ds, a_pri, frac_row),
            _row_steps(rows, lam, dl, a_dual, frac_row),
        )

    if not tested.any():
        pr.parts = None
        return steps()
    if pr.parts is None:
        pr.parts = rows.merit(p, w, s)
    phi0 = pr.parts[0] - mu_t * pr.parts[1]
    a_seg = a_pri[comp]
    s_step = _row_steps(rows, s, ds, a_pri, frac_row)
    value, barrier = rows.merit(p + a_seg * dp, w + a_seg * dw, s + s_step * ds)
    failed = tested & (value - mu_t * barrier > phi0 + _ARMIJO * a_pri * slope)
    for _ in range(50):
        if not failed.any():
            pr.parts = value, barrier
            return steps()
        a_pri[failed] *= 0.5
        a_dual[failed] = np.minimum(a_dual[failed], a_pri[failed])
        # only the components that failed are tried again
        segs, rws = np.flatnonzero(failed[comp]), np.flatnonzero(failed[row_comp])
        a_seg = a_pri[comp[segs]]
        s_step = np.minimum(a_pri[row_comp[rws]], frac_row[rws] * _ratio(s[rws], ds[rws]))
        trial = rows.merit(
            p[segs] + a_seg * dp[segs], w[segs] + a_seg * dw[segs], s[rws] + s_step * ds[rws],
            segs, rws,
        )  # fmt: skip
        value[failed], barrier[failed] = trial[0][failed], trial[1][failed]
        failed &= value - mu_t * barrier > phi0 + _ARMIJO * a_pri * slope
    pr.parts = None  # the last trial was not the step taken
    return steps()


def _ratio(value: FloatArray, change: FloatArray) -> FloatArray:
    """How far each entry may move along ``change`` before it reaches 0 (inf: never)."""
    with np.errstate(divide="ignore"):
        out: FloatArray = np.where(change < 0, value / -change, np.inf)
    return out


def _interior_point(
    pb: CoupledProblem,
    classes: _Classes,
    start: Start | None = None,
    budget: int = MAX_ITERATIONS,
) -> CoupledSolution:
    """Clear every component of ``pb`` (module docstring); never raises on hard inputs.

    ``classes`` are its components' classes (:func:`_classify`); ``start`` is a strictly
    feasible (rates, wages, multipliers, slacks) to continue from and ``budget`` the
    iterations left; both serve the compaction below.
    """
    rows = _Rows(pb, classes)
    p, w, lam, s = rows.cold_start() if start is None else start
    n_comp = rows.n_comp
    pr = _Progress(np.zeros(n_comp, np.int64), np.full(n_comp, np.inf), np.zeros(n_comp, np.int64))
    a = _assess(rows, p, w, lam, s, pr)
    # the finisher saves large components' costly iterations; a dense component's last
    # iterations cost less than a try (10^4 segments in components of 10: 0.19 s
    # without tries, 0.22 s with)
    large = classes.of == _LARGE
    tried = np.full(n_comp, np.inf)  # μ of each component's last forest try
    settled = np.zeros(n_comp, bool)
    # an iterate that overflowed (NaN residual) never recovers: its component stops
    # there, unconverged, instead of spending the rest of the budget (a band draw with
    # an elasticity near 0 in a connected component: 200 iterations of the whole block)
    lost = np.zeros(n_comp, bool)
    for _ in range(budget):
        ready = large & ~a.converged & (a.mu <= _FOREST_MU) & (a.mu <= _FOREST_AGAIN * tried)
        if ready.any():
            done, fp, fw, flam = _forest_try(pb, ready, p, w, _FOREST_ROUNDS, (lam, s))
            # the settled components take the forest's answer; the others stay on the path
            seg, row = done[rows.comp], done[rows.row_comp]
            p, w, lam = np.where(seg, fp, p), np.where(seg, fw, w), np.where(row, flam, lam)
            tried[ready] = a.mu[ready]
            settled |= done
        a = replace(a, converged=a.converged | settled)
        lost |= np.isnan(a.residual) & ~a.converged
        done = a.converged | lost
        if done.all():
            break
        if 2 * done.sum() >= n_comp > 1:
            # most components are done: continue with the rest only, so a few slow
            # components do not keep the finished ones in every batched solve
            used = budget - int(pr.iterations.max())
            rest = _continue(pb, classes, ~done, (p, w, lam, s), used)
            out = _merge(pb, done, p, w, lam, pr.iterations, rest, rows.me, rows.mc)
            out.converged[lost] = False
            for c in np.flatnonzero(lost).tolist():
                out.reason[c] = _LOST
            return out
        pr.iterations[~done] += 1
        d = _direction(rows, p, w, lam, s, a)
        a_pri, s_step, l_step = _line_search(rows, (p, w, lam, s), d, a, pr)
        a_pri[done] = 0.0
        still = ~done[rows.row_comp]
        dp, dw, ds, dl = d[:4]
        p = p + a_pri[rows.comp] * dp
        w = w + a_pri[rows.comp] * dw
        lam = lam + np.where(still, l_step, 0.0) * dl
        s = s + np.where(still, s_step, 0.0) * ds
        a = _assess(rows, p, w, lam, s, pr)
    reason = [
        ""
        if ok
        else _LOST
        if gone
        else f"interior point did not converge in {MAX_ITERATIONS} iterations "
        f"(clearing residual {r:.1e} of the segment's hours)"
        for ok, gone, r in zip(a.converged, lost, a.residual, strict=True)
    ]
    return _iterate_solution(pb, p, w, lam, a.converged, pr.iterations, reason)


_LOST = "interior point: its iterate overflowed (curves too flat or steep for floating point)"


def _iterate_solution(
    pb: CoupledProblem,
    p: FloatArray,
    w: FloatArray,
    lam: FloatArray,
    converged: BoolArray,
    iterations: IntArray,
    reason: list[str] | None = None,
) -> CoupledSolution:
    """An iterate as a solution: the multipliers as flows, shortages and surpluses."""
    ic, jf = np.flatnonzero(np.isfinite(pb.cap)), np.flatnonzero(np.isfinite(pb.floor))
    me, mc = pb.segment.size, ic.size
    shortage, surplus = np.zeros(p.size), np.zeros(p.size)
    shortage[ic], surplus[jf] = lam[me : me + mc], lam[me + mc :]
    why = [""] * converged.size if reason is None else reason
    return CoupledSolution(p, w, lam[:me], shortage, surplus, converged, iterations, why)


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
    w = _pool_max(pb.pool, p[pb.segment] - pb.friction, p.size) + theta * ps
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


def _row_scale(pb: CoupledProblem) -> FloatArray:
    """The hours a row's multiplier is judged against when the polish decides whether
    the row is active: a bound's segment's H*, and the smaller end's for an edge, which
    carries at most that much (against the segment alone, a thin pool's flow into a
    segment 10^7 times its size looked negligible while it was a 1e-3 share of the
    pool, and the component was never polished)."""
    hs = pb.h_star
    ic, jf = np.flatnonzero(np.isfinite(pb.cap)), np.flatnonzero(np.isfinite(pb.floor))
    return np.concatenate([np.minimum(hs[pb.segment], hs[pb.pool]), hs[ic], hs[jf]])


def _pool_max(pool: IntArray, values: FloatArray, n: int) -> FloatArray:
    """The largest of ``values`` over each pool's edges (each pool has its home edge)."""
    order = np.argsort(pool, kind="stable")
    out: FloatArray = np.maximum.reduceat(values[order], np.searchsorted(pool[order], np.arange(n)))
    return out


def _continue(
    pb: CoupledProblem, classes: _Classes, keep_comp: BoolArray, it: Start, budget: int
) -> CoupledSolution:
    """Solve the components ``keep_comp`` of ``pb`` from the iterate ``it``."""
    sub, keep, keep_row = _subproblem(pb, keep_comp)
    p, w, lam, s = it
    start = (p[keep], w[keep], lam[keep_row], s[keep_row])
    return _interior_point(sub, classes.subset(keep_comp), start, max(budget, 0))


def _subproblem(
    pb: CoupledProblem, keep_comp: BoolArray
) -> tuple[CoupledProblem, BoolArray, BoolArray]:
    """The components ``keep_comp`` of ``pb`` as a problem of their own, with the masks of
    its segments and of its constraint rows (edges, caps, floors) in ``pb``."""
    keep = keep_comp[pb.component]
    local = np.cumsum(keep) - 1
    keep_edge = keep[pb.segment]
    sub = CoupledProblem(
        component=(np.cumsum(keep_comp) - 1)[pb.component[keep]],
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
    keep_row = np.concatenate([keep_edge, keep[np.isfinite(pb.cap)], keep[np.isfinite(pb.floor)]])
    return sub, keep, keep_row


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


def _polish(pb: CoupledProblem, sol: CoupledSolution, classes: _Classes) -> CoupledSolution:
    """Finish each component exactly on its active set (rows whose multiplier outweighs
    their slack): the method of multipliers for

        minimize Σ CS + Σ PS   subject to   s_i(p, w) = 0 on the active rows,

    one Newton step on the augmented Lagrangian per round,
    (∇²f + ρ AᵀA) Δv = −(∇f − Aᵀ(λ − ρ s)), then λ ← λ − ρ s. With ρ = 1e6 × H/p* (H the
    row's scale, :func:`_row_scale`: its update ρ s must stay above the rounding of s) a round
    gains about six digits where a row's pool and segment are alike, fewer where a big pool
    serves a small segment, so it runs up to 12 rounds, stopping at rounding level (once
    no component's clearing residual gains tenfold any more); the same class batches
    solve it. Where the
    interior point stopped at √μ accuracy — a degenerate edge with both flow and reduced
    cost near zero, a floor at the clearing rate — this makes rates and flows exact. Only
    the components with a row still undecided (both x/H* and slack/p* above 1e-9) are
    polished, as a batch of their own; one keeps its interior-point answer if the polish
    leaves a negative multiplier or slack, or clears worse than 1e-9."""
    ic, jf = np.flatnonzero(np.isfinite(pb.cap)), np.flatnonzero(np.isfinite(pb.floor))
    row_seg = np.concatenate([pb.segment, ic, jf])
    lam = np.concatenate([sol.flow, sol.shortage[ic], sol.surplus[jf]])
    p, w = sol.rate, sol.wage
    slack = np.concatenate(
        [w[pb.pool] - p[pb.segment] + pb.friction, pb.cap[ic] - p[ic], p[jf] - pb.floor[jf]]
    )
    undecided = np.minimum(lam / _row_scale(pb), slack / pb.p_star[row_seg]) > _UNDECIDED
    needs = np.zeros(sol.converged.size, bool)
    needs[pb.component[row_seg[undecided]]] = True
    if not needs.any():
        return sol
    sub, keep, keep_row = _subproblem(pb, needs)
    edge = keep_row[: pb.segment.size]
    reason = [r for r, k in zip(sol.reason, needs.tolist(), strict=True) if k]
    part = CoupledSolution(
        p[keep], w[keep], sol.flow[edge], sol.shortage[keep], sol.surplus[keep],
        sol.converged[needs], sol.iterations[needs], reason,
    )  # fmt: skip
    done = _active_set(sub, part, classes.subset(needs))
    rate, wage, flow = p.copy(), w.copy(), sol.flow.copy()
    shortage, surplus = sol.shortage.copy(), sol.surplus.copy()
    rate[keep], wage[keep], flow[edge] = done.rate, done.wage, done.flow
    shortage[keep], surplus[keep] = done.shortage, done.surplus
    return CoupledSolution(
        rate, wage, flow, shortage, surplus, sol.converged, sol.iterations, sol.reason
    )


def _active_set(pb: CoupledProblem, sol: CoupledSolution, classes: _Classes) -> CoupledSolution:
    """The polish (:func:`_polish`) of components that each have an undecided row.

    The first active set is the rows whose multiplier outweighs their slack. Where a
    row is degenerate (a bound at the clearing rate: multiplier and slack both ~√μ) that
    guess can be wrong either way, which shows after the rounds as a multiplier below 0
    or an inactive row's slack below 0; such rows change sides and the rounds run again
    from there, up to :data:`_POLISH_PASSES` times (an active-set method)."""
    rows = _Rows(pb, classes)
    ps, row_seg = pb.p_star, rows.row_seg
    p, w = sol.rate.copy(), sol.wage.copy()
    lam = np.concatenate([sol.flow, sol.shortage[rows.ic], sol.surplus[rows.jf]])
    active = lam / _row_scale(pb) > rows.slack(p, w) / ps[row_seg]
    before = _clearing(rows, p, w, lam)[4]
    lam = np.where(active, lam, 0.0)
    row_hours = rows.row_hours()
    for _ in range(_POLISH_PASSES):
        rounds = _polish_rounds(rows, p, w, lam, active)
        if rounds is None:
            return sol
        p, w, lam = rounds
        wrong = np.where(active, lam < -1e-10 * row_hours, rows.slack(p, w) < -1e-12 * ps[row_seg])
        if not wrong.any():
            break
        active = active ^ wrong
        lam = np.where(active, np.maximum(lam, 0.0), 0.0)
    return _polished(rows, sol, p, w, lam, active, before)


def _polish_rounds(
    rows: _Rows, p: FloatArray, w: FloatArray, lam: FloatArray, active: BoolArray
) -> tuple[FloatArray, FloatArray, FloatArray] | None:
    """The method of multipliers on the rows ``active`` (:func:`_polish`) until rounding
    level; None if a rate or wage leaves the domain."""
    hs, ps, row_seg = rows.pb.h_star, rows.pb.p_star, rows.row_seg
    rho = np.where(active, _POLISH_RHO * _row_scale(rows.pb) / ps[row_seg], 0.0)
    best = np.full(rows.n_comp, np.inf)
    stalled = np.zeros(rows.n_comp, np.int64)
    done = np.zeros(rows.n_comp, bool)
    for _ in range(_POLISH_ROUNDS):
        g = np.where(active, rows.slack(p, w), 0.0)
        r_p, r_w, demand, supply, worst = _clearing(rows, p, w, lam - rho * g)
        # rounding level: the residuals vanish, or every component's has once gone two
        # rounds without a tenfold gain (a working round gains several digits; rounding
        # noise scatters the residual by a few times, so a lower bar would restart it)
        stalled = np.where(worst < 0.1 * best, 0, stalled + 1)
        best = np.minimum(best, worst)
        done |= stalled >= 2
        if done.all() or (
            np.maximum(np.abs(r_p), np.abs(r_w)).max() <= 1e-14 * hs.max()
            and (np.abs(g) <= 1e-15 * ps[row_seg]).all()
        ):
            break
        dp, dw = _augmented_step(rows, rho, r_p, r_w, demand, supply, p, w)
        p, w = p + dp, w + dw
        if not ((p > 0).all() and (w > 0).all()):
            return None
        lam = lam - rho * np.where(active, rows.slack(p, w), 0.0)
    return p, w, lam


def _clearing(
    rows: _Rows, p: FloatArray, w: FloatArray, lam: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """∇f − Aᵀλ (minus the clearing residuals of segments and pools), demand and supply,
    and the worst relative clearing residual per component (each node against its own
    hours)."""
    a_p, outflow = rows.adjoint(lam)
    demand, supply = rows.hours(p, w)
    r_p, r_w = -a_p - demand, supply - outflow
    worst = rows.st.seg_max(np.maximum(np.abs(r_p) / demand, np.abs(r_w) / supply))
    return r_p, r_w, demand, supply, worst


def _augmented_step(
    rows: _Rows,
    rho: FloatArray,
    r_p: FloatArray,
    r_w: FloatArray,
    demand: FloatArray,
    supply: FloatArray,
    p: FloatArray,
    w: FloatArray,
) -> tuple[FloatArray, FloatArray]:
    """One Newton step (Δp, Δw) on the augmented Lagrangian: the interior point's system
    with ρ in place of h = λ/s (0 on the inactive rows)."""
    pb, st, seg, pool, n, me, mc = rows.pb, rows.st, rows.seg, rows.pool, rows.n, rows.me, rows.mc
    he = rho[:me]
    c_p = -pb.eps * demand / p
    c_w = pb.eta * supply / w
    d_w = c_w + np.bincount(pool, he, minlength=n)
    others = np.bincount(st.pair_e1, he[st.pair_e2], minlength=me)
    k_diag = c_p + np.bincount(seg, he * (c_w[pool] + others) / d_w[pool], minlength=n)
    k_diag[rows.ic] += rho[me : me + mc]
    k_diag[rows.jf] += rho[me + mc :]
    ground = None
    if st.needs_ground:
        ground = c_p + np.bincount(seg, he * c_w[pool] / d_w[pool], minlength=n)
        ground[rows.ic] += rho[me : me + mc]
        ground[rows.jf] += rho[me + mc :]
    factor = _schur(st, he, k_diag, d_w, ground)
    rhs = -r_p + np.bincount(seg, he * -r_w[pool] / d_w[pool], minlength=n)
    (dp,) = _solve(st, factor, rhs)
    dw = (-r_w + np.bincount(pool, he * dp[seg], minlength=n)) / d_w
    return dp, dw


def _polished(
    rows: _Rows,
    sol: CoupledSolution,
    p: FloatArray,
    w: FloatArray,
    lam: FloatArray,
    active: BoolArray,
    before: FloatArray,
) -> CoupledSolution:
    """The polish's answer, component by component where it is one: no negative
    multiplier or slack beyond rounding, and clearing no worse than the interior point
    (or than :data:`_POLISH_CLEAR_TOL`)."""
    pb, comp, me, mc, ic, jf = rows.pb, rows.comp, rows.me, rows.mc, rows.ic, rows.jf
    ps, row_seg, row_comp = pb.p_star, rows.row_seg, rows.row_comp
    s = rows.slack(p, w)
    after = _clearing(rows, p, w, lam)[4]
    bad_row = np.where(active, lam < -1e-10 * rows.row_hours(), s < -1e-12 * ps[row_seg])
    bad = np.zeros(rows.n_comp, bool)
    bad[row_comp[bad_row]] = True
    # the polish trades the interior point's √μ complementarity error for exactness;
    # its clearing residual may end a little above the interior point's tiny one, but a
    # result that clears worse than _ACCEPT_TOL (or is not finite) is not taken
    bad |= ~(after <= np.maximum(10.0 * before, _POLISH_CLEAR_TOL))
    keep = bad[comp]
    p[keep], w[keep] = sol.rate[keep], sol.wage[keep]
    lam = np.maximum(lam, 0.0)
    flow = np.where(bad[row_comp[:me]], sol.flow, lam[:me])
    shortage, surplus = sol.shortage.copy(), sol.surplus.copy()
    shortage[ic] = np.where(bad[comp[ic]], sol.shortage[ic], lam[me : me + mc])
    surplus[jf] = np.where(bad[comp[jf]], sol.surplus[jf], lam[me + mc :])
    return CoupledSolution(p, w, flow, shortage, surplus, sol.converged, sol.iterations, sol.reason)


def _schur(
    st: _Structure, he: FloatArray, k_diag: FloatArray, d_w: FloatArray, ground: FloatArray | None
) -> _Factor:
    """K = diag(d_p) − B diag(d_w)⁻¹ Bᵀ (B_kj = h_jk) of every component, ``k_diag`` its
    diagonal (already reduced) and ``ground`` its diagonal without the pairs' weights
    (needed by the CG blocks only): the dense classes' matrices, the sparse classes'
    Cholesky factors and the sparse Schur blocks' factors."""
    # every iteration writes the same entries (pairs off the diagonal, the diagonal, the
    # padding), so the rest of the buffer keeps the zeros it was created with: no
    # refill of the whole (mostly zero) buffer, which dominated large batches
    k_flat = st.buffer
    if st.asm_runs.size:
        values = -he[st.asm_e1] * he[st.asm_e2] / d_w[st.asm_pool]
        k_flat[st.asm_entry] = np.add.reduceat(values, st.asm_runs)
    k_flat[st.diag] = k_diag[st.small]
    k_flat[st.pad_diag] = 1.0
    matrices = [
        k_flat[start : start + count * size * size].reshape(count, size, size)
        for size, count, start, _ in st.buckets
    ]
    # the fill of a sparse factor starts from the buffer's zeros: factor a copy
    factors = [
        _cholesky(pattern, k_flat[start : start + count * pattern.nnz].reshape(-1, count).copy())
        for pattern, count, start, _ in st.sparse
    ]
    blocks: list[Schur | _Unfactored] = []
    for block, pairs in st.schur:
        e1, e2 = st.pair_e1[pairs], st.pair_e2[pairs]
        values = -he[e1] * he[e2] / d_w[st.pair_pool[pairs]]
        segs = block.pattern.segs
        try:
            blocks.append(
                block.factor(
                    values, k_diag[segs], ground[segs] if ground is not None else k_diag[segs]
                )
            )
        except RuntimeError:  # qdldl: K is not quasi-definite
            blocks.append(_Unfactored(block.pattern))
    return matrices, factors, blocks


@dataclass(frozen=True)
class _Unfactored:
    """A sparse Schur block qdldl could not factor: an iterate that overflowed puts NaN in
    K (a band draw with an elasticity near 0 in a connected component). Its solves are
    NaN, so its components' residuals turn NaN and they stop there, unconverged
    (:func:`_interior_point`), instead of the exception ending the whole solve."""

    pattern: SchurPattern

    def solve(self, b: FloatArray, rtol: float) -> FloatArray:
        return np.full_like(b, np.nan)


def _dense_solve(mats: FloatArray, b: FloatArray) -> FloatArray:
    """``mats⁻¹ b`` for a batch of dense matrices. A matrix LU cannot factor (singular,
    or NaN from an iterate that overflowed: a band's extreme drawn copy) gives NaN steps,
    so its component stops unconverged, as a Schur block qdldl cannot factor does, instead
    of the exception ending the solve of the whole batch. That path solves the batch's
    matrices one by one; it is met only on such copies."""
    try:
        solved: FloatArray = np.asarray(np.linalg.solve(mats, b), np.float64)
        return solved
    except np.linalg.LinAlgError:
        out: FloatArray = np.full(b.shape, np.nan)
        for i in range(mats.shape[0]):  # the failure path only
            try:
                out[i] = np.linalg.solve(mats[i], b[i])
            except np.linalg.LinAlgError:
                continue
        return out


def _solve(
    st: _Structure, factor: _Factor, *rhs: FloatArray, rtol: float = CG_RTOL
) -> tuple[FloatArray, ...]:
    """K⁻¹ b for each b in ``rhs``: one batched LU per dense class, two triangular solves
    per sparse class, and each sparse Schur block's solve (CG to ``rtol``)."""
    matrices, factors, blocks = factor
    k = len(rhs)
    b_all = np.stack(rhs, axis=1)
    padded = np.zeros((st.rhs_total, k))
    padded[st.rhs_index] = b_all[st.small]
    for mats, (size, count, _, start) in zip(matrices, st.buckets, strict=True):
        b = padded[start : start + count * size].reshape(count, size, k)
        padded[start : start + count * size] = _dense_solve(mats, b).reshape(-1, k)
    for values, (pattern, count, _, start) in zip(factors, st.sparse, strict=True):
        # members last, so each operation runs along contiguous memory
        region = padded[start : start + count * pattern.size].reshape(pattern.size, count, k)
        y = np.ascontiguousarray(region.transpose(0, 2, 1))
        _substitute(pattern, values, y)
        region[...] = y.transpose(0, 2, 1)
    out = np.empty_like(b_all)
    out[st.small] = padded[st.rhs_index]
    for block in blocks:
        segs = block.pattern.segs
        try:
            out[segs] = block.solve(b_all[segs], rtol)
        except RuntimeError:  # a forest chosen anew that qdldl cannot factor (_Unfactored)
            out[segs] = np.nan
    return tuple(out[:, j] for j in range(k))


# --------------------------------------------------------------------------- sparse classes
@dataclass(frozen=True)
class _Level:
    """One level of a pattern's elimination tree: columns t no two of which depend on
    each other, every array a list of factor storage rows unless said otherwise."""

    cols: IntArray  # the columns (elimination positions)
    diag: IntArray  # their diagonals
    sub: IntArray  # the entries L_it below them
    sub_diag: IntArray  # the diagonal of each one's column
    sub_row: IntArray  # each one's i (an elimination position)
    sub_col: IntArray  # each one's t (an elimination position)
    s1: IntArray  # outer-product updates L_ij −= L_it L_jt: L_it …
    s2: IntArray  # … and L_jt
    target: IntArray  # the distinct L_ij updated
    by_target: Any  # sparse (targets × updates): sums each target's updates
    rows: IntArray  # the distinct i of ``sub`` (elimination positions)
    by_row: Any  # sparse (rows × sub): sums over each i
    cols_below: IntArray  # the columns with entries below the diagonal
    by_col: Any  # sparse (cols_below × sub): sums over each t


@dataclass(frozen=True)
class _Pattern:
    """Symbolic Cholesky factorization K = L Lᵀ of one sparsity pattern, in elimination
    order t = rank[local segment] (greedy minimum degree). ``where[i, j]`` is the storage
    row of L_ij (i ≥ j; −1 outside the factor's pattern); a column's rows are the
    diagonal, then the entries below it. Columns are scheduled in levels of the
    elimination tree (a column's level is one above its highest child's), so the columns
    of a level are independent and each level is a handful of array operations over
    every member of the class at once; sums over a level's entries are products with
    sparse 0/1 matrices (far faster than ``reduceat`` along the first axis)."""

    size: int
    rank: IntArray
    where: IntArray
    nnz: int
    levels: list[_Level]


#: the factored K of every component: dense classes' matrices, sparse classes' factors,
#: the sparse Schur blocks
_Factor = tuple[list[FloatArray], list[FloatArray], list[Schur | _Unfactored]]

#: ``_Classes.of`` of a component above :data:`MAX_DENSE`: a sparse Schur block
_LARGE = -2

#: a pattern of K shared by at least this many components is factored sparse: the
#: symbolic work and the per-level array calls are then spread over its copies
_SPARSE_COPIES = 8


@dataclass(frozen=True)
class _Classes:
    """The sparse class of every component (−1: a dense size class) and each class's
    symbolic factorization."""

    of: IntArray
    patterns: list[_Pattern]

    def subset(self, keep: BoolArray) -> _Classes:
        return _Classes(self.of[keep], self.patterns)


def _local(comp: IntArray, sizes: IntArray) -> IntArray:
    """Every segment's position within its component."""
    order = np.argsort(comp, kind="stable")
    starts = np.cumsum(sizes) - sizes
    local = np.empty(comp.size, np.int64)
    local[order] = np.arange(comp.size) - np.repeat(starts, sizes)
    return local


def _classify(pb: CoupledProblem) -> _Classes:
    """Components whose edges, in local positions and in the same order, are those of at
    least :data:`_SPARSE_COPIES` components (the copies of a group that planning values)
    form a sparse class; every other component goes to a dense size class."""
    comp = pb.component
    n_comp = int(comp.max()) + 1 if comp.size else 0
    patterns: list[_Pattern] = []
    sizes = np.bincount(comp, minlength=n_comp)
    of = np.where(sizes > MAX_DENSE, _LARGE, -1).astype(np.int64)
    local = _local(comp, sizes)
    edge_comp = comp[pb.segment]
    by_comp = np.argsort(edge_comp, kind="stable")
    code = (local[pb.pool] * sizes[edge_comp] + local[pb.segment])[by_comp]
    n_edges = np.bincount(edge_comp, minlength=n_comp)
    first = np.cumsum(n_edges) - n_edges
    shape = sizes * (int(n_edges.max(initial=0)) + 1) + n_edges
    by_shape = np.argsort(shape, kind="stable")
    bounds = np.flatnonzero(np.r_[True, np.diff(shape[by_shape]) != 0, True])
    for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        comps = by_shape[lo:hi]
        size, k = int(sizes[comps[0]]), int(n_edges[comps[0]])
        if hi - lo < _SPARSE_COPIES or size > MAX_DENSE:
            continue
        rows = code[first[comps][:, None] + np.arange(k)]
        # equal rows have equal fingerprints (wrapping integer arithmetic); rows that
        # only share a fingerprint with the run's first are left out by the check
        mix = np.random.default_rng(0).integers(1, 2**62, k, dtype=np.int64)
        fingerprint = (rows * mix).sum(axis=1)
        by_print = np.argsort(fingerprint, kind="stable")
        runs = np.flatnonzero(np.r_[True, np.diff(fingerprint[by_print]) != 0, True])
        for a, b in zip(runs[:-1].tolist(), runs[1:].tolist(), strict=True):
            group = by_print[a:b]
            group = group[(rows[group] == rows[group[0]]).all(axis=1)]
            if group.size >= _SPARSE_COPIES:
                of[comps[group]] = len(patterns)
                edges = rows[group[0]]
                patterns.append(_analyse(size, edges // size, edges % size))
    return _Classes(of, patterns)


def _analyse(size: int, pool: IntArray, segment: IntArray) -> _Pattern:
    """The symbolic factorization for a component with these edges (local positions):
    K_ab is nonzero where one pool serves both a and b."""
    serves = np.zeros((size, size), np.int64)
    serves[pool, segment] = 1
    graph = (serves.T @ serves) > 0
    np.fill_diagonal(graph, False)
    alive = np.ones(size, bool)
    degree = graph.sum(axis=1)
    order = np.empty(size, np.int64)
    below: list[IntArray] = []  # each eliminated segment's neighbours still alive
    for t in range(size):
        k = int(np.argmin(np.where(alive, degree, size)))
        near = np.flatnonzero(graph[k] & alive)
        near = near[near != k]
        alive[k] = False
        graph[np.ix_(near, near)] = True  # its neighbours become a clique: the fill
        degree[near] = (graph[near] & alive).sum(axis=1) - 1
        order[t] = k
        below.append(near)
    rank = np.empty(size, np.int64)
    rank[order] = np.arange(size)
    column = [np.sort(rank[near]) for near in below]
    where = np.full((size, size), -1, np.int64)
    start = 0
    for t, rows in enumerate(column):
        where[t, t] = start
        where[rows, t] = start + 1 + np.arange(rows.size)
        start += 1 + rows.size
    level = np.zeros(size, np.int64)
    for t, rows in enumerate(column):
        if rows.size:
            level[rows[0]] = max(level[rows[0]], level[t] + 1)
    levels: list[_Level] = []
    for v in range(int(level.max()) + 1 if size else 0):
        cols = np.flatnonzero(level == v)
        below_cols = [column[t] for t in cols]
        i = _concat(below_cols)  # every entry below the level's diagonals: its row …
        t_of = np.repeat(cols, [r.size for r in below_cols])  # … and its column
        # outer products of each column's entries below the diagonal, lower triangle
        tri = [np.tril_indices(r.size) for r in below_cols]
        hi = _concat([r[x] for r, (x, _) in zip(below_cols, tri, strict=True)])
        lo = _concat([r[y] for r, (_, y) in zip(below_cols, tri, strict=True)])
        t_pair = np.repeat(cols, [x.size for x, _ in tri])
        target, by_target = _summing(where[hi, lo])
        rows, by_row = _summing(i)
        cols_below, by_col = _summing(t_of)
        levels.append(
            _Level(
                cols=cols,
                diag=where[cols, cols],
                sub=where[i, t_of],
                sub_diag=where[t_of, t_of],
                sub_row=i,
                sub_col=t_of,
                s1=where[hi, t_pair],
                s2=where[lo, t_pair],
                target=target,
                by_target=by_target,
                rows=rows,
                by_row=by_row,
                cols_below=cols_below,
                by_col=by_col,
            )
        )
    return _Pattern(size, rank, where, start, levels)


def _summing(keys: IntArray) -> tuple[IntArray, Any]:
    """The distinct ``keys`` and the sparse 0/1 matrix (distinct keys × keys) that sums
    the terms of each."""
    from scipy import sparse

    distinct, which = np.unique(keys, return_inverse=True)
    ones = np.ones(keys.size)
    return distinct, sparse.csr_matrix(
        (ones, (which, np.arange(keys.size))), (distinct.size, keys.size)
    )


def _concat(parts: list[IntArray]) -> IntArray:
    return np.concatenate([np.zeros(0, np.int64), *parts]).astype(np.int64)


def _cholesky(pattern: _Pattern, values: FloatArray) -> FloatArray:
    """Factor K = L Lᵀ in place for every member: ``values`` (pattern entries × members)
    holds K's lower triangle, zeros on the fill, and ends holding L."""
    for lv in pattern.levels:
        values[lv.diag] = np.sqrt(values[lv.diag])
        values[lv.sub] /= values[lv.sub_diag]
        if lv.target.size:
            values[lv.target] -= lv.by_target @ (values[lv.s1] * values[lv.s2])
    return values


def _substitute(pattern: _Pattern, values: FloatArray, y: FloatArray) -> None:
    """y ← (L Lᵀ)⁻¹ y in place; y is (segments in elimination order × rhs × members)."""
    k, members = y.shape[1:]

    def summed(by: Any, terms: FloatArray) -> FloatArray:
        out: FloatArray = (by @ terms.reshape(terms.shape[0], -1)).reshape(-1, k, members)
        return out

    for lv in pattern.levels:
        y[lv.cols] /= values[lv.diag][:, None, :]
        if lv.sub.size:  # L y = b by columns: y_i −= L_it y_t below each diagonal
            y[lv.rows] -= summed(lv.by_row, values[lv.sub][:, None, :] * y[lv.sub_col])
    for lv in reversed(pattern.levels):
        if lv.sub.size:  # Lᵀ x = y in reverse: x_t −= Σ_i L_it x_i over the rows below t
            y[lv.cols_below] -= summed(lv.by_col, values[lv.sub][:, None, :] * y[lv.sub_row])
        y[lv.cols] /= values[lv.diag][:, None, :]
