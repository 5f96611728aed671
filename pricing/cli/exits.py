"""Exit codes, one click exception per documented code, and the one mapping from the
library's errors to them.

    0  success
    1  unexpected internal error (a bug: please report it with the traceback)
    2  usage error: bad option or argument, output path already exists
    3  invalid input: the data, the configuration or a scenario break the contract, or
       the run store, a run, a stored scenario or a segment asked for does not exist
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

Library errors carry their code (:attr:`pricing.errors.PricingError.exit_code`);
:func:`exit_for` turns one into the click exception of that code, which prints one line
to stderr (a data error under ``--json``: the validation report on stdout) and exits.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum
from typing import IO, Any, ClassVar

import click

from pricing.errors import DataError, PricingError

#: ``click.Context.meta`` key: whether the command was asked for ``--json``
JSON_KEY = "pricing.json"
#: ``click.Context.meta`` key: the command's progress display (ended before an error shows)
PROGRESS_KEY = "pricing.progress"


class ExitCode(IntEnum):
    OK = 0
    INTERNAL = 1
    USAGE = 2
    INVALID_INPUT = 3
    DEGRADED = 4
    INFEASIBLE = 5
    RUN_FAILED = 6
    CLUSTER = 7


class PricingExit(click.ClickException):
    """An exit with one of the documented codes; ``show`` prints ``label: message``."""

    exit_code: ClassVar[int] = ExitCode.INTERNAL
    label: ClassVar[str] = "Error"

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"{self.label}: {self.format_message()}", err=True)


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
            click.echo(self.format_message(), err=True)


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


_BY_CODE: dict[int, type[PricingExit]] = {
    ExitCode.INVALID_INPUT: InvalidInput,
    ExitCode.DEGRADED: Degraded,
    ExitCode.INFEASIBLE: Infeasible,
    ExitCode.RUN_FAILED: RunFailed,
    ExitCode.CLUSTER: ClusterFailed,
}


def exit_for(error: PricingError, meta: Mapping[str, Any]) -> click.ClickException:
    """The click exception that reports ``error`` with its exit code (``meta``: the
    command context's, which says whether ``--json`` was asked for)."""
    if isinstance(error, DataError):
        return InvalidData(error, bool(meta.get(JSON_KEY, False)))
    kind = _BY_CODE.get(error.exit_code)
    if kind is None:  # an error without a documented code is a bug: keep its traceback
        raise error
    return kind(str(error))
