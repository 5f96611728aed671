"""The ``pricing`` command line: a thin click group over the library.

Exit codes (every command):

    0  success
    1  unexpected internal error (a bug: please report it with the traceback)
    2  usage error: bad option or argument, output path already exists
    3  invalid input: the data or the configuration break the contract
    4  completed, but some segments are degraded: a component that no solver could
       clear and verify is reported (status ``failed``, its numbers empty); for ``run``
       also a segment without a usable curve or an intervention plan that raised
    5  infeasible request: no intervention plan meets the targets, or an inverse
       scenario's target is out of reach (the reason and the closest answer are printed)
    6  the run failed and stored nothing (``run --strict`` with degraded segments, or the
       run store cannot be written)
    7  the Dask cluster cannot run the work (``--scheduler``/``--workers``): Dask is not
       installed, the scheduler does not answer, a worker runs another version of
       pricing or cannot see the data, or the cluster was lost; nothing was stored

Heavy libraries are imported inside the commands so that ``--help`` stays fast.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from pricing._version import __version__

if TYPE_CHECKING:
    import pandas as pd

    from pricing.config import RunConfig
    from pricing.estimation.curves import CurveSet
    from pricing.inputs.panel import Panel
    from pricing.inputs.validation import CheckedInputs, ValidationReport
    from pricing.market.market import Market
    from pricing.report.report import Report
    from pricing.runs.pipeline import Run
    from pricing.store.store import RunStore

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INVALID_INPUT = 3
EXIT_DEGRADED = 4
EXIT_INFEASIBLE = 5
EXIT_RUN_FAILED = 6
EXIT_CLUSTER = 7

from pricing.inputs import SAMPLE_DIR  # noqa: E402


class InvalidInput(click.ClickException):
    """Bad data or configuration: printed without a traceback, exit code 3."""

    exit_code = EXIT_INVALID_INPUT


class Progress:
    """Each step of long work and its duration, on stderr (silent with --quiet).

    ``step(label)`` starts a numbered step of a run; calling it with a label starts a
    sub-step (the library calls it too, so a 10-million-row check shows which table it is
    on). Starting one ends the one before and prints its time.
    """

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.timings: dict[str, float] = {}
        self._label: str | None = None
        self._start = 0.0
        self._step: str | None = None
        self._step_start = 0.0
        self._nested = False

    def step(self, label: str) -> None:
        self.done()
        self._step, self._step_start, self._nested = label, time.perf_counter(), False
        self._echo(f"{label} ...", nl=False)

    def __call__(self, label: str) -> None:
        self._end_sub()
        if self._step is not None and not self._nested:
            self._nested = True
            self._echo("")
        indent = "    " if self._step is not None else ""
        self._label, self._start = label, time.perf_counter()
        self._echo(f"{indent}{label} ...", nl=False)

    def done(self) -> None:
        """End the current sub-step and step."""
        self._end_sub()
        if self._step is None:
            return
        elapsed = time.perf_counter() - self._step_start
        self.timings[self._step] = round(elapsed, 3)
        self._echo(f"    done in {elapsed:.2f} s" if self._nested else f" {elapsed:.2f} s")
        self._step = None

    def _end_sub(self) -> None:
        if self._label is None:
            return
        elapsed = time.perf_counter() - self._start
        self.timings[self._label] = round(elapsed, 3)
        self._echo(f" {elapsed:.2f} s")
        self._label = None

    def _echo(self, text: str, nl: bool = True) -> None:
        if not self.quiet:
            click.echo(text, err=True, nl=nl)


@contextlib.contextmanager
def _solver_output_to_stderr() -> Iterator[None]:
    """Route what compiled solvers print to stderr while the block runs.

    SCS writes its warnings with C ``printf`` to file descriptor 1, past Python's
    ``sys.stdout``; stdout must carry only the command's result, so that ``--json`` stays
    parseable. The descriptor is restored afterwards, whatever happens.
    """
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _as_of_option(f: Any) -> Any:
    return click.option(
        "--as-of",
        type=click.DateTime(formats=["%Y-%m-%d"]),
        default=None,
        help="Latest date the data may contain (YYYY-MM-DD). Default: today.",
    )(f)


def _config_option(f: Any) -> Any:
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Configuration TOML. Default: DATA_DIR/pricing.toml if present, else defaults.",
    )(f)


def _cluster_options(f: Any) -> Any:
    """--scheduler and --workers: where the partitioned steps run (pricing.cluster)."""
    f = click.option(
        "--workers",
        type=click.IntRange(min=1),
        default=None,
        help="Start a local Dask cluster of N single-threaded worker processes for the "
        "run (needs pricing[dask]).",
    )(f)
    return click.option(
        "--scheduler",
        metavar="tcp://HOST:PORT",
        envvar="DASK_SCHEDULER_ADDRESS",
        show_envvar=True,
        default=None,
        help="Run the partitioned steps on the Dask cluster with this scheduler (needs "
        "pricing[dask]; workers need the same pricing version and the data at the same "
        "path). Default: this process.",
    )(f)


@contextlib.contextmanager
def _executor(
    scheduler: str | None, workers: int | None, data_dir: Path | None, progress: Progress
) -> Iterator[Any]:
    """The executor for --scheduler/--workers; exits 2 for both, 7 when the cluster
    cannot run the work."""
    from pricing.cluster import executor
    from pricing.errors import ClusterError

    if scheduler is not None and workers is not None:
        raise click.UsageError("give --scheduler or --workers, not both")
    if scheduler is not None:
        progress(f"connecting to the Dask scheduler at {scheduler}")
    elif workers is not None:
        progress(f"starting a local Dask cluster of {workers} worker process(es)")
    try:
        with executor(scheduler, workers, data_dir) as chosen:
            yield chosen
    except ClusterError as exc:
        progress.done()
        click.echo(f"Error: {exc}", err=True)
        sys.exit(EXIT_CLUSTER)


def _result_options(table: str, rows: int = 40, shown: str = "Segments") -> Callable[[Any], Any]:
    """--out (``table``, written atomically), --rows, --json and --quiet of a command
    that prints a result table."""
    options = [
        click.option(
            "--out",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help=f"Write {table} here (.parquet or .csv), atomically.",
        ),
        click.option(
            "--rows", default=rows, show_default=True, help=f"{shown} shown in the text summary."
        ),
        click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout."),
        click.option("--quiet", "-q", is_flag=True, help="No progress on stderr."),
    ]

    def wrap(f: Any) -> Any:
        for option in reversed(options):
            f = option(f)
        return f

    return wrap


def _data_argument(f: Any) -> Any:
    return click.argument(
        "data_dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=SAMPLE_DIR,
        required=False,
    )(f)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pricing")
def main() -> None:
    """Equilibrium pricing engine for a two-sided services marketplace.

    DATA_DIR holds jobs and supply tables (and optionally shifters, adjacency,
    interventions) as .parquet or .csv; see data/README.md for the contract.
    Exit codes: 0 ok, 1 internal error, 2 usage error, 3 invalid input, 4 completed
    with degraded segments, 5 infeasible request (plan, inverse scenario), 6 run failed
    (nothing stored).
    """


def _load_config(data_dir: Path, config_path: Path | None) -> RunConfig:
    from pricing.config import resolve_config
    from pricing.errors import ConfigError

    try:
        return resolve_config(data_dir, config_path)[0]
    except ConfigError as exc:
        raise InvalidInput(str(exc)) from None


def _check(
    data_dir: Path,
    config: RunConfig,
    as_of: dt.datetime | None,
    max_examples: int,
    progress: Progress,
) -> ValidationReport:
    from pricing.inputs.validation import check_inputs

    return check_inputs(
        data_dir,
        config,
        as_of.date() if as_of else None,
        max_examples=max_examples,
        progress=progress,
    )


@main.command()
@_data_argument
@_config_option
@_as_of_option
@click.option(
    "--max-examples", default=5, show_default=True, help="Offending rows shown per problem."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
def validate(
    data_dir: Path,
    config_path: Path | None,
    as_of: dt.datetime | None,
    max_examples: int,
    as_json: bool,
    quiet: bool,
) -> None:
    """Check DATA_DIR against the data contract and report every problem.

    Exits 0 when the data are valid and 3 when they are not (or the config is invalid).
    """
    config = _load_config(data_dir, config_path)
    progress = Progress(quiet)
    report = _check(data_dir, config, as_of, max_examples, progress)
    progress.done()
    click.echo(report.to_json() if as_json else report.summary())
    if not report.ok:
        sys.exit(EXIT_INVALID_INPUT)


@main.command()
@_data_argument
@_config_option
@_as_of_option
@_result_options("the segment x week panel", rows=30)
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

    _check_out(out)
    progress = Progress(quiet)
    _, checked = _valid_inputs(data_dir, config_path, as_of, as_json, progress)
    progress("aggregating the segment x week panel")
    result = build_panel(checked)
    if out is not None:
        _write_table(result.to_frame(), out, progress)
    progress.done()
    if as_json:
        segments = result.segments()
        payload = {
            "data_dir": str(data_dir),
            "as_of": result.as_of.isoformat(),
            "segment_keys": list(result.segment_keys),
            "segments": len(segments),
            "weeks": len(result.weeks),
            "segment_weeks": len(result.frame),
            "flags": {
                flag: int(result.frame["flags"].str.contains(flag, regex=False).sum())
                for flag in ("no_jobs", "no_hires", "no_supply")
            },
            "shifters": list(result.shifter_columns),
            "out": str(out) if out else None,
            "timings_s": progress.timings,
            "segment_summary": json.loads(
                segments.to_json(orient="records", date_format="iso", double_precision=10)
            ),
        }
        click.echo(json.dumps(payload, indent=2))
    else:
        click.echo(result.summary(max_rows=rows))


@main.command()
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
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
def simulate(
    segments: int,
    weeks: int,
    seed: int,
    jobs_per_week: float,
    start: dt.datetime,
    out: Path,
    files: int,
    force: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    """Write a synthetic marketplace with known truth to --out.

    The directory gets jobs, supply, shifters, adjacency and interventions tables in the
    data contract, truth.parquet (true elasticities, levels and clearing rates) and a
    pricing.toml naming the instruments.
    """
    from pricing.inputs.simulate import SimulationSpec, simulate_market

    if out.exists() and not force:
        raise click.UsageError(f"{out} already exists; pass --force to replace it")
    try:
        spec = SimulationSpec(
            segments=segments,
            weeks=weeks,
            seed=seed,
            start=start.date(),
            jobs_per_week=jobs_per_week,
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
        click.echo(
            json.dumps(
                {
                    "out": str(out),
                    "segments": segments,
                    "weeks": weeks,
                    "seed": seed,
                    "jobs_rows": market.jobs.num_rows,
                    "supply_rows": market.supply.num_rows,
                    "timings_s": progress.timings,
                },
                indent=2,
            )
        )
    else:
        click.echo(market.summary())
        click.echo(f"written to {out}")


@main.command()
@_data_argument
@_config_option
@_as_of_option
@click.option(
    "--method",
    type=click.Choice(["auto", "cvxpy"]),
    default="auto",
    show_default=True,
    help="auto: closed form and the batched interior point, verified; cvxpy: the convex "
    "program everywhere (the reference path).",
)
@_result_options("the per-segment equilibrium")
def equilibrium(
    data_dir: Path,
    config_path: Path | None,
    as_of: dt.datetime | None,
    method: str,
    out: Path | None,
    rows: int,
    as_json: bool,
    quiet: bool,
) -> None:
    """Estimate the curves of DATA_DIR and print the rate at which each segment clears.

    Fees and rate bounds come from the config's [market] section; adjacency from the
    data's adjacency table. With no DATA_DIR, uses the shipped sample market. Exits 4
    when some component could not be cleared (they are listed).
    """
    from pricing.market.equilibrium import solve

    _check_out(out)
    progress = Progress(quiet)
    config, checked = _valid_inputs(data_dir, config_path, as_of, as_json, progress)
    panel_, _, market = _fitted_market(config, checked, progress)
    progress(f"clearing {len(market):,} segments ({method})")
    with _solver_output_to_stderr():
        result = solve(market, method=method)  # type: ignore[arg-type]
    frame = result.to_frame()
    if out is not None:
        _write_table(frame, out, progress)
    progress.done()
    if as_json:
        payload = {
            "data_dir": str(data_dir),
            "as_of": panel_.as_of.isoformat(),
            "method": method,
            "segments": len(market),
            "status": {k: int(v) for k, v in frame["status"].value_counts().items()},
            "components": len(result.components),
            "max_residual": float(result.components["residual"].max()),
            "out": str(out) if out else None,
            "timings_s": {
                **progress.timings,
                **{f"solve.{k}": v for k, v in result.timings.items()},
            },
            "failed_components": json.loads(
                result.components[result.components["status"] == "failed"].to_json(orient="records")
            ),
            "segment_equilibrium": json.loads(frame.to_json(orient="records", double_precision=10)),
        }
        click.echo(json.dumps(payload, indent=2))
    else:
        click.echo(result.summary(max_rows=rows))
    if not result.ok:
        sys.exit(EXIT_DEGRADED)


@main.command()
@_data_argument
@_config_option
@_as_of_option
@click.option(
    "--previous",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The previous run's guidance (.parquet or .csv, as --out writes it): published "
    "rates move at most [guidance] max_change_pct from its rates.",
)
@_result_options("the per-segment guidance")
def guidance(
    data_dir: Path,
    config_path: Path | None,
    as_of: dt.datetime | None,
    previous: Path | None,
    out: Path | None,
    rows: int,
    as_json: bool,
    quiet: bool,
) -> None:
    """Estimate the curves of DATA_DIR, clear the market and print rate guidance.

    Per segment: the rate to ask (freelancer) and to budget (client) with bands from the
    elasticities' uncertainty, today's observed rate, the gap and the market state
    (balanced, supply_short, demand_short, thin_data). Settings come from the config's
    [guidance] section. With no DATA_DIR, uses the shipped sample market. Exits 3 when
    --previous cannot be used, 4 when some component could not be cleared.
    """
    from pricing.decisions.guidance import load_previous, rate_guidance
    from pricing.errors import DataError
    from pricing.market.equilibrium import solve

    _check_out(out)
    progress = Progress(quiet)
    config, checked = _valid_inputs(data_dir, config_path, as_of, as_json, progress)
    previous_frame = None
    if previous is not None:
        progress(f"reading the previous guidance {previous}")
        try:
            previous_frame = load_previous(previous, list(config.segment_keys))
        except DataError as exc:
            raise InvalidInput(str(exc)) from None
    panel_, curves, market = _fitted_market(config, checked, progress)
    progress(f"clearing {len(market):,} segments")
    with _solver_output_to_stderr():
        equilibrium_ = solve(market)
        progress(f"rate bands from {config.guidance.draws} curve draws")
        result = rate_guidance(equilibrium_, curves, config.guidance, previous_frame)
    frame = result.to_frame()
    if out is not None:
        _write_table(frame, out, progress)
    progress.done()
    if as_json:
        settings = config.guidance
        payload = {
            "data_dir": str(data_dir),
            "as_of": panel_.as_of.isoformat(),
            "segments": len(market),
            "market_state": result.state_counts,
            "status": {k: int(v) for k, v in frame["status"].value_counts().items()},
            "band_level": settings.band_level,
            "draws": settings.draws,
            "seed": settings.seed,
            "failed_draws": result.failed_draws,
            "clipped_share": result.clipped_share,
            "balanced_pct": settings.balanced_pct,
            "max_change_pct": settings.max_change_pct,
            "previous": str(previous) if previous else None,
            "capped": int(frame["capped"].sum()),
            "out": str(out) if out else None,
            "timings_s": {
                **progress.timings,
                **{f"solve.{k}": v for k, v in equilibrium_.timings.items()},
                **{f"guidance.{k}": v for k, v in result.timings.items()},
            },
            "segment_guidance": json.loads(frame.to_json(orient="records", double_precision=10)),
        }
        click.echo(json.dumps(payload, indent=2))
    else:
        click.echo(result.summary(max_rows=rows))
    if not equilibrium_.ok:
        sys.exit(EXIT_DEGRADED)


@main.command()
@_data_argument
@_config_option
@_as_of_option
@click.option(
    "--budget",
    type=click.FloatRange(min=0),
    default=None,
    help="USD to spend (default: the config's interventions.budget).",
)
@click.option(
    "--objective",
    type=click.Choice(["hours", "gmv", "surplus"]),
    default=None,
    help="What to maximize (default: the config's interventions.objective).",
)
@_result_options("the per-lever plan", shown="Levers")
def plan(
    data_dir: Path,
    config_path: Path | None,
    as_of: dt.datetime | None,
    budget: float | None,
    objective: str | None,
    out: Path | None,
    rows: int,
    as_json: bool,
    quiet: bool,
) -> None:
    """Choose how many units of each supply lever in DATA_DIR's interventions table to
    buy within a budget.

    The plan maximizes filled hours (or GMV, or total surplus) from equilibrium
    re-solves, within the budget, per-category spend caps and minimum-fill targets of the
    config's [interventions] section, and is verified by solving the market with it.
    Exits 3 when the data has no usable catalogue, 4 when some component could not be
    cleared, 5 when no plan meets the request (the reason and the cheapest relaxation are
    printed).
    """
    from pricing.decisions.interventions import plan_interventions
    from pricing.errors import MarketError
    from pricing.market.equilibrium import solve

    _check_out(out)
    progress = Progress(quiet)
    config, checked = _valid_inputs(data_dir, config_path, as_of, as_json, progress)
    if "interventions" not in checked.tables:
        raise InvalidInput(
            f"{data_dir} has no interventions table: add interventions.parquet or .csv "
            "(see data/README.md) to plan supply levers"
        )
    settings = config.interventions.model_copy(
        update={k: v for k, v in (("budget", budget), ("objective", objective)) if v is not None}
    )
    _, _, market = _fitted_market(config, checked, progress)
    progress(f"clearing {len(market):,} segments")
    try:
        with _solver_output_to_stderr():
            baseline = solve(market)
            result = plan_interventions(
                market, checked.table("interventions"), settings, baseline, progress
            )
    except MarketError as exc:
        raise InvalidInput(str(exc)) from None
    frame = result.to_frame()
    if out is not None:
        _write_table(frame, out, progress)
    progress.done()
    if as_json:
        payload = {
            "data_dir": str(data_dir),
            "status": result.status,
            "objective": result.objective,
            "budget": result.budget,
            "spend": result.spend,
            "base_value": result.base_value,
            "predicted_gain": result.predicted_gain,
            "verified_gain": result.verified_gain,
            "marginal_value_per_usd": result.marginal_value,
            "budget_step": result.budget_step,
            "value_rounding": result.value_rounding,
            "cost_rounding": result.cost_rounding,
            "optimality_gap": result.optimality_gap,
            "explanation": result.explanation,
            "relaxations": json.loads(result.relaxations.to_json(orient="records")),
            "constraints": json.loads(result.constraints.to_json(orient="records")),
            "categories": json.loads(result.categories.to_json(orient="records")),
            "rounds": json.loads(result.rounds.to_json(orient="records")),
            "out": str(out) if out else None,
            "timings_s": {
                **progress.timings,
                **{f"plan.{k}": v for k, v in result.timings.items()},
            },
            "levers": json.loads(frame.to_json(orient="records", double_precision=10)),
        }
        click.echo(json.dumps(payload, indent=2))
    else:
        click.echo(result.summary(max_rows=rows))
    if not result.feasible:
        sys.exit(EXIT_INFEASIBLE)
    if not (baseline.ok and result.equilibrium.ok):
        sys.exit(EXIT_DEGRADED)


def _fitted_market(
    config: RunConfig, checked: CheckedInputs, progress: Progress
) -> tuple[Panel, CurveSet, Market]:
    """Panel, fitted curves and market of checked inputs; exits 3 on a bad [market]."""
    from pricing.errors import MarketError
    from pricing.estimation.curves import fit_curves
    from pricing.inputs.panel import build_panel
    from pricing.market.market import Market

    progress("aggregating the segment x week panel")
    panel_ = build_panel(checked)
    progress("estimating demand and supply curves")
    curves = fit_curves(panel_, config.estimation)
    progress("building the market")
    adjacency = checked.table("adjacency") if "adjacency" in checked.tables else None
    try:
        market = Market.from_curves(curves, adjacency, config.market)
    except MarketError as exc:
        raise InvalidInput(str(exc)) from None
    return panel_, curves, market


def _check_out(out: Path | None) -> None:
    if out is not None and out.suffix.lower() not in (".parquet", ".csv"):
        raise click.UsageError(f"--out must end in .parquet or .csv, got {out.name}")


def _valid_inputs(
    data_dir: Path,
    config_path: Path | None,
    as_of: dt.datetime | None,
    as_json: bool,
    progress: Progress,
) -> tuple[RunConfig, CheckedInputs]:
    """The configuration and checked inputs; prints the report and exits 3 if invalid."""
    config = _load_config(data_dir, config_path)
    report = _check(data_dir, config, as_of, 5, progress)
    progress.done()
    if not report.ok:
        click.echo(report.to_json() if as_json else report.summary(), err=not as_json)
        sys.exit(EXIT_INVALID_INPUT)
    return config, report.checked()


def _write_table(frame: pd.DataFrame, out: Path, progress: Progress) -> None:
    """Write ``frame`` to ``out`` (.parquet or .csv) atomically."""
    from pricing.inputs.io import atomic_file

    progress(f"writing {out}")
    with atomic_file(out) as tmp:
        if out.suffix.lower() == ".parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False, date_format="%Y-%m-%d")


# ----------------------------------------------------------------- the run and its store
def _store_option(f: Any) -> Any:
    return click.option(
        "--store",
        "store_dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("pricing-runs"),
        show_default=True,
        help="Run store folder.",
    )(f)


def _no_report_option(f: Any) -> Any:
    return click.option(
        "--no-report", is_flag=True, help="Do not write the HTML report (report.html)."
    )(f)


@main.command("run")
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=SAMPLE_DIR,
    show_default="the shipped sample, data/sample",
    help="Data directory.",
)
@_config_option
@_store_option
@click.option(
    "--as-of",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Run as of this date: the week ending on the Sunday on or before it is the last "
    "one used. Default: the last complete week in the data.",
)
@click.option("--strict", is_flag=True, help="Store nothing and exit 6 if any segment is degraded.")
@_no_report_option
@_cluster_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
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
    from pricing.errors import ConfigError, DataError, MarketError, RunError, StoreError
    from pricing.runs.pipeline import run_batch

    progress = Progress(quiet)
    try:
        with (
            _solver_output_to_stderr(),
            _executor(scheduler, workers, data_dir, progress) as chosen,
        ):
            result = run_batch(
                data_dir,
                config_path,
                store_dir,
                as_of.date() if as_of else None,
                strict,
                progress,
                chosen,
            )
    except DataError as exc:
        progress.done()
        report = exc.report
        if as_json and report is not None:
            click.echo(report.to_json())
        else:
            click.echo(str(exc), err=True)
        sys.exit(EXIT_INVALID_INPUT)
    except (ConfigError, MarketError) as exc:
        progress.done()
        raise InvalidInput(str(exc)) from None
    except (RunError, StoreError) as exc:
        progress.done()
        click.echo(f"Error: {exc}", err=True)
        sys.exit(EXIT_RUN_FAILED)
    progress.done()
    report_file = None if no_report else _write_report(result, None, progress)[1]
    progress.done()
    m = result.manifest
    if as_json:
        payload = {
            "run_id": result.run_id,
            "run_path": str(result.path),
            "report": None if report_file is None else str(report_file),
            "as_of": m["as_of"],
            "status": m["status"],
            "counts": m["counts"],
            "statuses": m["statuses"],
            "degraded": m["degraded"],
            "rows_after_as_of": m["rows_after_as_of"],
            "previous_run": m["previous_run"],
            "plan": m["plan"],
            "timings_s": {**m["timings_s"], "store": progress.timings.get(_STORE_STEP, 0.0)},
            "peak_memory_mb": m["peak_memory_mb"],
            "compute": m["compute"],
        }
        click.echo(json.dumps(payload, indent=2))
    else:
        click.echo(result.summary())
        if report_file is not None:
            click.echo(f"  report: {report_file}")
    if m["status"] == "degraded":
        sys.exit(EXIT_DEGRADED)
    if m["status"] == "infeasible":
        sys.exit(EXIT_INFEASIBLE)


_STORE_STEP = "[8/8] storing the run"


def _write_report(
    run: Run, scenario: str | None, progress: Progress, rows: int = 200, out: Path | None = None
) -> tuple[Report, Path]:
    """Render the run's (or a stored scenario's) report and write it atomically, by
    default as report.html beside the stored tables."""
    from pricing.report.report import report_path

    progress("writing the report" + ("" if scenario is None else f" of {scenario}"))
    rendered = run.report(scenario, rows=rows)
    if out is None:
        stored = run.store.scenario_paths()
        out = report_path(run.path if scenario is None else stored[(run.as_of, scenario)])
    return rendered, rendered.write(out)


def _open_store(store_dir: Path) -> RunStore:
    """The store at ``store_dir``; exits 3 when the folder does not exist."""
    from pricing.store.store import RunStore

    if not store_dir.is_dir():
        raise InvalidInput(f"run store {store_dir} does not exist; run `pricing run` first")
    return RunStore(store_dir)


@main.command()
@_store_option
@click.option(
    "--segment",
    default=None,
    help="A segment as CATEGORY/TIER (…/REGION when runs split by region): its guidance "
    "and equilibrium over the runs.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON on stdout.")
def history(store_dir: Path, segment: str | None, as_json: bool) -> None:
    """List the runs in the store (and the scenarios solved against them), or one
    segment's guidance over time. Exits 3 when the store or the segment does not exist."""
    store = _open_store(store_dir)
    if segment is None:
        runs, scenarios = store.runs(), store.scenarios()
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "runs": json.loads(runs.to_json(orient="records", date_format="iso")),
                        "scenarios": json.loads(
                            scenarios.to_json(orient="records", date_format="iso")
                        ),
                    },
                    indent=2,
                )
            )
            return
        if runs.empty:
            click.echo(f"No runs in {store_dir} yet.")
            return
        shown = runs.drop(columns=["path", "data_dir"])
        click.echo(f"{len(runs)} run(s) in {store_dir}:")
        click.echo(shown.to_string(index=False))
        if not scenarios.empty:
            click.echo(f"\n{len(scenarios)} scenario result(s):")
            click.echo(scenarios.drop(columns=["path"]).to_string(index=False))
        return
    frame = _segment_history(store, segment)
    if as_json:
        click.echo(frame.to_json(orient="records", date_format="iso", indent=2))
    else:
        click.echo(f"Segment {segment} over {len(frame)} run(s):")
        click.echo(frame.to_string(index=False, float_format=lambda v: f"{v:,.2f}"))


def _segment_history(store: RunStore, segment: str) -> pd.DataFrame:
    """Guidance and equilibrium of one segment in every run, oldest first."""
    from pricing.errors import suggest

    runs = store.runs()
    if runs.empty:
        raise InvalidInput(f"run store {store.root} holds no runs yet; run `pricing run` first")
    con = store.connect()
    keys = [c for c in ("category", "tier", "region") if c in _columns(con, "guidance")]
    parts = segment.split("/")
    if len(parts) != len(keys):
        raise click.UsageError(
            f"--segment {segment!r} must name {'/'.join(k.upper() for k in keys)}"
        )
    where = " AND ".join(f"g.{k} = ?" for k in keys)
    frame: pd.DataFrame = con.execute(
        f"""SELECT g.as_of, g.freelancer_rate, g.freelancer_rate_low, g.freelancer_rate_high,
                   g.client_rate, g.client_rate_low, g.client_rate_high, g.observed_rate,
                   g.gap_pct, g.market_state, g.capped, e.rate, e.hours, e.shortage_hours,
                   e.status
            FROM guidance g JOIN equilibrium e USING (as_of, {", ".join(keys)})
            WHERE {where} ORDER BY g.as_of""",
        parts,
    ).df()
    if frame.empty:
        known = [
            "/".join(map(str, r))
            for r in con.execute(f"SELECT DISTINCT {', '.join(keys)} FROM guidance").fetchall()
        ]
        hint = suggest(segment, known)
        raise InvalidInput(
            f"segment {segment!r} is in no run of {store.root}"
            + (f"; did you mean {hint!r}?" if hint else "")
        )
    frame["as_of"] = frame["as_of"].dt.date
    return frame


def _columns(con: Any, view: str) -> list[str]:
    return [r[0] for r in con.execute(f"DESCRIBE {view}").fetchall()]


@main.command()
@click.argument("query")
@_store_option
@click.option("--rows", default=100, show_default=True, help="Rows shown in the text output.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON records.")
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


@main.command()
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
@_store_option
@click.option("--rows", default=15, show_default=True, help="Changed segments shown per scenario.")
@_no_report_option
@_cluster_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
def whatif(
    scenario_files: tuple[Path, ...],
    baseline: str,
    store_dir: Path,
    rows: int,
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
    cluster. Exits 3 on a malformed scenario or unknown baseline, 4 when some segment
    of a scenario is not cleared, 5 when a plan or inverse target is out of reach, 7
    when the cluster cannot run it.
    """
    from pricing.config import load_scenario
    from pricing.decisions.scenario import check_scenario
    from pricing.errors import ConfigError, MarketError, StoreError
    from pricing.report.report import report_path
    from pricing.runs.pipeline import Run, plan_summary, save_whatif

    started = time.perf_counter()
    progress = Progress(quiet)
    store = _open_store(store_dir)
    problems: list[str] = []
    scenarios = []
    for path in scenario_files:
        try:
            scenarios.append(load_scenario(path))
        except ConfigError as exc:
            problems.append(str(exc))
    names = [s.name for s in scenarios]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        problems.append(f"scenario names must differ within a batch; repeated: {repeated}")
    try:
        progress(f"loading run {baseline} from {store_dir}")
        run = Run.open(store.resolve(baseline), store)
        market = run.market
    except StoreError as exc:
        problems.append(str(exc))
        run = None
    if run is not None:
        for scenario in scenarios:
            try:
                check_scenario(market, scenario, run.config, run.catalogue)
            except (ConfigError, MarketError) as exc:
                problems.append(f"scenario {scenario.name!r}: {exc}")
    if problems:
        progress.done()
        raise InvalidInput("\n".join(problems))
    assert run is not None
    results = []
    with (
        _solver_output_to_stderr(),
        _executor(scheduler, workers, None, progress) as chosen,
    ):
        run = dataclasses.replace(run, executor=chosen)
        loaded = time.perf_counter()
        progress(f"solving the baseline market ({len(run.market):,} segments)")
        _ = run.baseline
        timings = {
            "load": round(loaded - started, 3),
            "baseline": round(time.perf_counter() - loaded, 3),
        }
        for i, scenario in enumerate(scenarios, 1):
            progress.step(f"[{i}/{len(scenarios)}] scenario {scenario.name}")
            result = run.whatif(scenario, progress=progress)
            progress("storing the result")
            stored_at = time.perf_counter()
            path = save_whatif(run, result)
            results.append((result, path, round(time.perf_counter() - stored_at, 3)))
            if not no_report:
                _write_report(run, scenario.name, progress)
    progress.done()
    if as_json:
        payload = {
            "baseline": run.run_id,
            "baseline_path": str(run.path),
            "segments": len(run.market),
            "timings_s": timings,
            "scenarios": [
                {
                    "name": r.scenario.name,
                    "description": r.scenario.description,
                    "status": r.status,
                    "path": str(path),
                    "report": None if no_report else str(report_path(path)),
                    "inverse": None if r.inverse is None else r.inverse.to_dict(),
                    "plan": plan_summary(r.plan),
                    "timings_s": {**r.timings, "store": store_s},
                    "totals": json.loads(r.totals.to_json(orient="records")),
                    "segments": json.loads(r.to_frame().to_json(orient="records")),
                }
                for r, path, store_s in results
            ],
        }
        click.echo(json.dumps(payload, indent=2))
    else:
        for r, path, _ in results:
            click.echo(r.summary(max_rows=rows))
            click.echo(f"stored in {path}")
            click.echo("" if no_report else f"report: {report_path(path)}\n")
    statuses = {r.status for r, _, _ in results}
    if "degraded" in statuses:
        sys.exit(EXIT_DEGRADED)
    if "infeasible" in statuses:
        sys.exit(EXIT_INFEASIBLE)


@main.command()
@click.argument("run_id", default="latest")
@click.option(
    "--scenario",
    default=None,
    help="Report this stored scenario (its name) solved against the run, not the run.",
)
@_store_option
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the report here (atomically). Default: report.html beside the stored tables.",
)
@click.option(
    "--rows", default=200, show_default=True, help="Rows of each long table in the report."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report's path and size as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
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
    from pricing.errors import StoreError
    from pricing.runs.pipeline import Run

    if rows < 1:
        raise click.UsageError("--rows must be at least 1")
    progress = Progress(quiet)
    store = _open_store(store_dir)
    started = time.perf_counter()
    try:
        run = Run.open(store.resolve(run_id), store)
        rendered, path = _write_report(run, scenario, progress, rows, out)
    except StoreError as exc:
        progress.done()
        raise InvalidInput(str(exc)) from None
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
        click.echo(json.dumps(payload, indent=2))
    else:
        click.echo(f"{rendered.title}: {path} ({size / 1024:,.0f} KiB)")


BENCHMARKS_DIR = SAMPLE_DIR.parent.parent / "benchmarks"


@main.command()
@click.option("--quick", is_flag=True, help="The smallest size of each stage (a smoke test).")
@click.option(
    "--only",
    default=None,
    help="A stage (load, estimate, equilibrium, whatif, "
    "interventions, run, cluster) or a benchmark name prefix such as equilibrium.coupled.",
)
@click.option("--repeat", default=5, show_default=True, help="Timed repetitions per benchmark.")
@click.option(
    "--record/--no-record",
    default=None,
    help="Append the results to the history and, for the whole suite, to RESULTS.md. "
    "Default: record unless --quick.",
)
@click.option(
    "--history",
    type=click.Path(dir_okay=False, path_type=Path),
    default=BENCHMARKS_DIR / "results" / "history.json",
    show_default="benchmarks/results/history.json",
    help="JSON history to compare with and append to.",
)
@click.option(
    "--results",
    type=click.Path(dir_okay=False, path_type=Path),
    default=BENCHMARKS_DIR / "RESULTS.md",
    show_default="benchmarks/RESULTS.md",
    help="Markdown file whose latest-results table is replaced.",
)
@click.option(
    "--margin",
    default=0.25,
    show_default=True,
    help="Flag a ratio to baseline that grew by more than this share since the last run.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the records as a JSON list.")
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
def bench(
    quick: bool,
    only: str | None,
    repeat: int,
    record: bool | None,
    history: Path,
    results: Path,
    margin: float,
    as_json: bool,
    quiet: bool,
) -> None:
    """Run the benchmark suite: each benchmark against a baseline measured in the same run.

    Stages: load (validate + aggregate), estimate (batched 2SLS), equilibrium (uncoupled
    and coupled; auto, cvxpy, a naive loop, the closed-form floor), whatif (warm re-solve),
    interventions (plans), run (the nightly run end to end, 10^6 and 10^7 job rows) and
    cluster (the run on a 2-worker LocalCluster against the same run here). Prints
    median, spread, peak memory, compile and solve time and the ratio to the baseline;
    flags ratios that grew by more than --margin since the history's last run on this
    kind of machine. Needs a source checkout (benchmarks/) and the test extra.
    """
    import importlib

    from pricing.bench.harness import (
        Entry,
        append_history,
        compare,
        machine,
        markdown,
        measure,
        read_history,
        update_results,
    )

    if not (BENCHMARKS_DIR / "suite.py").is_file():
        raise click.UsageError(
            f"no benchmark suite at {BENCHMARKS_DIR}: `pricing bench` runs from a source "
            "checkout of pricing"
        )
    if repeat < 1:
        raise click.UsageError("--repeat must be at least 1")
    sys.path.insert(0, str(BENCHMARKS_DIR))
    suite = importlib.import_module("suite")
    if only is not None and not any(s.startswith(only) or only.startswith(s) for s in suite.STAGES):
        raise click.UsageError(f"--only {only!r} names no stage; stages: {', '.join(suite.STAGES)}")
    progress = Progress(quiet)
    records = []
    # setups print what they simulate; stdout is for the results
    with _solver_output_to_stderr(), contextlib.redirect_stdout(sys.stderr):
        for case in suite.cases(quick, only):
            progress(f"{case.name} {', '.join(f'{k}={v}' for k, v in case.params.items())}")
            records.append(measure(case, 1 if quick else repeat))
    progress.done()
    entry = Entry(machine(BENCHMARKS_DIR.parent), quick, records)
    earlier = read_history(history)
    regressions = compare(entry, earlier, margin)
    if record if record is not None else not quick:
        append_history(history, entry)
        if only is None:
            update_results(results, entry)
    flagged = {(r.name, json.dumps(r.params, sort_keys=True)): r for r in regressions}
    if as_json:
        out = []
        for r in records:
            hit = flagged.get((r.name, json.dumps(r.params, sort_keys=True)))
            out.append(
                {
                    **r.to_dict(),
                    "regression": None
                    if hit is None
                    else {"previous_ratio": hit.previous_ratio, "commit": hit.previous_commit},
                }
            )
        click.echo(json.dumps(out, indent=2))
    else:
        click.echo(markdown(entry))
    for regression in regressions:
        click.echo(f"slower than before: {regression}", err=True)
