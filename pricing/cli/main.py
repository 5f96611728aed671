"""The ``pricing`` command group: options shared by every command, and the one place
where library errors become exit codes (:mod:`pricing.cli.exits`).

Heavy libraries are imported inside the commands so that ``--help`` stays fast.
"""

from __future__ import annotations

from typing import Any

import click

from pricing._version import __version__
from pricing.cli import analysis, bench, data, runs, store
from pricing.cli.exits import PROGRESS_KEY, exit_for
from pricing.errors import PricingError


class _Group(click.Group):
    """A click group that reports the library's errors with their exit codes."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PricingError as error:
            progress = ctx.meta.get(PROGRESS_KEY)
            if progress is not None:
                progress.done()
            raise exit_for(error, ctx.meta) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pricing")
def main() -> None:
    """Equilibrium pricing engine for a two-sided services marketplace.

    DATA_DIR holds jobs and supply tables (and optionally shifters, adjacency,
    interventions) as .parquet or .csv; see data/README.md for the contract.
    Exit codes: 0 ok, 1 internal error, 2 usage error, 3 invalid input, 4 completed
    with degraded segments, 5 infeasible request (plan, inverse scenario), 6 run failed
    (nothing stored), 7 the Dask cluster cannot run the work.
    """


for module in (data, analysis, runs, store, bench):
    for command in module.COMMANDS:
        main.add_command(command)
