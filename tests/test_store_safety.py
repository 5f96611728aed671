"""Issue 19 §2 and §4: what `pricing sql` may do, identifiers that come from data, and
one damaged file or stray folder that must not take the store down.

Most cases run on a store of stub runs through click's CliRunner (the command group,
mapping and output are the same as a subprocess's); the cases where the process
matters — a crafted column name through validate and run, a COPY attempt, the next
nightly run after damage — run `pricing` as a real subprocess.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import stub_manifest, valid_tables, write_tables
from storekit import TINY_DATES, cli, store_files, stub_store, stub_tables, tiny_market, truncate

from pricing.cli import main
from pricing.cli.exits import ExitCode
from pricing.config import parse_config
from pricing.errors import ConfigError
from pricing.inputs.io import quote_identifier
from pricing.runs.pipeline import run_batch
from pricing.store.manifest import read_manifest
from pricing.store.store import RunStore

D1, D2, D3 = "2025-12-14", "2025-12-21", "2025-12-28"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def stub(tmp_path: Path) -> Path:
    root = tmp_path / "store"
    stub_store(root, (D1, D2, D3))
    return root


def _build(root: Path, day: str) -> Path:
    return RunStore(root).run_paths()[dt.date.fromisoformat(day)]


# ------------------------------------------------------------------ §2 pricing sql
@pytest.mark.parametrize(
    ("query", "said"),
    [
        ("COPY (SELECT 1) TO '{out}'", "COPY"),
        ("ATTACH '{db}' AS planted", "ATTACH"),
        ("SELECT 1; COPY (SELECT 1) TO '{out}'", "2 statement(s): SELECT, COPY"),
        ("SET enable_external_access = true", "SET"),
        ("INSTALL httpfs", "LOAD"),  # DuckDB files INSTALL under LOAD
        ("CREATE TABLE t AS SELECT 1", "CREATE"),
        ("EXPLAIN SELECT 1", "EXPLAIN"),
        ("PRAGMA version", "PRAGMA"),
        ("EXPORT DATABASE '{out}'", "EXPORT"),
        ("RESET threads", "SET"),
        ("CALL pragma_version()", "CALL"),
        ("SELECT * FROM query('COPY (SELECT 1) TO ''{out}''')", "single SELECT"),
        ("SELECT * FROM query('SET lock_configuration = false')", "single SELECT"),
        ("", "the query is empty"),
        ("  ;  ", "the query is empty"),
        ("SELEC 1", "cannot parse"),
    ],
)
def test_sql_runs_one_select_and_nothing_else(
    runner: CliRunner, stub: Path, tmp_path: Path, query: str, said: str
) -> None:
    out, db = tmp_path / "written.csv", stub / "runs" / "planted.db"
    before = store_files(stub)
    result = runner.invoke(main, ["sql", query.format(out=out, db=db), "--store", str(stub)])
    assert result.exit_code == ExitCode.USAGE, result.output
    assert said in result.stderr and "Traceback" not in result.output
    assert store_files(stub) == before and not out.exists() and not db.exists()


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_text('/etc/hostname')",
        "SELECT * FROM glob('/*')",
        "SELECT * FROM read_parquet('{outside}')",
        "SELECT * FROM read_parquet('{store}/runs/*/*/guidance.parquet')",
    ],
)
def test_sql_reads_no_file_but_the_views_own(
    runner: CliRunner, stub: Path, tmp_path: Path, query: str
) -> None:
    outside = tmp_path / "outside.parquet"
    pd.DataFrame({"secret": [1]}).to_parquet(outside)
    result = runner.invoke(
        main, ["sql", query.format(outside=outside, store=stub), "--store", str(stub)]
    )
    assert result.exit_code == ExitCode.USAGE
    assert "disabled by configuration" in result.stderr and "secret" not in result.stdout


def test_sql_reads_the_views_and_describes_them(runner: CliRunner, stub: Path) -> None:
    for query, shown in (
        ("SELECT as_of, count(*) AS n FROM guidance GROUP BY 1 ORDER BY 1", D3),
        ("WITH g AS (SELECT * FROM guidance) SELECT max(as_of) AS last FROM g", D3),
        ("DESCRIBE guidance", "freelancer_rate"),
        ("SELECT run_id FROM runs ORDER BY 1", D1),
        (f"SELECT count(*) AS n FROM read_parquet('{_build(stub, D1)}/guidance.parquet')", "2"),
    ):
        result = runner.invoke(main, ["sql", query, "--store", str(stub), "-q"])
        assert result.exit_code == 0, result.output
        assert shown in result.stdout and result.stderr == ""


def test_a_copy_into_the_store_cannot_plant_a_build(stub: Path) -> None:
    """The attack of the issue, as a real process: a query writing a fake newest build."""
    planted = stub / "runs" / "as_of=2099-01-04" / "build=20990104T000000000000Z"
    before = store_files(stub)
    done = cli("sql", f"COPY (SELECT 1 AS x) TO '{planted}/guidance.parquet'", "--store", str(stub))
    assert done.returncode == ExitCode.USAGE, done.stderr
    assert done.stderr.count("\n") <= 2 and "Traceback" not in done.stderr
    assert store_files(stub) == before
    assert cli("history", "--store", str(stub), "-q").returncode == 0


# ------------------------------------------------------------- §2 identifiers
def test_a_crafted_shifter_column_name_is_rejected_and_never_reaches_sql(tmp_path: Path) -> None:
    """A column name that ends its identifier and goes on as SQL passed validation and
    made `pricing run` execute a COPY; now validation names it with a fix, and the run
    stores and writes nothing."""
    target = tmp_path / "pwned.csv"
    evil = f"x\" FROM shifters sh; COPY (SELECT 42) TO '{target}'; SELECT 1 AS \"y"
    tables = valid_tables()
    tables["shifters"][evil] = 1.0
    data = write_tables(tmp_path / "data", tables, fmt="parquet")
    checked = cli("validate", str(data), "--json", "-q")
    assert checked.returncode == ExitCode.INVALID_INPUT, checked.stderr
    (problem,) = [
        p for p in json.loads(checked.stdout)["problems"] if p["rule"] == "bad_column_name"
    ]
    assert (
        problem["column"] == evil
        and "rename it, e.g. to 'x_FROM_shifters_sh_COPY" in problem["message"]
    )
    store = tmp_path / "store"
    ran = cli("run", "--data", str(data), "--store", str(store), "--as-of", "2024-02-01", "-q")
    assert ran.returncode == ExitCode.INVALID_INPUT
    assert not target.exists() and not (store / "runs").exists()


def test_identifiers_are_quoted_and_configured_names_restricted() -> None:
    assert quote_identifier('a"b') == '"a""b"'
    with pytest.raises(ConfigError, match=r"estimation.controls: .*not a letter or _"):
        parse_config({"estimation": {"controls": ['fx"; DROP TABLE jobs; --']}})
    assert parse_config({"estimation": {"controls": ["fx_index_2"]}}).estimation.controls == (
        "fx_index_2",
    )


# ------------------------------------------------------------------ §4 damage
def _damage(build: Path, kind: str) -> str:
    """Damage ``build`` in one of the issue's ways; what `store check` says about it."""
    if kind == "truncated_table":
        truncate(build / "guidance.parquet")
        return "guidance.parquet is not a readable Parquet file"
    if kind == "missing_table":
        (build / "equilibrium.parquet").unlink()
        return "equilibrium.parquet is missing (its manifest lists it)"
    if kind == "other_rows":
        pd.DataFrame({"category": ["a"], "tier": ["x"]}).to_parquet(build / "market.parquet")
        return "market.parquet holds 1 rows; its manifest says 2"
    if kind == "empty_manifest":
        (build / "manifest.json").write_text("")
        return "manifest.json cannot be read"
    if kind == "missing_manifest":
        (build / "manifest.json").unlink()
        return "manifest.json cannot be read"
    if kind == "invalid_manifest":
        (build / "manifest.json").write_text('{"run_id": 7}')
        return "manifest.json is not a valid manifest"
    assert kind == "foreign_manifest"  # a run's folder copied into another date's
    (build / "manifest.json").write_text(stub_manifest(dt.date(2025, 12, 7)).to_json())
    return "is the manifest of run 2025-12-07, not of 2025-12-21"


DAMAGE = (
    "truncated_table",
    "missing_table",
    "other_rows",
    "empty_manifest",
    "missing_manifest",
    "invalid_manifest",
    "foreign_manifest",
)


@pytest.mark.parametrize("kind", DAMAGE)
def test_one_damaged_run_is_left_out_named_and_listed(
    runner: CliRunner, stub: Path, kind: str
) -> None:
    said = _damage(_build(stub, D2), kind)
    for args in (
        ["history", "--json"],
        ["history", "--segment", "a/x", "--json"],
        ["sql", "SELECT DISTINCT as_of FROM guidance ORDER BY 1", "--json"],
        ["sql", "SELECT run_id AS as_of FROM runs ORDER BY 1", "--json"],
    ):
        result = runner.invoke(main, [*args, "--store", str(stub), "-q"])
        assert result.exit_code == 0, (args, result.output)
        assert f"run {D2}" in result.stderr and "left out" in result.stderr
        assert said in result.stderr
        shown = json.loads(result.stdout)
        rows = shown["runs"] if isinstance(shown, dict) else shown
        assert [str(r.get("as_of", r.get("run_id")))[:10] for r in rows] == [D1, D3], args
    check = runner.invoke(main, ["store", "check", "--store", str(stub)])
    assert check.exit_code == ExitCode.INVALID_INPUT
    assert f"damaged: run {D2} at " in check.stdout and said in check.stdout
    assert "1 damaged item(s)" in check.stderr
    loaded = runner.invoke(main, ["report", D2, "--store", str(stub), "-q"])
    assert loaded.exit_code == ExitCode.INVALID_INPUT and "is damaged" in loaded.stderr


@pytest.mark.parametrize(
    "stray",
    [
        "runs/as_of=2025-12-28.bak",
        "runs/as_of=garbage",
        "runs/as_of=2025-02-30",
        "runs/as_of=2025-12-28/build=zzz",
        "runs/as_of=2025-12-28/build=20251299T000000000000Z",
        "runs/notes.txt",
        "scenarios/baseline=yesterday",
    ],
)
def test_a_stray_entry_is_named_and_the_store_still_works(
    runner: CliRunner, stub: Path, stray: str
) -> None:
    """Each made every command exit 1; a non-timestamp build sorted as the newest."""
    path = stub / stray
    if path.suffix == ".txt":
        path.write_text("notes")
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(_build(stub, D3), path)  # a copy of a real build, manifest and all
    for args in (["history", "--json"], ["sql", "SELECT DISTINCT as_of FROM guidance", "--json"]):
        result = runner.invoke(main, [*args, "--store", str(stub), "-q"])
        assert result.exit_code == 0, result.output
        assert f"stray entry at {path}" in result.stderr
        assert (
            len(
                json.loads(result.stdout)["runs"]
                if args[0] == "history"
                else json.loads(result.stdout)
            )
            == 3
        )
    check = runner.invoke(main, ["store", "check", "--store", str(stub), "--json"])
    assert check.exit_code == ExitCode.INVALID_INPUT
    assert [d["path"] for d in json.loads(check.stdout)["damage"]] == [str(path)]
    later = RunStore(stub).write_run(
        dt.date(2026, 1, 4), stub_tables(1.0), stub_manifest(dt.date(2026, 1, 4))
    )
    again = RunStore(stub).write_run(
        dt.date(2025, 12, 28), stub_tables(2.0), stub_manifest(dt.date(2025, 12, 28))
    )
    assert RunStore(stub).run_paths()[dt.date(2025, 12, 28)] == again and later.exists()
    assert path.exists()  # never deleted: it is not the store's to remove


def test_a_table_that_fails_only_when_read_leaves_its_run_out_of_the_query(
    runner: CliRunner, stub: Path
) -> None:
    """A footer intact over a broken page passes the quick check; the query that hits it
    is run again without that run, which is named."""
    file = _build(stub, D2) / "guidance.parquet"
    data = bytearray(file.read_bytes())
    data[4:40] = b"\xff" * 36  # the first page's header (category's): the footer still reads
    file.write_bytes(bytes(data))
    assert pq.read_metadata(file).num_rows == 2
    result = runner.invoke(
        main,
        [
            "sql",
            "SELECT as_of, count(DISTINCT category) AS n FROM guidance GROUP BY 1 ORDER BY 1",
            "--store",
            str(stub),
            "--json",
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    assert [r["as_of"][:10] for r in json.loads(result.stdout)] == [D1, D3]
    assert f"run {D2}" in result.stderr and "left out" in result.stderr
    quick = runner.invoke(main, ["store", "check", "--quick", "--store", str(stub)])
    deep = runner.invoke(main, ["store", "check", "--store", str(stub)])
    assert quick.exit_code == 0 and deep.exit_code == ExitCode.INVALID_INPUT
    assert f"run {D2}" in deep.stdout


def test_a_commit_fsyncs_files_and_folder_before_the_rename_and_the_parent_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        events.append(("rename", str(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    store = RunStore(tmp_path / "store")
    final = store.write_run(
        dt.date(2025, 12, 28), stub_tables(1.0), stub_manifest(dt.date(2025, 12, 28))
    )
    rename = events.index(("rename", str(final)))
    before = {Path(p).name for kind, p in events[:rename] if kind == "fsync"}
    assert {f.name for f in final.iterdir()} <= before  # every table and the manifest
    assert any(n.startswith(".build=") for n in before)  # the folder that is renamed
    assert ("fsync", str(final.parent)) in events[rename:]  # the rename itself


# ------------------------------------------------- §4 the next nightly run
@pytest.mark.slow
def test_a_nightly_run_after_a_damaged_previous_run_skips_it(tmp_path: Path) -> None:
    """A truncated table in the previous run's guidance crashed the next nightly run;
    now it says so and caps against the run before."""
    data = tiny_market(tmp_path / "tiny")
    store = tmp_path / "store"
    for day in TINY_DATES[:2]:
        run_batch(data, store=store, as_of=dt.date.fromisoformat(day))
    truncate(_build(store, TINY_DATES[1]) / "guidance.parquet")
    done = cli(
        "run", "--data", str(data), "--store", str(store), "--as-of", TINY_DATES[2], "--json", "-q"
    )
    assert done.returncode == 0, done.stderr
    assert f"run {TINY_DATES[1]}" in done.stderr and "skipped" in done.stderr
    assert json.loads(done.stdout)["previous_run"] == TINY_DATES[0]
    assert read_manifest(_build(store, TINY_DATES[2])).previous_run == TINY_DATES[0]


def test_ctrl_c_delivered_to_another_thread_during_a_commit_waits_for_on_commit(
    tmp_path: Path,
) -> None:
    """SIGINT right after the rename, delivered to another thread (as the kernel may: BLAS,
    Arrow and DuckDB run thread pools): it was blocked only in the committing thread, so
    KeyboardInterrupt came before ``on_commit`` — a stored run reported as "nothing was
    stored". It must come after ``on_commit`` has learnt of the build, exactly once."""
    store, told = RunStore(tmp_path / "store"), []

    def on_commit(path: Path) -> None:
        sender = threading.Thread(target=os.kill, args=(os.getpid(), signal.SIGINT))
        sender.start()
        sender.join()
        time.sleep(0.05)  # the main thread checks for signals many times meanwhile
        told.append(path)

    as_of = dt.date(2025, 12, 28)
    with pytest.raises(KeyboardInterrupt):
        store.write_run(as_of, stub_tables(1.0), stub_manifest(as_of), on_commit=on_commit)
    (path,) = told
    assert RunStore(store.root).run_paths() == {as_of: path} and (path / "manifest.json").is_file()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
