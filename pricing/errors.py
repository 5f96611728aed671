"""Exceptions raised by the engine.

Every exception subclasses a built-in so callers can catch broadly (``ValueError``) or
precisely (``DataError``). Messages name the table, column, row or setting at fault and
say what would fix it; the CLI prints them without a traceback.
"""

from __future__ import annotations

import difflib
from typing import Any


class PricingError(Exception):
    """Base class of every error the engine raises on purpose."""


class ConfigError(PricingError, ValueError):
    """A configuration file or setting is invalid (unknown key, wrong type, bad value)."""


class DataError(PricingError, ValueError):
    """Input data break the data contract.

    ``report`` holds every problem found, not only the first (a
    :class:`~pricing.inputs.validation.ValidationReport`; typed loosely so that this
    module, the root of every stage, imports none of them).
    """

    def __init__(self, message: str, report: Any = None) -> None:
        super().__init__(message)
        self.report = report


class EstimationError(PricingError, ValueError):
    """A curve cannot be estimated for a group: too few rows, collinear data, bad values."""


class MarketError(PricingError, ValueError):
    """A market is inconsistent: a wrong-signed elasticity, a fee outside [0, 1), a floor
    at or above its cap, an edge to an unknown segment, a bound that selects nothing."""


class SolverError(PricingError, RuntimeError):
    """An equilibrium could not be computed and verified (with the component and reason)."""


class StoreError(PricingError, ValueError):
    """The run store cannot be read or written, or holds no run by the name asked for."""


class RunError(PricingError, RuntimeError):
    """A nightly run stopped without storing anything (``--strict`` and degraded segments)."""


class ClusterError(PricingError, RuntimeError):
    """The Dask cluster a run was sent to cannot run it: Dask is not installed, the
    scheduler does not answer, a worker runs another version or cannot see the data."""


def suggest(name: str, candidates: list[str]) -> str | None:
    """The candidate closest to a misspelled ``name``, if any is close enough."""
    lowered = {c.lower(): c for c in candidates}
    if name.lower() in lowered:
        return lowered[name.lower()]
    match = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[match[0]] if match else None
