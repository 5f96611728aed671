r"""Stage ``interventions``: intervention plans (re-solved lever values, CP-SAT, a verified
joint solve).

Markets (seeded; setup, not timed):

- ``sample``: the shipped sample (``data/sample``) estimated as ``pricing plan`` does,
  with its own catalogue (36 levers) and budget;
- ``uncoupled``: :func:`pricing.market.synthetic.random_market` (1,000 segments, no
  adjacency), fees 5 % / 10 %, and :func:`pricing.market.synthetic.random_catalogue` of
  200 levers (reskills open new edges);
- ``tiers``: 100 categories × 10 tiers with random curves and 50 category adjacency edges
  (each joins the same tier of two categories), the same kind of catalogue: the shape of
  a real marketplace, where levers act on every tier of a category and groups hold up to
  ~90 segments. Its plan takes minutes, so it is timed once, without a warm-up;
- ``connected``: :func:`pricing.market.synthetic.connected_market` (1,000 segments in one
  component, issue 18) and the same kind of catalogue: every lever's group is the whole
  market, so each valuation round solves ~1,100 copies of it (10^6 segments) warm-started
  from the anchor, most settled by the forest finisher from the anchor's active set.
  Timed once, without a warm-up (half a minute).

The random catalogues' budget is a tenth of their full cost. The benchmark times
:func:`pricing.decisions.interventions.plan_interventions`, with the CP-SAT build and
solve as compile and solve time, and the plan's own timings (valuation, CP-SAT build and
solve, total) as details.

The baseline, measured in the same run, is the naive first round of valuing levers: one
full-market ``solve`` per lever option, timed on the first :data:`NAIVE_OPTIONS` options
and scaled to all of round 1's options. A plan values every option in every round and
then plans and verifies, so a ratio below 1 is what batching the copies (and warm starts)
buys over even one naive round.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from pricing.bench.harness import Case
from pricing.bench.paths import sample_dir
from pricing.config import InterventionsConfig, resolve_config
from pricing.decisions.interventions import InterventionPlan, plan_interventions
from pricing.decisions.levers import Levers
from pricing.market.equilibrium import solve
from pricing.market.market import Market, segment_edges
from pricing.market.synthetic import connected_market, random_catalogue, random_market

#: levers in each random catalogue
LEVERS = 200
#: lever options the naive round is timed on (then scaled to all)
NAIVE_OPTIONS = 10
PLAN_PARTS = ("valuation", "cp_build", "cp_solve", "total")

Planned = tuple[Market, pd.DataFrame, InterventionsConfig]


def tiered_market(categories: int, tiers: int, edges: int, seed: int) -> Market:
    """``categories`` × ``tiers`` segments with random curves; ``edges`` category edges."""
    rng = np.random.default_rng(seed)
    n = categories * tiers
    rate = np.exp(rng.normal(3.6, 0.5, n))
    hours = np.exp(rng.normal(6.0, 1.5, n))
    eps, eta = rng.uniform(-3.0, -0.2, n), rng.uniform(0.1, 3.0, n)
    segments = pd.DataFrame(
        {
            "category": np.repeat([f"c{i}" for i in range(categories)], tiers),
            "tier": np.tile([f"t{j}" for j in range(tiers)], categories),
            "demand_elasticity": eps,
            "log_demand_level": np.log(hours) - eps * np.log(rate),
            "supply_elasticity": eta,
            "log_supply_level": np.log(hours * np.exp(rng.normal(0, 0.3, n))) - eta * np.log(rate),
            "observed_rate": rate,
            "client_fee": 0.05,
            "freelancer_fee": 0.10,
        }
    )
    a, b = rng.integers(0, categories, edges), rng.integers(0, categories, edges)
    adjacency = pd.DataFrame(
        {
            "from_category": [f"c{i}" for i in a[a != b]],
            "to_category": [f"c{i}" for i in b[a != b]],
            "friction": rng.uniform(1.0, 8.0, int((a != b).sum())),
        }
    ).drop_duplicates(["from_category", "to_category"])
    return Market(segments, segment_edges(segments, ["category", "tier"], adjacency))


def sample() -> Planned:
    """The sample estimated as ``pricing plan`` does, its catalogue and settings."""
    from pricing.estimation.curves import fit_curves
    from pricing.inputs.panel import build_panel
    from pricing.inputs.validation import check_inputs

    data = sample_dir()
    config, _ = resolve_config(data, None)
    checked = check_inputs(data, config).checked()
    curves = fit_curves(build_panel(checked), config.estimation)
    market = Market.from_curves(curves, checked.table("adjacency"), config.market)
    return market, checked.table("interventions"), config.interventions


def _with_catalogue(market: Market) -> Planned:
    catalogue = random_catalogue(market, LEVERS, seed=1)
    full = float((catalogue["cost_per_unit"] * catalogue["max_units"]).sum())
    return market, catalogue, InterventionsConfig(budget=round(0.1 * full))


def uncoupled() -> Planned:
    market = random_market(1000, seed=3)
    return _with_catalogue(
        Market(market.segments.assign(client_fee=0.05, freelancer_fee=0.10), market.edges)
    )


def tiers() -> Planned:
    return _with_catalogue(tiered_market(100, 10, 50, 0))


def connected() -> Planned:
    return _with_catalogue(connected_market(1000, seed=11))


MARKETS: dict[str, Callable[[], Planned]] = {
    "uncoupled": uncoupled,
    "tiers": tiers,
    "connected": connected,
    "sample": sample,
}
#: the markets whose plan takes long enough to be timed once, without a warm-up
SLOW = ("tiers", "connected")


def naive_round(market: Market, catalogue: pd.DataFrame, n_options: int) -> int:
    """One full-market solve per lever option, over the first ``n_options`` options;
    returns the options solved."""
    levers = Levers.build(market, catalogue)
    units = catalogue["max_units"].to_numpy()
    options = np.flatnonzero(units > 0)[:n_options]
    for lever in options:
        u = np.zeros(len(levers))
        u[lever] = units[lever]
        solve(levers.apply(u))
    return int(options.size)


def _cp_split(plan: InterventionPlan) -> tuple[float, float]:
    return plan.timings["cp_build"], plan.timings["cp_solve"]


def _plan_parts(plan: InterventionPlan) -> dict[str, float]:
    return {k: v for k, v in plan.timings.items() if k in PLAN_PARTS}


def case(name: str) -> Case:
    """Plan the ``name`` market (:data:`MARKETS`), against the naive first round."""
    market, catalogue, config = MARKETS[name]()
    options = int(catalogue["max_units"].sum())
    shown = min(NAIVE_OPTIONS, int((catalogue["max_units"] > 0).sum()))
    slow = name in SLOW
    return Case(
        "interventions",
        {"market": name, "segments": len(market), "levers": len(catalogue)},
        lambda: plan_interventions(market, catalogue, config),
        "one solve per option",
        lambda: naive_round(market, catalogue, NAIVE_OPTIONS),
        split=_cp_split,
        repeat=1 if slow else None,
        warmup=not slow,
        details=_plan_parts,
        baseline_scale=options / shown,
    )
