"""The nightly run and what is done with stored runs: ``run``, ``whatif``, ``report``."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import click

from pricing.cli.exits import Degraded, Infeasible
from pricing.cli.options import (
    as_of_option,
    cluster_options,
    config_option,
    data_option,
    executor_for,
    export_folder,
    force_option,
    format_option,
    json_option,
    no_report_option,
    quiet_option,
    rows_option,
    store_option,
)
from pricing.cli.output import echo
from pricing.cli.progress import Progress, solver_output_to_stderr


def _outcome(statuses: set[str]) -> None:
    """Exit 4 when something is degraded, else 5 when something is infeasible."""
    if "degraded" in statuses:
        raise Degraded("some segments could not be cleared or the plan failed (see above)")
    if "infeasible" in statuses:
        raise Infeasible("a plan or an inverse target cannot be met (see above)")


@click.command("run")
@data_option
@config_option
@store_option
@as_of_option
@click.option("--strict", is_flag=True, help="Store nothing and exit 6 if any segment is degraded.")
@no_report_option
@cluster_options
@json_option("Print one JSON summary on stdout.")
@quiet_option
def run_command(
    data_dir: Path,
    config_path: Path | None,
    store_dir: Path,
    as_of: dt.datetime | None,
    strict: bool,
    no_report: bool,
    scheduler: str | None,
    workers: int | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """The nightly run: validate, aggregate, estimate, clear, guide, plan, store.

    Interventions are planned when the data has an interventions table and the config
    an [interventions] budget. The run is committed atomically to
    STORE/runs/as_of=DATE/; re-running an as-of date replaces it. Its HTML report is
    written beside the tables (report.html) unless --no-report. With --workers or
    --scheduler, aggregation (per group of input files), estimation, the coupled
    equilibrium and the band draws run on a Dask cluster, with the same results. Exits
    3 on invalid inputs, 4 when some segment is degraded (no curve, not cleared) or the
    plan failed, 5 when no plan meets the intervention targets, 6 when nothing was
    stored, 7 when the cluster cannot run it.
    """
    from pricing.report.report import report_path
    from pricing.runs.pipeline import run_batch

    progress = Progress(quiet)
    with solver_output_to_stderr(), executor_for(scheduler, workers, data_dir, progress) as chosen:
        result = run_batch(
            data_dir,
            config_path,
            store_dir,
            as_of.date() if as_of else None,
            strict,
            progress,
            chosen,
            report=not no_report,
        )
    progress.done()
    report_file = None if no_report else report_path(result.path)
    if as_json:
        payload = {**result.to_dict(), "report": None if report_file is None else str(report_file)}
        echo(json.dumps(payload, indent=2))
    else:
        echo(result.summary())
        if report_file is not None:
            echo(f"  report: {report_file}")
    _outcome({result.status})


@click.command()
@click.argument(
    "scenario_files",
    nargs=-1,
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
)
@click.option(
    "--baseline",
    default="latest",
    show_default=True,
    help="The run to start from: 'latest' or its as-of date (YYYY-MM-DD).",
)
@store_option
@rows_option(15, "Changed segments shown per scenario.")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write every scenario's tables to this folder (one sub-folder per "
    "scenario), atomically. An existing folder is replaced only with --force, and only "
    "if an earlier export wrote it (export.json).",
)
@format_option
@force_option
@no_report_option
@cluster_options
@json_option("Print one JSON document on stdout.")
@quiet_option
def whatif(
    scenario_files: tuple[Path, ...],
    baseline: str,
    store_dir: Path,
    rows: int,
    out: Path | None,
    fmt: str | None,
    force: bool,
    no_report: bool,
    scheduler: str | None,
    workers: int | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Solve what-if scenarios (TOML files) against a stored run, without re-estimating.

    Each scenario transforms the baseline market (demand and supply multipliers,
    elasticities, fees, rate bounds, adjacency, an intervention budget) or solves an
    inverse problem (the fee that clears a segment at a target rate, the least budget
    that reaches a fill target). Prints baseline vs scenario per segment and in total and
    stores each result under STORE/scenarios/, with its HTML report (report.html) unless
    --no-report. Every file is checked before anything is solved. With --workers or
    --scheduler the baseline's and scenarios' coupled components are cleared on a Dask
    cluster. --out DIR also writes each scenario's tables (segments, totals,
    equilibrium, flows, the plan's) as DIR/NAME/TABLE.csv (or --format parquet|json),
    with the resolved scenario.toml, and DIR/export.json listing them. Exits 2 on a bad
    --out (a file, an existing folder without --force), 3 on a malformed scenario or
    unknown baseline, 4 when some segment of a scenario is not cleared, 5 when a plan or
    inverse target is out of reach, 6 when --out cannot be written, 7 when the cluster
    cannot run it.
    """
    from pricing.runs.pipeline import run_whatifs
    from pricing.runs.run import export_whatifs, load_run

    fmt = export_folder(out, fmt, force)
    started = time.perf_counter()
    progress = Progress(quiet)
    with solver_output_to_stderr(), executor_for(scheduler, workers, None, progress) as chosen:
        progress(f"loading run {baseline} from {store_dir}")
        run = load_run(baseline, store_dir, chosen)
        loaded = time.perf_counter()
        batch = run_whatifs(scenario_files, run, progress, report=not no_report)
    exported = None
    if out is not None and fmt is not None:
        progress(f"writing {out}")
        exported = export_whatifs([r.result for r in batch.results], run, out, fmt)
    progress.done()
    if as_json:
        payload = {
            "out": exported,
            "baseline": run.run_id,
            "baseline_path": str(run.path),
            "segments": len(run.market),
            "timings_s": {"load": round(loaded - started, 3), **batch.timings},
            "scenarios": [
                {
                    **r.result.to_dict(),
                    "path": str(r.path),
                    "report": None if r.report is None else str(r.report),
                    "timings_s": {**r.result.timings, "store": r.store_seconds},
                }
                for r in batch.results
            ],
        }
        echo(json.dumps(payload, indent=2))
    else:
        for r in batch.results:
            echo(r.result.summary(max_rows=rows))
            echo(f"stored in {r.path}")
            echo("" if r.report is None else f"report: {r.report}\n")
        if exported is not None:
            echo(f"tables of {len(batch.results)} scenario(s) written to {out} ({fmt})")
    _outcome({r.result.status for r in batch.results})


@click.command()
@click.argument("run_id", default="latest")
@click.option(
    "--scenario",
    default=None,
    help="Report this stored scenario (its name) solved against the run, not the run.",
)
@store_option
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the report here (atomically). Default: report.html beside the stored tables.",
)
@rows_option(200, "Rows of each long table in the report.")
@json_option("Print the report's path and size as JSON.")
@quiet_option
def report(
    run_id: str,
    scenario: str | None,
    store_dir: Path,
    out: Path | None,
    rows: int,
    as_json: bool,
    quiet: bool,
) -> None:
    """Write the HTML report of a stored run (RUN_ID: 'latest' or its as-of date) or of
    a scenario solved against it.

    One self-contained file (figures inlined, no script, nothing fetched when opened):
    the run's header, the state of the market in a few sentences, category × tier
    heatmaps, the segments that need attention with their curves, rate guidance,
    estimation diagnostics and the intervention plan; for a scenario, baseline vs
    scenario per segment and in total. Exits 3 when the store, run or scenario does not
    exist.
    """
    from pricing.report.report import report_path
    from pricing.runs.run import load_run

    progress = Progress(quiet)
    started = time.perf_counter()
    run = load_run(run_id, store_dir)
    progress("writing the report" + ("" if scenario is None else f" of {scenario}"))
    rendered = run.report(scenario, rows=rows)
    if out is None:
        out = report_path(run.path if scenario is None else run.scenario(scenario).path)
    path = rendered.write(out)
    progress.done()
    size = path.stat().st_size
    if as_json:
        payload = {
            "path": str(path),
            "bytes": size,
            "figures": rendered.images,
            "sections": list(rendered.sections),
            "seconds": round(time.perf_counter() - started, 3),
        }
        echo(json.dumps(payload, indent=2))
    else:
        echo(f"{rendered.title}: {path} ({size / 1024:,.0f} KiB)")


COMMANDS = (run_command, whatif, report)
