"""The input data contract (DESIGN.md §2): :func:`pricing.inputs.validation.check_inputs`,
one rule at a time.

Every test copies the valid fixture, breaks exactly one thing and asserts that exactly one
problem (table, column, rule) is reported — with its count and an example pointing at the
offending file, data row (1-based, header excluded), id and value — and that nothing else
fires. Row-level rules run on CSV (every column read as text) and on Parquet (typed
columns), because the two reach the checks with different raw types.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import AS_OF, WEEKS, valid_tables, write_tables

from pricing.config import DataConfig, EstimationConfig, RunConfig
from pricing.errors import DataError
from pricing.inputs.validation import (
    CheckedInputs,
    Example,
    Problem,
    ValidationReport,
    check_inputs,
)

Tables = dict[str, pd.DataFrame]
MakeDir = Callable[..., Path]
Key = tuple[str, str | None, str]

FORMATS = pytest.mark.parametrize("fmt", ["csv", "parquet"])

REGION = RunConfig(data=DataConfig(segment_keys=("category", "tier", "region")))


# ------------------------------------------------------------------------------ helpers


def check(directory: Path, **kwargs: Any) -> ValidationReport:
    """Validate with the fixture's as-of date, so dates are judged against a fixed day."""
    return check_inputs(directory, as_of=AS_OF, **kwargs)


def rules(report: ValidationReport) -> set[Key]:
    return {(p.table, p.column, p.rule) for p in report.problems}


def only(report: ValidationReport, table: str, column: str | None, rule: str) -> Problem:
    """The one problem of the report, after asserting that nothing else was reported."""
    assert rules(report) == {(table, column, rule)}, report.summary()
    assert len(report.problems) == 1, report.summary()
    assert not report.ok
    return report.problems[0]


def single_example(problem: Problem, count: int = 1) -> Example:
    assert problem.count == count, problem
    assert len(problem.examples) == count, problem
    return problem.examples[0]


def as_text(value: Any) -> str | None:
    """How a value is spelled in a text column (CSV conventions of ``write_tables``)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    return str(value)


def put(frame: pd.DataFrame, row: int, column: str, value: Any) -> None:
    """Set one cell. A text value turns the whole column into text first, so that
    Parquet stores a string column (as a badly typed export would) instead of failing on
    mixed types."""
    if isinstance(value, str) and not all(
        v is None or isinstance(v, str) for v in frame[column].tolist()
    ):
        frame[column] = pd.Series([as_text(v) for v in frame[column]], dtype=object)
    elif isinstance(value, float) and pd.api.types.is_integer_dtype(frame[column]):
        frame[column] = frame[column].astype(float)
    frame.loc[row, column] = value


def data_file(directory: Path, table: str, fmt: str) -> str:
    assert (directory / f"{table}.{fmt}").is_file()
    return f"{table}.{fmt}"


def rewrite_csv_lines(path: Path, edit: Callable[[list[str]], list[str]]) -> None:
    """Edit a CSV file as lines; ``lines[0]`` is the header, ``lines[r]`` data row r."""
    lines = path.read_text().splitlines()
    path.write_text("\n".join(edit(lines)) + "\n")


def write_parquet_nan(path: Path, frame: pd.DataFrame, column: str, row: int) -> None:
    """Write ``frame`` with a true IEEE NaN (not a null) at ``row`` of a float column;
    pandas would turn the NaN into a null on the way to Parquet."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    values = frame[column].to_numpy(dtype=float, copy=True)
    values[row] = np.nan
    i = table.schema.get_field_index(column)
    table = table.set_column(i, column, pa.array(values, type=pa.float64(), from_pandas=False))
    assert table.column(column).null_count == 0
    pq.write_table(table, path)


# ------------------------------------------------------------------------ valid input


@FORMATS
def test_valid_fixture_is_ok(tables: Tables, make_dir: MakeDir, fmt: str) -> None:
    report = check(make_dir(tables, fmt))
    assert report.ok, report.summary()
    assert report.problems == ()
    assert [(t.name, t.rows) for t in report.tables] == [
        ("jobs", 24),
        ("supply", 24),
        ("shifters", 3),
        ("adjacency", 2),
        ("interventions", 3),
    ]
    assert "OK: every table meets the data contract." in report.summary()


@FORMATS
def test_checked_gives_typed_views(tables: Tables, make_dir: MakeDir, fmt: str) -> None:
    inputs = check(make_dir(tables, fmt)).checked()
    assert isinstance(inputs, CheckedInputs)
    assert inputs.as_of == AS_OF
    assert inputs.tables == ("jobs", "supply", "shifters", "adjacency", "interventions")
    assert inputs.shifter_columns == ("fx_index", "client_marketing_index")

    jobs = inputs.con.execute("SELECT * FROM jobs ORDER BY job_id").df()
    assert list(jobs.columns) == [
        "job_id",
        "posted_at",
        "category",
        "tier",
        "hours",
        "budget_rate",
        "hired",
        "hired_rate",
    ]
    assert pd.api.types.is_datetime64_any_dtype(jobs["posted_at"])
    assert pd.api.types.is_float_dtype(jobs["hours"])
    assert pd.api.types.is_float_dtype(jobs["budget_rate"])
    assert pd.api.types.is_bool_dtype(jobs["hired"])
    assert pd.api.types.is_float_dtype(jobs["hired_rate"])
    expected = tables["jobs"]
    assert jobs["hired"].tolist() == expected["hired"].tolist()
    assert jobs["hours"].tolist() == expected["hours"].tolist()
    assert jobs["hired_rate"].isna().tolist() == (~expected["hired"]).tolist()
    assert [d.date() for d in jobs["posted_at"]] == expected["posted_at"].tolist()

    supply = inputs.table("supply")
    assert pd.api.types.is_datetime64_any_dtype(supply["week"])
    assert pd.api.types.is_float_dtype(supply["available_hours"])
    # region is not a segment key by default, so it is not part of the typed view
    assert "region" not in supply.columns


def test_checked_keeps_region_when_it_is_a_segment_key(tables: Tables, make_dir: MakeDir) -> None:
    tables["jobs"]["region"] = "eu"
    inputs = check(make_dir(tables), config=REGION).checked()
    assert "region" in inputs.table("jobs").columns
    assert "region" in inputs.table("supply").columns


def test_checked_raises_data_error_with_the_report(tables: Tables, make_dir: MakeDir) -> None:
    put(tables["jobs"], 0, "hours", 0.0)
    report = check(make_dir(tables))
    with pytest.raises(DataError) as info:
        report.checked()
    assert info.value.report is report
    assert "[not_positive]" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_optional_tables_may_be_absent(tables: Tables, make_dir: MakeDir) -> None:
    for name in ("shifters", "adjacency", "interventions"):
        del tables[name]
    report = check(make_dir(tables))
    assert report.ok, report.summary()
    assert report.checked().tables == ("jobs", "supply")


def test_extra_columns_are_ignored(tables: Tables, make_dir: MakeDir) -> None:
    tables["jobs"]["notes"] = "anything, even 'text'"
    tables["supply"]["rating"] = "n/a"
    report = check(make_dir(tables))
    assert report.ok, report.summary()
    assert "notes" not in report.checked().table("jobs").columns


# ------------------------------------------------------------------------- file level


def test_missing_dir(tmp_path: Path) -> None:
    report = check(tmp_path / "nowhere")
    problem = only(report, "(data dir)", None, "missing_dir")
    assert "nowhere" in problem.message
    with pytest.raises(DataError):
        report.checked()


@pytest.mark.parametrize("table", ["jobs", "supply"])
def test_missing_required_file(tables: Tables, make_dir: MakeDir, table: str) -> None:
    del tables[table]
    problem = only(check(make_dir(tables)), table, None, "missing_file")
    assert f"{table}.parquet or {table}.csv" in problem.message
    assert "found" not in problem.message


def test_missing_file_suggests_a_near_name(tables: Tables, make_dir: MakeDir) -> None:
    directory = make_dir(tables)
    (directory / "jobs.csv").rename(directory / "job.csv")
    problem = only(check(directory), "jobs", None, "missing_file")
    assert "found 'job'" in problem.message


@pytest.mark.parametrize("suffix", [".xlsx", ".json"])
def test_unsupported_format(tables: Tables, make_dir: MakeDir, suffix: str) -> None:
    directory = make_dir(tables)
    (directory / "jobs.csv").rename(directory / f"jobs{suffix}")
    problem = only(check(directory), "jobs", None, "unsupported_format")
    assert f"jobs{suffix}" in problem.message
    assert "jobs.parquet or jobs.csv" in problem.message


def test_ambiguous_when_two_formats_exist(tables: Tables, make_dir: MakeDir) -> None:
    directory = make_dir(tables)
    tables["jobs"].to_parquet(directory / "jobs.parquet", index=False)
    problem = only(check(directory), "jobs", None, "ambiguous")
    assert "jobs.csv" in problem.message
    assert "jobs.parquet" in problem.message


def test_unreadable_parquet(tables: Tables, make_dir: MakeDir) -> None:
    directory = make_dir(tables, "parquet")
    (directory / "jobs.parquet").write_bytes(b"this is not parquet \x00\xff" * 10)
    problem = only(check(directory), "jobs", None, "unreadable")
    assert problem.message.startswith("jobs.parquet: ")


@FORMATS
def test_empty_file(tables: Tables, make_dir: MakeDir, fmt: str) -> None:
    directory = make_dir(tables, fmt)
    (directory / f"jobs.{fmt}").write_bytes(b"")
    problem = only(check(directory), "jobs", None, "empty_file")
    assert f"jobs.{fmt}" in problem.message


@FORMATS
def test_empty_table_with_header_only(tables: Tables, make_dir: MakeDir, fmt: str) -> None:
    tables["adjacency"] = tables["adjacency"].iloc[0:0]
    problem = only(check(make_dir(tables, fmt)), "adjacency", None, "empty")
    assert f"adjacency.{fmt} has no data rows" in problem.message


def test_malformed_line(tables: Tables, make_dir: MakeDir) -> None:
    directory = make_dir(tables)
    rewrite_csv_lines(directory / "jobs.csv", lambda ls: [*ls[:3], ls[3] + ",extra", *ls[4:]])
    report = check(directory)
    problem = only(report, "jobs", None, "malformed_line")
    example = single_example(problem)
    assert example.file == "jobs.csv"
    assert example.value is not None
    # file line 4 = header + data row 3
    assert example.value.startswith("line 4: ")
    assert report.tables[0].rows == 23


def test_rows_after_a_malformed_line_keep_their_row_number(
    tables: Tables, make_dir: MakeDir
) -> None:
    put(tables["jobs"], 5, "hours", 0.0)  # data row 6, J006
    put(tables["jobs"], 20, "hours", -1.0)  # data row 21, J021
    directory = make_dir(tables)

    def break_rows(lines: list[str]) -> list[str]:
        lines[3] += ",extra"  # data row 3: a field too many
        lines[10] = lines[10].rsplit(",", 2)[0]  # data row 10: two fields too few
        return lines

    rewrite_csv_lines(directory / "jobs.csv", break_rows)
    report = check(directory)
    assert rules(report) == {
        ("jobs", None, "malformed_line"),
        ("jobs", "hours", "not_positive"),
    }, report.summary()
    bad_lines, bad_hours = report.problems
    assert bad_lines.count == 2
    assert [e.value.split(":")[0] for e in bad_lines.examples if e.value] == ["line 4", "line 11"]
    assert [(e.row, e.id, e.value) for e in bad_hours.examples] == [
        (6, "J006", "'0.0'"),
        (21, "J021", "'-1.0'"),
    ]


def test_unterminated_quote_accounts_for_every_line(tables: Tables, make_dir: MakeDir) -> None:
    directory = make_dir(tables)
    rewrite_csv_lines(
        directory / "jobs.csv", lambda ls: [*ls[:10], ls[10] + ',"unterminated', *ls[11:]]
    )
    report = check(directory)
    malformed = next(p for p in report.problems if p.rule == "malformed_line")
    assert malformed.examples[0].value is not None
    assert malformed.examples[0].value.startswith("line 11: ")
    # every one of the 24 data lines is either loaded or reported, never silently lost
    assert report.tables[0].rows + malformed.count == 24, report.summary()


def test_duplicate_header_is_reported_not_raised(tables: Tables, make_dir: MakeDir) -> None:
    directory = make_dir(tables)
    rewrite_csv_lines(
        directory / "jobs.csv", lambda ls: [ls[0] + ",hours"] + [r + ",1" for r in ls[1:]]
    )
    problem = only(check(directory), "jobs", None, "unreadable")
    assert "hours" in problem.message


def test_csv_with_byte_order_mark_is_valid(tables: Tables, make_dir: MakeDir) -> None:
    # Excel's "CSV UTF-8" export starts the file with a byte order mark
    directory = make_dir(tables)
    path = directory / "jobs.csv"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    report = check(directory)
    assert report.ok, report.summary()


# ----------------------------------------------------------------------- column level


@FORMATS
def test_missing_column_suggests_the_found_name(
    tables: Tables, make_dir: MakeDir, fmt: str
) -> None:
    tables["jobs"] = tables["jobs"].rename(columns={"posted_at": "posted_on"})
    problem = only(check(make_dir(tables, fmt)), "jobs", "posted_at", "missing_column")
    assert problem.count == 1
    assert "'posted_at'" in problem.message
    assert "found 'posted_on'" in problem.message


def test_missing_column_without_a_near_name(tables: Tables, make_dir: MakeDir) -> None:
    tables["supply"] = tables["supply"].drop(columns="ask_rate")
    problem = only(check(make_dir(tables)), "supply", "ask_rate", "missing_column")
    assert "found" not in problem.message
    assert "columns present: freelancer_id, week" in problem.message


def test_region_is_optional_by_default(tables: Tables, make_dir: MakeDir) -> None:
    tables["jobs"] = tables["jobs"].drop(columns="region")
    tables["supply"] = tables["supply"].drop(columns="region")
    report = check(make_dir(tables))
    assert report.ok, report.summary()


def test_region_is_required_when_it_is_a_segment_key(tables: Tables, make_dir: MakeDir) -> None:
    tables["jobs"]["region"] = "eu"
    tables["supply"] = tables["supply"].drop(columns="region")
    problem = only(check(make_dir(tables), config=REGION), "supply", "region", "missing_column")
    assert "'region'" in problem.message


def test_to_category_is_optional_without_reskill_levers(tables: Tables, make_dir: MakeDir) -> None:
    interventions = tables["interventions"]
    tables["interventions"] = interventions[interventions["kind"] != "reskill"].drop(
        columns="to_category"
    )
    assert check(make_dir(tables)).ok


def test_to_category_is_optional_with_reskill_levers(tables: Tables, make_dir: MakeDir) -> None:
    # a reskill lever without a target acts on every adjacency edge out of its category
    tables["interventions"] = tables["interventions"].drop(columns="to_category")
    assert check(make_dir(tables)).ok


# ------------------------------------------------------------------------------- jobs


@FORMATS
@pytest.mark.parametrize(
    ("column", "value", "shown"),
    [
        pytest.param("category", "", {"csv": "<empty>", "parquet": "''"}, id="empty-string"),
        pytest.param("category", "   ", {"csv": "'   '", "parquet": "'   '"}, id="blank-string"),
        pytest.param("job_id", None, {"csv": "<empty>", "parquet": "<empty>"}, id="null-id"),
        pytest.param("hours", math.nan, {"csv": "<empty>", "parquet": "<empty>"}, id="nan-null"),
        pytest.param("posted_at", None, {"csv": "<empty>", "parquet": "<empty>"}, id="null-date"),
    ],
)
def test_jobs_missing(
    tables: Tables, make_dir: MakeDir, fmt: str, column: str, value: Any, shown: dict[str, str]
) -> None:
    put(tables["jobs"], 6, column, value)
    directory = make_dir(tables, fmt)
    example = single_example(only(check(directory), "jobs", column, "missing"))
    expected_id = None if column == "job_id" else "J007"
    assert example == Example(data_file(directory, "jobs", fmt), 7, expected_id, shown[fmt])


def test_jobs_nan_in_a_parquet_float_column_is_missing(tables: Tables, make_dir: MakeDir) -> None:
    directory = make_dir(tables, "parquet")
    write_parquet_nan(directory / "jobs.parquet", tables["jobs"], "budget_rate", row=3)
    example = single_example(only(check(directory), "jobs", "budget_rate", "missing"))
    assert (example.file, example.row, example.id, example.value) == (
        "jobs.parquet",
        4,
        "J004",
        "'nan'",
    )


@FORMATS
@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("posted_at", "2024-13-01"),
        ("posted_at", "last tuesday"),
        ("hired", "maybe"),
        ("hours", "abc"),
        ("budget_rate", "$30"),
    ],
)
def test_jobs_wrong_type(
    tables: Tables, make_dir: MakeDir, fmt: str, column: str, value: str
) -> None:
    put(tables["jobs"], 2, column, value)
    directory = make_dir(tables, fmt)
    problem = only(check(directory), "jobs", column, "wrong_type")
    example = single_example(problem)
    assert example == Example(data_file(directory, "jobs", fmt), 3, "J003", repr(value))


@pytest.mark.parametrize(
    ("table", "column", "row", "row_id"),
    [
        ("jobs", "hired_rate", 0, "J001"),
        ("supply", "available_hours", 0, "F00"),
        ("supply", "ask_rate", 0, "F00"),
        ("adjacency", "friction", 0, "web"),
        ("interventions", "cost_per_unit", 0, "I1"),
        ("interventions", "max_units", 0, "I1"),
        ("interventions", "effect_per_unit", 0, "I1"),
    ],
)
def test_text_in_any_number_column_is_wrong_type(
    tables: Tables, make_dir: MakeDir, table: str, column: str, row: int, row_id: str
) -> None:
    put(tables[table], row, column, "n/a")
    directory = make_dir(tables)
    example = single_example(only(check(directory), table, column, "wrong_type"))
    assert example == Example(f"{table}.csv", row + 1, row_id, "'n/a'")


@FORMATS
def test_jobs_not_finite(tables: Tables, make_dir: MakeDir, fmt: str) -> None:
    put(tables["jobs"], 9, "hours", math.inf)
    directory = make_dir(tables, fmt)
    example = single_example(only(check(directory), "jobs", "hours", "not_finite"))
    assert (example.row, example.id) == (10, "J010")
    assert example.value is not None
    assert "inf" in example.value.lower()


@FORMATS
@pytest.mark.parametrize(
    ("column", "row", "value"),
    [("hours", 0, 0.0), ("budget_rate", 4, -5.0), ("hired_rate", 0, 0.0)],
)
def test_jobs_not_positive(
    tables: Tables, make_dir: MakeDir, fmt: str, column: str, row: int, value: float
) -> None:
    if column == "hired_rate":
        assert tables["jobs"].loc[row, "hired"]  # so the rate must be present
    put(tables["jobs"], row, column, value)
    directory = make_dir(tables, fmt)
    example = single_example(only(check(directory), "jobs", column, "not_positive"))
    assert example == Example(
        data_file(directory, "jobs", fmt), row + 1, f"J{row + 1:03d}", repr(str(value))
    )


@FORMATS
def test_jobs_future_date(tables: Tables, make_dir: MakeDir, fmt: str) -> None:
    put(tables["jobs"], 11, "posted_at", AS_OF + dt.timedelta(days=1))
    # without shifters: a week beyond the shifters would also (rightly) be missing_weeks
    del tables["shifters"]
    directory = make_dir(tables, fmt)
    problem = only(check(directory), "jobs", "posted_at", "future_date")
    example = single_example(problem)
    assert example == Example(data_file(directory, "jobs", fmt), 12, "J012", "'2024-02-02'")
    assert "lies after 2024-02-01, the latest date the data may hold" in problem.message


def test_jobs_posted_on_the_as_of_day_is_not_future(tables: Tables, make_dir: MakeDir) -> None:
    put(tables["jobs"], 11, "posted_at", AS_OF)
    del tables["shifters"]
    report = check(make_dir(tables))
    assert report.ok, report.summary()


@FORMATS
def test_jobs_tier_not_allowed_suggests_the_fix(
    tables: Tables, make_dir: MakeDir, fmt: str
) -> None:
    put(tables["jobs"], 7, "tier", "Expert")
    directory = make_dir(tables, fmt)
    problem = only(check(directory), "jobs", "tier", "not_allowed")
    example = single_example(problem)
    assert (example.row, example.id, example.value) == (8, "J008", "'Expert'")
    assert "entry, intermediate, expert" in problem.message
    assert "did you mean: 'Expert' -> 'expert'" in problem.message


@FORMATS
def test_jobs_missing_when_hired(tables: Tables, make_dir: MakeDir, fmt: str) -> None:
    assert tables["jobs"].loc[1, "hired"]
    put(tables["jobs"], 1, "hired_rate", math.nan)
    directory = make_dir(tables, fmt)
    example = single_example(only(check(directory), "jobs", "hired_rate", "missing_when_hired"))
    assert example == Example(data_file(directory, "jobs", fmt), 2, "J002", "<empty>")


@FORMATS
def test_jobs_present_when_not_hired(tables: Tables, make_dir: MakeDir, fmt: str) -> None:
    assert not tables["jobs"].loc[3, "hired"]
    put(tables["jobs"], 3, "hired_rate", 25.0)
    directory = make_dir(tables, fmt)
    problem = only(check(directory), "jobs", "hired_rate", "present_when_not_hired")
    example = single_example(problem)
    assert example == Example(data_file(directory, "jobs", fmt), 4, "J004", "'25.0'")


@FORMATS
def test_jobs_duplicate_id(tables: Tables, make_dir: MakeDir, fmt: str) -> None:
    put(tables["jobs"], 4, "job_id", "J002")
    put(tables["jobs"], 9, "job_id", "J002")
    directory = make_dir(tables, fmt)
    problem = only(check(directory), "jobs", "job_id", "duplicate")
    example = single_example(problem)  # one repeated value
    assert example == Example(data_file(directory, "jobs", fmt), None, "J002", "3 rows: 2, 5, 10")
    assert "3 rows share 1 value(s)" in problem.message


def test_jobs_duplicate_ids_are_counted_per_value(tables: Tables, make_dir: MakeDir) -> None:
    jobs = tables["jobs"]
    put(jobs, 20, "job_id", "J001")
    for row in (10, 12, 14, 16):
        put(jobs, row, "job_id", "J009")
    problem = only(check(make_dir(tables)), "jobs", "job_id", "duplicate")
    assert problem.count == 2
    assert [(e.id, e.value) for e in problem.examples] == [
        ("J001", "2 rows: 1, 21"),
        ("J009", "5 rows: 9, 11, 13, ..."),  # the first three rows
    ]


# ----------------------------------------------------------------------------- supply


@FORMATS
def test_supply_week_not_monday(tables: Tables, make_dir: MakeDir, fmt: str) -> None:
    put(tables["supply"], 2, "week", dt.date(2024, 1, 9))  # a Tuesday
    directory = make_dir(tables, fmt)
    example = single_example(only(check(directory), "supply", "week", "not_monday"))
    assert example == Example(data_file(directory, "supply", fmt), 3, "F00", "'2024-01-09'")


@FORMATS
def test_supply_negative_hours(tables: Tables, make_dir: MakeDir, fmt: str) -> None:
    put(tables["supply"], 5, "available_hours", -1.0)
    directory = make_dir(tables, fmt)
    example = single_example(only(check(directory), "supply", "available_hours", "negative"))
    assert example == Example(data_file(directory, "supply", fmt), 6, "F01", "'-1.0'")


@FORMATS
def test_supply_zero_hours_are_allowed(tables: Tables, make_dir: MakeDir, fmt: str) -> None:
    put(tables["supply"], 5, "available_hours", 0.0)
    report = check(make_dir(tables, fmt))
    assert report.ok, report.summary()


@FORMATS
def test_supply_ask_rate_not_positive(tables: Tables, make_dir: MakeDir, fmt: str) -> None:
    put(tables["supply"], 0, "ask_rate", 0.0)
    example = single_example(
        only(check(make_dir(tables, fmt)), "supply", "ask_rate", "not_positive")
    )
    assert (example.row, example.id) == (1, "F00")


@FORMATS
def test_supply_duplicate_freelancer_week(tables: Tables, make_dir: MakeDir, fmt: str) -> None:
    # row 3 is F00 in week 2; move it onto F00's week-1 row
    assert tables["supply"].loc[2, "freelancer_id"] == "F00"
    put(tables["supply"], 2, "week", WEEKS[0])
    directory = make_dir(tables, fmt)
    problem = only(check(directory), "supply", "freelancer_id/week", "duplicate")
    example = single_example(problem)
    assert example == Example(
        data_file(directory, "supply", fmt), None, "F00/2024-01-01", "2 rows: 1, 3"
    )


@FORMATS
def test_supply_future_week(tables: Tables, make_dir: MakeDir, fmt: str) -> None:
    put(tables["supply"], 23, "week", dt.date(2024, 2, 5))
    # without shifters: a week beyond the shifters would also (rightly) be missing_weeks
    del tables["shifters"]
    directory = make_dir(tables, fmt)
    example = single_example(only(check(directory), "supply", "week", "future_date"))
    assert example == Example(data_file(directory, "supply", fmt), 24, "F31", "'2024-02-05'")


# --------------------------------------------------------------------------- shifters


def shifters_config(*instruments: str) -> RunConfig:
    return RunConfig(estimation=EstimationConfig(demand_instruments=instruments))


@FORMATS
def test_shifters_week_not_monday(tables: Tables, make_dir: MakeDir, fmt: str) -> None:
    extra = pd.DataFrame(
        {"week": [dt.date(2024, 1, 23)], "fx_index": [1.0], "client_marketing_index": [98.0]}
    )
    tables["shifters"] = pd.concat([tables["shifters"], extra], ignore_index=True)
    directory = make_dir(tables, fmt)
    example = single_example(only(check(directory), "shifters", "week", "not_monday"))
    assert example == Example(
        data_file(directory, "shifters", fmt), 4, "2024-01-23", "'2024-01-23'"
    )


@FORMATS
def test_shifters_wrong_type(tables: Tables, make_dir: MakeDir, fmt: str) -> None:
    put(tables["shifters"], 1, "fx_index", "high")
    directory = make_dir(tables, fmt)
    report = check(directory, config=shifters_config("fx_index"))
    example = single_example(only(report, "shifters", "fx_index", "wrong_type"))
    assert example == Example(data_file(directory, "shifters", fmt), 2, "2024-01-08", "'high'")


@FORMATS
def test_shifters_configured_column_must_be_complete(
    tables: Tables, make_dir: MakeDir, fmt: str
) -> None:
    put(tables["shifters"], 2, "fx_index", None)
    directory = make_dir(tables, fmt)
    report = check(directory, config=shifters_config("fx_index"))
    example = single_example(only(report, "shifters", "fx_index", "missing"))
    assert (example.row, example.id) == (3, "2024-01-15")


@FORMATS
def test_shifters_extra_columns_join_only_when_numeric(
    tables: Tables, make_dir: MakeDir, fmt: str
) -> None:
    # unnamed by the config: numeric columns (blanks allowed) join the panel, others are
    # ignored like any extra column
    tables["shifters"]["holiday_name"] = ["new year", None, "x"]
    put(tables["shifters"], 1, "client_marketing_index", None)
    directory = make_dir(tables, fmt)
    report = check(directory, config=shifters_config("fx_index"))
    assert report.ok, report.summary()
    assert report.checked().shifter_columns == ("fx_index", "client_marketing_index")


@FORMATS
def test_shifters_missing_weeks(tables: Tables, make_dir: MakeDir, fmt: str) -> None:
    tables["shifters"] = tables["shifters"].drop(index=1).reset_index(drop=True)
    problem = only(check(make_dir(tables, fmt)), "shifters", "week", "missing_weeks")
    assert single_example(problem) == Example(id="2024-01-08")


def test_shifters_per_category_must_cover_each_category(tables: Tables, make_dir: MakeDir) -> None:
    shifters = tables["shifters"]
    per_category = pd.concat(
        [shifters.assign(category="web"), shifters.assign(category="design")], ignore_index=True
    )
    tables["shifters"] = per_category
    assert check(make_dir(tables)).ok
    tables["shifters"] = per_category.drop(index=4).reset_index(drop=True)  # design, week 2
    problem = only(check(make_dir(tables)), "shifters", "week", "missing_weeks")
    assert single_example(problem) == Example(id="2024-01-08/design")


@FORMATS
def test_shifters_duplicate_week(tables: Tables, make_dir: MakeDir, fmt: str) -> None:
    shifters = tables["shifters"]
    tables["shifters"] = pd.concat([shifters, shifters.iloc[[0]]], ignore_index=True)
    directory = make_dir(tables, fmt)
    problem = only(check(directory), "shifters", "week", "duplicate")
    example = single_example(problem)
    assert example == Example(
        data_file(directory, "shifters", fmt), None, "2024-01-01", "2 rows: 1, 4"
    )


def test_configured_instruments_present_are_ok(tables: Tables, make_dir: MakeDir) -> None:
    config = RunConfig(
        estimation=EstimationConfig(
            demand_instruments=("fx_index",), supply_instruments=("client_marketing_index",)
        )
    )
    assert check(make_dir(tables), config=config).ok


def test_configured_instrument_column_is_missing(tables: Tables, make_dir: MakeDir) -> None:
    report = check(make_dir(tables), config=shifters_config("fx_indx"))
    problem = only(report, "shifters", "fx_indx", "missing_column")
    assert "did you mean 'fx_index'?" in problem.message


def test_configured_instruments_without_shifters_file(tables: Tables, make_dir: MakeDir) -> None:
    del tables["shifters"]
    report = check(make_dir(tables), config=shifters_config("fx_index"))
    problem = only(report, "shifters", None, "missing_file")
    assert "fx_index" in problem.message


def test_configured_instruments_with_broken_shifters_file_report_it_once(
    tables: Tables, make_dir: MakeDir
) -> None:
    directory = make_dir(tables)
    (directory / "shifters.csv").write_bytes(b"")
    only(check(directory, config=shifters_config("fx_index")), "shifters", None, "empty_file")


# -------------------------------------------------------------------------- adjacency


def add_edge(tables: Tables, source: str, target: str, friction: float) -> None:
    edge = pd.DataFrame(
        {"from_category": [source], "to_category": [target], "friction": [friction]}
    )
    tables["adjacency"] = pd.concat([tables["adjacency"], edge], ignore_index=True)


@FORMATS
def test_adjacency_self_loop(tables: Tables, make_dir: MakeDir, fmt: str) -> None:
    add_edge(tables, "web", "web", 1.0)
    directory = make_dir(tables, fmt)
    example = single_example(only(check(directory), "adjacency", "to_category", "self_loop"))
    assert example == Example(data_file(directory, "adjacency", fmt), 3, "web", "'web'")


@FORMATS
def test_adjacency_negative_friction(tables: Tables, make_dir: MakeDir, fmt: str) -> None:
    put(tables["adjacency"], 1, "friction", -0.5)
    directory = make_dir(tables, fmt)
    example = single_example(only(check(directory), "adjacency", "friction", "negative"))
    assert example == Example(data_file(directory, "adjacency", fmt), 2, "design", "'-0.5'")


@FORMATS
def test_adjacency_zero_friction_is_allowed(tables: Tables, make_dir: MakeDir, fmt: str) -> None:
    put(tables["adjacency"], 1, "friction", 0.0)
    assert check(make_dir(tables, fmt)).ok


@FORMATS
def test_adjacency_duplicate_pair(tables: Tables, make_dir: MakeDir, fmt: str) -> None:
    add_edge(tables, "web", "design", 9.0)
    directory = make_dir(tables, fmt)
    problem = only(check(directory), "adjacency", "from_category/to_category", "duplicate")
    example = single_example(problem)
    assert example == Example(
        data_file(directory, "adjacency", fmt), None, "web/design", "2 rows: 1, 3"
    )


@FORMATS
@pytest.mark.parametrize("column", ["from_category", "to_category"])
def test_adjacency_unknown_category(
    tables: Tables, make_dir: MakeDir, fmt: str, column: str
) -> None:
    put(tables["adjacency"], 1, column, "desing")
    directory = make_dir(tables, fmt)
    example = single_example(only(check(directory), "adjacency", column, "unknown_category"))
    assert example == Example(
        data_file(directory, "adjacency", fmt), 2, None, "'desing' (1 rows); did you mean 'design'?"
    )


# ------------------------------------------------------- adjacency across tiers (v1.1)


def with_keys(tables: Tables, rows: list[dict[str, Any]]) -> None:
    """Append adjacency rows that name tiers or regions (contract v1.1); a v1 row leaves
    the new columns blank."""
    tables["adjacency"] = pd.concat([tables["adjacency"], pd.DataFrame(rows)], ignore_index=True)


def both_regions(tables: Tables) -> None:
    """Freelancers in both regions the jobs have (na and eu), so that segments keyed by
    region have both sides."""
    supply = tables["supply"]
    na = supply.assign(region="na", freelancer_id=supply["freelancer_id"] + "n")
    tables["supply"] = pd.concat([supply, na], ignore_index=True)


@FORMATS
def test_adjacency_across_tiers_and_regions_is_valid(
    tables: Tables, make_dir: MakeDir, fmt: str
) -> None:
    """Experts serving their own category's entry clients, a v1 row overridden for
    one tier, and a row into every tier's segment: all valid, blanks included."""
    with_keys(
        tables,
        [
            {"from_category": "web", "to_category": "web", "friction": 1.0,
             "from_tier": "expert", "to_tier": "entry"},
            {"from_category": "web", "to_category": "design", "friction": 0.5,
             "from_tier": "expert", "to_tier": None},
            {"from_category": "design", "to_category": "design", "friction": 4.0,
             "from_tier": None, "to_tier": "expert"},
        ],
    )  # fmt: skip
    assert check(make_dir(tables, fmt)).ok
    # by region as well: EU pools serving NA clients
    both_regions(tables)
    with_keys(
        tables,
        [{"from_category": "web", "to_category": "web", "friction": 1.0,
          "from_region": "eu", "to_region": "na"}],
    )  # fmt: skip
    assert check(make_dir(tables, fmt), config=REGION).ok


@FORMATS
def test_adjacency_tier_not_allowed(tables: Tables, make_dir: MakeDir, fmt: str) -> None:
    with_keys(tables, [{"from_category": "web", "to_category": "web", "friction": 1.0,
                        "from_tier": "senior", "to_tier": "entry"}])  # fmt: skip
    directory = make_dir(tables, fmt)
    example = single_example(only(check(directory), "adjacency", "from_tier", "not_allowed"))
    assert example == Example(data_file(directory, "adjacency", fmt), 3, "web", "'senior'")


@FORMATS
def test_adjacency_region_when_region_is_no_segment_key(
    tables: Tables, make_dir: MakeDir, fmt: str
) -> None:
    with_keys(tables, [{"from_category": "web", "to_category": "design", "friction": 1.0,
                        "to_region": "eu"}])  # fmt: skip
    directory = make_dir(tables, fmt)
    problem = only(check(directory), "adjacency", "to_region", "not_a_segment_key")
    assert single_example(problem) == Example(
        data_file(directory, "adjacency", fmt), 3, "web", "'eu'"
    )
    assert "segment_keys" in problem.message


@FORMATS
def test_adjacency_unknown_region(tables: Tables, make_dir: MakeDir, fmt: str) -> None:
    both_regions(tables)
    with_keys(tables, [{"from_category": "web", "to_category": "web", "friction": 1.0,
                        "from_region": "eu", "to_region": "apac"}])  # fmt: skip
    directory = make_dir(tables, fmt)
    problem = only(check(directory, config=REGION), "adjacency", "to_region", "unknown_region")
    assert single_example(problem) == Example(
        data_file(directory, "adjacency", fmt), 3, "web", "'apac'"
    )


@FORMATS
def test_adjacency_self_loop_across_no_tier(tables: Tables, make_dir: MakeDir, fmt: str) -> None:
    """Naming the same tier on both ends (or the pool's only) still joins a segment to
    itself."""
    with_keys(tables, [{"from_category": "web", "to_category": "web", "friction": 1.0,
                        "from_tier": "expert", "to_tier": "expert"}])  # fmt: skip
    directory = make_dir(tables, fmt)
    only(check(directory), "adjacency", "to_category", "self_loop")


@FORMATS
def test_adjacency_equally_specific_rows_for_one_edge(
    tables: Tables, make_dir: MakeDir, fmt: str
) -> None:
    """'expert → same tier' and 'every tier → expert' both name web/expert → design/expert,
    each with one key column: a duplicate; a row naming both ends would settle it."""
    with_keys(
        tables,
        [
            {"from_category": "web", "to_category": "design", "friction": 1.0,
             "from_tier": "expert", "to_tier": None},
            {"from_category": "web", "to_category": "design", "friction": 2.0,
             "from_tier": None, "to_tier": "expert"},
        ],
    )  # fmt: skip
    directory = make_dir(tables, fmt)
    columns = "from_category/to_category/from_tier/to_tier"
    problem = only(check(directory), "adjacency", columns, "duplicate")
    example = single_example(problem)
    assert example == Example(
        data_file(directory, "adjacency", fmt), None, "web/design/expert/*", "2 rows: 3, 4"
    )
    with_keys(tables, [{"from_category": "web", "to_category": "design", "friction": 1.5,
                        "from_tier": "expert", "to_tier": "expert"}])  # fmt: skip
    assert check(make_dir(tables, fmt)).ok


# ---------------------------------------------------------------------- interventions


@FORMATS
def test_interventions_kind_not_allowed(tables: Tables, make_dir: MakeDir, fmt: str) -> None:
    put(tables["interventions"], 0, "kind", "recruiting")
    directory = make_dir(tables, fmt)
    problem = only(check(directory), "interventions", "kind", "not_allowed")
    example = single_example(problem)
    assert example == Example(data_file(directory, "interventions", fmt), 1, "I1", "'recruiting'")
    assert "'recruiting' -> 'recruit'" in problem.message


@FORMATS
def test_interventions_max_units_not_integer(tables: Tables, make_dir: MakeDir, fmt: str) -> None:
    put(tables["interventions"], 2, "max_units", 2.5)
    directory = make_dir(tables, fmt)
    example = single_example(only(check(directory), "interventions", "max_units", "not_integer"))
    assert example == Example(data_file(directory, "interventions", fmt), 3, "I3", "'2.5'")


@FORMATS
def test_interventions_decay_and_open_friction_are_checked(
    tables: Tables, make_dir: MakeDir, fmt: str
) -> None:
    frame = tables["interventions"]
    frame["decay"] = [0.9, None, 1.5][: len(frame)] + [None] * max(0, len(frame) - 3)
    frame["open_friction"] = [None, -1.0, 4.0][: len(frame)] + [None] * max(0, len(frame) - 3)
    directory = make_dir(tables, fmt)
    report = check(directory)
    assert rules(report) == {
        ("interventions", "decay", "too_large"),
        ("interventions", "open_friction", "negative"),
    }
    found = {p.column: single_example(p) for p in report.problems}
    path = data_file(directory, "interventions", fmt)
    assert found["decay"] == Example(path, 3, "I3", "'1.5'")
    assert found["open_friction"] == Example(path, 2, "I2", "'-1.0'")


@FORMATS
def test_interventions_whole_float_max_units_are_integers(
    tables: Tables, make_dir: MakeDir, fmt: str
) -> None:
    tables["interventions"]["max_units"] = tables["interventions"]["max_units"].astype(float)
    assert check(make_dir(tables, fmt)).ok


@FORMATS
def test_interventions_reskill_without_target_is_valid(
    tables: Tables, make_dir: MakeDir, fmt: str
) -> None:
    put(tables["interventions"], 1, "to_category", None)
    assert check(make_dir(tables, fmt)).ok


@FORMATS
def test_interventions_reskill_to_same_category(
    tables: Tables, make_dir: MakeDir, fmt: str
) -> None:
    put(tables["interventions"], 1, "to_category", "web")
    directory = make_dir(tables, fmt)
    problem = only(check(directory), "interventions", "to_category", "same_category")
    example = single_example(problem)
    assert example == Example(data_file(directory, "interventions", fmt), 2, "I2", "'web'")


@FORMATS
@pytest.mark.parametrize(
    ("column", "row", "value", "fix"),
    [("category", 0, "webb", "web"), ("to_category", 1, "desgn", "design")],
)
def test_interventions_unknown_category(
    tables: Tables, make_dir: MakeDir, fmt: str, column: str, row: int, value: str, fix: str
) -> None:
    put(tables["interventions"], row, column, value)
    directory = make_dir(tables, fmt)
    problem = only(check(directory), "interventions", column, "unknown_category")
    example = single_example(problem)
    assert example == Example(
        data_file(directory, "interventions", fmt),
        row + 1,
        None,
        f"{value!r} (1 rows); did you mean {fix!r}?",
    )


@FORMATS
def test_interventions_duplicate_id(tables: Tables, make_dir: MakeDir, fmt: str) -> None:
    put(tables["interventions"], 2, "intervention_id", "I1")
    directory = make_dir(tables, fmt)
    problem = only(check(directory), "interventions", "intervention_id", "duplicate")
    example = single_example(problem)
    assert example == Example(
        data_file(directory, "interventions", fmt), None, "I1", "2 rows: 1, 3"
    )


@FORMATS
def test_interventions_cost_not_positive(tables: Tables, make_dir: MakeDir, fmt: str) -> None:
    put(tables["interventions"], 1, "cost_per_unit", 0.0)
    directory = make_dir(tables, fmt)
    problem = only(check(directory), "interventions", "cost_per_unit", "not_positive")
    example = single_example(problem)
    assert example == Example(data_file(directory, "interventions", fmt), 2, "I2", "'0.0'")


# ------------------------------------------------------------------------ cross-table


@FORMATS
def test_misspelled_supply_category_leaves_both_sides_one_sided(
    tables: Tables, make_dir: MakeDir, fmt: str
) -> None:
    supply = tables["supply"]
    supply.loc[(supply["category"] == "design") & (supply["tier"] == "entry"), "category"] = (
        "desgin"
    )
    report = check(make_dir(tables, fmt))
    assert rules(report) == {
        ("supply", "category/tier", "segment_without_jobs"),
        ("jobs", "category/tier", "segment_without_supply"),
    }, report.summary()
    problems = {p.rule: p for p in report.problems}
    assert single_example(problems["segment_without_jobs"]) == Example(
        id="desgin/entry", value="6 supply rows; jobs has 'design/entry'"
    )
    assert single_example(problems["segment_without_supply"]) == Example(
        id="design/entry", value="6 jobs rows; supply has 'desgin/entry'"
    )


def test_segment_without_supply_when_a_segment_has_no_supply_at_all(
    tables: Tables, make_dir: MakeDir
) -> None:
    supply = tables["supply"]
    tables["supply"] = supply[supply["tier"] != "expert"].reset_index(drop=True)
    problem = only(check(make_dir(tables)), "jobs", "category/tier", "segment_without_supply")
    assert problem.count == 2
    assert [e.id for e in problem.examples] == ["design/expert", "web/expert"]


def test_segments_use_region_when_it_is_a_segment_key(tables: Tables, make_dir: MakeDir) -> None:
    # the fixture's freelancers are all in "eu" while half the jobs come from "na"
    assert check(make_dir(tables)).ok
    problem = only(
        check(make_dir(tables), config=REGION),
        "jobs",
        "category/tier/region",
        "segment_without_supply",
    )
    assert problem.count == 4
    assert [e.id for e in problem.examples] == [
        "design/entry/na",
        "design/expert/na",
        "web/entry/na",
        "web/expert/na",
    ]
    tables["jobs"]["region"] = "eu"
    assert check(make_dir(tables), config=REGION).ok


def test_bad_tier_is_not_reported_again_as_a_segment(tables: Tables, make_dir: MakeDir) -> None:
    for name in ("jobs", "supply"):
        frame = tables[name]
        frame.loc[frame["tier"] == "expert", "tier"] = "Expert"
    report = check(make_dir(tables))
    assert rules(report) == {("jobs", "tier", "not_allowed"), ("supply", "tier", "not_allowed")}
    assert [p.count for p in report.problems] == [12, 12]


# --------------------------------------------------------- every problem, all at once


def test_every_problem_is_reported_in_one_report(tables: Tables, make_dir: MakeDir) -> None:
    put(tables["jobs"], 1, "hours", 0.0)
    put(tables["jobs"], 2, "tier", "senior")
    put(tables["supply"], 3, "available_hours", -2.0)
    add_edge(tables, "design", "design", 1.0)
    tables["shifters"] = tables["shifters"].drop(index=2)
    tables["supply"] = tables["supply"].rename(columns={"ask_rate": "rate"})
    directory = make_dir(tables)
    (directory / "interventions.csv").rename(directory / "interventions.parquet")
    tables["interventions"].to_csv(directory / "interventions.csv", index=False)
    report = check(directory)
    assert rules(report) == {
        ("jobs", "hours", "not_positive"),
        ("jobs", "tier", "not_allowed"),
        ("supply", "available_hours", "negative"),
        ("adjacency", "to_category", "self_loop"),
        ("shifters", "week", "missing_weeks"),
        ("supply", "ask_rate", "missing_column"),
        ("interventions", None, "ambiguous"),
    }, report.summary()
    assert report.rows_affected == 7


def test_every_problem_is_reported_in_one_report_per_table(
    tables: Tables, make_dir: MakeDir
) -> None:
    put(tables["interventions"], 0, "kind", "hire")
    put(tables["interventions"], 1, "max_units", 2.5)
    put(tables["interventions"], 2, "cost_per_unit", -1.0)
    put(tables["interventions"], 2, "category", "dezign")
    put(tables["interventions"], 1, "intervention_id", "I3")
    report = check(make_dir(tables))
    assert rules(report) == {
        ("interventions", "kind", "not_allowed"),
        ("interventions", "max_units", "not_integer"),
        ("interventions", "cost_per_unit", "not_positive"),
        ("interventions", "category", "unknown_category"),
        ("interventions", "intervention_id", "duplicate"),
    }, report.summary()


# ------------------------------------------------------------------------- truncation


def many_jobs(tables: Tables, n: int) -> pd.DataFrame:
    """``n`` valid jobs cycling through the fixture's jobs, with unique ids."""
    jobs = tables["jobs"]
    repeated = jobs.iloc[np.arange(n) % len(jobs)].reset_index(drop=True)
    repeated["job_id"] = [f"J{i + 1:06d}" for i in range(n)]
    return repeated


def test_many_bad_rows_give_one_problem_with_the_first_examples(
    tables: Tables, make_dir: MakeDir
) -> None:
    jobs = many_jobs(tables, 10_000)
    jobs["hours"] = -1.0
    tables["jobs"] = jobs
    report = check(make_dir(tables))
    problem = only(report, "jobs", "hours", "not_positive")
    assert problem.count == 10_000
    assert [(e.row, e.id) for e in problem.examples] == [(r, f"J{r:06d}") for r in range(1, 6)]
    assert "... and 9,995 more" in report.summary()
    assert "10,000x" in report.summary()


def test_max_examples_is_respected(tables: Tables, make_dir: MakeDir) -> None:
    jobs = many_jobs(tables, 100)
    jobs["hours"] = 0.0
    tables["jobs"] = jobs
    report = check(make_dir(tables), max_examples=2)
    problem = only(report, "jobs", "hours", "not_positive")
    assert [e.row for e in problem.examples] == [1, 2]
    assert "... and 98 more" in report.summary()


# ------------------------------------------------------------------ partitioned folders


def test_parquet_folder_loads_as_one_table(tables: Tables, make_dir: MakeDir) -> None:
    jobs = tables.pop("jobs")
    directory = make_dir(tables, "parquet")
    (directory / "jobs").mkdir()
    jobs.iloc[:10].to_parquet(directory / "jobs" / "part-0.parquet", index=False)
    jobs.iloc[10:].to_parquet(directory / "jobs" / "part-1.parquet", index=False)
    report = check(directory)
    assert report.ok, report.summary()
    info = report.tables[0]
    assert (info.name, info.source, info.rows) == ("jobs", "jobs/ (2 parquet files)", 24)
    assert len(report.checked().table("jobs")) == 24


def test_parquet_folder_example_names_its_file_and_row(tables: Tables, make_dir: MakeDir) -> None:
    jobs = tables.pop("jobs")
    put(jobs, 12, "hours", 0.0)  # third row of part-1
    directory = make_dir(tables, "parquet")
    (directory / "jobs").mkdir()
    jobs.iloc[:10].to_parquet(directory / "jobs" / "part-0.parquet", index=False)
    jobs.iloc[10:].to_parquet(directory / "jobs" / "part-1.parquet", index=False)
    example = single_example(only(check(directory), "jobs", "hours", "not_positive"))
    assert example == Example("jobs/part-1.parquet", 3, "J013", "'0.0'")


def test_duplicate_across_folder_files_names_both_files(tables: Tables, make_dir: MakeDir) -> None:
    jobs = tables.pop("jobs")
    put(jobs, 15, "job_id", "J002")  # row 6 of part-1 repeats row 2 of part-0
    directory = make_dir(tables, "parquet")
    (directory / "jobs").mkdir()
    jobs.iloc[:10].to_parquet(directory / "jobs" / "part-0.parquet", index=False)
    jobs.iloc[10:].to_parquet(directory / "jobs" / "part-1.parquet", index=False)
    example = single_example(only(check(directory), "jobs", "job_id", "duplicate"))
    assert "part-1.parquet" in example.describe()


def write_nested_parts(directory: Path, jobs: pd.DataFrame, fmt: str) -> list[Path]:
    """jobs/2023/part.<fmt> (rows 1-10) and jobs/2024/part.<fmt> (rows 11-24): the
    same file name in two sub-folders, as partitioned exports are laid out."""
    paths = []
    for folder, part in (("2023", jobs.iloc[:10]), ("2024", jobs.iloc[10:])):
        (directory / "jobs" / folder).mkdir(parents=True)
        path = directory / "jobs" / folder / f"part.{fmt}"
        if fmt == "parquet":
            part.to_parquet(path, index=False)
        else:
            part.to_csv(path, index=False)
        paths.append(path)
    return paths


def test_nested_parts_with_the_same_name_are_told_apart(tables: Tables, make_dir: MakeDir) -> None:
    jobs = tables.pop("jobs")
    put(jobs, 15, "hours", 0.0)  # row 6 of jobs/2024/part.parquet
    directory = make_dir(tables, "parquet")
    write_nested_parts(directory, jobs, "parquet")
    example = single_example(only(check(directory), "jobs", "hours", "not_positive"))
    assert (example.file, example.row) == ("jobs/2024/part.parquet", 6)


def test_malformed_lines_shift_no_rows_in_a_same_named_part(
    tables: Tables, make_dir: MakeDir
) -> None:
    jobs = tables.pop("jobs")
    put(jobs, 15, "hours", 0.0)  # row 6 of jobs/2024/part.csv
    directory = make_dir(tables)
    first, _ = write_nested_parts(directory, jobs, "csv")
    rewrite_csv_lines(first, lambda ls: [ls[0], ls[1] + ",x", ls[2] + ",x", *ls[3:]])
    report = check(directory)
    assert rules(report) == {
        ("jobs", None, "malformed_line"),
        ("jobs", "hours", "not_positive"),
    }, report.summary()
    malformed, hours = report.problems
    assert [e.file for e in malformed.examples] == ["jobs/2023/part.csv"] * 2
    assert (single_example(hours).file, single_example(hours).row) == ("jobs/2024/part.csv", 6)


@pytest.mark.parametrize(
    "fmt",
    [
        "csv",
        "parquet",
    ],
)
def test_folder_parts_may_differ_in_extra_columns(
    tables: Tables, make_dir: MakeDir, fmt: str
) -> None:
    jobs = tables.pop("jobs")
    directory = make_dir(tables, fmt)
    later = jobs.iloc[10:].assign(notes="added in a later export")
    write_tables(directory / "jobs", {"part-0": jobs.iloc[:10], "part-1": later}, fmt)
    report = check(directory)
    assert report.ok, report.summary()
    assert report.tables[0].rows == 24


def test_folder_mixing_formats_is_unsupported(tables: Tables, make_dir: MakeDir) -> None:
    jobs = tables.pop("jobs")
    directory = make_dir(tables, "parquet")
    (directory / "jobs").mkdir()
    jobs.iloc[:10].to_parquet(directory / "jobs" / "part-0.parquet", index=False)
    jobs.iloc[10:].to_csv(directory / "jobs" / "part-1.csv", index=False)
    only(check(directory), "jobs", None, "unsupported_format")


def test_empty_folder_is_an_empty_file(tables: Tables, make_dir: MakeDir) -> None:
    del tables["jobs"]
    directory = make_dir(tables, "parquet")
    (directory / "jobs").mkdir()
    only(check(directory), "jobs", None, "empty_file")


# ---------------------------------------------------------------------- serialisation


@pytest.fixture
def broken_report(tables: Tables, make_dir: MakeDir) -> ValidationReport:
    put(tables["jobs"], 0, "hours", 0.0)
    put(tables["jobs"], 1, "hours", -1.0)
    put(tables["supply"], 0, "week", dt.date(2024, 1, 2))
    return check(make_dir(tables))


def test_to_json_lists_problems_with_examples(broken_report: ValidationReport) -> None:
    data = json.loads(broken_report.to_json())
    assert data["ok"] is False
    assert data["as_of"] == AS_OF.isoformat()
    assert data["problem_count"] == 2
    assert data["rows_affected"] == 3
    assert data["tables"]["jobs"] == {"source": "jobs.csv", "rows": 24}
    hours = next(p for p in data["problems"] if p["column"] == "hours")
    assert (hours["table"], hours["rule"], hours["count"]) == ("jobs", "not_positive", 2)
    assert hours["examples"] == [
        {"file": "jobs.csv", "row": 1, "id": "J001", "value": "'0.0'"},
        {"file": "jobs.csv", "row": 2, "id": "J002", "value": "'-1.0'"},
    ]


def test_to_frame_has_one_row_per_problem(broken_report: ValidationReport) -> None:
    frame = broken_report.to_frame()
    assert list(frame.columns) == ["table", "column", "rule", "count", "message", "examples"]
    assert len(frame) == len(broken_report.problems) == 2
    assert set(zip(frame["table"], frame["column"], frame["rule"], strict=True)) == rules(
        broken_report
    )
    hours = frame[frame["column"] == "hours"].iloc[0]
    assert hours["examples"] == "jobs.csv, row 1, id J001: '0.0'; jobs.csv, row 2, id J002: '-1.0'"


def test_to_frame_of_a_clean_report_is_empty(tables: Tables, make_dir: MakeDir) -> None:
    frame = check(make_dir(tables)).to_frame()
    assert frame.empty
    assert list(frame.columns) == ["table", "column", "rule", "count", "message", "examples"]


def test_summary_names_every_problem(broken_report: ValidationReport) -> None:
    text = broken_report.summary()
    assert str(broken_report) == text
    assert "INVALID: 2 problem(s), 3 row(s) or value(s) affected" in text
    assert "- jobs.hours [not_positive] 2x: hours must be > 0" in text
    assert "- supply.week [not_monday] 1x" in text
    assert "jobs.csv, row 2, id J002: '-1.0'" in text


def test_repr_html(broken_report: ValidationReport, make_dir: MakeDir) -> None:
    """The notebook view: the status and the tables read (the summary's heading), then one
    table of the problems."""
    page = broken_report._repr_html_()
    assert "INVALID: 2 problem(s)" in page and "jobs" in page
    assert page.count("<table") == 1
    assert "not_positive" in page
    clean = check(make_dir(valid_tables()))._repr_html_()
    assert "OK: every table meets the data contract" in clean


def test_missing_dir_report_serialises(tmp_path: Path) -> None:
    report = check(tmp_path / "nowhere")
    data = json.loads(report.to_json())
    assert data["problems"][0]["rule"] == "missing_dir"
    assert data["tables"] == {}
    assert "missing_dir" in report._repr_html_()
    assert len(report.to_frame()) == 1


# ------------------------------------------------------------------------ performance


@pytest.mark.slow
def test_a_million_parquet_jobs_validate_quickly(tables: Tables, make_dir: MakeDir) -> None:
    n = 1_000_000
    i = np.arange(n)
    segments = tables["supply"][["category", "tier"]].drop_duplicates().to_numpy()
    segment = segments[i % len(segments)]
    week = np.array(WEEKS, dtype="datetime64[D]")[(i // len(segments)) % len(WEEKS)]
    hired = i % 3 != 0
    jobs = pa.table(
        {
            "job_id": pa.array([f"J{k:07d}" for k in range(n)]),
            "posted_at": pa.array(week + (i % 5).astype("timedelta64[D]")),
            "category": pa.array(segment[:, 0].tolist()),
            "tier": pa.array(segment[:, 1].tolist()),
            "hours": pa.array(1.0 + (i % 40), type=pa.float64()),
            "budget_rate": pa.array(20.0 + (i % 30), type=pa.float64()),
            "hired": pa.array(hired),
            "hired_rate": pa.array(np.where(hired, 25.0, np.nan), mask=~hired),
        }
    )
    del tables["jobs"]
    directory = make_dir(tables, "parquet")
    pq.write_table(jobs, directory / "jobs.parquet")

    start = time.perf_counter()
    report = check(directory)
    elapsed = time.perf_counter() - start

    assert report.ok, report.summary()
    assert report.tables[0].rows == n
    # smoke bound for a shared 2-core machine; the real numbers live in benchmarks/
    assert elapsed < 20.0, f"validating {n:,} jobs took {elapsed:.1f} s"


def test_semicolon_separated_csv_is_named(tables: Tables, make_dir: MakeDir) -> None:
    directory = make_dir(tables)
    tables["supply"].to_csv(directory / "supply.csv", index=False, sep=";")
    problem = only(check(directory), "supply", None, "unreadable")
    assert "looks ';'-separated" in problem.message


def test_crlf_line_endings_are_read(tables: Tables, make_dir: MakeDir) -> None:
    directory = make_dir(tables)
    path = directory / "jobs.csv"
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    report = check(directory)
    assert report.ok, report.summary()
    assert report.tables[0].rows == 24
