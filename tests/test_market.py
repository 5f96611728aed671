"""Market construction: by hand, from fitted curves, and the errors a bad market raises."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pricing.config import MarketConfig, RateBound, resolve_config
from pricing.errors import MarketError
from pricing.estimation.curves import fit_curves
from pricing.inputs.panel import build_panel
from pricing.inputs.validation import check_inputs
from pricing.market.market import Market

SAMPLE = "data/sample"


def _segments(n: int = 3) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "category": [f"c{i}" for i in range(n)],
            "tier": ["entry"] * n,
            "demand_elasticity": [-1.2] * n,
            "log_demand_level": [8.0] * n,
            "supply_elasticity": [0.8] * n,
            "log_supply_level": [3.0] * n,
        }
    )


def _edges(rows: list[tuple[int, int, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["pool", "segment", "friction"])


@pytest.fixture(scope="module")
def curves():  # type: ignore[no-untyped-def]
    config, _ = resolve_config(SAMPLE, None)
    report = check_inputs(SAMPLE, config)
    checked = report.checked()
    return fit_curves(build_panel(checked), config.estimation), checked.table("adjacency")


def test_defaults_and_components() -> None:
    market = Market(_segments(4), _edges([(0, 1, 2.0), (2, 1, 0.0)]))
    assert market.component.tolist()[:3] == [market.component[0]] * 3
    assert market.component[3] != market.component[0]
    assert (market.array("client_fee") == 0).all()
    assert np.isnan(market.array("rate_cap")).all()
    assert "4 segments" in market.summary()
    assert market.edges_frame()["from_segment"].tolist() == ["c0/entry", "c2/entry"]


def test_every_problem_is_reported_at_once() -> None:
    seg = _segments(3)
    seg.loc[0, "demand_elasticity"] = 0.5
    seg.loc[1, "supply_elasticity"] = -0.1
    seg["client_fee"] = [0.0, 1.2, 0.0]
    seg["rate_floor"] = [np.nan, np.nan, 50.0]
    seg["rate_cap"] = [np.nan, np.nan, 40.0]
    with pytest.raises(MarketError) as err:
        Market(seg, _edges([(0, 0, 1.0), (1, 2, -3.0)]))
    text = str(err.value)
    for phrase in (
        "demand elasticity must be negative: c0/entry",
        "supply elasticity must be positive: c1/entry",
        "client_fee must be in [0, 1): c1/entry",
        "rate_floor must be below rate_cap: c2/entry",
        "joins a pool to its own segment",
        "friction must be finite and ≥ 0",
    ):
        assert phrase in text


def test_edge_out_of_range_and_missing_columns() -> None:
    with pytest.raises(MarketError, match="position ≥ 3"):
        Market(_segments(3), _edges([(0, 7, 1.0)]))
    with pytest.raises(MarketError, match="log_supply_level"):
        Market(_segments(2).drop(columns="log_supply_level"))


def test_segment_without_curve_is_carried_not_solved() -> None:
    seg = _segments(2)
    for column in (
        "demand_elasticity",
        "log_demand_level",
        "supply_elasticity",
        "log_supply_level",
    ):
        seg.loc[1, column] = np.nan
    market = Market(seg, _edges([(0, 1, 1.0)]))
    assert market.usable.tolist() == [True, False]
    assert not market.active_edges.any()


def test_from_curves_reproduces_the_estimated_curves_at_the_configured_fees(curves) -> None:  # type: ignore[no-untyped-def]
    fitted, adjacency = curves
    plain = Market.from_curves(fitted, adjacency)
    fees = MarketConfig(client_fee=0.1, freelancer_fee=0.2, client_fee_by_category={"design": 0.05})
    market = Market.from_curves(fitted, adjacency, fees)
    demand = fitted.side("demand")
    observed = market.array("observed_rate")
    # at the observed listed rate, hours demanded are the curve's reference hours
    np.testing.assert_allclose(
        market.demand_hours(observed), plain.demand_hours(observed), rtol=1e-12
    )
    np.testing.assert_allclose(
        market.supply_hours(observed), plain.supply_hours(observed), rtol=1e-12
    )
    np.testing.assert_allclose(
        plain.demand_hours(observed), demand["ref_hours"].to_numpy(), rtol=1e-10
    )
    design = market.segments["category"].astype(str) == "design"
    assert (market.segments.loc[design, "client_fee"] == 0.05).all()
    assert (market.segments.loc[~design, "client_fee"] == 0.1).all()
    # category edges become segment edges within each tier
    assert len(market.edges) == len(adjacency) * 3
    tiers = market.segments["tier"].to_numpy()
    assert (tiers[market.edges["pool"]] == tiers[market.edges["segment"]]).all()


def test_from_curves_bounds_and_their_errors(curves) -> None:  # type: ignore[no-untyped-def]
    fitted, adjacency = curves
    config = MarketConfig(
        bounds=(
            RateBound(category="design", floor=30.0),
            RateBound(category="design", tier="expert", floor=45.0, cap=400.0),
        )
    )
    market = Market.from_curves(fitted, adjacency, config)
    s = market.segments.assign(category=market.segments["category"].astype(str))
    expert = s[(s["category"] == "design") & (s["tier"].astype(str) == "expert")].iloc[0]
    assert expert["rate_floor"] == 45.0 and expert["rate_cap"] == 400.0
    entry = s[(s["category"] == "design") & (s["tier"].astype(str) == "entry")].iloc[0]
    assert entry["rate_floor"] == 30.0 and np.isnan(entry["rate_cap"])
    bad = MarketConfig(
        client_fee_by_category={"desing": 0.1},
        bounds=(RateBound(category="legl", cap=50.0), RateBound(region="eu", floor=1.0)),
    )
    with pytest.raises(MarketError) as err:
        Market.from_curves(fitted, adjacency, bad)
    text = str(err.value)
    assert "did you mean 'design'" in text
    assert "did you mean 'legal'" in text
    assert "'region' is not a segment key" in text
