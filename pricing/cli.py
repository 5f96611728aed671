"""The ``pricing`` command line: a thin click group over the library.

Exit codes (every command):

    0  success
    1  unexpected internal error (a bug: please report it with the traceback)
    2  usage error: bad option or argument, output path already exists
    3  invalid input: the data or the configuration break the contract
    4  completed, but some segments are degraded: a component that no solver could
       clear and verify is reported (status ``failed``, its numbers empty)

Heavy libraries are imported inside the commands so that ``--help`` stays fast.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from pricing import __version__

if TYPE_CHECKING:
    import pandas as pd

    from pricing.config import RunConfig
    from pricing.curves import CurveSet
    from pricing.market import Market
    from pricing.panel import Panel
    from pricing.schema import CheckedInputs, ValidationReport

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INVALID_INPUT = 3
EXIT_DEGRADED = 4
EXIT_INFEASIBLE = 5

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "data" / "sample"


class InvalidInput(click.ClickException):
    """Bad data or configuration: printed without a traceback, exit code 3."""

    exit_code = EXIT_INVALID_INPUT


class Progress:
    """Each step of long work and its duration, on stderr (silent with --quiet).

    Calling it with a label ends the step before (printing its time) and starts the next;
    the library calls it too, so a 10-million-row check shows which table it is on.
    """

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.timings: dict[str, float] = {}
        self._label: str | None = None
        self._start = 0.0

    def __call__(self, label: str) -> None:
        self.done()
        self._label, self._start = label, time.perf_counter()
        if not self.quiet:
            click.echo(f"{label} ...", err=True, nl=False)

    def done(self) -> None:
        if self._label is None:
            return
        elapsed = time.perf_counter() - self._start
        self.timings[self._label] = round(elapsed, 3)
        if not self.quiet:
            click.echo(f" {elapsed:.2f} s", err=True)
        self._label = None


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
    with degraded segments, 5 infeasible request (plan).
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
    from pricing.schema import check_inputs

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
    from pricing.panel import build_panel

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
    force: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    """Write a synthetic marketplace with known truth to --out.

    The directory gets jobs, supply, shifters, adjacency and interventions tables in the
    data contract, truth.parquet (true elasticities, levels and clearing rates) and a
    pricing.toml naming the instruments.
    """
    from pricing.simulate import SimulationSpec, simulate_market

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
    market.write(out, overwrite=force)
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
    from pricing.equilibrium import solve

    _check_out(out)
    progress = Progress(quiet)
    config, checked = _valid_inputs(data_dir, config_path, as_of, as_json, progress)
    panel_, _, market = _fitted_market(config, checked, progress)
    progress(f"clearing {len(market):,} segments ({method})")
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
    from pricing.equilibrium import solve
    from pricing.errors import DataError
    from pricing.guidance import load_previous, rate_guidance

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
    from pricing.equilibrium import solve
    from pricing.errors import MarketError
    from pricing.interventions import plan_interventions

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
    baseline = solve(market)
    try:
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
    from pricing.curves import fit_curves
    from pricing.errors import MarketError
    from pricing.market import Market
    from pricing.panel import build_panel

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
    from pricing.io import atomic_file

    progress(f"writing {out}")
    with atomic_file(out) as tmp:
        if out.suffix.lower() == ".parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False, date_format="%Y-%m-%d")
