"""The `pricing` command line."""

from pricing.cli.commands import main

__all__ = ["main"]
