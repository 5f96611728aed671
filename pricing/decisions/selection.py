r"""The integer program that picks whole units of every lever (OR-Tools CP-SAT).

One-hot unit choices per lever (b_lu, exactly one u per lever), one-hot combinations
per exact group (z_gr) linked to the levers' units, and

    maximize  Σ coef_lu b_lu + Σ value_gr z_gr
    s.t.      Σ_l cost_l u_l ≤ budget,  Σ_{l of c} cost_l u_l ≤ cap_c,
              hours_c(b, z) ≥ target_c.

CP-SAT needs integer coefficients: costs are counted in cents, rounded up, and the budget
and caps in cents, rounded down, so a plan the program accepts never overspends; values
and hours are scaled so the largest coefficient is :data:`RESOLUTION` and rounded, and
:meth:`UnitProgram.rounding` reports a plan's rounding. An option no better than fewer
units of the same lever (or, in an exact group, than a combination with no more of any
lever) is ruled out, so units that add nothing are never bought; among plans of equal
value the cheapest is taken (a second solve, started from the first one's plan, given
as long as the first took: on large programs proving the least spend can take longer
than finding the value, and a plan stopped early keeps the value and the least spend
found).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from pricing.decisions.levers import Levers
from pricing.decisions.valuation import ValueModel, config_row

if TYPE_CHECKING:
    from ortools.sat.python import cp_model

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: largest integer coefficient of a scaled value or hours term
RESOLUTION = 10**8
#: least time the cheapest-plan solve gets (it also gets as long as the first solve took)
TIE_BREAK_SECONDS = 1.0


def dominated_options(coef: FloatArray, hours: FloatArray) -> npt.NDArray[np.bool_]:
    """Options (lever, u) no better than fewer units of the same lever: value and every
    targeted category's hours at most those of some u' < u. More units cost more, so
    such an option is never worth buying, and ruling it out makes the program smaller."""
    worse = coef[:, None, :] <= coef[:, :, None]  # [l, u', u]: u' at least as good
    worse &= (hours[:, None, :, :] <= hours[:, :, None, :]).all(axis=-1)
    earlier = np.tri(coef.shape[1], k=-1, dtype=bool).T  # [u', u]: u' < u
    out: npt.NDArray[np.bool_] = (worse & earlier[None]).any(axis=1)
    return out


def dominated_combinations(
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
class Limits:
    budget: float | None  # USD; None: no budget
    caps: dict[int, float]  # category code → USD
    targets: dict[int, float]  # category code → hours


@dataclass(frozen=True)
class Selection:
    units: IntArray
    status: str  # optimal / feasible / infeasible / unknown
    bound_gap: float  # relative gap between the value found and CP-SAT's bound


def _scales(model: ValueModel) -> tuple[float, float]:
    """The factors that make the largest value and hours coefficients RESOLUTION."""
    finite = np.concatenate(
        [model.coef[np.isfinite(model.coef)].ravel()]
        + [ex.value - ex.value[0] for ex in model.exact]
    )
    top = float(np.abs(finite).max()) if finite.size else 0.0
    hours = np.concatenate(
        [model.hours.ravel()] + [(ex.hours - ex.hours[0]).ravel() for ex in model.exact]
    )
    top_h = float(np.abs(hours[np.isfinite(hours)]).max()) if hours.size else 0.0
    return (RESOLUTION / top if top > 0 else 1.0, RESOLUTION / top_h if top_h > 0 else 1.0)


class UnitProgram:
    """The CP-SAT program of a value model: one-hot units per lever, one-hot
    combinations per exact group, budget, caps and fill targets."""

    def __init__(
        self, model: ValueModel, levers: Levers, limits: Limits, time_limit: float
    ) -> None:
        from ortools.sat.python import cp_model

        t0 = time.perf_counter()
        self.solve_seconds = 0.0
        self.cp = cp_model
        self.model_ = model
        self.levers = levers
        self.limits = limits
        self.lever_category = levers.lever_category
        self.time_limit = time_limit
        cat = levers.catalogue
        self.max_units = cat["max_units"].to_numpy(np.int64)
        self.cents = np.ceil(cat["cost_per_unit"].to_numpy() * 100 - 1e-9).astype(np.int64)
        self.value_scale, self.hours_scale = _scales(model)
        self.m = cp_model.CpModel()
        self.hours_terms: dict[int, list[tuple[cp_model.IntVar, int]]] = {}
        targets = np.array(sorted(limits.targets), dtype=np.int64)
        value_terms = self._lever_options(targets) + self._group_options(targets)
        self.value_expr = cp_model.LinearExpr.weighted_sum(
            [v for v, _ in value_terms], [c for _, c in value_terms]
        )
        self.spend = cp_model.LinearExpr.weighted_sum(self.units_expr, self.cents.tolist())
        self.base_hours = model.constant_hours + sum(
            (ex.hours[0] for ex in model.exact), np.zeros_like(model.constant_hours)
        )
        self._limits()
        self.build_seconds = time.perf_counter() - t0

    def _lever_options(self, targets: IntArray) -> list[tuple[cp_model.IntVar, int]]:
        """One-hot units b_lu of every lever (dominated and unvalued options ruled out),
        their value terms, their hours terms, and each lever's units as an expression."""
        model, m, cp = self.model_, self.m, self.cp
        self.b: list[list[cp_model.IntVar]] = []
        self.units_expr: list[cp_model.LinearExprT] = []
        terms: list[tuple[cp_model.IntVar, int]] = []
        dominated = dominated_options(model.coef, model.hours[:, :, targets])
        for ex in model.exact:  # these levers' value is (also) in their group's table
            dominated[ex.levers] = False
        for lever in range(len(self.max_units)):
            vars_ = [m.new_bool_var(f"u{lever}_{u}") for u in range(self.max_units[lever] + 1)]
            m.add_exactly_one(vars_)
            for u, var in enumerate(vars_):
                c = model.coef[lever, u]
                if not np.isfinite(c) or dominated[lever, u]:
                    m.add(var == 0)
                    continue
                terms.append((var, round(c * self.value_scale)))
                self._hours(var, model.hours[lever, u])
            self.b.append(vars_)
            self.units_expr.append(cp.LinearExpr.weighted_sum(vars_, list(range(len(vars_)))))
        return terms

    def _group_options(self, targets: IntArray) -> list[tuple[cp_model.IntVar, int]]:
        """One-hot combinations z_gr of every exact group, linked to its levers' units
        (dominated and unvalued ones ruled out), and their value and hours terms."""
        m, cp = self.m, self.cp
        self.z: list[list[cp_model.IntVar]] = []
        terms: list[tuple[cp_model.IntVar, int]] = []
        for ex in self.model_.exact:
            zs = [m.new_bool_var(f"g{ex.group}_{r}") for r in range(len(ex.configs))]
            m.add_exactly_one(zs)
            for j, lever in enumerate(ex.levers.tolist()):
                m.add(
                    cp.LinearExpr.weighted_sum(zs, ex.configs[:, j].tolist())
                    == self.units_expr[lever]
                )
            shared = self.levers.touches[ex.levers].getnnz(axis=1) > 1
            beaten = dominated_combinations(ex.configs, ex.value, ex.hours[:, targets], shared)
            for r, var in enumerate(zs):
                if not np.isfinite(ex.value[r]) or beaten[r]:
                    m.add(var == 0)
                    continue
                terms.append((var, round((ex.value[r] - ex.value[0]) * self.value_scale)))
                self._hours(var, ex.hours[r] - ex.hours[0])
            self.z.append(zs)
        return terms

    def _limits(self) -> None:
        """Budget and caps in whole cents (rounded down), fill targets in scaled hours."""
        m, cp, limits = self.m, self.cp, self.limits
        if limits.budget is not None:
            m.add(self.spend <= int(np.floor(limits.budget * 100 + 1e-9)))
        for c, cap in limits.caps.items():
            mine = np.flatnonzero(self.lever_category == c)
            m.add(
                cp.LinearExpr.weighted_sum(
                    [self.units_expr[i] for i in mine], self.cents[mine].tolist()
                )
                <= int(np.floor(cap * 100 + 1e-9))
            )
        for c, target in limits.targets.items():
            need = int(np.ceil((target - self.base_hours[c]) * self.hours_scale))
            m.add(self.category_hours(c) >= need)

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
    ) -> Selection:
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
            return Selection(
                np.zeros(len(self.b), np.int64),
                "infeasible" if status == cp.INFEASIBLE else "unknown",
                np.nan,
            )
        found, bound = solver.objective_value, solver.best_objective_bound
        gap = abs(bound - found) / max(abs(found), 1.0)
        name = "optimal" if status == cp.OPTIMAL else "feasible"
        units = self._units(solver)
        if goal == "value" and cheapest:
            # among plans of this value the cheapest (equal values arise when two levers
            # do the same thing, e.g. open one edge to no friction)
            self.m.clear_hints()  # type: ignore[no-untyped-call]
            for var in [v for vars_ in (*self.b, *self.z) for v in vars_]:
                self.m.add_hint(var, solver.boolean_value(var))
            self.m.add(self.value_expr >= round(found))
            self.m.minimize(self.spend)
            # as long as the first solve took (at least TIE_BREAK_SECONDS); stopped
            # early, it keeps the least spend found, or the first plan
            solver.parameters.max_time_in_seconds = min(
                self.time_limit, max(TIE_BREAK_SECONDS, self.solve_seconds)
            )
            t0 = time.perf_counter()
            status = solver.solve(self.m)
            self.solve_seconds += time.perf_counter() - t0
            if status in (cp.OPTIMAL, cp.FEASIBLE):
                units = self._units(solver)
        return Selection(units, name, gap)

    def _units(self, solver: cp_model.CpSolver) -> IntArray:
        """The units of each lever in ``solver``'s solution."""
        return np.array(
            [
                next(u for u, var in enumerate(vars_) if solver.boolean_value(var))
                for vars_ in self.b
            ],
            dtype=np.int64,
        )

    def rounding(self, units: IntArray) -> float:
        """|scaled integer value − exact value| of ``units``, in objective units."""
        idx = np.arange(units.size)
        c = self.model_.coef[idx, units]
        exact = float(np.nansum(c))
        scaled = float(np.nansum(np.round(c * self.value_scale))) / self.value_scale
        for ex in self.model_.exact:
            row = config_row(ex, units)
            d = ex.value[row] - ex.value[0]
            exact += d
            scaled += round(d * self.value_scale) / self.value_scale
        return abs(scaled - exact)
