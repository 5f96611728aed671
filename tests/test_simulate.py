"""Tests of the synthetic marketplace: contract, determinism, realism and recovery."""

from __future__ import annotations

import datetime
from collections import Counter
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from pricing.config import load_config
from pricing.market.equilibrium import solve
from pricing.market.market import Market, segment_edges
from pricing.market.simulate import (
    FAMILY_SIZE,
    SimulatedMarket,
    SimulationSpec,
    _sequential_ids,
    simulate_market,
)

SMALL = SimulationSpec(segments=12, weeks=30, seed=7)
SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"
# the arguments of `make sample`, which wrote the committed data/sample
SAMPLE_SPEC = SimulationSpec(segments=36, weeks=104, seed=20240101, jobs_per_week=12.0)
TIERS = {"entry", "intermediate", "expert"}

# The data contract of DESIGN.md §2, written out here rather than imported so that a change
# of the module's schemas cannot silently change the contract.
EXPECTED_SCHEMAS = {
    "jobs": pa.schema(
        [
            ("job_id", pa.string()),
            ("posted_at", pa.date32()),
            ("category", pa.string()),
            ("tier", pa.string()),
            ("region", pa.string()),
            ("hours", pa.float64()),
            ("budget_rate", pa.float64()),
            ("hired", pa.bool_()),
            ("hired_rate", pa.float64()),
        ]
    ),
    "supply": pa.schema(
        [
            ("freelancer_id", pa.string()),
            ("week", pa.date32()),
            ("category", pa.string()),
            ("tier", pa.string()),
            ("region", pa.string()),
            ("available_hours", pa.float64()),
            ("ask_rate", pa.float64()),
        ]
    ),
    "shifters": pa.schema(
        [
            ("week", pa.date32()),
            ("client_marketing_index", pa.float64()),
            ("fx_index", pa.float64()),
        ]
    ),
    "adjacency": pa.schema(
        [
            ("from_category", pa.string()),
            ("to_category", pa.string()),
            ("friction", pa.float64()),
        ]
    ),
    "interventions": pa.schema(
        [
            ("intervention_id", pa.string()),
            ("category", pa.string()),
            ("kind", pa.string()),
            ("cost_per_unit", pa.float64()),
            ("max_units", pa.int64()),
            ("effect_per_unit", pa.float64()),
            ("to_category", pa.string()),
        ]
    ),
}
TRUTH_COLUMNS = {
    "category": pa.string(),
    "tier": pa.string(),
    "demand_elasticity": pa.float64(),
    "supply_elasticity": pa.float64(),
    "log_demand_level": pa.float64(),
    "log_supply_level": pa.float64(),
    "demand_shifter_loading": pa.float64(),
    "supply_shifter_loading": pa.float64(),
    "stickiness": pa.float64(),
    "shock_rho": pa.float64(),
    "thin": pa.bool_(),
    "last_week": pa.date32(),
    "observed_rate_last_week": pa.float64(),
    "clearing_rate_last_week": pa.float64(),
    "demand_hours_at_clearing": pa.float64(),
    "demand_shock_last_week": pa.float64(),
    "supply_shock_last_week": pa.float64(),
}


@pytest.fixture(scope="module")
def market() -> SimulatedMarket:
    return simulate_market(SMALL)


def _frame(table: pa.Table) -> pd.DataFrame:
    return table.to_pandas(types_mapper=pd.ArrowDtype)


def _week_index(dates: pa.ChunkedArray, start: datetime.date) -> npt.NDArray[np.int64]:
    days = dates.to_numpy().astype("datetime64[D]") - np.datetime64(start)
    return np.asarray(days.astype(np.int64) // 7, dtype=np.int64)


def _category_family(market: SimulatedMarket) -> dict[str, int]:
    """Skill family of every category, from its index in segment order."""
    names = pc.unique(market.truth["category"]).to_pylist()
    return {name: index // FAMILY_SIZE for index, name in enumerate(names)}


def check_contract(market: SimulatedMarket) -> None:
    """Every rule of the input data contract that one market must satisfy."""
    spec = market.spec
    for name, schema in EXPECTED_SCHEMAS.items():
        assert market.tables[name].schema.equals(schema), name
    for name, dtype in TRUTH_COLUMNS.items():
        assert market.truth.schema.field(name).type == dtype, name
    for name, table in market.tables.items():
        for column in table.column_names:
            if (name, column) not in {("jobs", "hired_rate"), ("interventions", "to_category")}:
                assert table[column].null_count == 0, (name, column)

    last_week = spec.start + datetime.timedelta(weeks=spec.weeks - 1)
    categories = set(market.truth["category"].to_pylist())
    segments = set(
        zip(market.truth["category"].to_pylist(), market.truth["tier"].to_pylist(), strict=True)
    )
    assert len(segments) == market.truth.num_rows == spec.segments
    assert len(categories) == spec.categories

    jobs = market.jobs
    assert pc.count_distinct(jobs["job_id"]).as_py() == jobs.num_rows
    assert pc.min(jobs["posted_at"]).as_py() >= spec.start
    assert pc.max(jobs["posted_at"]).as_py() <= last_week + datetime.timedelta(days=6)
    assert set(pc.unique(jobs["tier"]).to_pylist()) <= TIERS
    assert set(pc.unique(jobs["region"]).to_pylist()) <= set(spec.regions)
    assert set(zip(jobs["category"].to_pylist(), jobs["tier"].to_pylist(), strict=True)) <= segments
    assert pc.all(pc.greater(jobs["hours"], 0)).as_py() in (True, None)
    assert pc.all(pc.greater(jobs["budget_rate"], 0)).as_py() in (True, None)
    hired = jobs["hired"].to_numpy()
    hired_rate = jobs["hired_rate"]
    np.testing.assert_array_equal(hired_rate.is_null().to_numpy(), ~hired)
    assert not np.isnan(hired_rate.to_numpy(zero_copy_only=False)[hired]).any()
    assert pc.all(pc.greater(hired_rate, 0)).as_py() in (True, None)

    supply = market.supply
    keys = pa.table({"f": supply["freelancer_id"], "w": supply["week"]})
    assert keys.group_by(["f", "w"]).aggregate([]).num_rows == supply.num_rows
    weeks = {spec.start + datetime.timedelta(weeks=t) for t in range(spec.weeks)}
    assert set(pc.unique(supply["week"]).to_pylist()) <= weeks
    assert (
        set(zip(supply["category"].to_pylist(), supply["tier"].to_pylist(), strict=True))
        <= segments
    )
    assert set(pc.unique(supply["region"]).to_pylist()) <= set(spec.regions)
    assert pc.all(pc.greater_equal(supply["available_hours"], 0)).as_py()
    assert pc.all(pc.greater(supply["ask_rate"], 0)).as_py()
    # a freelancer keeps one primary segment
    primary = pa.table({"f": supply["freelancer_id"], "c": supply["category"], "t": supply["tier"]})
    n_freelancers = pc.count_distinct(supply["freelancer_id"]).as_py()
    assert primary.group_by(["f", "c", "t"]).aggregate([]).num_rows == n_freelancers

    assert market.shifters["week"].to_pylist() == sorted(weeks)

    adjacency = _frame(market.adjacency)
    assert set(adjacency["from_category"]) | set(adjacency["to_category"]) <= categories
    assert (adjacency["from_category"] != adjacency["to_category"]).all()
    assert not adjacency.duplicated(["from_category", "to_category"]).any()
    assert (adjacency["friction"] >= 0).all()
    family = _category_family(market)
    family_size = Counter(family.values())
    assert (adjacency["from_category"].map(family) == adjacency["to_category"].map(family)).all()
    out_degree = adjacency.groupby("from_category").size()
    assert set(out_degree.index) == {c for c in categories if family_size[family[c]] >= 2}
    assert out_degree.between(1, 2).all()

    levers = _frame(market.interventions)
    assert levers["intervention_id"].is_unique
    assert set(levers["category"]) <= categories
    assert set(levers["kind"]) <= {"recruit", "reskill", "fee_discount"}
    assert (levers["cost_per_unit"] > 0).all()
    assert (levers["max_units"] >= 1).all()
    assert (levers["effect_per_unit"] >= 0).all()
    for kind in ("recruit", "fee_discount"):
        assert sorted(levers.loc[levers["kind"] == kind, "category"]) == sorted(categories)
    reskill = levers["kind"] == "reskill"
    assert levers.loc[~reskill, "to_category"].isna().all()
    edges = set(zip(adjacency["from_category"], adjacency["to_category"], strict=True))
    assert (
        set(zip(levers.loc[reskill, "category"], levers.loc[reskill, "to_category"], strict=True))
        <= edges
    )
    assert set(levers.loc[reskill, "category"]) == set(adjacency["from_category"])
    # a reskill lever works on its category's first edge (edges are sorted by category index)
    first_edge = adjacency.groupby("from_category", sort=False).first()
    reskill_levers = levers[reskill].set_index("category")
    assert (
        reskill_levers["to_category"] == first_edge["to_category"].reindex(reskill_levers.index)
    ).all()
    np.testing.assert_allclose(
        reskill_levers["effect_per_unit"],
        first_edge["friction"].reindex(reskill_levers.index) / 4,
    )


def test_contract(market: SimulatedMarket) -> None:
    check_contract(market)


@settings(max_examples=20, deadline=None)
@given(
    segments=st.integers(1, 10),
    weeks=st.integers(8, 12),
    seed=st.integers(0, 2**32 - 1),
    jobs_per_week=st.floats(0.5, 30.0),
    thin_share=st.floats(0.0, 0.9),
    regions=st.sampled_from([("na",), ("na", "eu", "apac"), ("latam", "eu")]),
)
def test_contract_holds_for_any_spec(
    segments: int,
    weeks: int,
    seed: int,
    jobs_per_week: float,
    thin_share: float,
    regions: tuple[str, ...],
) -> None:
    spec = SimulationSpec(
        segments=segments,
        weeks=weeks,
        seed=seed,
        jobs_per_week=jobs_per_week,
        thin_share=thin_share,
        regions=regions,
        start=datetime.date(2023, 1, 2),
    )
    check_contract(simulate_market(spec))


@pytest.mark.parametrize(
    "segments",
    [
        150,  # 50 categories: four families of 12 and one of 2
        39,  # 13 categories: the thirteenth is a family of one, with no edges
    ],
)
def test_adjacency_stays_within_skill_families(segments: int) -> None:
    market = simulate_market(SimulationSpec(segments=segments, weeks=8, seed=3))
    check_contract(market)
    family = _category_family(market)
    adjacency = _frame(market.adjacency)
    assert not adjacency.empty
    # components as the engine couples segments: an edge joins the same tier of two categories
    segments_frame = _frame(market.truth.select(["category", "tier"])).astype(str)
    edges = segment_edges(segments_frame, ["category", "tier"], adjacency)
    graph = coo_matrix(
        (np.ones(len(edges)), (edges["pool"], edges["segment"])), shape=(segments, segments)
    )
    _, component = connected_components(graph, directed=False)
    members = segments_frame.assign(component=component).groupby("component")
    assert members["tier"].nunique().eq(1).all()
    assert members.size().max() <= FAMILY_SIZE
    assert (members["category"].agg(lambda c: c.map(family).nunique()) == 1).all()
    assert members.size().max() > 2  # families do couple their categories


def test_sample_is_what_make_sample_simulates() -> None:
    """data/sample is exactly what `make sample` simulates: the simulator has not drifted."""
    market = simulate_market(SAMPLE_SPEC)
    assert market.spec.categories <= FAMILY_SIZE
    for name, table in market.tables.items():
        assert_tables_close(pq.read_table(SAMPLE / f"{name}.parquet"), table, name)
    assert load_config(SAMPLE / "pricing.toml") == market.config


# The simulator's floats go through numpy's exp, log and sqrt, whose SIMD kernels differ by
# a few ulp between CPUs (2e-15 relative measured between an AVX-512 machine and the one
# that wrote data/sample). 1e-12 leaves 500x headroom over that, while any drift of the
# simulator (one more or one fewer draw, a changed formula) moves values by far more.
SAMPLE_RTOL = 1e-12


def assert_tables_close(stored: pa.Table, simulated: pa.Table, name: str) -> None:
    """Same schema and same non-float columns exactly; float columns within SAMPLE_RTOL."""
    assert stored.schema.equals(simulated.schema), name
    for column in stored.column_names:
        a, b = stored[column], simulated[column]
        if pa.types.is_floating(a.type):
            np.testing.assert_array_equal(a.is_null().to_numpy(), b.is_null().to_numpy())
            np.testing.assert_allclose(
                a.to_numpy(zero_copy_only=False),
                b.to_numpy(zero_copy_only=False),
                rtol=SAMPLE_RTOL,
                atol=0.0,
                equal_nan=True,
                err_msg=f"{name}.{column}",
            )
        else:
            assert a.equals(b), f"{name}.{column}"


def test_same_seed_gives_identical_tables(market: SimulatedMarket) -> None:
    again = simulate_market(SMALL)
    for name, table in market.tables.items():
        assert table.equals(again.tables[name], check_metadata=True), name
    assert again.config == market.config


def test_other_seed_gives_other_data(market: SimulatedMarket) -> None:
    other = simulate_market(SimulationSpec(segments=12, weeks=30, seed=8))
    for name in ("jobs", "supply", "shifters", "truth"):
        assert not market.tables[name].equals(other.tables[name]), name


def test_segments_are_categories_times_tiers() -> None:
    truth = _frame(simulate_market(SimulationSpec(segments=7, weeks=8)).truth)
    assert truth.groupby("category", sort=False).size().tolist() == [3, 3, 1]
    assert truth["tier"].tolist() == ["entry", "intermediate", "expert"] * 2 + ["entry"]


def test_truth_clearing_rate_clears_the_market(market: SimulatedMarket) -> None:
    truth = _frame(market.truth)
    last = market.shifters.slice(market.shifters.num_rows - 1).to_pylist()[0]
    assert (truth["last_week"] == last["week"]).all()
    log_p = np.log(truth["clearing_rate_last_week"].to_numpy(np.float64))

    def curve(level: str, elasticity: str, loading: str, shifter: str, shock: str) -> pd.Series:
        return np.exp(
            truth[level] + truth[elasticity] * log_p + truth[loading] * last[shifter] + truth[shock]
        )

    demand = curve(
        "log_demand_level",
        "demand_elasticity",
        "demand_shifter_loading",
        "client_marketing_index",
        "demand_shock_last_week",
    )
    supply = curve(
        "log_supply_level",
        "supply_elasticity",
        "supply_shifter_loading",
        "fx_index",
        "supply_shock_last_week",
    )
    np.testing.assert_allclose(truth["demand_hours_at_clearing"], demand, rtol=1e-9)
    adjacency = _frame(market.adjacency).astype(
        {"from_category": str, "to_category": str, "friction": float}
    )
    keys = ["category", "tier"]
    segments = truth[keys].astype(str)
    edges = segment_edges(segments, keys, adjacency)
    # every segment clears the coupled market of the true curves: the convex program
    # (cvxpy, an independent path from the interior point the simulator used) agrees to
    # its own accuracy, 1e-6 relative on rates
    curves = segments.assign(
        demand_elasticity=truth["demand_elasticity"].to_numpy(np.float64),
        log_demand_level=np.log(demand.to_numpy(np.float64))
        - truth["demand_elasticity"].to_numpy(np.float64) * log_p,
        supply_elasticity=truth["supply_elasticity"].to_numpy(np.float64),
        log_supply_level=np.log(supply.to_numpy(np.float64))
        - truth["supply_elasticity"].to_numpy(np.float64) * log_p,
    )
    reference = solve(Market(curves, edges, tuple(keys)), method="cvxpy")
    np.testing.assert_allclose(reference.rate, np.exp(log_p), rtol=1e-6)


def test_truth_parameters_are_in_range(market: SimulatedMarket) -> None:
    truth = _frame(market.truth)
    assert truth["demand_elasticity"].between(-2.5, -0.3).all()
    assert truth["supply_elasticity"].between(0.2, 2.0).all()
    assert truth["stickiness"].between(0.3, 0.7).all()
    assert (truth["demand_shifter_loading"] > 0).all()
    assert (truth["supply_shifter_loading"] > 0).all()
    assert truth["thin"].sum() == round(SMALL.thin_share * SMALL.segments)


def test_supply_rows_add_up_to_hours_supplied(market: SimulatedMarket) -> None:
    truth = _frame(market.truth)
    supply = _frame(market.supply)
    last = supply[supply["week"] == truth["last_week"].iloc[0]]
    offered = last.groupby(["category", "tier"])["available_hours"].sum()
    expected = truth.set_index(["category", "tier"])["supply_hours_last_week"]
    np.testing.assert_allclose(offered.reindex(expected.index), expected, rtol=1e-9)
    assert (supply["available_hours"] == 0).any()


def test_market_is_sticky_and_out_of_equilibrium(market: SimulatedMarket) -> None:
    truth = _frame(market.truth)
    gap = np.log(truth["observed_rate_last_week"] / truth["clearing_rate_last_week"])
    assert (gap.abs() > 1e-3).mean() > 0.8
    imbalance = np.log(truth["demand_hours_last_week"] / truth["supply_hours_last_week"])
    assert (imbalance.abs() > 1e-3).mean() > 0.8
    assert (imbalance > 0).any()
    assert (imbalance < 0).any()  # both shortages and surpluses occur

    jobs = _frame(market.jobs)
    jobs["week"] = _week_index(market.jobs["posted_at"], SMALL.start)
    weekly = jobs.groupby(["category", "tier", "week"]).agg(
        qd=("hours", "sum"), hires=("hired", "sum")
    )
    supply = _frame(market.supply)
    supply["week"] = _week_index(market.supply["week"], SMALL.start)
    qs = supply.groupby(["category", "tier", "week"])["available_hours"].sum()
    panel = weekly.join(qs.rename("qs"), how="right").fillna({"qd": 0.0, "hires": 0})
    posted = panel[panel["qd"] > 0]
    assert (np.abs(np.log(posted["qd"] / posted["qs"])) > 0.01).mean() > 0.8

    thin = truth.loc[truth["thin"], ["category", "tier"]].itertuples(index=False)
    thin_panel = panel.loc[[(c, t, w) for c, t in thin for w in range(SMALL.weeks)]]
    assert (thin_panel["hires"] == 0).any()
    assert (thin_panel["qd"] > 0).any()
    assert panel["hires"].sum() < len(jobs)  # some jobs go unfilled


def _tsls(
    y: npt.NDArray[np.float64],
    x: npt.NDArray[np.float64],
    instrument: npt.NDArray[np.float64],
    control: npt.NDArray[np.float64],
) -> float:
    """Slope on x of y ~ 1 + x + control, x instrumented by ``instrument``."""
    ones = np.ones_like(y)
    regressors = np.column_stack([ones, x, control])
    instruments = np.column_stack([ones, instrument, control])
    fitted = instruments @ np.linalg.lstsq(instruments, regressors, rcond=None)[0]
    return float(np.linalg.lstsq(fitted, y, rcond=None)[0][1])


def _ols(
    y: npt.NDArray[np.float64], x: npt.NDArray[np.float64], control: npt.NDArray[np.float64]
) -> float:
    regressors = np.column_stack([np.ones_like(y), x, control])
    return float(np.linalg.lstsq(regressors, y, rcond=None)[0][1])


def test_2sls_recovers_elasticities_and_ols_is_biased() -> None:
    """One large segment over 20 years, aggregated to the panel of DESIGN.md §3.

    Tolerance: over 200 seeds of this spec the 2SLS error had standard deviation 0.078
    (demand) and 0.070 (supply) and mean within 0.02 of zero, so 0.3 is about four
    standard deviations. The shifters are AR(1) with ρ = 0.8, so 1040 weeks hold only
    ~120 independent shifter draws; shorter histories are much noisier. Each curve's
    own shifter enters as a control: without it the instrument's chance correlation with
    the omitted shifter roughly triples the spread. OLS error had mean +0.30 (demand) and
    −0.31 (supply): shocks raise the rate together with the quantity they shift.
    """
    spec = SimulationSpec(segments=1, weeks=1040, seed=1, jobs_per_week=100.0)
    market = simulate_market(spec)
    weeks = spec.weeks
    jobs = market.jobs
    week = _week_index(jobs["posted_at"], spec.start)
    hours = jobs["hours"].to_numpy()
    hired = jobs["hired"].to_numpy()
    log_rate = np.log(jobs["hired_rate"].to_numpy(zero_copy_only=False)[hired])
    qd = np.bincount(week, weights=hours, minlength=weeks)
    hired_hours = np.bincount(week[hired], weights=hours[hired], minlength=weeks)
    # hours-weighted geometric mean of hired rates, as the panel defines the observed rate
    log_rate_sum = np.bincount(week[hired], weights=hours[hired] * log_rate, minlength=weeks)
    log_p = log_rate_sum / hired_hours
    supply_week = _week_index(market.supply["week"], spec.start)
    qs = np.bincount(
        supply_week, weights=market.supply["available_hours"].to_numpy(), minlength=weeks
    )
    zd = market.shifters["client_marketing_index"].to_numpy()
    zs = market.shifters["fx_index"].to_numpy()
    truth = market.truth.to_pylist()[0]
    eps, eta = truth["demand_elasticity"], truth["supply_elasticity"]

    demand_iv = _tsls(np.log(qd), log_p, zs, zd)
    supply_iv = _tsls(np.log(qs), log_p, zd, zs)
    assert demand_iv == pytest.approx(eps, abs=0.3)
    assert supply_iv == pytest.approx(eta, abs=0.3)

    demand_ols_error = _ols(np.log(qd), log_p, zd) - eps
    supply_ols_error = _ols(np.log(qs), log_p, zs) - eta
    assert demand_ols_error > max(0.1, 2 * abs(demand_iv - eps))
    assert supply_ols_error < -max(0.1, 2 * abs(supply_iv - eta))


def test_config_names_the_instruments(market: SimulatedMarket) -> None:
    assert market.config.estimation.demand_instruments == ("fx_index",)
    assert market.config.estimation.supply_instruments == ("client_marketing_index",)


def test_write_round_trips_and_is_atomic(market: SimulatedMarket, tmp_path: Path) -> None:
    out = tmp_path / "sim"
    assert market.write(out) == out
    names = {f"{name}.parquet" for name in market.tables} | {"pricing.toml"}
    assert {p.name for p in out.iterdir()} == names
    for name, table in market.tables.items():
        assert pq.read_table(out / f"{name}.parquet").equals(table), name
    config = load_config(out / "pricing.toml")
    assert config == market.config
    assert config.estimation.demand_instruments == ("fx_index",)

    other = simulate_market(SimulationSpec(segments=3, weeks=8))
    with pytest.raises(FileExistsError):
        other.write(out)
    assert pq.read_table(out / "jobs.parquet").equals(market.jobs)
    other.write(out, overwrite=True)
    assert pq.read_table(out / "jobs.parquet").equals(other.jobs)
    assert [p.name for p in tmp_path.iterdir()] == ["sim"]  # no temporaries left behind


def test_a_one_category_market_leaves_out_its_empty_adjacency_and_validates(
    tmp_path: Path,
) -> None:
    """Three segments are one category: no adjacency edges. The contract rejects an
    empty table file, so the simulator leaves it out and its own output validates."""
    from pricing.inputs.validation import check_inputs

    market = simulate_market(SimulationSpec(segments=3, weeks=30, seed=2))
    assert market.adjacency.num_rows == 0
    out = market.write(tmp_path / "one")
    assert not (out / "adjacency.parquet").exists()
    report = check_inputs(out, load_config(out / "pricing.toml"))
    assert report.ok, report.summary()


def test_summary(market: SimulatedMarket) -> None:
    text = str(market)
    assert text == market.summary()
    assert "12 segments" in text
    assert "30 weeks" in text
    assert f"{market.jobs.num_rows:,}" in text
    assert f"{market.supply.num_rows:,}" in text
    assert "2024-01-01 to 2024-07-22" in text


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"segments": 0}, "segments"),
        ({"weeks": 7}, "weeks"),
        ({"seed": -1}, "seed"),
        ({"jobs_per_week": 0.0}, "jobs_per_week"),
        ({"jobs_per_week": float("nan")}, "jobs_per_week"),
        ({"thin_share": 1.0}, "thin_share"),
        ({"thin_share": -0.1}, "thin_share"),
        ({"start": datetime.date(2024, 1, 2)}, "Monday"),
        ({"start": datetime.datetime(2024, 1, 1)}, "datetime.date"),
        ({"regions": ()}, "regions"),
        ({"regions": ("na", "na")}, "repeat"),
        ({"cross_family_edges": -0.5}, "cross_family_edges"),
        ({"tier_moves": 1.5}, "tier_moves"),
        ({"regional": "yes"}, "regional must be True or False"),
        ({"regional": True, "remote_work": -0.1}, "remote_work must be a share"),
        ({"regional": True, "remote_work": 1.1}, "remote_work must be a share"),
        ({"remote_work": 0.5}, "remote_work needs a regional market"),
        ({"regional": True, "regions": ("na",), "remote_work": 0.5}, "at least two regions"),
    ],
)
def test_invalid_spec_is_rejected(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SimulationSpec(**changes)  # type: ignore[arg-type]


def test_sequential_ids_match_python_formatting() -> None:
    ids = _sequential_ids("F", 25_001, min_width=6)
    assert ids.to_pylist() == [f"F{i:06d}" for i in range(25_001)]
    assert _sequential_ids("cat_", 3, min_width=3).to_pylist() == ["cat_000", "cat_001", "cat_002"]
    assert _sequential_ids("J", 0, min_width=9).to_pylist() == []
    assert _sequential_ids("x", 12, min_width=1).to_pylist()[-1] == "x11"  # widens to fit
