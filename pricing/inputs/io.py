"""Reading input tables through DuckDB, and writing outputs atomically.

Inputs live in a data directory as ``<table>.parquet`` or ``<table>.csv`` (or a folder
``<table>/`` of such files, for partitioned datasets). Every table is read by DuckDB into
an in-process database, never through pandas, so a 10-million-row file costs DuckDB's
columnar memory, not Python objects. CSV columns are read as text so that the contract
checks in :mod:`pricing.inputs.validation` can report every unparseable value by row instead of
failing on the first.

Outputs are written under a temporary name next to their destination and renamed into
place only when complete: a crash or kill at any moment leaves the previous output intact
and never a half-written one. Before the rename every file written and the temporary
folder are fsynced, and after it the folder that holds the result, so that a power loss
after the commit cannot leave an empty or truncated file behind a committed name.
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
from typing import TYPE_CHECKING

import duckdb

from pricing.errors import OutputError, os_reason

if TYPE_CHECKING:
    import pandas as pd

SUPPORTED_SUFFIXES = (".parquet", ".csv")


@dataclass(frozen=True)
class TableSource:
    """Where one input table comes from: one file, or the files of one folder."""

    name: str
    root: Path  # the data directory
    paths: tuple[Path, ...]
    format: str  # "parquet", "csv", or "frame" (a table given in memory, without files)

    def relative(self, path: Path) -> str:
        """How a file of this table is named in reports: its path in the data directory."""
        return str(path.relative_to(self.root))

    @property
    def label(self) -> str:
        """How the table's location is shown to users."""
        if not self.paths:
            return f"{self.name} (in memory)"
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


def connect() -> duckdb.DuckDBPyConnection:
    """An in-process DuckDB database for one run's inputs.

    Time stamps with a time zone become dates in UTC, whatever the machine's zone. Parquet
    min/max statistics leave NaN out, so without ``parquet_can_have_nan`` DuckDB would
    skip row groups holding NaN when a query looks for them.
    """
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET parquet_can_have_nan = true")
    return con


def find_sources(
    data_dir: Path, names: tuple[str, ...]
) -> tuple[dict[str, TableSource], list[ReadFailure]]:
    """Locate each named table in ``data_dir``; problems are returned, not raised."""
    sources: dict[str, TableSource] = {}
    failures: list[ReadFailure] = []
    for name in names:
        candidates = sorted(
            p for p in data_dir.iterdir() if p.name == name or p.name.startswith(f"{name}.")
        )
        files = [p for p in candidates if p.is_file()]
        folders = [p for p in candidates if p.is_dir() and p.name == name]
        supported = [p for p in files if p.name.lower() in {name + s for s in SUPPORTED_SUFFIXES}]
        if len(supported) + len(folders) > 1:
            shown = ", ".join(p.name for p in supported + folders)
            failures.append(
                ReadFailure(name, data_dir, "ambiguous", f"both {shown} exist; keep exactly one")
            )
        elif supported:
            path = supported[0]
            sources[name] = TableSource(name, data_dir, (path,), path.suffix.lower().lstrip("."))
        elif folders:
            source_or_failure = _folder_source(name, data_dir, folders[0])
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
                    f"{files[0].name} is not read (only plain Parquet or CSV are); "
                    f"save it as {name}.parquet or {name}.csv",
                )
            )
    return sources, failures


def _folder_source(name: str, data_dir: Path, folder: Path) -> TableSource | ReadFailure:
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
    return TableSource(name, data_dir, tuple(parts), formats.pop().lstrip("."))


def load_table(
    con: duckdb.DuckDBPyConnection, source: TableSource, table: str
) -> ReadFailure | None:
    """Make ``source`` queryable in DuckDB as ``table``.

    The table gets two extra columns: ``_file`` (path within the data directory) and
    ``_row`` (1-based data row within that file, header excluded).

    Parquet becomes a view over the files: queries read only the columns they use, straight
    from the columnar file. CSV is parsed once into a table with every value kept as text;
    lines that do not parse (wrong number of fields, unterminated quotes) are left out of
    it and recorded in ``<table>_rejects`` (``_file``, ``line``, ``error``) for the report.
    """
    con.execute(
        f'CREATE TABLE "{table}_rejects" (_file VARCHAR, line BIGINT, lines BIGINT, error VARCHAR)'
    )
    for path in source.paths:
        if path.stat().st_size == 0:
            return ReadFailure(
                source.name, path, "empty_file", f"{source.relative(path)} is an empty file"
            )
    if source.format == "parquet":
        return _parquet_view(con, source, table)
    parts = [f"{table}_part{i}" for i in range(len(source.paths))]
    for part, path in zip(parts, source.paths, strict=True):
        try:
            if not _read_csv(con, source, path, part, f"{table}_rejects"):
                return ReadFailure(
                    source.name, path, "empty_file", f"{source.relative(path)} has no header row"
                )
        except (duckdb.Error, OSError, UnicodeDecodeError, csv.Error) as exc:
            return ReadFailure(
                source.name, path, "unreadable", f"{source.relative(path)}: {_first_line(exc)}"
            )
    # files of one folder may differ in their extra columns, hence BY NAME
    union = " UNION ALL BY NAME ".join(f'SELECT * FROM "{p}"' for p in parts)
    con.execute(f'CREATE VIEW "{table}" AS {union}')
    return None


def _parquet_view(
    con: duckdb.DuckDBPyConnection, source: TableSource, table: str
) -> ReadFailure | None:
    for path in source.paths:  # reading the footers names the file that is corrupt
        try:
            con.execute(f"SELECT count(*) FROM read_parquet({sql_string(str(path))})").fetchall()
        except duckdb.Error as exc:
            return ReadFailure(
                source.name, path, "unreadable", f"{source.relative(path)}: {_first_line(exc)}"
            )
    files = "[" + ", ".join(sql_string(str(p)) for p in source.paths) + "]"
    prefix = len(str(source.root)) + 2
    try:
        con.execute(
            f'CREATE VIEW "{table}" AS SELECT * EXCLUDE (file_row_number, filename), '
            f"substr(filename, {prefix}) AS _file, file_row_number + 1 AS _row "
            f"FROM read_parquet({files}, file_row_number = true, filename = true, "
            "union_by_name = true)"
        )
    except duckdb.Error as exc:
        return ReadFailure(source.name, source.paths[0], "unreadable", _first_line(exc))
    return None


def _read_csv(
    con: duckdb.DuckDBPyConnection, source: TableSource, path: Path, table: str, rejects: str
) -> bool:
    """Make one CSV file queryable as ``table`` (every column as text); False if it has
    no header.

    Lines that do not parse go to ``rejects``. An unterminated quote makes the parser
    swallow the lines after it into one rejected record, so when lines were rejected the
    file's lines are counted too and any not accounted for are reported with the last
    rejected line: no row ever disappears without a report.
    """
    # The header is read here and the dialect fixed (comma, double quote, UTF-8) so that
    # DuckDB's sniffer never guesses types or gives up on a file with a few bad lines;
    # utf-8-sig drops the byte-order mark that spreadsheet exports put before the header.
    with path.open(newline="", encoding="utf-8-sig") as handle:
        header = next(csv.reader(handle), None)
    if not header:
        return False
    if len(header) == 1 and (sep := next((d for d in ";\t|" if d in header[0]), None)):
        raise csv.Error(
            f"the header is one column holding {sep!r}: the file looks {sep!r}-separated; "
            "save it comma-separated"
        )
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        raise csv.Error(f"the header repeats column(s) {repeated}; give each column one name")
    columns = "{" + ", ".join(f"{sql_string(c)}: 'VARCHAR'" for c in header) + "}"
    scan = (
        f"read_csv({sql_string(str(path))}, columns = {columns}, header = true, "
        "auto_detect = false, delim = ',', quote = '\"', escape = '\"', "
        f"store_rejects = true, rejects_table = '{table}_rej', rejects_scan = '{table}_rejscan')"
    )
    name = sql_string(source.relative(path))
    try:
        con.execute(f'CREATE TABLE "{table}_raw" AS SELECT * FROM {scan}')
        con.execute(
            f'INSERT INTO "{rejects}" SELECT DISTINCT ON (line) {name}, line, 1, error_message '
            f'FROM "{table}_rej" ORDER BY line'
        )
    finally:
        con.execute(f'DROP TABLE IF EXISTS "{table}_rej"')
        con.execute(f'DROP TABLE IF EXISTS "{table}_rejscan"')
    rejected = con.execute(
        f'SELECT count(*), max(line) FROM "{rejects}" WHERE _file = {name}'
    ).fetchall()[0]
    # rowid follows file order in a freshly created table (a view over it copies nothing),
    # but counts parsed records only
    if not rejected[0]:
        con.execute(
            f'CREATE VIEW "{table}" AS SELECT *, {name} AS _file, rowid + 1 AS _row '
            f'FROM "{table}_raw"'
        )
        return True
    parsed = con.execute(f'SELECT count(*) FROM "{table}_raw"').fetchall()[0][0]
    with path.open("rb") as handle:
        data_lines = sum(1 for line in handle if line.strip()) - 1
    swallowed = data_lines - parsed - rejected[0]
    if swallowed > 0:
        con.execute(
            f'INSERT INTO "{rejects}" VALUES ({name}, {rejected[1]}, {swallowed}, '
            f"'{swallowed} more line(s) after this one were not read: an unterminated quote "
            "runs on to the end of the file (or a quoted field spans lines)')"
        )
    # The i-th rejected data row r_i (file line - 1) has r_i - i parsed records before it,
    # so parsed record k sits at data row k + #{i : r_i - i < k}.
    con.execute(
        f"""
        CREATE TABLE "{table}" AS
        WITH rej AS (
            SELECT line - 1 - row_number() OVER (ORDER BY line) AS good_before
            FROM (SELECT DISTINCT line FROM "{rejects}" WHERE _file = {name})
        )
        SELECT t.* EXCLUDE (_k), {name} AS _file,
               t._k + (SELECT count(*) FROM rej WHERE rej.good_before < t._k) AS _row
        FROM (SELECT *, rowid + 1 AS _k FROM "{table}_raw") t"""
    )
    con.execute(f'DROP TABLE "{table}_raw"')
    return True


def quote_identifier(name: str) -> str:
    """``name`` as a DuckDB identifier: in double quotes, a double quote doubled. Every
    identifier that comes from data or configuration goes through here, so that no name
    can end the identifier and continue as SQL."""
    return '"' + name.replace('"', '""') + '"'


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def sql_string(value: str) -> str:
    """``value`` as a SQL string literal (single quotes, a quote doubled)."""
    return "'" + value.replace("'", "''") + "'"


@contextlib.contextmanager
def atomic_directory(final: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary directory that becomes ``final`` only if the block succeeds.

    The temporary directory sits next to ``final`` (same filesystem, so the rename is
    atomic). An existing ``final`` is replaced only when ``overwrite`` is true, and only
    after the new content is complete; on any error the temporary directory is removed and
    ``final`` is untouched. The content is fsynced before the rename and the parent
    folder after it (module docstring).
    """
    final = Path(final)
    if final.exists() and not overwrite:
        raise FileExistsError(f"{final} already exists; choose another path or allow overwriting")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it private; the result should not be
    try:
        yield tmp
        sync_tree(tmp)
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
            os.replace(final, old / final.name)
            os.replace(tmp, final)
            shutil.rmtree(old)
        else:
            os.replace(tmp, final)
        fsync(final.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def fsync(path: Path) -> None:
    """Flush a file's or a folder's contents (a folder: its entries) to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_tree(folder: Path) -> None:
    """fsync every file under ``folder``, each folder after its entries, ``folder`` last."""
    for root, dirs, files in os.walk(folder, topdown=False):
        for name in (*files, *dirs):
            fsync(Path(root) / name)
    fsync(folder)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_file(final: Path) -> Iterator[Path]:
    """Yield a temporary path that replaces ``final`` atomically if the block succeeds
    (fsynced before the rename, the folder after it). Any failure to write (a full disk,
    a read-only or missing folder) is an :class:`~pricing.errors.OutputError` naming
    ``final``; nothing is left behind."""
    final = Path(final)
    tmp: Path | None = None
    blocker = next((p for p in final.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise OutputError(f"cannot write {final}: {blocker} is a file, not a folder")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{final.name}.tmp-", dir=final.parent)
        os.close(fd)
        tmp = Path(name)
        tmp.chmod(0o666 & ~_umask())  # mkstemp makes it private; the result should not be
        yield tmp
        fsync(tmp)
        os.replace(tmp, final)
        fsync(final.parent)
    except OSError as exc:
        raise OutputError(f"cannot write {final}: {os_reason(exc)}; nothing was written") from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def write_frame(frame: pd.DataFrame, out: Path, fmt: str | None = None) -> None:
    """Write ``frame`` to ``out`` atomically, as ``fmt`` (default: ``out``'s suffix).

    CSV: a header row, ISO dates, missing values empty. Parquet: the frame's own column
    types. JSON: one array of records, ISO dates, missing values ``null``, numbers to 15
    significant digits (as ``--json`` prints, fractions as fractions). A failure to write
    is an :class:`~pricing.errors.OutputError` (exit 6) and leaves nothing behind."""
    fmt = fmt or out.suffix.lower().lstrip(".")
    with atomic_file(out) as tmp:
        if fmt == "parquet":
            frame.to_parquet(tmp, index=False)
        elif fmt == "json":
            text = frame.to_json(orient="records", date_format="iso", double_precision=15)
            tmp.write_text(text + "\n", encoding="utf-8")
        else:
            frame.to_csv(tmp, index=False, date_format="%Y-%m-%d")
