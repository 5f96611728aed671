r"""Benchmark: rate guidance (bands from curve draws) on uncoupled and coupled markets.

Markets come from :func:`pricing.synthetic.random_market` (seeded; setup, not timed),
every elasticity with a standard error of 0.1 on both sides. For each market it times,
in the same run:

- ``point``: :func:`pricing.solve` of the market once — the equilibrium the guidance
  starts from;
- ``guidance``: :func:`pricing.guidance.rate_guidance` with ``--draws`` draws: every
  drawn market cleared (copies stacked, one ``solve`` per chunk of about 250,000
  segments), quantiles, labels and the result table;
- ``loop`` (**the baseline**): ``draws × point``, what clearing the drawn markets one
  ``solve`` call at a time would cost at least (building each drawn market not counted).

It reports medians (min–max) of ``--repeat`` runs, µs per segment-draw and the ratio
``loop / guidance``. A record (machine, versions, git commit, date) is appended to
``benchmarks/results/guidance.json``; ``--markdown`` prints the table.

    .venv/bin/python benchmarks/bench_guidance.py --repeat 3 --markdown
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from pricing.config import GuidanceConfig
from pricing.curves import CurveSet
from pricing.equilibrium import solve
from pricing.guidance import rate_guidance
from pricing.market import Market
from pricing.synthetic import random_market

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


def stats(times: list[float]) -> dict[str, float]:
    return {
        "median_s": round(statistics.median(times), 4),
        "min_s": round(min(times), 4),
        "max_s": round(max(times), 4),
    }


def run(draws: int, repeat: int) -> dict[str, Any]:
    records = []
    config = GuidanceConfig(draws=draws)
    for kind, (n, sizes) in CASES.items():
        market = random_market(n, sizes, seed=SEED)
        curves = curves_of(market, STD_ERROR)
        point_times, eq = timed(lambda m=market: solve(m), max(repeat, 5))
        rate_guidance(eq, curves, config)  # warm-up: imports, first-touch allocations
        times, result = timed(lambda e=eq, c=curves: rate_guidance(e, c, config), repeat)
        point, guided = stats(point_times), stats(times)
        records.append(
            {
                "kind": kind,
                "segments": len(market),
                "edges": len(market.edges),
                "draws": draws,
                "point": point,
                "guidance": guided,
                "loop_s": round(draws * point["median_s"], 3),
                "loop_over_guidance": round(draws * point["median_s"] / guided["median_s"], 1),
                "us_per_segment_draw": round(1e6 * guided["median_s"] / (len(market) * draws), 2),
                "failed_draws": result.failed_draws,
            }
        )
    return {"machine": machine() | {"dirty": dirty()}, "records": records}


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        f"Machine: {m['cpu']} ({m['cpu_count']} CPUs); {m['date']}, commit {m['commit']}",
        "",
        "| market | segments | draws | `solve` once | `rate_guidance` | µs per segment-draw "
        "| loop of `solve` / guidance |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["records"]:
        g = r["guidance"]
        lines.append(
            f"| {r['kind']} | {r['segments']:,} | {r['draws']} | {r['point']['median_s']:.3f} s "
            f"| {g['median_s']:.2f} s ({g['min_s']:.2f}–{g['max_s']:.2f}) "
            f"| {r['us_per_segment_draw']} | {r['loop_over_guidance']}× |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--markdown", action="store_true", help="Print a Markdown table.")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "guidance.json")
    args = parser.parse_args()
    result = run(args.draws, args.repeat)
    append_record(args.out, result)
    if args.markdown:
        print(markdown(result))


if __name__ == "__main__":
    main()
