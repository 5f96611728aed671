"""Reading input tables through DuckDB, and writing outputs atomically.

Inputs live in a data directory as ``<table>.parquet`` or ``<table>.csv`` (or a folder
``<table>/`` of such files, for partitioned datasets). Every table is read by DuckDB into
an in-process database, never through pandas, so a 10-million-row file costs DuckDB's
columnar memory, not Python objects. CSV columns are read as text so that the contract
checks in :mod:`pricing.schema` can report every unparseable value by row instead of
failing on the first.

Outputs are written under a temporary name next to their destination and renamed into
place only when complete: a crash or kill at any moment leaves the previous output intact
and never a half-written one.
"""

from __future__ import annotations

import contextlib
import csv
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb

SUPPORTED_SUFFIXES = (".parquet", ".csv")


@dataclass(frozen=True)
class TableSource:
    """Where one input table comes from: one file, or the files of one folder."""

    name: str
    paths: tuple[Path, ...]
    format: str  # "parquet" or "csv"

    @property
    def label(self) -> str:
        """How the table's location is shown to users."""
        if len(self.paths) == 1:
            return self.paths[0].name
        return f"{self.paths[0].parent.name}/ ({len(self.paths)} {self.format} files)"


@dataclass(frozen=True)
class ReadFailure:
    """A table whose files could not be read at all, with the reader's reason."""

    name: str
    path: Path
    rule: str  # "unreadable" | "empty_file" | "unsupported_format" | "ambiguous"
    detail: str


def find_sources(
    data_dir: Path, names: tuple[str, ...]
) -> tuple[dict[str, TableSource], list[ReadFailure]]:
    """Locate each named table in ``data_dir``; problems are returned, not raised."""
    sources: dict[str, TableSource] = {}
    failures: list[ReadFailure] = []
    for name in names:
        candidates = sorted(p for p in data_dir.iterdir() if p.stem == name or p.name == name)
        files = [p for p in candidates if p.is_file()]
        folders = [p for p in candidates if p.is_dir()]
        supported = [p for p in files if p.suffix.lower() in SUPPORTED_SUFFIXES]
        if len(supported) + len(folders) > 1:
            shown = ", ".join(p.name for p in supported + folders)
            failures.append(
                ReadFailure(name, data_dir, "ambiguous", f"both {shown} exist; keep exactly one")
            )
        elif supported:
            path = supported[0]
            sources[name] = TableSource(name, (path,), path.suffix.lower().lstrip("."))
        elif folders:
            source_or_failure = _folder_source(name, folders[0])
            if isinstance(source_or_failure, ReadFailure):
                failures.append(source_or_failure)
            else:
                sources[name] = source_or_failure
        elif files:
            failures.append(
                ReadFailure(
                    name,
                    files[0],
                    "unsupported_format",
                    f"{files[0].name} is neither Parquet nor CSV; "
                    f"save it as {name}.parquet or {name}.csv",
                )
            )
    return sources, failures


def _folder_source(name: str, folder: Path) -> TableSource | ReadFailure:
    parts = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    formats = {p.suffix.lower() for p in parts}
    if not parts:
        return ReadFailure(name, folder, "empty_file", f"folder {folder.name}/ holds no files")
    if len(formats) > 1 or not formats <= set(SUPPORTED_SUFFIXES):
        return ReadFailure(
            name,
            folder,
            "unsupported_format",
            f"folder {folder.name}/ must hold only .parquet or only .csv files, "
            f"found {sorted(formats)}",
        )
    return TableSource(name, tuple(parts), formats.pop().lstrip("."))


def load_table(
    con: duckdb.DuckDBPyConnection, source: TableSource, table: str
) -> ReadFailure | None:
    """Read ``source`` into the DuckDB table ``table``.

    The table gets two extra columns: ``_file`` (file name) and ``_row`` (1-based data row
    within that file, header excluded). CSV values are kept as text. Lines of a CSV that do
    not parse (wrong number of fields, unterminated quotes) are left out of the table and
    recorded in ``<table>_rejects`` (``_file``, ``line``, ``error``) for the report.
    """
    con.execute(f'DROP TABLE IF EXISTS "{table}"')
    con.execute(f'DROP TABLE IF EXISTS "{table}_rejects"')
    con.execute(f'CREATE TABLE "{table}_rejects" (_file VARCHAR, line BIGINT, error VARCHAR)')
    created = False
    for path in source.paths:
        if path.stat().st_size == 0:
            return ReadFailure(source.name, path, "empty_file", f"{path.name} is an empty file")
        try:
            select = (
                _parquet_select(path)
                if source.format == "parquet"
                else _csv_select(con, path, table)
            )
        except (duckdb.Error, OSError, UnicodeDecodeError, csv.Error) as exc:
            return ReadFailure(source.name, path, "unreadable", f"{path.name}: {_first_line(exc)}")
        if select is None:
            return ReadFailure(source.name, path, "empty_file", f"{path.name} has no header row")
        verb = f'INSERT INTO "{table}" BY NAME' if created else f'CREATE TABLE "{table}" AS'
        try:
            con.execute(f"{verb} {select}")
        except duckdb.Error as exc:
            return ReadFailure(source.name, path, "unreadable", f"{path.name}: {_first_line(exc)}")
        finally:
            con.execute(f'DROP TABLE IF EXISTS "{table}_csv_tmp"')
        created = True
    return None


def _parquet_select(path: Path) -> str:
    return (
        f"SELECT * EXCLUDE (file_row_number), {_sql_str(path.name)} AS _file, "
        "file_row_number + 1 AS _row "
        f"FROM read_parquet({_sql_str(str(path))}, file_row_number = true)"
    )


def _csv_select(con: duckdb.DuckDBPyConnection, path: Path, table: str) -> str | None:
    # The header is read here and the dialect fixed (comma, double quote, UTF-8) so that
    # DuckDB's sniffer never guesses types or gives up on a file with a few bad lines.
    with path.open(newline="", encoding="utf-8") as handle:
        header = next(csv.reader(handle), None)
    if not header:
        return None
    columns = "{" + ", ".join(f"{_sql_str(c)}: 'VARCHAR'" for c in header) + "}"
    scan = (
        f"read_csv({_sql_str(str(path))}, columns = {columns}, header = true, "
        "auto_detect = false, delim = ',', quote = '\"', escape = '\"', "
        f"store_rejects = true, rejects_table = '{table}_rej_tmp', "
        f"rejects_scan = '{table}_rejscan_tmp')"
    )
    con.execute(f"DROP TABLE IF EXISTS {table}_rej_tmp")
    con.execute(f"DROP TABLE IF EXISTS {table}_rejscan_tmp")
    con.execute(f'CREATE TEMP TABLE "{table}_csv_tmp" AS SELECT * FROM {scan}')
    con.execute(
        f'INSERT INTO "{table}_rejects" SELECT DISTINCT ON (line) {_sql_str(path.name)}, line, '
        f"error_message FROM {table}_rej_tmp ORDER BY line"
    )
    con.execute(f"DROP TABLE IF EXISTS {table}_rej_tmp")
    con.execute(f"DROP TABLE IF EXISTS {table}_rejscan_tmp")
    # rowid follows file order in a freshly created table, but counts parsed records only
    rejected = con.execute(
        f'SELECT count(*) FROM "{table}_rejects" WHERE _file = {_sql_str(path.name)}'
    ).fetchone()
    name = _sql_str(path.name)
    if not rejected or not rejected[0]:
        return f'SELECT *, {name} AS _file, rowid + 1 AS _row FROM "{table}_csv_tmp"'
    # The i-th rejected data row r_i (file line - 1) has r_i - i parsed records before it,
    # so parsed record k sits at data row k + #{i : r_i - i < k}.
    return f"""
        WITH rej AS (
            SELECT line - 1 - row_number() OVER (ORDER BY line) AS good_before
            FROM "{table}_rejects" WHERE _file = {name}
        )
        SELECT t.* EXCLUDE (_k), {name} AS _file,
               t._k + (SELECT count(*) FROM rej WHERE rej.good_before < t._k) AS _row
        FROM (SELECT *, rowid + 1 AS _k FROM "{table}_csv_tmp") t"""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@contextlib.contextmanager
def atomic_directory(final: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary directory that becomes ``final`` only if the block succeeds.

    The temporary directory sits next to ``final`` (same filesystem, so the rename is
    atomic). An existing ``final`` is replaced only when ``overwrite`` is true, and only
    after the new content is complete; on any error the temporary directory is removed and
    ``final`` is untouched.
    """
    final = Path(final)
    if final.exists() and not overwrite:
        raise FileExistsError(f"{final} already exists; choose another path or allow overwriting")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        yield tmp
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
            os.replace(final, old / final.name)
            os.replace(tmp, final)
            shutil.rmtree(old)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_file(final: Path) -> Iterator[Path]:
    """Yield a temporary path that replaces ``final`` atomically if the block succeeds."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{final.name}.tmp-", dir=final.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
