"""Options and arguments that several commands share, each written once."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from pricing.cli.exits import JSON_KEY, SAMPLE_KEY, BadUsage
from pricing.cli.progress import Progress
from pricing.inputs import SAMPLE_DIR

Decorator = Callable[[Any], Any]


def _stack(*options: Decorator) -> Decorator:
    def wrap(f: Any) -> Any:
        for option in reversed(options):
            f = option(f)
        return f

    return wrap


def _remember_json(ctx: click.Context, _: click.Parameter, value: bool) -> bool:
    ctx.meta[JSON_KEY] = value
    return value


def json_option(help: str = "Print a JSON summary on stdout.") -> Decorator:
    return click.option("--json", "as_json", is_flag=True, callback=_remember_json, help=help)


quiet_option = click.option(
    "--quiet", "-q", is_flag=True, help="No progress on stderr (warnings still show)."
)


def _sample_note(ctx: click.Context, param: click.Parameter, value: Path) -> Path:
    """Remember when the data directory is the shipped sample by default: the command's
    progress says so on stderr (:class:`~pricing.cli.progress.Progress`) — a note, or for
    ``run``, which stores its result, a warning that --quiet does not silence."""
    if param.name and ctx.get_parameter_source(param.name) is ParameterSource.DEFAULT:
        ctx.meta[SAMPLE_KEY] = (value, isinstance(param, click.Option))
    return value


data_argument = click.argument(
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=SAMPLE_DIR,
    required=False,
    callback=_sample_note,
)

data_option = click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=SAMPLE_DIR,
    show_default="the shipped sample, data/sample (said on stderr)",
    callback=_sample_note,
    help="Data directory.",
)

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Configuration TOML. Default: DATA_DIR/pricing.toml if present, else defaults.",
)


def _checked_as_of(
    _: click.Context, __: click.Parameter, value: dt.datetime | None
) -> dt.datetime | None:
    """--as-of must lie between the contract's earliest date and today (a usage error)."""
    if value is not None:
        from pricing.errors import ConfigError
        from pricing.runs.pipeline import check_as_of

        try:
            check_as_of(value.date())
        except ConfigError as exc:
            raise click.BadParameter(str(exc)) from None
    return value


as_of_option = click.option(
    "--as-of",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    callback=_checked_as_of,
    help="Run as of this date, today at the latest: the week ending on the Sunday on or "
    "before it is the last one used; later rows are left out (and counted). Default: the "
    "last complete week in the data.",
)

store_option = click.option(
    "--store",
    "store_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("pricing-runs"),
    show_default=True,
    help="Run store folder.",
)

no_report_option = click.option(
    "--no-report", is_flag=True, help="Do not write the HTML report (report.html)."
)


def rows_option(default: int, help: str) -> Decorator:
    """--rows: how many rows a text output shows, at least 1."""
    return click.option(
        "--rows", type=click.IntRange(min=1), default=default, show_default=True, help=help
    )


def result_options(table: str, rows: int = 40, shown: str = "Segments") -> Decorator:
    """--out (``table``, written atomically), --rows, --json and --quiet of a command
    that prints a result table."""
    return _stack(
        click.option(
            "--out",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help=f"Write {table} here (.parquet or .csv), atomically.",
        ),
        rows_option(rows, f"{shown} shown in the text summary."),
        json_option(),
        quiet_option,
    )


cluster_options = _stack(
    click.option(
        "--scheduler",
        metavar="tcp://HOST:PORT",
        envvar="DASK_SCHEDULER_ADDRESS",
        show_envvar=True,
        default=None,
        help="Run the partitioned steps on the Dask cluster with this scheduler (needs "
        "pricing[dask]; workers need the same pricing version and the data at the same "
        "path). Default: this process.",
    ),
    click.option(
        "--workers",
        type=click.IntRange(min=1),
        default=None,
        help="Start a local Dask cluster of N single-threaded worker processes for the "
        "run (needs pricing[dask]).",
    ),
)


@contextlib.contextmanager
def executor_for(
    scheduler: str | None, workers: int | None, data_dir: Path | None, progress: Progress
) -> Iterator[Any]:
    """The executor for --scheduler/--workers (usage error for both); a cluster that
    cannot run the work raises ClusterError (exit 7)."""
    from pricing.cluster import executor

    if scheduler is not None and workers is not None:
        raise click.UsageError("give --scheduler or --workers, not both")
    if scheduler is not None:
        progress(f"connecting to the Dask scheduler at {scheduler}")
    elif workers is not None:
        progress(f"starting a local Dask cluster of {workers} worker process(es)")
    with executor(scheduler, workers, data_dir) as chosen:
        yield chosen


def check_out(out: Path | None) -> None:
    """--out must name a .parquet or .csv file."""
    if out is not None and out.suffix.lower() not in (".parquet", ".csv"):
        raise click.UsageError(f"--out must end in .parquet or .csv, got {out.name}")


format_option = click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "parquet", "json"]),
    default=None,
    help="Format of --out: csv (missing values empty), parquet, or json (records, "
    "missing values null). Default: --out's suffix for a file, csv for a folder.",
)

force_option = click.option("--force", is_flag=True, help="Replace --out if it exists (see --out).")


def export_file(out: Path | None, fmt: str | None, force: bool) -> str | None:
    """The format to write ``--out FILE`` in, checked before any work is done (each a
    usage error, exit 2, in one line): ``--format`` needs ``--out``; without ``--format`` the suffix
    must be .csv, .parquet or .json; ``out`` must not be a folder, nor exist without
    ``--force``."""
    if out is None:
        if fmt is not None:
            raise BadUsage("--format needs --out FILE")
        return None
    if out.is_dir():
        raise BadUsage(f"--out {out} is a folder; name a file")
    fmt = fmt or out.suffix.lower().lstrip(".")
    if fmt not in ("csv", "parquet", "json"):
        raise BadUsage(
            f"--out {out.name}: give --format csv|parquet|json or end the name in "
            ".csv, .parquet or .json"
        )
    if out.exists() and not force:
        raise BadUsage(f"--out {out} already exists; pass --force to replace it")
    return fmt


def export_folder(out: Path | None, fmt: str | None, force: bool) -> str | None:
    """The format to write ``--out DIR`` in (default csv), checked before any work is
    done (each a usage error, exit 2): ``--format`` needs ``--out``; ``out`` must not be
    a file; an existing folder is replaced only with ``--force`` and only when empty or
    written by an earlier export (it holds :data:`pricing.runs.run.EXPORT_MARK`), so
    that --force never deletes a folder of other files."""
    from pricing.runs.run import EXPORT_MARK

    if out is None:
        if fmt is not None:
            raise BadUsage("--format needs --out DIR")
        return None
    if out.exists() and not out.is_dir():
        raise BadUsage(f"--out {out} is a file; name a folder")
    if out.is_dir():
        if not force:
            raise BadUsage(f"--out {out} already exists; pass --force to replace it")
        if any(out.iterdir()) and not (out / EXPORT_MARK).is_file():
            raise BadUsage(
                f"--out {out} holds files that no export wrote (no {EXPORT_MARK}); "
                "--force replaces only an earlier export: choose another folder"
            )
    return fmt or "csv"
