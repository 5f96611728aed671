r"""What-if scenarios: a :class:`~pricing.config.Scenario` as a pure ``Market -> Market``
transformation, its equilibrium against a baseline, and inverse scenarios.

**Edits.** With the curves of :mod:`pricing.market.market`, D(P) = exp(l_D) P^ε in the client
rate P = p(1 + f_c) and S(W) = exp(l_S) W^η in the freelancer rate W = p(1 − f_f), an
entry changes the segments it selects (a later entry overrides an earlier one):

- demand multiplier m:  l_D ← l_D + log m  (m × the hours demanded at every rate);
  supply multiplier m:  l_S ← l_S + log m;
- elasticity ε → ε′: the curve turns around today's point, so the hours at today's
  client rate P⁰ = p⁰(1 + f_c) (observed listed rate p⁰, today's fee) stay the same:

      l_D + ε log P⁰ = l′_D + ε′ log P⁰   ⇔   l′_D = l_D + (ε − ε′) log P⁰,

  and on the supply side l′_S = l_S + (η − η′) log W⁰, W⁰ = p⁰(1 − f_f);
- fees f_c, f_f set: the curves stay the same functions of P and W, so the listed rate
  moves along them;
- bounds: a floor and/or cap set, or both removed;
- adjacency a → b: the edges pool (a, t) → segment (b, t) of every tier t (and region),
  or of the tiers (regions) the entry names — from_tier and to_tier as in the adjacency
  table (contract v1.1: a pool may serve another tier's or region's segments) — get
  friction τ (opened where absent), or are removed.

A segment without a curve (NaN) keeps none. An uncoupled, unbounded segment clears at

    log p* = (l_D − l_S + ε log(1 + f_c) − η log(1 − f_f)) / (η − ε),

so a demand multiplier m moves its rate by the factor m^(1/(η − ε)).

**Inverse fee.** The fee of one segment at which its listed rate is the target p̂.
Uncoupled and unbounded, from D(p̂(1 + f_c)) = S(p̂(1 − f_f)) in closed form:

    log(1 − f_f) = (l_D − l_S + (ε − η) log p̂ + ε log(1 + f_c)) / η,
    log(1 + f_c) = (l_S − l_D + (η − ε) log p̂ + η log(1 − f_f)) / ε;

otherwise Brent's method on g(f) = p*(f) − p̂ over the fee range, each g a solve warm-
started from the previous one (only the segment's component is re-solved). p̂ must lie
between the rates at the range ends, else it is unreachable.

**Inverse budget.** The least budget B whose plan fills category c to t, where fill_c =
Σ_{k∈c} q_k / Σ_{k∈c} D_k(p⁰_k). A plan at B = 0 with the target either meets it ($0) or
diagnoses it: no budget reaches it (unreachable), or the plan's model — the CP-SAT
program over re-solved lever values — names its least-cost plan B₀. Real plans, whose
fill is verified by a joint solve, then settle it: if the plan at B₀ meets the target,
the answer is its spend S, confirmed by a plan at S − $0.01 that does not; otherwise
verified plans are bisected to :data:`BUDGET_PRECISION` between the budgets that do not
and those that do meet the target (B₀ and the whole catalogue's cost upward, 0 and S
downward).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.optimize import brentq

from pricing.cluster import LOCAL, Executor
from pricing.config import (
    AdjacencyChange,
    BudgetTarget,
    FeeTarget,
    InterventionsConfig,
    RunConfig,
    Scenario,
)
from pricing.decisions.flows import Flows
from pricing.decisions.interventions import InterventionPlan, plan_interventions
from pricing.display import Display, number, records, share, signed_share
from pricing.errors import ConfigError, MarketError, suggest
from pricing.market.equilibrium import EquilibriumResult, solve
from pricing.market.market import PARAMETERS, SIDES, Market, segment_edges

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

#: per-segment measures of :meth:`WhatIf.to_frame`, each for the baseline and the scenario
MEASURES = (
    "rate",
    "client_rate",
    "freelancer_rate",
    "hours",
    "gmv",
    "fee_revenue",
    "fill",
    "shortage_hours",
)
#: a segment "moved" when its rate or hours changed by more than this, relative
MOVED_TOL = 1e-9
#: fee tolerance of Brent's method: far below any fee anyone sets, and the rate it leaves
#: (|dp/df| × 1e-12) is below the equilibrium's own accuracy (VERIFY_TOL)
FEE_XTOL = 1e-12
#: USD: the budget answer is confirmed against a plan this much cheaper ...
BUDGET_STEP = 0.01
#: ... or, when that plan also meets the target, bisected between verified plans to this
BUDGET_PRECISION = 1.0
#: relative slack of a fill target, as in :mod:`pricing.decisions.interventions`
FILL_TOL = 1e-9


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class InverseAnswer(Display):
    """The answer of an inverse scenario (immutable).

    ``value`` is the fee or the budget (USD) found and ``achieved`` the listed rate or
    fill reached there (both NaN when ``unreachable``); ``reachable`` the range of rates
    over the fee range, or (fill without levers, most fill found); ``evaluations`` the
    equilibrium solves (fee) or intervention plans (budget) it took.
    """

    kind: Literal["fee", "budget"]
    subject: str
    target: float
    value: float
    achieved: float
    status: Literal["solved", "unreachable"]
    method: str
    evaluations: int
    reachable: tuple[float, float]
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: NaN becomes None."""

        def clean(v: float) -> float | None:
            return None if math.isnan(v) else v

        return {
            "kind": self.kind,
            "subject": self.subject,
            "target": self.target,
            "value": clean(self.value),
            "achieved": clean(self.achieved),
            "status": self.status,
            "method": self.method,
            "evaluations": self.evaluations,
            "reachable": [clean(v) for v in self.reachable],
            "detail": self.detail,
        }

    def to_frame(self) -> pd.DataFrame:
        """The answer as one row."""
        return pd.DataFrame([{**self.to_dict(), "reachable": self.reachable}])

    def summary(self, max_rows: int = 0) -> str:
        """The answer in one line (there is no table to show)."""
        fmt = _fee_text if self.kind == "fee" else _money_text
        reached = _rate_text if self.kind == "fee" else _fill_text
        goal = f"{self.subject} for {reached(self.target)}"
        if self.status == "unreachable":
            return f"{goal}: unreachable — {self.detail}; {self.method}"
        return f"{goal}: {fmt(self.value)} (reaches {reached(self.achieved)}); {self.method}"


def _fee_text(v: float) -> str:
    return f"{v:.4%}"


def _money_text(v: float) -> str:
    return f"${v:,.2f}"


def _rate_text(v: float) -> str:
    return f"${v:,.4f}/h"


def _fill_text(v: float) -> str:
    return f"fill {v:.2%}"


@dataclass(frozen=True)
class WhatIf(Display):
    """A scenario solved against a baseline (immutable).

    ``market`` is the transformed market and ``result`` its equilibrium — the plan's joint
    solve when the scenario plans interventions; for an inverse scenario both are at the
    answer (the fee found applied; the plan at the least budget). ``to_frame()`` compares
    every segment, ``totals`` the whole market.
    """

    scenario: Scenario
    market: Market
    baseline: EquilibriumResult
    result: EquilibriumResult
    plan: InterventionPlan | None = None
    inverse: InverseAnswer | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def status(self) -> str:
        """``infeasible`` (the plan or the inverse target cannot be met), ``degraded`` (a
        component of the scenario failed to solve) or ``ok``."""
        if (self.plan is not None and not self.plan.feasible) or (
            self.inverse is not None and self.inverse.status == "unreachable"
        ):
            return "infeasible"
        return "ok" if self.result.ok else "degraded"

    @cached_property
    def flows(self) -> Flows:
        """Where each pool's hours go in the scenario's equilibrium (:class:`Flows`)."""
        return Flows.of(self.result)

    @cached_property
    def _values(self) -> dict[str, dict[str, FloatArray]]:
        """The measures of both sides, each in its own market (fees, demand today)."""
        return {"baseline": _measures(self.baseline), "scenario": _measures(self.result)}

    def to_frame(self) -> pd.DataFrame:
        """One row per segment: every measure of :data:`MEASURES` in the baseline and the
        scenario, the changes, both statuses and whether the segment ``changed``."""
        values = self._values
        keys = list(self.market.segment_keys)
        out = self.market.segments[keys].copy()
        for m in MEASURES:
            for side in values:
                out[f"{m}_{side}"] = values[side][m]
        b, s = values["baseline"], values["scenario"]
        with np.errstate(invalid="ignore", divide="ignore"):
            out["rate_change_frac"] = s["rate"] / b["rate"] - 1.0
        out["hours_change"] = s["hours"] - b["hours"]
        out["gmv_change"] = s["gmv"] - b["gmv"]
        out["status_baseline"] = self.baseline.status
        out["status_scenario"] = self.result.status
        params, touched, _ = _differences(self.baseline.market, self.result.market)
        out["changed"] = (
            params
            | touched
            | _moved(b["rate"], s["rate"])
            | _moved(b["hours"], s["hours"])
            | (self.baseline.status != self.result.status)
        )
        return out

    @cached_property
    def totals(self) -> pd.DataFrame:
        """One row per measure over the segments solved in both: sums of hours, GMV, fee
        revenue and shortage; fill = Σ hours / Σ demand at today's rates; rate = the
        hours-weighted mean listed rate."""
        values = self._values
        both = np.isfinite(values["baseline"]["hours"]) & np.isfinite(values["scenario"]["hours"])
        rows: dict[str, list[float]] = {}
        for side, v in values.items():
            hours = v["hours"][both]
            demand = v["demand_at_observed"][both]
            known = np.isfinite(demand)
            with np.errstate(invalid="ignore", divide="ignore"):  # no hours: NaN
                rows[side] = [
                    float((hours * v["rate"][both]).sum() / hours.sum()),
                    float(hours.sum()),
                    float(v["gmv"][both].sum()),
                    float(v["fee_revenue"][both].sum()),
                    float(hours[known].sum() / demand[known].sum()),
                    float(v["shortage_hours"][both].sum()),
                ]
        frame = pd.DataFrame(
            {
                "measure": ["rate", "hours", "gmv", "fee_revenue", "fill", "shortage_hours"],
                "baseline": rows["baseline"],
                "scenario": rows["scenario"],
            }
        )
        frame["change"] = frame["scenario"] - frame["baseline"]
        with np.errstate(invalid="ignore", divide="ignore"):
            frame["change_frac"] = frame["change"] / frame["baseline"].abs()
        return frame

    def to_dict(self) -> dict[str, Any]:
        """The scenario, how it came out, the totals and every segment."""
        return {
            "name": self.scenario.name,
            "description": self.scenario.description,
            "status": self.status,
            "inverse": None if self.inverse is None else self.inverse.to_dict(),
            "plan": None if self.plan is None else self.plan.headline(),
            "timings_s": self.timings,
            "totals": records(self.totals),
            "segments": records(self.to_frame()),
        }

    def summary(self, max_rows: int = 20) -> str:
        s = self.scenario
        params, _, n_edges = _differences(self.baseline.market, self.market)
        lines = [
            f"What-if '{s.name}' ({self.status})" + (f": {s.description}" if s.description else ""),
            f"  the scenario changes {int(params.sum()):,} segment(s) and {n_edges:,} edge(s) "
            f"of {len(self.market):,} segments",
            "  totals (a week):",
            "    " + _left_labels(totals_text(self.totals)).replace("\n", "\n    "),
        ]
        if self.inverse is not None:
            lines.append(f"  inverse: {self.inverse.summary()}")
        if self.plan is not None:
            lines.append("  " + self.plan.summary(max_rows=0).splitlines()[0])
        if not self.result.ok:
            failed = self.result.components
            lines.append(
                f"  {int((failed['status'] == 'failed').sum())} component(s) failed to solve"
            )
        frame = self.to_frame()
        moved = frame[frame["changed"]].sort_values("hours_change", key=np.abs, ascending=False)
        if max_rows and len(moved):
            lines.append(f"  {len(moved):,} segment(s) changed, largest hours change first:")
            lines.append(_left_labels(_changed_text(moved.head(max_rows), self.market)))
        return "\n".join(lines)

    def html_frame(self) -> pd.DataFrame:
        frame = self.to_frame()
        return frame[frame["changed"]]


#: each total's label, with its unit (the CLI and the report alike)
TOTAL_LABELS = {
    "rate": "listed rate, USD/h (hours-weighted mean)",
    "hours": "hours/week",
    "gmv": "GMV, USD/week",
    "fee_revenue": "fee revenue, USD/week",
    "fill": "fill, % of hours asked at today's rates",
    "shortage_hours": "shortage at rate bounds, hours/week",
}
#: how each total's values print
_TOTAL_FORMATS = {"rate": "{:,.2f}", "hours": "{:,.1f}", "shortage_hours": "{:,.1f}"}


def _left_labels(frame: pd.DataFrame) -> str:
    """A frame of text as a table: its first column (labels) left-aligned, the rest
    right-aligned, two spaces apart."""
    cells = [list(map(str, frame.columns)), *frame.astype(str).to_numpy().tolist()]
    widths = [max(len(row[i]) for row in cells) for i in range(frame.shape[1])]
    return "\n".join(
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in cells
    )


def _changed_text(moved: pd.DataFrame, market: Market) -> pd.DataFrame:
    """Changed segments as text: baseline → scenario listed rate (USD/h) and hours
    (hours/week), the rate change in %, the scenario's status."""
    out = pd.DataFrame({"segment": _segment_labels(moved, market)})
    rate = [
        f"{number(b)} → {number(s)}"
        for b, s in moved[["rate_baseline", "rate_scenario"]].to_numpy()
    ]
    hours = [
        f"{number(b, '{:,.1f}')} → {number(s, '{:,.1f}')}"
        for b, s in moved[["hours_baseline", "hours_scenario"]].to_numpy()
    ]
    out["listed rate, USD/h"] = rate
    out["rate change"] = [signed_share(v) for v in moved["rate_change_frac"].to_numpy()]
    out["hours/week"] = hours
    out["hours change"] = [number(v, "{:+,.1f}") for v in moved["hours_change"].to_numpy()]
    out["status"] = moved["status_scenario"].astype(str).to_numpy()
    return out


def _segment_labels(frame: pd.DataFrame, market: Market) -> list[str]:
    keys = list(market.segment_keys)
    return ["/".join(map(str, row)) for row in frame[keys].itertuples(index=False)]


def totals_text(totals: pd.DataFrame) -> pd.DataFrame:
    """:attr:`WhatIf.totals` as text, printed the one way the CLI and the report show
    them: units in the labels, money in whole dollars, the fill (a fraction in the
    tables and JSON) in % with its change in percentage points, changes signed,
    missing values as :data:`~pricing.display.MISSING`."""
    rows = []
    values = totals[["baseline", "scenario", "change", "change_frac"]].to_numpy(np.float64)
    for measure, (base, scen, change, change_frac) in zip(totals["measure"], values, strict=True):
        if measure == "fill":  # six measures: a loop over rows, not segments
            level = [share(v) for v in (base, scen)]
            moved = number(100 * change, "{:+.1f} pp")
        else:
            fmt = _TOTAL_FORMATS.get(str(measure), "{:,.0f}")
            level = [number(v, fmt) for v in (base, scen)]
            moved = number(change, fmt.replace("{:", "{:+"))
        label = TOTAL_LABELS.get(str(measure), str(measure))
        rows.append((label, *level, moved, signed_share(change_frac)))
    return pd.DataFrame(rows, columns=["measure", "baseline", "scenario", "change", "change, %"])


def _measures(result: EquilibriumResult) -> dict[str, FloatArray]:
    """Per segment, the measures of :data:`MEASURES` in ``result``'s own market."""
    frame = result.to_frame()
    m = result.market
    out = {
        name: frame[name].to_numpy(np.float64)
        for name in ("rate", "client_rate", "freelancer_rate", "hours", "shortage_hours")
    }
    out["demand_at_observed"] = frame["demand_hours_at_observed"].to_numpy(np.float64)
    out["gmv"] = out["hours"] * out["rate"]
    out["fee_revenue"] = out["gmv"] * (m.array("client_fee") + m.array("freelancer_fee"))
    with np.errstate(invalid="ignore", divide="ignore"):
        out["fill"] = out["hours"] / out["demand_at_observed"]
    return out


def _moved(before: FloatArray, after: FloatArray) -> BoolArray:
    with np.errstate(invalid="ignore"):
        moved: BoolArray = np.abs(after - before) > MOVED_TOL * np.abs(before)
    return moved


def _differences(old: Market, new: Market) -> tuple[BoolArray, BoolArray, int]:
    """Segments whose parameters differ (NaN equals NaN), segments at an end of an edge
    added, removed or re-priced, and the number of such edges."""
    columns = list(PARAMETERS)
    a = old.segments[columns].to_numpy(np.float64)
    b = new.segments[columns].to_numpy(np.float64)
    params: BoolArray = ~((a == b) | (np.isnan(a) & np.isnan(b))).all(axis=1)
    n = len(old)

    def friction(market: Market) -> pd.Series:
        e = market.edges
        key = e["pool"].to_numpy() * n + e["segment"].to_numpy()
        return pd.Series(e["friction"].to_numpy(), index=key)

    both = pd.concat([friction(old), friction(new)], axis=1, join="outer")
    differs = both.isna().any(axis=1) | (both[0] != both[1])
    keys = both.index[differs].to_numpy(np.int64)
    touched = np.zeros(n, bool)
    touched[keys // n] = True
    touched[keys % n] = True
    return params, touched, int(differs.sum())


# --------------------------------------------------------------------------- apply
def apply_scenario(market: Market, scenario: Scenario) -> Market:
    """The market with the scenario's edits (module docstring), made with the market's own
    edit methods and validated. Every selector that matches nothing — in the edits, the
    inverse target and the intervention overrides — is reported in one
    :class:`ConfigError`; a market the edits make invalid (e.g. a floor at or above a cap)
    raises :class:`MarketError` naming the segments."""
    match = _Matcher(market)

    def masks(table: str) -> list[BoolArray]:
        entries = getattr(scenario, table)
        return [match(e.selectors, f"[[{table}]] #{i + 1}") for i, e in enumerate(entries)]

    new = market
    for side in SIDES:
        multiplier = np.ones(len(market))
        for mask, entry in zip(masks(side), getattr(scenario, side), strict=True):
            multiplier[mask] = entry.multiplier
        new = new.scaled(side, multiplier, check=False)
    turned = {side: new.array(f"{side}_elasticity").copy() for side in SIDES}
    for mask, entry in zip(masks("elasticity"), scenario.elasticity, strict=True):
        turned[entry.side][mask] = entry.value
    for side in SIDES:
        moved = market.usable & (turned[side] != market.array(f"{side}_elasticity"))
        unknown = moved & ~np.isfinite(market.array("anchor_rate"))
        if unknown.any():
            match.problems.append(
                f"[[elasticity]]: the {side} curve of {_labels(market, unknown)} cannot turn "
                "around today's rate: there is no observed rate; select other segments"
            )
    new = new.rotated(turned, check=False)
    for mask, fee in zip(masks("fees"), scenario.fees, strict=True):
        new = new.with_fees(fee.client_fee, fee.freelancer_fee, mask, check=False)
    for mask, bound in zip(masks("bounds"), scenario.bounds, strict=True):
        removed = np.nan if bound.remove else None
        new = new.with_bounds(
            bound.floor if bound.floor is not None else removed,
            bound.cap if bound.cap is not None else removed,
            mask,
            check=False,
        )
    edits = _edge_edits(market, scenario, match)
    _check_targets(market, scenario, match)
    if match.problems:
        raise ConfigError(
            f"scenario '{scenario.name}' does not fit the market: "
            f"{len(match.problems)} problem(s):\n" + "\n".join(f"  - {p}" for p in match.problems)
        )
    try:
        return new.with_edges(edits)
    except MarketError as exc:
        raise MarketError(f"scenario '{scenario.name}': {exc}") from None


class _Matcher:
    """Segment masks of selectors, collecting a problem for every value that matches
    nothing (with the closest value that exists)."""

    def __init__(self, market: Market) -> None:
        self.market = market
        self.problems: list[str] = []
        self._values: dict[str, pd.Series] = {}

    def values(self, key: str) -> pd.Series:
        if key not in self._values:
            self._values[key] = self.market.segments[key].astype(str)
        return self._values[key]

    def known(self, key: str, value: str, label: str) -> bool:
        """Whether some segment has ``key`` = ``value``; else a problem is noted."""
        if key not in self.market.segment_keys:
            self.problems.append(
                f"{label}: selects {key} '{value}', but {key} is not a segment key of this "
                f"market (keys: {', '.join(self.market.segment_keys)})"
            )
            return False
        values = self.values(key)
        if (values == value).any():
            return True
        hint = suggest(value, sorted(set(values)))
        self.problems.append(
            f"{label}: {key} '{value}' is not in the market"
            + (f"; did you mean '{hint}'?" if hint else "")
        )
        return False

    def __call__(self, selectors: dict[str, str], label: str) -> BoolArray:
        mask = np.ones(len(self.market), bool)
        every_value_known = True
        for key, value in selectors.items():
            if self.known(key, value, label):
                mask &= (self.values(key) == value).to_numpy()
            else:
                every_value_known = False
        if every_value_known and not mask.any():
            wanted = " and ".join(f"{k} '{v}'" for k, v in selectors.items())
            self.problems.append(f"{label}: no segment has {wanted}")
        return mask


def _labels(market: Market, mask: BoolArray, shown: int = 5) -> str:
    idx = np.flatnonzero(mask)
    names = ", ".join(market.labels[i] for i in idx[:shown])
    return names + (f" and {idx.size - shown} more" if idx.size > shown else "")


def _edge_edits(market: Market, scenario: Scenario, match: _Matcher) -> pd.DataFrame:
    """The ``[[adjacency]]`` entries as segment edges (:func:`segment_edges`: every tier
    and region, or the ones named) with the friction to set, NaN to close (a later entry
    wins over an earlier one)."""
    keys = list(market.segment_keys)
    n = len(market)
    have = market.edges["pool"].to_numpy() * n + market.edges["segment"].to_numpy()
    edits = [pd.DataFrame({"pool": [], "segment": [], "friction": []})]
    for i, entry in enumerate(scenario.adjacency):
        label = f"[[adjacency]] #{i + 1}"
        row = entry.row()
        named = [
            (column.split("_", 1)[1], value)
            for column, value in row.items()
            if column != "friction" and value is not None
        ]
        # a list rather than all(): every end is checked, so every problem is reported
        if not all([match.known(key, value, label) for key, value in named]):
            continue
        pairs = segment_edges(market.segments, keys, pd.DataFrame([row]))
        key = pairs["pool"].to_numpy() * n + pairs["segment"].to_numpy()
        pool, to = _ends(entry)
        if pairs.empty:
            match.problems.append(f"{label}: the market has no segments {pool} and {to} to join")
        elif entry.remove and not np.isin(key, have).any():
            match.problems.append(f"{label}: there is no edge {pool} → {to} to remove")
        edits.append(pairs)
    return pd.concat(edits, ignore_index=True).astype(
        {"pool": np.int64, "segment": np.int64, "friction": np.float64}
    )


def _ends(entry: AdjacencyChange) -> tuple[str, str]:
    """The entry's pool and segment ends as text: ``design/expert``, ``writing``."""
    pool = [entry.from_category, entry.from_tier, entry.from_region]
    to = [entry.to_category, entry.to_tier, entry.to_region]
    return "/".join(v for v in pool if v), "/".join(v for v in to if v)


def _check_targets(market: Market, scenario: Scenario, match: _Matcher) -> None:
    """Problems of the inverse target and the intervention overrides on this market."""
    target = scenario.solve_for
    if target is not None and target.fee is not None:
        label = "[solve_for.fee]"
        mask = match(target.fee.selectors, label)
        if mask.sum() > 1:
            match.problems.append(
                f"{label}: selects {int(mask.sum())} segments ({_labels(market, mask)}); "
                "it needs exactly one: add tier (and region)"
            )
        elif mask.any() and not market.usable[mask].all():
            match.problems.append(f"{label}: {_labels(market, mask)} has no usable curve")
    if target is not None and target.budget is not None:
        match.known("category", target.budget.category, "[solve_for.budget]")
    if scenario.interventions is not None:
        for setting in ("min_fill", "spend_caps"):
            for name in getattr(scenario.interventions, setting):
                match.known("category", name, f"[interventions] {setting}")


# --------------------------------------------------------------------------- what-if
def check_scenario(
    market: Market, scenario: Scenario, config: RunConfig, catalogue: pd.DataFrame | None
) -> Market:
    """The scenario applied to ``market``, after checking that it can be solved: a
    :class:`ConfigError` when it plans or solves for a budget without a catalogue (or an
    entry selects nothing, see :func:`apply_scenario`)."""
    settings = scenario.interventions_settings(config.interventions)
    wants_budget = scenario.solve_for is not None and scenario.solve_for.budget is not None
    if catalogue is None and (wants_budget or settings.budget > 0):
        need = (
            "solves for a budget"
            if wants_budget
            else f"plans interventions (budget ${settings.budget:,.0f})"
        )
        raise ConfigError(
            f"scenario '{scenario.name}' {need}, but there is no interventions catalogue: add "
            "an interventions table to the data of the run"
        )
    return apply_scenario(market, scenario)


def whatif(
    market: Market,
    baseline: EquilibriumResult,
    scenario: Scenario,
    config: RunConfig,
    catalogue: pd.DataFrame | None = None,
    progress: Callable[[str], None] | None = None,
    executor: Executor = LOCAL,
) -> WhatIf:
    """The scenario applied to ``market`` and solved against ``baseline`` (the market's
    equilibrium): unchanged components keep the baseline's numbers exactly, changed ones
    start from them. Plans interventions when the scenario sets a budget (with the run's
    other ``[interventions]`` settings and its overrides), and answers ``solve_for``.
    ``executor`` clears the scenario's coupled components (:mod:`pricing.cluster`); the
    plan and inverse searches, many small solves, run here."""
    step = progress or (lambda label: None)
    t0 = time.perf_counter()
    if len(baseline.market) != len(market):
        raise ValueError(
            f"baseline has {len(baseline.market):,} segments, the market {len(market):,}: "
            "pass the equilibrium of this market"
        )
    settings = scenario.interventions_settings(config.interventions)
    target = scenario.solve_for
    timings: dict[str, float] = {}
    step(f"applying scenario '{scenario.name}'")
    new = check_scenario(market, scenario, config, catalogue)
    timings["apply"] = time.perf_counter() - t0
    step("solving the scenario's equilibrium")
    t1 = time.perf_counter()
    solved = solve(new, baseline=baseline, executor=executor)
    timings["solve"] = time.perf_counter() - t1
    inverse, plan = None, None
    t1 = time.perf_counter()
    if target is not None and target.fee is not None:
        step(f"solving for the {target.fee.side} fee")
        inverse, new, solved = inverse_fee(new, solved, target.fee)
        timings["inverse"] = time.perf_counter() - t1
    if target is not None and target.budget is not None:
        assert catalogue is not None  # checked above
        step("solving for the budget")
        inverse, plan = inverse_budget(new, solved, catalogue, settings, target.budget, progress)
        timings["inverse"] = time.perf_counter() - t1
    elif settings.budget > 0:
        assert catalogue is not None  # checked above
        plan = plan_interventions(new, catalogue, settings, baseline=solved, progress=progress)
        timings["plan"] = time.perf_counter() - t1
    timings["total"] = time.perf_counter() - t0
    return WhatIf(
        scenario=scenario,
        market=new,
        baseline=baseline,
        result=plan.equilibrium if plan is not None else solved,
        plan=plan,
        inverse=inverse,
        timings=timings,
    )


# --------------------------------------------------------------------------- inverse fee
@dataclass(frozen=True)
class _FeeSearch:
    """A fee search's outcome: the fee (NaN if none in the range clears at the target),
    the rates at the range ends (low, high), the solves it took, how it was found."""

    fee: float
    reachable: tuple[float, float]
    evaluations: int
    method: str
    solved: EquilibriumResult | None = None  # the last solve at ``fee``, if any


def inverse_fee(
    market: Market, solved: EquilibriumResult, target: FeeTarget
) -> tuple[InverseAnswer, Market, EquilibriumResult]:
    """The fee at which the target segment clears at ``target.rate``: closed form for an
    uncoupled, unbounded segment, else Brent's method (module docstring); verified by a
    solve. Returns the answer and the market and equilibrium at the fee found (the
    given ones when unreachable)."""
    i = int(np.flatnonzero(_Matcher(market)(target.selectors, "[solve_for.fee]"))[0])
    e = market.edges
    alone = not ((e["pool"] == i) | (e["segment"] == i)).any()
    bounded = bool(np.isfinite(market.segments.loc[i, ["rate_floor", "rate_cap"]]).any())
    if alone and not bounded:
        search = _fee_closed_form(market, i, target)
    else:
        search = _fee_brent(market, solved, i, target)
    subject = f"{target.side} fee of {market.labels[i]}"
    lo, hi = target.range
    if math.isnan(search.fee):
        low, high = search.reachable
        detail = (
            f"the rate of {market.labels[i]} runs from ${low:,.2f}/h to ${high:,.2f}/h over "
            f"{target.side} fees {lo:.1%}–{hi:.1%}"
            if np.isfinite(search.reachable).all()
            else f"the equilibrium of {market.labels[i]} failed at the ends of the fee range"
        )
        answer = InverseAnswer(
            "fee", subject, target.rate, np.nan, np.nan, "unreachable",
            search.method, search.evaluations, search.reachable, detail,
        )  # fmt: skip
        return answer, market, solved
    at_fee = _with_fee(market, i, target.side, search.fee)
    check = search.solved
    evaluations = search.evaluations
    if check is None:
        check = solve(at_fee, baseline=solved)
        evaluations += 1
    achieved = float(check.rate[i])
    how = f"{evaluations} warm-started solves" if search.evaluations else "verified by a solve"
    method = f"{search.method}, {how}, |p − target| = {abs(achieved - target.rate):.1e}"
    answer = InverseAnswer(
        "fee", subject, target.rate, search.fee, achieved, "solved",
        method, evaluations, search.reachable,
    )  # fmt: skip
    return answer, at_fee, check


def _with_fee(market: Market, i: int, side: str, fee: float) -> Market:
    """``market`` with segment ``i``'s ``side`` fee (``client``/``freelancer``) set."""
    segments = market.segments.copy()
    fees = segments[f"{side}_fee"].to_numpy(copy=True)
    fees[i] = fee
    segments[f"{side}_fee"] = fees
    return Market.unchecked(segments, market.edges, market.segment_keys)


def _fee_closed_form(market: Market, i: int, target: FeeTarget) -> _FeeSearch:
    """The fee clearing an uncoupled, unbounded segment at the target (module docstring)."""
    s = market.segments.iloc[i]
    ld, ls = s["log_demand_level"], s["log_supply_level"]
    eps, eta = s["demand_elasticity"], s["supply_elasticity"]
    lfc, lff = np.log1p(s["client_fee"]), np.log1p(-s["freelancer_fee"])
    log_rate = np.log(target.rate)
    if target.side == "freelancer":
        fee = -np.expm1((ld - ls + (eps - eta) * log_rate + eps * lfc) / eta)
    else:
        fee = np.expm1((ls - ld + (eta - eps) * log_rate + eta * lff) / eps)

    def rate_at(f: float) -> float:
        fc, ff = (lfc, np.log1p(-f)) if target.side == "freelancer" else (np.log1p(f), lff)
        return float(np.exp((ld - ls + eps * fc - eta * ff) / (eta - eps)))

    ends = sorted(rate_at(f) for f in target.range)
    lo, hi = target.range
    inside = lo <= fee <= hi
    return _FeeSearch(
        float(fee) if inside else np.nan,
        (ends[0], ends[1]),
        0,
        "closed form (uncoupled segment)" + ("" if inside else f": the fee would be {fee:.2%}"),
    )


def _fee_brent(market: Market, solved: EquilibriumResult, i: int, target: FeeTarget) -> _FeeSearch:
    """Brent's method on fee ↦ p*(fee) − target over ``target.range``, every value a
    solve warm-started from the one before (only segment ``i``'s component changes)."""
    results: dict[float, EquilibriumResult] = {}
    last = [solved]

    def rate_at(fee: float) -> float:
        if fee not in results:
            results[fee] = solve(_with_fee(market, i, target.side, fee), baseline=last[0])
            last[0] = results[fee]
        return float(results[fee].rate[i])

    lo, hi = target.range
    r_lo, r_hi = rate_at(lo), rate_at(hi)
    ends = (min(r_lo, r_hi), max(r_lo, r_hi))
    method = f"Brent's method on the {target.side} fee"
    if not (np.isfinite(ends).all() and ends[0] <= target.rate <= ends[1]):
        return _FeeSearch(np.nan, ends, len(results), f"{method}, {len(results)} solves")
    fee = float(brentq(lambda f: rate_at(f) - target.rate, lo, hi, xtol=FEE_XTOL))
    return _FeeSearch(fee, ends, len(results), method, results.get(fee))


# --------------------------------------------------------------------------- inverse budget
def inverse_budget(
    market: Market,
    solved: EquilibriumResult,
    catalogue: pd.DataFrame,
    settings: InterventionsConfig,
    target: BudgetTarget,
    progress: Callable[[str], None] | None = None,
) -> tuple[InverseAnswer, InterventionPlan]:
    """The least budget whose verified plan fills ``target.category`` to ``target.fill``
    (module docstring), with the plan at it. ``settings`` supply everything but the
    budget and the fill targets (the target is the only one)."""
    search = _BudgetSearch(market, solved, catalogue, settings, target, progress)
    first = search.plan(0.0)
    if search.meets(first):
        return search.answer(first, "met without levers")
    relax = first.relaxations
    budget_rows = relax[relax["relax"] == "budget"]
    if budget_rows.empty or (relax["relax"] == "spend_cap").any():
        reach = relax[(relax["relax"] == "min_fill") & (relax["category"] == target.category)]
        most = float(reach["needed"].iloc[0]) if len(reach) else search.fill(first)
        detail = first.explanation.removeprefix("infeasible request:\n").replace("\n", "; ")
        return search.unreachable(first, most, detail, "diagnosis of the plan at $0")
    least = float(budget_rows["needed"].iloc[0])
    model = f"least-cost CP-SAT plan over re-solved lever values ({_money_text(least)})"
    plan = search.plan(least)
    if search.meets(plan):
        cheaper = search.plan(plan.spend - BUDGET_STEP)
        if not search.meets(cheaper):
            return search.answer(
                plan,
                f"{model}, verified: fill met at {_money_text(plan.spend)}, not met at "
                f"{_money_text(plan.spend - BUDGET_STEP)}",
            )
        low, high = 0.0, cheaper  # the plan at $0 does not meet the target
    else:
        cost = catalogue["cost_per_unit"].astype(float) * catalogue["max_units"].astype(float)
        whole = float(cost.sum())
        high = search.plan(whole)
        if not search.meets(high):
            return search.unreachable(
                high,
                search.fill(high),
                f"no plan within the whole catalogue's cost ({_money_text(whole)}) reaches "
                f"it: the best verified plan fills {search.fill(high):.2%}",
                "verified plan at the whole catalogue's cost",
            )
        low = least
    while high.spend - low > BUDGET_PRECISION:
        budget = (low + high.spend) / 2
        mid = search.plan(budget)
        if search.meets(mid):
            high = mid
        else:
            low = budget
    return search.answer(
        high,
        f"{model}; verified plans bisected: fill met at {_money_text(high.spend)}, not met "
        f"at {_money_text(low)}",
    )


class _BudgetSearch:
    """Plans at chosen budgets for one fill target, each verified by its joint solve."""

    def __init__(
        self,
        market: Market,
        solved: EquilibriumResult,
        catalogue: pd.DataFrame,
        settings: InterventionsConfig,
        target: BudgetTarget,
        progress: Callable[[str], None] | None,
    ) -> None:
        self.market, self.solved, self.catalogue = market, solved, catalogue
        self.request = settings.model_copy(update={"min_fill": {target.category: target.fill}})
        self.target = target
        self.progress = progress
        self.plans: list[InterventionPlan] = []

    def plan(self, budget: float) -> InterventionPlan:
        settings = self.request.model_copy(update={"budget": budget})
        plan = plan_interventions(self.market, self.catalogue, settings, self.solved, self.progress)
        self.plans.append(plan)
        return plan

    def fill(self, plan: InterventionPlan) -> float:
        """The category's fill by the plan's joint solve."""
        frame = plan.categories
        return float(frame.loc[frame["category"] == self.target.category, "fill_after"].iloc[0])

    def meets(self, plan: InterventionPlan) -> bool:
        return plan.feasible and self.fill(plan) >= self.target.fill * (1 - FILL_TOL)

    def _answer(
        self, value: float, achieved: float, most: float, method: str, detail: str = ""
    ) -> InverseAnswer:
        n = len(self.plans)
        return InverseAnswer(
            kind="budget",
            subject=f"budget for the fill of '{self.target.category}'",
            target=self.target.fill,
            value=value,
            achieved=achieved,
            status="unreachable" if detail else "solved",
            method=f"{method} ({n} plan{'s' if n > 1 else ''})",
            evaluations=n,
            reachable=(self.fill(self.plans[0]), most),
            detail=detail,
        )

    def answer(self, plan: InterventionPlan, method: str) -> tuple[InverseAnswer, InterventionPlan]:
        fill = self.fill(plan)
        return self._answer(plan.spend, fill, fill, method), plan

    def unreachable(
        self, plan: InterventionPlan, most: float, detail: str, method: str
    ) -> tuple[InverseAnswer, InterventionPlan]:
        return self._answer(np.nan, np.nan, most, method, detail), plan
