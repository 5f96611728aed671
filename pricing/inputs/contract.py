"""The input data contract (v1.1), stated once: the tables, their columns, types and rules.

Validation checks data against it (:mod:`pricing.inputs.validation`), the simulator writes
its tables in it (:func:`arrow_schema`), and the intervention catalogue is read by it
(:data:`CATALOGUE_COLUMNS`). ``data/README.md`` documents it for people.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pricing.config import MAX_MONEY, MAX_RATE

if TYPE_CHECKING:
    import pyarrow as pa

    from pricing.config import RunConfig

TIERS = ("entry", "intermediate", "expert")
INTERVENTION_KINDS = ("recruit", "reskill", "fee_discount")
REQUIRED_TABLES = ("jobs", "supply")
OPTIONAL_TABLES = ("shifters", "adjacency", "interventions")
#: no date of the data (nor an as-of date) is earlier: online freelance marketplaces
#: began in the late 1990s, and an earlier date is a typo or a zero date (1970-01-01,
#: 0001-01-01) that would stretch the panel over centuries of empty weeks
EARLIEST_DATE = dt.date(1990, 1, 1)
#: most hours one row may hold, a job's or a freelancer's week (50 person-years of
#: full-time work; a profile may be an agency's, so not the 168 hours of one week): sums
#: over billions of rows stay exact to far below an hour
MAX_HOURS = 1e5
#: most units of one lever in a catalogue
MAX_UNITS = 1e6


@dataclass(frozen=True)
class Column:
    """One column of the contract: its logical type and the value rules it must meet."""

    name: str
    type: str  # "string" | "date" | "number" | "bool"
    optional: bool = False  # the column may be absent from the file
    nullable: bool = False
    positive: bool = False  # > 0
    non_negative: bool = False  # >= 0
    at_most: float | None = None  # <= this
    integer: bool = False
    monday: bool = False  # a date that must be a Monday
    not_after_as_of: bool = False
    allowed: tuple[str, ...] = ()


_SEGMENT = (Column("category", "string"), Column("tier", "string", allowed=TIERS))
_REGION = Column("region", "string")

CONTRACT: dict[str, tuple[Column, ...]] = {
    "jobs": (
        Column("job_id", "string"),
        Column("posted_at", "date", not_after_as_of=True),
        *_SEGMENT,
        Column("hours", "number", positive=True, at_most=MAX_HOURS),
        Column("budget_rate", "number", positive=True, at_most=MAX_RATE),
        Column("hired", "bool"),
        Column("hired_rate", "number", nullable=True, positive=True, at_most=MAX_RATE),
    ),
    "supply": (
        Column("freelancer_id", "string"),
        Column("week", "date", monday=True, not_after_as_of=True),
        *_SEGMENT,
        Column("available_hours", "number", non_negative=True, at_most=MAX_HOURS),
        Column("ask_rate", "number", positive=True, at_most=MAX_RATE),
    ),
    "shifters": (Column("week", "date", monday=True),),
    # v1.1: a pool may serve another tier's or region's segments (pricing.inputs.adjacency)
    "adjacency": (
        Column("from_category", "string"),
        Column("to_category", "string"),
        Column("friction", "number", non_negative=True),
        Column("from_tier", "string", optional=True, nullable=True, allowed=TIERS),
        Column("to_tier", "string", optional=True, nullable=True, allowed=TIERS),
        Column("from_region", "string", optional=True, nullable=True),
        Column("to_region", "string", optional=True, nullable=True),
    ),
    "interventions": (
        Column("intervention_id", "string"),
        Column("category", "string"),
        Column("kind", "string", allowed=INTERVENTION_KINDS),
        Column("cost_per_unit", "number", positive=True, at_most=MAX_MONEY),
        Column("max_units", "number", non_negative=True, integer=True, at_most=MAX_UNITS),
        Column("effect_per_unit", "number", non_negative=True),
        Column("to_category", "string", optional=True, nullable=True),
        Column("decay", "number", optional=True, nullable=True, positive=True, at_most=1.0),
        Column("open_friction", "number", optional=True, nullable=True, non_negative=True),
    ),
}


def contract(table: str, config: RunConfig) -> tuple[Column, ...]:
    """The contract columns of ``table`` under ``config`` (region joins jobs and supply
    when it is a segment key)."""
    columns = CONTRACT[table]
    if table in ("jobs", "supply") and "region" in config.segment_keys:
        columns = (*columns, _REGION)
    return columns


def column_spec(table: str, column: str, config: RunConfig) -> Column:
    """The rules of one column; every non-key shifters column is a numeric shifter."""
    for col in contract(table, config):
        if col.name == column:
            return col
    if table == "shifters":
        return Column(column, "string" if column == "category" else "number")
    raise KeyError(f"{table}.{column} is not part of the contract")


#: the id shown next to a row in examples
ROW_ID = {
    "jobs": "job_id",
    "supply": "freelancer_id",
    "shifters": "week",
    "adjacency": "from_category",
    "interventions": "intervention_id",
}


#: the catalogue's columns, in the contract's order (the optional ones included)
CATALOGUE_COLUMNS = tuple(c.name for c in CONTRACT["interventions"])

_ARROW = {"string": "string", "date": "date32", "number": "float64", "bool": "bool_"}


def arrow_schema(table: str, region: bool = False, optional: tuple[str, ...] = ()) -> pa.Schema:
    """The Arrow schema of ``table`` in the contract, for writers of data such as the
    simulator: the required columns, the ``optional`` ones named, and ``region`` after
    ``tier`` when asked for; whole numbers as int64."""
    import pyarrow as pa

    fields = []
    for c in CONTRACT[table]:
        if c.optional and c.name not in optional:
            continue
        fields.append((c.name, pa.int64() if c.integer else getattr(pa, _ARROW[c.type])()))
        if region and c.name == "tier":
            fields.append((_REGION.name, pa.string()))
    return pa.schema(fields)
