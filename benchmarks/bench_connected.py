r"""Benchmark: connected markets (issue 18), whose one component of 10^4–10^5 segments
the interior point solves on sparse linear algebra.

Markets come from :func:`pricing.market.synthetic.connected_market` (seeded setup, not
timed): one component, a random spanning tree plus about one extra edge per segment,
fees, frictions up to 15 % of the rate. Each case runs through the suite's harness
(:func:`pricing.bench.harness.measure`): a warm-up, then the case and its baseline timed
interleaved, medians and min–max, ``ratio = median / baseline median``. The solve's
own timings (closed form, interior point) are reported per case, with the largest
verification residual and the interior point's iterations; there is no compile phase
(the problem's structure — pairs, classes, the sparse pattern — is built inside the
interior point's time).

- ``connected.cut``: ``solve`` of 10^4 connected segments; baseline: the same segments
  cut into components of 10 (``component_size=10``), what the engine already did well;
  target ≤ 5×.
- ``connected.large``: ``solve`` of 10^5 connected segments; baseline: the closed-form
  kernel on the same segments (the floor of any clearing method); target under 3 s.
- ``connected.small``: ``solve`` of 10^5 segments in components of 2–50
  (bench_equilibrium's coupled market); baseline: the closed-form kernel; target ≤ 150×.
- ``connected.whatif``: ``solve(shifted, baseline=base)`` after demand +10 % in one
  category of the connected 10^5 market, warm-started; baseline: a cold solve of the
  same shifted market; target under 0.5 s.

Every solve is checked (``ok`` and max residual ≤ 1e-6) before it is timed. Records go
to ``results/connected.json``; ``--markdown`` prints the table for RESULTS.md.

    .venv/bin/python benchmarks/bench_connected.py --repeat 3 --markdown
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from dataclasses import asdict
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from pricing.bench.harness import Case, measure
from pricing.market.equilibrium import VERIFY_TOL, EquilibriumResult, solve
from pricing.market.market import Market
from pricing.market.synthetic import connected_market, random_market

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_equilibrium import closed_form_kernel, kernel_inputs  # noqa: E402  (script folder)
from bench_load import append_record, machine  # noqa: E402

SEED = 11
CUT = 10  # segments per component of the cut baseline


@cache
def market(n: int, component_size: int | None = None) -> Market:
    return connected_market(n, seed=SEED, component_size=component_size)


def checked(result: EquilibriumResult) -> EquilibriumResult:
    """A solve that is not verified to 1e-6 is no benchmark of a solver."""
    worst = float(result.residual.max())
    if not result.ok or worst > VERIFY_TOL:
        raise RuntimeError(f"unverified solve (max residual {worst:.1e}): {result.summary(0)}")
    return result


def details(result: EquilibriumResult) -> dict[str, float]:
    out = {k: v for k, v in result.timings.items() if not k.endswith("segments")}
    out["max_residual"] = float(result.residual.max())
    out["iterations"] = float(result.iterations.max())
    return out


def shifted(base: Market) -> Market:
    """Demand +10 % in one category (the first)."""
    segments = base.segments.copy()
    segments.loc[segments["category"] == segments["category"].iloc[0], "log_demand_level"] += (
        np.log(1.1)
    )
    return Market(segments, base.edges, base.segment_keys)


def cases(quick: bool) -> Iterator[Case]:
    """The stage's cases (``quick``: the cut case at 10^3 only, for CI's smoke test)."""
    n_cut = 1_000 if quick else 10_000
    whole, cut = market(n_cut), market(n_cut, CUT)
    checked(solve(whole))
    checked(solve(cut))
    yield Case(
        "connected.cut",
        {"segments": n_cut, "cut_into": CUT},
        lambda: solve(whole),
        f"the same segments in components of {CUT}",
        lambda: solve(cut),
        details=details,
        baseline_details=details,
    )
    if quick:
        return
    large = market(100_000)
    base = checked(solve(large))
    inputs = kernel_inputs(large)
    yield Case(
        "connected.large",
        {"segments": 100_000},
        lambda: solve(large),
        "closed form",
        lambda: closed_form_kernel(inputs),
        repeat=1,
        details=details,
    )
    small = random_market(100_000, (2, 50), seed=5)
    small_inputs = kernel_inputs(small)
    checked(solve(small))
    yield Case(
        "connected.small",
        {"segments": 100_000, "components": "2-50"},
        lambda: solve(small),
        "closed form",
        lambda: closed_form_kernel(small_inputs),
        details=details,
    )
    what_if = shifted(large)
    checked(solve(what_if, baseline=base))
    yield Case(
        "connected.whatif",
        {"segments": 100_000, "categories_changed": 1},
        lambda: solve(what_if, baseline=base),
        "cold solve",
        lambda: solve(what_if),
        repeat=1,
        warmup=False,
        details=details,
        baseline_details=details,
    )


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        f"Machine: {m['cpu']} ({m['cpu_count']} CPUs), Python {m['python']}; {m['date']}, "
        f"commit {m['commit']}",
        "",
        "| case | parameters | median s (min–max) | baseline | baseline median s | ratio "
        "| max residual | iterations |",
        "|---|---|---:|---|---:|---:|---:|---:|",
    ]
    for r in result["records"]:
        params = ", ".join(
            f"{k}={v:,}" if isinstance(v, int) else f"{k}={v}" for k, v in r["params"].items()
        )
        lo, hi = r["spread_s"]
        d = r["details"]
        lines.append(
            f"| {r['name']} | {params} | {r['median_s']:.3g} ({lo:.3g}–{hi:.3g}) | {r['baseline']} "
            f"| {r['baseline_median_s']:.3g} | {r['ratio_to_baseline']:.3g}× "
            f"| {d.get('max_residual', float('nan')):.1e} | {d.get('iterations', 0):.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="The cut case at 1,000 segments.")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--markdown", action="store_true", help="Print a Markdown table.")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "connected.json")
    args = parser.parse_args()
    records = []
    for case in cases(args.quick):
        record = asdict(measure(case, args.repeat))
        print(json.dumps(record, default=str), flush=True)
        records.append(record)
    result = {"machine": machine(), "repeat": args.repeat, "records": records}
    append_record(args.out, result)
    if args.markdown:
        print(markdown(result))


if __name__ == "__main__":
    main()
