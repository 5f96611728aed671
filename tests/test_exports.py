"""Exports: `pricing sql … --out FILE` and `pricing whatif … --out DIR` write real files
(read back here with pandas, pyarrow and json), atomically; a bad --out is refused
before any work with exit 2 and one line, a folder that cannot be written exits 6."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import SAMPLE, quick_config

from pricing.cli import main
from pricing.cli.exits import ExitCode
from pricing.runs import pipeline

QUERY = (
    "SELECT category, tier, market_state, gap_frac, freelancer_rate_low FROM guidance ORDER BY 1, 2"
)
SCENARIO = SAMPLE.parent / "scenarios" / "design-boom.toml"
OTHER = SAMPLE.parent / "scenarios" / "legal-fee-cut.toml"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A quick run of the sample (shared, read-only). Its guidance band draws overflow
    on main (RuntimeWarnings from pricing/decisions/guidance.py, being fixed elsewhere);
    nothing exported here depends on the bands."""
    root = tmp_path_factory.mktemp("exports") / "store"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        pipeline.run_batch(SAMPLE, quick_config(), root)
    return root


def _sql(runner: CliRunner, store: Path, *args: str) -> pd.DataFrame:
    """The query's result as `pricing sql --json` prints it (the reference)."""
    result = runner.invoke(main, ["sql", QUERY, "--store", str(store), "--json", "-q", *args])
    assert result.exit_code == 0, result.output
    return pd.DataFrame(json.loads(result.stdout))


@pytest.mark.parametrize("fmt", ["csv", "parquet", "json"])
def test_sql_out_writes_every_row_in_each_format(
    runner: CliRunner, store: Path, tmp_path: Path, fmt: str
) -> None:
    out = tmp_path / f"guidance.{fmt}"
    result = runner.invoke(main, ["sql", QUERY, "--store", str(store), "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    assert f"wrote 36 row(s) × 5 column(s) to {out} ({fmt})" in result.stdout
    expected = _sql(runner, store)
    if fmt == "csv":
        got = pd.read_csv(out, keep_default_na=False, na_values=[""])
    elif fmt == "parquet":
        got = pd.read_parquet(out)
    else:
        got = pd.DataFrame(json.loads(out.read_text()))
    assert list(got.columns) == list(expected.columns)
    assert got[["category", "tier", "market_state"]].equals(  # strings: equal exactly
        expected[["category", "tier", "market_state"]]
    )
    # CSV and JSON print floats with at least 15 significant digits (--json prints 10)
    for column in ("gap_frac", "freelancer_rate_low"):
        pd.testing.assert_series_equal(got[column], expected[column], rtol=1e-9, check_dtype=False)
    # nothing else is left in the folder (no temporary file)
    assert [p.name for p in tmp_path.iterdir()] == [out.name]


def test_sql_out_format_overrides_the_suffix_and_json_says_what_was_written(
    runner: CliRunner, store: Path, tmp_path: Path
) -> None:
    out = tmp_path / "guidance.txt"
    result = runner.invoke(
        main,
        ["sql", QUERY, "--store", str(store), "--out", str(out), "--format", "parquet", "--json"],
    )
    assert result.exit_code == 0, result.output
    written = json.loads(result.stdout)
    assert written == {
        "out": str(out),
        "format": "parquet",
        "rows": 36,
        "columns": ["category", "tier", "market_state", "gap_frac", "freelancer_rate_low"],
    }
    assert len(pd.read_parquet(out)) == 36


def test_sql_out_refuses_an_existing_file_unless_forced(
    runner: CliRunner, store: Path, tmp_path: Path
) -> None:
    out = tmp_path / "g.csv"
    out.write_text("keep me\n")
    refused = runner.invoke(main, ["sql", QUERY, "--store", str(store), "--out", str(out)])
    assert refused.exit_code == ExitCode.USAGE
    assert "already exists; pass --force" in refused.stderr
    assert out.read_text() == "keep me\n"
    forced = runner.invoke(
        main, ["sql", QUERY, "--store", str(store), "--out", str(out), "--force", "-q"]
    )
    assert forced.exit_code == 0, forced.output
    assert len(pd.read_csv(out)) == 36


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--out", "{tmp}/g.xlsx"], "give --format csv|parquet|json"),
        (["--format", "csv"], "--format needs --out FILE"),
        (["--out", "{tmp}"], "is a folder; name a file"),
    ],
)
def test_sql_bad_out_is_a_usage_error(
    runner: CliRunner, store: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = runner.invoke(main, ["sql", QUERY, "--store", str(store), *args])
    assert result.exit_code == ExitCode.USAGE
    assert message in result.stderr


def test_sql_out_that_cannot_be_written_exits_6_in_one_line(store: Path, tmp_path: Path) -> None:
    """A real process: one line on stderr, no traceback, nothing written."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for out in (blocker / "g.csv", Path("/proc/no-such-dir/g.csv")):
        args = ["sql", QUERY, "--store", str(store), "--out", str(out), "-q"]
        done = subprocess.run(
            [sys.executable, "-m", "pricing.cli", *args],
            capture_output=True,
            text=True,
            env={**os.environ, "COLUMNS": "200"},
        )
        assert done.returncode == ExitCode.RUN_FAILED, done.stderr
        assert done.stderr.startswith(f"Error: cannot write {out}")
        assert len(done.stderr.strip().splitlines()) == 1
        assert "Traceback" not in done.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["a-file"]


@pytest.mark.slow
def test_whatif_out_writes_each_scenarios_tables(
    runner: CliRunner, store: Path, tmp_path: Path
) -> None:
    out = tmp_path / "exported"
    args = ["whatif", str(SCENARIO), str(OTHER), "--store", str(store), "--no-report", "-q"]
    result = runner.invoke(main, [*args, "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    listing = json.loads((out / "export.json").read_text())
    assert payload["out"]["path"] == str(out)
    assert listing["format"] == "csv" and listing["baseline"] == payload["baseline"]
    assert sorted(listing["scenarios"]) == ["design-boom", "legal-fee-cut"]
    for item in payload["scenarios"]:
        folder = out / item["name"]
        tables = listing["scenarios"][item["name"]]["tables"]
        assert {"segments", "totals", "equilibrium", "flows"} <= set(tables)
        for name, rows in tables.items():
            assert len(pd.read_csv(folder / f"{name}.csv")) == rows
        assert (folder / "scenario.toml").read_text().strip()
        # the totals read back are the ones --json printed, to CSV's 15+ digits
        totals = pd.read_csv(folder / "totals.csv").set_index("measure")
        for row in item["totals"]:
            for side in ("baseline", "scenario"):
                assert math.isclose(totals.loc[row["measure"], side], row[side], rel_tol=1e-9)
    boom = listing["scenarios"]["design-boom"]["tables"]
    assert {"interventions", "plan_categories", "plan_constraints"} <= set(boom)
    # the same folder again: refused without --force, replaced with it, as parquet
    again = runner.invoke(main, [*args, "--out", str(out)])
    assert again.exit_code == ExitCode.USAGE and "pass --force" in again.stderr
    forced = runner.invoke(main, [*args, "--out", str(out), "--force", "--format", "parquet"])
    assert forced.exit_code == 0, forced.output
    assert not list(out.rglob("*.csv"))
    flows = pd.read_parquet(out / "design-boom" / "flows.parquet")
    assert set(flows["kind"]) == {"home", "edge"}


def test_whatif_bad_out_is_refused_before_solving(
    runner: CliRunner, store: Path, tmp_path: Path
) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    base = ["whatif", str(SCENARIO), "--store", str(store), "--no-report"]
    before = sorted(store.rglob("*"))
    for extra, message in (
        (["--out", str(mine), "--force"], "holds files that no export wrote"),
        (["--out", str(a_file)], "is a file; name a folder"),
        (["--format", "json"], "--format needs --out DIR"),
    ):
        result = runner.invoke(main, [*base, *extra])
        assert result.exit_code == ExitCode.USAGE, result.output
        assert message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert (mine / "notes.txt").read_text() == "mine"
    assert sorted(store.rglob("*")) == before  # nothing was solved or stored
