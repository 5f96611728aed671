"""Reading the run store: ``history`` and ``sql``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from pricing.cli.options import json_option, store_option

if TYPE_CHECKING:
    from pricing.store.store import RunStore


def _open_store(store_dir: Path) -> RunStore:
    """The store at ``store_dir``; a StoreError (exit 3) when the folder does not exist."""
    from pricing.errors import StoreError
    from pricing.store.store import RunStore

    if not store_dir.is_dir():
        raise StoreError(f"run store {store_dir} does not exist; run `pricing run` first")
    return RunStore(store_dir)


@click.command()
@store_option
@click.option(
    "--segment",
    default=None,
    help="A segment as CATEGORY/TIER (…/REGION when runs split by region): its guidance "
    "and equilibrium over the runs.",
)
@json_option("Print the table as JSON on stdout.")
def history(store_dir: Path, segment: str | None, as_json: bool) -> None:
    """List the runs in the store (and the scenarios solved against them), or one
    segment's guidance over time. Exits 3 when the store or the segment does not exist."""
    store = _open_store(store_dir)
    if segment is not None:
        keys = store.segment_keys()
        parts = segment.split("/")
        if len(parts) != len(keys):
            raise click.UsageError(
                f"--segment {segment!r} must name {'/'.join(k.upper() for k in keys)}"
            )
        frame = store.segment_history(dict(zip(keys, parts, strict=True)))
        if as_json:
            click.echo(frame.to_json(orient="records", date_format="iso", indent=2))
        else:
            click.echo(f"Segment {segment} over {len(frame)} run(s):")
            click.echo(frame.to_string(index=False, float_format=lambda v: f"{v:,.2f}"))
        return
    runs, scenarios = store.runs(), store.scenarios()
    if as_json:
        payload = {
            "runs": json.loads(runs.to_json(orient="records", date_format="iso")),
            "scenarios": json.loads(scenarios.to_json(orient="records", date_format="iso")),
        }
        click.echo(json.dumps(payload, indent=2))
        return
    if runs.empty:
        click.echo(f"No runs in {store_dir} yet.")
        return
    click.echo(f"{len(runs)} run(s) in {store_dir}:")
    click.echo(runs.drop(columns=["path", "data_dir"]).to_string(index=False))
    if not scenarios.empty:
        click.echo(f"\n{len(scenarios)} scenario result(s):")
        click.echo(scenarios.drop(columns=["path"]).to_string(index=False))


@click.command()
@click.argument("query")
@store_option
@click.option("--rows", default=100, show_default=True, help="Rows shown in the text output.")
@json_option("Print the result as JSON records.")
def sql(query: str, store_dir: Path, rows: int, as_json: bool) -> None:
    """Run DuckDB SQL over the run store.

    Views: runs, curves, equilibrium, guidance, interventions, market, edges, catalogue
    (one row per segment and run, with its as_of), and scenarios, scenario_segments,
    scenario_totals, scenario_equilibrium, scenario_interventions (with baseline and
    scenario). Example: pricing sql "SELECT as_of, avg(gap_pct) FROM guidance GROUP BY 1".
    Exits 2 on a query DuckDB rejects, 3 when the store does not exist.
    """
    import duckdb

    store = _open_store(store_dir)
    con = store.connect()
    try:
        frame = con.execute(query).df()
    except duckdb.Error as exc:
        views = sorted(r[0] for r in con.execute("SHOW TABLES").fetchall())
        raise click.UsageError(
            f"DuckDB rejected the query: {str(exc).strip().splitlines()[0]}\n"
            f"Views in {store_dir}: {', '.join(views) or 'none (no runs yet)'}"
        ) from None
    if as_json:
        click.echo(frame.to_json(orient="records", date_format="iso", indent=2))
        return
    click.echo(frame.head(rows).to_string(index=False))
    if len(frame) > rows:
        click.echo(f"... {len(frame) - rows:,} more rows (--rows, or --json for all)")


COMMANDS = (history, sql)
