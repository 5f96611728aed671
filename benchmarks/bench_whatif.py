"""Benchmark: what-if scenarios on a stored 10,000-segment run.

A stored run whose market is ``random_market(10_000, (2, 50))`` (10,000 segments in
coupled components of 2–50, as in bench_equilibrium.py) is written once under
benchmarks/.data/. (The simulator's own 10,000-segment market joins every category of a
tier into one component of 3,334 segments, beyond what the equilibrium engine clears
today: see benchmarks/README.md.) Then, in one process:

- ``load``: :func:`pricing.load_run` and its market (read the stored Parquet tables);
- ``baseline``: the baseline equilibrium, solved once per load (what-ifs start from it);
- per scenario, medians over the repetitions of
  - ``whatif``: :meth:`Run.whatif` (apply the scenario, warm-started solve that reuses
    untouched components) plus the per-segment comparison and the totals;
  - ``cold``: **the baseline measured in the same run**, the scenario's market solved
    from scratch (no warm start, no reuse): what a what-if costs without the baseline;
  - ``store``: committing the result to the store.

Intervention budgets are left out: planning at 10^4 segments is its own benchmark
(bench_interventions.py). Results are appended to ``results/whatif.json``.

    .venv/bin/python benchmarks/bench_whatif.py --segments 10000 --repeat 5 --markdown
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from pricing.config import RunConfig, parse_scenario
from pricing.decisions.scenario import apply_scenario
from pricing.market.equilibrium import equilibrium_table, solve
from pricing.market.market import PARAMETERS
from pricing.market.synthetic import random_market
from pricing.runs.run import Run, load_run, save_whatif
from pricing.statuses import PlanStatus, RunStatus
from pricing.store.manifest import (
    Components,
    Counts,
    GuidanceCounts,
    Manifest,
    Statuses,
    Weeks,
)
from pricing.store.store import RunStore

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_load import append_record, machine, timed  # noqa: E402  (a script folder)

AS_OF = dt.date(2025, 12, 28)
COMPONENTS = (2, 50)  # segments per coupled component, as in bench_equilibrium.py


def stored_run(segments: int) -> Path:
    """A store holding one run whose market is ``random_market(segments, (2, 50))``.

    The run's market is written as the nightly run writes it (``market``, ``edges``,
    ``equilibrium`` and a manifest with the default settings); what-ifs read nothing else.
    """
    store = HERE / ".data" / f"whatif_{segments}" / "store"
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
    """Scenario kinds, from touching one category to every segment."""
    segments = run.market.segments
    categories = sorted(segments["category"].unique())
    first, second = categories[0], categories[1]
    solved = run.baseline.to_frame()
    one = solved[(solved["category"] == first) & (solved["status"] == "solved")].iloc[0]
    # the inverse fee's target: the rate that segment lists at with a 5 % freelancer fee
    # (reachable by construction)
    probe = {"category": first, "tier": str(one["tier"]), "freelancer_fee": 0.05}
    at_fee = run.whatif(parse_scenario({"fees": [probe]}, "bench", "probe")).to_frame()
    target = float(
        at_fee[(at_fee["category"] == first) & (at_fee["tier"] == one["tier"])][
            "rate_scenario"
        ].iloc[0]
    )
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
        "inverse fee, one segment": {
            "solve_for": {
                "fee": {
                    "side": "freelancer",
                    "category": first,
                    "tier": str(one["tier"]),
                    "rate": target,
                }
            }
        },
    }


def answer(run: Run, scenario: Any) -> Any:
    """A what-if as an analyst gets it: solved, compared per segment and in total."""
    result = run.whatif(scenario)
    result.to_frame()
    _ = result.totals
    return result


def run(segments: int, repeat: int) -> dict[str, Any]:
    store = stored_run(segments)
    load_times, baseline_times = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        run_ = load_run("latest", store)
        _ = run_.market
        loaded = time.perf_counter()
        _ = run_.baseline
        load_times.append(loaded - start)
        baseline_times.append(time.perf_counter() - loaded)
    records = []
    with tempfile.TemporaryDirectory() as scratch:
        # results are saved to a scratch copy of nothing but the run's folder: the
        # benchmark never writes to its cached store
        target = RunStore(Path(scratch) / "store")
        for name, raw in scenarios(run_).items():
            scenario = parse_scenario({"name": "bench", **raw}, "bench", "bench")
            whatif_times, result = timed(lambda s=scenario: answer(run_, s), repeat)
            market = apply_scenario(run_.market, scenario)
            cold_times, _ = timed(lambda m=market: solve(m), repeat)
            copy = Run(run_.path, run_.manifest, target)
            store_times, _ = timed(lambda r=result, c=copy: save_whatif(c, r), repeat)
            frame = result.to_frame()
            whatif_median = statistics.median(whatif_times)
            record = {
                "scenario": name,
                "segments": len(frame),
                "changed": int(frame["changed"].sum()),
                "status": result.status,
                "whatif_median_s": round(whatif_median, 4),
                "whatif_min_s": round(min(whatif_times), 4),
                "whatif_max_s": round(max(whatif_times), 4),
                "cold_median_s": round(statistics.median(cold_times), 4),
                "cold_ratio": round(statistics.median(cold_times) / whatif_median, 2),
                "store_median_s": round(statistics.median(store_times), 4),
                "inverse": None if result.inverse is None else result.inverse.method,
            }
            records.append(record)
            print(json.dumps(record))
    return {
        "machine": machine(),
        "segments": segments,
        "repeat": repeat,
        "load_median_s": round(statistics.median(load_times), 3),
        "baseline_median_s": round(statistics.median(baseline_times), 3),
        "records": records,
    }


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        f"Machine: {m['cpu']} ({m['cpu_count']} CPUs), Python {m['python']}; {m['date']}, "
        f"commit {m['commit']}. {result['segments']:,}-segment run: load "
        f"{result['load_median_s']:.2f} s, baseline solve {result['baseline_median_s']:.2f} s "
        f"(medians of {result['repeat']}).",
        "",
        "| scenario | segments changed | what-if s (min–max) | cold solve s | cold / what-if "
        "| store s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in result["records"]:
        lines.append(
            f"| {r['scenario']} | {r['changed']:,} of {r['segments']:,} "
            f"| {r['whatif_median_s']:.3f} ({r['whatif_min_s']:.3f}–{r['whatif_max_s']:.3f}) "
            f"| {r['cold_median_s']:.3f} | {r['cold_ratio']:.1f}× | {r['store_median_s']:.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--segments", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--markdown", action="store_true", help="Print a Markdown table.")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "whatif.json")
    args = parser.parse_args()
    result = run(args.segments, args.repeat)
    append_record(args.out, result)
    if args.markdown:
        print(markdown(result))


if __name__ == "__main__":
    main()
