"""The nightly run end to end on the sample: as-of weeks, stored tables and their
contract, degraded segments, --strict, the stability cap against the previous run, and
the stored run read back."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from conftest import SAMPLE, quick_config

from pricing.decisions.guidance import COLUMNS as GUIDANCE_COLUMNS
from pricing.errors import ConfigError, DataError, RunError
from pricing.estimation.curves import CURVE_COLUMNS
from pricing.market.equilibrium import EQUILIBRIUM_COLUMNS
from pricing.runs import pipeline
from pricing.runs.pipeline import run_batch
from pricing.runs.run import Run, load_run
from pricing.store.store import RunStore

LAST_SUNDAY = dt.date(2025, 12, 28)  # the sample's jobs end on this Sunday
KEYS = ["category", "tier"]


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """One full run of the sample (with its intervention plan), shared read-only."""
    return run_batch(SAMPLE, store=tmp_path_factory.mktemp("store") / "runs")


def test_the_run_stores_every_table_with_the_contract_columns(stored: Run) -> None:
    assert stored.run_id == "2025-12-28" and stored.as_of == LAST_SUNDAY
    assert stored.status == "ok"
    assert list(stored.curves.columns[: 2 + len(CURVE_COLUMNS)]) == [*KEYS, *CURVE_COLUMNS]
    assert list(stored.equilibrium.columns[: 2 + len(EQUILIBRIUM_COLUMNS)]) == [
        *KEYS,
        *EQUILIBRIUM_COLUMNS,
    ]
    assert list(stored.guidance.columns[:11]) == [*KEYS, *GUIDANCE_COLUMNS[:9]]
    assert stored.interventions is not None and stored.interventions["units"].sum() > 0
    assert stored.catalogue is not None
    assert len(stored.equilibrium) == len(stored.guidance) == len(stored.curves) // 2 == 36


def test_the_manifest_records_config_inputs_counts_statuses_and_timings(
    stored: Run,
) -> None:
    m = stored.manifest
    assert m.config["market"]["client_fee"] == 0.05
    assert m.config_source is not None and m.config_source.endswith("pricing.toml")
    jobs = m.inputs["jobs"]
    assert jobs.rows == 42840 and len(jobs.files[0].sha256) == 64
    assert m.counts.model_dump() == {"segments": 36, "estimated": 36, "flagged": 4, "failed": 0}
    assert m.statuses.equilibrium == {"solved": 36}
    assert m.statuses.interventions == "optimal"
    assert m.plan is not None and m.plan.spend <= m.plan.budget == 135000.0
    assert set(m.timings_s) == set(pipeline.STEPS)  # the store's own time included
    assert m.peak_memory_mb > 0 and m.versions["pricing"]
    assert m.rows_after_as_of == {"jobs": 0, "supply": 0}


def test_the_stored_market_reproduces_the_stored_equilibrium(stored: Run) -> None:
    """Reading back loses nothing: re-solving the stored market gives the stored rates
    (the same deterministic solve, so to rounding: 1e-12 relative)."""
    frame = stored.baseline.to_frame()
    stored_eq = stored.equilibrium
    np.testing.assert_allclose(frame["rate"], stored_eq["rate"], rtol=1e-12)
    np.testing.assert_allclose(frame["hours"], stored_eq["hours"], rtol=1e-12)
    assert load_run("latest", stored.store).path == stored.path
    assert "36 estimated" in stored.summary() and "<p>" in stored._repr_html_()


def test_as_of_takes_the_sunday_and_leaves_later_rows_out(tmp_path: Path) -> None:
    """--as-of on a Wednesday runs through the Sunday before; the rows of the later days
    are counted, not used; the panel's last week is the one that Sunday ends."""
    run = run_batch(
        SAMPLE, quick_config(), tmp_path / "s", as_of=dt.date(2025, 12, 24), progress=None
    )
    assert run.run_id == "2025-12-21"
    after = run.manifest.rows_after_as_of
    con = duckdb.connect()
    jobs_later = con.execute(
        f"SELECT count(*) FROM '{SAMPLE}/jobs.parquet' WHERE posted_at > DATE '2025-12-21'"
    ).fetchone()
    supply_later = con.execute(
        f"SELECT count(*) FROM '{SAMPLE}/supply.parquet' WHERE week > DATE '2025-12-15'"
    ).fetchone()
    assert (after["jobs"], after["supply"]) == (jobs_later[0], supply_later[0])
    assert after["jobs"] > 0
    assert run.manifest.weeks.count == 103  # of the sample's 104


def test_the_next_run_is_capped_against_the_previous_one(tmp_path: Path) -> None:
    store = tmp_path / "s"
    first = run_batch(SAMPLE, quick_config(), store, as_of=dt.date(2025, 12, 14))
    second = run_batch(SAMPLE, quick_config(), store)
    assert first.manifest.previous_run is None
    assert second.manifest.previous_run == "2025-12-14"
    g = second.guidance.set_index(KEYS)
    before = first.guidance.set_index(KEYS)
    np.testing.assert_allclose(g["previous_freelancer_rate"], before["freelancer_rate"])
    share = second.config.guidance.max_change_pct / 100  # the cap is ± this share
    ratio = g["freelancer_rate"] / before["freelancer_rate"]
    assert (ratio <= 1 + share + 1e-12).all() and (ratio >= 1 - share - 1e-12).all()
    assert g["capped"].any()  # the sample moves enough in two weeks for the cap to act


@pytest.mark.usefixtures("fail_component_zero")
def test_a_failed_component_degrades_the_run_but_it_is_stored(tmp_path: Path) -> None:
    run = run_batch(SAMPLE, quick_config(), tmp_path / "s")
    assert run.status == "degraded"
    assert run.manifest.counts.failed > 0
    (line,) = run.manifest.degraded
    assert "not cleared" in line and "accounting/entry" in line
    assert (run.equilibrium["status"] == "failed").sum() == run.manifest.counts.failed


def test_strict_stores_nothing_when_degraded(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    store = tmp_path / "s"
    first = run_batch(SAMPLE, quick_config(), store)
    request.getfixturevalue("fail_component_zero")
    with pytest.raises(RunError, match="nothing was stored"):
        run_batch(SAMPLE, quick_config(), store, strict=True)
    assert RunStore(store).run_paths() == {LAST_SUNDAY: first.path}


def test_a_segment_without_a_usable_curve_is_reported(tmp_path: Path) -> None:
    """No job of accounting/entry is ever hired: its demand curve has no usable week."""
    data = tmp_path / "data"
    shutil.copytree(SAMPLE, data)
    jobs = pd.read_parquet(data / "jobs.parquet")
    dead = (jobs["category"] == "accounting") & (jobs["tier"] == "entry")
    jobs.loc[dead, "hired"] = False
    jobs.loc[dead, "hired_rate"] = np.nan
    jobs.to_parquet(data / "jobs.parquet", index=False)
    run = run_batch(data, quick_config(), tmp_path / "s")
    assert run.status == "degraded"
    assert run.manifest.counts.estimated == 35
    assert "no usable curve: accounting/entry" in run.manifest.degraded[0]
    row = run.equilibrium.set_index(KEYS).loc[("accounting", "entry")]
    assert row["status"] == "no_curve" and np.isnan(row["rate"])


def test_a_plan_that_raises_degrades_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise FloatingPointError("overflow in a lever")

    monkeypatch.setattr(pipeline, "plan_interventions", broken)
    config = quick_config()
    config = config.model_copy(
        update={"interventions": config.interventions.model_copy(update={"budget": 1000.0})}
    )
    run = run_batch(SAMPLE, config, tmp_path / "s")
    assert run.status == "degraded" and run.interventions is None
    assert run.manifest.statuses.interventions == "failed"
    assert (run.manifest.statuses.plan_error or "").startswith("FloatingPointError")


def test_invalid_inputs_store_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(SAMPLE, data)
    jobs = pd.read_parquet(data / "jobs.parquet")
    jobs.loc[3, "hours"] = -1.0
    jobs.to_parquet(data / "jobs.parquet", index=False)
    with pytest.raises(DataError) as err:
        run_batch(data, quick_config(), tmp_path / "s")
    assert err.value.report is not None and not err.value.report.ok
    (data / "pricing.toml").write_text("[estimation]\ncov = 'HC9'\n")
    with pytest.raises(ConfigError, match="cov"):
        run_batch(data, None, tmp_path / "s")
    assert not (tmp_path / "s").exists()


def test_an_as_of_before_the_data_is_invalid_input(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="jobs start on 2024-01-01; pass a later --as-of"):
        run_batch(SAMPLE, quick_config(), tmp_path / "s", as_of=dt.date(2023, 6, 1))
    assert not (tmp_path / "s").exists()
