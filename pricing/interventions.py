r"""Budgeted supply interventions: how many units of each catalogue lever to buy.

**Program.** Choose whole units u_l ∈ {0, …, max_l} of every lever l to

    maximize  V(u)                                    (filled hours, GMV or surplus)
    s.t.      Σ_l c_l u_l ≤ budget,
              Σ_{l of category c} c_l u_l ≤ cap_c              (spend caps),
              fill_c(u) = hours_c(u) / D_c(today's rates) ≥ target_c   (minimum fill),

where V and hours_c come from the equilibrium of the market with the levers applied
(:mod:`pricing.levers`). The market splits into *groups*, the components of the market
with every edge a lever could open; V is a sum over groups, and levers touching
different groups never interact.

**Values from re-solves.** Each group's value is tabulated by solving copies of it, all
copies in one batched equilibrium call:

- a group whose levers have at most ``enumerate_limit`` joint unit combinations is
  tabulated **exactly**, every combination; the program picks one combination per group
  (a one-hot choice linked to the levers' units);
- a larger group is **separable around an anchor** a: V_g(u) ≈ V_g(a) + Σ_l [V_g(a with
  u_l) − V_g(a)], each term a re-solve with one lever moved. The anchor starts at no
  units; after each round it moves to the plan just chosen and the values are re-solved
  around it, so interactions between levers in a group enter the next choice. Rounds
  stop when the plan repeats (the model is then exact at the plan) or after
  ``max_rounds``; the best plan found, by its re-solved value, is kept.

The chosen plan is then applied to the whole market and solved jointly: the *predicted*
gain is the model's, the *verified* gain the joint solve's.

**Integer program.** CP-SAT needs integer coefficients: costs are counted in cents,
rounded up, and the budget and caps in cents, rounded down, so a plan the program
accepts never overspends; values and hours are scaled so the largest coefficient is
:data:`RESOLUTION` and rounded, and the rounding of the chosen plan is reported. An
option no better than fewer units of the same lever (or, in an exact group, than a
combination with no more of any lever) is ruled out, so units that add nothing are
never bought; among plans of equal value the cheapest is taken (a second solve, started
from the first one's plan). The marginal value of budget is the model's gain from one more
``budget_step``; a constraint binds when relaxing it by one step (or dropping a fill
target) raises the model's optimum. An infeasible request is diagnosed: a fill target
no plan reaches at any budget, else the least budget that meets every target.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pandas as pd

from pricing.config import InterventionsConfig
from pricing.equilibrium import EquilibriumResult, solve
from pricing.errors import MarketError
from pricing.levers import Levers, Objective, segment_values, solve_variants
from pricing.market import Market

if TYPE_CHECKING:
    from ortools.sat.python import cp_model

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: largest integer coefficient of a scaled value or hours term
RESOLUTION = 10**8
#: re-anchoring stops when the model predicts less than this share over its anchor: on
#: 1,000-segment markets the rounds after it traded plans within 0.1 % of each other
#: (benchmarks/bench_interventions.py), each costing a full round of re-solves
ROUND_GAIN = 2e-3
#: a re-solved gain below this share of its group's objective is solver noise: the
#: equilibrium verifies to 1e-6 relative and solves to ~1e-10, so 1e-8 is kept clear of
#: both the noise of identical copies and any real effect worth a decision
NOISE = 1e-8


# --------------------------------------------------------------------------- value model
@dataclass(frozen=True)
class _Exact:
    """A group tabulated over every joint unit combination of its levers."""

    group: int
    levers: IntArray  # (k,)
    configs: IntArray  # (n_cfg, k) units of each lever
    value: FloatArray  # (n_cfg,)
    hours: FloatArray  # (n_cfg, n_categories)


@dataclass(frozen=True)
class _Model:
    """V(u) = constant + Σ_l coef[l, u_l] + Σ_exact value[config(u)] (and hours alike)."""

    coef: FloatArray  # (L, U+1), NaN: that option could not be valued
    hours: FloatArray  # (L, U+1, n_categories)
    constant: float
    constant_hours: FloatArray  # (n_categories,)
    exact: list[_Exact]

    def value(self, units: IntArray) -> tuple[float, FloatArray]:
        """The model's objective and hours per category at ``units``."""
        idx = np.arange(units.size)
        v = self.constant + float(np.nansum(self.coef[idx, units]))
        h = self.constant_hours + self.hours[idx, units].sum(axis=0)
        for ex in self.exact:
            row = _config_row(ex, units)
            v += float(ex.value[row])
            h = h + ex.hours[row]
        return v, h


def _config_row(ex: _Exact, units: IntArray) -> int:
    hit = np.flatnonzero((ex.configs == units[ex.levers]).all(axis=1))
    return int(hit[0])


class _Valuer:
    """Re-solves group copies for a catalogue and tabulates the value model."""

    def __init__(
        self,
        levers: Levers,
        objective: Objective,
        baseline: EquilibriumResult,
        base_hours: FloatArray,
        limit: int,
    ) -> None:
        self.levers = levers
        self.objective = objective
        self.base_hours = base_hours
        cat = levers.catalogue
        self.max_units = cat["max_units"].to_numpy(np.int64)
        touches = levers.touches.tocsc()
        self.n_groups = touches.shape[1]
        self.group_levers = [
            touches.indices[touches.indptr[g] : touches.indptr[g + 1]].astype(np.int64)
            for g in range(self.n_groups)
        ]
        box = np.array(
            [float(np.prod(self.max_units[ls] + 1.0)) for ls in self.group_levers], dtype=float
        )
        has = np.array([ls.size > 0 for ls in self.group_levers], dtype=bool)
        self.exact_groups = np.flatnonzero(has & (box <= limit))
        self.separable_groups = np.flatnonzero(has & (box > limit))
        self.copies = 0
        self.failed = 0
        self.solve_seconds = 0.0
        self.exact = self._tabulate_exact(baseline)
        # separable group → (its levers' anchor units, lever, units, gain, hours gain,
        # anchor value, anchor hours by category) of its latest tabulation
        self._tables: dict[
            int, tuple[bytes, IntArray, IntArray, FloatArray, FloatArray, float, FloatArray]
        ] = {}
        # hours of the groups no lever touches, which every plan keeps
        fixed = ~has[levers.group]
        self.fixed_hours: FloatArray = np.bincount(
            levers.segment_category[fixed],
            np.nan_to_num(base_hours[fixed]),
            minlength=len(levers.category_names),
        ).astype(np.float64)

    def _solve(
        self,
        groups: IntArray,
        units: FloatArray,
        anchor: tuple[FloatArray, EquilibriumResult],
    ) -> tuple[FloatArray, FloatArray]:
        t0 = time.perf_counter()
        value, hours, failed = solve_variants(
            self.levers, groups, units, self.objective, self.base_hours, anchor
        )
        self.solve_seconds += time.perf_counter() - t0
        self.copies += int(groups.size)
        self.failed += failed
        return value, hours

    def _tabulate_exact(self, baseline: EquilibriumResult) -> list[_Exact]:
        L = len(self.levers)
        specs, groups, units = [], [], []
        for g in self.exact_groups.tolist():
            ls = self.group_levers[g]
            configs = np.stack(
                np.unravel_index(
                    np.arange(int(np.prod(self.max_units[ls] + 1))), self.max_units[ls] + 1
                ),
                axis=1,
            ).astype(np.int64)
            u = np.zeros((len(configs), L))
            u[:, ls] = configs
            specs.append((g, ls, configs))
            groups.append(np.full(len(configs), g))
            units.append(u)
        if not specs:
            return []
        value, hours = self._solve(
            np.concatenate(groups), np.concatenate(units), (np.zeros(L), baseline)
        )
        out, start = [], 0
        for g, ls, configs in specs:
            stop = start + len(configs)
            v = value[start:stop]
            v = np.where(np.abs(v - v[0]) < NOISE * abs(v[0]), v[0], v)  # solver noise
            out.append(_Exact(g, ls, configs, v, hours[start:stop]))
            start = stop
        return out

    def model(self, anchor: IntArray, solved: EquilibriumResult) -> _Model:
        """The value model around ``anchor``, whose whole market ``solved`` is. Exact
        groups do not depend on the anchor, and a separable group whose levers' anchor
        units are those of an earlier round keeps that round's values (its copies would
        be the same markets)."""
        L, n_cat = len(self.levers), len(self.levers.category_names)
        width = int(self.max_units.max()) + 1 if L else 1
        stale = np.array(
            [
                g not in self._tables
                or self._tables[g][0] != anchor[self.group_levers[g]].tobytes()
                for g in self.separable_groups.tolist()
            ],
            dtype=np.bool_,
        )
        self._tabulate_separable(self.separable_groups[stale], anchor, solved)
        coef = np.zeros((L, width))
        hours = np.zeros((L, width, n_cat))
        constant, constant_hours = 0.0, self.fixed_hours.copy()
        for g in self.separable_groups.tolist():
            _, lever, units_of, gain, dh, value, by_cat = self._tables[g]
            np.add.at(coef, (lever, units_of), gain)
            np.add.at(hours, (lever, units_of), dh)
            constant += value
            constant_hours += by_cat
        coef[np.arange(width)[None, :] > self.max_units[:, None]] = 0.0
        return _Model(coef, hours, constant, constant_hours, self.exact)

    def _tabulate_separable(
        self, groups: IntArray, anchor: IntArray, solved: EquilibriumResult
    ) -> None:
        """Re-solve ``groups`` with one lever moved at a time from ``anchor``."""
        if not groups.size:
            return
        pair_g = np.concatenate([np.full(self.group_levers[g].size, g) for g in groups])
        pair_l = np.concatenate([self.group_levers[g] for g in groups])
        # one copy per (group, lever, units ≠ anchor), then one anchor copy per group
        counts = self.max_units[pair_l]
        pair = np.repeat(np.arange(pair_l.size), counts)
        step = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        lever = pair_l[pair]
        units_of = np.where(step >= anchor[lever], step + 1, step)  # skip the anchor's units
        copy_group = np.concatenate([pair_g[pair], groups]).astype(np.int64)
        units = np.tile(anchor.astype(np.float64), (copy_group.size, 1))
        units[np.arange(lever.size), lever] = units_of
        value, by_cat = self._solve(copy_group, units, (anchor.astype(np.float64), solved))
        n_var = lever.size
        at = np.searchsorted(groups, pair_g[pair]) + n_var  # each copy's anchor copy
        gain = value[:n_var] - value[at]
        gain = np.where(np.abs(gain) < NOISE * np.abs(value[at]), 0.0, gain)
        dh = by_cat[:n_var] - by_cat[at]
        dh = np.where(np.abs(dh) < NOISE * np.abs(by_cat[at]), 0.0, dh)
        owner = pair_g[pair]
        for i, g in enumerate(groups.tolist()):
            mine = owner == g
            self._tables[g] = (
                anchor[self.group_levers[g]].tobytes(),
                lever[mine],
                units_of[mine],
                gain[mine],
                dh[mine],
                float(value[n_var + i]),
                by_cat[n_var + i],
            )


# --------------------------------------------------------------------------- CP-SAT
def _dominated(coef: FloatArray, hours: FloatArray) -> npt.NDArray[np.bool_]:
    """Options (lever, u) no better than fewer units of the same lever: value and every
    targeted category's hours at most those of some u' < u. More units cost more, so
    such an option is never worth buying, and ruling it out makes the program smaller."""
    worse = coef[:, None, :] <= coef[:, :, None]  # [l, u', u]: u' at least as good
    worse &= (hours[:, None, :, :] <= hours[:, :, None, :]).all(axis=-1)
    earlier = np.tri(coef.shape[1], k=-1, dtype=bool).T  # [u', u]: u' < u
    out: npt.NDArray[np.bool_] = (worse & earlier[None]).any(axis=1)
    return out


def _dominated_configs(
    configs: IntArray, value: FloatArray, hours: FloatArray, shared: npt.NDArray[np.bool_]
) -> npt.NDArray[np.bool_]:
    """Combinations of an exact group no better than one with no more of every lever
    and the same units of the ``shared`` levers (those acting in other groups too,
    whose units are worth something there)."""
    fewer = (configs[:, None, :] <= configs[None, :, :]).all(axis=-1)  # [r', r]
    fewer &= (configs[:, None, shared] == configs[None, :, shared]).all(axis=-1)
    fewer &= ~np.eye(len(configs), dtype=bool)
    better = (value[:, None] >= value[None, :]) & (hours[:, None, :] >= hours[None, :, :]).all(
        axis=-1
    )
    out: npt.NDArray[np.bool_] = np.asarray((fewer & better).any(axis=0))
    return out


@dataclass(frozen=True)
class _Limits:
    budget: float | None  # USD; None: no budget
    caps: dict[int, float]  # category code → USD
    targets: dict[int, float]  # category code → hours


@dataclass(frozen=True)
class _Solution:
    units: IntArray
    status: str  # optimal / feasible / infeasible / unknown
    bound_gap: float  # relative gap between the value found and CP-SAT's bound


class _Program:
    """The CP-SAT program of a value model: one-hot units per lever, one-hot
    combinations per exact group, budget, caps and fill targets."""

    def __init__(self, model: _Model, levers: Levers, limits: _Limits, time_limit: float) -> None:
        from ortools.sat.python import cp_model

        t0 = time.perf_counter()
        self.solve_seconds = 0.0
        self.cp = cp_model
        self.model_ = model
        self.levers = levers
        self.time_limit = time_limit
        cat = levers.catalogue
        self.max_units = cat["max_units"].to_numpy(np.int64)
        self.cents = np.ceil(cat["cost_per_unit"].to_numpy() * 100 - 1e-9).astype(np.int64)
        finite = np.concatenate(
            [model.coef[np.isfinite(model.coef)].ravel()]
            + [ex.value - ex.value[0] for ex in model.exact]
        )
        top = float(np.abs(finite).max()) if finite.size else 0.0
        self.value_scale = RESOLUTION / top if top > 0 else 1.0
        hours = np.concatenate(
            [model.hours.ravel()] + [(ex.hours - ex.hours[0]).ravel() for ex in model.exact]
        )
        top_h = float(np.abs(hours[np.isfinite(hours)]).max()) if hours.size else 0.0
        self.hours_scale = RESOLUTION / top_h if top_h > 0 else 1.0
        m = cp_model.CpModel()
        self.m = m
        L = len(cat)
        self.b: list[list[cp_model.IntVar]] = []
        self.units_expr = []
        value_terms: list[tuple[cp_model.IntVar, int]] = []
        self.hours_terms: dict[int, list[tuple[cp_model.IntVar, int]]] = {}
        targets = np.array(sorted(limits.targets), dtype=np.int64)
        dominated = _dominated(model.coef, model.hours[:, :, targets])
        for ex in model.exact:  # these levers' value is (also) in their group's table
            dominated[ex.levers] = False
        for lever in range(L):
            vars_ = [m.new_bool_var(f"u{lever}_{u}") for u in range(self.max_units[lever] + 1)]
            m.add_exactly_one(vars_)
            for u, var in enumerate(vars_):
                c = model.coef[lever, u]
                if not np.isfinite(c) or dominated[lever, u]:
                    m.add(var == 0)
                    continue
                value_terms.append((var, round(c * self.value_scale)))
                self._hours(var, model.hours[lever, u])
            self.b.append(vars_)
            self.units_expr.append(cp_model.LinearExpr.weighted_sum(vars_, list(range(len(vars_)))))
        self.z: list[list[cp_model.IntVar]] = []
        for ex in model.exact:
            zs = [m.new_bool_var(f"g{ex.group}_{r}") for r in range(len(ex.configs))]
            m.add_exactly_one(zs)
            for j, lever in enumerate(ex.levers.tolist()):
                m.add(
                    cp_model.LinearExpr.weighted_sum(zs, ex.configs[:, j].tolist())
                    == self.units_expr[lever]
                )
            shared = levers.touches[ex.levers].getnnz(axis=1) > 1
            beaten = _dominated_configs(ex.configs, ex.value, ex.hours[:, targets], shared)
            for r, var in enumerate(zs):
                if not np.isfinite(ex.value[r]) or beaten[r]:
                    m.add(var == 0)
                    continue
                value_terms.append((var, round((ex.value[r] - ex.value[0]) * self.value_scale)))
                self._hours(var, ex.hours[r] - ex.hours[0])
            self.z.append(zs)
        self.value_expr = cp_model.LinearExpr.weighted_sum(
            [v for v, _ in value_terms], [c for _, c in value_terms]
        )
        self.spend = cp_model.LinearExpr.weighted_sum(self.units_expr, self.cents.tolist())
        self.limits = limits
        self.lever_category = levers.lever_category
        if limits.budget is not None:
            m.add(self.spend <= int(np.floor(limits.budget * 100 + 1e-9)))
        for c, cap in limits.caps.items():
            mine = np.flatnonzero(self.lever_category == c)
            m.add(
                cp_model.LinearExpr.weighted_sum(
                    [self.units_expr[i] for i in mine], self.cents[mine].tolist()
                )
                <= int(np.floor(cap * 100 + 1e-9))
            )
        self.base_hours = model.constant_hours + sum(
            (ex.hours[0] for ex in model.exact), np.zeros_like(model.constant_hours)
        )
        for c, target in limits.targets.items():
            need = int(np.ceil((target - self.base_hours[c]) * self.hours_scale))
            m.add(self.category_hours(c) >= need)
        self.build_seconds = time.perf_counter() - t0

    def _hours(self, var: cp_model.IntVar, delta: FloatArray) -> None:
        for c in np.flatnonzero(np.isfinite(delta) & (delta != 0)).tolist():
            coef = round(float(delta[c]) * self.hours_scale)
            if coef:
                self.hours_terms.setdefault(c, []).append((var, coef))

    def category_hours(self, c: int) -> cp_model.LinearExprT:
        terms = self.hours_terms.get(c, [])
        return self.cp.LinearExpr.weighted_sum([v for v, _ in terms], [k for _, k in terms])

    def run(
        self,
        goal: str = "value",
        category: int = -1,
        hint: IntArray | None = None,
        cheapest: bool = True,
    ) -> _Solution:
        """Maximize the value (then, at that value, minimize spend), minimize spend, or
        maximize one category's hours, starting from the plan ``hint`` when given;
        ``cheapest=False`` skips the spend minimization when only the value matters.
        Call once per program."""
        cp = self.cp
        if hint is not None:
            for lever, vars_ in enumerate(self.b):
                for u, var in enumerate(vars_):
                    self.m.add_hint(var, u == hint[lever])
        solver = cp.CpSolver()
        solver.parameters.max_time_in_seconds = self.time_limit
        solver.parameters.num_workers = 2
        solver.parameters.random_seed = 0
        if goal == "value":
            self.m.maximize(self.value_expr)
        elif goal == "spend":
            self.m.minimize(self.spend)
        else:
            self.m.maximize(self.category_hours(category))
        t0 = time.perf_counter()
        status = solver.solve(self.m)
        self.solve_seconds += time.perf_counter() - t0
        if status == cp.MODEL_INVALID:
            raise RuntimeError(f"invalid CP-SAT model: {self.m.validate()}")
        if status not in (cp.OPTIMAL, cp.FEASIBLE):
            return _Solution(
                np.zeros(len(self.b), np.int64),
                "infeasible" if status == cp.INFEASIBLE else "unknown",
                np.nan,
            )
        found, bound = solver.objective_value, solver.best_objective_bound
        gap = abs(bound - found) / max(abs(found), 1.0)
        name = "optimal" if status == cp.OPTIMAL else "feasible"
        if goal == "value" and cheapest:
            # among plans of this value the cheapest (equal values arise when two levers
            # do the same thing, e.g. open one edge to no friction)
            self.m.clear_hints()  # type: ignore[no-untyped-call]
            for vars_ in self.b:
                for var in vars_:
                    self.m.add_hint(var, solver.boolean_value(var))
            self.m.add(self.value_expr >= round(found))
            self.m.minimize(self.spend)
            t0 = time.perf_counter()
            status = solver.solve(self.m)
            self.solve_seconds += time.perf_counter() - t0
            if status not in (cp.OPTIMAL, cp.FEASIBLE):
                raise RuntimeError("CP-SAT lost the plan it found when minimizing its spend")
        units = np.array(
            [
                next(u for u, var in enumerate(vars_) if solver.boolean_value(var))
                for vars_ in self.b
            ],
            dtype=np.int64,
        )
        return _Solution(units, name, gap)

    def rounding(self, units: IntArray) -> float:
        """|scaled integer value − exact value| of ``units``, in objective units."""
        idx = np.arange(units.size)
        c = self.model_.coef[idx, units]
        exact = float(np.nansum(c))
        scaled = float(np.nansum(np.round(c * self.value_scale))) / self.value_scale
        for ex in self.model_.exact:
            row = _config_row(ex, units)
            d = ex.value[row] - ex.value[0]
            exact += d
            scaled += round(d * self.value_scale) / self.value_scale
        return abs(scaled - exact)


# --------------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class InterventionPlan:
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
    status: str
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

    @property
    def spend(self) -> float:
        return float((self.units * self.catalogue["cost_per_unit"].to_numpy()).sum())

    @property
    def feasible(self) -> bool:
        return self.status != "infeasible"

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
        return out

    def summary(self, max_rows: int = 20) -> str:
        lines = [
            f"Intervention plan ({self.status}): objective {self.objective}, "
            f"budget ${self.budget:,.0f}, spend ${self.spend:,.0f}"
        ]
        if self.feasible:
            lines += [
                f"  gain: predicted {self.predicted_gain:,.2f}, verified "
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
            lines.append(
                "  hours: "
                + ", ".join(
                    f"{r.category} {r.change:+,.0f} (fill {r.fill_before:.0%} → {r.fill_after:.0%})"
                    for r in moved.head(5).itertuples()
                )
            )
        binding = self.constraints[self.constraints["binding"]]
        if len(binding):
            lines.append("  binding: " + ", ".join(binding["constraint"]))
        bought = self.to_frame()
        bought = bought[bought["units"] > 0]
        if max_rows and len(bought):
            cols = ["intervention_id", "kind", "units", "max_units", "spend"]
            lines.append(bought[cols].head(max_rows).to_string(index=False))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        head = html.escape(self.summary(max_rows=0)).replace("\n", "<br>")
        frame = self.to_frame()
        return f"<p>{head}</p>" + frame[frame["units"] > 0].to_html(index=False)


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
    step = progress or (lambda label: None)
    config = config or InterventionsConfig()
    t0 = time.perf_counter()
    levers = Levers.build(market, catalogue)
    baseline = baseline if baseline is not None else solve(market)
    base_hours = segment_values(baseline, "hours", np.ones(len(market)))
    demand_today = _demand_today(market, levers)
    limits = _limits(config, levers, demand_today)
    timings = {"baseline": time.perf_counter() - t0}
    step("tabulating the small groups exactly")
    valuer = _Valuer(levers, config.objective, baseline, base_hours, config.enumerate_limit)
    base_value = float(np.nansum(segment_values(baseline, config.objective, base_hours)))
    anchor, solved = np.zeros(len(levers), np.int64), baseline
    exact_at: dict[bytes, float] = {}  # plans the model was anchored at: exact value
    # plan → (meets the targets by its joint solve, verified gain, predicted gain, the
    # model and solution that chose it, its joint solve)
    tried: dict[bytes, tuple[bool, float, float, _Model, _Solution, EquilibriumResult]] = {}
    rounds: list[dict[str, float | int | str]] = []
    zero_value = 0.0
    for r in range(config.max_rounds):
        step(f"round {r + 1}: re-solving the options around the anchor")
        model = valuer.model(anchor, solved)
        exact_at[anchor.tobytes()] = model.value(anchor)[0]  # the model is exact there
        if r == 0:
            zero_value = exact_at[anchor.tobytes()]
        step(f"round {r + 1}: choosing the plan (CP-SAT)")
        program = _Program(model, levers, limits, config.time_limit_seconds)
        found = program.run(hint=anchor)
        timings["cp_build"] = timings.get("cp_build", 0.0) + program.build_seconds
        timings["cp_solve"] = timings.get("cp_solve", 0.0) + program.solve_seconds
        if found.status in ("infeasible", "unknown"):
            if r == 0:
                return _infeasible(
                    market, levers, config, limits, model, found, baseline, base_value,
                    demand_today, valuer, t0,
                )  # fmt: skip
            break  # a re-anchored model lost feasibility: keep the earlier plans
        key = found.units.tobytes()
        predicted = model.value(found.units)[0] - zero_value
        if key not in tried:  # every plan chosen is verified by a joint solve
            joint = solve(levers.apply(found.units.astype(np.float64)), baseline=baseline)
            gain = float(np.nansum(segment_values(joint, config.objective, base_hours)))
            hours = _category_hours(joint, levers)
            meets = all(hours[c] >= t * (1 - 1e-9) for c, t in limits.targets.items())
            tried[key] = (meets, gain - base_value, predicted, model, found, joint)
        anchor_gain = exact_at[anchor.tobytes()] - zero_value
        rounds.append(
            {
                "round": r + 1,
                "anchor_gain": anchor_gain,
                "predicted_gain": predicted,
                "verified_gain": tried[key][1],
                "units_bought": int(found.units.sum()),
                "copies_solved": valuer.copies,  # so far, in all rounds
                "copies_failed": valuer.failed,
                "status": found.status,
            }
        )
        if key in exact_at or not valuer.separable_groups.size:
            break  # the plan repeats, or every group is exact: the model is exact at it
        if predicted - anchor_gain <= ROUND_GAIN * abs(anchor_gain):
            break  # re-anchoring cannot gain more than ROUND_GAIN
        anchor, solved = found.units, tried[key][5]
    timings["valuation"] = valuer.solve_seconds
    # the best plan that meets the fill targets by its verified hours
    best = max(tried, key=lambda k: (tried[k][0], tried[k][1]))
    _, gain, predicted, model, found, joint = tried[best]
    units = found.units
    frame = pd.DataFrame(rounds)
    step("marginal value of budget and binding constraints")
    return _finish(
        market,
        levers,
        config,
        limits,
        model,
        found,
        units,
        predicted,
        gain,
        joint,
        baseline,
        base_value,
        demand_today,
        frame,
        valuer,
        timings,
        t0,
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


def _limits(config: InterventionsConfig, levers: Levers, demand_today: FloatArray) -> _Limits:
    """Caps and fill targets by category code; unknown categories are errors."""
    names = list(levers.category_names)
    problems = []
    for setting in ("spend_caps", "min_fill"):
        for name in getattr(config, setting):
            if name not in names:
                from pricing.config import suggest

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
    return _Limits(
        budget=config.budget,
        caps={names.index(k): v for k, v in config.spend_caps.items()},
        targets={
            names.index(k): v * demand_today[names.index(k)] for k, v in config.min_fill.items()
        },
    )


def _binding(
    model: _Model,
    levers: Levers,
    limits: _Limits,
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
        relaxed = _Program(
            model, levers, _Limits(limits.budget, caps, limits.targets), config.time_limit_seconds
        ).run(hint=units, cheapest=False)
        gain = model.value(relaxed.units)[0] - value
        out.append((f"spend_cap:{levers.category_names[c]}", gain > NOISE * abs(value), gain))
    for c in limits.targets:
        targets = {k: v for k, v in limits.targets.items() if k != c}
        relaxed = _Program(
            model, levers, _Limits(limits.budget, limits.caps, targets), config.time_limit_seconds
        ).run(hint=units, cheapest=False)
        gain = model.value(relaxed.units)[0] - value
        out.append((f"min_fill:{levers.category_names[c]}", gain > NOISE * abs(value), gain))
    return out


def _budget_step(config: InterventionsConfig, levers: Levers) -> float:
    if config.budget_step is not None:
        return config.budget_step
    cheapest = float(levers.catalogue["cost_per_unit"].min()) if len(levers) else 1.0
    return max(0.05 * config.budget, cheapest)


def _finish(
    market: Market,
    levers: Levers,
    config: InterventionsConfig,
    limits: _Limits,
    model: _Model,
    found: _Solution,
    units: IntArray,
    predicted: float,
    verified: float,
    joint: EquilibriumResult,
    baseline: EquilibriumResult,
    base_value: float,
    demand_today: FloatArray,
    rounds: pd.DataFrame,
    valuer: _Valuer,
    timings: dict[str, float],
    t0: float,
) -> InterventionPlan:
    t1 = time.perf_counter()
    program = _Program(model, levers, limits, config.time_limit_seconds)
    value = model.value(units)[0]
    step = _budget_step(config, levers)
    more = _Program(
        model,
        levers,
        _Limits(config.budget + step, limits.caps, limits.targets),
        config.time_limit_seconds,
    ).run(hint=units, cheapest=False)
    marginal = (model.value(more.units)[0] - value) / step
    if marginal * step <= NOISE * abs(value):
        marginal = 0.0  # the same value, by other plans or rounding
    relaxed = _binding(model, levers, limits, config, units, step)
    timings["sensitivity"] = time.perf_counter() - t1
    cost = levers.catalogue["cost_per_unit"].to_numpy()
    spend_by_cat = np.bincount(
        levers.lever_category, units * cost, minlength=len(levers.category_names)
    ).astype(np.float64)
    before = _category_hours(baseline, levers)
    after = _category_hours(joint, levers)
    categories = _categories_frame(levers, config, spend_by_cat, demand_today, before, after)
    spend = float((units * cost).sum())
    rows = [
        {
            "constraint": "budget",
            "limit": config.budget,
            "used": spend,
            "slack": config.budget - spend,
            "binding": marginal > 0,
            "gain_if_relaxed": marginal * step,
        }
    ]
    for name, binds, gain in relaxed:
        kind, cat = name.split(":", 1)
        row = categories.set_index("category").loc[cat]
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
    timings["total"] = time.perf_counter() - t0
    return InterventionPlan(
        objective=config.objective,
        budget=config.budget,
        units=units,
        catalogue=levers.catalogue,
        status="empty" if not units.any() and config.budget == 0 else found.status,
        base_value=base_value,
        predicted_gain=predicted,
        verified_gain=verified,
        marginal_value=marginal,
        budget_step=step,
        value_rounding=program.rounding(units),
        cost_rounding=float((units * (program.cents / 100 - cost)).sum()),
        optimality_gap=found.bound_gap,
        categories=categories,
        constraints=pd.DataFrame(rows),
        rounds=rounds,
        relaxations=pd.DataFrame(columns=["relax", "category", "requested", "needed"]),
        explanation="",
        equilibrium=joint,
        baseline=baseline,
        config=config,
        market=market,
        timings=timings,
    )


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


def _infeasible(
    market: Market,
    levers: Levers,
    config: InterventionsConfig,
    limits: _Limits,
    model: _Model,
    found: _Solution,
    baseline: EquilibriumResult,
    base_value: float,
    demand_today: FloatArray,
    valuer: _Valuer,
    t0: float,
) -> InterventionPlan:
    """Why no plan meets the request, and the cheapest relaxation."""
    names = list(levers.category_names)
    hours_now = _Program(model, levers, _Limits(None, {}, {}), config.time_limit_seconds).base_hours
    relax: list[dict[str, object]] = []
    lines = []
    if found.status == "unknown":
        lines.append(
            f"CP-SAT found no plan within {config.time_limit_seconds:g} s and could not prove "
            "that none exists; raise interventions.time_limit_seconds"
        )
    unreachable = False
    for c, target in limits.targets.items():
        unlimited = _Program(model, levers, _Limits(None, {}, {}), config.time_limit_seconds)
        most = model.value(unlimited.run("hours", c).units)[1][c]
        within = _Program(
            model, levers, _Limits(limits.budget, limits.caps, {}), config.time_limit_seconds
        )
        reach = model.value(within.run("hours", c).units)[1][c]
        want = target / demand_today[c]
        if most < target * (1 - 1e-9):
            unreachable = True
            lines.append(
                f"min_fill for '{names[c]}' ({want:.1%}) is out of reach at any budget: every "
                f"lever together fills at most {most / demand_today[c]:.1%} "
                f"(now {hours_now[c] / demand_today[c]:.1%}); lower it to at most "
                f"{most / demand_today[c]:.1%}"
            )
            relax.append(
                {
                    "relax": "min_fill",
                    "category": names[c],
                    "requested": want,
                    "needed": most / demand_today[c],
                }
            )
        elif reach < target * (1 - 1e-9):
            lines.append(
                f"min_fill for '{names[c]}' ({want:.1%}) is not met within the budget and caps: "
                f"they reach {reach / demand_today[c]:.1%}"
            )
            relax.append(
                {
                    "relax": "min_fill",
                    "category": names[c],
                    "requested": want,
                    "needed": reach / demand_today[c],
                }
            )
    if not unreachable and limits.targets:
        # amounts as the program counts them (costs in cents, rounded up), so that the
        # budget or cap suggested admits the plan when a cost has a fraction of a cent
        cents = np.ceil(levers.catalogue["cost_per_unit"].to_numpy() * 100 - 1e-9)
        with_caps = _Program(
            model, levers, _Limits(None, limits.caps, limits.targets), config.time_limit_seconds
        ).run("spend")
        if with_caps.status in ("optimal", "feasible"):
            need = float(with_caps.units @ cents) / 100
            lines.append(
                f"the cheapest plan that meets every fill target costs ${need:,.0f}; "
                f"raise the budget from ${config.budget:,.0f} to ${need:,.0f}"
            )
            relax.append(
                {"relax": "budget", "category": "", "requested": config.budget, "needed": need}
            )
        else:
            free = _Program(
                model, levers, _Limits(None, {}, limits.targets), config.time_limit_seconds
            ).run("spend")
            spent = np.bincount(levers.lever_category, free.units * cents, len(names)) / 100
            need = float(free.units @ cents) / 100
            lines.append(
                f"the spend caps rule out every plan that meets the fill targets; "
                f"the cheapest such plan costs ${need:,.0f}"
            )
            for c, cap in limits.caps.items():
                if spent[c] > cap:
                    lines.append(f"  it spends ${spent[c]:,.0f} on '{names[c]}' (cap ${cap:,.0f})")
                    relax.append(
                        {
                            "relax": "spend_cap",
                            "category": names[c],
                            "requested": cap,
                            "needed": spent[c],
                        }
                    )
            relax.append(
                {"relax": "budget", "category": "", "requested": config.budget, "needed": need}
            )
    if not lines:
        lines.append("no plan satisfies the budget, caps and targets together")
    zero = np.zeros(len(levers), np.int64)
    plan = _finish_empty(
        market, levers, config, baseline, base_value, demand_today, zero, valuer, t0
    )
    return InterventionPlan(
        **{
            **plan.__dict__,
            "status": "infeasible",
            "explanation": "infeasible request:\n" + "\n".join(lines),
            "relaxations": pd.DataFrame(
                relax, columns=["relax", "category", "requested", "needed"]
            ),
        }
    )


def _finish_empty(
    market: Market,
    levers: Levers,
    config: InterventionsConfig,
    baseline: EquilibriumResult,
    base_value: float,
    demand_today: FloatArray,
    units: IntArray,
    valuer: _Valuer,
    t0: float,
) -> InterventionPlan:
    before = _category_hours(baseline, levers)
    spend = np.zeros(len(levers.category_names))
    return InterventionPlan(
        objective=config.objective,
        budget=config.budget,
        units=units,
        catalogue=levers.catalogue,
        status="infeasible",
        base_value=base_value,
        predicted_gain=0.0,
        verified_gain=0.0,
        marginal_value=np.nan,
        budget_step=np.nan,
        value_rounding=0.0,
        cost_rounding=0.0,
        optimality_gap=np.nan,
        categories=_categories_frame(levers, config, spend, demand_today, before, before),
        constraints=pd.DataFrame(
            columns=["constraint", "limit", "used", "slack", "binding", "gain_if_relaxed"]
        ),
        rounds=pd.DataFrame(),
        relaxations=pd.DataFrame(),
        explanation="",
        equilibrium=baseline,
        baseline=baseline,
        config=config,
        market=market,
        timings={"valuation": valuer.solve_seconds, "total": time.perf_counter() - t0},
    )


# --------------------------------------------------------------------------- evaluation
@dataclass(frozen=True)
class PlanCheck:
    """An independent check of a plan: one row per check with what was found."""

    checks: pd.DataFrame  # check, ok, detail
    verified_gain: float

    @property
    def ok(self) -> bool:
        return bool(self.checks["ok"].all())

    def to_frame(self) -> pd.DataFrame:
        return self.checks.copy()

    def summary(self) -> str:
        bad = self.checks[~self.checks["ok"]]
        head = f"Plan check: {len(self.checks) - len(bad)}/{len(self.checks)} checks pass"
        return "\n".join([head, *(f"  FAILED {r.check}: {r.detail}" for r in bad.itertuples())])

    def __str__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        return f"<p>{html.escape(self.summary())}</p>" + self.checks.to_html(index=False)


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
