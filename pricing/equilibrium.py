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

``method="auto"`` takes the closed form for uncoupled segments and the batched interior
point of :mod:`pricing.interior` for coupled components up to its size limit; a component
it does not solve goes to the convex program of :mod:`pricing.welfare` (Clarabel, then
SCS). ``method="cvxpy"`` puts every usable segment into the convex program (the reference
path). Every answer is verified before it is returned (:func:`verify`); a component that
fails verification on every path is reported ``failed`` with the reason, its numbers NaN.
"""

from __future__ import annotations

import html
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from pricing.interior import MAX_DENSE, CoupledProblem, CoupledSolution, solve_coupled
from pricing.market import Market

if TYPE_CHECKING:
    from pricing.welfare import WelfareSolution

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Method = Literal["auto", "cvxpy"]

#: Acceptance bar of every solution: clearing residuals relative to hours, bounds and
#: reduced costs relative to the rate. The closed form and the interior point reach
#: ~1e-10; Clarabel at tight tolerances ~1e-8; SCS often only 1e-5 (then it fails).
VERIFY_TOL = 1e-6

STATUSES = ("solved", "solved_fallback", "failed", "no_curve")


@dataclass(frozen=True)
class EquilibriumResult:
    """The equilibrium of a market (immutable). ``to_frame()`` is one row per segment,
    ``edges_frame()`` one row per adjacency edge, ``components`` one row per component."""

    market: Market
    method: str
    rate: FloatArray  # listed rate p, USD/h
    wage: FloatArray  # pool wage w (listed terms), USD/h
    flow: FloatArray  # hours per adjacency edge (market.edges order; NaN if inactive)
    home_flow: FloatArray  # hours each pool works in its own segment
    shortage: FloatArray
    surplus: FloatArray
    status: npt.NDArray[np.object_]  # per segment, one of STATUSES
    components: pd.DataFrame
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every segment with a usable curve is solved and verified."""
        return bool(np.isin(self.status, ("solved", "solved_fallback", "no_curve")).all())

    def to_frame(self) -> pd.DataFrame:
        m = self.market
        s = m.segments
        p = self.rate
        fc, ff = m.array("client_fee"), m.array("freelancer_fee")
        inflow = self.home_flow + _segment_sum(m, self.flow, "segment")
        out = s[list(m.segment_keys)].copy()
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
            out["gap_pct"] = 100.0 * (p / observed - 1.0)
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
                "gap_pct",
                "bound",
                "status",
            ]
            lines.append(
                frame[cols].head(max_rows).to_string(index=False, float_format=lambda v: f"{v:.2f}")
            )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        head = html.escape(self.summary(max_rows=0)).replace("\n", "<br>")
        return f"<p>{head}</p>" + self.to_frame().head(50).to_html(index=False)


def _segment_sum(market: Market, flow: FloatArray, end: str) -> FloatArray:
    idx = market.edges[end].to_numpy()
    ok = np.isfinite(flow)
    return np.bincount(idx[ok], flow[ok], minlength=len(market)).astype(np.float64)


# --------------------------------------------------------------------------- solve
def solve(market: Market, method: Method = "auto") -> EquilibriumResult:
    """Clear ``market``: closed form where uncoupled, convex program where coupled
    (module docstring). Never raises for a hard instance: failures are per component."""
    if method not in ("auto", "cvxpy"):
        raise ValueError(f"method must be 'auto' or 'cvxpy', not {method!r}")
    timings: dict[str, float] = {}
    n = len(market)
    comp = market.component
    usable = market.usable
    sizes = np.bincount(comp, minlength=int(comp.max()) + 1 if n else 0)
    coupled = sizes[comp] > 1

    p_star = market.uncoupled_rate()
    h_star = market.demand_hours(p_star)
    state = _State(n, len(market.edges))

    t0 = time.perf_counter()
    if method == "auto":
        alone = usable & ~coupled
        _closed_form(market, alone, p_star, state)
        timings["closed_form"] = time.perf_counter() - t0
        dense = usable & coupled & (sizes[comp] <= MAX_DENSE)
        todo = usable & coupled & ~dense
        if dense.any():
            t1 = time.perf_counter()
            chunks = _chunks(comp, dense)
            problems = [_coupled_problem(market, chunk, p_star, h_star) for chunk in chunks]
            if len(problems) > 1:
                # components are independent and numpy releases the GIL in the batched
                # linear algebra and large array operations: one thread per core
                with ThreadPoolExecutor(len(problems)) as pool:
                    solutions = list(pool.map(lambda p: solve_coupled(p[0]), problems))
            else:
                solutions = [solve_coupled(problems[0][0])]
            for (problem, segs, edge_ids), solution in zip(problems, solutions, strict=True):
                _store(state, problem, segs, edge_ids, solution, "interior")
                bad = ~solution.converged[problem.component]
                state.reason_of(segs[bad], solution.reason, problem.component[bad])
                todo[segs[bad]] = True
            timings["interior"] = time.perf_counter() - t1
    else:
        todo = usable.copy()

    status = np.full(n, "failed", dtype=object)
    status[~usable] = "no_curve"
    verified = _verify_into(market, state, ~todo & usable, status, "solved")
    todo |= usable & ~verified & (status != "solved")

    for solver in ("CLARABEL", "SCS"):
        if not todo.any():
            break
        from pricing.welfare import solve_welfare

        t1 = time.perf_counter()
        problem, segs, edge_ids = _coupled_problem(market, todo, p_star, h_star)
        welfare = solve_welfare(problem, solver=solver)
        key = solver.lower()
        timings[f"{key}_compile"] = welfare.compile_seconds
        timings[f"{key}_solve"] = welfare.solve_seconds
        timings[key] = time.perf_counter() - t1
        _store(state, problem, segs, edge_ids, welfare, key)
        ok_status = "solved" if (method == "cvxpy" and solver == "CLARABEL") else "solved_fallback"
        if welfare.status != "optimal":
            note = f"{key}: {welfare.status}"
            state.reason[segs] = [f"{r}; {note}" if r else note for r in state.reason[segs]]
        done = _verify_into(market, state, todo, status, ok_status)
        todo &= ~done

    # what remains failed: numbers withdrawn, reason kept
    failed = status == "failed"
    state.withdraw(market, failed)
    timings["total"] = time.perf_counter() - t0
    components = _component_frame(market, state, status, sizes)
    return EquilibriumResult(
        market=market,
        method=method,
        rate=state.rate,
        wage=state.wage,
        flow=state.flow,
        home_flow=state.home_flow,
        shortage=state.shortage,
        surplus=state.surplus,
        status=status,
        components=components,
        timings=timings,
    )


#: below this many coupled segments one thread is faster than splitting the work
_PARALLEL_MIN_SEGMENTS = 20_000


def _chunks(comp: IntArray, chosen: npt.NDArray[np.bool_]) -> list[npt.NDArray[np.bool_]]:
    """Split the chosen segments, whole components each, into one part per core."""
    workers = min(os.cpu_count() or 1, 8)
    if workers == 1 or chosen.sum() < _PARALLEL_MIN_SEGMENTS:
        return [chosen]
    # components in order, cut where the running segment count crosses each share
    sizes = np.bincount(comp[chosen], minlength=int(comp.max()) + 1)
    cut = np.searchsorted(np.cumsum(sizes), np.arange(1, workers) * chosen.sum() / workers)
    part_of_comp = np.zeros(sizes.size, np.int64)
    part_of_comp[cut[cut < sizes.size]] += 1
    part_of_comp = np.cumsum(part_of_comp)
    return [
        chosen & (part_of_comp[comp] == k)
        for k in range(workers)
        if (chosen & (part_of_comp[comp] == k)).any()
    ]


class _State:
    """Mutable arrays the solve fills in; frozen into the result at the end."""

    def __init__(self, n: int, m: int) -> None:
        self.rate = np.full(n, np.nan)
        self.wage = np.full(n, np.nan)
        self.home_flow = np.full(n, np.nan)
        self.shortage = np.zeros(n)
        self.surplus = np.zeros(n)
        self.flow = np.full(m, np.nan)
        self.path = np.full(n, "", dtype=object)
        self.reason = np.full(n, "", dtype=object)
        self.residual = np.full(n, np.nan)
        self.iterations = np.zeros(n, np.int64)

    def reason_of(self, segs: IntArray, reasons: list[str], comps: IntArray) -> None:
        for s, c in zip(segs.tolist(), comps.tolist(), strict=True):
            self.reason[s] = reasons[c]

    def withdraw(self, market: Market, failed: npt.NDArray[np.bool_]) -> None:
        for arr in (self.rate, self.wage, self.home_flow, self.shortage, self.surplus):
            arr[failed] = np.nan
        e = market.edges
        touched = failed[e["pool"].to_numpy()] | failed[e["segment"].to_numpy()]
        self.flow[touched] = np.nan


def _closed_form(
    market: Market, alone: npt.NDArray[np.bool_], p_star: FloatArray, st: _State
) -> None:
    """Uncoupled segments: p = clip(p*, floor, cap), pools offer S(p), the gap is the
    shortage (D − S at a cap) or the surplus (S − D at a floor). Vectorized."""
    floor, cap = market.array("rate_floor"), market.array("rate_cap")
    p = np.fmin(np.fmax(p_star, floor), cap)  # fmax/fmin ignore a NaN bound
    d, s = market.demand_hours(p), market.supply_hours(p)
    st.rate[alone] = p[alone]
    st.wage[alone] = p[alone]
    st.home_flow[alone] = s[alone]  # hours offered; a floor's surplus among them
    st.shortage[alone] = np.maximum(d - s, 0.0)[alone]
    st.surplus[alone] = np.maximum(s - d, 0.0)[alone]
    st.path[alone] = "closed_form"


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
    _, comp = np.unique(market.component[segs], return_inverse=True)
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
    path: str,
) -> None:
    m = edge_ids.size
    st.rate[segs] = sol.rate
    st.wage[segs] = sol.wage
    st.flow[edge_ids] = sol.flow[:m]
    st.home_flow[segs] = sol.flow[m:]
    st.shortage[segs] = sol.shortage
    st.surplus[segs] = sol.surplus
    st.path[segs] = path
    if isinstance(sol, CoupledSolution):
        st.iterations[segs] = sol.iterations[problem.component]


# --------------------------------------------------------------------------- verify
def residuals(market: Market, st: _State) -> FloatArray:
    """Worst verification residual of every segment (relative; NaN where unsolved).

    * clearing: |D_k(p_k) + y_k − Σ_j x_jk − z_k| / D_k and |S_j(w_j) − Σ_k x_jk| / S_j;
    * edges (home edges too): x ≥ 0, reduced cost w_j − p_k + τ ≥ 0 (relative to p_k),
      and complementarity min(x/S_j, reduced cost/p_k) ≈ 0;
    * bounds: floor ≤ p ≤ cap, shortage only at the cap, surplus only at the floor.
    """
    p, w = st.rate, st.wage
    e = market.edges
    pool, seg, tau = e["pool"].to_numpy(), e["segment"].to_numpy(), e["friction"].to_numpy()
    flow = np.where(np.isfinite(st.flow), st.flow, 0.0)
    active = market.active_edges & np.isfinite(st.flow)
    with np.errstate(invalid="ignore", divide="ignore"):
        d, s = market.demand_hours(p), market.supply_hours(w)
        inflow = st.home_flow + np.bincount(seg[active], flow[active], minlength=len(market))
        outflow = st.home_flow + np.bincount(pool[active], flow[active], minlength=len(market))
        worst = np.abs(d + st.surplus - inflow - st.shortage) / d
        worst = np.maximum(worst, np.abs(s - outflow) / s)
        home = np.minimum(np.maximum(w - p, 0.0) / p, np.maximum(st.home_flow, 0.0) / s)
        worst = np.maximum(worst, home)  # the home edge's complementarity
        worst = np.maximum(worst, np.maximum(p - w, 0.0) / p)
        floor, cap = market.array("rate_floor"), market.array("rate_cap")
        worst = np.maximum(worst, np.nan_to_num(np.maximum((floor - p) / p, 0.0)))
        worst = np.maximum(worst, np.nan_to_num(np.maximum((p - cap) / p, 0.0)))
        worst = np.maximum(
            worst, np.fmin(st.shortage / d, np.where(np.isnan(cap), np.inf, np.abs(cap - p) / p))
        )
        worst = np.maximum(
            worst, np.fmin(st.surplus / d, np.where(np.isnan(floor), np.inf, np.abs(p - floor) / p))
        )
        worst = np.maximum(worst, np.maximum(-st.shortage, 0.0) / d)
        worst = np.maximum(worst, np.maximum(-st.surplus, 0.0) / d)
        rc = (w[pool] - p[seg] + tau) / p[seg]
        x_rel = flow / s[pool]
        edge_worst = np.maximum(np.maximum(-rc, 0.0), np.maximum(-x_rel, 0.0))
        edge_worst = np.maximum(edge_worst, np.minimum(np.maximum(rc, 0.0), np.maximum(x_rel, 0.0)))
        edge_worst = np.where(active, edge_worst, 0.0)
        for end in (pool, seg):
            np.maximum.at(worst, end, edge_worst)
    return np.where(np.isfinite(worst), worst, np.inf)


def _verify_into(
    market: Market,
    st: _State,
    chosen: npt.NDArray[np.bool_],
    status: npt.NDArray[np.object_],
    label: str,
) -> npt.NDArray[np.bool_]:
    """Verify the chosen segments component-wise; mark passing ones ``label``."""
    if not chosen.any():
        return np.zeros(len(market), bool)
    worst = residuals(market, st)
    comp = market.component
    comp_worst = np.zeros(int(comp.max()) + 1)
    np.maximum.at(comp_worst, comp[chosen], worst[chosen])
    passed = chosen & (comp_worst[comp] <= VERIFY_TOL)
    status[passed] = label
    st.residual[chosen] = comp_worst[comp[chosen]]
    failing = chosen & ~passed
    for i in np.flatnonzero(failing).tolist():
        note = f"{st.path[i]}: residual {comp_worst[comp[i]]:.1e} above {VERIFY_TOL:.0e}"
        st.reason[i] = f"{st.reason[i]}; {note}" if st.reason[i] else note
    return passed


def _component_frame(
    market: Market, st: _State, status: npt.NDArray[np.object_], sizes: IntArray
) -> pd.DataFrame:
    comp = market.component
    first = np.unique(comp, return_index=True)[1]
    frame = pd.DataFrame(
        {
            "component": comp[first],
            "n_segments": sizes[comp[first]],
            "path": st.path[first],
            "status": status[first],
            "residual": st.residual[first],
            "iterations": st.iterations[first],
            "reason": np.where(status[first] == "failed", st.reason[first], ""),
        }
    )
    return frame
