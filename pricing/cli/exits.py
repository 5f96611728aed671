"""Exit codes, one click exception per documented code, and the one mapping from the
library's errors to them.

    0    success (``validate``, ``store check``: nothing wrong found)
    1    unexpected internal error (a bug: please report it with the traceback)
    2    usage error: bad option or argument (an as-of date after today, a negative
         --rows), output path already exists, a ``pricing sql`` query that is not one
         SELECT or that DuckDB rejects
    3    invalid input: the data, the configuration or a scenario break the contract;
         the run store, a run, a stored scenario or a segment asked for does not exist,
         is damaged, or --store is not a run store; ``store check`` found damage
    4    completed, but some segments are degraded: a component that no solver could
         clear and verify is reported (status ``failed``, its numbers empty); for ``run``
         also a segment without a usable curve, a rate withheld as implausible, or an
         intervention plan that raised
    5    infeasible request: no intervention plan meets the targets, or an inverse
         scenario's target is out of reach (the reason and the closest answer are printed)
    6    nothing was stored or written: ``run --strict`` with degraded segments, or the
         run store or an output file cannot be written (read-only, disk full)
    7    the Dask cluster cannot run the work (``--scheduler``/``--workers``): Dask is not
         installed, the scheduler does not answer, a worker runs another version of
         pricing or cannot see the data, or the cluster was lost; nothing was stored
    130  interrupted (Ctrl-C, the shell's 128 + SIGINT; click alone would exit 1): what
         was stored before the interrupt is named, and nothing else was

Library errors carry their code (:attr:`pricing.errors.PricingError.exit_code`), and an
operating system's failure to write (a full disk, a read-only file system) is code 6
wherever it surfaces; :func:`exit_for` turns either into the click exception of that
code, which prints one line to stderr (a data error under ``--json``: the validation
report on stdout) and exits.
"""

from __future__ import annotations

import errno
from collections.abc import Mapping
from enum import IntEnum
from pathlib import Path
from typing import IO, Any, ClassVar

import click

from pricing.display import escape_controls
from pricing.errors import DataError, PricingError, os_reason

#: ``click.Context.meta`` key: whether the command was asked for ``--json``
JSON_KEY = "pricing.json"
#: ``click.Context.meta`` key: the command's progress display (ended before an error shows)
PROGRESS_KEY = "pricing.progress"
#: ``click.Context.meta`` key: the shipped sample used by default, and whether to warn
SAMPLE_KEY = "pricing.sample"


class ExitCode(IntEnum):
    OK = 0
    INTERNAL = 1
    USAGE = 2
    INVALID_INPUT = 3
    DEGRADED = 4
    INFEASIBLE = 5
    RUN_FAILED = 6
    CLUSTER = 7
    INTERRUPTED = 130


#: what each code means, one line each (``pricing --help`` lists them)
MEANINGS = {
    ExitCode.OK: "ok",
    ExitCode.INTERNAL: "internal error (a bug)",
    ExitCode.USAGE: "usage error (bad option or argument; a query not one SELECT)",
    ExitCode.INVALID_INPUT: "invalid input (data, config, scenario; a missing or damaged "
    "store, run or segment)",
    ExitCode.DEGRADED: "completed with degraded segments",
    ExitCode.INFEASIBLE: "infeasible request (plan, inverse scenario)",
    ExitCode.RUN_FAILED: "nothing stored or written (--strict; store or output not writable)",
    ExitCode.CLUSTER: "the Dask cluster cannot run the work",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C; what was stored is named)",
}
#: errno values that mean "this cannot be written here", whatever wrote
_CANNOT_WRITE = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG)


class PricingExit(click.ClickException):
    """An exit with one of the documented codes; ``show`` prints ``label: message``
    (control characters escaped: a message may quote data)."""

    exit_code: ClassVar[int] = ExitCode.INTERNAL
    label: ClassVar[str] = "Error"

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(escape_controls(f"{self.label}: {self.format_message()}"), err=True)


class BadUsage(PricingExit):
    exit_code = ExitCode.USAGE


class InvalidInput(PricingExit):
    exit_code = ExitCode.INVALID_INPUT


class InvalidData(InvalidInput):
    """Invalid input data: under ``--json`` the whole validation report goes to stdout."""

    def __init__(self, error: DataError, as_json: bool) -> None:
        super().__init__(str(error))
        self.report = error.report if as_json else None

    def show(self, file: IO[Any] | None = None) -> None:
        if self.report is not None:
            click.echo(self.report.to_json())
        else:
            click.echo(escape_controls(self.format_message()), err=True)


class Degraded(PricingExit):
    exit_code = ExitCode.DEGRADED
    label = "Degraded"


class Infeasible(PricingExit):
    exit_code = ExitCode.INFEASIBLE
    label = "Infeasible"


class RunFailed(PricingExit):
    exit_code = ExitCode.RUN_FAILED


class ClusterFailed(PricingExit):
    exit_code = ExitCode.CLUSTER


class Interrupted(PricingExit):
    exit_code = ExitCode.INTERRUPTED
    label = "Interrupted"


_BY_CODE: dict[int, type[PricingExit]] = {
    ExitCode.USAGE: BadUsage,
    ExitCode.INVALID_INPUT: InvalidInput,
    ExitCode.DEGRADED: Degraded,
    ExitCode.INFEASIBLE: Infeasible,
    ExitCode.RUN_FAILED: RunFailed,
    ExitCode.CLUSTER: ClusterFailed,
}


def exit_for(error: PricingError | OSError, meta: Mapping[str, Any]) -> click.ClickException:
    """The click exception that reports ``error`` with its exit code (``meta``: the
    command context's, which says whether ``--json`` was asked for). An operating
    system's error that is not a failure to write is a bug, and is raised again."""
    if isinstance(error, DataError):
        return InvalidData(error, bool(meta.get(JSON_KEY, False)))
    if not isinstance(error, PricingError):
        if error.errno not in _CANNOT_WRITE:
            raise error
        return RunFailed(f"cannot write: {os_reason(error)}; nothing more was written")
    kind = _BY_CODE.get(error.exit_code)
    if kind is None:  # an error without a documented code is a bug: keep its traceback
        raise error
    return kind(str(error))


def interrupted(committed: list[tuple[str, Path]]) -> Interrupted:
    """The exit after Ctrl-C, naming what the command stored before it."""
    if not committed:
        return Interrupted("nothing was stored")
    stored = "; ".join(f"{what} was stored in {path}" for what, path in committed)
    return Interrupted(f"{stored} (complete); nothing else was stored")
