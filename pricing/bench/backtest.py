"""Stage ``backtest``: a K-origin backtest against one nightly run of the same market.

For a simulated market of N segments over 104 weeks (12 jobs per segment-week, as the
shipped sample; the simulator writes ``truth_weekly.parquet``, so the band draws and the
truth scores are part of the work), the benchmark times
:func:`pricing.runs.backtest.backtest` with K origins (12; 2 when quick) one week ahead:
validation and aggregation once, then per origin the panel cut, the curves, the markets
of the week and the next, their clearing and the band draws — all of ``pricing
backtest`` but storing.

The baseline, measured in the same run, is **one nightly run** of the same market,
:func:`pricing.runs.pipeline.run_batch` into a fresh store without its report (``pricing
run --no-report``, the plan included): what a backtest repeats at each origin. Its ratio
is the price of K origins against one run; issue 17 asks for at most 3× at 12 origins
and 1,000 segments (an origin is cheaper than a run: no plan, no store, no
validation). Both sides run in this process, so interpreter start and imports are in
neither. The details are the backtest's seconds per origin and the run's per step.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from pricing.bench.harness import Case
from pricing.bench.paths import cache_dir
from pricing.market.simulate import SimulationSpec, simulate_market

WEEKS = 104
JOBS_PER_WEEK = 12.0


def market_dir(segments: int) -> Path:
    """A simulated market of ``segments`` segments with its pricing.toml and weekly truth,
    written once into the cache and re-used."""
    target = cache_dir() / f"backtest_{segments}"
    if target.exists():
        return target
    spec = SimulationSpec(segments=segments, weeks=WEEKS, seed=17, jobs_per_week=JOBS_PER_WEEK)
    start = time.perf_counter()
    market = simulate_market(spec)
    market.write(target)
    print(
        f"simulated {market.jobs.num_rows:,} job rows ({segments:,} segments) "
        f"in {time.perf_counter() - start:.1f} s -> {target}"
    )
    return target


def one_backtest(data: Path, origins: int) -> dict[str, float]:
    """The backtest of ``data`` with ``origins`` origins: its seconds by part."""
    from pricing.runs.backtest import backtest

    return backtest(data, weeks=origins).timings


def one_run(data: Path) -> dict[str, float]:
    """One nightly run of ``data`` into a fresh store, without its report: its steps'
    seconds."""
    from pricing.runs.pipeline import run_batch

    with tempfile.TemporaryDirectory() as scratch:
        run = run_batch(data, store=Path(scratch) / "store")
        timings = dict(run.manifest.timings_s)
        run.close()
    return timings


def case(segments: int, origins: int, repeat: int | None) -> Case:
    """A backtest of ``segments`` segments with ``origins`` origins against one nightly
    run of them."""
    data = market_dir(segments)
    return Case(
        "backtest",
        {"segments": segments, "weeks": WEEKS, "origins": origins},
        lambda: one_backtest(data, origins),
        "one nightly run of the same market (no report)",
        lambda: one_run(data),
        repeat=repeat,
        warmup=False,
        details=dict,
        baseline_details=dict,
    )
