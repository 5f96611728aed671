r"""Benchmark: intervention planning (equilibrium re-solves + CP-SAT) on 1,000-segment
markets with 200-lever catalogues, and on the shipped sample.

Markets (seeded; setup, not timed):

- ``uncoupled``: :func:`pricing.random_market` (1,000 segments, no adjacency), fees 5 % /
  10 %, :func:`pricing.random_catalogue` of 200 levers (reskills open new edges);
- ``tiers``: 100 categories × 10 tiers with random curves and 50 category adjacency
  edges (each joins the same tier of two categories), the same kind of catalogue — the
  shape of a real marketplace, where levers act on every tier of a category and groups
  hold up to ~90 segments;
- ``sample``: ``data/sample`` estimated as ``pricing plan`` does, its own catalogue and
  budget.

The budget is a tenth of the catalogue's full cost. For each market it times, in the same
run:

- ``plan``: :func:`pricing.plan_interventions`, split into ``valuation`` (the batched
  re-solves of every round), ``cp_build`` / ``cp_solve`` (building and solving the CP-SAT
  programs of the rounds) and ``sensitivity`` (the marginal value and binding checks);
- ``solve`` (**the baseline**): one :func:`pricing.solve` of the whole market — the plan
  costs that many full solves;
- ``naive``: valuing round 1's options one full-market ``solve`` each (a loop), timed on
  ``--naive-options`` options and scaled to the round's option count; ``naive / round 1
  valuation`` is what batching the copies buys.

Medians (min–max) of ``--repeat`` runs; a record (machine, versions, commit, date) is
appended to ``benchmarks/results/interventions.json``; ``--markdown`` prints the table.

    .venv/bin/python benchmarks/bench_interventions.py --repeat 3 --markdown
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pricing.config import InterventionsConfig, resolve_config
from pricing.decisions.interventions import plan_interventions
from pricing.decisions.levers import Levers, segment_values
from pricing.decisions.valuation import Valuer
from pricing.market.equilibrium import solve
from pricing.market.market import Market, segment_edges
from pricing.market.synthetic import random_catalogue, random_market

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from bench_load import append_record, machine, timed  # noqa: E402  (a script folder)


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


def sample_case() -> tuple[Market, pd.DataFrame, InterventionsConfig]:
    from pricing.estimation.curves import fit_curves
    from pricing.inputs.panel import build_panel
    from pricing.inputs.validation import check_inputs

    data = ROOT / "data" / "sample"
    config, _ = resolve_config(data, None)
    checked = check_inputs(data, config).checked()
    curves = fit_curves(build_panel(checked), config.estimation)
    market = Market.from_curves(curves, checked.table("adjacency"), config.market)
    return market, checked.table("interventions"), config.interventions


def cases(options: int) -> dict[str, tuple[Market, pd.DataFrame, InterventionsConfig]]:
    out = {}
    uncoupled = random_market(1000, seed=3)
    uncoupled = Market(
        uncoupled.segments.assign(client_fee=0.05, freelancer_fee=0.10), uncoupled.edges
    )
    for name, market in (("uncoupled", uncoupled), ("tiers", tiered_market(100, 10, 50, 0))):
        catalogue = random_catalogue(market, options, seed=1)
        full = float((catalogue["cost_per_unit"] * catalogue["max_units"]).sum())
        out[name] = (market, catalogue, InterventionsConfig(budget=round(0.1 * full)))
    out["sample"] = sample_case()
    return out


def round_one(levers: Levers, config: InterventionsConfig, baseline: Any, base_hours: Any) -> Any:
    """Round 1's valuation: the exact groups' tables and the separable model at no units."""
    valuer = Valuer(levers, config.objective, baseline, base_hours, config.enumerate_limit)
    return valuer.model(np.zeros(len(levers), np.int64), baseline)


def naive_round(market: Market, catalogue: pd.DataFrame, n_options: int) -> tuple[float, int]:
    """Seconds per option of a loop of full-market solves, and the round's option count."""
    levers = Levers.build(market, catalogue)
    units = catalogue["max_units"].to_numpy()
    options = np.flatnonzero(units > 0)[:n_options]
    t0 = time.perf_counter()
    for lever in options:
        u = np.zeros(len(levers))
        u[lever] = units[lever]
        solve(levers.apply(u))
    return (time.perf_counter() - t0) / max(options.size, 1), int(units.sum())


def run(repeat: int, options: int, naive_options: int) -> dict[str, Any]:
    rows = []
    for name, (market, catalogue, config) in cases(options).items():
        solve_times, baseline = timed(lambda m=market: solve(m), repeat)
        base_hours = segment_values(baseline, "hours", np.ones(len(market)))
        levers = Levers.build(market, catalogue)
        round_times, _ = timed(partial(round_one, levers, config, baseline, base_hours), repeat)
        plan_times, plans = [], []
        for _ in range(repeat):
            t0 = time.perf_counter()
            plans.append(plan_interventions(market, catalogue, config, baseline))
            plan_times.append(time.perf_counter() - t0)
        per_option, n_round = naive_round(market, catalogue, naive_options)
        last = plans[-1]
        rows.append(
            {
                "case": name,
                "segments": len(market),
                "levers": len(catalogue),
                "groups": int(levers.group.max()) + 1,
                "largest_group": int(np.bincount(levers.group).max()),
                "plan_s": plan_times,
                **{
                    f"{k}_s": statistics.median(p.timings.get(k, 0.0) for p in plans)
                    for k in ("valuation", "cp_build", "cp_solve", "sensitivity")
                },
                "rounds": len(last.rounds),
                "copies": int(last.rounds["copies_solved"].iloc[-1]) if len(last.rounds) else 0,
                "status": last.status,
                "verified_gain": last.verified_gain,
                "predicted_gain": last.predicted_gain,
                "solve_s": solve_times,
                "round1_valuation_s": round_times,
                "naive_round1_s": per_option * n_round,
            }
        )
    return {"benchmark": "interventions", "machine": machine(), "cases": rows}


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "| case | segments | levers | groups (largest) | plan | valuation | CP-SAT build + solve "
        "| sensitivity | rounds | copies | plan / one solve | naive / batched round 1 |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in result["cases"]:
        plan, one = statistics.median(c["plan_s"]), statistics.median(c["solve_s"])
        round1 = statistics.median(c["round1_valuation_s"])
        lines.append(
            f"| {c['case']} | {c['segments']:,} | {c['levers']} | {c['groups']} "
            f"({c['largest_group']}) | {plan:.2f} s ({min(c['plan_s']):.2f}–"
            f"{max(c['plan_s']):.2f}) | {c['valuation_s']:.2f} s | {c['cp_build_s']:.2f} + "
            f"{c['cp_solve_s']:.2f} s | {c['sensitivity_s']:.2f} s | {c['rounds']} | "
            f"{c['copies']:,} | {plan / one:,.0f}× | {c['naive_round1_s'] / round1:.1f}× |"
        )
    m = result["machine"]
    lines.append(f"\n{m.get('cpu', '')}, {m.get('cpu_count', '')} CPUs, {m.get('date', '')}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--options", type=int, default=200, help="levers per catalogue")
    parser.add_argument("--naive-options", type=int, default=30)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    result = run(args.repeat, args.options, args.naive_options)
    append_record(HERE / "results" / "interventions.json", result)
    print(markdown(result) if args.markdown else result)


if __name__ == "__main__":
    main()
