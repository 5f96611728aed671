"""Reading and looking after the run store: ``history``, ``sql`` and ``store check``.

Each reads a :class:`~pricing.store.snapshot.Snapshot`: the store held for reading (a
re-run meanwhile removes nothing it reads) and every current build checked. A damaged
run is left out and named on stderr, and the command reads the others.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from pricing.cli.exits import InvalidInput
from pricing.cli.options import (
    export_file,
    force_option,
    format_option,
    json_option,
    quiet_option,
    store_option,
)
from pricing.cli.output import echo, write_table
from pricing.cli.progress import Progress
from pricing.display import signed_share, table

if TYPE_CHECKING:
    from pricing.store.snapshot import Snapshot

#: rows of a table shown whole; longer text is cut in the middle (--json has it all)
_CELL = 60


def _open(store_dir: Path, progress: Progress, deep: bool = False) -> Snapshot:
    """The store at ``store_dir``, held and checked; a StoreError (exit 3) when it does
    not exist or is not a run store."""
    from pricing.store.snapshot import Snapshot
    from pricing.store.store import RunStore

    progress(f"checking the run store {store_dir}" + (" (every row)" if deep else ""))
    snapshot = Snapshot.open(RunStore(store_dir), deep)
    progress.done()
    return snapshot


def _left_out(snapshot: Snapshot, progress: Progress) -> None:
    for damage in snapshot.damage:
        progress.warn(f"{damage}; left out (`pricing store check` lists all damage)")


def _table(frame: object) -> str:
    """A frame as text, long cells cut in the middle (…) so that rows stay rows."""
    import pandas as pd

    assert isinstance(frame, pd.DataFrame)
    shown = frame.map(lambda v: v if not isinstance(v, str) or len(v) <= _CELL else _cut(v))
    return table(shown)


def _cut(text: str) -> str:
    half = (_CELL - 1) // 2
    return text[:half] + "…" + text[-half:]


@click.command()
@store_option
@click.option(
    "--segment",
    default=None,
    help="A segment as CATEGORY/TIER (…/REGION when runs split by region): its guidance "
    "and equilibrium over the runs.",
)
@json_option("Print the table as JSON on stdout.")
@quiet_option
def history(store_dir: Path, segment: str | None, as_json: bool, quiet: bool) -> None:
    """List the runs in the store (and the scenarios solved against them), or one
    segment's guidance over time. A damaged run is left out and named on stderr. Exits
    3 when the store or the segment does not exist."""
    progress = Progress(quiet)
    with _open(store_dir, progress) as snapshot:
        if segment is not None:
            keys = snapshot.segment_keys()
            parts = segment.split("/")
            if len(parts) != len(keys):
                raise click.UsageError(
                    f"--segment {segment!r} must name {'/'.join(k.upper() for k in keys)}"
                )
            frame = snapshot.segment_history(dict(zip(keys, parts, strict=True)))
        else:
            runs, scenarios = snapshot.runs(), snapshot.scenarios()
        _left_out(snapshot, progress)
    if segment is not None:
        if as_json:
            echo(frame.to_json(orient="records", date_format="iso", indent=2))
        else:
            echo(f"Segment {segment} over {len(frame)} run(s):")
            echo(table(frame, "{:,.2f}", {"gap_frac": signed_share}))
        return
    if as_json:
        payload = {
            "runs": json.loads(runs.to_json(orient="records", date_format="iso")),
            "scenarios": json.loads(scenarios.to_json(orient="records", date_format="iso")),
        }
        echo(json.dumps(payload, indent=2))
    elif runs.empty:
        echo(f"No runs in {store_dir} yet.")
    else:
        echo(f"{len(runs)} run(s) in {store_dir}:")
        echo(_table(runs.drop(columns=["path", "data_dir"])))
        if not scenarios.empty:
            echo(f"\n{len(scenarios)} scenario result(s):")
            echo(_table(scenarios.drop(columns=["path"])))


@click.command()
@click.argument("query")
@store_option
@click.option(
    "--rows",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Rows shown in the text output.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Write every row of the result to this file (atomically) instead of printing "
    "it; an existing file is replaced only with --force.",
)
@format_option
@force_option
@json_option("Print the result as JSON records (with --out: what was written).")
@quiet_option
def sql(
    query: str,
    store_dir: Path,
    rows: int,
    out: Path | None,
    fmt: str | None,
    force: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    """Run one read-only DuckDB SELECT over the run store.

    Views: runs, curves, equilibrium, flows, guidance, interventions, plan_categories,
    plan_constraints, market, edges, catalogue (one row per segment and run, with its
    as_of), and scenarios, scenario_segments, scenario_totals, scenario_equilibrium,
    scenario_flows, scenario_interventions, scenario_plan_categories,
    scenario_plan_constraints (with baseline and scenario), and backtest_scores,
    backtest_segments, backtest_truth (with as_of). Example:
    pricing sql "SELECT as_of, avg(gap_frac) FROM guidance GROUP BY 1".
    The query reads those views only: no other file, no writing, no ATTACH, no settings.
    A damaged run is left out and named on stderr. Exits 2 on a query that is not one
    SELECT or that DuckDB rejects, 3 when the store does not exist.

    --out FILE writes every row as CSV, Parquet or JSON (--format, else the suffix):
    pricing sql "SELECT * FROM guidance" --out guidance.csv. Exits 2 on a bad --out
    (unknown format, a folder, an existing file without --force), 6 when it cannot be
    written (nothing is left behind).
    """
    fmt = export_file(out, fmt, force)
    progress = Progress(quiet)
    with _open(store_dir, progress) as snapshot:
        frame = snapshot.query(query, read_only=True)
        _left_out(snapshot, progress)
    if out is not None and fmt is not None:
        write_table(frame, out, progress, fmt)
        progress.done()
        written = {"out": str(out), "format": fmt, "rows": len(frame), "columns": list(frame)}
        if as_json:
            echo(json.dumps(written, indent=2))
        else:
            echo(f"wrote {len(frame):,} row(s) × {frame.shape[1]} column(s) to {out} ({fmt})")
        return
    if as_json:
        echo(frame.to_json(orient="records", date_format="iso", indent=2))
        return
    echo(_table(frame.head(rows)))
    if len(frame) > rows:
        echo(f"... {len(frame) - rows:,} more rows (--rows, or --json for all)")


@click.group("store")
def store_group() -> None:
    """Look after the run store."""


@store_group.command("check")
@store_option
@click.option(
    "--quick", is_flag=True, help="Read each table's footer only, not every row (faster)."
)
@json_option("Print what was found as one JSON document on stdout.")
@quiet_option
def check(store_dir: Path, quick: bool, as_json: bool, quiet: bool) -> None:
    """List every damage in the run store: a manifest that is missing or does not parse,
    a table missing, unreadable or holding other rows than its manifest says, a folder or
    file that does not belong (e.g. as_of=2025-12-28.bak). Changes nothing. Exits 0 when
    there is none, 3 when there is some (each listed) or the store does not exist."""
    progress = Progress(quiet)
    with _open(store_dir, progress, deep=not quick) as snapshot:
        found = snapshot.to_dict()
    if as_json:
        echo(json.dumps(found, indent=2))
    else:
        echo(
            f"{store_dir}: {found['runs']} readable run(s), {found['scenarios']} readable "
            f"scenario result(s), {found['backtests']} readable backtest(s), "
            f"{found['superseded_builds']} superseded build(s) awaiting removal"
        )
        for damage in snapshot.damage:
            echo(f"damaged: {damage}")
    if snapshot.damage:
        raise InvalidInput(f"{len(snapshot.damage)} damaged item(s) in {store_dir}")
    if not as_json:
        echo("OK: no damage found.")


COMMANDS = (history, sql, store_group)
