"""Stage ``whatif``: what-ifs re-solved from their baseline, against a cold solve.

Two kinds of benchmark, both against the same baseline measured in the same run, a
**cold solve** of the scenario's market (no warm start, no reuse): what a what-if would
cost without its baseline's solution, so a ratio below 1 is what the baseline saves.

- ``whatif`` (:func:`warm_case`): ``random_market(N, (2, 50))`` (coupled components of
  2–50 segments, as in the equilibrium stage) solved once in setup, then
  ``solve(scenario, baseline=result)`` after raising demand 10 % in one category in ten
  (only the components it touches are solved again; the rest are taken from the
  baseline, exactly) and in every category (all are re-solved, warm-started).
- ``whatif.stored`` (:func:`stored_cases`): a what-if as an analyst gets it from a stored
  run, ``run.whatif(scenario)`` plus its per-segment comparison and totals, for each
  scenario kind (demand in every segment or one category, a fee everywhere, an
  elasticity, a new edge in every tier, a rate floor, an inverse fee). The stored run's
  market is ``random_market(N, (2, 50))`` too, written once into the cache as the nightly
  run writes it; its details are the seconds of committing the answer to a scratch
  store (``save_whatif``). Intervention budgets are left out: planning is the
  interventions stage's subject.

Why ``random_market`` and not the simulator's own 10,000-segment market: when this
benchmark was written the simulator's adjacency linked every category of a tier into one
component of 3,334 segments, beyond the interior point's 512-segment limit. The simulator
now keeps adjacency within skill families of 12 categories (the report stage stores such
markets); this stage keeps ``random_market`` so that its records stay comparable. A
single component above 512 segments still needs a sparse factorization the engine does
not have.
"""

from __future__ import annotations

import datetime as dt
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pricing.bench.harness import Case
from pricing.bench.paths import cache_dir
from pricing.config import RunConfig, Scenario, parse_scenario
from pricing.decisions.scenario import WhatIf, apply_scenario
from pricing.market.equilibrium import EquilibriumResult, equilibrium_table, solve
from pricing.market.market import PARAMETERS, Market
from pricing.market.synthetic import random_market
from pricing.runs.run import Run, load_run, save_whatif
from pricing.statuses import PlanStatus, RunStatus
from pricing.store.manifest import Components, Counts, GuidanceCounts, Manifest, Statuses, Weeks
from pricing.store.store import RunStore

AS_OF = dt.date(2025, 12, 28)
COMPONENTS = (2, 50)  # segments per coupled component, as in the equilibrium stage


def scenario(market: Market, every: int) -> Market:
    """Demand up 10 % in every ``every``-th category (1: all of them)."""
    segments = market.segments.copy()
    codes = pd.factorize(segments["category"])[0]
    segments.loc[codes % every == 0, "log_demand_level"] += np.log(1.1)
    return Market(segments, market.edges, market.segment_keys)


def warm_cases(segments: int) -> Iterator[Case]:
    """The warm re-solve after demand +10 % in one category in ten, and in all."""
    market = random_market(segments, COMPONENTS, seed=5)
    base = solve(market)
    for label, every in (("tenth", 10), ("all", 1)):
        yield _warm_case({"segments": segments, "categories_changed": label}, base, market, every)


def _warm_case(params: dict[str, Any], base: EquilibriumResult, market: Market, every: int) -> Case:
    shifted = scenario(market, every)
    return Case(
        "whatif",
        params,
        lambda: solve(shifted, baseline=base),
        "cold solve",
        lambda: solve(shifted),
    )


def stored_run(segments: int) -> Path:
    """A store (in the cache) holding one run whose market is
    ``random_market(segments, (2, 50))``, written as the nightly run writes it
    (``market``, ``edges``, ``equilibrium`` and a manifest with the default settings);
    what-ifs read nothing else."""
    store = cache_dir() / f"whatif_{segments}" / "store"
    if RunStore(store).run_paths():
        return store
    market = random_market(segments, COMPONENTS, seed=3)
    keys = list(market.segment_keys)
    solved = solve(market)
    tables = {
        "equilibrium": equilibrium_table(solved),
        "market": market.segments[[*keys, *PARAMETERS]],
        "edges": market.edges,
    }
    manifest = Manifest(
        run_id=AS_OF.isoformat(),
        as_of=AS_OF,
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        status=RunStatus.OK,
        degraded=(),
        data_dir=f"random_market({segments}, {COMPONENTS}, seed=3)",
        config_source=None,
        config=RunConfig().model_dump(mode="json"),
        inputs={},
        rows_after_as_of={},
        weeks=Weeks(first=AS_OF, count=1),
        counts=Counts(segments=segments, estimated=segments, flagged=0, failed=0),
        statuses=Statuses(
            equilibrium={k: int(v) for k, v in pd.Series(solved.status).value_counts().items()},
            components=Components(total=len(solved.components), failed=0, max_residual=0.0),
            guidance=GuidanceCounts(market_state={}, failed_draws=0, capped=0),
            interventions=PlanStatus.NOT_CONFIGURED,
        ),
        plan=None,
        previous_run=None,
        tables={name: len(frame) for name, frame in tables.items()},
        versions={},
        machine={},
        timings_s={},
        peak_memory_mb=0.0,
    )
    RunStore(store).write_run(AS_OF, tables, manifest)
    return store


def scenarios(run: Run) -> dict[str, dict[str, Any]]:
    """Scenario kinds, from touching one segment to every segment."""
    categories = sorted(run.market.segments["category"].unique())
    first, second = categories[0], categories[1]
    solved = run.baseline.to_frame()
    one = solved[(solved["category"] == first) & (solved["status"] == "solved")].iloc[0]
    # the inverse fee's target: the rate that segment lists at with a 5 % freelancer fee
    # (reachable by construction)
    probe = {"category": first, "tier": str(one["tier"]), "freelancer_fee": 0.05}
    at_fee = run.whatif(parse_scenario({"fees": [probe]}, "bench", "probe")).to_frame()
    chosen = (at_fee["category"] == first) & (at_fee["tier"] == one["tier"])
    target = float(at_fee[chosen]["rate_scenario"].iloc[0])
    inverse = {"side": "freelancer", "category": first, "tier": str(one["tier"]), "rate": target}
    return {
        "demand x1.1, every segment": {"demand": [{"multiplier": 1.1}]},
        "demand x1.2, one category": {"demand": [{"category": first, "multiplier": 1.2}]},
        "freelancer fee 8 %, every segment": {"fees": [{"freelancer_fee": 0.08}]},
        "elasticity, one category": {
            "elasticity": [{"side": "demand", "category": first, "value": -1.5}]
        },
        "open an edge, every tier": {
            "adjacency": [{"from_category": second, "to_category": first, "friction": 1.0}]
        },
        "rate floor, one category": {
            "bounds": [{"category": first, "floor": float(one["rate"]) * 1.1}]
        },
        "inverse fee, one segment": {"solve_for": {"fee": inverse}},
    }


def answer(run: Run, chosen: Scenario) -> WhatIf:
    """A what-if as an analyst gets it: solved, compared per segment and in total."""
    result = run.whatif(chosen)
    result.to_frame()
    _ = result.totals
    return result


def stored_cases(segments: int) -> Iterator[Case]:
    """Every scenario kind against the stored run of ``segments`` segments; answers are
    committed to a scratch store, never to the cached one."""
    run = load_run("latest", stored_run(segments))
    with tempfile.TemporaryDirectory() as scratch:
        copy = Run(run.path, run.manifest, RunStore(Path(scratch) / "store"))

        def commit(result: WhatIf) -> dict[str, float]:
            start = time.perf_counter()
            save_whatif(copy, result)
            return {"store": time.perf_counter() - start}

        for name, raw in scenarios(run).items():
            chosen = parse_scenario({"name": "bench", **raw}, "bench", "bench")
            yield _stored_case({"segments": segments, "scenario": name}, run, chosen, commit)


def _stored_case(
    params: dict[str, Any],
    run: Run,
    chosen: Scenario,
    commit: Callable[[WhatIf], dict[str, float]],
) -> Case:
    market = apply_scenario(run.market, chosen)
    return Case(
        "whatif.stored",
        params,
        lambda: answer(run, chosen),
        "cold solve",
        lambda: solve(market),
        details=commit,
    )
