"""A run on a real Dask cluster (a LocalCluster of 2 worker processes) against the same
run in this process.

Tolerances, from what can differ between the two:

- the panel's sums are added per group of files, then across groups: the same numbers
  in another order, so they agree to rounding, ``PANEL_RTOL`` (a few hundred terms per
  segment-week: ~1e-15 expected, 1e-12 leaves room);
- curves from the same panel are computed segment by segment with the same code: equal;
- a coupled component's interior point stops when the worst residual of its batch is
  below ~1e-9, and batches differ: rates agree to ``RATE_RTOL`` (residuals ≤ 1e-9 move a
  rate by residual / (|ε| + η) with |ε| + η ≥ 0.2 here, so ≤ 5e-9; measured 1.7e-12 on
  4,000 segments);
- band draws come from one random stream per block of components, and a block is
  solved alone wherever it runs: equal;
- a whole run on partitioned files feeds the panel's rounding through 2SLS, whose weak
  first stages in thin segments amplify it (measured 1.1e-9 on 600 segments):
  ``RUN_RTOL`` = 1e-7 on every number of every stored table, relative to the number or
  to its column's largest value (changes and gaps are differences of such numbers);
- except the bands of a segment whose component had a drawn copy stop at the interior
  point's iteration limit in one run and just inside it in the other (rounding of 1e-12
  decides): that copy is left out of one band and not the other, so the band reads one
  draw more or fewer. Bands are compared where the draws used are equal; the others are
  counted (measured on the 1,500-segment market: 84 segments, each 1–4 draws of 200
  apart, from copies with nearly flat drawn curves).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from conftest import SAMPLE

from pricing import cluster
from pricing.cluster import LOCAL, Executor, Local, compute_text, executor, plan_parts
from pricing.config import GuidanceConfig, RunConfig, load_config
from pricing.decisions import guidance
from pricing.decisions.guidance import rate_guidance
from pricing.errors import ClusterError
from pricing.estimation.curves import MIN_BATCH, fit_curves
from pricing.inputs.panel import build_panel
from pricing.inputs.validation import check_inputs
from pricing.market.equilibrium import solve
from pricing.market.simulate import SimulationSpec, simulate_market
from pricing.market.synthetic import random_market
from pricing.runs.pipeline import run_batch
from pricing.runs.run import Run, load_run
from pricing.store.stored import read_table

PANEL_RTOL = 1e-12
RATE_RTOL = 1e-8
RUN_RTOL = 1e-7
#: bands whose draws differ (see the module docstring): at most this share of segments,
#: each at most this many draws apart
DRAWS_APART_SHARE, DRAWS_APART = 0.1, 5
_BAND_COLUMNS = {
    "band_draws": (
        "freelancer_rate_low",
        "freelancer_rate_high",
        "client_rate_low",
        "client_rate_high",
        "listed_rate_low",
        "listed_rate_high",
    ),
    "forecast_band_draws": ("forecast_rate_low", "forecast_rate_high"),
}
TABLES = ("curves", "equilibrium", "guidance", "market", "edges", "interventions")
PRICING = str(Path(sys.executable).with_name("pricing"))


@pytest.fixture(scope="module")
def dask() -> Iterator[Executor]:
    with executor(workers=2) as chosen:
        yield chosen


def split(source: Path, target: Path, parts: int, fmt: str = "parquet") -> Path:
    """A copy of ``source`` whose jobs and supply are folders of ``parts`` files."""
    shutil.copytree(source, target)
    for name in ("jobs", "supply"):
        table = pq.read_table(target / f"{name}.parquet")
        (target / f"{name}.parquet").unlink()
        (target / name).mkdir()
        step = -(-table.num_rows // parts)
        for i in range(parts):
            part = table.slice(i * step, step)
            if fmt == "parquet":
                pq.write_table(part, target / name / f"part-{i}.parquet")
            else:
                pcsv.write_csv(part, target / name / f"part-{i}.csv")
    return target


@pytest.fixture(scope="module")
def split_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return split(SAMPLE, tmp_path_factory.mktemp("split") / "sample", 4)


def stored(run: Run) -> dict[str, pd.DataFrame]:
    return {name: frame for name in TABLES if (frame := run.table(name)) is not None}


def assert_same_frame(a: pd.DataFrame, b: pd.DataFrame, rtol: float, name: str) -> None:
    """Equal labels, flags and statuses; numbers within ``rtol`` of themselves or of
    their column's largest value (a change or a gap is a difference of numbers that
    large, and carries their rounding)."""
    assert list(a.columns) == list(b.columns) and len(a) == len(b), name
    for column in a.columns:
        x, y = a[column], b[column]
        if pd.api.types.is_numeric_dtype(x) and not pd.api.types.is_bool_dtype(x):
            scale = float(np.nanmax(np.abs(x.to_numpy(np.float64)), initial=0.0))
            np.testing.assert_allclose(
                y.to_numpy(np.float64),
                x.to_numpy(np.float64),
                rtol=rtol,
                atol=rtol * scale,
                err_msg=f"{name}.{column}",
            )
        else:
            pd.testing.assert_series_equal(x, y, obj=f"{name}.{column}")


def assert_same_tables(local: Run, remote: Run, rtol: float) -> None:
    a, b = stored(local), stored(remote)
    assert a.keys() == b.keys()
    for name in a:
        if name == "guidance":
            a[name], b[name] = same_draws(a[name], b[name])
        assert_same_frame(a[name], b[name], rtol, name)


def same_draws(a: pd.DataFrame, b: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The guidance tables with the bands of segments whose draws differ blanked (the
    as-of week's and the forecast's apart), after checking there are few such segments
    and they differ by a few draws."""
    for count, columns in _BAND_COLUMNS.items():
        apart = (a[count] - b[count]).abs().to_numpy()
        assert (apart > 0).mean() <= DRAWS_APART_SHARE, (count, (apart > 0).mean())
        assert apart.max(initial=0) <= DRAWS_APART, (count, apart.max())
        a = a.assign(**{c: a[c].where(apart == 0) for c in (*columns, count)})
        b = b.assign(**{c: b[c].where(apart == 0) for c in (*columns, count)})
    return a, b


def assert_same_statuses(local: Run, remote: Run) -> None:
    """The same statuses and counts; the largest clearing residual is rounding apart."""
    a, b = (run.manifest.statuses.model_dump() for run in (local, remote))
    worst = [s["components"].pop("max_residual") for s in (a, b)]
    # copies at the iteration limit (module docstring): a few draws either way
    failed = [s["guidance"].pop("failed_draws") for s in (a, b)]
    assert abs(failed[0] - failed[1]) <= 0.01 * max(failed)
    assert a == b
    assert max(worst) < 1e-8  # verification accepts 1e-6; the interior point ends ~1e-10


# ----------------------------------------------------------------------- the steps
def test_partitioned_panel_matches_the_single_file_panel(
    dask: Executor, split_sample: Path
) -> None:
    config = RunConfig()
    whole = build_panel(check_inputs(SAMPLE, config).checked()).frame
    inputs = check_inputs(split_sample, config).checked()
    assert len(inputs.sources["jobs"].paths) == 4
    here = build_panel(inputs).frame
    there = build_panel(inputs, executor=dask).frame
    pd.testing.assert_frame_equal(here, whole, rtol=PANEL_RTOL, atol=0)
    pd.testing.assert_frame_equal(there, whole, rtol=PANEL_RTOL, atol=0)


def test_csv_partitions_are_read_and_typed_on_the_workers(dask: Executor, tmp_path: Path) -> None:
    data = split(SAMPLE, tmp_path / "csv", 3, fmt="csv")
    inputs = check_inputs(data, RunConfig()).checked()
    assert inputs.sources["supply"].format == "csv"
    whole = build_panel(check_inputs(SAMPLE, RunConfig()).checked()).frame
    pd.testing.assert_frame_equal(
        build_panel(inputs, executor=dask).frame, whole, rtol=PANEL_RTOL, atol=0
    )


def test_the_as_of_week_cuts_every_partition(dask: Executor, split_sample: Path) -> None:
    import datetime as dt

    inputs = check_inputs(split_sample, RunConfig()).checked()
    through = dt.date(2025, 6, 29)
    here = build_panel(inputs, through).frame
    there = build_panel(inputs, through, executor=dask).frame
    assert here["week"].max() == pd.Timestamp("2025-06-23")
    pd.testing.assert_frame_equal(here, there, rtol=PANEL_RTOL, atol=0)


def test_small_work_stays_here_and_large_work_is_split(dask: Executor) -> None:
    assert plan_parts(LOCAL, 10**6, 1) == (LOCAL, 1)
    assert plan_parts(Local(1), 10**6, 1) == (Local(1), 1)  # one thread stays one thread
    assert plan_parts(dask, 999, 500) == (LOCAL, 1)  # too little for two parts
    assert plan_parts(dask, 1000, 500) == (dask, 2)
    assert plan_parts(dask, 10**6, 500) == (dask, 2 * 2)  # 2 parts per worker thread


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1,500 segments in 500 categories (coupled within skill families), jobs and
    supply in 5 files each; no intervention catalogue (planning runs here either way)."""
    spec = SimulationSpec(segments=1500, weeks=52, seed=3, jobs_per_week=4.0)
    data = simulate_market(spec).write(tmp_path_factory.mktemp("sim") / "data", files=5)
    (data / "interventions.parquet").unlink()
    return data


def test_estimation_in_batches_gives_the_same_curves(dask: Executor, simulated: Path) -> None:
    config = load_config(simulated / "pricing.toml")
    panel = build_panel(check_inputs(simulated, config).checked())
    assert plan_parts(dask, panel.n_segments, MIN_BATCH) == (dask, 3)
    here = fit_curves(panel, config.estimation).frame
    there = fit_curves(panel, config.estimation, dask).frame
    pd.testing.assert_frame_equal(here, there, rtol=0, atol=0)


def test_coupled_components_cleared_as_tasks(dask: Executor) -> None:
    market = random_market(6000, (2, 8), seed=5, bounded_share=0.1)
    coupled = int((np.bincount(market.component)[market.component] > 1).sum())
    assert plan_parts(dask, coupled, 2_000) == (dask, 2)
    here, there = solve(market), solve(market, executor=dask)
    assert here.ok and there.ok
    assert (here.status == there.status).all() and (here.path_code == there.path_code).all()
    np.testing.assert_allclose(there.rate, here.rate, rtol=RATE_RTOL)
    # hours, flows and gaps to 1e-8 of themselves or of their column's largest value (a
    # segment priced out of its own pool holds 1e-10 hours, rounding of 1e4)
    assert_same_frame(here.to_frame(), there.to_frame(), RATE_RTOL, "equilibrium")


def test_band_blocks_as_tasks_give_the_same_bands(
    dask: Executor, monkeypatch: pytest.MonkeyPatch
) -> None:
    # blocks of 20,000 / 100 = 200 segments (not 2,500): 3 blocks of this market
    monkeypatch.setattr(guidance, "CHUNK_SEGMENTS", 20_000)
    market = random_market(600, (2, 8), seed=6, bounded_share=0.1)
    eq = solve(market)
    from test_guidance import curve_set

    eq = dataclasses.replace(eq, market=market.with_uncertainty(curve_set(market, 0.1, 0.1)))
    config = GuidanceConfig(draws=100)
    here = rate_guidance(eq, config)
    there = rate_guidance(eq, config, executor=dask)
    pd.testing.assert_frame_equal(here.to_frame(), there.to_frame(), rtol=0, atol=0)
    assert here.failed_draws == there.failed_draws


# --------------------------------------------------------------------------- runs
def test_run_on_the_cluster_stores_the_local_results(
    dask: Executor, split_sample: Path, tmp_path: Path
) -> None:
    here = run_batch(split_sample, store=tmp_path / "local")
    there = run_batch(split_sample, store=tmp_path / "dask", executor=dask)
    assert_same_tables(here, there, RUN_RTOL)
    assert_same_statuses(here, there)
    assert here.manifest.compute == LOCAL.describe()
    assert there.manifest.compute is not None
    assert there.manifest.compute["kind"] == "local_cluster"
    assert there.manifest.compute["workers"] == 2
    assert "ran on a local Dask cluster (2 workers, 2 threads)" in there.summary()
    assert f"ran on this process ({LOCAL.threads} threads)" in here.summary()
    assert "a local Dask cluster (2 workers, 2 threads)" in there.report().html


def test_where_a_run_ran_in_words() -> None:
    compute = {"kind": "scheduler", "address": "tcp://h:8786", "workers": 8, "threads": 16}
    assert compute_text(compute) == "the Dask cluster at tcp://h:8786 (8 workers, 16 threads)"
    assert compute_text(None) == "not recorded"  # a run stored before scale-out


@pytest.mark.slow
def test_run_on_the_cluster_matches_local_on_a_larger_simulated_market(
    dask: Executor, simulated: Path, tmp_path: Path
) -> None:
    """Every distributed step splits here: 5 files a table, 3 estimation batches,
    2 band blocks."""
    here = run_batch(simulated, store=tmp_path / "local")
    there = run_batch(simulated, store=tmp_path / "dask", executor=dask)
    assert here.manifest.counts.segments == 1500
    assert here.manifest.statuses.components.total < 1500  # coupled
    assert_same_tables(here, there, RUN_RTOL)
    assert here.manifest.counts == there.manifest.counts
    assert_same_statuses(here, there)


# ---------------------------------------------------------------------- the CLI
def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PRICING, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


@pytest.mark.slow
def test_cli_run_and_whatif_with_workers_match_local(split_sample: Path, tmp_path: Path) -> None:
    scenario = SAMPLE.parent / "scenarios" / "legal-fee-cut.toml"
    for name, extra in (("local", []), ("dask", ["--workers", "2"])):
        store = str(tmp_path / name)
        done = cli("run", "--data", str(split_sample), "--store", store, "--json", "-q", *extra)
        assert done.returncode == 0, done.stderr
        kind = json.loads(done.stdout)["compute"]["kind"]
        assert kind == ("local" if name == "local" else "local_cluster")
        done = cli("whatif", str(scenario), "--store", store, "--json", "-q", *extra)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["scenarios"][0]["status"] == "ok"
    here, there = load_run(store=tmp_path / "local"), load_run(store=tmp_path / "dask")
    assert_same_tables(here, there, RUN_RTOL)
    for table in ("segments", "totals", "equilibrium"):
        a, b = (
            read_table(next(iter(run.store.scenario_paths().values())), table, "scenario")
            for run in (here, there)
        )
        assert a is not None and b is not None
        assert_same_frame(a, b, RUN_RTOL, table)


def test_an_existing_cluster_from_the_environment(
    dask: Executor, split_sample: Path, tmp_path: Path
) -> None:
    address = dask.describe()["address"]
    done = cli(
        "run",
        "--data",
        str(split_sample),
        "--store",
        str(tmp_path / "store"),
        "--no-report",
        "--json",
        "-q",
        env={"DASK_SCHEDULER_ADDRESS": address},
    )
    assert done.returncode == 0, done.stderr
    compute = json.loads(done.stdout)["compute"]
    assert compute == {"kind": "scheduler", "address": address, "workers": 2, "threads": 2}


def test_an_unreachable_scheduler_exits_7_without_storing(tmp_path: Path) -> None:
    store = tmp_path / "store"
    done = cli(
        "run",
        "--store",
        str(store),
        "--scheduler",
        "tcp://127.0.0.1:1",
        "-q",
        env={"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "1s"},
    )
    assert done.returncode == 7
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:1" in done.stderr
    assert "Traceback" not in done.stderr
    assert not store.exists()


def test_scheduler_and_workers_together_is_a_usage_error(tmp_path: Path) -> None:
    done = cli("run", "--store", str(tmp_path), "--scheduler", "tcp://x:1", "--workers", "2")
    assert done.returncode == 2
    assert "give --scheduler or --workers, not both" in done.stderr


# ------------------------------------------------------------------ what is checked
def test_a_worker_on_another_version_is_refused(
    dask: Executor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cluster, "__version__", "0.0.0-elsewhere")
    with (
        pytest.raises(ClusterError, match=r"runs pricing .*, this process 0\.0\.0-elsewhere"),
        executor(scheduler=dask.describe()["address"]),
    ):
        pass


def test_workers_that_cannot_see_the_data_are_refused(
    dask: Executor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the workers share this machine: hide the directory from them alone
    monkeypatch.setattr(cluster, "_worker_facts", lambda d: (cluster.__version__, False))
    with (
        pytest.raises(ClusterError, match="cannot see the data directory"),
        executor(scheduler=dask.describe()["address"], data_dir=tmp_path),
    ):
        pass


def test_a_data_directory_missing_here_too_is_invalid_input(dask: Executor, tmp_path: Path) -> None:
    address = dask.describe()["address"]
    store = tmp_path / "store"
    done = cli(
        "run", "--data", str(tmp_path / "nowhere"), "--store", str(store), "--scheduler", address
    )
    assert done.returncode == 3 and "is not a directory" in done.stderr
    assert not store.exists()


def test_without_dask_installed_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ClusterError, match=r"pip install 'pricing\[dask\]'"), executor(workers=2):
        pass


def _dies_once(marker: str) -> int:
    """A task that kills the worker running it, the first time only."""
    if not os.path.exists(marker):
        Path(marker).touch()
        os._exit(1)
    return os.getpid()


def _always_dies(_: int) -> int:
    os._exit(1)


@pytest.fixture
def by_value() -> Iterator[None]:
    """Ship this module's task functions to the workers by value (they cannot import it)."""
    import cloudpickle

    module = sys.modules[__name__]
    cloudpickle.register_pickle_by_value(module)
    yield
    cloudpickle.unregister_pickle_by_value(module)


@pytest.mark.slow
@pytest.mark.usefixtures("by_value")
def test_a_lost_worker_s_part_runs_again_elsewhere(tmp_path: Path) -> None:
    with executor(workers=2) as chosen:
        marker = str(tmp_path / "died")
        assert chosen.map(_dies_once, [marker])[0] > 0
        assert Path(marker).exists()  # the first attempt did kill its worker


@pytest.mark.slow
@pytest.mark.usefixtures("by_value")
def test_a_part_that_keeps_killing_workers_is_a_cluster_error() -> None:
    import dask.config

    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 1}),
        executor(workers=2) as chosen,
        pytest.raises(ClusterError, match="KilledWorker"),
    ):
        chosen.map(_always_dies, [0])


def test_the_local_default_imports_no_dask(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from pricing.runs.pipeline import run_batch\n"
        f"run_batch(store={str(tmp_path / 'store')!r})\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')]\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
