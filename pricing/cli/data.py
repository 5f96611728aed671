"""Commands on a data directory's inputs: ``validate``, ``panel``, ``simulate``."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import click

from pricing.cli.exits import ExitCode
from pricing.cli.options import (
    as_of_option,
    check_out,
    config_option,
    data_argument,
    json_option,
    quiet_option,
    result_options,
)
from pricing.cli.output import echo, load_config, write_table
from pricing.cli.progress import Progress


@click.command()
@data_argument
@config_option
@click.option(
    "--max-examples",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Offending rows shown per problem.",
)
@json_option("Print the report as JSON on stdout.")
@quiet_option
@click.pass_context
def validate(
    ctx: click.Context,
    data_dir: Path,
    config_path: Path | None,
    max_examples: int,
    as_json: bool,
    quiet: bool,
) -> None:
    """Check DATA_DIR against the data contract and report every problem.

    Dates are checked against today (a run as of an earlier date leaves later rows out;
    they are not wrong). With no DATA_DIR, checks the shipped sample. Exits 0 when the
    data are valid and 3 when they are not (or the config is invalid).
    """
    from pricing.inputs.validation import check_inputs

    config = load_config(data_dir, config_path)
    progress = Progress(quiet)
    report = check_inputs(data_dir, config, max_examples=max_examples, progress=progress)
    progress.done()
    echo(report.to_json() if as_json else report.summary())
    if not report.ok:
        ctx.exit(ExitCode.INVALID_INPUT)


@click.command()
@data_argument
@config_option
@as_of_option
@result_options("the segment x week panel", rows=30)
def panel(
    data_dir: Path,
    config_path: Path | None,
    as_of: dt.datetime | None,
    out: Path | None,
    rows: int,
    as_json: bool,
    quiet: bool,
) -> None:
    """Validate DATA_DIR, aggregate it to the segment x week panel, print the segment summary.

    With no DATA_DIR, uses the shipped sample market.
    """
    from pricing.inputs.panel import build_panel
    from pricing.runs.pipeline import checked_inputs

    check_out(out)
    progress = Progress(quiet)
    progress("loading and validating the inputs")
    inputs = checked_inputs(data_dir, config_path, as_of.date() if as_of else None, progress)
    progress("aggregating the segment x week panel")
    result = build_panel(inputs.checked, inputs.through)
    if out is not None:
        write_table(result.to_frame(), out, progress)
    progress.done()
    if as_json:
        payload = {
            "data_dir": str(data_dir),
            **result.to_dict(),
            "out": str(out) if out else None,
            "timings_s": progress.timings,
        }
        echo(json.dumps(payload, indent=2))
    else:
        echo(result.summary(max_rows=rows))


@click.command()
@click.option(
    "--segments", default=60, show_default=True, help="Number of segments (categories x 3 tiers)."
)
@click.option("--weeks", default=104, show_default=True, help="Weeks of history.")
@click.option(
    "--seed", default=0, show_default=True, help="Random seed; the same seed gives the same files."
)
@click.option(
    "--jobs-per-week",
    default=40.0,
    show_default=True,
    help="Mean jobs posted per segment-week in a typical segment (sets the data size).",
)
@click.option(
    "--start",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default="2024-01-01",
    show_default=True,
    help="First week (a Monday).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Data directory to create.",
)
@click.option(
    "--files",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Write jobs and supply as folders of this many Parquet files each (a partitioned "
    "dataset, read in parallel by a cluster run).",
)
@click.option(
    "--cross-family-edges",
    type=click.FloatRange(min=0.0),
    default=0.0,
    show_default=True,
    help="Mean adjacency edges per category to categories of other skill families "
    "(about 1 or more joins the market into one component).",
)
@click.option(
    "--tier-moves",
    type=click.FloatRange(min=0.0, max=1.0),
    default=0.0,
    show_default=True,
    help="Share of entry and intermediate pools that also serve the next tier up "
    "(adjacency rows with from_tier/to_tier).",
)
@click.option(
    "--regional",
    is_flag=True,
    help="Segments are category x tier x region (--regions; region a segment key in "
    "pricing.toml), regions' rates differ; without it regions are labels only.",
)
@click.option(
    "--regions",
    default="na,eu,apac",
    show_default=True,
    help="Region names, comma-separated: the segments' regions with --regional, else the "
    "labels drawn for jobs and pools.",
)
@click.option(
    "--remote-work",
    type=click.FloatRange(min=0.0, max=1.0),
    default=0.0,
    show_default=True,
    help="With --regional: share of (pool, other region) pairs in which a regional pool also "
    "serves that region's clients of its category and tier (adjacency rows with "
    "from_region/to_region).",
)
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
@json_option()
@quiet_option
def simulate(
    segments: int,
    weeks: int,
    seed: int,
    jobs_per_week: float,
    start: dt.datetime,
    out: Path,
    files: int,
    cross_family_edges: float,
    tier_moves: float,
    regional: bool,
    regions: str,
    remote_work: float,
    force: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    """Write a synthetic marketplace with known truth to --out.

    The directory gets jobs, supply, shifters, adjacency and interventions tables in the
    data contract, truth.parquet (true elasticities, levels and clearing rates) and a
    pricing.toml naming the instruments. Adjacency stays within skill families of 12
    categories unless --cross-family-edges, --tier-moves or (in a --regional market)
    --remote-work connect the market; the true clearing rates are always the coupled
    equilibrium of the adjacency written. Exits 2 on invalid options.
    """
    from pricing.market.simulate import SimulationSpec, simulate_market

    if out.exists() and not force:
        raise click.UsageError(f"{out} already exists; pass --force to replace it")
    try:
        spec = SimulationSpec(
            segments=segments,
            weeks=weeks,
            seed=seed,
            start=start.date(),
            jobs_per_week=jobs_per_week,
            cross_family_edges=cross_family_edges,
            tier_moves=tier_moves,
            regional=regional,
            regions=tuple(name.strip() for name in regions.split(",")),
            remote_work=remote_work,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    progress = Progress(quiet)
    progress("simulating the market")
    market = simulate_market(spec)
    progress(f"writing {out}")
    market.write(out, overwrite=force, files=files)
    progress.done()
    if as_json:
        payload = {
            "out": str(out),
            "segments": segments,
            "weeks": weeks,
            "seed": seed,
            "segment_keys": list(spec.segment_keys),
            "jobs_rows": market.jobs.num_rows,
            "supply_rows": market.supply.num_rows,
            "timings_s": progress.timings,
        }
        echo(json.dumps(payload, indent=2))
    else:
        echo(market.summary())
        echo(f"written to {out}")


COMMANDS = (validate, panel, simulate)
