"""Exceptions raised by the engine, and the suggestion of a name that was misspelled.

Every exception subclasses a built-in so callers can catch broadly (``ValueError``) or
precisely (``DataError``). Messages name the table, column, row or setting at fault and
say what would fix it. Each knows the exit code the command line gives it
(``exit_code``, README "Exit codes"); the CLI prints the message without a traceback.
"""

from __future__ import annotations

import difflib
from typing import Any


class PricingError(Exception):
    """Base class of every error the engine raises on purpose."""

    #: the command line's exit code for it (README "Exit codes")
    exit_code = 1


class ConfigError(PricingError, ValueError):
    """A configuration file or setting is invalid (unknown key, wrong type, bad value)."""

    exit_code = 3


class DataError(PricingError, ValueError):
    """Input data break the data contract.

    ``report`` holds every problem found, not only the first (a
    :class:`~pricing.inputs.validation.ValidationReport`; typed loosely so that this
    module, the root of every stage, imports none of them).
    """

    exit_code = 3

    def __init__(self, message: str, report: Any = None) -> None:
        super().__init__(message)
        self.report = report


class EstimationError(PricingError, ValueError):
    """A curve cannot be estimated for a group: too few rows, collinear data, bad values."""

    exit_code = 3


class MarketError(PricingError, ValueError):
    """A market is inconsistent: a wrong-signed elasticity, a fee outside [0, 1), a floor
    at or above its cap, an edge to an unknown segment, a bound that selects nothing."""

    exit_code = 3


class SolverError(PricingError, RuntimeError):
    """An equilibrium could not be computed and verified (with the component and reason).

    The engine reports such components in its results rather than raising (status
    ``failed``); the class is there for code built on it that prefers to raise."""

    exit_code = 4


class StoreError(PricingError, ValueError):
    """The run store cannot be read, or holds no run or scenario by the name asked for."""

    exit_code = 3


class StoreWriteError(StoreError):
    """The run store cannot be written (read-only, full, not a folder): nothing was stored."""

    exit_code = 6


class QueryError(PricingError, ValueError):
    """A query over the run store is not one read-only SELECT, or DuckDB rejects it."""

    exit_code = 2


class OutputError(PricingError, OSError):
    """An output file (``--out``, a report) cannot be written: nothing was written."""

    exit_code = 6


class RunError(PricingError, RuntimeError):
    """A nightly run stopped without storing anything (``--strict`` and degraded segments)."""

    exit_code = 6


class ClusterError(PricingError, RuntimeError):
    """The Dask cluster a run was sent to cannot run it: Dask is not installed, the
    scheduler does not answer, a worker runs another version or cannot see the data."""

    exit_code = 7


def suggest(name: str, candidates: list[str]) -> str | None:
    """The candidate closest to a misspelled ``name``, if any is close enough."""
    lowered = {c.lower(): c for c in candidates}
    if name.lower() in lowered:
        return lowered[name.lower()]
    match = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[match[0]] if match else None


def os_reason(exc: OSError) -> str:
    """What went wrong in an operating system's error, in one line: its strerror and the
    file it names, else its text."""
    if exc.strerror:
        return exc.strerror + (f" ({exc.filename})" if exc.filename else "")
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
