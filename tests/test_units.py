"""One format for numbers across the CLI and the report: units in labels, percentages
as `103.2 %` (a level) or `+1.3 %` (a change), a fill's change in `pp`, missing values
as `–`; JSON keeps fractions."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from pricing.decisions.scenario import TOTAL_LABELS, totals_text
from pricing.display import MISSING, number, percent


def test_percent_and_number_have_one_format() -> None:
    assert percent(103.24) == "103.2 %"
    assert percent(1.26, signed=True) == "+1.3 %"
    assert percent(-0.04, signed=True) == "-0.0 %"
    assert percent(math.nan) == MISSING == "–"
    assert number(None) == number(float("inf")) == "–"
    assert number(np.float64(1234.5)) == "1,234.50"


def test_what_if_totals_print_with_units_and_fill_in_percent() -> None:
    totals = pd.DataFrame(
        {
            "measure": ["rate", "hours", "gmv", "fee_revenue", "fill", "shortage_hours"],
            "baseline": [53.67, 10626.756, 570334.867, 85550.23, 1.013, 0.0],
            "scenario": [54.379, 10743.798, 584232.914, 87469.742, 1.010, 0.0],
        }
    )
    totals["change"] = totals["scenario"] - totals["baseline"]
    totals["change_pct"] = (
        100 * totals["change"] / totals["baseline"].where(totals["baseline"] != 0)
    )
    text = totals_text(totals).set_index("measure")
    assert list(text.index) == [TOTAL_LABELS[m] for m in totals["measure"]]
    assert all(unit in " ".join(text.index) for unit in ("USD/h", "hours/week", "USD/week"))
    fill = text.loc[TOTAL_LABELS["fill"]]
    assert fill.tolist() == ["101.3 %", "101.0 %", "-0.3 pp", "-0.3 %"]
    assert text.loc[TOTAL_LABELS["gmv"]].tolist() == ["570,335", "584,233", "+13,898", "+2.4 %"]
    assert text.loc[TOTAL_LABELS["shortage_hours"], "change, %"] == "–"  # 0 / 0, not NaN
    # the JSON form keeps the fraction: what --json prints and exports write
    assert json.loads(totals.to_json(orient="records"))[4]["baseline"] == 1.013
