"""The flows of an equilibrium (pool → segment hours, wage, friction) add up: each pool's
outflows are its supply at its wage, each segment's inflows are the hours it buys (plus
idle hours at a floor, less the shortage at a cap), and hours move only along edges where
the rate less the friction is the pool's wage. Stored with every run and scenario."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import SAMPLE, quick_config

from pricing.config import Scenario
from pricing.decisions.flows import Flows, flows_table
from pricing.market.equilibrium import VERIFY_TOL, solve
from pricing.market.synthetic import random_market
from pricing.runs.pipeline import run_batch
from pricing.runs.run import Run, load_run
from pricing.store.snapshot import Snapshot

#: The solver accepts an answer when every balance holds to VERIFY_TOL (1e-6) in rate
#: terms: an hours residual r at a node counts as r / (|elasticity| · hours), the change
#: of the node's rate that would close it. The flows are that answer's own numbers, so
#: they must add up to the same bar, measured the same way (a little slack, 2×, for the
#: sums being taken in another order than the solver's).
TOL = 2 * VERIFY_TOL


def _balances(result: object) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    from pricing.market.equilibrium import EquilibriumResult

    assert isinstance(result, EquilibriumResult)
    flows = flows_table(result)
    market = result.market
    n = len(market)
    index = {
        label: i
        for i, label in enumerate(map(tuple, market.segments[["category", "tier"]].to_numpy()))
    }
    pool = np.array(
        [index[k] for k in map(tuple, flows[["pool_category", "pool_tier"]].to_numpy())]
    )
    seg = np.array([index[k] for k in map(tuple, flows[["category", "tier"]].to_numpy())])
    hours = flows["hours"].to_numpy(np.float64)
    return flows, np.bincount(pool, hours, minlength=n), np.bincount(seg, hours, minlength=n)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_flows_add_up_on_coupled_markets_with_bounds(seed: int) -> None:
    market = random_market(240, (2, 12), seed=seed, bounded_share=0.3)
    result = solve(market)
    assert result.ok
    flows, outflow, inflow = _balances(result)
    eq = result.to_frame()
    # own-pool supply = Σ outflows (home flow included), at the pool's wage
    supply = market.supply_hours(result.wage)
    eta = market.array("supply_elasticity")
    assert np.max(np.abs(supply - outflow) / (eta * supply)) <= TOL
    # segment hours = Σ inflows: demand at the rate, plus idle hours at a floor, less the
    # shortage at a cap
    demand = market.demand_hours(result.rate)
    eps = np.abs(market.array("demand_elasticity"))
    bought = demand + result.surplus - result.shortage
    assert np.max(np.abs(bought - inflow) / (eps * demand)) <= TOL
    np.testing.assert_allclose(eq["supply_hours"], outflow, rtol=1e-12)
    np.testing.assert_allclose(eq["hours"], inflow - result.surplus, rtol=1e-12)
    assert (eq["bound"] != "").any()  # the bounds are exercised
    # hours move only where the pool's wage is the rate less the friction
    used = flows[flows["hours"] > TOL * flows["hours"].max()]
    gap = (used["rate"] - used["friction"] - used["pool_wage"]) / used["rate"]
    assert np.max(np.abs(gap)) <= TOL
    assert (used["kind"] == "edge").any()
    idle = flows[(flows["kind"] == "edge") & (flows["hours"] <= 0)]
    assert ((idle["pool_wage"] - idle["rate"] + idle["friction"]) / idle["rate"] >= -TOL).all()


def test_category_matrix_and_balance_keep_every_hour() -> None:
    result = solve(random_market(120, (2, 6), seed=4))
    flows = Flows.of(result)
    total = float(flows.to_frame()["hours"].sum())
    assert flows.by_category().to_numpy().sum() == pytest.approx(total, rel=1e-12)
    balance = flows.balance()
    eq = result.to_frame()
    np.testing.assert_allclose(
        balance["home_hours"] + balance["outflow_hours"], eq["supply_hours"], rtol=1e-12
    )
    np.testing.assert_allclose(
        balance["home_hours"] + balance["inflow_hours"],
        eq["hours"] + eq["surplus_hours"],
        rtol=1e-12,
    )
    assert "hours a week" in flows.summary() and "<table" in flows._repr_html_()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """A quick run of the sample. Its guidance band draws overflow on main
    (RuntimeWarnings from pricing/decisions/guidance.py, being fixed elsewhere); the
    flows come from the equilibrium, not from the bands."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return run_batch(SAMPLE, quick_config(), tmp_path_factory.mktemp("flows") / "store")


@pytest.mark.slow
def test_a_run_and_a_scenario_store_their_flows(run: Run) -> None:
    stored = run.flows.to_frame()
    fresh = flows_table(run.baseline)
    assert list(stored.columns) == list(fresh.columns)
    pd.testing.assert_frame_equal(stored, fresh, rtol=1e-9)
    # the sample is coupled: some freelancers work outside their own category
    assert stored.loc[stored["kind"] == "edge", "hours"].sum() > 0
    boom = Scenario(name="boom", demand=[{"category": "design", "multiplier": 1.2}])
    result = run.whatif(boom, save=True)
    assert result.flows.to_frame()["hours"].sum() == pytest.approx(
        result.to_frame()["hours_scenario"].sum() + result.result.to_frame()["surplus_hours"].sum(),
        rel=1e-9,
    )
    with Snapshot.open(run.store) as snapshot:
        counts = snapshot.query(
            "SELECT (SELECT count(*) FROM flows) AS run_rows, "
            "(SELECT count(*) FROM scenario_flows WHERE scenario = 'boom') AS scenario_rows"
        )
    assert counts.iloc[0].tolist() == [len(stored), len(result.flows.to_frame())]


def test_a_run_stored_before_flows_were_kept_re_solves_them(run: Run, tmp_path: Path) -> None:
    root = tmp_path / "store"
    shutil.copytree(run.store.root, root)
    (folder,) = root.glob("runs/as_of=*/build=*")
    (folder / "flows.parquet").unlink()
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["tables"]["flows"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    older = load_run("latest", root)
    assert older.table("flows") is None
    pd.testing.assert_frame_equal(older.flows.to_frame(), run.flows.to_frame(), rtol=1e-9)
