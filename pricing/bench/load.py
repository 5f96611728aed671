"""Stage ``load``: read + validate + aggregate simulated Parquet inputs.

For a simulated market of about N job rows (104 weeks, 40 jobs per segment-week; supply
has about 1.1–1.4 rows per job row), the benchmark times
:func:`pricing.inputs.validation.check_inputs` (find and read every table through DuckDB
and run every contract check: all of ``pricing validate``) and
:func:`pricing.inputs.panel.build_panel` on the checked inputs (the segment × week
aggregation), i.e. ``pricing panel`` without printing.

The baseline, measured in the same run, is the **floor**: one DuckDB query that reads
every contract column of jobs and supply and aggregates them per segment-week (distinct
ids, sums, log-weighted sums), and nothing more. Any loader that validates and
aggregates must at least read every column once and group it; the floor does exactly
that, in the same engine. The ratio is therefore the price of validation (every rule,
the duplicate checks, the cross-table checks) and of the full segment × week grid, and it
should stay a small constant as the data grow; a ratio that grows with size means some
check scales worse than a scan. The same floor is the baseline of the ``run`` stage.

The markets are simulated once into the cache (:func:`market_dir`) and shared with the
``run`` and ``cluster`` stages.
"""

from __future__ import annotations

import time
from pathlib import Path

import duckdb

from pricing.bench.harness import Case
from pricing.bench.paths import cache_dir
from pricing.config import load_config
from pricing.inputs.panel import build_panel
from pricing.inputs.validation import check_inputs
from pricing.market.simulate import SimulationSpec, simulate_market

WEEKS = 104
JOBS_PER_WEEK = 40.0


def market_dir(rows: int, files: int = 1) -> Path:
    """A simulated market of about ``rows`` job rows with its pricing.toml (fees, budget),
    written once and re-used; with ``files`` > 1, jobs and supply are folders of that
    many Parquet files each."""
    name = f"market_{rows:.0e}".replace("+", "") + (f"_files{files}" if files > 1 else "")
    target = cache_dir() / name
    if target.exists():
        return target
    # thin segments post far fewer jobs; 0.87 is the simulator's mean volume per segment
    segments = max(3, round(rows / (WEEKS * JOBS_PER_WEEK * 0.87)))
    spec = SimulationSpec(segments=segments, weeks=WEEKS, seed=7, jobs_per_week=JOBS_PER_WEEK)
    start = time.perf_counter()
    market = simulate_market(spec)
    market.write(target, files=files)
    print(
        f"simulated {market.jobs.num_rows:,} job rows ({segments:,} segments) "
        f"in {time.perf_counter() - start:.1f} s -> {target}"
    )
    return target


def floor(directory: Path) -> int:
    """The baseline: one DuckDB read-and-group of every contract column of jobs and
    supply (single Parquet files)."""
    con = duckdb.connect()
    rows = con.execute(
        f"""
        SELECT count(*) FROM (
            SELECT category, tier, date_trunc('week', posted_at), count(DISTINCT job_id),
                   sum(hours), sum(hours * ln(hired_rate)) FILTER (WHERE hired),
                   sum(hours * ln(budget_rate)), any_value(region)
            FROM read_parquet('{directory}/jobs.parquet') GROUP BY ALL)
        UNION ALL
        SELECT count(*) FROM (
            SELECT category, tier, week, count(DISTINCT freelancer_id),
                   sum(available_hours), sum(available_hours * ln(ask_rate)), any_value(region)
            FROM read_parquet('{directory}/supply.parquet') GROUP BY ALL)
        """
    ).fetchall()
    return int(rows[0][0])


def case(rows: int) -> Case:
    """Check and aggregate a market of about ``rows`` job rows, against the floor."""
    data = market_dir(rows)
    config = load_config(data / "pricing.toml")
    return Case(
        "load",
        {"job_rows": rows},
        lambda: build_panel(check_inputs(data, config).checked()),
        "DuckDB read-and-group floor",
        lambda: floor(data),
    )
