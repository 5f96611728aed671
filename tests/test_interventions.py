r"""The intervention planner (:mod:`pricing.decisions.interventions`) and its lever model
(:mod:`pricing.decisions.levers`).

Tiers: reference (closed forms of one uncoupled segment, the definition of E(u), the
surplus by quadrature); an oracle (every unit combination of random small catalogues
solved and valued one by one, the best feasible one compared with the plan); properties
(hypothesis); the diagnostics (infeasible requests, sensitivity, validation); the
results objects and :func:`evaluate`.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
from conftest import segment
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from scipy.integrate import quad

from pricing.config import InterventionsConfig
from pricing.decisions.interventions import InterventionPlan, evaluate, plan_interventions
from pricing.decisions.levers import (
    CHOKE,
    Levers,
    Objective,
    cumulative_effect,
    read_catalogue,
    segment_values,
)
from pricing.decisions.selection import RESOLUTION
from pricing.decisions.valuation import NOISE
from pricing.errors import MarketError
from pricing.market.equilibrium import solve
from pricing.market.market import Market, segment_edges
from pricing.market.synthetic import random_catalogue, random_market

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

KEYS = ("category", "tier")


# --------------------------------------------------------------------------- builders
def market_of(rows: list[dict[str, Any]], adjacency: list[tuple[str, str, float]]) -> Market:
    """Segments and a category adjacency (from, to, friction USD/h) as a :class:`Market`."""
    segments = pd.DataFrame(rows)
    table = pd.DataFrame(adjacency, columns=["from_category", "to_category", "friction"])
    return Market(segments, segment_edges(segments, list(KEYS), table), KEYS)


def lever(
    lever_id: str,
    category: str,
    kind: str,
    cost: float = 100.0,
    max_units: int = 3,
    effect: float = 0.1,
    to_category: str | None = None,
    decay: float = 1.0,
    open_friction: float = np.nan,
) -> dict[str, Any]:
    return {
        "intervention_id": lever_id,
        "category": category,
        "kind": kind,
        "cost_per_unit": cost,
        "max_units": max_units,
        "effect_per_unit": effect,
        "to_category": to_category,
        "decay": decay,
        "open_friction": open_friction,
    }


# --------------------------------------------------------------------------- enumeration
@dataclass(frozen=True)
class Enumeration:
    """Every unit combination of a catalogue, each applied and solved on its own."""

    units: IntArray  # (n_combinations, n_levers)
    spend: FloatArray  # USD
    spend_by_category: FloatArray  # (n_combinations, n_categories) USD
    value: FloatArray  # the objective
    hours: FloatArray  # (n_combinations, n_categories)
    demand_today: FloatArray  # (n_categories,) hours asked for at the observed rates
    categories: list[str]
    scale: float  # Σ_k |objective of segment k| at the baseline

    def row(self, units: IntArray) -> int:
        hit = np.flatnonzero((self.units == units).all(axis=1))
        assert hit.size == 1, units
        return int(hit[0])

    def allowed(self, config: InterventionsConfig) -> npt.NDArray[np.bool_]:
        """Combinations within the budget and caps that meet every fill target."""
        ok = self.spend <= config.budget
        for name, cap in config.spend_caps.items():
            ok &= self.spend_by_category[:, self.categories.index(name)] <= cap
        for name, target in config.min_fill.items():
            c = self.categories.index(name)
            ok &= self.hours[:, c] / self.demand_today[c] >= target
        return ok


def effect_by_definition(effect: float, decay: float, units: int) -> float:
    """E(u) = Σ_{i<u} e·d^i: unit i + 1 acts with e·d^i (levers' docstring)."""
    return float(sum(effect * decay**i for i in range(units)))


def apply_by_hand(market: Market, catalogue: pd.DataFrame, units: IntArray) -> Market:
    """Copies of ``market`` side by side (no edge joins two), copy c with ``units[c]``
    bought, each effect written out from the levers' docstring independently of
    :class:`Levers`: recruit multiplies the supply level by 1 + E, fee_discount lowers the
    freelancer fee by E (not below 0), reskill lowers the friction of the edges category →
    to_category (every edge out of the category without one) by E (not below 0), and a
    bought targeted reskill opens an edge the adjacency lacks at its open_friction (the
    lowest among levers opening it)."""
    units = np.atleast_2d(units)
    seg, keys = market.segments, list(market.segment_keys)
    n = len(seg)
    category = seg["category"].astype(str).to_numpy()
    decay = catalogue["decay"].astype(np.float64).fillna(0.9).to_numpy()
    to = [None if pd.isna(t) else str(t) for t in catalogue["to_category"]]
    # candidate edges: the adjacency's, then those a targeted reskill could open
    edges = {
        (int(j), int(k)): float(tau)
        for j, k, tau in market.edges[["pool", "segment", "friction"]].itertuples(index=False)
    }
    openable: dict[tuple[int, int], float] = {}
    for i in np.flatnonzero((catalogue["kind"] == "reskill").to_numpy() & pd.notna(to)):
        pair = pd.DataFrame(
            {"from_category": [catalogue["category"].iloc[i]], "to_category": [to[i]],
             "friction": [catalogue["open_friction"].iloc[i]]}
        )  # fmt: skip
        for j, k, tau in segment_edges(seg, keys, pair).itertuples(index=False):
            if (j, k) not in edges:
                openable[(j, k)] = min(openable.get((j, k), np.inf), tau)
    u = units.astype(np.int64)
    effect = np.array(
        [
            [effect_by_definition(e, d, int(k)) for e, d, k in
             zip(catalogue["effect_per_unit"], decay, row, strict=True)]
            for row in u
        ]
    ).reshape(u.shape)  # fmt: skip
    kind = catalogue["kind"].to_numpy()
    acts = catalogue["category"].astype(str).to_numpy()[:, None] == category[None, :]  # (L, n)
    log_supply = seg["log_supply_level"].to_numpy() + np.log1p(effect) @ (
        acts * (kind == "recruit")[:, None]
    )
    fee = seg["freelancer_fee"].to_numpy() - effect @ (acts * (kind == "fee_discount")[:, None])
    copies = pd.concat([seg] * len(u), ignore_index=True)
    copies["log_supply_level"] = log_supply.ravel()
    copies["freelancer_fee"] = np.maximum(fee, 0.0).ravel()
    links = []
    offset = n * np.arange(len(u))
    for (j, k), tau in [*edges.items(), *openable.items()]:
        reskills = [
            i for i in range(len(catalogue))
            if kind[i] == "reskill" and acts[i, j] and to[i] in (None, category[k])
        ]  # fmt: skip
        friction = np.maximum(tau - effect[:, reskills].sum(axis=1), 0.0)
        opened = np.full(len(u), (j, k) in edges)
        for i in reskills:
            opened |= (to[i] is not None) & (u[:, i] > 0)
        pool, seg_ = j + offset[opened], k + offset[opened]
        links.append(pd.DataFrame({"pool": pool, "segment": seg_, "friction": friction[opened]}))
    columns = {"pool": [], "segment": [], "friction": []}
    return Market(
        copies,
        pd.concat([pd.DataFrame(columns), *links], ignore_index=True),
        market.segment_keys,
    )


def enumerate_plans(market: Market, catalogue: pd.DataFrame, objective: Objective) -> Enumeration:
    """Brute force: every unit combination applied (by hand) and solved, all copies in
    one call (a component's equilibrium depends on nothing outside it), each valued as
    the planner values a plan: :func:`segment_values` from the baseline's hours."""
    levers = Levers.build(market, catalogue)
    baseline = solve(market)
    assert baseline.ok
    n = len(market)
    base_hours = segment_values(baseline, "hours", np.ones(n))
    max_units = levers.catalogue["max_units"].to_numpy(np.int64)
    units = np.array(
        list(itertools.product(*(range(k + 1) for k in max_units))), dtype=np.int64
    ).reshape(-1, len(levers))
    result = solve(apply_by_hand(market, levers.catalogue, units))
    assert result.ok
    copies = len(units)
    tiled = np.tile(base_hours, copies)
    value = segment_values(result, objective, tiled).reshape(copies, n)
    hours = segment_values(result, "hours", tiled).reshape(copies, n)
    n_cat = len(levers.category_names)
    by_category = np.zeros((n, n_cat))
    by_category[np.arange(n), levers.segment_category] = 1.0
    cost = levers.catalogue["cost_per_unit"].to_numpy()
    lever_by_category = np.zeros((len(levers), n_cat))
    lever_by_category[np.arange(len(levers)), levers.lever_category] = 1.0
    demand = market.demand_hours(market.array("observed_rate"))
    return Enumeration(
        units=units,
        spend=units @ cost,
        spend_by_category=(units * cost) @ lever_by_category,
        value=value.sum(axis=1),
        hours=hours @ by_category,
        demand_today=demand @ by_category,
        categories=list(levers.category_names),
        scale=float(np.abs(segment_values(baseline, objective, base_hours)).sum()),
    )


@dataclass(frozen=True)
class Instance:
    market: Market
    catalogue: pd.DataFrame
    objective: Objective
    budget: float
    spend_caps: dict[str, float]
    fill_category: str | None  # a min_fill target is set on it once the fills are known


def random_instance(rng: np.random.Generator) -> Instance:
    """2–3 categories × 1–2 tiers, some adjacency, both fees > 0; 2–4 levers of every
    kind (a reskill opening an edge the adjacency lacks when the catalogue has three or
    more levers), at most 96 unit combinations; a random budget and objective, sometimes
    a spend cap and a fill target.

    Costs are whole cents: the program counts costs in cents rounded up, so a cost with a
    fraction of a cent makes it refuse plans the enumeration accepts (reported as
    ``cost_rounding``; that conservative rounding has its own test)."""
    cats = [f"c{i}" for i in range(int(rng.integers(2, 4)))]
    tiers = [f"t{i}" for i in range(int(rng.integers(1, 3)))]
    rows = [
        segment(
            c,
            t,
            rate=float(np.exp(rng.uniform(np.log(15.0), np.log(120.0)))),
            hours=float(np.exp(rng.uniform(np.log(200.0), np.log(5_000.0)))),
            eps=-float(rng.uniform(0.3, 2.5)),
            eta=float(rng.uniform(0.3, 2.5)),
            client_fee=float(rng.uniform(0.0, 0.1)),
            freelancer_fee=float(rng.uniform(0.05, 0.2)),
        )
        for c in cats
        for t in tiers
    ]
    for row in rows:  # today's rate is off the equilibrium by up to ±20 %
        row["observed_rate"] *= float(rng.uniform(0.8, 1.2))
    pairs = [(a, b) for a in cats for b in cats if a != b]
    order = rng.permutation(len(pairs))
    n_open = int(rng.integers(1, len(pairs)))  # some edges, and one pair or more closed
    adjacency = [(*pairs[i], float(rng.uniform(0.5, 8.0))) for i in order[:n_open]]
    closed = [pairs[i] for i in order[n_open:]]
    market = market_of(rows, adjacency)

    n_levers = int(rng.integers(2, 5))
    if n_levers == 2:
        kinds = list(rng.choice(["reskill", "recruit", "fee_discount"], 2, replace=False))
    else:
        extra = rng.choice(
            ["reskill", "recruit", "fee_discount"], n_levers - 3, p=[0.5, 0.25, 0.25]
        )
        kinds = ["reskill", "recruit", "fee_discount", *extra]
    max_units = rng.integers(1, 4, n_levers)
    while np.prod(max_units + 1) > 96:
        max_units[int(np.argmax(max_units))] -= 1
    levers: list[dict[str, Any]] = []
    for i, kind in enumerate(kinds):
        row = lever(
            f"L{i}",
            str(rng.choice(cats)),
            kind,
            cost=50.0 * int(rng.integers(1, 20)),
            max_units=int(max_units[i]),
            decay=1.0 if rng.random() < 0.4 else float(rng.uniform(0.4, 1.0)),
        )
        if kind == "recruit":
            row["effect_per_unit"] = float(rng.uniform(0.02, 0.3))
        elif kind == "fee_discount":
            row["effect_per_unit"] = float(rng.uniform(0.005, 0.06))
        else:
            row["effect_per_unit"] = float(rng.uniform(0.2, 3.0))
            way = "open" if i == 0 else rng.choice(["open", "cheapen", "every"])
            if way == "open":  # a pair the adjacency lacks
                a, b = closed[int(rng.integers(len(closed)))]
                row.update(category=a, to_category=b, open_friction=float(rng.uniform(0.5, 10)))
            elif way == "cheapen":  # a pair the adjacency has
                a, b, _ = adjacency[int(rng.integers(len(adjacency)))]
                row.update(category=a, to_category=b)
            else:  # every edge out of the category, where another lever may open one
                row["category"] = levers[0]["category"]
        levers.append(row)
    catalogue = pd.DataFrame(levers)
    total = float((catalogue["cost_per_unit"] * catalogue["max_units"]).sum())
    if rng.random() < 0.3:  # exactly the cost of some combination: the budget's edge
        units = np.array([rng.integers(0, k + 1) for k in catalogue["max_units"]])
        budget = float(units @ catalogue["cost_per_unit"].to_numpy())
    else:
        budget = round(float(rng.uniform(0.0, 1.0)) * total, 2)
    caps: dict[str, float] = {}
    if rng.random() < 0.3:
        name = str(rng.choice(catalogue["category"]))
        mine = catalogue[catalogue["category"] == name]
        caps[name] = round(float(rng.uniform(0.2, 0.8)) * float(
            (mine["cost_per_unit"] * mine["max_units"]).sum()), 2)  # fmt: skip
    objective: Objective = rng.choice(["hours", "gmv", "surplus"])
    fill_category = str(rng.choice(cats)) if rng.random() < 0.3 else None
    return Instance(market, catalogue, objective, budget, caps, fill_category)


def fill_target(enum: Enumeration, category: str, rng: np.random.Generator) -> float:
    """A fill target halfway between two fills some combinations reach, so that no
    combination sits within rounding of it (planner and oracle then agree on which meet
    it, whatever their last digits)."""
    c = enum.categories.index(category)
    fills = np.unique(enum.hours[:, c] / enum.demand_today[c])
    gaps = np.flatnonzero(np.diff(fills) > 1e-4 * fills[1:])
    if not gaps.size:
        return float(fills[0] * 0.99)
    i = int(rng.choice(gaps))
    return float(0.5 * (fills[i] + fills[i + 1]))


def config_of(
    inst: Instance, enum: Enumeration, rng: np.random.Generator, **extra: object
) -> InterventionsConfig:
    min_fill = {}
    if inst.fill_category is not None:
        min_fill[inst.fill_category] = fill_target(enum, inst.fill_category, rng)
    return InterventionsConfig(
        budget=inst.budget,
        objective=inst.objective,
        spend_caps=inst.spend_caps,
        min_fill=min_fill,
        **extra,  # type: ignore[arg-type]
    )


# --------------------------------------------------------------------------- the plan is the best
# The equilibrium's objective is accurate to ~1e-10 of its scale (interior point; the
# closed form to rounding): the enumeration and the planner's joint solve of one plan
# agreed to ≤ 2e-12 of Σ_k |objective_k| over the whole batch. Two such values compared
# are allowed 1e-9 each: 500× what was seen, and 1e5× below the smallest lever effect
# that decides anything here (~1e-4 of the objective).
SOLVE_RTOL = 1e-9
# The separable path, measured against the enumeration: on this batch every plan was
# within optimality_tol of the best; on the 186 feasible instances of seeds 1000–1199 of
# random_instance, 184 (98.9 %) were, the two others fell 5.4 % and 0.3 % short of the
# attainable gain (best − worst allowed combination), re-anchoring cycling between two
# plans. Asserted: at least 90 % optimal and no shortfall above 10 %.
MIN_SEPARABLE_OPTIMAL = 0.9
MAX_SEPARABLE_SHORTFALL = 0.1
N_INSTANCES = 36
SEED = 20261127


def optimality_tol(plan: InterventionPlan, enum: Enumeration) -> float:
    """How far below the best combination the plan's value may be, in objective units.

    CP-SAT maximizes values scaled so the largest coefficient is RESOLUTION and rounded:
    the chosen plan's value is off by its ``value_rounding``, the true optimum's by at
    most half a unit per term, one term per lever at most, a unit being top/RESOLUTION
    with top the largest tabulated gain (≤ the largest |V(u) − V(0)| over every
    combination: a group's gain is the market's with the other groups' levers at 0).
    Gains under NOISE of a group's objective are zeroed as solver noise, which moves the
    plan's and the optimum's values by < NOISE·Σ_g|V_g| ≤ NOISE·scale each. Both values
    are compared across two solves (tabulation and enumeration): SOLVE_RTOL each, four."""
    top = float(np.abs(enum.value - enum.value[0]).max())
    n_levers = enum.units.shape[1]
    return (
        plan.value_rounding
        + n_levers * 0.5 * top / RESOLUTION
        + (2 * NOISE + 4 * SOLVE_RTOL) * enum.scale
    )


@pytest.fixture(scope="module")
def batch() -> list[tuple[Instance, Enumeration, InterventionsConfig]]:
    out = []
    for k in range(N_INSTANCES):
        rng = np.random.default_rng([SEED, k])
        inst = random_instance(rng)
        enum = enumerate_plans(inst.market, inst.catalogue, inst.objective)
        # every group exact: these are the instances the exact path must solve optimally
        out.append((inst, enum, config_of(inst, enum, rng, enumerate_limit=1024)))
    return out


@pytest.mark.slow
def test_the_batch_covers_what_it_claims(
    batch: list[tuple[Instance, Enumeration, InterventionsConfig]],
) -> None:
    """Every kind, every objective, opened edges, caps, targets met and missed."""
    kinds = pd.concat([inst.catalogue for inst, _, _ in batch])["kind"].value_counts()
    assert set(kinds.index) == {"recruit", "reskill", "fee_discount"} and kinds.min() >= 10
    objectives = pd.Series([inst.objective for inst, _, _ in batch]).value_counts()
    assert len(objectives) == 3 and objectives.min() >= 5
    assert sum(inst.catalogue["open_friction"].notna().any() for inst, _, _ in batch) >= 20
    assert sum(bool(c.spend_caps) for _, _, c in batch) >= 5
    targets = [enum.allowed(c).any() for _, enum, c in batch if c.min_fill]
    assert sum(targets) >= 3 and len(targets) - sum(targets) >= 2  # reachable and not
    combinations = [len(enum.units) for _, enum, _ in batch]
    assert max(combinations) <= 96 and sum(combinations) >= 30 * N_INSTANCES


@pytest.mark.slow
def test_plan_equals_exhaustive_enumeration(
    batch: list[tuple[Instance, Enumeration, InterventionsConfig]],
) -> None:
    """The plan is the best combination within the budget, caps and targets (values
    compared, not units, for ties), the cheapest of those of that value, and its
    reported values are the enumeration's. Tolerance: :func:`optimality_tol`."""
    failures = []
    for k, (inst, enum, config) in enumerate(batch):
        plan = plan_interventions(inst.market, inst.catalogue, config)
        allowed = enum.allowed(config)
        if not allowed.any():
            if plan.status != "infeasible":
                failures.append(f"#{k}: no combination is allowed, plan says {plan.status}")
            continue
        if plan.status != "optimal":
            failures.append(f"#{k}: status {plan.status}\n{plan.explanation}")
            continue
        at = enum.row(plan.units)
        tol = optimality_tol(plan, enum)
        best = float(enum.value[allowed].max())
        tied = allowed & (enum.value >= best - tol)
        checks = {
            "allowed": bool(allowed[at]),
            "base value": abs(plan.base_value - enum.value[0]) <= 2 * SOLVE_RTOL * enum.scale,
            "verified value": abs(plan.base_value + plan.verified_gain - enum.value[at])
            <= 2 * SOLVE_RTOL * enum.scale,
            "optimal": enum.value[at] >= best - tol,
            "cheapest of the best": plan.spend <= enum.spend[tied].min(),
        }
        if not all(checks.values()):
            cheapest = enum.units[tied][np.argmin(enum.spend[tied])]
            failures.append(
                f"#{k} ({inst.objective}): fails {[c for c, ok in checks.items() if not ok]}; "
                f"plan {plan.units.tolist()} (${plan.spend:,.0f}) value {enum.value[at]:.8g}, "
                f"best {best:.8g} by {cheapest.tolist()} (${enum.spend[tied].min():,.0f}), "
                f"tol {tol:.2g}"
            )
    assert not failures, "\n".join(failures)


@pytest.mark.slow
def test_separable_path_against_enumeration(
    batch: list[tuple[Instance, Enumeration, InterventionsConfig]],
) -> None:
    """``enumerate_limit=1`` values every group separably around a re-anchored plan: an
    approximation, measured here. Its plans must stay within the budget and caps and meet
    the targets whenever it returns one; its value may fall short of the best.
    The bounds asserted are those measured (see MIN_SEPARABLE_OPTIMAL); a plan counts
    as optimal within :func:`optimality_tol`."""
    shortfall, matched, missed = [], 0, []
    for k, (inst, enum, config) in enumerate(batch):
        separable = InterventionsConfig(**{**config.model_dump(), "enumerate_limit": 1})
        plan = plan_interventions(inst.market, inst.catalogue, separable)
        assert len(plan.rounds) >= 1 or plan.status == "infeasible"
        allowed = enum.allowed(config)
        if not allowed.any():
            assert plan.status == "infeasible", k
            continue
        if plan.status == "infeasible":
            missed.append(k)
            continue
        at = enum.row(plan.units)
        assert allowed[at], (k, plan.units)
        best = float(enum.value[allowed].max())
        attainable = best - float(enum.value[allowed].min())
        gap = best - float(enum.value[at])
        optimal = gap <= optimality_tol(plan, enum)
        matched += optimal
        shortfall.append(0.0 if optimal else gap / attainable)
    print(
        f"separable path: {matched}/{len(shortfall)} optimal, worst shortfall "
        f"{max(shortfall):.3%} of the attainable gain, no plan found for {missed}"
    )
    assert not missed
    assert matched >= MIN_SEPARABLE_OPTIMAL * len(shortfall)
    assert max(shortfall) <= MAX_SEPARABLE_SHORTFALL


@pytest.mark.slow
def test_levers_apply_is_the_effects_written_out(
    batch: list[tuple[Instance, Enumeration, InterventionsConfig]],
) -> None:
    """:meth:`Levers.apply` against :func:`apply_by_hand` on every instance, with each
    reskill lever alone at its most units (which edges open) and with every lever at its
    most (effects that add up on one segment or edge): the same segments
    and edges, so the enumeration values what the planner plans over. Tolerance 1e-12
    on parameters: both add the same few floats in another order (and E(u) by its
    closed form against the sum), rounding only."""
    for k, (inst, _, _) in enumerate(batch):
        levers = Levers.build(inst.market, inst.catalogue)
        n = len(inst.market)
        most = levers.catalogue["max_units"].to_numpy(np.int64)
        reskill = (levers.catalogue["kind"] == "reskill").to_numpy()
        sample = np.vstack([np.diag(most)[reskill], most])
        by_hand = apply_by_hand(inst.market, levers.catalogue, sample)
        for c, units in enumerate(sample):
            got = levers.apply(units.astype(np.float64))
            want = by_hand.segments.iloc[c * n : (c + 1) * n].reset_index(drop=True)
            pd.testing.assert_frame_equal(got.segments, want, check_exact=False, rtol=1e-12)
            mine = by_hand.edges[by_hand.edges["pool"] // n == c]
            want_edges = mine.assign(pool=mine["pool"] - c * n, segment=mine["segment"] - c * n)
            order = ["pool", "segment"]
            pd.testing.assert_frame_equal(
                got.edges.sort_values(order).reset_index(drop=True),
                want_edges.sort_values(order).reset_index(drop=True),
                check_exact=False,
                atol=1e-12,
                obj=f"edges of instance {k} at {units.tolist()}",
            )


# --------------------------------------------------------------------------- closed forms
# Uncoupled segments clear in closed form (solve's first path) and the tabulated values
# are those same solves, so the plan's numbers are exact to rounding (~1e-15); 1e-8
# relative leaves room for the handful of logs and exps between them and no more.
CLOSED_FORM_RTOL = 1e-8


def recruited(seg: dict[str, Any], extra: float = 0.0) -> tuple[float, float]:
    """Rate and hours of one uncoupled segment with its supply level × (1 + extra):
    D(p(1+f_c)) = S(p(1−f_f)) gives log p = (l_D − l_S + ε log(1+f_c) − η log(1−f_f))
    / (η − ε), and the hours are D there."""
    eps, eta = seg["demand_elasticity"], seg["supply_elasticity"]
    log_s = seg["log_supply_level"] + np.log1p(extra)
    fees = eps * np.log1p(seg["client_fee"]) - eta * np.log1p(-seg["freelancer_fee"])
    log_p = (seg["log_demand_level"] - log_s + fees) / (eta - eps)
    log_q = seg["log_demand_level"] + eps * (log_p + np.log1p(seg["client_fee"]))
    return float(np.exp(log_p)), float(np.exp(log_q))


def discounted(seg: dict[str, Any], fee: float) -> float:
    """Hours of one uncoupled segment with its freelancer fee at ``fee``."""
    return recruited({**seg, "freelancer_fee": fee})[1]


def test_cumulative_effect_is_its_definition() -> None:
    """E(u) = Σ_{i<u} e·d^i, with d = 1 (linear) and d < 1, broadcast over arrays.
    Tolerance 1e-14 relative: a geometric sum against its closed form, rounding only."""
    effect = np.array([0.1, 0.25, 2.0, 0.0])
    decay = np.array([1.0, 0.7, 0.35, 0.9])
    units = np.arange(7.0)[:, None]
    got = cumulative_effect(effect[None, :], decay[None, :], units)
    want = np.array(
        [[effect_by_definition(e, d, int(u)) for e, d in zip(effect, decay, strict=True)]
         for u in units[:, 0]]
    )  # fmt: skip
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=0)
    assert got.shape == (7, 4) and (got[0] == 0).all()
    np.testing.assert_array_equal(got[:, 0], 0.1 * units[:, 0])  # d = 1: exactly e·u
    assert (np.diff(got[:, 1], n=2) < 0).all()  # each unit adds less than the one before


def test_one_recruit_lever_on_one_segment_has_its_closed_form() -> None:
    """The plan buys as many units as the budget affords (every unit adds hours), and
    the verified hours and GMV gains are the closed form's. Tolerance CLOSED_FORM_RTOL."""
    seg = segment("a", rate=40.0, hours=1_000.0, eps=-1.3, eta=0.8)
    market = market_of([seg], [])
    catalogue = pd.DataFrame(
        [lever("R", "a", "recruit", cost=100.0, max_units=6, effect=0.1, decay=0.8)]
    )
    p0, q0 = recruited(seg)
    assert abs(p0 - 40.0) < 1e-12 and abs(q0 - 1_000.0) < 1e-9
    levers = Levers.build(market, catalogue)
    for u in range(7):
        _, q = recruited(seg, effect_by_definition(0.1, 0.8, u))
        hours = segment_values(solve(levers.apply(np.array([float(u)]))), "hours", np.ones(1))
        np.testing.assert_allclose(hours, [q], rtol=CLOSED_FORM_RTOL)
    for budget, units in ((350.0, 3), (99.99, 0), (600.0, 6), (10_000.0, 6)):
        for objective in ("hours", "gmv"):
            plan = plan_interventions(
                market, catalogue, InterventionsConfig(budget=budget, objective=objective)
            )
            assert plan.units.tolist() == [units], (budget, objective)
            p, q = recruited(seg, effect_by_definition(0.1, 0.8, units))
            want, scale = (q - q0, q) if objective == "hours" else (q * p - q0 * p0, q * p)
            assert abs(plan.verified_gain - want) <= CLOSED_FORM_RTOL * scale, (budget, objective)
            assert abs(plan.predicted_gain - want) <= CLOSED_FORM_RTOL * scale


def test_one_fee_discount_lever_has_its_closed_form_and_stops_at_zero_fee() -> None:
    """The freelancer fee falls 4 points a unit from 15 %: the fourth unit takes it to 0
    and a fifth would add nothing, so it is not bought even with the budget for it.
    Hours gain by the clearing condition at the new fee. Tolerance CLOSED_FORM_RTOL."""
    seg = segment("a", rate=50.0, hours=800.0, eps=-0.7, eta=1.6, freelancer_fee=0.15)
    market = market_of([seg, segment("b", rate=30.0)], [])
    catalogue = pd.DataFrame(
        [lever("F", "a", "fee_discount", cost=100.0, max_units=5, effect=0.04, decay=1.0)]
    )
    q0 = discounted(seg, 0.15)
    for budget, units, fee in ((250.0, 2, 0.07), (10_000.0, 4, 0.0)):
        plan = plan_interventions(market, catalogue, InterventionsConfig(budget=budget))
        assert plan.units.tolist() == [units]
        assert plan.equilibrium.market.segments["freelancer_fee"].iloc[0] == pytest.approx(
            fee, abs=1e-15
        )
        want = discounted(seg, fee) - q0
        assert want > 0
        assert abs(plan.verified_gain - want) <= CLOSED_FORM_RTOL * q0
        assert evaluate(plan).ok


def test_surplus_is_the_integral_of_the_curves() -> None:
    """segment_values' surplus against quadrature of the inverse curves on a coupled
    pair (one with ε = −1, the log branch) after a recruit and a reskill: Σ_k ∫_{q⁰}^{q}
    P_k − Σ_j ∫_0^{s_j} W_j − Σ τ x. Tolerance 1e-9 of the baseline GMV: quad is
    accurate to ~1e-12 of each integral, the equilibrium's hours to ~1e-10."""
    rows = [
        segment("a", rate=30.0, hours=900.0, eps=-1.0, eta=1.4, client_fee=0.0, freelancer_fee=0.0),
        segment("b", rate=55.0, hours=700.0, eps=-1.8, eta=0.6, client_fee=0.1, freelancer_fee=0.2),
    ]
    market = market_of(rows, [("a", "b", 4.0)])
    catalogue = pd.DataFrame(
        [
            lever("R", "a", "recruit", effect=0.3),
            lever("K", "a", "reskill", to_category="b", effect=1.5),
        ]
    )
    base = solve(market)
    base_hours = segment_values(base, "hours", np.ones(2))
    result = solve(Levers.build(market, catalogue).apply(np.array([2.0, 1.0])))
    assert result.flow[0] > 0 and result.market.edges["friction"].iloc[0] == pytest.approx(2.5)
    gmv = float(segment_values(base, "gmv", base_hours).sum())
    for solved in (base, result):  # at the baseline clients' term is 0: only costs count
        m = solved.market
        hours = segment_values(solved, "hours", base_hours)
        worked = solved.home_flow + np.bincount(m.edges["pool"], solved.flow, minlength=2)
        want = -float(m.edges["friction"].to_numpy() @ solved.flow)
        for k in range(2):
            eps, eta = m.array("demand_elasticity")[k], m.array("supply_elasticity")[k]
            level_d = np.exp(m.array("log_demand_level")[k])
            level_s = np.exp(m.array("log_supply_level")[k])

            def client_rate(x: float, level: float = level_d, e: float = eps) -> float:
                return float((x / level) ** (1 / e))

            def freelancer_rate(x: float, level: float = level_s, e: float = eta) -> float:
                return float((x / level) ** (1 / e))

            want += quad(client_rate, base_hours[k], hours[k], epsabs=0, epsrel=1e-13)[0]
            want -= quad(freelancer_rate, 0.0, worked[k], epsabs=0, epsrel=1e-13)[0]
        got = float(segment_values(solved, "surplus", base_hours).sum())
        assert abs(got - want) <= 1e-9 * gmv


def test_clients_value_stops_at_the_choke_price() -> None:
    """With inelastic demand (ε = −0.5) the value of hours from ~0 is unbounded; the
    surplus caps clients' value at CHOKE × today's client rate. Against quadrature of
    min(P, P̄) from a baseline of 1e-6 hours (split at the choke hours q̄ so quad sees no
    kink). Tolerance 1e-9 of the segment's GMV, as above."""
    seg = segment("a", rate=30.0, hours=900.0, eps=-0.5, eta=1.2, client_fee=0.1)
    market = market_of([seg], [])
    solved = solve(market)
    hours = float(segment_values(solved, "hours", np.ones(1))[0])
    m = solved.market
    eps, level = m.array("demand_elasticity")[0], np.exp(m.array("log_demand_level")[0])
    choke = CHOKE * 30.0 * 1.1
    choke_hours = level * choke**eps
    assert 1e-6 < choke_hours < hours  # the integral crosses the kink

    def capped_rate(x: float) -> float:
        return float(min((x / level) ** (1 / eps), choke))

    value = quad(capped_rate, 1e-6, choke_hours, epsabs=0, epsrel=1e-13)[0]
    value += quad(capped_rate, choke_hours, hours, epsabs=0, epsrel=1e-13)[0]
    eta, supply_level = m.array("supply_elasticity")[0], np.exp(m.array("log_supply_level")[0])
    cost = quad(lambda x: (x / supply_level) ** (1 / eta), 0.0, hours, epsrel=1e-13)[0]
    got = float(segment_values(solved, "surplus", np.array([1e-6]))[0])
    assert abs(got - (value - cost)) <= 1e-9 * hours * 30.0
    assert got < choke * hours  # bounded by the choke price, not ~1e6 × larger


# --------------------------------------------------------------------------- reskill
def two_categories(adjacency: list[tuple[str, str, float]]) -> Market:
    """Cheap supply in 'a' ($20/h), dear in 'b' ($60/h), no fees: the equilibrium then
    maximizes the surplus, so cheaper friction on a used edge raises it."""
    return market_of(
        [
            segment("a", rate=20.0, client_fee=0.0, freelancer_fee=0.0),
            segment("b", rate=60.0, client_fee=0.0, freelancer_fee=0.0),
        ],
        adjacency,
    )


def test_reskill_on_an_existing_edge_raises_its_flow() -> None:
    """Friction 10 − 2u on a → b: the flow grows with every unit, and a surplus plan buys
    them all (the surplus rises by ∫x dτ > 0). Flows compared with a 1e-6 relative
    margin: they differ by ~10 % a unit, the solver's error is ~1e-10."""
    market = two_categories([("a", "b", 10.0)])
    catalogue = pd.DataFrame(
        [lever("K", "a", "reskill", to_category="b", cost=100.0, max_units=3, effect=2.0)]
    )
    levers = Levers.build(market, catalogue)
    flows = []
    for u in range(4):
        result = solve(levers.apply(np.array([float(u)])))
        assert result.market.edges["friction"].tolist() == pytest.approx([10.0 - 2.0 * u])
        flows.append(float(result.flow[0]))
    assert flows[0] > 0 and all(b > a * (1 + 1e-6) for a, b in itertools.pairwise(flows))
    plan = plan_interventions(
        market, catalogue, InterventionsConfig(budget=1_000.0, objective="surplus")
    )
    assert plan.units.tolist() == [3] and plan.verified_gain > 0
    assert plan.equilibrium.flow[0] == pytest.approx(flows[3], rel=1e-6)


def test_reskill_opens_a_closed_edge_and_couples_the_components() -> None:
    """a and b are not adjacent; the lever opens a → b at open_friction − E(u). Its
    group joins them, the plan buys it and the joint solve has the edge with flow."""
    market = two_categories([])
    catalogue = pd.DataFrame(
        [lever("OPEN", "a", "reskill", to_category="b", max_units=3, effect=1.0, open_friction=8.0)]
    )
    levers = Levers.build(market, catalogue)
    assert market.component[0] != market.component[1]
    assert levers.group[0] == levers.group[1]
    assert len(levers.apply(np.zeros(1)).edges) == 0  # bought at 0 units it stays closed
    plan = plan_interventions(
        market, catalogue, InterventionsConfig(budget=1_000.0, objective="surplus")
    )
    assert plan.units.tolist() == [3] and plan.verified_gain > 0
    edges = plan.equilibrium.edges_frame()
    assert edges[["pool", "segment"]].to_numpy().tolist() == [[0, 1]]
    assert edges["friction"].iloc[0] == pytest.approx(5.0)
    assert edges["flow_hours"].iloc[0] > 0
    assert plan.equilibrium.market.component[0] == plan.equilibrium.market.component[1]


def test_reskill_without_to_category_opens_nothing() -> None:
    """A lever on every edge out of 'a' cheapens a → c and, once OPEN opens it, a → b;
    bought alone it must leave a → b closed (it was opened at OPEN's open_friction)."""
    rows = [segment("a", rate=20.0), segment("b", rate=60.0), segment("c", rate=45.0)]
    market = market_of(rows, [("a", "c", 6.0)])
    catalogue = pd.DataFrame(
        [
            lever("OPEN", "a", "reskill", to_category="b", effect=1.0, open_friction=8.0),
            lever("ALL", "a", "reskill", effect=0.5),
        ]
    )
    levers = Levers.build(market, catalogue)
    alone = levers.apply(np.array([0.0, 2.0])).edges
    assert alone[["pool", "segment"]].to_numpy().tolist() == [[0, 2]]
    assert alone["friction"].tolist() == pytest.approx([5.0])
    both = levers.apply(np.array([1.0, 2.0])).edges.sort_values("segment")
    assert both["friction"].tolist() == pytest.approx([6.0, 5.0])  # 8 − 1 − 1, 6 − 1


def test_reskill_to_an_unpriced_missing_edge_names_the_lever() -> None:
    market = two_categories([])
    catalogue = pd.DataFrame(
        [lever("OK", "b", "recruit"), lever("NOPRICE", "a", "reskill", to_category="b")]
    )
    with pytest.raises(MarketError, match=r"open_friction") as err:
        plan_interventions(market, catalogue, InterventionsConfig(budget=100.0))
    assert str(err.value).startswith("reskill lever(s) NOPRICE would open edge(s) ")
    assert "a/t0→b/t0" in str(err.value)
    with pytest.raises(MarketError, match="NOPRICE"):
        Levers.build(market, catalogue).apply(np.zeros(2))


# --------------------------------------------------------------------------- infeasible
def fill_market() -> tuple[Market, dict[str, Any], float]:
    """'a' clears at $40 and 1,000 h but today's rate is $32, so its fill (hours over
    the hours asked for at $32) is below 1 and rises with recruiting; 'b' apart."""
    seg = segment("a", rate=40.0, hours=1_000.0, eps=-1.2, eta=0.9, observed=32.0)
    market = market_of([seg, segment("b", rate=30.0, hours=500.0)], [])
    demand_today = float(market.demand_hours(market.array("observed_rate"))[0])
    return market, seg, demand_today


def fill_of(seg: dict[str, Any], demand_today: float, units: int) -> float:
    return recruited(seg, 0.1 * units)[1] / demand_today


RECRUIT_A = pd.DataFrame([lever("RA", "a", "recruit", cost=100.0, max_units=3, effect=0.1)])


def test_a_fill_no_budget_reaches_is_explained() -> None:
    """Every lever together fills 'a' to fill(3): a target 5 % above is infeasible at any
    budget; the explanation names the category and fill(3), the relaxation lowers the
    target to it. Tolerance CLOSED_FORM_RTOL (the fill comes from the exact tables)."""
    market, seg, demand = fill_market()
    most = fill_of(seg, demand, 3)
    config = InterventionsConfig(budget=10_000.0, min_fill={"a": 1.05 * most})
    plan = plan_interventions(market, RECRUIT_A, config)
    assert plan.status == "infeasible" and not plan.feasible and plan.units.tolist() == [0]
    assert "'a'" in plan.explanation and f"{most:.1%}" in plan.explanation
    assert "any budget" in plan.explanation
    rows = plan.relaxations.set_index("relax")
    assert list(rows.index) == ["min_fill"] and rows.loc["min_fill", "category"] == "a"
    assert rows.loc["min_fill", "needed"] == pytest.approx(most, rel=CLOSED_FORM_RTOL)
    assert rows.loc["min_fill", "requested"] == pytest.approx(1.05 * most)
    assert evaluate(plan).ok  # an infeasible plan buys nothing, and says so
    assert "infeasible request" in plan.summary() and "out of reach" in plan._repr_html_()


def test_a_target_the_model_meets_but_no_joint_solve_does_is_infeasible(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The plan model can think a plan meets a fill target that the plan's joint re-solve
    misses (the model values groups apart). Then no verified plan meets the request: the
    plan is infeasible, names the target and what the best verified plan reaches, and
    is not reported optimal. Simulated by a verification that counts 3 % fewer hours."""
    import pricing.decisions.interventions as interventions

    market, seg, demand = fill_market()
    # three units meet it by the model; 3 % fewer hours than fill(3) miss it
    target = 0.5 * (fill_of(seg, demand, 2) + fill_of(seg, demand, 3))
    assert 0.97 * fill_of(seg, demand, 3) < target
    real = interventions._category_hours
    monkeypatch.setattr(interventions, "_category_hours", lambda r, lv: 0.97 * real(r, lv))
    plan = plan_interventions(
        market, RECRUIT_A, InterventionsConfig(budget=10_000.0, min_fill={"a": target})
    )
    assert plan.status == "infeasible" and not plan.feasible
    assert plan.units.tolist() == [3]  # the best verified plan is kept
    reached = 0.97 * fill_of(seg, demand, 3)
    row = plan.relaxations.set_index("relax").loc["min_fill"]
    assert row["category"] == "a" and row["requested"] == target
    assert row["needed"] == pytest.approx(reached, rel=CLOSED_FORM_RTOL)
    assert "not by the joint re-solve" in plan.explanation and f"{reached:.2%}" in plan.explanation


@pytest.mark.parametrize("cost", [100.0, 100.004], ids=["whole_cents", "fraction_of_a_cent"])
def test_a_fill_more_budget_reaches_gives_the_least_budget(cost: float) -> None:
    """A target between fill(1) and fill(2) needs two units: with the budget for one the
    request is infeasible, the relaxation asks for the price of two, and that budget
    then gives a plan that meets the target (at any cost, fractions of a cent too)."""
    market, seg, demand = fill_market()
    target = 0.5 * (fill_of(seg, demand, 1) + fill_of(seg, demand, 2))
    catalogue = RECRUIT_A.assign(cost_per_unit=cost)
    plan = plan_interventions(
        market, catalogue, InterventionsConfig(budget=150.0, min_fill={"a": target})
    )
    assert plan.status == "infeasible"
    budget = plan.relaxations.set_index("relax").loc["budget"]
    assert budget["requested"] == 150.0
    assert 2 * cost <= budget["needed"] <= 2 * cost + 0.02  # the price of 2, to the cent
    assert f"${budget['needed']:,.0f}" in plan.explanation
    again = plan_interventions(
        market, catalogue, InterventionsConfig(budget=budget["needed"], min_fill={"a": target})
    )
    assert again.status == "optimal" and again.units.tolist() == [2]
    row = again.categories.set_index("category").loc["a"]
    assert row["target_met"] and row["fill_after"] >= target
    assert evaluate(again).ok


def test_spend_caps_that_block_the_target_are_named() -> None:
    """Two units are needed; the cap on 'a' allows one: infeasible, with a spend_cap
    relaxation to the price of two and the budget it takes; raising the cap to it works."""
    market, seg, demand = fill_market()
    target = 0.5 * (fill_of(seg, demand, 1) + fill_of(seg, demand, 2))
    config = InterventionsConfig(budget=10_000.0, spend_caps={"a": 150.0}, min_fill={"a": target})
    plan = plan_interventions(market, RECRUIT_A, config)
    assert plan.status == "infeasible"
    assert "spend caps" in plan.explanation and "'a'" in plan.explanation
    cap = plan.relaxations.set_index("relax").loc["spend_cap"]
    assert cap["category"] == "a" and cap["requested"] == 150.0 and cap["needed"] == 200.0
    relaxed = InterventionsConfig(
        budget=10_000.0, spend_caps={"a": cap["needed"]}, min_fill={"a": target}
    )
    again = plan_interventions(market, RECRUIT_A, relaxed)
    assert again.feasible and again.units.tolist() == [2] and evaluate(again).ok


# --------------------------------------------------------------------------- sensitivity
def test_budget_sensitivity() -> None:
    """$250 buys two units of five: the budget binds, and one more step ($100: the
    cheapest unit, above 5 % of the budget) buys the third, worth q(3) − q(2) hours.
    With the whole catalogue affordable nothing binds. Tolerance CLOSED_FORM_RTOL."""
    seg = segment("a", rate=40.0, hours=1_000.0, eps=-1.3, eta=0.8)
    market = market_of([seg, segment("b")], [])
    catalogue = pd.DataFrame([lever("R", "a", "recruit", max_units=5, effect=0.1, decay=0.9)])
    plan = plan_interventions(market, catalogue, InterventionsConfig(budget=250.0))
    assert plan.units.tolist() == [2]
    assert plan.budget_step == 100.0
    third = recruited(seg, effect_by_definition(0.1, 0.9, 3))[1]
    second = recruited(seg, effect_by_definition(0.1, 0.9, 2))[1]
    budget = plan.constraints.set_index("constraint").loc["budget"]
    assert budget["binding"] and budget["used"] == 200.0 and budget["slack"] == 50.0
    assert budget["gain_if_relaxed"] == pytest.approx(third - second, rel=CLOSED_FORM_RTOL)
    assert plan.marginal_value > 0
    assert plan.marginal_value == pytest.approx((third - second) / 100.0, rel=CLOSED_FORM_RTOL)
    rich = plan_interventions(market, catalogue, InterventionsConfig(budget=10_000.0))
    assert rich.units.tolist() == [5] and rich.marginal_value == 0.0
    assert not rich.constraints.set_index("constraint").loc["budget", "binding"]
    assert "binding: budget" in plan.summary() and "binding" not in rich.summary()


def test_a_binding_cap_is_reported_binding() -> None:
    """The cap on 'a' allows one unit of its three; the cap on 'b' is never reached."""
    market = market_of([segment("a", rate=40.0), segment("b", rate=30.0)], [])
    catalogue = pd.DataFrame([lever("RA", "a", "recruit"), lever("RB", "b", "recruit")])
    config = InterventionsConfig(budget=10_000.0, spend_caps={"a": 150.0, "b": 5_000.0})
    plan = plan_interventions(market, catalogue, config)
    assert plan.units.tolist() == [1, 3]
    rows = plan.constraints.set_index("constraint")
    assert rows.loc["spend_cap:a", "binding"] and rows.loc["spend_cap:a", "gain_if_relaxed"] > 0
    assert rows.loc["spend_cap:a", "used"] == 100.0 <= rows.loc["spend_cap:a", "limit"]
    assert (
        not rows.loc["spend_cap:b", "binding"] and rows.loc["spend_cap:b", "gain_if_relaxed"] == 0
    )
    assert not rows.loc["budget", "binding"]
    assert evaluate(plan).ok


# --------------------------------------------------------------------------- validation
def test_every_catalogue_problem_is_reported_at_once() -> None:
    market = two_categories([("a", "b", 5.0)])
    catalogue = pd.DataFrame(
        [
            lever("DUP", "a", "recruit"),
            lever("DUP", "b", "recruit"),
            lever("NOWHERE", "design", "recruit"),
            lever("HIRE", "a", "hire"),
            lever("DECAY_HIGH", "a", "recruit", decay=1.5),
            lever("DECAY_ZERO", "a", "recruit", decay=0.0),
            lever("TO_ON_FEE", "a", "fee_discount", to_category="b"),
            lever("TO_ITSELF", "a", "reskill", to_category="a", open_friction=1.0),
            lever("FINE", "a", "reskill", to_category="b"),
        ]
    )
    with pytest.raises(MarketError) as err:
        Levers.build(market, catalogue)
    message = str(err.value)
    # the data contract's rules (the same as validation's) and the market's categories
    assert "7 problem(s)" in message
    for what, ids in [
        ("intervention_id must be unique", "DUP"),
        ("category has no segment", "NOWHERE"),
        ("kind must be one of", "HIRE"),
        ("decay must be <= 1", "DECAY_HIGH"),
        ("decay must be > 0", "DECAY_ZERO"),
        ("to_category is for reskill levers only", "TO_ON_FEE"),
        ("a reskill lever must lead to a different category", "TO_ITSELF"),
    ]:
        line = next(line for line in message.splitlines() if what in line)
        assert line.endswith(ids), line
    assert "FINE" not in message
    with pytest.raises(MarketError, match="7 problem"):
        plan_interventions(market, catalogue, InterventionsConfig(budget=1.0))
    with pytest.raises(MarketError, match="required column 'max_units' is missing"):
        read_catalogue(catalogue.drop(columns="max_units"), market)


def test_unknown_categories_in_the_settings_get_a_suggestion() -> None:
    market = market_of([segment("design"), segment("writing")], [])
    catalogue = pd.DataFrame([lever("R", "design", "recruit")])
    config = InterventionsConfig(
        budget=100.0, spend_caps={"desing": 50.0}, min_fill={"writng": 0.5}
    )
    with pytest.raises(MarketError) as err:
        plan_interventions(market, catalogue, config)
    message = str(err.value)
    assert "2 problem(s)" in message
    assert (
        "interventions.spend_caps: no segment has category 'desing'; did you mean 'design'?"
        in message
    )
    assert (
        "interventions.min_fill: no segment has category 'writng'; did you mean 'writing'?"
        in message
    )


# --------------------------------------------------------------------------- results
def test_plan_results_objects_and_a_tampered_plan() -> None:
    market = market_of([segment("a", rate=40.0), segment("b", rate=30.0)], [])
    catalogue = pd.DataFrame(
        [lever("RA", "a", "recruit", cost=100.0), lever("FB", "b", "fee_discount", effect=0.01)]
    )
    plan = plan_interventions(market, catalogue, InterventionsConfig(budget=450.0))
    assert plan.status == "optimal" and plan.spend <= 450.0
    frame = plan.to_frame()
    assert list(frame.columns) == [
        "intervention_id", "category", "kind", "to_category", "units", "max_units",
        "cost_per_unit", "spend", "effect_per_unit", "decay", "at_max", "predicted_gain",
        "verified_gain",
    ]  # fmt: skip
    assert frame["units"].tolist() == plan.units.tolist()
    assert frame["spend"].sum() == pytest.approx(plan.spend)
    text = plan.summary()
    assert text.startswith("Intervention plan (optimal): objective hours, budget $450")
    assert str(plan) == text
    for bought in frame.loc[frame["units"] > 0, "intervention_id"]:
        assert bought in text
    assert "<table" in plan._repr_html_() and "RA" in plan._repr_html_()
    assert set(plan.categories["category"]) == {"a", "b"}
    check = evaluate(plan)  # a fresh solve of the same market: the gain to ~1e-10
    assert check.ok and check.verified_gain == pytest.approx(plan.verified_gain, rel=1e-8)
    assert "checks pass" in check.summary() and "<table" in check._repr_html_()
    assert set(check.to_frame().columns) == {"check", "ok", "detail"}

    over = dataclasses.replace(plan, units=np.array([3, 3]))  # $600 of a $450 budget
    tampered = evaluate(over)
    assert not tampered.ok
    failed = set(tampered.checks.loc[~tampered.checks["ok"], "check"])
    assert failed == {"budget", "gain"}  # and the gain is not the plan's any more
    assert "FAILED budget" in tampered.summary()
    fractional = evaluate(dataclasses.replace(plan, units=plan.units + 0.5))
    assert "units" in set(fractional.checks.loc[~fractional.checks["ok"], "check"])
    fill = plan.categories.set_index("category").loc["a", "fill_after"]
    update = {"min_fill": {"a": 1.01 * fill}}  # a target the plan was not made for
    missed = dataclasses.replace(plan, config=plan.config.model_copy(update=update))
    assert "min_fill:a" in set(evaluate(missed).checks.loc[lambda c: ~c["ok"], "check"])


# --------------------------------------------------------------------------- properties
PROPERTY_SETTINGS = settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# Two plans' values are each within optimality_tol of their optimum: rounding ≤ 4 levers
# × top/(2·RESOLUTION) with top, the largest gain, under 2× the objective's scale here
# (measured ≤ 1.3× in the enumeration batch) = 4e-8, NOISE 1e-8, solves 2e-9: ≈ 5e-8 of
# Σ_k |objective_k| each, 1e-7 for the pair.
MONOTONE_RTOL = 1e-7


@st.composite
def problems(draw: st.DrawFn) -> tuple[Market, pd.DataFrame, InterventionsConfig]:
    """2–3 uncoupled-or-adjacent categories, one lever of each kind (the reskill opening
    an edge or cheapening one), a lever without effect, a budget up to 120 % of the
    catalogue and sometimes a cap."""
    n = draw(st.integers(2, 3))
    rows = [
        segment(
            f"c{i}",
            rate=draw(st.floats(15.0, 120.0)),
            hours=draw(st.floats(200.0, 5_000.0)),
            eps=draw(st.floats(-2.5, -0.3)),
            eta=draw(st.floats(0.3, 2.5)),
            client_fee=draw(st.floats(0.0, 0.1)),
            freelancer_fee=draw(st.floats(0.02, 0.2)),
        )
        for i in range(n)
    ]
    adjacent = draw(st.booleans())
    market = market_of(rows, [("c1", "c0", draw(st.floats(0.5, 8.0)))] if adjacent else [])
    category = st.sampled_from([f"c{i}" for i in range(n)])

    def drawn(lever_id: str, kind: str, effect: tuple[float, float], **more: Any) -> dict[str, Any]:
        return lever(
            lever_id,
            more.pop("category", None) or draw(category),
            kind,
            cost=50.0 * draw(st.integers(1, 20)),
            max_units=draw(st.integers(1, 3)),
            effect=draw(st.floats(*effect)),
            decay=draw(st.one_of(st.just(1.0), st.floats(0.4, 1.0))),
            **more,
        )

    opening = draw(st.floats(0.5, 10.0))
    kind = st.sampled_from(["recruit", "fee_discount", "reskill"])
    levers = [
        drawn("R", "recruit", (0.02, 0.3)),
        drawn("F", "fee_discount", (0.005, 0.06)),
        drawn("K", "reskill", (0.2, 3.0), category="c0", to_category="c1", open_friction=opening),
        lever("ZERO", draw(category), draw(kind), cost=10.0, max_units=3, effect=0.0),
    ]
    catalogue = pd.DataFrame(levers)
    total = float((catalogue["cost_per_unit"] * catalogue["max_units"]).sum())
    budget = round(draw(st.floats(0.0, 1.2)) * total, 2)
    caps = (
        {draw(category): round(draw(st.floats(0.0, 0.6)) * total, 2)} if draw(st.booleans()) else {}
    )
    objective = draw(st.sampled_from(["hours", "gmv", "surplus"]))
    return (
        market,
        catalogue,
        InterventionsConfig(
            budget=budget, objective=objective, spend_caps=caps, enumerate_limit=1024
        ),
    )


@pytest.mark.slow
@PROPERTY_SETTINGS
@given(problem=problems())
def test_zero_budget_plans_nothing(
    problem: tuple[Market, pd.DataFrame, InterventionsConfig],
) -> None:
    """Tolerance on the gain of nothing: exactly 0, the joint solve reuses the baseline's
    unchanged components."""
    market, catalogue, config = problem
    plan = plan_interventions(market, catalogue, config.model_copy(update={"budget": 0.0}))
    assert plan.status == "empty" and not plan.units.any()
    assert plan.spend == 0.0 and plan.verified_gain == 0.0 and plan.predicted_gain == 0.0


@pytest.mark.slow
@PROPERTY_SETTINGS
@given(problem=problems(), more=st.floats(0.05, 1.0))
def test_plan_properties(
    problem: tuple[Market, pd.DataFrame, InterventionsConfig], more: float
) -> None:
    """Spend within the budget and every cap, the lever without effect never bought,
    evaluate() agrees, and a larger budget never lowers the verified objective
    (tolerance MONOTONE_RTOL)."""
    market, catalogue, config = problem
    plan = plan_interventions(market, catalogue, config)
    note(f"units {plan.units.tolist()}, spend {plan.spend}, status {plan.status}")
    assert plan.status in ("optimal", "empty")
    assert plan.spend <= config.budget
    spend = plan.to_frame().groupby("category")["spend"].sum()
    for name, cap in config.spend_caps.items():
        assert spend.get(name, 0.0) <= cap
    assert plan.units[-1] == 0  # ZERO
    check = evaluate(plan)
    assert check.ok, check.summary()
    bigger = plan_interventions(
        market, catalogue, config.model_copy(update={"budget": config.budget + more * 5_000.0})
    )
    scale = float(
        np.abs(
            segment_values(
                plan.baseline,
                config.objective,
                np.ones(len(market)) * 0
                + segment_values(plan.baseline, "hours", np.ones(len(market))),
            )
        ).sum()
    )
    assert bigger.verified_gain >= plan.verified_gain - MONOTONE_RTOL * scale


def test_an_empty_catalogue_plans_nothing() -> None:
    market = market_of([segment("a"), segment("b", rate=30.0)], [])
    catalogue = pd.DataFrame([lever("R", "a", "recruit")]).iloc[:0]
    plan = plan_interventions(market, catalogue, InterventionsConfig(budget=1_000.0))
    assert plan.units.size == 0 and plan.spend == 0.0 and plan.verified_gain == 0.0
    assert evaluate(plan).ok


def test_per_lever_and_per_category_gains_add_up_without_interactions() -> None:
    """Levers in two uncoupled segments do not interact, so each lever's gain (the
    model's V(u) − V(u without it)) adds up to the plan's predicted gain, and each
    category's predicted hours to its verified ones, to the solver's accuracy."""
    market = market_of([segment("a", rate=40.0), segment("b", rate=30.0)], [])
    catalogue = pd.DataFrame(
        [lever("RA", "a", "recruit", cost=100.0), lever("RB", "b", "recruit", cost=120.0)]
    )
    plan = plan_interventions(market, catalogue, InterventionsConfig(budget=500.0))
    levers = plan.to_frame()
    assert (levers["units"] > 0).all()
    assert (levers["predicted_gain"] > 0).all()
    assert levers["predicted_gain"].sum() == pytest.approx(plan.predicted_gain, rel=1e-9)
    # re-solved without each lever: the same, and adding up to the joint solve's gain
    # (solves agree to ~1e-10 relative; 1e-8 leaves room for the hours' scale)
    np.testing.assert_allclose(levers["verified_gain"], levers["predicted_gain"], rtol=1e-8)
    assert levers["verified_gain"].sum() == pytest.approx(plan.verified_gain, rel=1e-8)
    cats = plan.categories
    np.testing.assert_allclose(cats["hours_predicted"], cats["hours_after"], rtol=1e-8)


def test_a_levers_verified_gain_is_the_joint_solve_without_it() -> None:
    """On coupled markets with reskill edges (levers that interact), each bought lever's
    verified gain equals an independent whole-market solve without it, to the solver's
    accuracy (rates ~1e-10 relative; 1e-7 of the objective's scale)."""
    for seed in (0, 1):
        market = random_market(40, (3, 8), seed=seed)
        catalogue = random_catalogue(market, 12, seed=seed)
        budget = 0.3 * float((catalogue["cost_per_unit"] * catalogue["max_units"]).sum())
        plan = plan_interventions(market, catalogue, InterventionsConfig(budget=budget))
        levers = Levers.build(market, read_catalogue(catalogue, market))
        base = plan.base_value + plan.verified_gain
        frame = plan.to_frame()
        assert (frame["units"] > 0).sum() >= 2
        for i in np.flatnonzero(plan.units):
            without = plan.units.astype(np.float64)
            without[i] = 0.0
            solved = solve(levers.apply(without), baseline=plan.equilibrium)
            hours = solve(market).to_frame()["hours"].to_numpy()
            value = float(np.nansum(segment_values(solved, "hours", hours)))
            assert frame["verified_gain"].iloc[i] == pytest.approx(
                base - value, abs=1e-7 * abs(base)
            )
