"""Validation of the inputs against the data contract (:mod:`pricing.inputs.contract`).

Every input table is checked column by column, row by row and across tables. Checks run
as SQL in DuckDB over the loaded tables: one aggregate pass per table counts the rows that
break each row rule, and only the rules that fail are queried again for their first
examples. Problems are grouped by (table, column, rule) with a total count and the first
few offending rows, so a file with a million bad rows gives a short report.

Nothing is raised or dropped while checking: :func:`check_inputs` always returns a
:class:`ValidationReport` holding every problem found. :meth:`ValidationReport.checked`
turns a clean report into :class:`CheckedInputs` — typed views that the panel reads —
and raises :class:`DataError` otherwise.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from pricing.config import COLUMN_NAME_RULE, RunConfig, column_name_ok
from pricing.display import Display
from pricing.errors import DataError, suggest
from pricing.inputs.adjacency import COLUMNS as ADJACENCY_COLUMNS
from pricing.inputs.adjacency import blank as adjacency_blank
from pricing.inputs.adjacency import duplicates as adjacency_duplicates
from pricing.inputs.contract import (
    EARLIEST_DATE,
    OPTIONAL_TABLES,
    REQUIRED_TABLES,
    ROW_ID,
    TIERS,
    column_spec,
    contract,
)
from pricing.inputs.io import TableSource, connect, find_sources, load_table

DEFAULT_MAX_EXAMPLES = 5

# DuckDB type each logical type is cast to
_SQL_TYPE = {"string": "VARCHAR", "date": "DATE", "number": "DOUBLE", "bool": "BOOLEAN"}
_TYPE_HINT = {
    "string": "text",
    "date": "a date (YYYY-MM-DD)",
    "number": "a number",
    "bool": "true or false",
}


@dataclass(frozen=True)
class Example:
    """One offending row (or value) shown in a report."""

    file: str | None = None
    row: int | None = None
    id: str | None = None
    value: str | None = None

    def describe(self) -> str:
        where = []
        if self.file is not None:
            where.append(self.file)
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.id is not None:
            where.append(f"id {self.id}")
        text = ", ".join(where)
        if self.value is not None:
            text = f"{text}: {self.value}" if text else self.value
        return text


@dataclass(frozen=True)
class Problem:
    """Every violation of one rule in one column of one table."""

    table: str
    column: str | None
    rule: str
    count: int
    message: str
    examples: tuple[Example, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "column": self.column,
            "rule": self.rule,
            "count": self.count,
            "message": self.message,
            "examples": [
                {k: v for k, v in vars(e).items() if v is not None} for e in self.examples
            ],
        }


@dataclass(frozen=True)
class TableInfo:
    name: str
    source: str
    rows: int


@dataclass(frozen=True)
class CheckedInputs:
    """Input tables that passed every check, as typed DuckDB views.

    Views ``jobs``, ``supply`` and, when present, ``shifters``, ``adjacency`` and
    ``interventions`` have the contract's column names with their SQL types.
    """

    con: duckdb.DuckDBPyConnection
    config: RunConfig
    as_of: dt.date
    tables: tuple[str, ...]
    shifter_columns: tuple[str, ...]
    #: where each table was read from, and its contract columns: enough to open the
    #: same typed views over a subset of a table's files elsewhere (:func:`typed_views`)
    sources: dict[str, TableSource] = field(default_factory=dict)
    columns: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def table(self, name: str) -> pd.DataFrame:
        """An optional or required table as a pandas frame (for the small tables)."""
        return self.con.execute(f'SELECT * FROM "{name}"').df()


@dataclass(frozen=True)
class ValidationReport(Display):
    """Every problem found in a data directory, grouped by table, column and rule."""

    data_dir: Path
    as_of: dt.date
    config: RunConfig
    tables: tuple[TableInfo, ...]
    problems: tuple[Problem, ...]
    _con: duckdb.DuckDBPyConnection | None = field(default=None, repr=False, compare=False)
    _columns: dict[str, tuple[str, ...]] = field(default_factory=dict, repr=False, compare=False)
    _sources: dict[str, TableSource] = field(default_factory=dict, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def rows_affected(self) -> int:
        return sum(p.count for p in self.problems)

    def checked(self) -> CheckedInputs:
        """Typed views over the checked tables; :class:`DataError` if any check failed."""
        if not self.ok or self._con is None:
            raise DataError(self.summary(), report=self)
        con = self._con
        present = tuple(t.name for t in self.tables)
        for name in present:
            create_typed_view(con, name, self._columns[name], self.config)
        shifter_columns = (
            tuple(c for c in self._columns["shifters"] if c not in ("week", "category"))
            if "shifters" in present
            else ()
        )
        return CheckedInputs(
            con,
            self.config,
            self.as_of,
            present,
            shifter_columns,
            {name: self._sources[name] for name in present},
            {name: self._columns[name] for name in present},
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "data_dir": str(self.data_dir),
            "as_of": self.as_of.isoformat(),
            "tables": {t.name: {"source": t.source, "rows": t.rows} for t in self.tables},
            "problem_count": len(self.problems),
            "rows_affected": self.rows_affected,
            "problems": [p.to_dict() for p in self.problems],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_frame(self) -> pd.DataFrame:
        """One row per problem: table, column, rule, count, message, first examples."""
        return pd.DataFrame(
            [
                {
                    "table": p.table,
                    "column": p.column,
                    "rule": p.rule,
                    "count": p.count,
                    "message": p.message,
                    "examples": "; ".join(e.describe() for e in p.examples),
                }
                for p in self.problems
            ],
            columns=["table", "column", "rule", "count", "message", "examples"],
        )

    def summary(self, max_rows: int | None = None) -> str:
        """The tables read and the problems, each with its first examples; every problem
        unless ``max_rows`` limits them."""
        lines = [f"Data directory {self.data_dir} (as of {self.as_of.isoformat()})"]
        for t in self.tables:
            lines.append(f"  {t.name:<14}{t.source:<32}{t.rows:>14,} rows")
        if self.ok:
            lines.append("OK: every table meets the data contract.")
            return "\n".join(lines)
        lines.append(
            f"INVALID: {len(self.problems)} problem(s), "
            f"{self.rows_affected:,} row(s) or value(s) affected"
        )
        shown = self.problems if max_rows is None else self.problems[:max_rows]
        for p in shown:
            where = p.table + (f".{p.column}" if p.column else "")
            lines.append(f"- {where} [{p.rule}] {p.count:,}x: {p.message}")
            for e in p.examples:
                lines.append(f"    {e.describe()}")
            if p.count > len(p.examples) and p.examples:
                lines.append(f"    ... and {p.count - len(p.examples):,} more")
        if len(shown) < len(self.problems):
            lines.append(f"... {len(self.problems) - len(shown):,} more problem(s)")
        return "\n".join(lines)


def check_inputs(
    data_dir: str | Path,
    config: RunConfig | None = None,
    as_of: dt.date | None = None,
    max_examples: int = DEFAULT_MAX_EXAMPLES,
    progress: Callable[[str], None] | None = None,
) -> ValidationReport:
    """Load every input table of ``data_dir`` and check it against the contract.

    ``as_of`` (default: today) is the latest date the data may contain. ``progress``, if
    given, is called with a label as each step starts (one per table, then the checks
    across tables).
    """
    progress = progress or (lambda label: None)
    config = config or RunConfig()
    as_of = as_of or dt.date.today()
    data_dir = Path(data_dir)
    checker = _Checker(config, as_of, max_examples)
    if not data_dir.is_dir():
        checker.add("(data dir)", None, "missing_dir", 1, f"{data_dir} is not a directory")
        return checker.report(data_dir, None, (), {})
    con = connect()
    sources, failures = find_sources(data_dir, REQUIRED_TABLES + OPTIONAL_TABLES)
    for failure in failures:
        checker.add(failure.name, None, failure.rule, 1, failure.detail)
    for name in REQUIRED_TABLES:
        if name not in sources and not any(f.name == name for f in failures):
            checker.missing_table(name, data_dir)
    infos: list[TableInfo | None] = []
    for name, source in sources.items():
        progress(f"reading and checking {name} ({source.label})")
        read_failure = load_table(con, source, f"raw_{name}")
        if read_failure is not None:
            checker.add(name, None, read_failure.rule, 1, read_failure.detail)
            continue
        infos.append(checker.check_table(con, source))
    loaded = tuple(i for i in infos if i is not None)
    progress("checking across tables")
    checker.check_across(con, {t.name for t in loaded})
    return checker.report(data_dir, con, loaded, sources)


def check_frame(
    frame: pd.DataFrame,
    table: str,
    config: RunConfig | None = None,
    max_examples: int = DEFAULT_MAX_EXAMPLES,
) -> ValidationReport:
    """One table given in memory (a catalogue passed to the API, a stored run's) checked
    by the same column and row rules as a data directory's ``table``; rules across tables
    are not run. Examples name the frame's rows (1-based) and ids."""
    checker = _Checker(config or RunConfig(), dt.date.today(), max_examples)
    if frame.empty:  # no rows to check (an empty catalogue is valid); the columns must be there
        checker.check_columns(table, {str(c): "" for c in frame.columns})
        return checker.report(Path("(in memory)"), None, (), {})
    con = connect()
    con.register("_frame", frame.assign(_file="(in memory)", _row=np.arange(1, len(frame) + 1)))
    con.execute(f'CREATE VIEW "raw_{table}" AS SELECT * FROM _frame')
    con.execute(
        f'CREATE TABLE "raw_{table}_rejects" (_file VARCHAR, line BIGINT, lines BIGINT, '
        "error VARCHAR)"
    )
    source = TableSource(table, Path("."), (), "frame")
    info = checker.check_table(con, source)
    return checker.report(Path("(in memory)"), con, () if info is None else (info,), {})


class _Checker:
    """Collects problems while the checks run."""

    def __init__(self, config: RunConfig, as_of: dt.date, max_examples: int) -> None:
        self.config = config
        self.as_of = as_of
        self.max_examples = max_examples
        self.problems: list[Problem] = []
        self.columns: dict[str, tuple[str, ...]] = {}  # contract columns usable per table
        self.raw_types: dict[str, dict[str, str]] = {}

    def add(
        self,
        table: str,
        column: str | None,
        rule: str,
        count: int,
        message: str,
        examples: Iterable[Example] = (),
    ) -> None:
        self.problems.append(Problem(table, column, rule, count, message, tuple(examples)))

    def report(
        self,
        data_dir: Path,
        con: duckdb.DuckDBPyConnection | None,
        tables: tuple[TableInfo, ...],
        sources: dict[str, TableSource],
    ) -> ValidationReport:
        return ValidationReport(
            data_dir,
            self.as_of,
            self.config,
            tables,
            tuple(self.problems),
            con,
            self.columns,
            sources,
        )

    def missing_table(self, name: str, data_dir: Path) -> None:
        present = [p.name for p in data_dir.iterdir()]
        hint = suggest(name, [p.split(".")[0] for p in present])
        near = f" (found {hint!r}: rename it)" if hint and hint != name else ""
        self.add(
            name,
            None,
            "missing_file",
            1,
            f"required table is missing: add {name}.parquet or {name}.csv to {data_dir}{near}",
        )

    # ---------------------------------------------------------------- one table

    def check_table(self, con: duckdb.DuckDBPyConnection, source: TableSource) -> TableInfo | None:
        name, table = source.name, f"raw_{source.name}"
        rows = _scalar(con, f'SELECT count(*) FROM "{table}"')
        self._malformed_lines(con, name, table)
        if rows == 0:
            self.add(
                name,
                None,
                "empty",
                1,
                f"{source.label} has no data rows; "
                "add rows or remove the file if the table is not used",
            )
            return None
        types = {
            r[0]: r[1]
            for r in con.execute(f'DESCRIBE "{table}"').fetchall()
            if r[0] not in ("_file", "_row")
        }
        self.raw_types[name] = types
        usable = self.check_columns(name, types)
        self.columns[name] = tuple(usable)
        rules = self._row_rules(name, usable, types)
        self._run_row_rules(con, name, table, rules)
        self._duplicates(con, name, table, usable, types)
        if name == "shifters":
            self.columns[name] += self._named(self._numeric_extras(con, table, usable, types))
        return TableInfo(name, source.label, int(rows))

    def _named(self, shifters: tuple[str, ...]) -> tuple[str, ...]:
        """The shifter columns whose names the contract allows (they become panel columns
        and SQL identifiers); each other one is a problem, with a name that would do."""
        bad = [c for c in shifters if not column_name_ok(c)]
        for column in bad:
            self.add(
                "shifters",
                column,
                "bad_column_name",
                1,
                f"a shifter column's name must be {COLUMN_NAME_RULE}; rename it, "
                f"e.g. to {_fixed_name(column)!r}",
            )
        return tuple(c for c in shifters if c not in bad)

    @staticmethod
    def _numeric_extras(
        con: duckdb.DuckDBPyConnection, table: str, usable: list[str], types: dict[str, str]
    ) -> tuple[str, ...]:
        """Shifter columns the configuration does not name but that hold only numbers
        (or blanks): they join the panel as they are. Other extra columns are ignored,
        like extra columns of any table."""
        extras = [c for c in types if c not in usable and c != "week"]
        if not extras:
            return ()
        parses = con.execute(
            "SELECT "
            + ", ".join(
                f"count({cast(c, 'number', types[c])}) = count({_quote(c)})" for c in extras
            )
            + f' FROM "{table}"'
        ).fetchall()[0]
        return tuple(c for c, ok in zip(extras, parses, strict=True) if ok)

    def _malformed_lines(self, con: duckdb.DuckDBPyConnection, name: str, table: str) -> None:
        count = _scalar(con, f'SELECT coalesce(sum(lines), 0) FROM "{table}_rejects"')
        if not count:
            return
        rows = con.execute(
            f'SELECT _file, line, error FROM "{table}_rejects" ORDER BY _file, line '
            f"LIMIT {self.max_examples}"
        ).fetchall()
        self.add(
            name,
            None,
            "malformed_line",
            int(count),
            "lines that are not valid CSV (wrong number of fields or broken quoting); "
            "fix the quoting or the field count",
            [Example(file=f, value=f"line {line}: {err}") for f, line, err in rows],
        )

    def check_columns(self, name: str, types: dict[str, str]) -> list[str]:
        present = list(types)
        expected = {c.name for c in contract(name, self.config)}
        usable = []
        for col in contract(name, self.config):
            if col.name in types:
                usable.append(col.name)
                continue
            if col.optional:
                continue
            hint = suggest(col.name, [c for c in present if c not in expected])
            fix = f"; found {hint!r}: rename it to {col.name!r}" if hint else ""
            self.add(
                name,
                col.name,
                "missing_column",
                1,
                f"required column {col.name!r} is missing{fix} "
                f"(columns present: {', '.join(present)})",
            )
        if name == "shifters":
            if "category" in types:
                usable.append("category")
            usable += [c for c in self.config.estimation.shifter_columns if c in types]
        return usable

    def _row_rules(self, name: str, usable: list[str], types: dict[str, str]) -> list[_RowRule]:
        """Every rule a row of ``name`` must meet: each usable column's own, then the
        rules across its columns."""
        rules: list[_RowRule] = []
        for column in usable:
            rules += self._column_rules(name, column, types[column])
        return rules + _across_columns(name, set(usable), types)

    def _column_rules(self, name: str, column: str, raw_type: str) -> list[_RowRule]:
        """The rules of one column of the contract on a column of raw type ``raw_type``."""
        rules: list[_RowRule] = []
        col = column_spec(name, column, self.config)
        value = _typed(column)
        blank = _blank(column, col.type, raw_type, value)
        if not col.nullable:
            rules.append(_RowRule(column, "missing", blank, f"{column} is required"))
        if raw_type != _SQL_TYPE[col.type]:
            rules.append(
                _RowRule(
                    column,
                    "wrong_type",
                    f"(NOT {blank} AND {value} IS NULL)",
                    f"{column} must be {_TYPE_HINT[col.type]}",
                )
            )
        if col.type == "number":
            rules.append(
                _RowRule(column, "not_finite", f"isinf({value})", f"{column} must be finite")
            )
        if col.positive:
            rules.append(_RowRule(column, "not_positive", f"{value} <= 0", f"{column} must be > 0"))
        if col.non_negative:
            rules.append(_RowRule(column, "negative", f"{value} < 0", f"{column} must be >= 0"))
        if col.at_most is not None:
            rules.append(
                _RowRule(
                    column,
                    "too_large",
                    # DuckDB orders NaN above every number and inf is its own rule:
                    # only a finite value can be too large
                    f"(isfinite({value}) AND {value} > {col.at_most!r})",
                    f"{column} must be <= {col.at_most:g}",
                )
            )
        if col.integer:
            rules.append(
                _RowRule(
                    column,
                    "not_integer",
                    f"{value} <> floor({value})",
                    f"{column} must be a whole number",
                )
            )
        if col.monday:
            rules.append(
                _RowRule(
                    column,
                    "not_monday",
                    f"isodow({value}) <> 1",
                    f"{column} must be the Monday that starts the week",
                )
            )
        if col.not_after_as_of:
            rules.append(
                _RowRule(
                    column,
                    "future_date",
                    f"{value} > DATE '{self.as_of.isoformat()}'",
                    f"{column} lies after {self.as_of.isoformat()}, the latest date the data "
                    "may hold (today, for a run); fix the date",
                )
            )
        rules += _date_window(column, col.type, value)
        if col.allowed:
            allowed = ", ".join(f"'{a}'" for a in col.allowed)
            rules.append(
                _RowRule(
                    column,
                    "not_allowed",
                    f"{value} NOT IN ({allowed})",
                    f"{column} must be one of {', '.join(col.allowed)}",
                )
            )
        return rules

    def _run_row_rules(
        self, con: duckdb.DuckDBPyConnection, name: str, table: str, rules: list[_RowRule]
    ) -> None:
        if not rules:
            return
        types = self.raw_types[name]
        # each column is parsed once per row here, not once per rule that reads it
        typed = ", ".join(
            f"{cast(c, column_spec(name, c, self.config).type, types[c])} AS {_typed(c)}"
            for c in self.columns[name]
        )
        source = f'(SELECT *, {typed} FROM "{table}")'
        counts = con.execute(
            "SELECT "
            + ", ".join(f"count(*) FILTER (WHERE {r.bad})" for r in rules)
            + f" FROM {source}"
        ).fetchone()
        assert counts is not None
        id_col = ROW_ID[name]
        id_expr = f"CAST({_quote(id_col)} AS VARCHAR)" if id_col in types else "NULL"
        for rule, count in zip(rules, counts, strict=True):
            if not count:
                continue
            examples = con.execute(
                f"SELECT _file, _row, {id_expr}, CAST({_quote(rule.column)} AS VARCHAR) "
                f"FROM {source} WHERE {rule.bad} ORDER BY _file, _row LIMIT {self.max_examples}"
            ).fetchall()
            message = rule.message
            if rule.rule == "not_allowed":
                message += self._allowed_hint(name, rule.column, [e[3] for e in examples])
            self.add(
                name,
                rule.column,
                rule.rule,
                int(count),
                message,
                [Example(file=f, row=int(r), id=i, value=_show(v)) for f, r, i, v in examples],
            )

    def _allowed_hint(self, name: str, column: str, values: list[str | None]) -> str:
        allowed = list(column_spec(name, column, self.config).allowed)
        fixes = {v: suggest(v, allowed) for v in values if v is not None}
        shown = [f"{v!r} -> {s!r}" for v, s in fixes.items() if s]
        return f" (did you mean: {', '.join(dict.fromkeys(shown))})" if shown else ""

    def _duplicates(
        self,
        con: duckdb.DuckDBPyConnection,
        name: str,
        table: str,
        usable: list[str],
        types: dict[str, str],
    ) -> None:
        keys = {
            "jobs": ["job_id"],
            "supply": ["freelancer_id", "week"],
            "shifters": ["week", "category"] if "category" in usable else ["week"],
            "interventions": ["intervention_id"],
        }.get(name)  # adjacency: by the edges its rows name (_adjacency_duplicates)
        if keys is None or not set(keys) <= set(usable):
            return
        exprs = [cast(k, column_spec(name, k, self.config).type, types[k]) for k in keys]
        group = ", ".join(exprs)
        not_null = " AND ".join(f"{e} IS NOT NULL" for e in exprs)
        repeated = (
            f'SELECT {group}, count(*) AS n FROM "{table}" WHERE {not_null} '
            f"GROUP BY ALL HAVING count(*) > 1"
        )
        total = con.execute(f"SELECT count(*), sum(n) FROM ({repeated})").fetchone()
        if not total or not total[0]:
            return
        # only when there are duplicates: their first rows, for the examples
        label = " || '/' || ".join(f"CAST({e} AS VARCHAR)" for e in exprs)
        examples = con.execute(
            f"SELECT {label} AS k, count(*) AS n, count(DISTINCT _file) AS files, "
            f"list((_file, _row) ORDER BY _file, _row)[1:3] AS rs "
            f'FROM "{table}" WHERE {not_null} GROUP BY {group} HAVING count(*) > 1 '
            f"ORDER BY rs[1] LIMIT {self.max_examples}"
        ).fetchall()
        what = "/".join(keys)
        self.add(
            name,
            what,
            "duplicate",
            int(total[0]),
            f"{what} must be unique ({int(total[1]):,} rows share {int(total[0]):,} value(s)); "
            "remove or merge the repeated rows",
            [_duplicate_example(k, n, files, rs) for k, n, files, rs in examples],
        )

    # ------------------------------------------------------------ across tables

    def check_across(self, con: duckdb.DuckDBPyConnection, loaded: set[str]) -> None:
        keys = self.config.segment_keys
        sides = {}
        for name in ("jobs", "supply"):
            if name in loaded and set(keys) <= set(self.columns[name]):
                sides[name] = self._segments(con, name, keys)
        if len(sides) == 2:
            self._one_sided(sides["supply"], sides["jobs"], "supply", "jobs")
            self._one_sided(sides["jobs"], sides["supply"], "jobs", "supply")
        categories = self._categories(con, loaded)
        if categories is None:
            return
        for name, column in (
            ("adjacency", "from_category"),
            ("adjacency", "to_category"),
            ("interventions", "category"),
            ("interventions", "to_category"),
            ("shifters", "category"),
        ):
            if name in loaded and column in self.columns[name]:
                self._unknown_categories(con, name, column, categories)
        if "shifters" in loaded:
            self._shifter_coverage(con, loaded, categories)
        self._configured_shifters(loaded)
        if "adjacency" in loaded:
            self._adjacency_keys(con, loaded)

    def _segments(
        self, con: duckdb.DuckDBPyConnection, name: str, keys: tuple[str, ...]
    ) -> dict[str, int]:
        types = self.raw_types[name]
        exprs = [cast(k, "string", types[k]) for k in keys]
        valid = [f"NOT {_blank(k, 'string', types[k])}" for k in keys]
        if "tier" in keys:  # a bad tier is reported once, by its own rule
            valid.append(f"{cast('tier', 'string', types['tier'])} IN {TIERS!r}")
        # grouping by the key columns, not by a concatenated label, keeps this cheap
        rows = con.execute(
            f'SELECT {", ".join(exprs)}, count(*) FROM "raw_{name}" '
            f"WHERE {' AND '.join(valid)} GROUP BY ALL"
        ).fetchall()
        return {"/".join(row[:-1]): int(row[-1]) for row in rows}

    def _one_sided(
        self, have: dict[str, int], other: dict[str, int], have_name: str, other_name: str
    ) -> None:
        missing = sorted(set(have) - set(other))
        if not missing:
            return
        label = "/".join(self.config.segment_keys)
        examples = []
        for seg in missing[: self.max_examples]:
            hint = suggest(seg, list(other))
            near = f"; {other_name} has {hint!r}" if hint else ""
            examples.append(Example(id=seg, value=f"{have[seg]:,} {have_name} rows{near}"))
        self.add(
            have_name,
            label,
            f"segment_without_{other_name}",
            len(missing),
            f"segments ({label}) with {have_name} rows but no {other_name} rows: the market "
            f"cannot be read from one side; fix misspelled keys or add the {other_name} rows",
            examples,
        )

    def _categories(self, con: duckdb.DuckDBPyConnection, loaded: set[str]) -> set[str] | None:
        parts = [
            f"SELECT DISTINCT {cast('category', 'string', self.raw_types[n]['category'])} AS c "
            f'FROM "raw_{n}"'
            for n in ("jobs", "supply")
            if n in loaded and "category" in self.columns[n]
        ]
        if not parts:
            return None
        rows = con.execute(" UNION ".join(parts)).fetchall()
        return {r[0] for r in rows if r[0] is not None}

    def _unknown_categories(
        self, con: duckdb.DuckDBPyConnection, name: str, column: str, categories: set[str]
    ) -> None:
        value = cast(column, "string", self.raw_types[name][column])
        table = f"raw_{name}"
        rows = con.execute(
            f'SELECT {value} AS v, count(*), min(_file), min(_row) FROM "{table}" '
            f"WHERE NOT {_blank(column, 'string', self.raw_types[name][column])} "
            "GROUP BY v ORDER BY min(_row)"
        ).fetchall()
        unknown = [r for r in rows if r[0] not in categories]
        if not unknown:
            return
        known = sorted(categories)
        examples = []
        for v, n, f, first in unknown[: self.max_examples]:
            hint = suggest(v, known)
            examples.append(
                Example(
                    file=f,
                    row=int(first),
                    value=f"{v!r} ({n} rows)" + (f"; did you mean {hint!r}?" if hint else ""),
                )
            )
        self.add(
            name,
            column,
            "unknown_category",
            len(unknown),
            f"{column} names categories that appear in neither jobs nor supply",
            examples,
        )

    def _shifter_coverage(
        self, con: duckdb.DuckDBPyConnection, loaded: set[str], categories: set[str]
    ) -> None:
        """Every week (and category, when shifters are per category) of the data has shifters."""
        if "week" not in self.columns["shifters"]:
            return
        by_category = "category" in self.columns["shifters"]
        parts = []
        for name, date_col in (("jobs", "posted_at"), ("supply", "week")):
            if (
                name in loaded
                and date_col in self.columns[name]
                and "category" in self.columns[name]
            ):
                types = self.raw_types[name]
                week = (
                    f"CAST(date_trunc('week', {cast(date_col, 'date', types[date_col])}) AS DATE)"
                )
                cat = cast("category", "string", types["category"]) if by_category else "NULL"
                parts.append(f'SELECT DISTINCT {week} AS w, {cat} AS c FROM "raw_{name}"')
        if not parts:
            return
        stypes = self.raw_types["shifters"]
        sweek = cast("week", "date", stypes["week"])
        scat = cast("category", "string", stypes["category"]) if by_category else "NULL"
        missing_sql = (
            f"SELECT w, c FROM ({' UNION '.join(parts)}) WHERE w IS NOT NULL "
            f"EXCEPT SELECT {sweek}, {scat} FROM raw_shifters"
        )
        total = con.execute(f"SELECT count(*) FROM ({missing_sql})").fetchone()
        if not total or not total[0]:
            return
        rows = con.execute(
            f"SELECT * FROM ({missing_sql}) ORDER BY w, c LIMIT {self.max_examples}"
        ).fetchall()
        what = "week and category" if by_category else "week"
        self.add(
            "shifters",
            "week",
            "missing_weeks",
            int(total[0]),
            f"every {what} with jobs or supply needs a shifters row; add the missing rows",
            [Example(id=w.isoformat() + (f"/{c}" if c is not None else "")) for w, c in rows],
        )

    def _configured_shifters(self, loaded: set[str]) -> None:
        est = self.config.estimation
        named = est.shifter_columns
        if not named:
            return
        if "shifters" not in loaded:
            if any(p.table == "shifters" for p in self.problems):
                return  # the shifters file exists but is unusable, already reported
            self.add(
                "shifters",
                None,
                "missing_file",
                1,
                f"the config names shifter columns {list(named)} but there is no shifters "
                "table; add shifters.parquet or .csv, or remove them from [estimation]",
            )
            return
        present = [c for c in self.raw_types["shifters"] if c not in ("week", "category")]
        for column in named:
            if column not in self.raw_types["shifters"]:
                hint = suggest(column, present)
                self.add(
                    "shifters",
                    column,
                    "missing_column",
                    1,
                    f"the config's [estimation] names {column!r}, which shifters lacks"
                    + (
                        f"; did you mean {hint!r}?" if hint else f" (columns: {', '.join(present)})"
                    ),
                )

    # ------------------------------------------------------- adjacency (v1.1)

    def _adjacency_keys(self, con: duckdb.DuckDBPyConnection, loaded: set[str]) -> None:
        """The adjacency's tier and region columns (contract v1.1) name segment keys
        with values the data has, and no two equally specific rows name one edge
        (:mod:`pricing.inputs.adjacency`)."""
        usable = self.columns["adjacency"]
        base = ("from_category", "to_category", "friction")
        if not set(base) <= set(usable):
            return
        types = self.raw_types["adjacency"]
        optional = [c for pair in ADJACENCY_COLUMNS.values() for c in pair if c in usable]
        select = ", ".join(
            f"{cast(c, column_spec('adjacency', c, self.config).type, types[c])} AS {_quote(c)}"
            for c in (*base, *optional)
        )
        rows = con.execute(f"SELECT {select}, _file, _row FROM raw_adjacency").df()
        rows = rows[rows["from_category"].notna() & rows["to_category"].notna()]
        values: dict[str, list[str]] = {}
        misread = pd.Series(False, rows.index)  # rows naming a key that is no segment key
        for key, pair in ADJACENCY_COLUMNS.items():
            named = [c for c in pair if c in optional and (~adjacency_blank(rows[c])).any()]
            if key not in self.config.segment_keys:
                for column in named:
                    misread |= ~adjacency_blank(rows[column])
                    message = (
                        f"{column} names a {key}, but {key} is not a segment key: add it to "
                        "[data] segment_keys or leave the column empty"
                    )
                    given = ~adjacency_blank(rows[column])
                    self._adjacency_problem(rows, column, given, "not_a_segment_key", message)
                continue
            known = self._key_values(con, loaded, key)
            values[key] = sorted(known)
            for column in named:
                text = rows[column].astype("string").str.strip()
                valid = text.isin(TIERS) if key == "tier" else text.notna()  # else not_allowed
                unknown = (~adjacency_blank(rows[column]) & valid & ~text.isin(known)).fillna(False)
                message = f"{column} names {key}s that appear in neither jobs nor supply"
                self._adjacency_problem(rows, column, unknown, f"unknown_{key}", message)
        self._adjacency_duplicates(rows[~misread].reset_index(drop=True), values)

    def _key_values(self, con: duckdb.DuckDBPyConnection, loaded: set[str], key: str) -> set[str]:
        """The values segment key ``key`` takes in jobs and supply."""
        parts = [
            f'SELECT DISTINCT {cast(key, "string", self.raw_types[n][key])} AS v FROM "raw_{n}"'
            for n in ("jobs", "supply")
            if n in loaded and key in self.columns[n]
        ]
        if not parts:
            return set()
        return {r[0] for r in con.execute(" UNION ".join(parts)).fetchall() if r[0] is not None}

    def _adjacency_problem(
        self, rows: pd.DataFrame, column: str, bad: pd.Series, rule: str, message: str
    ) -> None:
        """One problem for the adjacency ``rows`` where ``bad``, with their first rows."""
        if not bad.any():
            return
        shown = rows[bad.to_numpy()].head(self.max_examples)
        self.add(
            "adjacency",
            column,
            rule,
            int(bad.sum()),
            message,
            [
                Example(file=f, row=int(r), id=str(i), value=_show(v))
                for f, r, i, v in zip(
                    shown["_file"],
                    shown["_row"],
                    shown["from_category"],
                    shown[column],
                    strict=True,
                )
            ],
        )

    def _adjacency_duplicates(self, rows: pd.DataFrame, values: dict[str, list[str]]) -> None:
        """Rows that name one edge equally specifically (the v1 rule ``from_category,
        to_category unique``, read through the tier and region columns)."""
        tied = adjacency_duplicates(rows, values) if not rows.empty else []
        if not tied:
            return
        keyed = [c for key in values for c in ADJACENCY_COLUMNS[key] if c in rows]
        columns = ["from_category", "to_category", *keyed]
        examples = []
        for positions in tied[: self.max_examples]:
            where = rows.iloc[positions]
            first = where.iloc[0]
            # a blank tier or region shows as '*' (every one, or the pool's)
            key = "/".join("*" if pd.isna(first[c]) else str(first[c]) for c in columns)
            pairs = list(zip(where["_file"], where["_row"].astype(int), strict=True))
            examples.append(_duplicate_example(key, len(pairs), where["_file"].nunique(), pairs))
        self.add(
            "adjacency",
            "/".join(columns),
            "duplicate",
            len(tied),
            "rows name the same edge (pool → segment), none more specifically than the "
            "other: keep one, or name the tier or region where they differ",
            examples,
        )


@dataclass(frozen=True)
class _RowRule:
    column: str
    rule: str
    bad: str  # SQL predicate true for offending rows
    message: str


def _across_columns(name: str, usable: set[str], types: dict[str, str]) -> list[_RowRule]:
    """Rules that read several columns of a row of ``name``."""
    rules: list[_RowRule] = []
    if name == "jobs" and {"hired", "hired_rate"} <= usable:
        hired = _typed("hired")
        rate_missing = _blank("hired_rate", "number", types["hired_rate"], _typed("hired_rate"))
        rules.append(
            _RowRule(
                "hired_rate",
                "missing_when_hired",
                f"({hired} AND {rate_missing})",
                "hired jobs need the agreed hired_rate",
            )
        )
        rules.append(
            _RowRule(
                "hired_rate",
                "present_when_not_hired",
                f"(NOT {hired} AND NOT {rate_missing})",
                "hired_rate must be empty for jobs that were not hired (or hired must be true)",
            )
        )
    if name == "interventions" and {"kind", "to_category", "category"} <= usable:
        kind, to_cat, cat = _typed("kind"), _typed("to_category"), _typed("category")
        rules.append(
            _RowRule(
                "to_category",
                "same_category",
                f"({kind} = 'reskill' AND {to_cat} = {cat})",
                "a reskill lever must lead to a different category",
            )
        )
        rules.append(
            _RowRule(
                "to_category",
                "not_reskill",
                f"({kind} <> 'reskill' AND NOT "
                f"{_blank('to_category', 'string', types['to_category'], to_cat)})",
                "to_category is for reskill levers only; leave it empty for other kinds",
            )
        )
    if name == "adjacency" and {"from_category", "to_category"} <= usable:
        rules.append(_adjacency_self_loop(usable, types))
    return rules


def _adjacency_self_loop(usable: set[str], types: dict[str, str]) -> _RowRule:
    """A row whose every edge joins a pool to its own segment: one category, and no tier
    (or region) named on the segment end that differs from the pool end's
    (:mod:`pricing.inputs.adjacency`)."""
    same = [f"{_typed('from_category')} = {_typed('to_category')}"]
    for src, dst in ADJACENCY_COLUMNS.values():
        if {src, dst} <= usable:
            dst_blank = _blank(dst, "string", types[dst], _typed(dst))
            src_blank = _blank(src, "string", types[src], _typed(src))
            # across: the segment end is named, and the pool end is blank or another value
            same.append(
                f"NOT (NOT {dst_blank} AND ({src_blank} OR {_typed(src)} <> {_typed(dst)}))"
            )
        elif dst in usable:
            same.append(_blank(dst, "string", types[dst], _typed(dst)))
    return _RowRule(
        "to_category",
        "self_loop",
        "(" + " AND ".join(same) + ")",
        "an edge must join two different segments (another category, or another tier or "
        "region named in to_tier/to_region); remove the row",
    )


def _date_window(column: str, logical: str, value: str) -> list[_RowRule]:
    """A date column's lower bound, :data:`EARLIEST_DATE` (its upper one is the as-of)."""
    if logical != "date":
        return []
    earliest = EARLIEST_DATE.isoformat()
    return [
        _RowRule(
            column,
            "too_early",
            f"{value} < DATE '{earliest}'",
            f"{column} must be on or after {earliest} (earlier dates are typos or zero "
            "dates such as 1970-01-01); fix the date",
        )
    ]


def _fixed_name(column: str) -> str:
    """A name like ``column`` that :func:`column_name_ok` accepts."""
    name = re.sub(r"[^A-Za-z0-9_]+", "_", column).strip("_") or "shifter"
    return ("_" + name if name[0].isdigit() else name)[:63]


def cast(column: str, logical: str, raw_type: str) -> str:
    """SQL for ``column`` as its contract type; NULL where the value does not parse."""
    target = _SQL_TYPE[logical]
    raw = _quote(column)
    if raw_type == target:
        return raw
    if target == "VARCHAR":
        return f"CAST({raw} AS VARCHAR)"
    return f"TRY_CAST({raw} AS {target})"


def _typed(column: str) -> str:
    """The name under which row checks see ``column`` parsed to its contract type."""
    return _quote(f"{column}@")


def _blank(column: str, logical: str, raw_type: str, value: str | None = None) -> str:
    """SQL true where a value is absent: NULL, blank text, or NaN for numbers.

    ``value`` is the column already parsed to its type, when the query has it.
    """
    raw = _quote(column)
    # `raw < '!'` (binary order: starts with a space or control character) guards the
    # costly trim, which then runs on almost no rows
    blank = (
        f"({raw} IS NULL OR {raw} = '' OR ({raw} < '!' AND trim({raw}) = ''))"
        if raw_type == "VARCHAR"
        else f"{raw} IS NULL"
    )
    if logical == "number":  # coalesce: isnan of text that does not parse is NULL
        value = value or cast(column, logical, raw_type)
        blank = f"({blank} OR coalesce(isnan({value}), false))"
    return blank


def _duplicate_example(key: str, n: int, files: int, rows: list[Any]) -> Example:
    """Where a repeated key sits: rows of one file, or file and row when files differ."""
    pairs = [tuple(r.values()) if isinstance(r, dict) else tuple(r) for r in rows]
    more = ", ..." if n > len(pairs) else ""
    if files == 1:
        shown = ", ".join(str(row) for _, row in pairs)
        return Example(file=pairs[0][0], id=key, value=f"{n} rows: {shown}{more}")
    shown = ", ".join(f"{file} row {row}" for file, row in pairs)
    return Example(id=key, value=f"{n} rows: {shown}{more}")


def _scalar(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    row = con.execute(sql).fetchone()
    assert row is not None  # an aggregate query always returns one row
    return int(row[0])


def _quote(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


def _show(value: Any) -> str:
    if value is None:
        return "<empty>"
    return repr(value) if isinstance(value, str) else str(value)


def typed_views(
    sources: dict[str, TableSource], columns: dict[str, tuple[str, ...]], config: RunConfig
) -> duckdb.DuckDBPyConnection:
    """A new connection with the typed views of :class:`CheckedInputs` over ``sources``
    (tables that already passed :func:`check_inputs`, or a subset of their files)."""
    con = connect()
    for name, source in sources.items():
        failure = load_table(con, source, f"raw_{name}")
        if failure is not None:  # the files changed since they were checked
            raise DataError(f"{name}: {failure.detail}")
        create_typed_view(con, name, columns[name], config)
    return con


def create_typed_view(
    con: duckdb.DuckDBPyConnection, name: str, columns: tuple[str, ...], config: RunConfig
) -> None:
    """The view ``name`` over ``raw_<name>``: the contract ``columns``, cast to their types."""
    types = {r[0]: r[1] for r in con.execute(f'DESCRIBE "raw_{name}"').fetchall()}
    select = [
        f"{cast(column, column_spec(name, column, config).type, types[column])} AS {_quote(column)}"
        for column in columns
    ]
    con.execute(f'CREATE OR REPLACE VIEW "{name}" AS SELECT {", ".join(select)} FROM "raw_{name}"')
