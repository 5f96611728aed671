"""One format for numbers across the CLI and the report: units in labels, percentages
as `103.2 %` (a level) or `+1.3 %` (a change), a fill's change in `pp`, missing values
as `–`; JSON keeps fractions."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_guidance import curve_set, guide, hand_market

from pricing.decisions.scenario import TOTAL_LABELS, totals_text
from pricing.display import MISSING, number, share, signed_share, table
from pricing.market.equilibrium import solve
from pricing.store.stored import read_table


def test_share_and_number_have_one_format() -> None:
    assert share(1.0324) == "103.2 %"
    assert share(0.0126, signed=True) == signed_share(0.0126) == "+1.3 %"
    assert signed_share(-0.0004) == "-0.0 %"
    # a rate that two exact solves put 1e-15 apart did not change: no sign of its own
    assert signed_share(-1e-15) == signed_share(1e-15) == "+0.0 %"
    assert share(math.nan) == share(None) == MISSING == "–"
    assert number(None) == number(float("inf")) == "–"
    assert number(np.float64(1234.5)) == "1,234.50"


def test_a_table_prints_every_kind_of_missing_value_as_a_dash() -> None:
    frame = pd.DataFrame(
        {
            "rate": [1.5, np.nan, np.inf],
            "gap_frac": [0.05, np.nan, -0.1],
            "state": ["ok", None, "x"],
            "week": pd.to_datetime(["2025-12-22", None, "2025-12-22"]),
            "count": pd.array([1, None, 3], dtype="Int64"),
        }
    )
    text = table(frame, "{:.2f}", {"gap_frac": signed_share})
    rows = [line.split() for line in text.splitlines()]
    assert rows[0] == ["rate", "gap_frac", "state", "week", "count"]
    assert rows[1] == ["1.50", "+5.0", "%", "ok", "2025-12-22", "1"]
    assert rows[2] == ["–"] * 5
    assert rows[3] == ["–", "-10.0", "%", "x", "2025-12-22", "3"]


def test_equilibrium_and_guidance_summaries_print_missing_values_as_a_dash() -> None:
    # D = 1000/P, S = 10 W: p* = 10; the second segment has no observed rate (no gap,
    # no band: thin data), the first one is 25 % below its clearing rate
    market = hand_market([-1.0, -1.0], [1.0, 1.0], [8.0, np.nan])
    eq = solve(market)
    guidance = guide(eq, curve_set(market, 0.1, 0.1))
    for result in (eq, guidance):
        text = result.summary()
        assert "nan" not in text.lower() and "<NA>" not in text
        assert f" {MISSING} " in text and "+25.0 %" in text
        html = result._repr_html_()
        assert "NaN" not in html and f"<td>{MISSING}</td>" in html
    # JSON keeps the gap as a fraction (0.25 is 25 %) and the missing one as null
    for result, rows in ((eq, "segment_equilibrium"), (guidance, "segment_guidance")):
        gaps = [row["gap_frac"] for row in result.to_dict()[rows]]
        assert gaps[0] == pytest.approx(0.25, rel=1e-12) and gaps[1] is None


def test_what_if_totals_print_with_units_and_fill_in_percent() -> None:
    totals = pd.DataFrame(
        {
            "measure": ["rate", "hours", "gmv", "fee_revenue", "fill", "shortage_hours"],
            "baseline": [53.67, 10626.756, 570334.867, 85550.23, 1.013, 0.0],
            "scenario": [54.379, 10743.798, 584232.914, 87469.742, 1.010, 0.0],
        }
    )
    totals["change"] = totals["scenario"] - totals["baseline"]
    totals["change_frac"] = totals["change"] / totals["baseline"].where(totals["baseline"] != 0)
    text = totals_text(totals).set_index("measure")
    assert list(text.index) == [TOTAL_LABELS[m] for m in totals["measure"]]
    assert all(unit in " ".join(text.index) for unit in ("USD/h", "hours/week", "USD/week"))
    fill = text.loc[TOTAL_LABELS["fill"]]
    assert fill.tolist() == ["101.3 %", "101.0 %", "-0.3 pp", "-0.3 %"]
    assert text.loc[TOTAL_LABELS["gmv"]].tolist() == ["570,335", "584,233", "+13,898", "+2.4 %"]
    assert text.loc[TOTAL_LABELS["shortage_hours"], "change, %"] == "–"  # 0 / 0, not NaN
    # the JSON form keeps the fraction: what --json prints and exports write
    assert json.loads(totals.to_json(orient="records"))[4]["baseline"] == 1.013


def test_a_table_stored_with_percentages_reads_as_fractions(tmp_path: Path) -> None:
    # runs and scenarios stored before relative changes became fractions hold *_pct
    pd.DataFrame(
        {"category": ["a", "b"], "gap_pct": [25.0, np.nan], "rate": [1.0, 2.0]}
    ).to_parquet(tmp_path / "guidance.parquet")
    pd.DataFrame({"measure": ["hours"], "change_pct": [-1.5]}).to_parquet(
        tmp_path / "totals.parquet"
    )
    guidance = read_table(tmp_path, "guidance", "run")
    assert guidance is not None and list(guidance.columns) == ["category", "gap_frac", "rate"]
    # x / 100: IEEE division is correctly rounded, so 1e-15 is room to spare
    np.testing.assert_allclose(guidance["gap_frac"], [0.25, np.nan], rtol=1e-15)
    totals = read_table(tmp_path, "totals", "scenario")
    assert totals is not None
    np.testing.assert_allclose(totals["change_frac"], [-0.015], rtol=1e-15)


def test_sql_views_show_old_percentages_as_fractions(tmp_path: Path) -> None:
    import duckdb

    from pricing.store.snapshot import _view

    old, new = tmp_path / "old.parquet", tmp_path / "new.parquet"
    pd.DataFrame({"run": ["old"], "gap_pct": [25.0]}).to_parquet(old)
    pd.DataFrame({"run": ["new"], "gap_frac": [-0.5]}).to_parquet(new)
    con = duckdb.connect()
    _view(con, "mixed", [old, new])
    _view(con, "only_old", [old])
    mixed = con.execute("SELECT run, gap_frac FROM mixed ORDER BY run").fetchall()
    assert mixed == [("new", -0.5), ("old", 0.25)]
    assert con.execute("SELECT * FROM only_old").fetchall() == [("old", 0.25)]
