r"""Benchmark: rate guidance (bands from curve draws) on uncoupled and coupled markets.

Markets come from :func:`pricing.market.synthetic.random_market` (seeded; setup, not timed),
every elasticity with a standard error of 0.1 on both sides. For each market it times,
in the same run:

- ``point``: :func:`pricing.solve` of the market once — the equilibrium the guidance
  starts from;
- ``guidance``: :func:`pricing.decisions.guidance.rate_guidance` with ``--draws`` draws: every
  drawn market cleared (copies stacked, one ``solve`` per chunk of about 250,000
  segments), quantiles, labels and the result table;
- ``loop`` (**the baseline**): the naive approach — per draw, the drawn curves rotated
  around the observed rate, a new :class:`Market` and one ``solve`` call; timed on
  ``--loop-draws`` draws and scaled to ``--draws`` (its cost per draw does not depend on
  the number of draws).

It reports medians (min–max) of ``--repeat`` runs, µs per segment-draw and the ratio
``loop / guidance`` (the loop computes no bands: it only clears the markets). A record
(machine, versions, git commit, date) is appended to ``benchmarks/results/guidance.json``;
``--markdown`` prints the table.

    .venv/bin/python benchmarks/bench_guidance.py --repeat 3 --markdown
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pricing.config import GuidanceConfig
from pricing.decisions.guidance import rate_guidance
from pricing.estimation.curves import CurveSet
from pricing.market.equilibrium import solve
from pricing.market.market import Market
from pricing.market.synthetic import random_market

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_estimate import dirty  # noqa: E402  (a script folder, not a package)
from bench_load import append_record, machine, timed  # noqa: E402

SEED = 5
STD_ERROR = 0.1
CASES = {"uncoupled": (10_000, (1, 1)), "coupled": (1_000, (2, 20))}


def curves_of(market: Market, std_error: float) -> CurveSet:
    """Curves with the same standard error on every side of every segment."""
    keys = list(market.segment_keys)
    sides = [
        market.segments[keys].assign(side=side, std_error=std_error, flags="")
        for side in ("demand", "supply")
    ]
    return CurveSet(pd.concat(sides, ignore_index=True), tuple(keys), 0.9)


def loop_seconds(market: Market, draws: int, timed_draws: int) -> float:
    """One drawn market built and cleared per draw (ε, η ~ N(fitted, 0.1²), rotated
    around the observed rate), timed on ``timed_draws`` draws and scaled to ``draws``."""
    rng = np.random.default_rng(SEED)
    seg = market.segments
    log_o = np.log(seg["observed_rate"])
    start = time.perf_counter()
    for _ in range(timed_draws):
        eps = np.minimum(
            seg["demand_elasticity"] + STD_ERROR * rng.standard_normal(len(seg)), -1e-3
        )
        eta = np.maximum(seg["supply_elasticity"] + STD_ERROR * rng.standard_normal(len(seg)), 1e-3)
        drawn = seg.assign(
            demand_elasticity=eps,
            log_demand_level=seg["log_demand_level"] + (seg["demand_elasticity"] - eps) * log_o,
            supply_elasticity=eta,
            log_supply_level=seg["log_supply_level"] + (seg["supply_elasticity"] - eta) * log_o,
        )
        solve(Market(drawn, market.edges, market.segment_keys))
    return (time.perf_counter() - start) * draws / timed_draws


def stats(times: list[float]) -> dict[str, float]:
    return {
        "median_s": round(statistics.median(times), 4),
        "min_s": round(min(times), 4),
        "max_s": round(max(times), 4),
    }


def run(draws: int, repeat: int, loop_draws: int) -> dict[str, Any]:
    records = []
    config = GuidanceConfig(draws=draws)
    for kind, (n, sizes) in CASES.items():
        market = random_market(n, sizes, seed=SEED)  # no fees: the rotation is around log o
        curves = curves_of(market, STD_ERROR)
        point_times, eq = timed(lambda m=market: solve(m), max(repeat, 5))
        rate_guidance(eq, curves, config)  # warm-up: imports, first-touch allocations
        times, result = timed(lambda e=eq, c=curves: rate_guidance(e, c, config), repeat)
        loop = loop_seconds(market, draws, loop_draws)
        point, guided = stats(point_times), stats(times)
        records.append(
            {
                "kind": kind,
                "segments": len(market),
                "edges": len(market.edges),
                "draws": draws,
                "point": point,
                "guidance": guided,
                "loop_s": round(loop, 3),
                "loop_over_guidance": round(loop / guided["median_s"], 1),
                "us_per_segment_draw": round(1e6 * guided["median_s"] / (len(market) * draws), 2),
                "failed_draws": result.failed_draws,
            }
        )
    # the machines are shared: the load says how much the times are inflated
    load = round(os.getloadavg()[0], 1)
    return {"machine": machine() | {"dirty": dirty(), "load_average": load}, "records": records}


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        f"Machine: {m['cpu']} ({m['cpu_count']} CPUs, load {m['load_average']}); {m['date']}, "
        f"commit {m['commit']}",
        "",
        "| market | segments | draws | `solve` once | `rate_guidance` | µs per segment-draw "
        "| naive loop over draws | loop / guidance |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["records"]:
        g = r["guidance"]
        lines.append(
            f"| {r['kind']} | {r['segments']:,} | {r['draws']} | {r['point']['median_s']:.3f} s "
            f"| {g['median_s']:.2f} s ({g['min_s']:.2f}–{g['max_s']:.2f}) "
            f"| {r['us_per_segment_draw']} | {r['loop_s']:.1f} s | {r['loop_over_guidance']}× |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--loop-draws", type=int, default=20)
    parser.add_argument("--markdown", action="store_true", help="Print a Markdown table.")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "guidance.json")
    args = parser.parse_args()
    result = run(args.draws, args.repeat, args.loop_draws)
    append_record(args.out, result)
    if args.markdown:
        print(markdown(result))


if __name__ == "__main__":
    main()
