"""The backtest (pricing.runs.backtest) and its command, store and report section.

Every test reads the shipped sample with one or two origins: an origin costs a fit and
a clearing of the 36-segment market with its band draws (a few seconds), so the tests
that run origins are marked slow and share one stored backtest where they can.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import SAMPLE

from pricing.cli import main
from pricing.inputs.panel import build_panel
from pricing.runs.backtest import METRICS, PREDICTORS, backtest
from pricing.runs.pipeline import checked_inputs, run_batch
from pricing.store.snapshot import Snapshot
from pricing.store.store import RunStore
from pricing.store.stored import StoredBacktest, latest_backtest

AS_OF = dt.date(2025, 12, 28)  # the sample's last week
ORIGIN = dt.date(2025, 12, 21)  # with --weeks 1 --horizon 1, the one origin
#: what an origin predicted from the data up to it (the realized columns are after it)
PREDICTIONS = (
    "today_rate",
    "rate",
    "forecast_rate",
    "rate_last_week",
    "rate_week_before",
    "rate_mean_4_weeks",
    "demand_last_week",
    "demand_mean_4_weeks",
    "supply_last_week",
    "supply_mean_4_weeks",
    "listed_rate_low",
    "listed_rate_high",
    "forecast_rate_low",
    "forecast_rate_high",
)
#: Relative tolerance of "unchanged": the same inputs give the same fit, but DuckDB may
#: sum a segment-week's rows in another order once other weeks change, and the clearing
#: rates are verified to ~1e-8 relative; 1e-6 is far below any real change of a
#: prediction (a peek at the changed week would move rates by percents).
UNCHANGED_RTOL = 1e-6


def _cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    """`pricing backtest --weeks 2 --json` on the sample into a fresh store."""
    store = tmp_path_factory.mktemp("backtest") / "store"
    code, out, err = _cli(
        "backtest", "--data", str(SAMPLE), "--weeks", "2", "--store", str(store), "--json", "-q"
    )
    assert code == 0, err
    return store, json.loads(out, parse_constant=_not_json)


def _not_json(name: str) -> None:
    raise AssertionError(f"--json printed {name}, which is not JSON")


# --------------------------------------------------------------------------- no peeking
def test_the_panel_through_a_week_is_the_panel_built_on_the_data_cut_there() -> None:
    """Panel.through(t), what each origin fits on, equals build_panel cut at t: the same
    segment-weeks and the same sums (1e-9 relative: the same rows summed by DuckDB)."""
    inputs = checked_inputs(SAMPLE)
    full = build_panel(inputs.checked, inputs.through)
    for origin in (ORIGIN, dt.date(2025, 6, 1)):
        cut = full.through(origin)
        built = build_panel(inputs.checked, origin)
        keys = [*built.segment_keys, "week"]
        a = cut.frame.sort_values(keys).reset_index(drop=True)
        b = built.frame.sort_values(keys).reset_index(drop=True)
        # the keys are strings and dates: equal exactly
        assert a[keys].astype(str).equals(b[keys].astype(str))
        numeric = [c for c in b.columns if pd.api.types.is_float_dtype(b[c])]
        assert numeric
        np.testing.assert_allclose(a[numeric], b[numeric], rtol=1e-9, equal_nan=True)


def _changed_after(source: Path, target: Path, origin: dt.date) -> None:
    """The sample with every week after ``origin`` changed: job rates 30 % higher, each
    of those jobs posted twice more (new ids), freelancers offering 30 % fewer hours."""
    shutil.copytree(source, target)
    jobs = pd.read_parquet(source / "jobs.parquet")
    later = pd.to_datetime(jobs["posted_at"]).dt.date > origin
    moved = jobs[later].assign(
        budget_rate=jobs.loc[later, "budget_rate"] * 1.3,
        hired_rate=jobs.loc[later, "hired_rate"] * 1.3,
    )
    added = moved.assign(job_id=moved["job_id"] + "-again")
    jobs = pd.concat([jobs[~later], moved, added], ignore_index=True)
    jobs.to_parquet(target / "jobs.parquet", index=False)
    supply = pd.read_parquet(source / "supply.parquet")
    after = pd.to_datetime(supply["week"]).dt.date > origin
    supply.loc[after, "available_hours"] *= 0.7
    supply.to_parquet(target / "supply.parquet", index=False)


@pytest.mark.slow
def test_data_after_an_origin_leaves_its_predictions_unchanged(tmp_path: Path) -> None:
    """No peeking: the origin's predictions (rates, bands, baselines) are the same when
    every later week is changed and added to; what happened after it is not."""
    _changed_after(SAMPLE, tmp_path / "changed", ORIGIN)
    before = backtest(SAMPLE, weeks=1, as_of=AS_OF)
    after = backtest(tmp_path / "changed", weeks=1, as_of=AS_OF)
    assert before.origins == after.origins == (ORIGIN,)
    keys = ["category", "tier"]  # the sample's segments
    a = before.segments.sort_values(keys).reset_index(drop=True)
    b = after.segments.sort_values(keys).reset_index(drop=True)
    assert a[keys].equals(b[keys])  # category and tier: strings, equal exactly
    for column in PREDICTIONS:
        np.testing.assert_allclose(
            b[column], a[column], rtol=UNCHANGED_RTOL, equal_nan=True, err_msg=column
        )
    realized = a["realized_rate"].to_numpy()
    assert np.nanmedian(b["realized_rate"].to_numpy() / realized) > 1.1  # the change is seen


# --------------------------------------------------------------------------- the command
@pytest.mark.slow
def test_the_command_prints_the_backtest_as_json_and_stores_it(
    stored: tuple[Path, dict[str, object]],
) -> None:
    store_dir, payload = stored
    assert {
        "as_of",
        "origins",
        "first_origin",
        "last_origin",
        "horizon",
        "beats_baselines",
        "pooled",
        "truth",
        "truth_source",
        "origins_list",
        "scores",
        "truth_scores",
        "timings_s",
        "path",
    } <= set(payload)
    assert payload["as_of"] == AS_OF.isoformat()
    assert payload["origins_list"] == ["2025-12-14", "2025-12-21"]
    assert isinstance(payload["beats_baselines"], bool)
    pooled = payload["pooled"]
    assert isinstance(pooled, dict) and set(pooled) == set(METRICS)
    assert all(set(pooled[m]) == set(PREDICTORS) for m in METRICS)
    truth = payload["truth"]
    assert isinstance(truth, dict) and set(truth) == {"nowcast", "forecast"}
    store = RunStore(store_dir)
    path = Path(str(payload["path"]))
    assert store.backtest_paths() == {AS_OF: path}
    backtest_read = StoredBacktest.open(path, store)
    m = backtest_read.manifest
    assert m.origins == (dt.date(2025, 12, 14), ORIGIN) and m.weeks == 2 and m.horizon == 1
    assert m.beats_baselines == payload["beats_baselines"]
    assert m.provenance.inputs["jobs"].files[0].sha256  # fingerprinted as a run is
    assert set(m.tables) == {"scores", "segments", "truth"}
    assert len(backtest_read.to_frame()) == m.tables["scores"]
    backtest_read.close()
    with Snapshot.open(store, deep=True) as snapshot:
        assert snapshot.to_dict()["backtests"] == 1 and not snapshot.damage
        scores = snapshot.query("SELECT count(*) AS n FROM backtest_scores")
        assert int(scores["n"].iloc[0]) == m.tables["scores"]


@pytest.mark.slow
def test_the_latest_backtest_is_the_newest_as_of_the_date_or_before(
    stored: tuple[Path, dict[str, object]],
) -> None:
    store = RunStore(stored[0])
    assert store.latest_backtests(AS_OF + dt.timedelta(days=7)) == [Path(str(stored[1]["path"]))]
    assert store.latest_backtests(AS_OF - dt.timedelta(days=1)) == []
    assert latest_backtest(store, AS_OF - dt.timedelta(days=7), print) is None
    found = latest_backtest(store, AS_OF, print)
    assert found is not None and found.manifest.as_of == AS_OF
    found.close()
    assert RunStore(stored[0] / "nowhere").latest_backtests(AS_OF) == []


def _truth_file(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(path, index=False)
    return path


def test_an_unusable_truth_table_is_refused_with_every_problem(tmp_path: Path) -> None:
    truth = pd.read_parquet(SAMPLE / "truth_weekly.parquet")
    broken = truth[["category", "week", "clearing_rate"]].head(6).astype(object)
    broken.loc[0, "week"] = "not a date"
    broken.loc[1, "clearing_rate"] = -3.0
    broken.loc[2, "clearing_rate"] = "abc"
    broken["thin"] = [True, False, "maybe", 1, 0, False]
    code, out, err = _cli(
        "backtest", "--truth", str(_truth_file(tmp_path / "t.csv", broken)),
        "--store", str(tmp_path / "store"), "-q",
    )  # fmt: skip
    assert code == 3, err
    assert "Traceback" not in err + out
    for problem in (
        "missing column 'tier'",
        "'week' is not a date in 1 rows (rows [0]",
        "'clearing_rate' is not a positive number in 2 rows (rows [1, 2]",
        "'thin' is not true/false in 1 rows (rows [2]",
    ):
        assert problem in err, problem
    assert not (tmp_path / "store" / "backtests").exists()


def test_a_truth_table_of_another_market_is_refused(tmp_path: Path) -> None:
    truth = pd.read_parquet(SAMPLE / "truth_weekly.parquet")
    other = truth.assign(week=pd.to_datetime(truth["week"]) - pd.Timedelta(weeks=520))
    code, _, err = _cli(
        "backtest", "--truth", str(_truth_file(tmp_path / "t.csv", other)),
        "--store", str(tmp_path / "store"), "-q",
    )  # fmt: skip
    assert code == 3, err
    assert "no segment-week in common with the data" in err
    code, _, err = _cli("backtest", "--truth", str(tmp_path / "missing.parquet"), "-q")
    assert code == 3 and "does not exist" in err


def test_too_many_origins_for_the_history_is_refused(tmp_path: Path) -> None:
    code, out, err = _cli("backtest", "--weeks", "500", "--store", str(tmp_path / "s"), "-q")
    assert code == 3, out + err
    assert "too little history for 500 origins" in err
    assert "pass --weeks 100 or less" in err  # 104 weeks: 3 before the first, 1 after
    assert "Traceback" not in err
    code, _, err = _cli("backtest", "--weeks", "0", "-q")
    assert code == 2


def test_a_store_that_is_not_a_store_is_refused_before_any_work(tmp_path: Path) -> None:
    (tmp_path / "store").write_text("not a store")
    code, _, err = _cli("backtest", "--store", str(tmp_path / "store"), "-q")
    assert code == 2 and "is a file" in err  # click's check of --store
    (tmp_path / "other" / "backtests").mkdir(parents=True)
    (tmp_path / "other" / "runs").write_text("")
    code, _, err = _cli("backtest", "--store", str(tmp_path / "other"), "-q")
    assert code == 3 and "is not a run store" in err


# --------------------------------------------------------------------------- report
@pytest.mark.slow
def test_the_report_says_how_to_run_a_backtest_then_shows_the_latest(
    tmp_path: Path, stored: tuple[Path, dict[str, object]]
) -> None:
    """The run's report without a backtest says how to run one; once one is stored as of
    the run's week, it shows its headline, its truth scores and its verdict."""
    store = tmp_path / "store"
    run = run_batch(SAMPLE, store=store)
    page = run.report().html
    assert 'id="trust"' in page and "No backtest is stored" in page
    assert f"pricing backtest --data {run.manifest.data_dir} --store {store}" in page
    assert "2025-12-22 – 2025-12-28, the latest complete week" in page
    shutil.copytree(stored[0] / "backtests", store / "backtests")
    page = run.report().html
    trust = page[
        page.index('<section id="trust">') : page.index("</section>", page.index('id="trust"'))
    ]
    payload = stored[1]
    verdict = "beats both" if payload["beats_baselines"] else "does NOT beat the naive baselines"
    assert verdict in trust
    if not payload["beats_baselines"]:  # which score lost, with the numbers
        assert "did as well or better on" in trust and " against " in trust
    assert (
        "2 origins, weekly from the week ending 2025-12-14 to the week ending 2025-12-21" in trust
    )
    pooled = payload["pooled"]
    assert isinstance(pooled, dict)
    for metric in ("demand_wape", "supply_wape", "direction"):
        for predictor in PREDICTORS:
            assert f"{pooled[metric][predictor]:.1%}" in trust, (metric, predictor)
    assert "this week&#39;s rate (nowcast)" in trust and "90 % band coverage" in trust
    run.close()
