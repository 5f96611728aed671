"""Panel aggregation against values computed by hand."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pricing.config import DataConfig, EstimationConfig, RunConfig
from pricing.inputs.panel import Panel, build_panel
from pricing.inputs.validation import check_inputs

AS_OF = dt.date(2024, 3, 1)

# Two segments over two weeks. web/entry, week of Jan 1: J1 (10 h at $25) and J2 (30 h at
# $20) hired; week of Jan 8: J3 posted, not hired. design/expert: one hired job in week 1,
# supply only in week 2.
JOBS = pd.DataFrame(
    {
        "job_id": ["J1", "J2", "J3", "J4"],
        "posted_at": [
            dt.date(2024, 1, 1),
            dt.date(2024, 1, 7),
            dt.date(2024, 1, 9),
            dt.date(2024, 1, 2),
        ],
        "category": ["web", "web", "web", "design"],
        "tier": ["entry", "entry", "entry", "expert"],
        "region": ["na", "eu", "na", "na"],
        "hours": [10.0, 30.0, 5.0, 8.0],
        "budget_rate": [20.0, 22.0, 21.0, 80.0],
        "hired": [True, True, False, True],
        "hired_rate": [25.0, 20.0, None, 90.0],
    }
)
SUPPLY = pd.DataFrame(
    {
        "freelancer_id": ["F1", "F2", "F1", "F2", "F3"],
        "week": [
            dt.date(2024, 1, 1),
            dt.date(2024, 1, 1),
            dt.date(2024, 1, 8),
            dt.date(2024, 1, 8),
            dt.date(2024, 1, 8),
        ],
        "category": ["web", "web", "web", "web", "design"],
        "tier": ["entry", "entry", "entry", "entry", "expert"],
        "region": ["na", "eu", "na", "eu", "eu"],
        "available_hours": [20.0, 10.0, 15.0, 0.0, 40.0],
        "ask_rate": [24.0, 26.0, 24.0, 30.0, 85.0],
    }
)
SHIFTERS = pd.DataFrame(
    {"week": [dt.date(2024, 1, 1), dt.date(2024, 1, 8)], "fx_index": [1.0, 1.2]}
)


def _panel(
    make_dir: Callable[..., Path], tables: dict[str, pd.DataFrame], config: RunConfig | None = None
) -> Panel:
    report = check_inputs(make_dir(tables), config, as_of=AS_OF)
    assert report.ok, report.summary()
    return build_panel(report.checked())


def _row(panel: Panel, week: str, **keys: str) -> pd.Series:
    f = panel.frame
    mask = f["week"] == pd.Timestamp(week)
    for k, v in keys.items():
        mask &= f[k] == v
    assert mask.sum() == 1
    return f[mask].iloc[0]


def test_hand_computed_segment_week(make_dir: Callable[..., Path]) -> None:
    panel = _panel(make_dir, {"jobs": JOBS, "supply": SUPPLY})
    r = _row(panel, "2024-01-01", category="web", tier="entry")
    assert r["jobs_posted"] == 2 and r["jobs_hired"] == 2
    assert r["hours_demanded"] == 40.0 and r["hours_hired"] == 40.0
    # hours-weighted geometric mean: exp((10 ln 25 + 30 ln 20) / 40)
    expected_rate = math.exp((10 * math.log(25) + 30 * math.log(20)) / 40)
    assert r["rate"] == pytest.approx(expected_rate, rel=1e-12)
    assert r["budget_rate"] == pytest.approx(
        math.exp((10 * math.log(20) + 30 * math.log(22)) / 40), rel=1e-12
    )
    assert r["hours_supplied"] == 30.0 and r["active_freelancers"] == 2
    assert r["ask_rate"] == pytest.approx(
        math.exp((20 * math.log(24) + 10 * math.log(26)) / 30), rel=1e-12
    )
    assert r["fill_rate"] == 1.0
    assert r["flags"] == ""


def test_week_without_hires_is_kept_and_flagged(make_dir: Callable[..., Path]) -> None:
    panel = _panel(make_dir, {"jobs": JOBS, "supply": SUPPLY})
    r = _row(panel, "2024-01-08", category="web", tier="entry")
    assert r["jobs_posted"] == 1 and r["jobs_hired"] == 0
    assert r["hours_demanded"] == 5.0 and r["hours_hired"] == 0.0
    assert pd.isna(r["rate"])
    assert r["fill_rate"] == 0.0
    # F2 offers 0 hours: counted in hours (0) but not as active; ask rate over offered hours only
    assert r["hours_supplied"] == 15.0 and r["active_freelancers"] == 1
    assert r["ask_rate"] == pytest.approx(24.0)
    assert r["flags"] == "no_hires"


def test_full_grid_flags_missing_sides(make_dir: Callable[..., Path]) -> None:
    panel = _panel(make_dir, {"jobs": JOBS, "supply": SUPPLY})
    assert len(panel.frame) == 4  # 2 segments x 2 weeks, nothing dropped
    first = _row(panel, "2024-01-01", category="design", tier="expert")
    assert first["flags"] == "no_supply" and first["hours_supplied"] == 0.0
    assert first["rate"] == pytest.approx(90.0)
    second = _row(panel, "2024-01-08", category="design", tier="expert")
    assert second["flags"] == "no_jobs,no_hires"
    assert second["jobs_posted"] == 0 and pd.isna(second["fill_rate"]) and pd.isna(second["rate"])


def test_totals_are_conserved(
    make_dir: Callable[..., Path], tables: dict[str, pd.DataFrame]
) -> None:
    panel = _panel(make_dir, tables)
    f = panel.frame
    jobs, supply = tables["jobs"], tables["supply"]
    assert f["jobs_posted"].sum() == len(jobs)
    assert f["jobs_hired"].sum() == jobs["hired"].sum()
    assert f["hours_demanded"].sum() == pytest.approx(jobs["hours"].sum(), rel=1e-12)
    assert f["hours_supplied"].sum() == pytest.approx(supply["available_hours"].sum(), rel=1e-12)


def test_shifters_joined_by_week(make_dir: Callable[..., Path]) -> None:
    panel = _panel(make_dir, {"jobs": JOBS, "supply": SUPPLY, "shifters": SHIFTERS})
    assert panel.shifter_columns == ("fx_index",)
    assert _row(panel, "2024-01-08", category="web", tier="entry")["fx_index"] == 1.2
    assert _row(panel, "2024-01-01", category="design", tier="expert")["fx_index"] == 1.0


def test_shifters_joined_by_week_and_category(make_dir: Callable[..., Path]) -> None:
    shifters = pd.DataFrame(
        {
            "week": [dt.date(2024, 1, 1), dt.date(2024, 1, 8)] * 2,
            "category": ["web", "web", "design", "design"],
            "fx_index": [1.0, 1.2, 2.0, 2.2],
        }
    )
    panel = _panel(make_dir, {"jobs": JOBS, "supply": SUPPLY, "shifters": shifters})
    assert _row(panel, "2024-01-08", category="design", tier="expert")["fx_index"] == 2.2
    assert _row(panel, "2024-01-08", category="web", tier="entry")["fx_index"] == 1.2


def test_region_as_segment_key(make_dir: Callable[..., Path]) -> None:
    jobs = JOBS.assign(region=["na", "na", "na", "eu"])
    supply = SUPPLY.assign(region=["na", "na", "na", "na", "eu"])
    config = RunConfig(data=DataConfig(segment_keys=("category", "tier", "region")))
    panel = _panel(make_dir, {"jobs": jobs, "supply": supply}, config)
    assert panel.segment_keys == ("category", "tier", "region")
    assert panel.n_segments == 2
    assert (
        _row(panel, "2024-01-01", category="design", tier="expert", region="eu")["jobs_posted"] == 1
    )


def test_segment_summary(make_dir: Callable[..., Path]) -> None:
    panel = _panel(make_dir, {"jobs": JOBS, "supply": SUPPLY})
    seg = panel.segments().set_index(["category", "tier"])
    web = seg.loc[("web", "entry")]
    assert web["weeks"] == 2 and web["weeks_with_hires"] == 1 and web["flagged_weeks"] == 1
    assert web["jobs_posted"] == 3 and web["jobs_hired"] == 2
    assert web["demand_supply_ratio"] == pytest.approx(45.0 / 45.0)
    assert web["last_rate"] == pytest.approx(math.exp((10 * math.log(25) + 30 * math.log(20)) / 40))
    assert web["last_rate_week"] == pd.Timestamp("2024-01-01")
    text = panel.summary()
    assert "2 segments" in text and "no_hires 2" in text
    assert "<table" in panel._repr_html_()


def test_config_shifters_unused_by_estimation_still_join(make_dir: Callable[..., Path]) -> None:
    config = RunConfig(estimation=EstimationConfig(demand_instruments=("fx_index",)))
    panel = _panel(
        make_dir, {"jobs": JOBS, "supply": SUPPLY, "shifters": SHIFTERS.assign(other=3.0)}, config
    )
    assert panel.shifter_columns == ("fx_index", "other")


# ------------------------------------------------------------- property: pandas oracle

CATEGORIES = ("web", "design")
TIER_NAMES = ("entry", "expert")
MONDAYS = [dt.date(2024, 1, 1) + dt.timedelta(weeks=w) for w in range(4)]


@st.composite
def markets(draw: st.DrawFn) -> dict[str, pd.DataFrame]:
    """Random small markets: every segment appears on both sides, weeks may be empty."""
    segments = [(c, t) for c in CATEGORIES for t in TIER_NAMES]
    jobs, supply = [], []
    for category, tier in segments:
        n_jobs = draw(st.integers(1, 6))
        for _ in range(n_jobs):
            hired = draw(st.booleans())
            jobs.append(
                {
                    "job_id": f"J{len(jobs)}",
                    "posted_at": draw(st.sampled_from(MONDAYS))
                    + dt.timedelta(days=draw(st.integers(0, 6))),
                    "category": category,
                    "tier": tier,
                    "hours": draw(st.floats(0.5, 80, allow_nan=False)),
                    "budget_rate": draw(st.floats(5, 200, allow_nan=False)),
                    "hired": hired,
                    "hired_rate": draw(st.floats(5, 200, allow_nan=False)) if hired else None,
                }
            )
        for f in range(draw(st.integers(1, 3))):
            for week in draw(st.sets(st.sampled_from(MONDAYS), min_size=1)):
                supply.append(
                    {
                        "freelancer_id": f"F{category}{tier}{f}",
                        "week": week,
                        "category": category,
                        "tier": tier,
                        "available_hours": draw(st.sampled_from([0.0, 5.0, 12.5, 40.0])),
                        "ask_rate": draw(st.floats(5, 200, allow_nan=False)),
                    }
                )
    return {"jobs": pd.DataFrame(jobs), "supply": pd.DataFrame(supply)}


def oracle(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The panel computed independently with pandas, row by row from its definition."""
    jobs = tables["jobs"].assign(
        week=lambda d: pd.to_datetime(d["posted_at"]).dt.to_period("W-SUN").dt.start_time
    )
    supply = tables["supply"].assign(week=lambda d: pd.to_datetime(d["week"]))
    weeks = pd.date_range(
        min(jobs["week"].min(), supply["week"].min()),
        max(jobs["week"].max(), supply["week"].max()),
        freq="7D",
    )
    rows = []
    for category in CATEGORIES:
        for tier in TIER_NAMES:
            for week in weeks:
                j = jobs[(jobs.category == category) & (jobs.tier == tier) & (jobs.week == week)]
                s = supply[
                    (supply.category == category) & (supply.tier == tier) & (supply.week == week)
                ]
                h = j[j.hired]
                offered = s[s.available_hours > 0]
                rows.append(
                    {
                        "category": category,
                        "tier": tier,
                        "week": week,
                        "jobs_posted": len(j),
                        "jobs_hired": len(h),
                        "hours_demanded": j.hours.sum(),
                        "hours_supplied": s.available_hours.sum(),
                        "active_freelancers": len(offered),
                        "rate": math.exp(
                            (h.hours * h.hired_rate.map(math.log)).sum() / h.hours.sum()
                        )
                        if len(h)
                        else math.nan,
                        "ask_rate": math.exp(
                            (offered.available_hours * offered.ask_rate.map(math.log)).sum()
                            / offered.available_hours.sum()
                        )
                        if len(offered)
                        else math.nan,
                    }
                )
    return pd.DataFrame(rows)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(tables=markets())
def test_panel_matches_pandas_oracle(
    make_dir: Callable[..., Path], tables: dict[str, pd.DataFrame]
) -> None:
    panel = _panel(make_dir, tables).frame.sort_values(["category", "tier", "week"])
    expected = oracle(tables).sort_values(["category", "tier", "week"])
    assert len(panel) == len(expected)
    for column in ("jobs_posted", "jobs_hired", "active_freelancers"):
        assert panel[column].tolist() == expected[column].tolist(), column
    # sums and geometric means of at most a few dozen terms: 1e-12 relative is float noise
    for column in ("hours_demanded", "hours_supplied", "rate", "ask_rate"):
        np.testing.assert_allclose(panel[column], expected[column], rtol=1e-12, err_msg=column)
    assert (panel["flags"].str.contains("no_hires") == (panel["jobs_hired"] == 0)).all()
