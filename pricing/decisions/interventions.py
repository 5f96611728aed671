r"""Budgeted supply interventions: how many units of each catalogue lever to buy.

**Program.** Choose whole units u_l ∈ {0, …, max_l} of every lever l to

    maximize  V(u)                                    (filled hours, GMV or surplus)
    s.t.      Σ_l c_l u_l ≤ budget,
              Σ_{l of category c} c_l u_l ≤ cap_c              (spend caps),
              fill_c(u) = hours_c(u) / D_c(today's rates) ≥ target_c   (minimum fill),

where V and hours_c come from the equilibrium of the market with the levers applied
(:mod:`pricing.decisions.levers`), tabulated from re-solves (:mod:`pricing.decisions.valuation`) and
selected by an integer program (:mod:`pricing.decisions.selection`).

**Rounds.** The separable groups' values are re-solved around an anchor: it starts at
no units; after each round it moves to the plan just chosen, so interactions between
levers in a group enter the next choice. Rounds stop when the plan repeats (the model is
then exact at it), when the model predicts less than :data:`ROUND_GAIN` over its anchor,
or after ``max_rounds``. Every plan chosen is applied to the whole market and solved
jointly; the best one that meets the fill targets by its joint solve is returned, with
the *predicted* (model) and *verified* (joint solve) gains.

**Sensitivity.** The marginal value of budget is the model's gain from one more
``budget_step``; a constraint binds when relaxing it by one step (or dropping a fill
target) raises the model's optimum. An infeasible request is diagnosed: a fill target
no plan reaches at any budget, else the least budget that meets every target, or the
caps that rule every such plan out.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from pricing.config import InterventionsConfig
from pricing.decisions.levers import Levers, segment_values, solve_variants
from pricing.decisions.selection import Limits, Selection, UnitProgram
from pricing.decisions.valuation import NOISE, ValueModel, Valuer
from pricing.display import Display, records, share, table
from pricing.errors import MarketError
from pricing.market.equilibrium import EquilibriumResult, solve
from pricing.market.market import Market
from pricing.statuses import PlanStatus

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: re-anchoring stops when the model predicts less than this share over its anchor: on
#: 1,000-segment markets the rounds after it traded plans within 0.1 % of each other
#: (pricing bench --only interventions), each costing a full round of re-solves
ROUND_GAIN = 2e-3


#: the unit of each objective's value and gains: a week of the as-of week's market
OBJECTIVE_UNITS = {"hours": "hours/week", "gmv": "USD/week", "surplus": "USD/week"}


# --------------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class InterventionPlan(Display):
    """Units to buy of each lever, with predicted and verified gains (immutable).

    ``to_frame()`` is one row per lever; ``categories`` one row per category (spend,
    cap, hours and fill before and after, target); ``constraints`` one row per
    constraint with its slack and whether it binds; ``rounds`` the re-anchoring rounds.
    ``status`` is ``optimal``, ``feasible`` (time limit: the gap to CP-SAT's bound is
    ``optimality_gap``), ``infeasible`` (``explanation`` says which target fails and
    the cheapest relaxation, ``relaxations`` lists them) or ``empty`` (no budget).
    """

    objective: str
    budget: float
    units: IntArray
    catalogue: pd.DataFrame
    status: PlanStatus
    base_value: float
    predicted_gain: float
    verified_gain: float
    marginal_value: float  # objective gained per USD of one more budget step
    budget_step: float
    value_rounding: float  # |integer-scaled − exact| model value of the plan
    cost_rounding: float  # USD the integer program counted above the true spend
    optimality_gap: float
    categories: pd.DataFrame
    constraints: pd.DataFrame
    rounds: pd.DataFrame
    relaxations: pd.DataFrame
    explanation: str
    equilibrium: EquilibriumResult  # the joint solve of the market with the plan applied
    baseline: EquilibriumResult
    config: InterventionsConfig
    market: Market = field(repr=False)
    timings: dict[str, float] = field(default_factory=dict)
    #: per lever, the model's gain of its units with the other levers as chosen,
    #: V(u) − V(u with the lever at 0) (:func:`_lever_gains`); NaN when not planned
    lever_gain: FloatArray | None = None
    #: per lever, the same re-solved: what the joint solve loses without the lever
    #: (:func:`_verified_lever_gains`); NaN when not planned or a re-solve failed
    lever_verified_gain: FloatArray | None = None

    @property
    def spend(self) -> float:
        return float((self.units * self.catalogue["cost_per_unit"].to_numpy()).sum())

    @property
    def feasible(self) -> bool:
        return self.status != PlanStatus.INFEASIBLE

    def to_frame(self) -> pd.DataFrame:
        cat = self.catalogue
        out = cat[["intervention_id", "category", "kind", "to_category"]].copy()
        out["units"] = self.units
        out["max_units"] = cat["max_units"].to_numpy()
        out["cost_per_unit"] = cat["cost_per_unit"].to_numpy()
        out["spend"] = self.units * cat["cost_per_unit"].to_numpy()
        out["effect_per_unit"] = cat["effect_per_unit"].to_numpy()
        out["decay"] = cat["decay"].to_numpy()
        out["at_max"] = (self.units == cat["max_units"].to_numpy()) & (self.units > 0)
        missing = np.full(len(cat), np.nan)
        out["predicted_gain"] = missing if self.lever_gain is None else self.lever_gain
        out["verified_gain"] = (
            missing if self.lever_verified_gain is None else self.lever_verified_gain
        )
        return out

    def tables(self) -> dict[str, pd.DataFrame]:
        """The plan as the run store keeps it: ``interventions`` (one row per lever),
        ``plan_categories`` and ``plan_constraints``."""
        return {
            "interventions": self.to_frame(),
            "plan_categories": self.categories,
            "plan_constraints": self.constraints,
        }

    def headline(self) -> dict[str, Any]:
        """The plan's headline numbers (manifests, JSON output, the report)."""
        return {
            "objective": self.objective,
            "budget": self.budget,
            "spend": self.spend,
            "units": int(self.units.sum()),
            "base_value": self.base_value,
            "predicted_gain": self.predicted_gain,
            "verified_gain": self.verified_gain,
            "marginal_value_per_usd": self.marginal_value,
            "explanation": self.explanation,
            "budget_step": self.budget_step,
            "value_rounding": self.value_rounding,
            "cost_rounding": self.cost_rounding,
            "rounds": len(self.rounds),
        }

    def to_dict(self) -> dict[str, Any]:
        """The plan's numbers, its diagnostics tables and every lever."""
        return {
            "status": self.status,
            "objective": self.objective,
            "budget": self.budget,
            "spend": self.spend,
            "base_value": self.base_value,
            "predicted_gain": self.predicted_gain,
            "verified_gain": self.verified_gain,
            "marginal_value_per_usd": self.marginal_value,
            "budget_step": self.budget_step,
            "value_rounding": self.value_rounding,
            "cost_rounding": self.cost_rounding,
            "optimality_gap": self.optimality_gap,
            "explanation": self.explanation,
            "relaxations": records(self.relaxations),
            "constraints": records(self.constraints),
            "categories": records(self.categories),
            "rounds": records(self.rounds),
            "levers": records(self.to_frame()),
        }

    def summary(self, max_rows: int = 20) -> str:
        lines = [
            f"Intervention plan ({self.status}): objective {self.objective}, "
            f"budget ${self.budget:,.0f}, spend ${self.spend:,.0f}"
        ]
        if self.feasible:
            lines += [
                f"  gain, {OBJECTIVE_UNITS.get(self.objective, self.objective)}: predicted "
                f"{self.predicted_gain:,.2f}, verified "
                f"{self.verified_gain:,.2f} (base {self.base_value:,.2f}); marginal value "
                f"{self.marginal_value:.4g} per $ (step ${self.budget_step:,.0f})",
                f"  rounding: value {self.value_rounding:.2g}, cost ${self.cost_rounding:,.2f}; "
                f"{len(self.rounds)} round(s)",
            ]
        if self.explanation:
            lines.append("  " + self.explanation.replace("\n", "\n  "))
        moved = self.categories.assign(
            change=self.categories["hours_after"] - self.categories["hours_before"]
        )
        moved = moved[moved["change"].abs() > 0].sort_values("change", key=np.abs, ascending=False)
        if self.feasible and len(moved):
            top = moved.head(5)
            fills = top[["fill_before", "fill_after"]].to_numpy(np.float64)
            lines.append(
                "  hours/week: "
                + ", ".join(
                    f"{name} {change:+,.0f} (fill {share(before)} → {share(after)})"
                    for name, change, (before, after) in zip(
                        top["category"], top["change"], fills, strict=True
                    )
                )
            )
        binding = self.constraints[self.constraints["binding"]]
        if len(binding):
            lines.append("  binding: " + ", ".join(binding["constraint"]))
        bought = self.to_frame()
        bought = bought[bought["units"] > 0]
        if max_rows and len(bought):
            cols = ["intervention_id", "kind", "units", "max_units", "spend"]
            lines.append(table(bought[cols].head(max_rows), "{:,.0f}"))
        return "\n".join(lines)

    def html_frame(self) -> pd.DataFrame:
        frame = self.to_frame()
        return frame[frame["units"] > 0]


def plan_interventions(
    market: Market,
    catalogue: pd.DataFrame,
    config: InterventionsConfig | None = None,
    baseline: EquilibriumResult | None = None,
    progress: Callable[[str], None] | None = None,
) -> InterventionPlan:
    """The plan that maximizes ``config.objective`` within the budget (module docstring).

    ``catalogue``: the interventions table (see data/README.md); ``baseline``: the
    market's equilibrium when already solved; ``progress`` is told each step (the CLI
    shows them on stderr). Raises :class:`MarketError` for a catalogue or configuration
    that does not fit the market."""
    ctx = _Planning.start(market, catalogue, config or InterventionsConfig(), baseline, progress)
    tried: dict[bytes, _Choice] = {}
    rounds: list[dict[str, float | int | str]] = []
    anchor, solved = np.zeros(len(ctx.levers), np.int64), ctx.baseline
    exact_at: dict[bytes, float] = {}  # plans the model was anchored at: exact value
    zero_value = 0.0
    for r in range(ctx.config.max_rounds):
        ctx.step(f"round {r + 1}: re-solving the options around the anchor")
        model = ctx.valuer.model(anchor, solved)
        exact_at[anchor.tobytes()] = model.value(anchor)[0]  # the model is exact there
        if r == 0:
            zero_value = exact_at[anchor.tobytes()]
        ctx.step(f"round {r + 1}: choosing the plan (CP-SAT)")
        found = ctx.choose(model, anchor)
        if found.status in ("infeasible", "unknown"):
            if r == 0:
                return _infeasible(ctx, model, found)
            break  # a re-anchored model lost feasibility: keep the earlier plans
        key = found.units.tobytes()
        if key not in tried:  # every plan chosen is verified by a joint solve
            tried[key] = ctx.verify(model, found, model.value(found.units)[0] - zero_value)
        anchor_gain = exact_at[anchor.tobytes()] - zero_value
        rounds.append(_round_row(r, anchor_gain, tried[key], ctx.valuer))
        if key in exact_at or not ctx.valuer.separable_groups.size:
            break  # the plan repeats, or every group is exact: the model is exact at it
        if tried[key].predicted - anchor_gain <= ROUND_GAIN * abs(anchor_gain):
            break  # re-anchoring cannot gain more than ROUND_GAIN
        anchor, solved = found.units, tried[key].joint
    ctx.timings["valuation"] = ctx.valuer.solve_seconds
    # the best plan that meets the fill targets by its verified hours
    best = max(tried.values(), key=lambda c: (c.meets, c.verified))
    ctx.step("marginal value of budget and binding constraints")
    plan = _finish(ctx, best, pd.DataFrame(rounds))
    return plan if best.meets else _unverified(plan)


@dataclass
class _Planning:
    """What every step of one planning call shares: the market and its levers, the
    settings and their limits, the baseline and its values, the valuer, the timings."""

    market: Market
    levers: Levers
    config: InterventionsConfig
    limits: Limits
    baseline: EquilibriumResult
    base_hours: FloatArray
    base_value: float
    demand_today: FloatArray
    valuer: Valuer
    step: Callable[[str], None]
    t0: float
    timings: dict[str, float] = field(default_factory=dict)

    @classmethod
    def start(
        cls,
        market: Market,
        catalogue: pd.DataFrame,
        config: InterventionsConfig,
        baseline: EquilibriumResult | None,
        progress: Callable[[str], None] | None,
    ) -> _Planning:
        """Check the catalogue and settings, solve the baseline if needed, and tabulate
        the small groups exactly."""
        step = progress or (lambda label: None)
        t0 = time.perf_counter()
        levers = Levers.build(market, catalogue)
        baseline = baseline if baseline is not None else solve(market)
        base_hours = segment_values(baseline, "hours", np.ones(len(market)))
        demand_today = _demand_today(market, levers)
        limits = _limits(config, levers, demand_today)
        timings = {"baseline": time.perf_counter() - t0}
        step("tabulating the small groups exactly")
        valuer = Valuer(levers, config.objective, baseline, base_hours, config.enumerate_limit)
        base_value = float(np.nansum(segment_values(baseline, config.objective, base_hours)))
        return cls(
            market, levers, config, limits, baseline, base_hours, base_value, demand_today,
            valuer, step, t0, timings,
        )  # fmt: skip

    def program(self, model: ValueModel, limits: Limits | None = None) -> UnitProgram:
        """The integer program of ``model`` under ``limits`` (default: the request's)."""
        chosen = self.limits if limits is None else limits
        return UnitProgram(model, self.levers, chosen, self.config.time_limit_seconds)

    def choose(self, model: ValueModel, hint: IntArray) -> Selection:
        """The plan the model picks under the request's limits (timed)."""
        program = self.program(model)
        found = program.run(hint=hint)
        self.timings["cp_build"] = self.timings.get("cp_build", 0.0) + program.build_seconds
        self.timings["cp_solve"] = self.timings.get("cp_solve", 0.0) + program.solve_seconds
        return found

    def verify(self, model: ValueModel, found: Selection, predicted: float) -> _Choice:
        """The plan ``found`` re-solved jointly: its verified gain, whether its verified
        hours meet every fill target, and what the model predicted."""
        units = found.units
        joint = solve(self.levers.apply(units.astype(np.float64)), baseline=self.baseline)
        gain = float(np.nansum(segment_values(joint, self.config.objective, self.base_hours)))
        hours = _category_hours(joint, self.levers)
        meets = all(hours[c] >= t * (1 - 1e-9) for c, t in self.limits.targets.items())
        return _Choice(model, found, predicted, gain - self.base_value, meets, joint)

    def plan(self, units: IntArray, **fields: Any) -> InterventionPlan:
        """A plan of ``units`` with this call's context; ``fields`` give the rest."""
        self.timings["total"] = time.perf_counter() - self.t0
        return InterventionPlan(
            objective=self.config.objective,
            budget=self.config.budget,
            units=units,
            catalogue=self.levers.catalogue,
            base_value=self.base_value,
            baseline=self.baseline,
            config=self.config,
            market=self.market,
            timings=self.timings,
            **fields,
        )


@dataclass(frozen=True)
class _Choice:
    """A plan the model chose in some round, with its joint re-solve."""

    model: ValueModel
    found: Selection
    predicted: float  # the model's gain
    verified: float  # the joint re-solve's gain
    meets: bool  # the joint re-solve meets every fill target
    joint: EquilibriumResult


def _round_row(
    r: int, anchor_gain: float, choice: _Choice, valuer: Valuer
) -> dict[str, float | int | str]:
    return {
        "round": r + 1,
        "anchor_gain": anchor_gain,
        "predicted_gain": choice.predicted,
        "verified_gain": choice.verified,
        "units_bought": int(choice.found.units.sum()),
        "copies_solved": valuer.copies,  # so far, in all rounds
        "copies_failed": valuer.failed,
        "status": choice.found.status,
    }


def _unverified(plan: InterventionPlan) -> InterventionPlan:
    """The plan model met every fill target but no plan's joint re-solve does: the
    request is infeasible as far as verified plans go. The best of them is kept, with
    the targets it misses, what it reaches, and what would make them reachable."""
    missed = plan.categories[~plan.categories["target_met"]]
    lines = [
        f"min_fill for '{r.category}' ({r.min_fill:.1%}) is met by the plan model but "
        f"not by the joint re-solve of any plan it chose: the best reaches {r.fill_after:.2%}"
        for r in missed.itertuples()
    ]
    lines.append("relax the target to what the plan reaches, or raise the budget and plan again")
    relaxations = pd.DataFrame(
        {
            "relax": "min_fill",
            "category": missed["category"].to_numpy(),
            "requested": missed["min_fill"].to_numpy(),
            "needed": missed["fill_after"].to_numpy(),
        }
    )
    return replace(
        plan,
        status=PlanStatus.INFEASIBLE,
        explanation="infeasible request:\n" + "\n".join(lines),
        relaxations=relaxations,
    )


def _demand_today(market: Market, levers: Levers) -> FloatArray:
    """Hours each category's clients ask for at today's rates (the fill denominator)."""
    demand = market.demand_hours(market.array("observed_rate"))
    out: FloatArray = np.bincount(
        levers.segment_category,
        np.nan_to_num(demand),
        minlength=len(levers.category_names),
    ).astype(np.float64)
    return out


def _category_hours(result: EquilibriumResult, levers: Levers) -> FloatArray:
    hours = segment_values(result, "hours", np.ones(len(result.market)))
    out: FloatArray = np.bincount(
        levers.segment_category, np.nan_to_num(hours), minlength=len(levers.category_names)
    ).astype(np.float64)
    return out


def _limits(config: InterventionsConfig, levers: Levers, demand_today: FloatArray) -> Limits:
    """Caps and fill targets by category code; unknown categories are errors."""
    names = list(levers.category_names)
    problems = []
    for setting in ("spend_caps", "min_fill"):
        for name in getattr(config, setting):
            if name not in names:
                from pricing.errors import suggest

                hint = suggest(name, names)
                problems.append(
                    f"interventions.{setting}: no segment has category '{name}'"
                    + (f"; did you mean '{hint}'?" if hint else "")
                )
    observed = levers.market.array("observed_rate")
    for name in config.min_fill:
        if name in names:
            c = names.index(name)
            if not np.isfinite(observed[levers.segment_category == c]).all():
                problems.append(
                    f"interventions.min_fill: category '{name}' has a segment without an "
                    "observed rate, so its fill (hours / demand at today's rates) is undefined"
                )
    if problems:
        raise MarketError(
            f"the [interventions] settings have {len(problems)} problem(s):\n"
            + "\n".join(f"  - {p}" for p in problems)
        )
    return Limits(
        budget=config.budget,
        caps={names.index(k): v for k, v in config.spend_caps.items()},
        targets={
            names.index(k): v * demand_today[names.index(k)] for k, v in config.min_fill.items()
        },
    )


def _binding(
    model: ValueModel,
    levers: Levers,
    limits: Limits,
    config: InterventionsConfig,
    units: IntArray,
    step: float,
) -> list[tuple[str, bool, float]]:
    """(constraint, binds, model gain when relaxed) for every cap and fill target, from
    the plan ``units``."""
    value = model.value(units)[0]
    out = []
    for c, cap in limits.caps.items():
        caps = {**limits.caps, c: cap + step}
        relaxed = UnitProgram(
            model, levers, Limits(limits.budget, caps, limits.targets), config.time_limit_seconds
        ).run(hint=units, cheapest=False)
        gain = model.value(relaxed.units)[0] - value
        out.append((f"spend_cap:{levers.category_names[c]}", gain > NOISE * abs(value), gain))
    for c in limits.targets:
        targets = {k: v for k, v in limits.targets.items() if k != c}
        relaxed = UnitProgram(
            model, levers, Limits(limits.budget, limits.caps, targets), config.time_limit_seconds
        ).run(hint=units, cheapest=False)
        gain = model.value(relaxed.units)[0] - value
        out.append((f"min_fill:{levers.category_names[c]}", gain > NOISE * abs(value), gain))
    return out


def _budget_step(config: InterventionsConfig, levers: Levers) -> float:
    if config.budget_step is not None:
        return config.budget_step
    cheapest = float(levers.catalogue["cost_per_unit"].min()) if len(levers) else 1.0
    return max(0.05 * config.budget, cheapest)


def _finish(ctx: _Planning, choice: _Choice, rounds: pd.DataFrame) -> InterventionPlan:
    """The chosen plan with its sensitivity (marginal value of budget, binding caps and
    targets), its categories before and after, and its rounding."""
    t1 = time.perf_counter()
    units, model = choice.found.units, choice.model
    value = model.value(units)[0]
    step = _budget_step(ctx.config, ctx.levers)
    more_budget = Limits(ctx.config.budget + step, ctx.limits.caps, ctx.limits.targets)
    more = ctx.program(model, more_budget).run(hint=units, cheapest=False)
    marginal = (model.value(more.units)[0] - value) / step
    if marginal * step <= NOISE * abs(value):
        marginal = 0.0  # the same value, by other plans or rounding
    relaxed = _binding(model, ctx.levers, ctx.limits, ctx.config, units, step)
    ctx.timings["sensitivity"] = time.perf_counter() - t1
    cost = ctx.levers.catalogue["cost_per_unit"].to_numpy()
    spend_by_cat = np.bincount(
        ctx.levers.lever_category, units * cost, minlength=len(ctx.levers.category_names)
    ).astype(np.float64)
    before = _category_hours(ctx.baseline, ctx.levers)
    after = _category_hours(choice.joint, ctx.levers)
    categories = _categories_frame(
        ctx.levers, ctx.config, spend_by_cat, ctx.demand_today, before, after
    )
    categories["hours_predicted"] = model.value(units)[1]  # what the model said
    spend = float((units * cost).sum())
    budget_row = {
        "constraint": "budget",
        "limit": ctx.config.budget,
        "used": spend,
        "slack": ctx.config.budget - spend,
        "binding": marginal > 0,
        "gain_if_relaxed": marginal * step,
    }
    program = ctx.program(model)
    return ctx.plan(
        units,
        status=PlanStatus.EMPTY
        if not units.any() and ctx.config.budget == 0
        else PlanStatus(choice.found.status),
        predicted_gain=choice.predicted,
        verified_gain=choice.verified,
        marginal_value=marginal,
        budget_step=step,
        value_rounding=program.rounding(units),
        cost_rounding=float((units * (program.cents / 100 - cost)).sum()),
        optimality_gap=choice.found.bound_gap,
        categories=categories,
        constraints=pd.DataFrame([budget_row, *_constraint_rows(relaxed, categories)]),
        rounds=rounds,
        relaxations=pd.DataFrame(columns=["relax", "category", "requested", "needed"]),
        explanation="",
        equilibrium=choice.joint,
        lever_gain=_lever_gains(model, units),
        lever_verified_gain=_verified_lever_gains(ctx, units, choice.joint),
    )


def _lever_gains(model: ValueModel, units: IntArray) -> FloatArray:
    """Per lever, what the model says its units add with the other levers as chosen:
    V(u) − V(u with lever l at 0), 0 for a lever not bought. Interactions make these
    differ from the plan's predicted gain, which is V(u) − V(anchor) for all at once;
    only the plan as a whole is verified by a joint solve."""
    value = model.value(units)[0]
    gains = np.zeros(units.size)
    for lever in np.flatnonzero(units):  # bought levers, each one table look-up
        without = units.copy()
        without[lever] = 0
        gains[lever] = value - model.value(without)[0]
    return gains


def _verified_lever_gains(ctx: _Planning, units: IntArray, joint: EquilibriumResult) -> FloatArray:
    """Per bought lever, what the plan's joint solve loses without it: every group the
    lever touches re-solved with its units at 0 and the other levers as chosen, all in
    one batched solve warm-started from the joint solve (a copy equal to it keeps it).
    Groups do not interact, so the sum over a lever's groups is the whole market's
    difference, V_joint(u) − V_joint(u with the lever at 0); NaN where a copy failed."""
    t0 = time.perf_counter()
    gains = np.zeros(units.size)
    bought = np.flatnonzero(units)
    if bought.size == 0:
        return gains
    touched = ctx.levers.touches[bought].tocoo()
    lever, groups = bought[touched.row], touched.col.astype(np.int64)
    chosen = units.astype(np.float64)
    without = np.tile(chosen, (groups.size, 1))
    without[np.arange(groups.size), lever] = 0.0
    ref = np.unique(groups)  # each touched group as chosen: the joint solve's own values
    value, _, _ = solve_variants(
        ctx.levers,
        np.concatenate([ref, groups]),
        np.vstack([np.tile(chosen, (ref.size, 1)), without]),
        ctx.valuer.objective,
        ctx.base_hours,
        (chosen, joint),
    )
    loss = value[np.searchsorted(ref, groups)] - value[ref.size :]
    np.add.at(gains, lever, loss)
    ctx.timings["lever_gains"] = time.perf_counter() - t0
    return gains


def _constraint_rows(
    relaxed: list[tuple[str, bool, float]], categories: pd.DataFrame
) -> list[dict[str, object]]:
    """One row per spend cap and fill target: its limit, use, slack and binding."""
    by_category = categories.set_index("category")
    rows = []
    for name, binds, gain in relaxed:
        kind, cat = name.split(":", 1)
        row = by_category.loc[cat]
        limit = row["spend_cap"] if kind == "spend_cap" else row["min_fill"]
        used = row["spend"] if kind == "spend_cap" else row["fill_after"]
        slack = limit - used if kind == "spend_cap" else used - limit
        rows.append(
            {
                "constraint": name,
                "limit": limit,
                "used": used,
                "slack": slack,
                "binding": binds,
                "gain_if_relaxed": gain,
            }
        )
    return rows


def _categories_frame(
    levers: Levers,
    config: InterventionsConfig,
    spend: FloatArray,
    demand_today: FloatArray,
    before: FloatArray,
    after: FloatArray,
) -> pd.DataFrame:
    names = list(levers.category_names)
    with np.errstate(divide="ignore", invalid="ignore"):
        frame = pd.DataFrame(
            {
                "category": names,
                "spend": spend,
                "spend_cap": [config.spend_caps.get(n, np.nan) for n in names],
                "demand_today": demand_today,
                "hours_before": before,
                "hours_after": after,
                "fill_before": before / demand_today,
                "fill_after": after / demand_today,
                "min_fill": [config.min_fill.get(n, np.nan) for n in names],
            }
        )
    frame["target_met"] = ~(frame["fill_after"] < frame["min_fill"] * (1 - 1e-9))
    return frame


def _infeasible(ctx: _Planning, model: ValueModel, found: Selection) -> InterventionPlan:
    """Why no plan meets the request, and the cheapest relaxation: an empty plan that
    says so."""
    lines: list[str] = []
    relax: list[dict[str, object]] = []
    if found.status == "unknown":
        lines.append(
            f"CP-SAT found no plan within {ctx.config.time_limit_seconds:g} s and could not "
            "prove that none exists; raise interventions.time_limit_seconds"
        )
    unreachable = _target_reach(ctx, model, lines, relax)
    if not unreachable and ctx.limits.targets:
        _cheapest_relaxation(ctx, model, lines, relax)
    if not lines:
        lines.append("no plan satisfies the budget, caps and targets together")
    ctx.timings["valuation"] = ctx.valuer.solve_seconds
    before = _category_hours(ctx.baseline, ctx.levers)
    spend = np.zeros(len(ctx.levers.category_names))
    return ctx.plan(
        np.zeros(len(ctx.levers), np.int64),
        status=PlanStatus.INFEASIBLE,
        predicted_gain=0.0,
        verified_gain=0.0,
        marginal_value=np.nan,
        budget_step=np.nan,
        value_rounding=0.0,
        cost_rounding=0.0,
        optimality_gap=np.nan,
        categories=_categories_frame(
            ctx.levers, ctx.config, spend, ctx.demand_today, before, before
        ),
        constraints=pd.DataFrame(
            columns=["constraint", "limit", "used", "slack", "binding", "gain_if_relaxed"]
        ),
        rounds=pd.DataFrame(),
        relaxations=pd.DataFrame(relax, columns=["relax", "category", "requested", "needed"]),
        explanation="infeasible request:\n" + "\n".join(lines),
        equilibrium=ctx.baseline,
    )


def _target_reach(
    ctx: _Planning, model: ValueModel, lines: list[str], relax: list[dict[str, object]]
) -> bool:
    """For every fill target the model cannot meet, why (out of reach at any budget, or
    within the budget and caps), appended to ``lines`` and ``relax``; whether some target
    is out of reach at any budget."""
    names = list(ctx.levers.category_names)
    unlimited = Limits(None, {}, {})
    hours_now = ctx.program(model, unlimited).base_hours
    unreachable = False
    for c, target in ctx.limits.targets.items():
        most = model.value(ctx.program(model, unlimited).run("hours", c).units)[1][c]
        within = ctx.program(model, Limits(ctx.limits.budget, ctx.limits.caps, {}))
        reach = model.value(within.run("hours", c).units)[1][c]
        demand = ctx.demand_today[c]
        want = target / demand
        if most < target * (1 - 1e-9):
            unreachable = True
            lines.append(
                f"min_fill for '{names[c]}' ({want:.1%}) is out of reach at any budget: every "
                f"lever together fills at most {most / demand:.1%} "
                f"(now {hours_now[c] / demand:.1%}); lower it to at most {most / demand:.1%}"
            )
            relax.append(
                {
                    "relax": "min_fill",
                    "category": names[c],
                    "requested": want,
                    "needed": most / demand,
                }
            )
        elif reach < target * (1 - 1e-9):
            lines.append(
                f"min_fill for '{names[c]}' ({want:.1%}) is not met within the budget and caps: "
                f"they reach {reach / demand:.1%}"
            )
            relax.append(
                {
                    "relax": "min_fill",
                    "category": names[c],
                    "requested": want,
                    "needed": reach / demand,
                }
            )
    return unreachable


def _fill_relaxation(category: str, requested: float, needed: float) -> dict[str, object]:
    return {"relax": "min_fill", "category": category, "requested": requested, "needed": needed}


def _cheapest_relaxation(
    ctx: _Planning, model: ValueModel, lines: list[str], relax: list[dict[str, object]]
) -> None:
    """The budget (and the spend caps) that would admit a plan meeting every fill target,
    appended to ``lines`` and ``relax``."""
    names = list(ctx.levers.category_names)
    budget = ctx.config.budget
    # amounts as the program counts them (costs in cents, rounded up), so that the budget
    # or cap suggested admits the plan when a cost has a fraction of a cent
    cents = np.ceil(ctx.levers.catalogue["cost_per_unit"].to_numpy() * 100 - 1e-9)
    targets = ctx.limits.targets
    with_caps = ctx.program(model, Limits(None, ctx.limits.caps, targets)).run("spend")
    if with_caps.status in ("optimal", "feasible"):
        need = float(with_caps.units @ cents) / 100
        lines.append(
            f"the cheapest plan that meets every fill target costs ${need:,.0f}; "
            f"raise the budget from ${budget:,.0f} to ${need:,.0f}"
        )
        relax.append({"relax": "budget", "category": "", "requested": budget, "needed": need})
        return
    free = ctx.program(model, Limits(None, {}, targets)).run("spend")
    spent = np.bincount(ctx.levers.lever_category, free.units * cents, len(names)) / 100
    need = float(free.units @ cents) / 100
    lines.append(
        "the spend caps rule out every plan that meets the fill targets; "
        f"the cheapest such plan costs ${need:,.0f}"
    )
    for c, cap in ctx.limits.caps.items():
        if spent[c] > cap:
            lines.append(f"  it spends ${spent[c]:,.0f} on '{names[c]}' (cap ${cap:,.0f})")
            relax.append(
                {"relax": "spend_cap", "category": names[c], "requested": cap, "needed": spent[c]}
            )
    relax.append({"relax": "budget", "category": "", "requested": budget, "needed": need})


# --------------------------------------------------------------------------- evaluation
@dataclass(frozen=True)
class PlanCheck(Display):
    """An independent check of a plan: one row per check with what was found."""

    checks: pd.DataFrame  # check, ok, detail
    verified_gain: float

    @property
    def ok(self) -> bool:
        return bool(self.checks["ok"].all())

    def to_frame(self) -> pd.DataFrame:
        return self.checks.copy()

    def summary(self, max_rows: int = 20) -> str:
        """How many checks pass, then up to ``max_rows`` of the failed ones."""
        bad = self.checks[~self.checks["ok"]]
        head = f"Plan check: {len(self.checks) - len(bad)}/{len(self.checks)} checks pass"
        failed = (f"  FAILED {r.check}: {r.detail}" for r in bad.head(max_rows).itertuples())
        return "\n".join([head, *failed])


#: a re-solved gain may differ from the plan's by the equilibrium's verification bar
#: (VERIFY_TOL = 1e-6 relative) on the objective's scale
GAIN_TOL = 1e-6


def evaluate(plan: InterventionPlan) -> PlanCheck:
    """Re-check ``plan`` from its catalogue and market alone: whole units within range,
    spend within the budget and every cap, no lever without effect bought, the gain by
    fresh equilibrium solves of the market without and with the plan, fill targets."""
    cat, units, config = plan.catalogue, plan.units, plan.config
    rows: list[dict[str, object]] = []

    def check(name: str, ok: bool, detail: str) -> None:
        rows.append({"check": name, "ok": bool(ok), "detail": detail})

    max_units = cat["max_units"].to_numpy()
    check(
        "units",
        bool(
            np.issubdtype(units.dtype, np.integer) and ((units >= 0) & (units <= max_units)).all()
        ),
        f"{int(units.sum())} units over {int((units > 0).sum())} levers, each in [0, max_units]",
    )
    spend = units * cat["cost_per_unit"].to_numpy()
    check(
        "budget",
        spend.sum() <= config.budget,
        f"spend ${spend.sum():,.2f} of ${config.budget:,.2f}",
    )
    by_cat = pd.Series(spend).groupby(cat["category"].astype(str).to_numpy()).sum()
    for name, cap in config.spend_caps.items():
        used = float(by_cat.get(name, 0.0))
        check(f"spend_cap:{name}", used <= cap, f"${used:,.2f} of ${cap:,.2f}")
    useless = (cat["effect_per_unit"].to_numpy() == 0) & (units > 0)
    check(
        "no_useless_lever",
        not useless.any(),
        f"{int(useless.sum())} lever(s) without effect bought",
    )
    levers = Levers.build(plan.market, cat)
    before = solve(plan.market)
    after = solve(levers.apply(units.astype(np.float64)))
    base_hours = segment_values(before, "hours", np.ones(len(plan.market)))
    base = float(np.nansum(segment_values(before, config.objective, base_hours)))
    gain = float(np.nansum(segment_values(after, config.objective, base_hours))) - base
    scale = max(abs(base), float(np.nansum(np.abs(segment_values(before, "gmv", base_hours)))))
    check(
        "gain",
        abs(gain - plan.verified_gain) <= GAIN_TOL * scale,
        f"re-solved gain {gain:,.4f} vs plan's {plan.verified_gain:,.4f}",
    )
    check("solved", after.ok and before.ok, "every component of both markets solved")
    if plan.feasible:
        hours = _category_hours(after, levers)
        demand = _demand_today(plan.market, levers)
        names = list(levers.category_names)
        for name, target in config.min_fill.items():
            fill = hours[names.index(name)] / demand[names.index(name)]
            check(
                f"min_fill:{name}", fill >= target * (1 - 1e-9), f"fill {fill:.2%} ≥ {target:.2%}"
            )
    return PlanCheck(pd.DataFrame(rows), gain)
