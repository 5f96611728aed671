"""The statuses the engine reports, as enums (they compare equal to their string values,
which is how tables and manifests store them)."""

from __future__ import annotations

from enum import StrEnum


class SegmentStatus(StrEnum):
    """How a segment's equilibrium came out."""

    SOLVED = "solved"  # cleared and verified on the first path that took it
    SOLVED_FALLBACK = "solved_fallback"  # cleared and verified by the fallback solver
    FAILED = "failed"  # no path cleared and verified its component: numbers left empty
    NO_CURVE = "no_curve"  # no usable demand or supply curve: not solved
    # guidance only: cleared, but the rate lies beyond [guidance] plausible_ratio of
    # today's observed rate, so it is withheld (pricing.decisions.guidance)
    IMPLAUSIBLE = "implausible"


#: statuses whose numbers are a verified equilibrium
CLEARED = (SegmentStatus.SOLVED, SegmentStatus.SOLVED_FALLBACK)


class PlanStatus(StrEnum):
    """How an intervention plan came out; a run also records why it has none."""

    OPTIMAL = "optimal"
    FEASIBLE = "feasible"  # CP-SAT's time limit: the gap to its bound is reported
    INFEASIBLE = "infeasible"  # no plan meets the targets: the cheapest relaxation is said
    EMPTY = "empty"  # no budget
    NOT_CONFIGURED = "not_configured"  # a run without a catalogue or a budget
    FAILED = "failed"  # planning raised: the run went on, degraded


class RunStatus(StrEnum):
    """How a stored run or what-if came out as a whole."""

    OK = "ok"
    DEGRADED = "degraded"  # some segment without a curve, not cleared, or a failed plan
    INFEASIBLE = "infeasible"  # the plan or an inverse target cannot be met
