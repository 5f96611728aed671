"""Benchmark: the whole nightly run (`pricing run`) on a simulated market of ~1M job rows.

The market is simulated once (cached under benchmarks/.data/). Each repetition starts
`pricing run --json` as a fresh process, as the orchestrator would, into an empty store,
and records:

- ``wall``: the process's wall time, from start to exit (interpreter and imports included);
- every step's time as the run reports it (validate, aggregate, estimate, market,
  equilibrium, guidance, interventions, store);
- ``peak_mb``: the child process's peak resident memory (``RUSAGE_CHILDREN``);
- the same run without the intervention plan (budget 0), to separate planning.

The baseline, measured in the same run: ``floor``, one DuckDB pass that reads every
contract column of jobs and supply and groups them per segment-week (bench_load.py), the
least any run must do with the data. Results are appended to ``results/run.json``.

    .venv/bin/python benchmarks/bench_run.py --rows 1e6 --repeat 3 --markdown
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pricing.config import load_config
from pricing.market.simulate import SimulationSpec, simulate_market
from pricing.runs.pipeline import STEPS

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_load import append_record, floor, machine, timed  # noqa: E402  (a script folder)

WEEKS = 104
JOBS_PER_WEEK = 40.0


def market_dir(rows: int, files: int = 1) -> Path:
    """A simulated market of about ``rows`` job rows with its pricing.toml (fees, budget);
    with ``files`` > 1, jobs and supply are folders of that many files."""
    name = f"nightly_{rows:.0e}".replace("+", "") + (f"_files{files}" if files > 1 else "")
    target = HERE / ".data" / name
    if target.exists():
        return target
    # thin segments post far fewer jobs; 0.87 is the simulator's mean volume per segment
    segments = max(3, round(rows / (WEEKS * JOBS_PER_WEEK * 0.87)))
    spec = SimulationSpec(segments=segments, weeks=WEEKS, seed=7, jobs_per_week=JOBS_PER_WEEK)
    market = simulate_market(spec)
    market.write(target, files=files)
    print(f"simulated {market.jobs.num_rows:,} job rows ({segments:,} segments) -> {target}")
    return target


def no_plan_config(data: Path) -> Path:
    """``data``'s pricing.toml with an intervention budget of 0 (no plan), written
    beside it as pricing.no-plan.toml."""
    settings = load_config(data / "pricing.toml")
    settings = settings.model_copy(
        update={"interventions": settings.interventions.model_copy(update={"budget": 0.0})}
    )
    path = data / "pricing.no-plan.toml"
    path.write_text(settings.to_toml())
    return path


def one_run(data: Path, config: Path | None, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """`pricing run --json` (with ``extra`` options) in a fresh process; its wall time,
    steps and peak memory (the run's own ``peak_memory_mb``: its VmHWM before storing,
    which, unlike the child's ``ru_maxrss``, does not count this process's memory at the
    fork)."""
    with tempfile.TemporaryDirectory() as scratch:
        command = [
            sys.executable,
            "-c",
            "from pricing.cli import main; main()",
            "run",
        ]
        command += ["--data", str(data), "--store", f"{scratch}/store", "--json", "--quiet"]
        command += ["--no-report", *extra]
        if config is not None:
            command += ["--config", str(config)]
        out, err = Path(scratch) / "stdout", Path(scratch) / "stderr"
        with out.open("w") as stdout, err.open("w") as stderr:
            start = time.perf_counter()
            code = subprocess.run(command, stdout=stdout, stderr=stderr).returncode
            wall = time.perf_counter() - start
        if code not in (0, 4, 5):
            raise RuntimeError(f"pricing run failed ({code}): {err.read_text()}")
        payload = json.loads(out.read_text())
    return {
        "wall": wall,
        "steps": payload["timings_s"],
        "peak_mb": payload["peak_memory_mb"],
        "payload": payload,
    }


def run(rows_list: list[int], repeat: int) -> dict[str, Any]:
    records = []
    for rows in rows_list:
        data = market_dir(rows)
        bare = [one_run(data, no_plan_config(data)) for _ in range(repeat)]
        runs = [one_run(data, None) for _ in range(repeat)]
        floor_times, _ = timed(lambda d=data: floor(d, "parquet"), repeat)
        first = runs[0]["payload"]
        floor_median = statistics.median(floor_times)
        wall = [r["wall"] for r in runs]
        record: dict[str, Any] = {
            "job_rows": _job_rows(data),
            "segments": first["counts"]["segments"],
            "levers": _levers(data),
            "plan_status": first["statuses"]["interventions"],
            "repeat": repeat,
            "wall_median_s": round(statistics.median(wall), 2),
            "wall_min_s": round(min(wall), 2),
            "wall_max_s": round(max(wall), 2),
            "wall_no_plan_median_s": round(statistics.median(r["wall"] for r in bare), 2),
            "floor_median_s": round(floor_median, 3),
            "wall_ratio_to_floor": round(statistics.median(wall) / floor_median, 1),
            "peak_mb": round(max(r["peak_mb"] for r in runs), 0),
            "peak_no_plan_mb": round(max(r["peak_mb"] for r in bare), 0),
            "steps_median_s": {
                s: round(statistics.median(r["steps"][s] for r in runs), 3) for s in STEPS
            },
        }
        records.append(record)
        print(json.dumps(record))
    return {"machine": machine(), "records": records}


def _job_rows(data: Path) -> int:
    import duckdb

    return int(duckdb.sql(f"SELECT count(*) FROM '{data}/jobs.parquet'").fetchall()[0][0])


def _levers(data: Path) -> int:
    import duckdb

    return int(duckdb.sql(f"SELECT count(*) FROM '{data}/interventions.parquet'").fetchall()[0][0])


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        f"Machine: {m['cpu']} ({m['cpu_count']} CPUs), Python {m['python']}, "
        f"DuckDB {m['duckdb']}; {m['date']}, commit {m['commit']}",
        "",
        "| job rows | segments | levers | wall s (min–max) | without plan s | floor s "
        "| wall / floor | peak MB (no plan) | " + " | ".join(STEPS) + " |",
        "|" + "---:|" * (8 + len(STEPS)),
    ]
    for r in result["records"]:
        steps = " | ".join(f"{r['steps_median_s'][s]:.2f}" for s in STEPS)
        lines.append(
            f"| {r['job_rows']:,} | {r['segments']:,} | {r['levers']:,} "
            f"| {r['wall_median_s']:.1f} ({r['wall_min_s']:.1f}–{r['wall_max_s']:.1f}) "
            f"| {r['wall_no_plan_median_s']:.1f} | {r['floor_median_s']:.2f} "
            f"| {r['wall_ratio_to_floor']:.0f}× "
            f"| {r['peak_mb']:,.0f} ({r['peak_no_plan_mb']:,.0f}) "
            f"| {steps} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", nargs="+", type=float, default=[1e6])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--markdown", action="store_true", help="Print a Markdown table.")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "run.json")
    args = parser.parse_args()
    result = run([int(r) for r in args.rows], args.repeat)
    append_record(args.out, result)
    if args.markdown:
        print(markdown(result))


if __name__ == "__main__":
    main()
