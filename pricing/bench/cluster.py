"""Stage ``cluster``: the nightly run on a Dask LocalCluster against the same run in this
process.

Each side is ``pricing run --json --no-report`` as a fresh process (the run stage's
:func:`~pricing.bench.run.one_run`), on the same simulated market written as a
partitioned dataset (jobs and supply in :data:`FILES` Parquet files each), without the
intervention plan (it runs in the calling process either way). The cluster side adds
``--workers N``: a LocalCluster of N single-threaded worker processes, started and
stopped inside the run, so its start-up is in its wall time. N is 1 and 2: one worker
shows what distribution costs, and the step from 1 to 2 how the distributed steps scale
with workers (where more workers would start to pay off).

    ratio_to_baseline = median wall (cluster) / median wall (this process)

Below 1 the cluster pays off. The baseline is the right one because it is the run the
cluster replaces: same data, same answers (tests/test_cluster.py), same process start.
The steps of both sides are recorded (``details``, ``baseline_details``), with "other"
for the wall time outside the steps (interpreter, imports, starting and stopping the
cluster).

Markets (cached):

- ``job_rows`` 10^6 and 10^7: the load stage's markets (104 weeks, 40 jobs per
  segment-week; ~280 and ~2,800 segments): the data grows, the segments stay few;
- ``segments`` 10^4: 10,000 thin segments (2 jobs per segment-week, 2.2M rows), where
  estimation and the band draws dominate.

``--quick`` runs 10^4 job rows in 4 files on 2 workers.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pricing.bench.harness import Case
from pricing.bench.load import WEEKS, market_dir
from pricing.bench.paths import cache_dir
from pricing.bench.run import no_plan_config, one_run
from pricing.market.simulate import SimulationSpec, simulate_market

FILES = 16
WORKERS = 2


def thin_market_dir(segments: int) -> Path:
    """``segments`` thin segments (2 jobs per segment-week), partitioned in FILES files."""
    target = cache_dir() / f"thin_{segments:.0e}_files{FILES}".replace("+", "")
    if not target.exists():
        spec = SimulationSpec(segments=segments, weeks=WEEKS, seed=7, jobs_per_week=2.0)
        simulate_market(spec).write(target, files=FILES)
    return target


def markets(quick: bool) -> Iterator[tuple[dict[str, Any], Path]]:
    if quick:
        yield {"job_rows": 10_000}, market_dir(10_000, files=4)
        return
    for rows in (1_000_000, 10_000_000):
        yield {"job_rows": rows}, market_dir(rows, files=FILES)
    yield {"segments": 10_000}, thin_market_dir(10_000)


def _steps(result: dict[str, Any]) -> dict[str, float]:
    """The run's steps, and the rest of its wall time (interpreter, imports, starting
    and stopping the cluster)."""
    steps = dict(result["steps"])
    steps["other"] = round(result["wall"] - sum(steps.values()), 3)
    return steps


def cases(quick: bool) -> Iterator[Case]:
    for params, data in markets(quick):
        config = no_plan_config(data)
        for workers in (WORKERS,) if quick else (1, WORKERS):
            yield _case(params, data, config, workers, 4 if quick else FILES)


def _case(params: dict[str, Any], data: Path, config: Path, workers: int, files: int) -> Case:
    return Case(
        "cluster.local_cluster",
        {**params, "workers": workers, "files": files},
        lambda: one_run(data, config, ("--workers", str(workers))),
        "the same run in this process",
        lambda: one_run(data, config),
        peak_mb=lambda result: float(result["peak_mb"]),
        warmup=False,
        details=_steps,
        baseline_details=_steps,
    )
