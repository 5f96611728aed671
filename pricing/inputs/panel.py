"""Aggregation of checked inputs to the segment × week panel (DESIGN.md §3).

For segment s (the configured keys, ``category, tier`` by default) and ISO week t
(Monday start; a job's week is the week of ``posted_at``):

    jobs_posted_st     = #jobs posted
    jobs_hired_st      = #jobs with hired = true
    hours_demanded_st  = QD_st = Σ_jobs hours
    hours_hired_st     = Σ_hired jobs hours
    rate_st            = p_st = exp( Σ_hired hours·log hired_rate / Σ_hired hours )
                         (hours-weighted geometric mean of hired rates; empty without hires)
    budget_rate_st     = exp( Σ_jobs hours·log budget_rate / Σ_jobs hours )
    hours_supplied_st  = QS_st = Σ_freelancers available_hours
    active_freelancers = #freelancers with available_hours > 0
    ask_rate_st        = exp( Σ available_hours·log ask_rate / Σ available_hours )
    fill_rate_st       = jobs_hired_st / jobs_posted_st

The geometric mean matches the log-linear curves fitted downstream: log p_st is the
hours-weighted mean of log rates.

The panel is the full grid of every segment × every week from the first to the last
week in the data, so no segment-week disappears: weeks without jobs, hires or supply are
kept with zero counts, an empty rate and a flag (``no_jobs``, ``no_hires``,
``no_supply``). Shifters are joined by week (and category when the shifters table has
one).

All aggregation runs in DuckDB, partitioned on a cluster (:func:`build_panel`); only
the (small) panel comes back as a pandas frame.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pricing.cluster import LOCAL, Executor, plan_parts
from pricing.config import RunConfig
from pricing.display import Display, number, records, share
from pricing.display import table as text_table
from pricing.inputs.io import TableSource, quote_identifier
from pricing.inputs.validation import CheckedInputs, typed_views

FLAGS = ("no_jobs", "no_hires", "no_supply")


@dataclass(frozen=True)
class Panel(Display):
    """The segment × week panel, one row per segment-week."""

    frame: pd.DataFrame
    segment_keys: tuple[str, ...]
    shifter_columns: tuple[str, ...]
    as_of: dt.date

    @property
    def n_segments(self) -> int:
        return int(self.frame.groupby(list(self.segment_keys)).ngroups)

    @property
    def weeks(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(sorted(self.frame["week"].unique()))

    def to_frame(self) -> pd.DataFrame:
        return self.frame.copy()

    def through(self, as_of: dt.date) -> Panel:
        """The panel as :func:`build_panel` aggregates it when cut at the Sunday
        ``as_of``: the weeks up to the one ``as_of`` ends, and the segments with a job
        posted or hours offered by then. (A segment whose only rows by then offer zero
        hours is left out here, and kept with empty weeks by :func:`build_panel`; it has
        no curve either way.)"""
        if as_of.isoweekday() != 7:
            raise ValueError(f"a panel ends on a Sunday, not on {as_of.isoformat()}")
        keys = list(self.segment_keys)
        cut = self.frame[self.frame["week"] <= pd.Timestamp(as_of - dt.timedelta(days=6))]
        active = (cut["jobs_posted"] > 0) | (cut["hours_supplied"] > 0)
        seen = cut.loc[active, keys].drop_duplicates()
        kept = cut.merge(seen, on=keys, how="inner")
        return Panel(kept.reset_index(drop=True), self.segment_keys, self.shifter_columns, as_of)

    def segments(self) -> pd.DataFrame:
        """One row per segment: totals over the panel and its most recent observed rate.

        ``demand_supply_ratio`` = Σ hours demanded / Σ hours supplied; above 1 the segment
        is short of supply at today's rates, below 1 short of demand.
        """
        keys = list(self.segment_keys)
        f = self.frame.assign(
            _hired_week=lambda d: d["jobs_hired"] > 0, _flagged_week=lambda d: d["flags"] != ""
        )
        grouped = f.groupby(keys, sort=True)
        out = grouped.agg(
            weeks=("week", "size"),
            weeks_with_hires=("_hired_week", "sum"),
            flagged_weeks=("_flagged_week", "sum"),
            jobs_posted=("jobs_posted", "sum"),
            jobs_hired=("jobs_hired", "sum"),
            hours_demanded=("hours_demanded", "sum"),
            hours_supplied=("hours_supplied", "sum"),
        )
        out["fill_rate"] = out["jobs_hired"] / out["jobs_posted"].where(out["jobs_posted"] > 0)
        out["demand_supply_ratio"] = out["hours_demanded"] / out["hours_supplied"].where(
            out["hours_supplied"] > 0
        )
        hired = f[f["rate"].notna()].sort_values("week")
        out["last_rate"] = hired.groupby(keys)["rate"].last()
        out["last_rate_week"] = hired.groupby(keys)["week"].last()
        return out.reset_index()

    def to_dict(self) -> dict[str, Any]:
        """Size, flags, shifters and the per-segment summary."""
        segments = self.segments()
        return {
            "as_of": self.as_of.isoformat(),
            "segment_keys": list(self.segment_keys),
            "segments": len(segments),
            "weeks": len(self.weeks),
            "segment_weeks": len(self.frame),
            "flags": {
                flag: int(self.frame["flags"].str.contains(flag, regex=False).sum())
                for flag in FLAGS
            },
            "shifters": list(self.shifter_columns),
            "segment_summary": records(segments),
        }

    def summary(self, max_rows: int = 30) -> str:
        f = self.frame
        seg = self.segments()
        weeks = self.weeks
        counts = {flag: int(f["flags"].str.contains(flag, regex=False).sum()) for flag in FLAGS}
        lines = [
            f"Panel: {len(seg):,} segments ({', '.join(self.segment_keys)}) x {len(weeks)} weeks "
            f"({weeks.min():%Y-%m-%d} .. {weeks.max():%Y-%m-%d}), {len(f):,} segment-weeks",
            f"  jobs posted {int(f['jobs_posted'].sum()):,}, hired {int(f['jobs_hired'].sum()):,}; "
            f"hours demanded {f['hours_demanded'].sum():,.0f}, "
            f"supplied {f['hours_supplied'].sum():,.0f}",
            "  flagged segment-weeks: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()),
            f"  shifters joined: {', '.join(self.shifter_columns) or 'none'}",
        ]
        if not max_rows:
            return "\n".join(lines)
        lines.append("")
        shown = seg.head(max_rows)
        cols = [
            *self.segment_keys,
            "weeks_with_hires",
            "jobs_posted",
            "hours_demanded",
            "hours_supplied",
            "demand_supply_ratio",
            "fill_rate",
            "last_rate",
        ]
        whole = {c: (lambda v: number(v, "{:,.0f}")) for c in ("hours_demanded", "hours_supplied")}
        lines.append(text_table(shown[cols], "{:,.2f}", {**whole, "fill_rate": share}))
        if len(seg) > max_rows:
            lines.append(f"... {len(seg) - max_rows:,} more segments (see to_frame() / --out)")
        return "\n".join(lines)

    def html_frame(self) -> pd.DataFrame:
        return self.segments()


def build_panel(
    inputs: CheckedInputs, through: dt.date | None = None, executor: Executor = LOCAL
) -> Panel:
    """Aggregate checked inputs to the segment × week panel (see module docstring).

    ``through`` (a Sunday) ends the panel with the week it closes: jobs posted later and
    supply weeks starting later are left out (count them with :func:`rows_after`).

    The aggregation is two-stage so that it partitions: per part of the input, the sums
    of each segment-week (counts, hours, and hours × log rate for the geometric means);
    then the parts' sums are added and the means taken. Locally the one part is the
    whole of each table, in this process's DuckDB; on a remote ``executor`` each part is
    a group of a table's files, aggregated by a worker's own DuckDB (when a table has
    two files or more: a single file is read here). Sums add in another
    order across parts, so the two agree to rounding (~1e-15 relative).
    """
    con = inputs.con
    keys = inputs.config.segment_keys
    files = max(len(inputs.sources[t].paths) for t in ("jobs", "supply"))
    runner, count = plan_parts(executor, files, 1)
    if runner.remote:
        parts = _parts(inputs, through, count)
        sums = runner.map(_part_sums, parts)
        for table in ("jobs", "supply"):
            frames = [f for p, f in zip(parts, sums, strict=True) if p.table == table]
            con.register(f"{table}_sums", pd.concat(frames, ignore_index=True))
    else:
        for table in ("jobs", "supply"):
            sql = _sums_sql(table, keys, through)
            con.execute(f"CREATE OR REPLACE TEMP VIEW {table}_sums AS {sql}")
    try:
        frame = con.execute(_combine_sql(inputs)).df()
    finally:
        for table in ("jobs", "supply"):
            if runner.remote:
                con.unregister(f"{table}_sums")
            else:
                con.execute(f"DROP VIEW {table}_sums")
    frame["week"] = pd.to_datetime(frame["week"])
    for column in ("jobs_posted", "jobs_hired", "active_freelancers"):
        frame[column] = frame[column].astype("int64")
    return Panel(frame, keys, inputs.shifter_columns, through or inputs.as_of)


def _sums_sql(table: str, keys: tuple[str, ...], through: dt.date | None) -> str:
    """Per segment-week of the view ``table``: the sums the panel is made of."""
    k = ", ".join(keys)
    jobs_where, supply_where = _window(through)
    if table == "jobs":
        return f"""
        SELECT {k}, CAST(date_trunc('week', posted_at) AS DATE) AS week,
               count(*) AS jobs_posted,
               count(*) FILTER (WHERE hired) AS jobs_hired,
               sum(hours) AS hours_demanded,
               coalesce(sum(hours) FILTER (WHERE hired), 0) AS hours_hired,
               sum(hours * ln(hired_rate)) FILTER (WHERE hired) AS log_rate_hours,
               sum(hours * ln(budget_rate)) AS log_budget_hours
        FROM jobs {jobs_where} GROUP BY ALL"""
    return f"""
        SELECT {k}, week,
               sum(available_hours) AS hours_supplied,
               count(*) FILTER (WHERE available_hours > 0) AS active_freelancers,
               coalesce(sum(available_hours) FILTER (WHERE available_hours > 0), 0)
                   AS ask_hours,
               sum(available_hours * ln(ask_rate)) FILTER (WHERE available_hours > 0)
                   AS log_ask_hours
        FROM supply {supply_where} GROUP BY ALL"""


def _combine_sql(inputs: CheckedInputs) -> str:
    """The panel from the parts' sums (views ``jobs_sums``, ``supply_sums``): sums added
    per segment-week, means taken, the full segment × week grid, shifters joined."""
    keys = inputs.config.segment_keys
    k = ", ".join(keys)
    shifters = inputs.shifter_columns
    by_category = "shifters" in inputs.tables and _has_column(inputs, "shifters", "category")
    shifter_join = ""
    shifter_select = ""
    if shifters:
        on = "sh.week = g.week" + (" AND sh.category = g.category" if by_category else "")
        shifter_join = f"LEFT JOIN shifters sh ON {on}"
        # names from the data: quoted, whatever validation allowed
        shifter_select = ", " + ", ".join(f"sh.{quote_identifier(c)}" for c in shifters)
    return f"""
    WITH d AS (
        SELECT {k}, CAST(week AS DATE) AS week,
               sum(jobs_posted) AS jobs_posted,
               sum(jobs_hired) AS jobs_hired,
               sum(hours_demanded) AS hours_demanded,
               sum(hours_hired) AS hours_hired,
               exp(sum(log_rate_hours) / nullif(sum(hours_hired), 0)) AS rate,
               exp(sum(log_budget_hours) / sum(hours_demanded)) AS budget_rate
        FROM jobs_sums GROUP BY ALL
    ), s AS (
        SELECT {k}, CAST(week AS DATE) AS week,
               sum(hours_supplied) AS hours_supplied,
               sum(active_freelancers) AS active_freelancers,
               exp(sum(log_ask_hours) / nullif(sum(ask_hours), 0)) AS ask_rate
        FROM supply_sums GROUP BY ALL
    ), segs AS (
        SELECT DISTINCT {k} FROM d UNION SELECT DISTINCT {k} FROM s
    ), span AS (
        SELECT min(week) AS lo, max(week) AS hi
        FROM (SELECT week FROM d UNION ALL SELECT week FROM s)
    ), weeks AS (
        SELECT CAST(unnest(generate_series(lo, hi, INTERVAL 7 DAY)) AS DATE) AS week FROM span
    ), g AS (
        SELECT * FROM segs CROSS JOIN weeks
    )
    SELECT {", ".join(f"g.{c}" for c in keys)}, g.week,
           coalesce(d.jobs_posted, 0) AS jobs_posted,
           coalesce(d.jobs_hired, 0) AS jobs_hired,
           coalesce(d.hours_demanded, 0.0) AS hours_demanded,
           coalesce(d.hours_hired, 0.0) AS hours_hired,
           coalesce(s.hours_supplied, 0.0) AS hours_supplied,
           coalesce(s.active_freelancers, 0) AS active_freelancers,
           d.rate, d.budget_rate, s.ask_rate,
           CAST(d.jobs_hired AS DOUBLE) / d.jobs_posted AS fill_rate,
           concat_ws(',',
               CASE WHEN coalesce(d.jobs_posted, 0) = 0 THEN 'no_jobs' END,
               CASE WHEN coalesce(d.jobs_hired, 0) = 0 THEN 'no_hires' END,
               CASE WHEN coalesce(s.hours_supplied, 0) = 0 THEN 'no_supply' END) AS flags
           {shifter_select}
    FROM g
    LEFT JOIN d USING ({k}, week)
    LEFT JOIN s USING ({k}, week)
    {shifter_join}
    ORDER BY {", ".join(f"g.{c}" for c in keys)}, g.week
    """


@dataclass(frozen=True)
class _Part:
    """A group of one table's files, aggregated by one task."""

    table: str
    source: TableSource
    columns: tuple[str, ...]
    config: RunConfig
    through: dt.date | None


def _parts(inputs: CheckedInputs, through: dt.date | None, count: int) -> list[_Part]:
    """Each of jobs and supply in up to ``count`` groups of whole files, contiguous and
    of about equal bytes (a table in one file is one part)."""
    out = []
    for table in ("jobs", "supply"):
        source = inputs.sources[table]
        size = np.array([p.stat().st_size for p in source.paths], dtype=np.float64)
        share = np.cumsum(size) / size.sum()
        group = np.minimum((share * count - 1e-9).astype(np.int64), count - 1)
        for g in np.unique(group).tolist():
            # absolute: a worker on another machine does not share this process's cwd
            paths = tuple(p.resolve() for p, k in zip(source.paths, group, strict=True) if k == g)
            sub = TableSource(source.name, source.root.resolve(), paths, source.format)
            out.append(_Part(table, sub, inputs.columns[table], inputs.config, through))
    return out


def _part_sums(part: _Part) -> pd.DataFrame:
    """A task: the segment-week sums of one part, read by its own DuckDB."""
    con = typed_views({part.table: part.source}, {part.table: part.columns}, part.config)
    # a task holds one of its worker's threads: one DuckDB thread, not one per core
    con.execute("SET threads = 1")
    try:
        return con.execute(_sums_sql(part.table, part.config.segment_keys, part.through)).df()
    finally:
        con.close()


def _window(through: dt.date | None) -> tuple[str, str]:
    """WHERE clauses keeping the jobs and supply weeks up to the week ``through`` ends."""
    if through is None:
        return "", ""
    if through.isoweekday() != 7:
        raise ValueError(f"a panel ends on a Sunday, not on {through.isoformat()}")
    last_monday = through - dt.timedelta(days=6)
    return (
        f"WHERE posted_at <= DATE '{through.isoformat()}'",
        f"WHERE week <= DATE '{last_monday.isoformat()}'",
    )


def rows_after(inputs: CheckedInputs, through: dt.date) -> dict[str, int]:
    """Jobs and supply rows that :func:`build_panel` leaves out when it ends at ``through``."""
    jobs_where, supply_where = _window(through)
    keep = {"jobs": jobs_where, "supply": supply_where}
    return {
        table: int(
            inputs.con.execute(
                f"SELECT count(*) FROM {table} WHERE NOT ({where.removeprefix('WHERE ')})"
            ).fetchall()[0][0]
        )
        for table, where in keep.items()
    }


def last_complete_week(inputs: CheckedInputs) -> dt.date:
    """The Sunday that ends the last week the jobs table covers to its final day: the
    Sunday on or before the latest ``posted_at``."""
    latest: dt.date = inputs.con.execute("SELECT max(posted_at) FROM jobs").fetchall()[0][0]
    return latest - dt.timedelta(days=latest.isoweekday() % 7)


def _has_column(inputs: CheckedInputs, table: str, column: str) -> bool:
    return column in {r[0] for r in inputs.con.execute(f'DESCRIBE "{table}"').fetchall()}
