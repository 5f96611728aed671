"""Every command through click's CliRunner, including exit codes and JSON output."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import pricing.market.equilibrium as equilibrium
from pricing.cli import main
from pricing.cli.exits import ExitCode

AS_OF = ["--as-of", "2024-02-01"]


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def valid_dir(make_dir: Callable[..., Path], tables: dict[str, pd.DataFrame]) -> Path:
    return make_dir(tables)


@pytest.fixture
def invalid_dir(make_dir: Callable[..., Path], tables: dict[str, pd.DataFrame]) -> Path:
    tables["jobs"].loc[3, "hours"] = -1.0
    tables["supply"].loc[0, "week"] = pd.Timestamp("2024-01-02").date()
    return make_dir(tables)


def test_help_is_fast_and_imports_nothing_heavy() -> None:
    code = (
        "import sys, pricing.cli; "
        "names = ('pandas', 'duckdb', 'numpy', 'pyarrow', 'dask', 'distributed'); "
        "heavy = [m for m in names if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_help_lists_commands_and_exit_codes(runner: CliRunner) -> None:
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == ExitCode.OK
    for command in ("validate", "panel", "simulate"):
        assert command in result.output
    assert "3  invalid input" in result.output


def test_validate_valid(runner: CliRunner, valid_dir: Path) -> None:
    result = runner.invoke(main, ["validate", str(valid_dir)])
    assert result.exit_code == ExitCode.OK, result.output
    assert "OK" in result.stdout
    assert "reading and checking jobs (jobs.csv)" in result.stderr  # progress on stderr


def test_validate_invalid_reports_all_and_exits_3(runner: CliRunner, invalid_dir: Path) -> None:
    result = runner.invoke(main, ["validate", str(invalid_dir)])
    assert result.exit_code == ExitCode.INVALID_INPUT
    assert "jobs.hours [not_positive]" in result.stdout
    assert "supply.week [not_monday]" in result.stdout
    assert "Traceback" not in result.output


def test_validate_json(runner: CliRunner, invalid_dir: Path) -> None:
    result = runner.invoke(main, ["validate", str(invalid_dir), "--json", "--quiet"])
    assert result.exit_code == ExitCode.INVALID_INPUT
    payload = json.loads(result.stdout)
    assert payload["ok"] is False
    found = {(p["table"], p["column"], p["rule"]) for p in payload["problems"]}
    assert found == {("jobs", "hours", "not_positive"), ("supply", "week", "not_monday")}
    example = next(p for p in payload["problems"] if p["rule"] == "not_positive")["examples"][0]
    assert example == {"file": "jobs.csv", "row": 4, "id": "J004", "value": "'-1.0'"}
    assert result.stderr == ""


def test_future_dates_are_invalid_and_a_future_as_of_is_a_usage_error(
    runner: CliRunner, make_dir: Callable[..., Path], tables: dict[str, pd.DataFrame]
) -> None:
    """Dates are checked against today; an --as-of after today would make its run the
    store's latest until that day, so it is refused (issue 19 §10)."""
    soon = dt.date.today() + dt.timedelta(days=3)
    del tables["shifters"]  # they would have to cover the new job's week too
    jobs = tables["jobs"]
    tables["jobs"] = pd.concat([jobs, jobs.tail(1).assign(job_id="J999", posted_at=soon)])
    data = make_dir(tables)
    result = runner.invoke(main, ["validate", str(data), "--json", "-q"])
    assert result.exit_code == ExitCode.INVALID_INPUT
    rules = {p["rule"] for p in json.loads(result.stdout)["problems"]}
    assert rules == {"future_date"}
    later = (soon + dt.timedelta(days=7)).isoformat()
    result = runner.invoke(main, ["panel", str(data), "--as-of", later, "-q"])
    assert result.exit_code == ExitCode.USAGE and "is after today" in result.stderr


def test_missing_data_dir_is_invalid_input(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(main, ["validate", str(tmp_path / "nope")])
    assert result.exit_code == ExitCode.INVALID_INPUT
    assert "is not a directory" in result.stdout


def test_bad_config_is_invalid_input(
    runner: CliRunner, make_dir: Callable[..., Path], tables: dict[str, pd.DataFrame]
) -> None:
    directory = make_dir(tables, config='[estimation]\ndemand_instrument = ["fx_index"]\n')
    result = runner.invoke(main, ["validate", str(directory)])
    assert result.exit_code == ExitCode.INVALID_INPUT
    assert "did you mean 'demand_instruments'" in result.output
    assert "Traceback" not in result.output


def test_bad_option_is_usage_error(runner: CliRunner, valid_dir: Path) -> None:
    result = runner.invoke(main, ["panel", str(valid_dir), "--as-of", "yesterday"])
    assert result.exit_code == ExitCode.USAGE


def test_panel_prints_segment_summary(runner: CliRunner, valid_dir: Path) -> None:
    result = runner.invoke(main, ["panel", str(valid_dir), *AS_OF])
    assert result.exit_code == ExitCode.OK, result.output
    assert "4 segments" in result.stdout
    assert "design" in result.stdout and "demand_supply_ratio" in result.stdout


def test_panel_writes_output_atomically(runner: CliRunner, valid_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "panel.parquet"
    result = runner.invoke(
        main, ["panel", str(valid_dir), *AS_OF, "--out", str(out), "--json", "-q"]
    )
    assert result.exit_code == ExitCode.OK, result.output
    payload = json.loads(result.stdout)
    assert payload["segments"] == 4 and payload["weeks"] == 3 and payload["out"] == str(out)
    assert payload["shifters"] == ["fx_index", "client_marketing_index"]
    assert len(payload["segment_summary"]) == 4
    frame = pq.read_table(out).to_pandas()
    assert len(frame) == 12
    assert [p.name for p in out.parent.iterdir()] == ["panel.parquet"]  # no temporary left


def test_panel_csv_output(runner: CliRunner, valid_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "panel.csv"
    result = runner.invoke(main, ["panel", str(valid_dir), *AS_OF, "--out", str(out), "-q"])
    assert result.exit_code == ExitCode.OK, result.output
    frame = pd.read_csv(out)
    assert frame["week"].iloc[0] == "2024-01-01"


def test_panel_rejects_unknown_output_format(
    runner: CliRunner, valid_dir: Path, tmp_path: Path
) -> None:
    result = runner.invoke(main, ["panel", str(valid_dir), "--out", str(tmp_path / "p.xlsx")])
    assert result.exit_code == ExitCode.USAGE


def test_panel_on_invalid_data_writes_nothing(
    runner: CliRunner, invalid_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "panel.parquet"
    result = runner.invoke(main, ["panel", str(invalid_dir), *AS_OF, "--out", str(out)])
    assert result.exit_code == ExitCode.INVALID_INPUT
    assert "not_positive" in result.stderr
    assert not out.exists()


def test_panel_defaults_to_the_sample(runner: CliRunner) -> None:
    result = runner.invoke(main, ["panel", "--json", "-q"])
    assert result.exit_code == ExitCode.OK, result.output
    payload = json.loads(result.stdout)
    assert payload["data_dir"].endswith("data/sample")
    assert payload["segments"] > 0


def test_simulate_writes_a_valid_directory(runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "sim"
    args = ["simulate", "--segments", "6", "--weeks", "12", "--seed", "3", "--out", str(out)]
    result = runner.invoke(main, [*args, "--json", "-q"])
    assert result.exit_code == ExitCode.OK, result.output
    payload = json.loads(result.stdout)
    assert payload["jobs_rows"] > 0 and payload["supply_rows"] > 0
    expected = {"jobs", "supply", "shifters", "adjacency", "interventions", "truth", "truth_weekly"}
    assert {p.stem for p in out.glob("*.parquet")} == expected
    assert (out / "pricing.toml").is_file()
    check = runner.invoke(main, ["validate", str(out), "--json", "-q"])
    assert check.exit_code == ExitCode.OK, check.output
    again = runner.invoke(main, args)
    assert again.exit_code == ExitCode.USAGE and "--force" in again.output
    forced = runner.invoke(main, [*args, "--force", "-q"])
    assert forced.exit_code == ExitCode.OK


def test_simulate_rejects_bad_spec(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(main, ["simulate", "--segments", "0", "--out", str(tmp_path / "x")])
    assert result.exit_code == ExitCode.USAGE
    assert not (tmp_path / "x").exists()


# ------------------------------------------------------------------- guidance
CONTRACT = [
    "category",
    "tier",
    "freelancer_rate",
    "freelancer_rate_low",
    "freelancer_rate_high",
    "client_rate",
    "client_rate_low",
    "client_rate_high",
    "observed_rate",
    "gap_frac",
    "market_state",
]


def test_guidance_on_the_sample_prints_json_and_writes_the_table(
    runner: CliRunner, tmp_path: Path
) -> None:
    out = tmp_path / "guidance.parquet"
    result = runner.invoke(main, ["guidance", "--json", "-q", "--out", str(out)])
    assert result.exit_code == ExitCode.OK, result.output
    assert result.stderr == ""
    payload = json.loads(result.stdout)  # the whole of stdout is one JSON object
    n = payload["segments"]
    assert sum(payload["market_state"].values()) == n and payload["status"] == {"solved": n}
    assert payload["band_level"] == 0.9 and payload["draws"] == 128  # the sample's config
    # a drawn copy that cannot clear is left out of its segments' bands: on the sample,
    # 2 segment-draws (a segment's drawn curves clearing alone more than 10⁶× away)
    assert 0 <= payload["failed_draws"] <= 0.01 * n * payload["draws"]
    assert payload["capped"] == 0 and payload["previous"] is None
    assert "guidance.bands" in payload["timings_s"]
    rows = payload["segment_guidance"]
    assert len(rows) == n and all(r["client_rate_low"] <= r["client_rate"] for r in rows)
    frame = pd.read_parquet(out)
    assert list(frame.columns[: len(CONTRACT)]) == CONTRACT and len(frame) == n


def test_guidance_caps_against_a_previous_run(runner: CliRunner, tmp_path: Path) -> None:
    first = tmp_path / "first.csv"
    assert runner.invoke(main, ["guidance", "-q", "--out", str(first)]).exit_code == ExitCode.OK
    previous = pd.read_csv(first)
    previous[["freelancer_rate", "client_rate"]] *= 1.5  # every rate would fall by a third
    previous.to_csv(tmp_path / "previous.csv", index=False)
    out = tmp_path / "second.csv"
    args = ["guidance", "-q", "--previous", str(tmp_path / "previous.csv"), "--out", str(out)]
    result = runner.invoke(main, [*args, "--rows", "3"])
    assert result.exit_code == ExitCode.OK, result.output
    assert f"{len(previous)} capped at ±10 %" in result.stdout
    second = pd.read_csv(out)
    assert second["capped"].all()
    ratio = second["client_rate"] / previous["client_rate"]
    assert ratio.to_numpy() == pytest.approx(0.9, rel=1e-9)  # CSV keeps ~15 digits


def test_guidance_bad_previous_is_invalid_input(runner: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "previous.csv"
    pd.DataFrame({"category": ["x"], "freelancer_rate": [1.0]}).to_csv(bad, index=False)
    result = runner.invoke(main, ["guidance", "-q", "--previous", str(bad)])
    assert result.exit_code == ExitCode.INVALID_INPUT
    assert "lacks the column(s) ['tier', 'client_rate']" in result.output
    assert "Traceback" not in result.output
    missing = runner.invoke(main, ["guidance", "-q", "--previous", str(tmp_path / "no.csv")])
    assert missing.exit_code == ExitCode.INVALID_INPUT and "does not exist" in missing.output


def test_guidance_exits_4_when_a_component_failed(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = equilibrium.solve

    def fails_component_zero(market, **options):  # type: ignore[no-untyped-def]
        result = real(market, **options)
        fail = market.component == 0
        code = np.where(fail, equilibrium.STATUSES.index("failed"), result.status_code)
        rate = np.where(fail, np.nan, result.rate)
        return dataclasses.replace(result, status_code=code.astype(np.int8), rate=rate)

    monkeypatch.setattr(equilibrium, "solve", fails_component_zero)
    result = runner.invoke(main, ["guidance", "--json", "-q"])
    assert result.exit_code == ExitCode.DEGRADED, result.output
    payload = json.loads(result.stdout)
    assert payload["status"]["failed"] >= 1
    assert payload["market_state"]["thin_data"] >= payload["status"]["failed"]


# --------------------------------------------------------------------------- plan
SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"


def test_plan_on_the_sample_prints_json_and_writes_the_plan(
    runner: CliRunner, tmp_path: Path
) -> None:
    out = tmp_path / "plan.csv"
    result = runner.invoke(main, ["plan", "--json", "-q", "--out", str(out)])
    assert result.exit_code == ExitCode.OK, result.output
    payload = json.loads(result.stdout)  # the whole of stdout is one JSON object
    assert payload["status"] == "optimal" and payload["objective"] == "hours"
    assert payload["budget"] == 135_000.0  # the sample's pricing.toml
    assert 0 < payload["spend"] <= payload["budget"]
    assert payload["verified_gain"] > 0 and payload["marginal_value_per_usd"] >= 0
    plan = pd.read_csv(out)
    assert (plan["units"] * plan["cost_per_unit"]).sum() == pytest.approx(payload["spend"])
    assert (
        len(plan)
        == len(payload["levers"])
        == len(pd.read_parquet(SAMPLE / "interventions.parquet"))
    )


def test_plan_options_override_the_config(runner: CliRunner) -> None:
    result = runner.invoke(main, ["plan", "--json", "-q", "--budget", "0", "--objective", "gmv"])
    assert result.exit_code == ExitCode.OK, result.output
    payload = json.loads(result.stdout)
    assert payload["status"] == "empty" and payload["spend"] == 0 and payload["objective"] == "gmv"


def test_plan_infeasible_request_exits_5_with_the_relaxation(
    runner: CliRunner, tmp_path: Path
) -> None:
    config = (SAMPLE / "pricing.toml").read_text() + "\n"
    config = config.replace("min_fill = {}", "min_fill = {writing = 3.0}")
    (tmp_path / "pricing.toml").write_text(config)
    result = runner.invoke(main, ["plan", "-q", "--config", str(tmp_path / "pricing.toml")])
    assert result.exit_code == ExitCode.INFEASIBLE, result.output
    assert "min_fill for 'writing' (300.0%) is out of reach at any budget" in result.stdout
    assert "Traceback" not in result.output


def test_plan_without_a_catalogue_or_with_a_bad_one_is_invalid_input(
    runner: CliRunner, make_dir: Callable[..., Path], tables: dict[str, pd.DataFrame]
) -> None:
    without = dict(tables)
    del without["interventions"]
    result = runner.invoke(main, ["plan", "-q", str(make_dir(without))])
    assert result.exit_code == ExitCode.INVALID_INPUT
    assert "has no interventions table" in result.output
    bad = dict(tables)
    bad["interventions"] = tables["interventions"].assign(decay=0.5)
    bad["interventions"].loc[0, "to_category"] = bad["interventions"].loc[0, "category"]
    result = runner.invoke(main, ["plan", "-q", str(make_dir(bad))])
    assert result.exit_code == ExitCode.INVALID_INPUT, result.output
    assert "Traceback" not in result.output


def test_what_a_solver_prints_to_fd_1_does_not_reach_the_json_on_stdout(tmp_path: Path) -> None:
    """SCS prints warnings with C printf to descriptor 1; stdout must stay one JSON
    document. A real process, since only it has a descriptor 1 the solver can write to."""
    from conftest import quick_config

    config = tmp_path / "quick.toml"
    config.write_text(quick_config().to_toml())
    script = f"""
import os, sys
import pricing.runs.pipeline as pipeline
real = pipeline.solve
def chatty(*args, **kwargs):
    os.write(1, b"WARNING - large complementary slackness residual\\n")
    return real(*args, **kwargs)
pipeline.solve = chatty
from pricing.cli import main
sys.argv = ["pricing", "run", "--json", "--no-report", "--store", {str(tmp_path / "s")!r},
            "--config", {str(config)!r}]
main()
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "ok"
    assert "WARNING - large complementary slackness residual" in done.stderr
