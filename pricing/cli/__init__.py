"""The `pricing` command line: a thin click group over the library (one module per
command group; exit codes in :mod:`pricing.cli.exits`)."""

from pricing.cli.main import main

__all__ = ["main"]
