"""The run store: atomic commits, newest build wins, stale folders cleaned, views."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
from conftest import stub_manifest, stub_scenario_manifest

from pricing.errors import StoreError
from pricing.store.manifest import read_manifest
from pricing.store.snapshot import Snapshot
from pricing.store.store import RunStore

D1, D2 = dt.date(2025, 12, 21), dt.date(2025, 12, 28)


def _tables(value: float) -> dict[str, pd.DataFrame]:
    return {
        "equilibrium": pd.DataFrame(
            {"category": ["a", "b"], "tier": ["x", "x"], "rate": [value, value + 1]}
        ),
        "guidance": pd.DataFrame(
            {"category": ["a", "b"], "tier": ["x", "x"], "gap_frac": [1.0, 2.0]}
        ),
    }


_manifest = stub_manifest


def test_commit_lists_and_resolves_runs(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "s")
    p1 = store.write_run(D1, _tables(10.0), _manifest(D1))
    p2 = store.write_run(D2, _tables(20.0), _manifest(D2))
    assert store.run_paths() == {D1: p1, D2: p2}
    assert store.resolve("latest") == p2 and store.resolve("2025-12-21") == p1
    assert store.earlier(D2) == [p1] and store.earlier(D1) == []
    manifest = read_manifest(p2)
    assert manifest.path == str(p2) and p2.name == f"build={manifest.build}"
    assert "store" in manifest.timings_s  # the store's own step is timed in its manifest
    assert manifest.tables == {"equilibrium": 2, "guidance": 2}  # set by the store
    with Snapshot.open(store) as snapshot:
        assert list(snapshot.runs()["run_id"]) == ["2025-12-21", "2025-12-28"]


def test_rerun_of_an_as_of_replaces_it_and_removes_the_old_build(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "s")
    old = store.write_run(D1, _tables(10.0), _manifest(D1))
    new = store.write_run(D1, _tables(11.0), _manifest(D1))
    assert new != old and new.name > old.name
    assert store.run_paths() == {D1: new}
    assert not old.exists()
    assert pd.read_parquet(new / "equilibrium.parquet")["rate"].iloc[0] == 11.0


def test_newest_build_wins_and_leftovers_are_invisible_then_cleaned(tmp_path: Path) -> None:
    """A kill between the commit and the clean-up leaves an older build; one during the
    write leaves a hidden temporary folder. Readers see neither; the next writer removes
    both."""
    store = RunStore(tmp_path / "s")
    first = store.write_run(D1, _tables(10.0), _manifest(D1))
    folder = first.parent
    older = folder / "build=20000101T000000000000Z"  # as if a clean-up never ran
    older.mkdir()
    (older / "manifest.json").write_text(_manifest(D1).to_json())
    stale = folder / ".build=20991231T000000000000Z.tmp-abc"  # a dead writer's folder
    stale.mkdir()
    (stale / "equilibrium.parquet").write_bytes(b"half a file")
    assert store.run_paths() == {D1: first}
    with Snapshot.open(store) as snapshot:
        assert snapshot.query("SELECT count(*) AS n FROM equilibrium")["n"].tolist() == [2]
    second = store.write_run(D1, _tables(12.0), _manifest(D1))
    assert sorted(p.name for p in folder.iterdir()) == [second.name]


def test_failed_write_leaves_the_previous_run(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "s")
    first = store.write_run(D1, _tables(10.0), _manifest(D1))
    bad = {"equilibrium": pd.DataFrame({"x": [object()]})}  # pyarrow cannot write it
    with pytest.raises(Exception, match="object"):
        store.write_run(D1, bad, _manifest(D1))
    assert store.run_paths() == {D1: first}
    assert sorted(p.name for p in first.parent.iterdir()) == [first.name]


def test_views_carry_the_as_of_and_scenario_partitions(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "s")
    store.write_run(D1, _tables(10.0), _manifest(D1))
    store.write_run(D2, _tables(20.0), _manifest(D2))
    store.write_scenario(
        D2,
        "boom",
        {"totals": pd.DataFrame({"measure": ["hours"], "change": [5.0]})},
        stub_scenario_manifest("boom", D2),
        files={"scenario.toml": 'name = "boom"\n'},
    )
    con = Snapshot.open(store).connect()
    rows = con.execute(
        "SELECT as_of, avg(rate) FROM equilibrium GROUP BY as_of ORDER BY as_of"
    ).fetchall()
    assert rows == [(D1, 10.5), (D2, 20.5)]
    assert con.execute("SELECT baseline, scenario, change FROM scenario_totals").fetchall() == [
        (D2, "boom", 5.0)
    ]
    assert con.execute("SELECT as_of FROM runs ORDER BY 1").fetchall() == [(D1,), (D2,)]
    (path,) = store.scenario_paths().values()
    assert (path / "scenario.toml").read_text() == 'name = "boom"\n'


@pytest.mark.parametrize(
    ("run_id", "message"),
    [
        ("2025-01-05", "no run as of 2025-01-05 in .*runs: 2025-12-21"),
        ("yesterday", "neither 'latest' nor a date"),
    ],
)
def test_unknown_run_ids_name_the_runs_there(tmp_path: Path, run_id: str, message: str) -> None:
    store = RunStore(tmp_path / "s")
    store.write_run(D1, _tables(10.0), _manifest(D1))
    with pytest.raises(StoreError, match=message):
        store.resolve(run_id)


def test_missing_or_empty_store(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        RunStore(tmp_path / "nowhere").resolve("latest")
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreError, match="holds no runs"):
        RunStore(tmp_path / "empty").resolve("latest")
    assert Snapshot.open(RunStore(tmp_path / "empty")).runs().empty


def test_unwritable_store_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreError, match="cannot be written"):
        RunStore(blocker / "s").write_run(D1, _tables(1.0), _manifest(D1))
