"""`pricing run`, `history`, `sql` and `whatif` from the command line: output, exit
codes, and bad input that changes nothing in the store."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import SAMPLE, quick_config

from pricing.cli import main
from pricing.cli.exits import ExitCode
from pricing.runs import pipeline
from pricing.store.store import RunStore


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _quick_config(tmp: Path) -> Path:
    """conftest.quick_config as a file."""
    path = tmp / "quick.toml"
    path.write_text(quick_config().to_toml())
    return path


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two quick runs of the sample, two weeks apart (shared, read-only)."""
    tmp = tmp_path_factory.mktemp("cli")
    root = tmp / "store"
    config = _quick_config(tmp)
    pipeline.run_batch(SAMPLE, config, root, as_of=dt.date(2025, 12, 14))
    pipeline.run_batch(SAMPLE, config, root)
    return root


def _snapshot(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


# --------------------------------------------------------------------------- run
def test_run_prints_one_json_summary_and_progress_on_stderr(
    runner: CliRunner, tmp_path: Path
) -> None:
    root = tmp_path / "store"
    result = runner.invoke(main, ["run", "--store", str(root), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)  # stdout holds the JSON and nothing else
    assert payload["run_id"] == payload["as_of"] == "2025-12-28"
    assert Path(payload["run_path"]).is_dir()
    assert payload["counts"] == {"segments": 36, "estimated": 36, "flagged": 4, "failed": 0}
    assert payload["statuses"]["equilibrium"] == {"solved": 36}
    assert payload["statuses"]["interventions"] == "optimal"
    assert set(payload["timings_s"]) == set(pipeline.STEPS)
    assert payload["peak_memory_mb"] > 0
    for step in range(1, 9):
        assert f"[{step}/8]" in result.stderr
    again = runner.invoke(main, ["run", "--store", str(root), "-q"])  # replaces the run
    assert again.exit_code == 0 and "36 estimated" in again.stdout
    assert len(RunStore(root).run_paths()) == 1


def test_run_on_invalid_data_exits_3_and_stores_nothing(runner: CliRunner, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(SAMPLE, data)
    jobs = pd.read_parquet(data / "jobs.parquet")
    jobs.loc[[5, 9], "hours"] = -2.0
    jobs.to_parquet(data / "jobs.parquet", index=False)
    root = tmp_path / "store"
    result = runner.invoke(main, ["run", "--data", str(data), "--store", str(root), "-q"])
    assert result.exit_code == ExitCode.INVALID_INPUT
    assert "jobs.hours" in result.stderr and "2x" in result.stderr
    assert "Traceback" not in result.output
    as_json = runner.invoke(main, ["run", "--data", str(data), "--store", str(root), "--json"])
    assert as_json.exit_code == ExitCode.INVALID_INPUT
    assert json.loads(as_json.stdout)["ok"] is False
    assert not root.exists()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--data", "/nonexistent/dir"], ExitCode.INVALID_INPUT, "is not a directory"),
        (["--config", "/nonexistent/p.toml"], ExitCode.INVALID_INPUT, "does not exist"),
        (["--as-of", "28/12/2025"], ExitCode.USAGE, "28/12/2025"),
    ],
)
def test_run_bad_arguments(
    runner: CliRunner, store: Path, args: list[str], code: int, message: str
) -> None:
    before = _snapshot(store)
    result = runner.invoke(main, ["run", "--store", str(store), "-q", *args])
    assert result.exit_code == code, result.output
    assert message in result.output and "Traceback" not in result.output
    assert _snapshot(store) == before


def test_run_degraded_exits_4_and_strict_exits_6_storing_nothing(
    runner: CliRunner, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    root = tmp_path / "store"
    config = str(_quick_config(tmp_path))
    request.getfixturevalue("fail_component_zero")
    strict = runner.invoke(main, ["run", "--store", str(root), "--config", config, "--strict"])
    assert strict.exit_code == ExitCode.RUN_FAILED
    assert "nothing was stored" in strict.stderr and "not cleared" in strict.stderr
    assert RunStore(root).run_paths() == {}
    degraded = runner.invoke(main, ["run", "--store", str(root), "--config", config, "--json"])
    assert degraded.exit_code == ExitCode.DEGRADED
    payload = json.loads(degraded.stdout)
    assert payload["status"] == "degraded" and payload["counts"]["failed"] > 0


# ----------------------------------------------------------------------- history
def test_history_lists_runs(runner: CliRunner, store: Path) -> None:
    result = runner.invoke(main, ["history", "--store", str(store)])
    assert result.exit_code == 0
    assert "2 run(s)" in result.stdout and "2025-12-14" in result.stdout
    payload = json.loads(runner.invoke(main, ["history", "--store", str(store), "--json"]).stdout)
    assert [r["run_id"] for r in payload["runs"]] == ["2025-12-14", "2025-12-28"]


def test_history_of_a_segment(runner: CliRunner, store: Path) -> None:
    result = runner.invoke(
        main, ["history", "--store", str(store), "--segment", "design/expert", "--json"]
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["as_of"][:10] for r in rows] == ["2025-12-14", "2025-12-28"]
    guidance = pd.read_parquet(RunStore(store).resolve("latest") / "guidance.parquet")
    expected = guidance.set_index(["category", "tier"]).loc[("design", "expert")]
    assert rows[1]["freelancer_rate"] == pytest.approx(expected["freelancer_rate"], rel=1e-12)


@pytest.mark.parametrize(
    ("segment", "code", "message"),
    [
        ("desgn/expert", ExitCode.INVALID_INPUT, "did you mean 'design/expert'"),
        ("design", ExitCode.USAGE, "CATEGORY/TIER"),
    ],
)
def test_history_bad_segment(
    runner: CliRunner, store: Path, segment: str, code: int, message: str
) -> None:
    result = runner.invoke(main, ["history", "--store", str(store), "--segment", segment])
    assert result.exit_code == code and message in result.output


def test_history_and_sql_on_a_missing_store_exit_3(runner: CliRunner, tmp_path: Path) -> None:
    for args in (["history"], ["sql", "SELECT 1"]):
        result = runner.invoke(main, [*args, "--store", str(tmp_path / "none")])
        assert result.exit_code == ExitCode.INVALID_INPUT and "does not exist" in result.output
    (tmp_path / "empty").mkdir()
    empty = runner.invoke(main, ["history", "--store", str(tmp_path / "empty")])
    assert empty.exit_code == 0 and "No runs" in empty.stdout


# --------------------------------------------------------------------------- sql
def test_sql_over_the_store(runner: CliRunner, store: Path) -> None:
    query = (
        "SELECT as_of, count(*) AS segments, round(sum(hours)) AS hours "
        "FROM equilibrium GROUP BY as_of ORDER BY as_of"
    )
    result = runner.invoke(main, ["sql", query, "--store", str(store), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["segments"] for r in rows] == [36, 36]
    text = runner.invoke(main, ["sql", "SELECT run_id, status FROM runs", "--store", str(store)])
    assert "2025-12-28" in text.stdout and "ok" in text.stdout


def test_sql_errors_are_usage_errors_listing_the_views(runner: CliRunner, store: Path) -> None:
    before = _snapshot(store)
    result = runner.invoke(main, ["sql", "SELECT * FROM guidence", "--store", str(store)])
    assert result.exit_code == ExitCode.USAGE
    assert "guidence" in result.output and "Views in" in result.output
    assert "guidance" in result.output and "Traceback" not in result.output
    assert _snapshot(store) == before


# ------------------------------------------------------------------------ whatif
SCENARIOS = sorted((SAMPLE.parent / "scenarios").glob("*.toml"))


def test_whatif_batch_of_the_example_scenarios(runner: CliRunner, store: Path) -> None:
    result = runner.invoke(
        main, ["whatif", *map(str, SCENARIOS), "--store", str(store), "--json", "-q"]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["baseline"] == "2025-12-28" and payload["segments"] == 36
    names = [s["name"] for s in payload["scenarios"]]
    assert names == [path.stem for path in SCENARIOS]
    for item in payload["scenarios"]:
        assert item["status"] == "ok" and Path(item["path"]).is_dir()
        totals = {t["measure"]: t for t in item["totals"]}
        hours = sum(s["hours_scenario"] for s in item["segments"])
        assert totals["hours"]["scenario"] == pytest.approx(hours, rel=1e-12)
    fee = next(s for s in payload["scenarios"] if s["inverse"] and s["inverse"]["kind"] == "fee")
    assert fee["inverse"]["status"] == "solved"
    # stored, tagged with the scenario's name, and queryable next to the runs
    query = runner.invoke(
        main,
        [
            "sql",
            "SELECT scenario, change FROM scenario_totals WHERE measure = 'hours' ORDER BY 1",
            "--store",
            str(store),
            "--json",
        ],
    )
    assert [r["scenario"] for r in json.loads(query.stdout)] == names
    history = runner.invoke(main, ["history", "--store", str(store)])
    assert "scenario result(s)" in history.stdout and "design-boom" in history.stdout


def test_whatif_text_output_and_a_named_baseline(runner: CliRunner, store: Path) -> None:
    boom = SAMPLE.parent / "scenarios" / "legal-fee-cut.toml"
    result = runner.invoke(
        main, ["whatif", str(boom), "--baseline", "2025-12-14", "--store", str(store), "-q"]
    )
    assert result.exit_code == 0, result.output
    assert "What-if 'legal-fee-cut'" in result.stdout and "totals" in result.stdout
    assert "baseline=2025-12-14" in result.stdout  # where it was stored


def test_whatif_bad_input_reports_every_problem_and_changes_nothing(
    runner: CliRunner, store: Path, tmp_path: Path
) -> None:
    typo = tmp_path / "typo.toml"
    typo.write_text('[[demand]]\ncategory = "design"\nmultipler = 1.2\n')
    nowhere = tmp_path / "nowhere.toml"
    nowhere.write_text('[[supply]]\ncategory = "desgn"\nmultiplier = 0.9\n')
    broken = tmp_path / "broken.toml"
    broken.write_text("[[demand]\n")
    before = _snapshot(store)
    files = [str(typo), str(nowhere), str(broken), str(tmp_path / "missing.toml")]
    result = runner.invoke(main, ["whatif", *files, "--store", str(store), "-q"])
    assert result.exit_code == ExitCode.INVALID_INPUT, result.output
    out = result.output
    assert "multipler" in out and "did you mean 'multiplier'" in out
    assert "'desgn'" in out and "did you mean 'design'" in out
    assert "broken.toml is not valid TOML" in out
    assert "missing.toml" in out and "Traceback" not in out
    assert _snapshot(store) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--baseline", "2024-01-07"], "no run as of 2024-01-07"),
        (["--baseline", "last"], "neither 'latest' nor a date"),
    ],
)
def test_whatif_unknown_baseline_exits_3(
    runner: CliRunner, store: Path, args: list[str], message: str
) -> None:
    before = _snapshot(store)
    result = runner.invoke(main, ["whatif", str(SCENARIOS[0]), "--store", str(store), "-q", *args])
    assert result.exit_code == ExitCode.INVALID_INPUT and message in result.output
    assert _snapshot(store) == before


def test_whatif_repeated_names_and_missing_store(
    runner: CliRunner, store: Path, tmp_path: Path
) -> None:
    twice = runner.invoke(
        main, ["whatif", str(SCENARIOS[0]), str(SCENARIOS[0]), "--store", str(store), "-q"]
    )
    assert twice.exit_code == ExitCode.INVALID_INPUT and "repeated" in twice.output
    none = runner.invoke(main, ["whatif", str(SCENARIOS[0]), "--store", str(tmp_path / "x")])
    assert none.exit_code == ExitCode.INVALID_INPUT and "does not exist" in none.output


def test_whatif_unreachable_inverse_exits_5(runner: CliRunner, store: Path, tmp_path: Path) -> None:
    far = tmp_path / "far.toml"
    far.write_text(
        'name = "far"\n[solve_for.fee]\nside = "freelancer"\ncategory = "marketing"\n'
        'tier = "expert"\nrate = 500.0\nrange = [0.0, 0.3]\n'
    )
    result = runner.invoke(main, ["whatif", str(far), "--store", str(store), "--json", "-q"])
    assert result.exit_code == ExitCode.INFEASIBLE, result.output
    (item,) = json.loads(result.stdout)["scenarios"]
    assert item["status"] == "infeasible" and item["inverse"]["status"] == "unreachable"
