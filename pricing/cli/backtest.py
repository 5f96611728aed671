"""``pricing backtest``: how far to trust the engine's recommendations on this data."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import click

from pricing.cli.options import (
    as_of_option,
    config_option,
    data_option,
    json_option,
    quiet_option,
    store_option,
)
from pricing.cli.output import echo
from pricing.cli.progress import Progress, solver_output_to_stderr


@click.command("backtest")
@data_option
@config_option
@click.option(
    "--weeks",
    type=click.IntRange(min=1),
    default=12,
    show_default=True,
    help="Origins: the last K weeks that have --horizon weeks after them.",
)
@click.option(
    "--horizon",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Score the H weeks after each origin.",
)
@click.option(
    "--truth",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="A weekly truth table (.parquet or .csv: the segment keys, week, clearing_rate; "
    "optionally thin). Default: DATA_DIR/truth_weekly.parquet if present (the simulator "
    "writes it), else no truth scores.",
)
@store_option
@as_of_option
@json_option("Print the backtest (headline, every score, timings) as one JSON document.")
@quiet_option
def backtest_command(
    data_dir: Path,
    config_path: Path | None,
    weeks: int,
    horizon: int,
    truth: Path | None,
    store_dir: Path,
    as_of: dt.datetime | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Backtest the engine on DATA_DIR: at each of the last K weeks (the origins), fit on
    the data up to it exactly as `pricing run --as-of` does (nothing later is read), and
    score the H weeks after it against what happened.

    Scores: hours demanded and supplied at the realized rate (WAPE, median |log error|)
    and the direction of the recommended move, each beside naive baselines measured in
    the same run (last week's hours and the 4-week mean; momentum and reversion for the
    direction); with a truth table, the clearing-rate error against keeping today's
    rate, direction and 90 % band coverage. The backtest is committed atomically to
    STORE/backtests/as_of=DATE/, and the run report of that week or later shows it as
    "How much to trust this run".

    Exits 0 when the backtest completed, whatever its verdict: an engine that does not
    beat the baselines is reported (in the output and the report), not an error. Exits 2
    on a bad option, 3 on invalid data, a truth table that cannot be used (every
    problem listed) or too little history for K origins, 6 when the store cannot be
    written.
    """
    from pricing.runs.backtest import backtest
    from pricing.store.store import RunStore

    progress = Progress(quiet)
    store = RunStore(store_dir)
    store.check_writable()
    progress.step(f"backtest of {data_dir}, {weeks} origin(s), {horizon} week(s) ahead")
    with solver_output_to_stderr():
        result = backtest(
            data_dir,
            config_path,
            weeks,
            horizon,
            truth,
            as_of.date() if as_of else None,
            progress=progress,
        )
    progress.step("storing the backtest")
    path = store.write_backtest(
        result, on_commit=lambda p: progress.stored(f"backtest {result.as_of}", p)
    )
    progress.done()
    if as_json:
        echo(json.dumps({**result.to_dict(), "path": str(path)}, indent=2))
    else:
        echo(result.summary())
        echo(f"  stored in {path}")


COMMANDS = (backtest_command,)
