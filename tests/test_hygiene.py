"""Issue 19 §9 and §10: names from the data cannot act on a terminal or a page, long names
wrap, and the user traps — the sample used without saying so, -q missing on history and
sql — are gone."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from storekit import cli, stub_store, tiny_market

from pricing.cli import main
from pricing.cli.exits import ExitCode
from pricing.display import escape_controls

#: a category that clears the screen and turns text red, one that reverses what follows
#: it, one that is matplotlib math, and one of 300 characters
ESCAPE = "\x1b[2J\x1b[31mred"
BIDI = "admin\u202egnp.exe"
MATH = "$\\frac{1}{0}$"
LONG = "very_long_" * 30
#: what no output may hold raw
RAW = ("\x1b", "\u202e", "\u2066", "\x07", "\r")


def test_controls_and_bidi_overrides_are_written_as_escapes() -> None:
    assert escape_controls("a\x1b[31mb\u202ec\u2067d\x85e\tf\ng") == (
        "a\\x1b[31mb\\u202ec\\u2067d\\x85e\\x09f\ng"
    )
    assert escape_controls("a\nb", newlines=False) == "a\\x0ab"
    assert escape_controls("plain text, ünïcode, 日本") == "plain text, ünïcode, 日本"


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny market of four categories, renamed as above, and a store holding its run (a
    real process)."""
    data = tiny_market(tmp_path_factory.mktemp("hostile") / "market", segments=12)
    columns = ("category", "from_category", "to_category")
    names: dict[str, str] = {}
    for path in sorted(data.glob("*.parquet")):
        frame = pd.read_parquet(path)
        for column in (c for c in columns if c in frame.columns):
            for old in sorted(frame[column].dropna().unique()):
                names.setdefault(old, (ESCAPE, BIDI, MATH, LONG, *map(str, range(99)))[len(names)])
            frame[column] = frame[column].map(lambda v: names.get(v, v))
        frame.to_parquet(path, index=False)
    store = data.parent / "store"
    done = cli("run", "--data", str(data), "--store", str(store), "--json", "-q")
    assert done.returncode in (0, ExitCode.DEGRADED), done.stderr
    return data, store


def _clean(text: str) -> None:
    for char in RAW:
        assert char not in text, repr(char)


@pytest.mark.slow
def test_terminal_output_escapes_names_from_the_data(hostile: tuple[Path, Path]) -> None:
    data, store = hostile
    for args in (
        ["panel", str(data)],
        ["guidance", str(data)],
        ["sql", "SELECT DISTINCT category FROM guidance ORDER BY 1", "--store", str(store)],
        ["history", "--store", str(store)],
    ):
        done = cli(*args, "-q")
        assert done.returncode in (0, ExitCode.DEGRADED), (args, done.stderr)
        _clean(done.stdout + done.stderr)
        if args[0] != "history":
            assert "\\x1b[2J\\x1b[31mred" in done.stdout and "admin\\u202egnp.exe" in done.stdout
    table = cli("sql", "SELECT DISTINCT category FROM guidance", "--store", str(store), "-q").stdout
    assert LONG not in table and LONG[:29] + "…" in table  # cut in the middle, rows stay rows
    whole = cli("sql", "SELECT DISTINCT category FROM guidance", "--store", str(store), "--json")
    assert LONG in {r["category"] for r in json.loads(whole.stdout)}  # --json has it all


@pytest.mark.slow
def test_the_report_escapes_and_wraps_names(hostile: tuple[Path, Path]) -> None:
    _, store = hostile
    (page,) = store.glob("runs/*/build=*/report.html")
    html = page.read_text(encoding="utf-8")
    _clean(html)
    assert "\\x1b[2J\\x1b[31mred" in html and "admin\\u202egnp.exe" in html
    assert LONG in html and "overflow-wrap: anywhere" in html
    assert html.count("data:image/png;base64,") >= 2  # figures drew the names ($ and all)


def test_validation_examples_escape_the_values_they_quote(tmp_path: Path) -> None:
    from conftest import valid_tables, write_tables

    tables = valid_tables()
    tables["jobs"].loc[0, "tier"] = "\x1b]0;owned\x07expert"
    data = write_tables(tmp_path / "d", tables)
    done = cli("validate", str(data), "-q")
    assert done.returncode == ExitCode.INVALID_INPUT
    _clean(done.stdout + done.stderr)
    assert "\\x1b]0;owned\\x07expert" in done.stdout


# --------------------------------------------------------------------- §10 traps
def test_run_on_the_sample_by_default_says_so_even_when_quiet(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    (store / "runs").write_text("not a folder: the run stops before it computes")
    result = CliRunner().invoke(main, ["run", "--store", str(store), "-q"])
    assert result.exit_code == ExitCode.INVALID_INPUT
    assert "warning: no data directory given: using the shipped sample market" in result.stderr


def test_other_commands_note_the_sample_unless_quiet() -> None:
    loud = CliRunner().invoke(main, ["panel", "--rows", "1"])
    quiet = CliRunner().invoke(main, ["panel", "--rows", "1", "-q"])
    assert loud.exit_code == quiet.exit_code == 0
    assert "note: no data directory given: using the shipped sample market" in loud.stderr
    assert quiet.stderr == ""


def test_history_and_sql_take_quiet(tmp_path: Path) -> None:
    """Their progress line goes to stderr unless -q/--quiet; the output stays the same."""
    stub_store(tmp_path / "store")
    for args in (["history"], ["sql", "SELECT count(*) AS n FROM runs"]):
        loud = CliRunner().invoke(main, [*args, "--store", str(tmp_path / "store")])
        assert loud.exit_code == 0 and "checking the run store" in loud.stderr, loud.output
        for quiet in ("-q", "--quiet"):
            result = CliRunner().invoke(main, [*args, "--store", str(tmp_path / "store"), quiet])
            assert result.exit_code == 0 and result.stderr == "", result.output
            assert result.stdout == loud.stdout
    done = cli("history", "--store", str(tmp_path / "store"), "-q")  # as a real process
    assert done.returncode == 0 and done.stderr == "", done.stderr
