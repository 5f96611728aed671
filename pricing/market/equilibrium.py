r"""Market-clearing rates, hours and flows for every segment of a :class:`Market`.

Fees: the client pays P = p(1 + f_c), the freelancer receives W = p(1 − f_f) for the
listed rate p. The market splits into connected components of the adjacency graph.

**Uncoupled segments** (no edge) clear in closed form (see
:meth:`Market.uncoupled_rate`), then the bounds apply: p = clip(p*, floor, cap), the
cleared hours are min(D, S) at p, and the gap is the shortage (cap binds) or the surplus
(floor binds). Flows count the hours pools *offer* into a segment, so at a floor they
include the idle surplus hours.

**Coupled components** solve the welfare program of DESIGN.md §4, whose duals are the
rates p_k and the pool wages w_j:

    maximize  Σ_k U_k(q_k)/(1+f_c) − Σ_j C_j(s_j)/(1−f_f) − Σ τ_jk x_jk
              − Σ cap_k z_k + Σ floor_k y_k
    s.t.      q_k + y_k = Σ_j x_jk + z_k,   s_j = Σ_k x_jk,   x, y, z ≥ 0

A cap is a phantom supply at the cap rate (z_k, the shortage), a floor a phantom demand
at the floor rate (y_k, the surplus), so the dual p_k is the listed rate in every case.

``method="auto"`` takes the closed form for uncoupled segments and, for coupled components
of any size, :func:`pricing.market.interior.solve_coupled`: first the forest of
:mod:`pricing.market.forest` from the uncoupled solution (exact to rounding where it
settles; faster than the interior point on every structure measured), then the batched
interior point for the components it leaves (dense batched solves up to 512 segments,
sparse linear algebra above, :mod:`pricing.market.sparse_schur`); a component of at most
:data:`CONVEX_MAX` segments neither solves goes to the convex program of
:mod:`pricing.market.welfare` (Clarabel, then SCS), one vectorized program per batch of
whole components of about :data:`CONVEX_BATCH` segments. ``method="cvxpy"`` puts
every usable segment into the convex program (the reference path). Every answer is
verified before it is returned (:func:`residuals`); a component that fails verification
on every path is reported ``failed`` with the reason, its numbers NaN.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

import numba
import numpy as np
import numpy.typing as npt
import pandas as pd

from pricing.cluster import LOCAL, Executor, plan_parts
from pricing.display import Display, records, signed_share, table
from pricing.market.interior import (
    CoupledProblem,
    CoupledSolution,
    solve_coupled,
    warm_start,
)
from pricing.market.market import PARAMETERS, Market

if TYPE_CHECKING:
    from pricing.market.welfare import WelfareSolution

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Method = Literal["auto", "cvxpy"]
#: an interior-point start: rates, wages, flows and slacks (:func:`warm_start`)
Start = tuple[FloatArray, FloatArray, FloatArray, FloatArray]

#: segments per convex program (whole components; a larger component is one program)
CONVEX_BATCH = 200

#: largest component the convex program is tried on when the interior point fails it:
#: on issue 18's connected markets Clarabel and SCS both fail from 600 segments on
#: (after 3–7 s at 600, 31 s at 1,000, 566 s at 10,000), so above this they only cost time
CONVEX_MAX = 512

#: Acceptance bar of every solution: clearing residuals relative to hours, bounds and
#: reduced costs relative to the rate. The closed form and the interior point reach
#: ~1e-10; Clarabel at tight tolerances ~1e-8; SCS often only 1e-5 (then it fails).
VERIFY_TOL = 1e-6

#: a what-if keeps the baseline's solution of a component whose only change is the
#: friction of edges whose flow is at most _IDLE_FLOW of their ends' hours and whose
#: reduced cost w − p + τ stays at least _PRICED_OUT of the rate (an unused edge made
#: cheaper but still not worth using): below verification (VERIFY_TOL) on both counts
_IDLE_FLOW = 1e-9
_PRICED_OUT = 1e-6

#: |log| of a rate or hours beyond which a component is not cleared: 1e±30, so that the
#: interior point's products and ratios of rates, hours and their powers (Hessian entries
#: such as h/p², across a component whose rates span that range) stay far inside the
#: floats. No market trades there (rates in any currency, hours of any platform are
#: within 1e±12); such curves come from extreme band draws (a drawn level of e^226).
_REPRESENTABLE = 30 * np.log(10.0)
STATUSES = ("solved", "solved_fallback", "failed", "no_curve")
PATHS = ("", "closed_form", "interior", "clarabel", "scs")
_SOLVED, _FALLBACK, _FAILED, _NO_CURVE = range(4)


@dataclass(frozen=True)
class EquilibriumResult(Display):
    """The equilibrium of a market (immutable). ``to_frame()`` is one row per segment,
    ``edges_frame()`` one row per adjacency edge, ``components`` one row per component.

    Arrays are per segment (``flow`` per adjacency edge, in ``market.edges`` order):
    listed ``rate`` and pool ``wage`` (USD/h), hours each pool offers in its own segment
    (``home_flow``) and along edges (``flow``), ``shortage`` at a binding cap and
    ``surplus`` at a binding floor (hours). Unsolved segments hold NaN and say why.
    """

    market: Market
    method: str
    rate: FloatArray
    wage: FloatArray
    flow: FloatArray
    home_flow: FloatArray
    shortage: FloatArray
    surplus: FloatArray
    status_code: npt.NDArray[np.int8]  # index into STATUSES
    path_code: npt.NDArray[np.int8]  # index into PATHS: which method produced the numbers
    residual: FloatArray  # worst verification residual of the segment's component
    iterations: IntArray  # interior-point iterations of the segment's component
    reasons: dict[int, str] = field(default_factory=dict)  # component → why it failed
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def status(self) -> npt.NDArray[np.object_]:
        """Per segment: ``solved``, ``solved_fallback``, ``failed`` or ``no_curve``."""
        return np.asarray(STATUSES, dtype=object)[self.status_code]

    @property
    def ok(self) -> bool:
        """True when every segment with a usable curve is solved and verified."""
        return not bool((self.status_code == _FAILED).any())

    @cached_property
    def components(self) -> pd.DataFrame:
        """One row per component: size, method, status, residual, iterations, reason."""
        comp = self.market.component
        first = np.unique(comp, return_index=True)[1]
        ids = comp[first]
        return pd.DataFrame(
            {
                "component": ids,
                "n_segments": np.bincount(comp)[ids],
                "path": np.asarray(PATHS, dtype=object)[self.path_code[first]],
                "status": self.status[first],
                "residual": self.residual[first],
                "iterations": self.iterations[first],
                # a verified first-choice answer needs no explanation
                "reason": [
                    "" if code == _SOLVED else self.reasons.get(int(c), "")
                    for c, code in zip(ids, self.status_code[first], strict=True)
                ],
            }
        )

    def to_frame(self) -> pd.DataFrame:
        m = self.market
        p = self.rate
        fc, ff = m.array("client_fee"), m.array("freelancer_fee")
        inflow = self.home_flow + _segment_sum(m, self.flow, "segment")
        out = m.segments[list(m.segment_keys)].copy()
        observed = m.array("observed_rate")
        with np.errstate(invalid="ignore"):
            out["observed_rate"] = observed
            out["rate"] = p
            out["client_rate"] = p * (1 + fc)
            out["freelancer_rate"] = p * (1 - ff)
            out["hours"] = inflow - self.surplus  # hours offered minus those left idle
            out["demand_hours"] = m.demand_hours(p)
            out["supply_hours"] = self.home_flow + _segment_sum(m, self.flow, "pool")
            out["demand_hours_at_observed"] = m.demand_hours(observed)
            out["supply_hours_at_observed"] = m.supply_hours(observed)
            out["shortage_hours"] = self.shortage
            out["surplus_hours"] = self.surplus
            out["pool_wage"] = self.wage
            out["gap_frac"] = p / observed - 1.0  # a fraction; printed as %
        out["bound"] = np.where(self.shortage > 0, "cap", np.where(self.surplus > 0, "floor", ""))
        out["component"] = m.component
        out["status"] = self.status
        return out

    def edges_frame(self) -> pd.DataFrame:
        e = self.market.edges_frame()
        p, w = self.rate, self.wage
        e["flow_hours"] = self.flow
        e["reduced_cost"] = w[e["pool"]] - p[e["segment"]] + e["friction"]
        return e

    def to_dict(self) -> dict[str, Any]:
        """Method, statuses, components (the failed ones in full) and every segment."""
        frame = self.to_frame()
        components = self.components
        return {
            "method": self.method,
            "segments": len(self.market),
            "status": {k: int(v) for k, v in frame["status"].value_counts().items()},
            "components": len(components),
            "max_residual": float(components["residual"].max()),
            "failed_components": records(components[components["status"] == "failed"]),
            "segment_equilibrium": records(frame),
        }

    def summary(self, max_rows: int = 20) -> str:
        counts = pd.Series(self.status).value_counts()
        c = self.components
        frame = self.to_frame()
        lines = [
            f"Equilibrium ({self.method}) of {len(self.market):,} segments: "
            + ", ".join(f"{counts.get(k, 0):,} {k}" for k in STATUSES if counts.get(k, 0)),
            f"  {len(c):,} components ({int((c['n_segments'] > 1).sum()):,} coupled); "
            f"max residual {c['residual'].max():.1e}",
            f"  {int((frame['bound'] == 'cap').sum())} at a cap, "
            f"{int((frame['bound'] == 'floor').sum())} at a floor",
        ]
        failed = c[c["status"] == "failed"]
        for _, row in failed.head(5).iterrows():
            lines.append(f"  component {row['component']} failed: {row['reason']}")
        if self.timings:
            lines.append(
                "  time: " + ", ".join(f"{k} {v * 1e3:.0f} ms" for k, v in self.timings.items())
            )
        if max_rows:
            cols = [
                *self.market.segment_keys,
                "observed_rate",
                "rate",
                "client_rate",
                "freelancer_rate",
                "hours",
                "gap_frac",
                "bound",
                "status",
            ]
            lines.append(table(frame[cols].head(max_rows), "{:.2f}", {"gap_frac": signed_share}))
        return "\n".join(lines)


def _segment_sum(market: Market, flow: FloatArray, end: str) -> FloatArray:
    idx = market.edges[end].to_numpy()
    ok = np.isfinite(flow)
    return np.bincount(idx[ok], flow[ok], minlength=len(market)).astype(np.float64)


# --------------------------------------------------------------------------- solve
def solve(
    market: Market,
    method: Method = "auto",
    baseline: EquilibriumResult | None = None,
    fallback: bool = True,
    executor: Executor = LOCAL,
) -> EquilibriumResult:
    """Clear ``market``: closed form where uncoupled, convex program where coupled
    (module docstring). Never raises for a hard instance: failures are per component.

    ``baseline``: the result of an earlier solve of a market with the same segments
    (a what-if's base). Components whose segments and edges are unchanged keep the
    baseline's numbers — exact, since a component's equilibrium depends on nothing else —
    and so do those whose only change is a friction on edges the baseline leaves idle
    and still prices out (:data:`_IDLE_FLOW`, :data:`_PRICED_OUT`: its solution still
    clears and meets complementarity); the changed ones are solved starting from the
    baseline's solution.

    ``fallback=False`` leaves a component the interior point could not clear failed
    instead of handing it to the convex program: for callers that can discard a
    failure, such as band draws, where the convex program costs seconds per batch and
    mostly fails too. The convex program is never tried on a component above
    :data:`CONVEX_MAX` segments.

    ``executor`` runs the interior point's parts (whole components) in parallel, here or
    on a cluster (:mod:`pricing.cluster`); the closed form and the convex fallback run
    here.
    """
    if method not in ("auto", "cvxpy"):
        raise ValueError(f"method must be 'auto' or 'cvxpy', not {method!r}")
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    n = len(market)
    state = _State(market)
    # where each edge sits in the baseline's market (−1: not there)
    match = None
    if baseline is not None and len(baseline.market) == n:
        match = _edge_match(baseline.market.edges, market.edges, n)
    usable = _representable(market, state)
    reused = _reuse(market, baseline, method, state, match) if baseline is not None else None
    if reused is not None:
        usable = usable & ~reused
        timings["reused_segments"] = float(reused.sum())
    if method == "auto":
        todo = _fast(market, usable, state, baseline, match, fallback, executor, timings, t0)
    else:
        todo = usable.copy()
    _convex(market, todo, state, method, timings)
    state.withdraw()
    timings["total"] = time.perf_counter() - t0
    return EquilibriumResult(
        market=market,
        method=method,
        rate=state.rate,
        wage=state.wage,
        flow=state.flow,
        home_flow=state.home_flow,
        shortage=state.shortage,
        surplus=state.surplus,
        status_code=state.status,
        path_code=state.path,
        residual=state.residual,
        iterations=state.iterations,
        reasons={c: "; ".join(notes) for c, notes in state.reasons.items()},
        timings=timings,
    )


def warm() -> None:
    """Compile numba's loops now, not at a process's first coupled solve: the compiled
    rounds (:mod:`pricing.market.pivots`) and the verification's checks, on two segments
    joined by an edge (``make``'s set-up calls it, so a fresh install's first run does
    not pay the compile; the machine code is cached beside the modules). Raises if they
    do not solve."""
    from pricing.market.synthetic import random_market  # it builds markets with this module

    if not solve(random_market(2, (2, 2), seed=0)).ok:
        raise RuntimeError("two segments joined by an edge did not solve")


def _representable(market: Market, state: _State) -> npt.NDArray[np.bool_]:
    """The usable segments of the components whose every segment clears alone at a rate
    and hours within :data:`_REPRESENTABLE` of 1 either way; the others (a band's drawn
    copy with an extreme drawn slope or level, say) are left failed with a note."""
    usable = market.usable
    rate, hours = state.uncoupled
    with np.errstate(all="ignore"):
        inside = (np.abs(np.log(rate)) < _REPRESENTABLE) & (np.abs(np.log(hours)) < _REPRESENTABLE)
    beyond = usable & ~inside
    if not beyond.any():
        return usable
    comp = market.component
    hit = np.zeros(int(comp.max()) + 1, bool)
    hit[comp[beyond]] = True
    out = usable & hit[comp]
    state.note(comp[out], "its curves clear beyond the range of floating-point numbers")
    return usable & ~out


def _fast(
    market: Market,
    usable: npt.NDArray[np.bool_],
    state: _State,
    baseline: EquilibriumResult | None,
    match: IntArray | None,
    fallback: bool,
    executor: Executor,
    timings: dict[str, float],
    t0: float,
) -> npt.NDArray[np.bool_]:
    """The closed form for uncoupled segments and the interior point for coupled ones;
    the segments left for the convex program (none without ``fallback``)."""
    comp = market.component
    sizes = np.bincount(comp, minlength=int(comp.max()) + 1 if len(market) else 0)
    coupled = sizes[comp] > 1
    _closed_form(market, usable & ~coupled, state)
    timings["closed_form"] = time.perf_counter() - t0
    todo = usable & coupled
    if todo.any():
        t1 = time.perf_counter()
        _interior(market, todo, state, baseline, match, executor)
        timings["interior"] = time.perf_counter() - t1
    todo &= state.status != _SOLVED
    if not fallback:
        todo[:] = False
    beyond = todo & (sizes[comp] > CONVEX_MAX)
    if beyond.any():
        state.note(comp[beyond], f"convex program not tried above {CONVEX_MAX} segments")
        todo &= ~beyond
    return todo


def _convex(
    market: Market,
    todo: npt.NDArray[np.bool_],
    state: _State,
    method: Method,
    timings: dict[str, float],
) -> None:
    """The convex program on the segments ``todo``: Clarabel, then SCS on what fails,
    one vectorized program per batch of whole components, each result verified."""
    if not todo.any():
        return
    # cvxpy takes ~1.5 s to import: only when a component needs it
    from pricing.market.welfare import solve_welfare

    comp = market.component
    p_star, h_star = state.uncoupled
    for solver in ("CLARABEL", "SCS"):
        if not todo.any():
            break
        t1 = time.perf_counter()
        key = solver.lower()
        timings[f"{key}_compile"] = timings[f"{key}_solve"] = 0.0
        # one vectorized program per batch of whole components: Clarabel fails on single
        # programs of ~1,000 segments and more, and a batch confines a failure
        batches = _batches(comp, todo, CONVEX_BATCH)
        while batches:
            batch = batches.pop()
            problem, segs, edge_ids = _coupled_problem(market, batch, p_star, h_star)
            welfare = solve_welfare(problem, solver=solver)
            timings[f"{key}_compile"] += welfare.compile_seconds
            timings[f"{key}_solve"] += welfare.solve_seconds
            n_comp = int(problem.component.max()) + 1
            halves = _split(comp, batch, 2) if n_comp > 1 else [batch]
            if not np.isfinite(welfare.rate).all() and len(halves) > 1:
                # one hard component stops the whole program: halve the batch until
                # it is isolated, so the others still get this solver's answer
                batches += halves
                continue
            _store(state, problem, segs, edge_ids, welfare, PATHS.index(key))
            if welfare.status != "optimal":
                state.note(comp[segs], f"{key}: {welfare.status}")
        timings[key] = time.perf_counter() - t1
        first_choice = method == "cvxpy" and solver == "CLARABEL"
        state.verify(todo, _SOLVED if first_choice else _FALLBACK)
        todo &= state.status == _FAILED


def _reuse(
    market: Market,
    baseline: EquilibriumResult,
    method: str,
    st: _State,
    match: IntArray | None,
) -> npt.NDArray[np.bool_] | None:
    """Copy the baseline's solved components that are unchanged (or changed only in the
    friction of idle edges that stay priced out) into ``st``; the mask of segments taken
    over, or None when the markets are not comparable. ``match``: each
    edge's position among the baseline's edges (:func:`_edge_match`)."""
    old = baseline.market
    keys = list(market.segment_keys)
    if (
        match is None
        or baseline.method != method
        or old.segment_keys != market.segment_keys
        or not old.segments[keys].equals(market.segments[keys])
    ):
        return None
    n = len(market)
    comp = market.component
    changed = old.component != comp  # an edge added or removed regroups segments
    for name in PARAMETERS:
        new_v, old_v = market.array(name), old.array(name)
        changed |= ~((new_v == old_v) | (np.isnan(new_v) & np.isnan(old_v)))
    # an edge added, removed or with another friction changes both its ends
    e = market.edges
    pool, seg = e["pool"].to_numpy(), e["segment"].to_numpy()
    differs = match < 0
    found = ~differs
    tau = e["friction"].to_numpy()
    differs[found] = tau[found] != old.edges["friction"].to_numpy()[match[found]]
    # except a friction that changed on an edge the baseline leaves idle and that still
    # prices it out: the baseline's solution meets every condition of the new market
    moved = np.flatnonzero(found & differs)
    if moved.size:
        p, w = baseline.rate, baseline.wage
        j, k = pool[moved], seg[moved]
        hours = np.minimum(old.supply_hours(w)[j], old.demand_hours(p)[k])
        idle = baseline.flow[match[moved]] <= _IDLE_FLOW * hours
        priced_out = w[j] - p[k] + tau[moved] >= _PRICED_OUT * p[k]
        differs[moved[idle & priced_out]] = False
    # every edge of the baseline is matched once unless some were removed
    gone = np.zeros(len(old.edges), bool)
    if int(found.sum()) != len(old.edges):
        gone = _edge_match(e, old.edges, n) < 0
    old_pool, old_seg = old.edges["pool"].to_numpy(), old.edges["segment"].to_numpy()
    for ends in (pool[differs], seg[differs], old_pool[gone], old_seg[gone]):
        changed[ends] = True
    dirty = np.zeros(int(comp.max()) + 1, bool)
    dirty[comp[changed]] = True
    keep: npt.NDArray[np.bool_] = ~dirty[comp] & (baseline.status_code == _SOLVED) & market.usable
    if not keep.any():
        return keep
    for name in ("rate", "wage", "home_flow", "shortage", "surplus", "residual", "iterations"):
        getattr(st, name)[keep] = getattr(baseline, name)[keep]
    st.status[keep] = _SOLVED
    st.path[keep] = baseline.path_code[keep]
    # unchanged components have the same edges, each found in the baseline
    edge_keep = keep[pool] & keep[seg]
    st.flow[edge_keep] = baseline.flow[match[edge_keep]]
    return keep


def _edge_match(old: pd.DataFrame, new: pd.DataFrame, n: int) -> IntArray:
    """Position in ``old`` of every edge of ``new`` (−1: absent), by (pool, segment) over
    ``n`` segments."""
    old_key = old["pool"].to_numpy() * n + old["segment"].to_numpy()
    key = new["pool"].to_numpy() * n + new["segment"].to_numpy()
    if not old_key.size:
        return np.full(key.size, -1, np.int64)
    # markets keep their edges sorted by (pool, segment) but need not
    ordered = bool((old_key[1:] > old_key[:-1]).all())
    order = np.arange(old_key.size) if ordered else np.argsort(old_key, kind="stable")
    at = np.minimum(np.searchsorted(old_key[order], key), old_key.size - 1)
    found: IntArray = np.where(old_key[order][at] == key, order[at], -1)
    return found


class _State:
    """The arrays a solve fills in, frozen into the result at the end."""

    def __init__(self, market: Market) -> None:
        n, m = len(market), len(market.edges)
        self.market = market
        self.rate = np.full(n, np.nan)
        self.wage = np.full(n, np.nan)
        self.home_flow = np.full(n, np.nan)
        self.shortage = np.zeros(n)
        self.surplus = np.zeros(n)
        self.flow = np.full(m, np.nan)
        self.status = np.where(market.usable, _FAILED, _NO_CURVE).astype(np.int8)
        self.path = np.zeros(n, np.int8)
        self.residual = np.full(n, np.nan)
        self.iterations = np.zeros(n, np.int64)
        self.reasons: dict[int, list[str]] = {}

    @cached_property
    def uncoupled(self) -> tuple[FloatArray, FloatArray]:
        """Every segment's rate and hours cleared alone, bounds aside (the coupled solves'
        start and scale); beyond the floats where a segment's curves are (not solved)."""
        with np.errstate(all="ignore"):
            rate = self.market.uncoupled_rate()
            return rate, self.market.demand_hours(rate)

    def note(self, components: IntArray, text: str) -> None:
        for c in np.unique(components).tolist():
            self.reasons.setdefault(c, []).append(text)

    def verify(self, chosen: npt.NDArray[np.bool_], label: int) -> None:
        """Verify the chosen segments component by component; passing ones get ``label``,
        failing ones a note with their path and residual."""
        comp = self.market.component
        worst = residuals(self.market, self)
        comp_worst = _component_worst(comp, chosen, worst, int(comp.max()) + 1)
        self.residual[chosen] = comp_worst[comp[chosen]]
        passed = chosen & (self.residual <= VERIFY_TOL)
        self.status[passed] = label
        failing = chosen & ~passed
        if failing.any():
            first = np.unique(comp[failing], return_index=True)[1]
            for i in np.flatnonzero(failing)[first].tolist():
                path = PATHS[self.path[i]]
                self.note(
                    comp[[i]], f"{path}: residual {self.residual[i]:.1e} above {VERIFY_TOL:.0e}"
                )

    def withdraw(self) -> None:
        """Failed segments lose their numbers (NaN), so none is mistaken for an answer."""
        failed = self.status == _FAILED
        if not failed.any():
            return
        for arr in (self.rate, self.wage, self.home_flow, self.shortage, self.surplus):
            arr[failed] = np.nan
        e = self.market.edges
        touched = failed[e["pool"].to_numpy()] | failed[e["segment"].to_numpy()]
        self.flow[touched] = np.nan


def _closed_form(market: Market, alone: npt.NDArray[np.bool_], st: _State) -> None:
    """Uncoupled segments, in log space and vectorized:

        log p = clip(log p*, log floor, log cap),
        log D = l_D + ε (log p + log(1+f_c)),   log S = l_S + η (log p + log(1−f_f));

    pools offer S(p); the gap is the shortage (D − S at a cap) or the surplus (S − D at a
    floor). Where no bound binds, verification is |log D − log S| (the relative clearing
    residual); where one binds the balance holds by construction.
    """
    if not alone.any():
        return
    everyone = bool(alone.all())

    def pick(a: FloatArray) -> FloatArray:
        return a if everyone else a[alone]

    eps, eta = pick(market.array("demand_elasticity")), pick(market.array("supply_elasticity"))
    ld, ls = pick(market.array("log_demand_level")), pick(market.array("log_supply_level"))
    lfc, lff = pick(market.log_client_fee), pick(market.log_freelancer_fee)
    log_p = (ld - ls + eps * lfc - eta * lff) / (eta - eps)
    log_d = ld + eps * (log_p + lfc)
    residual = np.abs(log_d - (ls + eta * (log_p + lff)))
    p = np.exp(log_p)
    d = np.exp(log_d)
    s = d
    shortage = surplus = None
    if market.has_bounds:
        floor, cap = pick(market.array("rate_floor")), pick(market.array("rate_cap"))
        bounded = np.fmin(np.fmax(p, floor), cap)  # fmax/fmin ignore a missing bound
        binds = bounded != p
        if binds.any():
            p = bounded
            d = market_hours(ld, eps, p, lfc)
            s = market_hours(ls, eta, p, lff)
            shortage = np.maximum(d - s, 0.0)
            surplus = np.maximum(s - d, 0.0)
            residual = np.where(binds, 0.0, residual)
    residual = np.where(np.isfinite(p) & np.isfinite(s), residual, np.inf)
    if everyone:
        st.rate, st.wage, st.home_flow, st.residual = p, p, s, residual
        if shortage is not None and surplus is not None:
            st.shortage, st.surplus = shortage, surplus
        st.path = np.full(len(market), PATHS.index("closed_form"), np.int8)
        st.status = np.where(residual <= VERIFY_TOL, _SOLVED, _FAILED).astype(np.int8)
    else:
        st.rate[alone] = p
        st.wage[alone] = p
        st.home_flow[alone] = s
        st.residual[alone] = residual
        if shortage is not None and surplus is not None:
            st.shortage[alone] = shortage
            st.surplus[alone] = surplus
        st.path[alone] = PATHS.index("closed_form")
        st.status[alone] = np.where(residual <= VERIFY_TOL, _SOLVED, _FAILED)
    failed = (
        np.flatnonzero(alone)[residual > VERIFY_TOL]
        if not everyone
        else np.flatnonzero(residual > VERIFY_TOL)
    )
    if failed.size:
        st.note(market.component[failed], "closed form: non-finite or unbalanced result")


def market_hours(
    log_level: FloatArray, elasticity: FloatArray, rate: FloatArray, log_fee: FloatArray
) -> FloatArray:
    """exp(level + elasticity · (log rate + log fee factor)): hours at a listed rate."""
    hours: FloatArray = np.exp(log_level + elasticity * (np.log(rate) + log_fee))
    return hours


def _interior(
    market: Market,
    chosen: npt.NDArray[np.bool_],
    st: _State,
    baseline: EquilibriumResult | None,
    match: IntArray | None,
    executor: Executor,
) -> None:
    """Coupled components through the batched interior point, verified; warm-started
    from ``baseline`` when it has the same segments (``match``: each edge's position
    among its edges; an edge it lacks starts empty). Parts of whole components run
    through ``executor``: components are independent."""
    p_star, h_star = st.uncoupled
    runner, chunks = _chunks(market.component, chosen, executor)
    problems = [_coupled_problem(market, chunk, p_star, h_star) for chunk in chunks]
    earlier = None
    if baseline is not None and match is not None:
        earlier = np.zeros(match.size)
        earlier[match >= 0] = baseline.flow[match[match >= 0]]
    starts: list[Start | None] = []
    for problem, segs, edge_ids in problems:
        start = None
        if earlier is not None and baseline is not None:
            flow = np.concatenate([earlier[edge_ids], baseline.home_flow[segs]])
            start = warm_start(
                problem, baseline.rate[segs], flow, baseline.shortage[segs], baseline.surplus[segs]
            )
        starts.append(start)
    items = [(problem, start) for (problem, _, _), start in zip(problems, starts, strict=True)]
    solutions = runner.map(_solve_part, items)
    comp = market.component
    for (problem, segs, edge_ids), solution in zip(problems, solutions, strict=True):
        _store(st, problem, segs, edge_ids, solution, PATHS.index("interior"))
        st.iterations[segs] = solution.iterations[problem.component]
        bad = ~solution.converged
        for c in np.flatnonzero(bad).tolist():
            first = segs[np.flatnonzero(problem.component == c)[0]]
            st.note(comp[[first]], solution.reason[c])
    st.verify(chosen, _SOLVED)


def _solve_part(item: tuple[CoupledProblem, Start | None]) -> CoupledSolution:
    """A task: one part's components through the interior point."""
    return solve_coupled(*item)


#: below this many coupled segments one local thread is faster than splitting the work
_PARALLEL_MIN_SEGMENTS = 20_000


#: coupled segments per task on a cluster, at least
_MIN_REMOTE_SEGMENTS = 2_000


def _chunks(
    comp: IntArray, chosen: npt.NDArray[np.bool_], executor: Executor
) -> tuple[Executor, list[npt.NDArray[np.bool_]]]:
    """Where to solve the chosen segments, and in which parts of whole components:
    remotely in parts of at least :data:`_MIN_REMOTE_SEGMENTS` (:func:`plan_parts`),
    else here, one part per core (one in all below :data:`_PARALLEL_MIN_SEGMENTS`)."""
    runner, parts = plan_parts(executor, int(chosen.sum()), _MIN_REMOTE_SEGMENTS)
    if runner.remote:
        return runner, _split(comp, chosen, parts)
    workers = min(runner.workers, 8)
    if workers == 1 or chosen.sum() < _PARALLEL_MIN_SEGMENTS:
        return runner, [chosen]
    return runner, _split(comp, chosen, workers)


def _batches(
    comp: IntArray, chosen: npt.NDArray[np.bool_], size: int
) -> list[npt.NDArray[np.bool_]]:
    """The chosen segments in batches of whole components, about ``size`` segments each."""
    return _split(comp, chosen, max(1, -(-int(chosen.sum()) // size)))


def _split(
    comp: IntArray, chosen: npt.NDArray[np.bool_], parts: int
) -> list[npt.NDArray[np.bool_]]:
    # components in order, cut where the running segment count crosses each share
    sizes = np.bincount(comp[chosen], minlength=int(comp.max()) + 1)
    cut = np.searchsorted(
        np.cumsum(sizes), np.arange(1, parts) * chosen.sum() / parts, side="right"
    )
    part_of_comp = np.zeros(sizes.size + 1, np.int64)
    np.add.at(part_of_comp, cut, 1)
    part_of_comp = np.cumsum(part_of_comp)[: sizes.size]
    label = part_of_comp[comp]
    return [chosen & (label == k) for k in np.flatnonzero(np.bincount(label[chosen])).tolist()]


def _coupled_problem(
    market: Market, chosen: npt.NDArray[np.bool_], p_star: FloatArray, h_star: FloatArray
) -> tuple[CoupledProblem, IntArray, IntArray]:
    """The chosen segments as a problem in local positions (home edges added last)."""
    segs = np.flatnonzero(chosen)
    local = np.full(len(market), -1, np.int64)
    local[segs] = np.arange(segs.size)
    e = market.edges
    pool, seg = e["pool"].to_numpy(), e["segment"].to_numpy()
    edge_ids = np.flatnonzero(chosen[pool] & chosen[seg] & market.active_edges)
    # the chosen components numbered 0, 1, … in order (np.unique's inverse, in O(n))
    label = market.component[segs]
    present = np.zeros(int(label.max(initial=-1)) + 1, bool)
    present[label] = True
    comp = (np.cumsum(present) - 1)[label]
    problem = CoupledProblem(
        component=comp.astype(np.int64),
        eps=market.array("demand_elasticity")[segs],
        eta=market.array("supply_elasticity")[segs],
        p_star=p_star[segs],
        h_star=h_star[segs],
        floor=market.array("rate_floor")[segs],
        cap=market.array("rate_cap")[segs],
        pool=np.concatenate([local[pool[edge_ids]], np.arange(segs.size)]),
        segment=np.concatenate([local[seg[edge_ids]], np.arange(segs.size)]),
        friction=np.concatenate([e["friction"].to_numpy()[edge_ids], np.zeros(segs.size)]),
    )
    return problem, segs, edge_ids


def _store(
    st: _State,
    problem: CoupledProblem,
    segs: IntArray,
    edge_ids: IntArray,
    sol: CoupledSolution | WelfareSolution,
    path: int,
) -> None:
    m = edge_ids.size
    st.rate[segs] = sol.rate
    st.wage[segs] = sol.wage
    st.flow[edge_ids] = sol.flow[:m]
    st.home_flow[segs] = sol.flow[m:]
    st.shortage[segs] = sol.shortage
    st.surplus[segs] = sol.surplus
    st.path[segs] = path


#: The first columns of the stored equilibrium table, after the segment keys (README "Run
#: store"): a storage contract.
EQUILIBRIUM_COLUMNS = (
    "observed_rate",
    "rate",
    "client_rate",
    "freelancer_rate",
    "hours",
    "demand_hours_at_observed",
    "supply_hours_at_observed",
    "shortage_hours",
    "status",
)


def equilibrium_table(result: EquilibriumResult) -> pd.DataFrame:
    """The stored form of an equilibrium: segment keys, :data:`EQUILIBRIUM_COLUMNS`, the
    rest of :meth:`EquilibriumResult.to_frame`."""
    frame = result.to_frame()
    keys = list(result.market.segment_keys)
    rest = [c for c in frame.columns if c not in keys and c not in EQUILIBRIUM_COLUMNS]
    return frame[[*keys, *EQUILIBRIUM_COLUMNS, *rest]]


# --------------------------------------------------------------------------- verify
def residuals(market: Market, st: _State | EquilibriumResult) -> FloatArray:
    """Worst verification residual of every segment (relative; inf where unsolved), in
    rate terms wherever hours are measured, since rates are the answer:

    * clearing: |D_k(p_k) + y_k − Σ_j x_jk − z_k| / (|ε_k| D_k) and
      |S_j(w_j) − Σ_k x_jk| / (η_j S_j): the relative change of the node's rate that would
      clear it along its own curve (an hours residual alone lets a rate error 1/|ε| times
      larger through: 20× on ε = −0.05);
    * edges (home edges too): x ≥ 0, reduced cost w_j − p_k + τ ≥ 0 (relative to p_k),
      and complementarity min(x/min(S_j, D_k), reduced cost/p_k) ≈ 0;
    * bounds: floor ≤ p ≤ cap, shortage only at the cap and surplus only at the floor,
      each gap in rate terms too: min(y_k / (|ε_k| D_k), |p_k − floor_k| / p_k) ≈ 0 (a
      surplus that clears a segment priced above its floor hides a rate error).

    Any NaN on the way (an unconverged iterate can hold zeros and infinities) makes the
    segment's residual inf. The hours come from the market's curves (vectorized); the
    checks run in one compiled pass over segments and one over edges (:func:`_worst`:
    2 ms on 10^5 segments, against 8.6 ms as 40 numpy passes).
    """
    e = market.edges
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        d, s = market.demand_hours(st.rate), market.supply_hours(st.wage)
    out: FloatArray = _worst(
        st.rate, st.wage, d, s,
        market.array("demand_elasticity"), market.array("supply_elasticity"),
        st.home_flow, st.shortage, st.surplus,
        market.array("rate_floor"), market.array("rate_cap"),
        e["pool"].to_numpy(), e["segment"].to_numpy(), e["friction"].to_numpy(),
        st.flow, market.active_edges,
    )  # fmt: skip
    return out


@numba.njit(cache=True, nogil=True)
def _component_worst(
    comp: IntArray, chosen: npt.NDArray[np.bool_], worst: FloatArray, n_comp: int
) -> FloatArray:
    """The largest ``worst`` of each component's chosen segments (0 where none; NaN
    wins, as with np.maximum.at, which took 4.5 ms on 10^5 segments against 0.1 ms)."""
    out = np.zeros(n_comp)
    for k in range(comp.size):
        if chosen[k]:
            out[comp[k]] = _hi(out[comp[k]], worst[k])
    return out


@numba.njit(inline="always")
def _hi(a: float, b: float) -> float:
    """max(a, b), NaN if either is (as np.maximum)."""
    return a if a >= b or a != a else b


@numba.njit(inline="always")
def _lo(a: float, b: float) -> float:
    """min(a, b), NaN if either is (as np.minimum)."""
    return a if a <= b or a != a else b


@numba.njit(cache=True, error_model="numpy", nogil=True)
def _worst(
    p: FloatArray, w: FloatArray, d: FloatArray, s: FloatArray, eps: FloatArray,
    eta: FloatArray, home: FloatArray, shortage: FloatArray, surplus: FloatArray,
    floor: FloatArray, cap: FloatArray, pool: IntArray, seg: IntArray, tau: FloatArray,
    flow: FloatArray, active: npt.NDArray[np.bool_],
) -> FloatArray:  # fmt: skip
    """:func:`residuals`' checks: each segment's worst, inf where not finite."""
    n = p.size
    inflow, outflow = home.copy(), home.copy()
    for i in range(pool.size):
        if active[i] and np.isfinite(flow[i]):
            inflow[seg[i]] += flow[i]
            outflow[pool[i]] += flow[i]
    worst = np.empty(n)
    for k in range(n):
        # the hours that move the node's rate by 100 %, to first order
        d_rate, s_rate = d[k] * abs(eps[k]), s[k] * eta[k]
        x = abs(d[k] + surplus[k] - inflow[k] - shortage[k]) / d_rate
        x = _hi(x, abs(s[k] - outflow[k]) / s_rate)
        # the home edge: complementarity, and its reduced cost w − p ≥ 0
        x = _hi(x, _lo(_hi(w[k] - p[k], 0.0) / p[k], _hi(home[k], 0.0) / _lo(s[k], d[k])))
        x = _hi(x, _hi(p[k] - w[k], 0.0) / p[k])
        below = 0.0 if np.isnan(floor[k]) else _hi((floor[k] - p[k]) / p[k], 0.0)
        above = 0.0 if np.isnan(cap[k]) else _hi((p[k] - cap[k]) / p[k], 0.0)
        x = _hi(x, _hi(below, above))
        at_cap = np.inf if np.isnan(cap[k]) else abs(cap[k] - p[k]) / p[k]
        at_floor = np.inf if np.isnan(floor[k]) else abs(p[k] - floor[k]) / p[k]
        x = _hi(x, _lo(abs(shortage[k]) / d_rate, at_cap))
        x = _hi(x, _lo(abs(surplus[k]) / d_rate, at_floor))
        worst[k] = _hi(x, _hi(-_lo(shortage[k], surplus[k]), 0.0) / d[k])
    for i in range(pool.size):
        if not (active[i] and np.isfinite(flow[i])):
            continue
        j, k = pool[i], seg[i]
        rc = (w[j] - p[k] + tau[i]) / p[k]
        # a flow matters if it is large for either end: a pool's crumbs can be all a
        # small segment buys
        x_rel = flow[i] / _lo(s[j], d[k])
        x = _hi(_hi(-rc, 0.0), _hi(-x_rel, 0.0))
        x = _hi(x, _lo(_hi(rc, 0.0), _hi(x_rel, 0.0)))
        worst[j], worst[k] = _hi(worst[j], x), _hi(worst[k], x)
    for k in range(n):
        if not np.isfinite(worst[k]):
            worst[k] = np.inf
    return worst
