"""An analyst's commands on a data directory: ``equilibrium``, ``guidance``, ``plan``.

Each fits the market exactly as the nightly run does (:func:`pricing.runs.pipeline.
fitted_market`, the same as-of week), then solves it and prints the result.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from pricing.cli.exits import Degraded, Infeasible, InvalidInput
from pricing.cli.options import (
    as_of_option,
    check_out,
    config_option,
    data_argument,
    result_options,
)
from pricing.cli.output import echo, write_table
from pricing.cli.progress import Progress, solver_output_to_stderr

if TYPE_CHECKING:
    from pricing.market.equilibrium import EquilibriumResult
    from pricing.runs.pipeline import FittedMarket


def _fitted(
    data_dir: Path, config_path: Path | None, as_of: dt.datetime | None, progress: Progress
) -> FittedMarket:
    from pricing.runs.pipeline import fitted_market

    fitted = fitted_market(
        data_dir, config_path, as_of.date() if as_of else None, progress=progress
    )
    progress.done()
    return fitted


def _payload(
    data_dir: Path, fitted: FittedMarket, out: Path | None, body: dict[str, Any]
) -> dict[str, Any]:
    return {
        "data_dir": str(data_dir),
        "as_of": fitted.inputs.through.isoformat(),
        **body,
        "out": str(out) if out else None,
    }


def _budget(value: float | None) -> float | None:
    """--budget must lie in [0, MAX_MONEY] USD (NaN, which passes range checks, does not)."""
    from pricing.config import MAX_MONEY

    if value is not None and not 0 <= value <= MAX_MONEY:
        raise click.BadParameter(f"must be a number of USD in [0, {MAX_MONEY:g}], not {value}")
    return value


def _degraded(result: EquilibriumResult) -> None:
    if not result.ok:
        failed = result.components
        n = int((failed["status"] == "failed").sum())
        raise Degraded(f"{n} component(s) could not be cleared and verified (listed above)")


@click.command()
@data_argument
@config_option
@as_of_option
@click.option(
    "--method",
    type=click.Choice(["auto", "cvxpy"]),
    default="auto",
    show_default=True,
    help="auto: closed form and the batched interior point, verified; cvxpy: the convex "
    "program everywhere (the reference path).",
)
@result_options("the per-segment equilibrium")
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

    check_out(out)
    progress = Progress(quiet)
    fitted = _fitted(data_dir, config_path, as_of, progress)
    progress(f"clearing {len(fitted.market):,} segments ({method})")
    with solver_output_to_stderr():
        result = solve(fitted.market, method=method)  # type: ignore[arg-type]
    if out is not None:
        write_table(result.to_frame(), out, progress)
    progress.done()
    if as_json:
        timings = {**progress.timings, **{f"solve.{k}": v for k, v in result.timings.items()}}
        body = {**result.to_dict(), "timings_s": timings}
        echo(json.dumps(_payload(data_dir, fitted, out, body), indent=2))
    else:
        echo(result.summary(max_rows=rows))
    _degraded(result)


@click.command()
@data_argument
@config_option
@as_of_option
@click.option(
    "--previous",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The previous run's guidance (.parquet or .csv, as --out writes it): published "
    "rates move at most [guidance] max_change_pct from its rates.",
)
@result_options("the per-segment guidance")
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
    (balanced, supply_short, demand_short, thin_data). A rate more than [guidance]
    plausible_ratio (10) times today's, or less than its inverse, is withheld (status
    implausible). Settings come from the config's [guidance] section. With no DATA_DIR,
    uses the shipped sample market. Exits 3 when --previous cannot be used, 4 when some
    component could not be cleared or a rate was withheld.
    """
    from pricing.cli.output import load_config
    from pricing.decisions.guidance import load_previous, rate_guidance
    from pricing.market.equilibrium import solve

    check_out(out)
    progress = Progress(quiet)
    previous_frame = None
    if previous is not None:
        keys = list(load_config(data_dir, config_path).segment_keys)
        progress(f"reading the previous guidance {previous}")
        previous_frame = load_previous(previous, keys)
    fitted = _fitted(data_dir, config_path, as_of, progress)
    settings = fitted.config.guidance
    progress(f"clearing {len(fitted.market):,} segments")
    with solver_output_to_stderr():
        equilibrium_ = solve(fitted.market)
        forecast = solve(fitted.next_market, baseline=equilibrium_)
        progress(f"rate bands from {settings.draws} curve draws")
        result = rate_guidance(equilibrium_, settings, previous_frame, forecast=forecast)
    if out is not None:
        write_table(result.to_frame(), out, progress)
    progress.done()
    if as_json:
        timings = {
            **progress.timings,
            **{f"solve.{k}": v for k, v in equilibrium_.timings.items()},
            **{f"guidance.{k}": v for k, v in result.timings.items()},
        }
        body = {
            **result.to_dict(),
            "previous": str(previous) if previous else None,
            "timings_s": timings,
        }
        echo(json.dumps(_payload(data_dir, fitted, out, body), indent=2))
    else:
        echo(result.summary(max_rows=rows))
    _degraded(equilibrium_)
    withheld = int((result.frame["status"] == "implausible").sum())
    if withheld:
        raise Degraded(f"{withheld} segment(s) with a rate withheld as implausible (listed above)")


@click.command()
@data_argument
@config_option
@as_of_option
@click.option(
    "--budget",
    type=float,
    callback=lambda _ctx, _param, value: _budget(value),
    default=None,
    help="USD to spend (default: the config's interventions.budget).",
)
@click.option(
    "--objective",
    type=click.Choice(["hours", "gmv", "surplus"]),
    default=None,
    help="What to maximize (default: the config's interventions.objective).",
)
@result_options("the per-lever plan", shown="Levers")
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
    from pricing.market.equilibrium import solve

    check_out(out)
    progress = Progress(quiet)
    fitted = _fitted(data_dir, config_path, as_of, progress)
    catalogue = fitted.inputs.catalogue
    if catalogue is None:
        raise InvalidInput(
            f"{data_dir} has no interventions table: add interventions.parquet or .csv "
            "(see data/README.md) to plan supply levers"
        )
    chosen = {k: v for k, v in (("budget", budget), ("objective", objective)) if v is not None}
    settings = fitted.config.interventions.model_copy(update=chosen)  # both checked already
    progress(f"clearing {len(fitted.market):,} segments")
    with solver_output_to_stderr():
        baseline = solve(fitted.market)
        result = plan_interventions(fitted.market, catalogue, settings, baseline, progress)
    if out is not None:
        write_table(result.to_frame(), out, progress)
    progress.done()
    if as_json:
        timings = {**progress.timings, **{f"plan.{k}": v for k, v in result.timings.items()}}
        payload = {
            "data_dir": str(data_dir),
            **result.to_dict(),
            "out": str(out) if out else None,
            "timings_s": timings,
        }
        echo(json.dumps(payload, indent=2))
    else:
        echo(result.summary(max_rows=rows))
    if not result.feasible:
        raise Infeasible(result.explanation.splitlines()[0] if result.explanation else "")
    _degraded(baseline)
    _degraded(result.equilibrium)


COMMANDS = (equilibrium, guidance, plan)
