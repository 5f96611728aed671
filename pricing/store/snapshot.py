"""Reading the run store safely: checked builds, held while read, and read-only SQL.

A :class:`Snapshot` is what every reader of many runs works on (``pricing history``,
``pricing sql``): it holds the store for reading (no build it lists can be removed while
it is open, :meth:`RunStore.hold`), lists the current builds, and checks each one
(:func:`check_build`): the manifest parses and names this run, and every table it lists
is there, readable as Parquet (its footer) and holds the rows the manifest says. One bad
file never takes the store down: a damaged run is left out, with a :class:`Damage`
naming it and what is wrong (the command line prints those on stderr), and the others
are read as usual. ``Snapshot.open(store, deep=True)`` lists every damage of a store
the same way, reading every row of every table (``pricing store check``).

**Queries** (:meth:`Snapshot.query`) run over views of the checked builds. A query from
a user (``pricing sql``) must be exactly one ``SELECT`` statement (DuckDB's own parser
says which kind a statement is), and runs on a connection that can read only the files
behind the views: ``enable_external_access = false`` with ``allowed_paths`` set to those
files, then ``lock_configuration = true``. So it cannot write or copy a file, attach a
database, load an extension, read any other file, or change a setting. A file that turns
out unreadable while a query runs (damage the footer check cannot see) leaves its run
out: the query is run again without it, and the run is named.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pricing.errors import QueryError, StoreError, suggest
from pricing.inputs.io import connect, quote_identifier, sql_string
from pricing.store.manifest import (
    MANIFEST,
    BacktestManifest,
    Manifest,
    ScenarioManifest,
    read_backtest_manifest,
    read_manifest,
    read_scenario_manifest,
)
from pricing.store.store import (
    BACKTEST_TABLES,
    RUN_COLUMNS,
    RUN_TABLES,
    SCENARIO_TABLES,
    Damage,
    ReaderHold,
    RunStore,
    run_row,
)

#: tables every run has (checked for manifests that do not list their tables)
REQUIRED_RUN_TABLES = ("curves", "equilibrium", "guidance", "market", "edges")
#: tables every scenario result has
REQUIRED_SCENARIO_TABLES = ("segments", "totals", "equilibrium")
#: tables every backtest has
REQUIRED_BACKTEST_TABLES = ("scores", "segments")
#: any stored build's manifest
Manifests = Manifest | ScenarioManifest | BacktestManifest
_READERS: dict[str, Callable[[Path], Manifests]] = {
    "run": read_manifest,
    "scenario": read_scenario_manifest,
    "backtest": read_backtest_manifest,
}
_SCENARIO_COLUMNS = ("baseline", "scenario", "created", "status", "description", "path")


# --------------------------------------------------------------------------- checks
def check_build(
    path: Path, kind: str, expected: tuple[dt.date, str | None], deep: bool = False
) -> tuple[Manifests | None, list[str]]:
    """The manifest of a run, scenario or backtest folder (``kind``: "run", "scenario",
    "backtest") and its problems: the
    manifest cannot be read or names another run (``expected``: the folder's date and
    scenario name), a table it lists (in a manifest without the list: one every such
    build has) is missing, unreadable or holds other rows than it says. ``deep`` reads
    every row, not only the footers."""
    try:
        manifest: Manifests = _READERS[kind](path)
    except StoreError as exc:
        return None, [str(exc).replace(str(path / MANIFEST), MANIFEST)]
    problems = _identity(manifest, expected)
    for name, count in _tables(manifest).items():
        problems += _table_problems(path / f"{name}.parquet", count, deep)
    return manifest, problems


def _tables(manifest: Manifests) -> dict[str, int | None]:
    """The tables of a build and their rows, as its manifest records them (the store
    records every table it writes); for a result stored before it did, the tables every
    such result has, rows unknown."""
    if manifest.tables:
        return dict(manifest.tables)
    required = (
        REQUIRED_RUN_TABLES
        if isinstance(manifest, Manifest)
        else REQUIRED_BACKTEST_TABLES
        if isinstance(manifest, BacktestManifest)
        else REQUIRED_SCENARIO_TABLES
    )
    return dict.fromkeys(required)


def _identity(manifest: Manifests, expected: tuple[dt.date, str | None]) -> list[str]:
    as_of, scenario = expected
    if isinstance(manifest, Manifest):
        if manifest.as_of != as_of:
            return [f"{MANIFEST} is the manifest of run {manifest.run_id}, not of {as_of}"]
        return []
    if isinstance(manifest, BacktestManifest):
        if manifest.as_of != as_of:
            return [f"{MANIFEST} is the manifest of the backtest of {manifest.as_of}, not {as_of}"]
        return []
    if manifest.baseline != as_of.isoformat() or manifest.scenario != scenario:
        return [
            f"{MANIFEST} is the manifest of scenario {manifest.scenario!r} of run "
            f"{manifest.baseline}, not of {scenario!r} of {as_of}"
        ]
    return []


def _table_problems(file: Path, rows: int | None, deep: bool) -> list[str]:
    """What is wrong with one stored table: missing, not Parquet, other rows than its
    manifest says; with ``deep``, a row group that does not decode."""
    try:
        metadata = pq.read_metadata(file)
        if deep:
            for _ in pq.ParquetFile(file).iter_batches():
                pass
    except FileNotFoundError:
        return [f"{file.name} is missing (its manifest lists it)"]
    except (OSError, pa.ArrowException) as exc:
        return [f"{file.name} is not a readable Parquet file ({_first_line(exc)})"]
    if rows is not None and metadata.num_rows != rows:
        return [f"{file.name} holds {metadata.num_rows:,} rows; its manifest says {rows:,}"]
    return []


# --------------------------------------------------------------------------- snapshot
@dataclass(frozen=True)
class _Build:
    path: Path
    manifest: Any  # Manifest of a run, ScenarioManifest of a scenario, BacktestManifest
    what: str  # "run 2025-12-28", "scenario boom of run 2025-12-28"


class Snapshot:
    """The checked current builds of a store, held for reading (module docstring).

    Use it as a context manager, or :meth:`close` it: while it is open no build it lists
    is removed. ``damage`` lists what was left out and why.
    """

    def __init__(
        self,
        store: RunStore,
        hold: ReaderHold,
        runs: dict[dt.date, _Build],
        scenarios: dict[tuple[dt.date, str], _Build],
        backtests: dict[dt.date, _Build],
        damage: list[Damage],
        superseded: int,
    ) -> None:
        self.store = store
        self._hold = hold
        self._runs = runs
        self._scenarios = scenarios
        self._backtests = backtests
        self.damage = damage
        #: superseded builds still in the store (removed by a commit when no reader reads)
        self.superseded = superseded

    @classmethod
    def open(cls, store: RunStore, deep: bool = False) -> Snapshot:
        """Hold ``store``, list its current builds and check each (``deep``: every row)."""
        if not store.root.exists():
            raise StoreError(f"run store {store.root} does not exist; run `pricing run` first")
        hold = store.hold()
        listing = store.listing()  # a StoreError when the root or its runs is not a folder
        damage = list(listing.stray)
        runs = {}
        for as_of, path in listing.runs.items():
            build = _checked(path, "run", (as_of, None), deep, f"run {as_of}", damage)
            if build is not None:
                runs[as_of] = build
        scenarios = {}
        for (as_of, name), path in listing.scenarios.items():
            what = f"scenario {name} of run {as_of}"
            build = _checked(path, "scenario", (as_of, name), deep, what, damage)
            if build is not None:
                scenarios[(as_of, name)] = build
        backtests = {}
        for as_of, path in listing.backtests.items():
            what = f"backtest {as_of}"
            build = _checked(path, "backtest", (as_of, None), deep, what, damage)
            if build is not None:
                backtests[as_of] = build
        return cls(store, hold, runs, scenarios, backtests, damage, len(listing.superseded))

    def close(self) -> None:
        self._hold.release()

    def __enter__(self) -> Snapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def run_paths(self) -> dict[dt.date, Path]:
        return {as_of: b.path for as_of, b in self._runs.items()}

    @property
    def scenario_paths(self) -> dict[tuple[dt.date, str], Path]:
        return {key: b.path for key, b in self._scenarios.items()}

    def runs(self) -> pd.DataFrame:
        """One row per readable run, from its manifest (oldest first)."""
        rows = [run_row(b.manifest, b.path) for b in self._runs.values()]
        return pd.DataFrame(rows, columns=list(RUN_COLUMNS))

    def scenarios(self) -> pd.DataFrame:
        """One row per readable scenario result."""
        rows = [
            {
                "baseline": as_of,
                "scenario": name,
                "created": b.manifest.created,
                "status": str(b.manifest.status),
                "description": b.manifest.description,
                "path": str(b.path),
            }
            for (as_of, name), b in self._scenarios.items()
        ]
        return pd.DataFrame(rows, columns=list(_SCENARIO_COLUMNS))

    def connect(self, read_only: bool = False) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB database with a view per table over the checked builds:
        ``runs``, ``scenarios`` and one per table of
        :data:`~pricing.store.store.RUN_TABLES` (``curves``, ``flows``, …), of
        :data:`~pricing.store.store.SCENARIO_TABLES` prefixed ``scenario_`` and of
        :data:`~pricing.store.store.BACKTEST_TABLES` prefixed ``backtest_`` (a view exists
        once some build has the table). ``read_only``: it can then read only those files and change
        no setting (module docstring)."""
        con = connect()
        files = []
        for name in RUN_TABLES:
            files += _view(con, name, [b.path / f"{name}.parquet" for b in self._runs.values()])
        for name in SCENARIO_TABLES:
            paths = [b.path / f"{name}.parquet" for b in self._scenarios.values()]
            files += _view(con, f"scenario_{name}", paths)
        for name in BACKTEST_TABLES:
            paths = [b.path / f"{name}.parquet" for b in self._backtests.values()]
            files += _view(con, f"backtest_{name}", paths)
        for name, frame, date in (
            ("runs", self.runs(), "as_of"),
            ("scenarios", self.scenarios(), "baseline"),
        ):
            con.register("_frame", frame)
            con.execute(
                f"CREATE TABLE {name} AS SELECT * REPLACE (CAST({date} AS DATE) AS {date}) "
                "FROM _frame"
            )
            con.unregister("_frame")
        if read_only:
            allowed = "[" + ", ".join(sql_string(f) for f in files) + "]"
            con.execute(f"SET allowed_paths = {allowed}")
            con.execute("SET enable_external_access = false")
            con.execute("SET lock_configuration = true")
        return con

    def query(
        self, sql: str, parameters: list[Any] | None = None, read_only: bool = False
    ) -> pd.DataFrame:
        """The result of ``sql`` over :meth:`connect`'s views. ``read_only`` (a user's
        query): it must be exactly one SELECT. A run whose file fails to read is left out
        (added to :attr:`damage`) and the query run again; any other failure is a
        :class:`QueryError` listing the views."""
        if read_only:
            _one_select(sql)
        while True:
            con = self.connect(read_only)
            try:
                frame: pd.DataFrame = con.execute(sql, parameters).df()
                return frame
            except duckdb.InterruptException:
                raise KeyboardInterrupt from None  # Ctrl-C, seen by DuckDB first
            except duckdb.Error as exc:
                if not self._leave_out_damaged(exc):
                    views = sorted(r[0] for r in con.execute("SHOW TABLES").fetchall())
                    raise QueryError(
                        f"DuckDB rejected the query: {_first_line(exc)}\nViews in "
                        f"{self.store.root}: {', '.join(views) or 'none (no runs yet)'}"
                    ) from None
            finally:
                con.close()

    def _leave_out_damaged(self, error: duckdb.Error) -> bool:
        """Leave out the builds ``error`` shows damaged: the one whose file it names, or,
        when it names none and is not about the query itself, every build whose tables
        do not all read (DuckDB does not always say which file it failed on)."""
        builds = [*self._runs.values(), *self._scenarios.values(), *self._backtests.values()]
        named = [b for b in builds if str(b.path) in str(error)]
        if not named and not isinstance(error, _QUERY_ERRORS):
            named = [b for b in builds if _unreadable(b)]
        for build in named:
            self._runs = {k: b for k, b in self._runs.items() if b is not build}
            self._scenarios = {k: b for k, b in self._scenarios.items() if b is not build}
            self._backtests = {k: b for k, b in self._backtests.items() if b is not build}
            self.damage.append(Damage(build.path, build.what, _first_line(error)))
        return bool(named)

    def segment_keys(self) -> list[str]:
        """The segment keys of the stored guidance (category, tier[, region]); a
        :class:`StoreError` when the store holds no readable run."""
        if not self._runs:
            raise StoreError(
                f"run store {self.store.root} holds no readable runs; run `pricing run` first"
            )
        columns = set(self.query("DESCRIBE guidance")["column_name"])
        return [c for c in ("category", "tier", "region") if c in columns]

    def segment_history(self, segment: dict[str, str]) -> pd.DataFrame:
        """Guidance and equilibrium of one segment (its key values) in every run, oldest
        first; a :class:`StoreError` with the closest segment when no run has it."""
        keys = [quote_identifier(k) for k in segment]
        where = " AND ".join(f"g.{k} = ?" for k in keys)
        frame = self.query(
            f"""SELECT g.as_of, g.freelancer_rate, g.freelancer_rate_low,
                       g.freelancer_rate_high, g.client_rate, g.client_rate_low,
                       g.client_rate_high, g.observed_rate, g.gap_frac, g.market_state,
                       g.capped, e.rate, e.hours, e.shortage_hours, e.status
                FROM guidance g JOIN equilibrium e USING (as_of, {", ".join(keys)})
                WHERE {where} ORDER BY g.as_of""",
            list(segment.values()),
        )
        if frame.empty:
            label = "/".join(segment.values())
            distinct = self.query(f"SELECT DISTINCT {', '.join(keys)} FROM guidance")
            known = ["/".join(map(str, r)) for r in distinct.itertuples(index=False)]
            hint = suggest(label, known)
            raise StoreError(
                f"segment {label!r} is in no run of {self.store.root}"
                + (f"; did you mean {hint!r}?" if hint else "")
            )
        frame["as_of"] = frame["as_of"].dt.date
        return frame

    def to_dict(self) -> dict[str, Any]:
        """What ``pricing store check --json`` prints."""
        return {
            "store": str(self.store.root),
            "runs": len(self._runs),
            "scenarios": len(self._scenarios),
            "backtests": len(self._backtests),
            "superseded_builds": self.superseded,
            "damage": [d.to_dict() for d in self.damage],
        }


def _checked(
    path: Path,
    kind: str,
    expected: tuple[dt.date, str | None],
    deep: bool,
    what: str,
    damage: list[Damage],
) -> _Build | None:
    manifest, problems = check_build(path, kind, expected, deep)
    damage += [Damage(path, what, problem) for problem in problems]
    return None if problems else _Build(path, manifest, what)


#: DuckDB's errors about a query itself (its text, names, types), never about a file
_QUERY_ERRORS = (
    duckdb.ParserException,
    duckdb.BinderException,
    duckdb.CatalogException,
    duckdb.ConversionException,
    duckdb.PermissionException,
    duckdb.OutOfRangeException,
)


def _unreadable(build: _Build) -> bool:
    """Whether some table of ``build`` fails to read in full."""
    return any(
        _table_problems(build.path / f"{name}.parquet", None, True)
        for name in _tables(build.manifest)
    )


def _one_select(sql: str) -> None:
    """A :class:`QueryError` unless ``sql`` is exactly one SELECT statement."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryError(f"DuckDB cannot parse the query: {_first_line(exc)}") from None
    if not statements:
        raise QueryError("the query is empty: give one SELECT statement")
    kinds = [s.type.name for s in statements]
    if kinds != ["SELECT"]:
        raise QueryError(
            "pricing sql runs exactly one SELECT statement over the store's views, "
            f"read-only; got {len(kinds)} statement(s): {', '.join(kinds)}"
        )


#: relative changes that runs and scenarios stored by earlier versions hold in percent,
#: and their names now that they are stored as fractions
PERCENT_COLUMNS = {
    "gap_pct": "gap_frac",
    "rate_change_pct": "rate_change_frac",
    "change_pct": "change_frac",
}


def _view(con: duckdb.DuckDBPyConnection, name: str, files: list[Path]) -> list[str]:
    """Create view ``name`` over the ``files`` that exist; the files it reads. A column of
    :data:`PERCENT_COLUMNS` from older files shows as its fraction, so that a query sees
    one column over old and new runs alike."""
    present = [str(f) for f in files if f.exists()]
    if present:
        listed = "[" + ", ".join(sql_string(f) for f in present) + "]"
        source = f"read_parquet({listed}, hive_partitioning = true, union_by_name = true)"
        columns = set(con.execute(f"DESCRIBE SELECT * FROM {source}").df()["column_name"])
        old = [c for c in PERCENT_COLUMNS if c in columns]
        select = "*"
        if old:
            new = [PERCENT_COLUMNS[c] for c in old]
            dropped = ", ".join(quote_identifier(c) for c in [*old, *set(new) & columns])
            fractions = ", ".join(
                f"coalesce({quote_identifier(n)}, {quote_identifier(o)} / 100.0) AS {n}"
                if n in columns
                else f"{quote_identifier(o)} / 100.0 AS {n}"
                for o, n in zip(old, new, strict=True)
            )
            select = f"* EXCLUDE ({dropped}), {fractions}"
        con.execute(f"CREATE VIEW {name} AS SELECT {select} FROM {source}")
    return present


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
