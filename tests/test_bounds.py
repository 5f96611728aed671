"""Issue 19 §6: numbers no market has are rejected where they enter, with the bound in the
message — scenario multipliers, floors, budgets, draws, hours, dates, --as-of, --rows —
and published rates pass a plausibility check against today's observed rate."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import segment, valid_tables, write_tables
from storekit import store_files, stub_store

from pricing.cli import main
from pricing.cli.exits import ExitCode
from pricing.config import GuidanceConfig, Scenario, parse_config, parse_scenario
from pricing.decisions.guidance import rate_guidance
from pricing.decisions.scenario import whatif
from pricing.errors import ConfigError
from pricing.inputs.validation import check_inputs
from pricing.market.equilibrium import solve
from pricing.market.market import Market, segment_edges
from pricing.runs.pipeline import _degraded

KEYS = ("category", "tier")


def _market(rows: list[dict[str, Any]]) -> Market:
    segments = pd.DataFrame(rows)
    no_edges = pd.DataFrame(columns=["from_category", "to_category", "friction"])
    return Market(segments, segment_edges(segments, list(KEYS), no_edges), KEYS)


@pytest.mark.parametrize(
    ("raw", "said"),
    [
        ({"demand": [{"multiplier": 1e308}]}, "less than or equal to 1000"),
        ({"supply": [{"multiplier": 5e-324}]}, "greater than or equal to 0.001"),
        ({"bounds": [{"category": "a", "floor": 1e308}]}, "less than or equal to 100000"),
        ({"bounds": [{"category": "a", "cap": 1e308}]}, "less than or equal to 100000"),
        ({"interventions": {"budget": 1e308}}, "less than or equal to 1000000000000"),
        ({"elasticity": [{"side": "demand", "value": -1e308}]}, r"\|elasticity\| must lie in"),
        ({"elasticity": [{"side": "supply", "value": 5e-324}]}, r"\|elasticity\| must lie in"),
        (
            {"solve_for": {"fee": {"side": "client", "category": "a", "rate": 1e308}}},
            "less than or equal to 100000",
        ),
    ],
)
def test_scenario_numbers_beyond_their_bounds_are_rejected(raw: dict[str, Any], said: str) -> None:
    with pytest.raises(ConfigError, match=said):
        parse_scenario(raw, "s.toml", "s")


@pytest.mark.parametrize(
    ("raw", "said"),
    [
        ({"guidance": {"draws": 100_000_000}}, "guidance.draws: .*less than or equal to 10000"),
        ({"guidance": {"seed": -1}}, "guidance.seed: .*greater than or equal to 0"),
        ({"guidance": {"plausible_ratio": 1.0}}, "guidance.plausible_ratio"),
        ({"market": {"bounds": [{"floor": 1e308}]}}, "less than or equal to 100000"),
        ({"interventions": {"budget": 1e308}}, "less than or equal to 1000000000000"),
        ({"interventions": {"spend_caps": {"a": float("inf")}}}, "finite"),
    ],
)
def test_settings_beyond_their_bounds_are_rejected(raw: dict[str, Any], said: str) -> None:
    with pytest.raises(ConfigError, match=said):
        parse_config(raw)


@pytest.mark.parametrize("multiplier", [1e-3, 1e3])
def test_a_multiplier_at_its_bound_still_clears_and_verifies(multiplier: float) -> None:
    """The bound is where results still mean something: at 1000x the rate moves by its
    closed form m^(1/(η−ε)) (relative 1e-12: log-space closed form, a few ulps)."""
    market = _market([segment("a", eps=-1.2, eta=0.8)])
    sc = Scenario(name="edge", demand=[{"multiplier": multiplier}])  # type: ignore[list-item]
    result = whatif(market, solve(market), sc, parse_config({})).result
    assert result.status[0] == "solved"
    assert result.rate[0] == pytest.approx(40.0 * multiplier ** (1 / 2.0), rel=1e-12)


@pytest.mark.parametrize(
    ("table", "column", "value", "rule", "said"),
    [
        ("jobs", "hours", 1e308, "too_large", "hours must be <= 100000"),
        ("supply", "available_hours", 1e308, "too_large", "available_hours must be <= 100000"),
        ("jobs", "hired_rate", 1e308, "too_large", "hired_rate must be <= 100000"),
        ("supply", "ask_rate", 1e9, "too_large", "ask_rate must be <= 100000"),
        ("jobs", "posted_at", dt.date(1, 1, 1), "too_early", "on or after 1990-01-01"),
        ("supply", "week", dt.date(1970, 1, 5), "too_early", "on or after 1990-01-01"),
        ("interventions", "cost_per_unit", 1e308, "too_large", "<= 1e+12"),
    ],
)
def test_data_beyond_the_contracts_bounds_is_reported(
    tmp_path: Path, table: str, column: str, value: object, rule: str, said: str
) -> None:
    """Hours of 1e308 overflowed to inf and silently dropped a week; a job dated year 1
    made a panel of 105,659 weeks (2.8 GB)."""
    tables = valid_tables()
    row = 1 if table == "jobs" else 0
    if column == "hired_rate":
        row = int(np.flatnonzero(tables["jobs"]["hired"])[0])
    tables[table].loc[row, column] = value
    report = check_inputs(write_tables(tmp_path / "d", tables), as_of=dt.date(2024, 2, 1))
    (problem,) = [p for p in report.problems if p.rule == rule]
    assert (problem.table, problem.column, problem.count) == (table, column, 1)
    assert said in problem.message


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.mark.parametrize("day", ["0001-01-01", "1989-12-31", "9999-12-31", "tomorrow"])
@pytest.mark.parametrize("command", ["panel", "equilibrium", "run"])
def test_an_as_of_before_the_data_can_exist_or_after_today_is_a_usage_error(
    runner: CliRunner, tmp_path: Path, command: str, day: str
) -> None:
    """A future --as-of became `latest` forever; 0001-01-01 overflowed."""
    if day == "tomorrow":
        day = (dt.date.today() + dt.timedelta(days=1)).isoformat()
    args = [command, "--as-of", day, "-q"]
    if command == "run":
        args += ["--store", str(tmp_path / "store")]
    result = runner.invoke(main, args)
    assert result.exit_code == ExitCode.USAGE, result.output
    assert ("after today" if day > "2000" else "before 1990-01-01") in result.stderr
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["sql", "SELECT 1", "--rows", "-1"],
        ["sql", "SELECT 1", "--rows", "0"],
        ["panel", "--rows", "-1"],
        ["equilibrium", "--rows", "-5"],
        ["guidance", "--rows", "-1"],
        ["plan", "--rows", "-1"],
        ["whatif", "x.toml", "--rows", "-1"],
        ["report", "--rows", "-1"],
        ["validate", "--max-examples", "-1"],
        ["plan", "--budget", "nan"],
        ["plan", "--budget", "inf"],
        ["plan", "--budget", "-1"],
        ["plan", "--budget", "1e308"],
    ],
)
def test_bad_counts_and_amounts_are_usage_errors(
    runner: CliRunner, tmp_path: Path, args: list[str]
) -> None:
    stub_store(tmp_path / "store")
    store = ["--store", str(tmp_path / "store")] if args[0] in ("sql", "whatif", "report") else []
    result = runner.invoke(main, [*args, *store, "-q"])
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "Traceback" not in result.output


def test_a_rate_far_beyond_todays_is_withheld_as_implausible() -> None:
    """Without instruments the sample published $201,140/h and $6e-12/h as "solved": a
    clearing rate more than 10x today's observed rate (or under a tenth) is withheld,
    labelled, and makes the run degraded; 5x and a fifth are published."""
    market = _market(
        [
            segment("up20", rate=40.0, observed=2.0),
            segment("up5", rate=40.0, observed=8.0),
            segment("down5", rate=40.0, observed=200.0),
            segment("down20", rate=40.0, observed=800.0),
        ]
    )
    equilibrium = solve(market)
    frame = rate_guidance(equilibrium, GuidanceConfig()).frame.set_index("category")
    assert frame["status"].to_dict() == {
        "up20": "implausible",
        "up5": "solved",
        "down5": "solved",
        "down20": "implausible",
    }
    withheld = frame.loc[["up20", "down20"]]
    assert withheld[["freelancer_rate", "client_rate", "freelancer_rate_low"]].isna().all().all()
    assert (withheld["market_state"] == "thin_data").all()
    assert withheld["state_reason"].str.startswith("equilibrium implausible").all()
    assert (frame.loc[["up20", "down20"], "equilibrium_freelancer_rate"] > 0).all()  # kept
    assert frame.loc["up5", "freelancer_rate"] == pytest.approx(36.0, rel=1e-12)
    guidance = rate_guidance(equilibrium, GuidanceConfig(plausible_ratio=30.0))
    assert (guidance.frame["status"] == "solved").all()
    degraded = _degraded(equilibrium, rate_guidance(equilibrium, GuidanceConfig()), None)
    assert degraded == ["2 segment(s) with a rate withheld as implausible: up20/t0, down20/t0"]


@pytest.mark.slow
def test_a_guidance_run_with_a_withheld_rate_exits_4(runner: CliRunner, tmp_path: Path) -> None:
    config = tmp_path / "tight.toml"
    config.write_text("[guidance]\nplausible_ratio = 1.0001\ndraws = 20\n")
    result = runner.invoke(main, ["guidance", "--config", str(config), "--json", "-q"])
    assert result.exit_code == ExitCode.DEGRADED, result.output
    rows = json.loads(result.stdout)["segment_guidance"]
    assert any(r["status"] == "implausible" for r in rows)


@pytest.mark.parametrize(
    ("what", "said"),
    [
        ("hours", "hours must be <= 100000"),
        ("year_one", "on or after 1990-01-01"),
        ("draws", "guidance.draws: Input should be less than or equal to 10000"),
        ("multiplier", "demand.0.multiplier: Input should be less than or equal to 1000"),
        ("tiny_multiplier", "supply.0.multiplier: Input should be greater than or equal to 0.001"),
        ("budget", "interventions.budget: Input should be less than or equal to 1000000000000"),
    ],
)
def test_numbers_beyond_their_bounds_stop_the_command_line_before_it_stores(
    runner: CliRunner, tmp_path: Path, what: str, said: str
) -> None:
    """§6 end to end: `pricing run` on data or settings beyond a bound, and `pricing
    whatif` of a scenario beyond one, exit 3 naming the bound, and store nothing."""
    tables = valid_tables()
    if what == "hours":
        tables["jobs"].loc[1, "hours"] = 1e308
    elif what == "year_one":
        tables["jobs"].loc[1, "posted_at"] = dt.date(1, 1, 1)
    data = write_tables(tmp_path / "data", tables)
    store = tmp_path / "store"
    if what in ("hours", "year_one", "draws"):
        if what == "draws":
            (data / "pricing.toml").write_text("[guidance]\ndraws = 100000000\n")
        args = ["run", "--data", str(data), "--as-of", "2024-01-21"]
    else:
        stub_store(store)
        before = store_files(store)
        scenario = tmp_path / "s.toml"
        scenario.write_text(
            {
                "multiplier": 'name = "s"\n[[demand]]\nmultiplier = 1e308\n',
                "tiny_multiplier": 'name = "s"\n[[supply]]\nmultiplier = 5e-324\n',
                "budget": 'name = "s"\n[interventions]\nbudget = 1e308\n',
            }[what]
        )
        args = ["whatif", str(scenario)]
    result = runner.invoke(main, [*args, "--store", str(store), "-q"])
    assert result.exit_code == ExitCode.INVALID_INPUT, result.output
    assert said in result.stderr and "Traceback" not in result.output
    if args[0] == "run":
        assert not store.exists()
    else:
        assert store_files(store) == before
