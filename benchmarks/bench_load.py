"""Benchmark: load + validate + aggregate simulated markets of 1M and 10M job rows.

For each size the script simulates a market once (cached under benchmarks/.data/), then
times, over several repetitions:

- ``check``: :func:`pricing.check_inputs` — read every table into DuckDB and run every
  contract check (the whole of ``pricing validate``);
- ``panel``: :func:`pricing.build_panel` on the checked inputs;
- ``floor``: the baseline, one DuckDB pass that reads every column of jobs and supply and
  aggregates them per segment-week — the least any loader+aggregator must do;
- ``pandas``: a second reference, ``pandas.read_parquet`` + ``groupby`` of jobs and supply
  (what a naive implementation would do), at 1M rows only unless ``--pandas-all``.

It reports medians, the spread (min–max) and ratios to the floor measured in the same run,
and appends a record (machine, CPU count, versions, git commit, date) to
``benchmarks/results/load.json``; ``--markdown`` prints the table for RESULTS.md.

    .venv/bin/python benchmarks/bench_load.py --rows 1e6 1e7 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

import pricing
from pricing.market.simulate import SimulationSpec, simulate_market

HERE = Path(__file__).resolve().parent
DATA = HERE / ".data"
WEEKS = 104
JOBS_PER_WEEK = 40.0


def market_dir(rows: int, fmt: str) -> Path:
    """A simulated market of about ``rows`` job rows, written once and re-used."""
    target = DATA / f"market_{rows:.0e}_{fmt}".replace("+", "")
    if target.exists():
        return target
    # thin segments post far fewer jobs; 0.87 is the simulator's mean volume per segment
    segments = max(3, round(rows / (WEEKS * JOBS_PER_WEEK * 0.87)))
    spec = SimulationSpec(segments=segments, weeks=WEEKS, seed=7, jobs_per_week=JOBS_PER_WEEK)
    start = time.perf_counter()
    market = simulate_market(spec)
    market.write(target)
    if fmt == "csv":
        con = duckdb.connect()
        for name in ("jobs", "supply", "shifters", "adjacency", "interventions"):
            parquet = target / f"{name}.parquet"
            con.execute(f"COPY (SELECT * FROM read_parquet('{parquet}')) TO '{target / name}.csv'")
            parquet.unlink()
    print(
        f"simulated {market.jobs.num_rows:,} job rows ({segments:,} segments) "
        f"in {time.perf_counter() - start:.1f} s -> {target}"
    )
    return target


def timed(fn: Callable[[], Any], repeat: int) -> tuple[list[float], Any]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return times, result


def floor(directory: Path, fmt: str) -> int:
    con = duckdb.connect()
    read = "read_parquet" if fmt == "parquet" else "read_csv"
    rows = con.execute(
        f"""
        SELECT count(*) FROM (
            SELECT category, tier, date_trunc('week', posted_at), count(DISTINCT job_id),
                   sum(hours), sum(hours * ln(hired_rate)) FILTER (WHERE hired),
                   sum(hours * ln(budget_rate)), any_value(region)
            FROM {read}('{directory}/jobs.{fmt}') GROUP BY ALL)
        UNION ALL
        SELECT count(*) FROM (
            SELECT category, tier, week, count(DISTINCT freelancer_id),
                   sum(available_hours), sum(available_hours * ln(ask_rate)), any_value(region)
            FROM {read}('{directory}/supply.{fmt}') GROUP BY ALL)
        """
    ).fetchall()
    return int(rows[0][0])


def pandas_reference(directory: Path) -> int:
    jobs = pd.read_parquet(directory / "jobs.parquet")
    supply = pd.read_parquet(directory / "supply.parquet")
    jobs["week"] = pd.to_datetime(jobs["posted_at"]).dt.to_period("W-SUN").dt.start_time
    demand = jobs.groupby(["category", "tier", "week"]).agg(
        jobs=("job_id", "nunique"), hours=("hours", "sum")
    )
    offered = supply.groupby(["category", "tier", "week"]).agg(
        freelancers=("freelancer_id", "nunique"), hours=("available_hours", "sum")
    )
    return len(demand) + len(offered)


def machine() -> dict[str, Any]:
    """The suite's machine record (pricing.bench.harness.machine), with the versions these
    scripts' tables print at the top level."""
    from pricing.bench.harness import machine as suite_machine

    m = suite_machine(HERE.parent)
    return {**m, **{k: m["versions"][k] for k in ("duckdb", "pandas", "pricing")}}


def run(rows_list: list[int], fmts: list[str], repeat: int, pandas_all: bool) -> dict[str, Any]:
    records = []
    for rows in rows_list:
        for fmt in fmts:
            directory = market_dir(rows, fmt)
            config = pricing.load_config(directory / "pricing.toml")
            check_times, report = timed(
                lambda d=directory, c=config: pricing.check_inputs(d, c), repeat
            )
            assert report.ok, report.summary()
            inputs = report.checked()
            panel_times, panel = timed(lambda i=inputs: pricing.build_panel(i), repeat)
            floor_times, _ = timed(lambda d=directory, f=fmt: floor(d, f), repeat)
            job_rows = next(t.rows for t in report.tables if t.name == "jobs")
            supply_rows = next(t.rows for t in report.tables if t.name == "supply")
            pandas_times: list[float] = []
            if fmt == "parquet" and (pandas_all or rows <= 1_000_000):
                pandas_times, _ = timed(lambda d=directory: pandas_reference(d), repeat)
            floor_median = statistics.median(floor_times)
            total = [c + p for c, p in zip(check_times, panel_times, strict=True)]
            record = {
                "format": fmt,
                "job_rows": job_rows,
                "supply_rows": supply_rows,
                "segments": panel.n_segments,
                "segment_weeks": len(panel.frame),
                "repeat": repeat,
            }
            for name, times in (
                ("check", check_times),
                ("panel", panel_times),
                ("total", total),
                ("floor", floor_times),
                ("pandas", pandas_times),
            ):
                if not times:
                    continue
                record[f"{name}_median_s"] = round(statistics.median(times), 3)
                record[f"{name}_min_s"] = round(min(times), 3)
                record[f"{name}_max_s"] = round(max(times), 3)
                record[f"{name}_ratio_to_floor"] = round(statistics.median(times) / floor_median, 2)
            records.append(record)
            print(json.dumps(record))
    return {"machine": machine(), "records": records}


def append_record(path: Path, record: dict[str, Any]) -> None:
    """Append one run's record to the JSON history at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    history = json.loads(path.read_text()) if path.exists() else []
    history.append(record)
    path.write_text(json.dumps(history, indent=2) + "\n")


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        f"Machine: {m['cpu']} ({m['cpu_count']} CPUs), Python {m['python']}, DuckDB {m['duckdb']}, "
        f"pandas {m['pandas']}; {m['date']}, commit {m['commit']}",
        "",
        "| format | job rows | supply rows | segments | check (load+validate) s | panel s "
        "| total s "
        "| floor s | total / floor | pandas s | pandas / floor |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["records"]:
        pandas_cells = (
            f"{r['pandas_median_s']:.2f} | {r['pandas_ratio_to_floor']:.1f}"
            if "pandas_median_s" in r
            else "– | –"
        )
        lines.append(
            f"| {r['format']} | {r['job_rows']:,} | {r['supply_rows']:,} | {r['segments']:,} "
            f"| {r['check_median_s']:.2f} ({r['check_min_s']:.2f}–{r['check_max_s']:.2f}) "
            f"| {r['panel_median_s']:.2f} | {r['total_median_s']:.2f} | {r['floor_median_s']:.2f} "
            f"| {r['total_ratio_to_floor']:.1f} | {pandas_cells} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", nargs="+", type=float, default=[1e6, 1e7])
    parser.add_argument(
        "--format", nargs="+", dest="fmts", default=["parquet"], choices=["parquet", "csv"]
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--pandas-all", action="store_true", help="Run the pandas reference at every size."
    )
    parser.add_argument(
        "--markdown", action="store_true", help="Print a Markdown table at the end."
    )
    parser.add_argument("--out", type=Path, default=HERE / "results" / "load.json")
    args = parser.parse_args()
    result = run([int(r) for r in args.rows], args.fmts, args.repeat, args.pandas_all)
    append_record(args.out, result)
    if args.markdown:
        print(markdown(result))


if __name__ == "__main__":
    main()
