"""The ``pricing`` command group: options shared by every command, and the one place
where library errors, failures to write and interrupts become exit codes
(:mod:`pricing.cli.exits`).

Heavy libraries are imported inside the commands so that ``--help`` stays fast.
"""

from __future__ import annotations

from typing import Any

import click

from pricing._version import __version__
from pricing.cli import analysis, backtest, bench, data, runs, store
from pricing.cli.exits import MEANINGS, PROGRESS_KEY, exit_for, interrupted
from pricing.errors import PricingError


class _Group(click.Group):
    """A click group that reports the library's errors with their exit codes."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (PricingError, OSError) as error:
            self._end_progress(ctx)
            raise exit_for(error, ctx.meta) from None
        except KeyboardInterrupt:
            progress = self._end_progress(ctx)
            raise interrupted([] if progress is None else progress.committed) from None

    @staticmethod
    def _end_progress(ctx: click.Context) -> Any:
        progress = ctx.meta.get(PROGRESS_KEY)
        if progress is not None:
            progress.done()
        return progress


_EXIT_CODES = "\n".join(f"  {int(code):>3}  {text}" for code, text in MEANINGS.items())


@click.group(
    cls=_Group,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog='\b\nExit codes (README "Exit codes"):\n' + _EXIT_CODES,
)
@click.version_option(__version__, prog_name="pricing")
def main() -> None:
    """Equilibrium pricing engine for a two-sided services marketplace.

    DATA_DIR holds jobs and supply tables (and optionally shifters, adjacency,
    interventions) as .parquet or .csv; see data/README.md for the contract.
    """


for module in (data, analysis, runs, backtest, store, bench):
    for command in module.COMMANDS:
        main.add_command(command)
