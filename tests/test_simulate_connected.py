"""The simulator's connected markets (issue 18): cross-family edges and tier moves join
the skill families into one component, the adjacency names tier moves in contract v1.1
(``from_tier``/``to_tier``), the truth is the coupled equilibrium of the adjacency
written, and the nightly run clears such a market without a degraded segment.

Tolerances: the true clearing rates come from the engine's verified solver (the forest:
rates at rounding, ~1e-15 relative); re-solving the last week's true curves from the
written tables is a second solve of the same problem, held to 1e-9 (the interior point's
~1e-10 with a 10× margin, should that path answer).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from pricing.config import GuidanceConfig, InterventionsConfig
from pricing.inputs.validation import check_inputs
from pricing.market.equilibrium import solve
from pricing.market.market import Market, segment_edges
from pricing.market.simulate import SimulatedMarket, SimulationSpec, simulate_market
from pricing.runs.pipeline import run_batch

CONNECTED = SimulationSpec(
    segments=300, weeks=104, seed=4, jobs_per_week=5.0, cross_family_edges=1.5, tier_moves=0.5
)
RATE_TOL = 1e-9


@pytest.fixture(scope="module")
def market() -> SimulatedMarket:
    return simulate_market(CONNECTED)


def segments(market: SimulatedMarket) -> pd.DataFrame:
    """The segment keys of a simulated market (also of a regional one), as text."""
    return market.truth.select(list(market.spec.segment_keys)).to_pandas().astype(str)


def edges(market: SimulatedMarket) -> pd.DataFrame:
    """The segment edges the engine reads from the adjacency written."""
    keys = list(market.spec.segment_keys)
    return segment_edges(segments(market), keys, market.adjacency.to_pandas())


def last_week_curves(market: SimulatedMarket) -> pd.DataFrame:
    """The segments with the last week's true curves (shifters and shocks in the levels)."""
    truth = market.truth.to_pandas()
    last = market.shifters.to_pandas().iloc[-1]
    return segments(market).assign(
        demand_elasticity=truth["demand_elasticity"],
        log_demand_level=truth["log_demand_level"]
        + truth["demand_shifter_loading"] * last["client_marketing_index"]
        + truth["demand_shock_last_week"],
        supply_elasticity=truth["supply_elasticity"],
        log_supply_level=truth["log_supply_level"]
        + truth["supply_shifter_loading"] * last["fx_index"]
        + truth["supply_shock_last_week"],
    )


def test_the_options_default_to_the_families_alone() -> None:
    """Without the options the market is the one it always was (the sample test pins the
    bytes); with them, the first five random streams are untouched, so the segments'
    parameters stay and only the adjacency and what it moves change."""
    plain = simulate_market(SimulationSpec(segments=60, weeks=10, seed=2))
    joined = simulate_market(
        SimulationSpec(segments=60, weeks=10, seed=2, cross_family_edges=1.0, tier_moves=0.5)
    )
    parameters = ["demand_elasticity", "supply_elasticity", "log_demand_level", "reference_rate"]
    assert plain.truth.select(parameters).equals(joined.truth.select(parameters))
    assert plain.adjacency.column_names == ["from_category", "to_category", "friction"]
    assert joined.adjacency.num_rows > plain.adjacency.num_rows


def test_cross_family_edges_and_tier_moves_join_one_component(market: SimulatedMarket) -> None:
    """300 segments (100 categories, 9 families): every segment in one component, as the
    engine couples segments from the adjacency written; the tier moves go one tier up
    within a category."""
    n = CONNECTED.segments
    found = edges(market)
    graph = coo_matrix((np.ones(len(found)), (found["pool"], found["segment"])), shape=(n, n))
    assert connected_components(graph, directed=False)[0] == 1
    adjacency = market.adjacency.to_pandas()
    moves = adjacency[adjacency["from_tier"].notna()]
    assert len(moves) > 0
    assert (moves["from_category"] == moves["to_category"]).all()
    up = {"entry": "intermediate", "intermediate": "expert"}
    assert (moves["from_tier"].map(up) == moves["to_tier"]).all()
    assert adjacency[adjacency["from_tier"].isna()]["to_tier"].isna().all()


def test_the_written_market_validates(market: SimulatedMarket, tmp_path: Path) -> None:
    """Contract v1.1: the tier columns validate, and no row repeats an edge."""
    report = check_inputs(market.write(tmp_path / "data"), market.config)
    assert report.ok, report.summary()


def test_truth_is_the_coupled_equilibrium_of_the_adjacency(market: SimulatedMarket) -> None:
    """The last week's true curves (levels with the shifters' and shocks' values) and the
    written adjacency, solved again: the truth's clearing rates to 1e-9, and the segments
    trade across families and tiers (rates are not each segment's own crossing)."""
    curves = last_week_curves(market)
    found = edges(market)[["pool", "segment", "friction"]]
    result = solve(Market(curves, found))
    assert result.ok
    clearing = market.truth["clearing_rate_last_week"].to_numpy()
    np.testing.assert_allclose(result.rate, clearing, rtol=RATE_TOL)
    alone = Market(curves, found.iloc[:0]).uncoupled_rate()
    assert np.abs(alone / clearing - 1).max() > 0.01


@pytest.mark.slow
def test_the_nightly_run_on_a_connected_market_has_no_degraded_segment(
    market: SimulatedMarket, tmp_path: Path
) -> None:
    """The nightly run (estimation, one connected equilibrium, band draws; no plan, and
    40 draws to keep the test short) on 300 connected segments stores a run with every
    segment cleared: ``strict`` stores nothing and raises if any segment is degraded."""
    data = market.write(tmp_path / "data")
    config = market.config.model_copy(
        update={
            "interventions": InterventionsConfig(budget=0.0),
            "guidance": GuidanceConfig(draws=40),
        }
    )
    run = run_batch(data, config, tmp_path / "store", strict=True)
    assert run.manifest.degraded == ()
    assert (run.equilibrium["status"] == "solved").all()
