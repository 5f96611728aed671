"""The benchmark suite that ``pricing bench`` runs: which stages, at which sizes.

Each stage is a function ``(Sizes) -> iterator of Case`` here, choosing the sizes (and
the variants that depend on size), and a module of :mod:`pricing.bench` of the same name
holding the stage's setups and baselines; its docstring says why its baseline is the
right one. A case is set up (seeded data, markets, stored runs; cached in the benchmarks
folder, :mod:`pricing.bench.paths`) only when its stage runs, and the stage modules are
imported only then: this module stays light enough for ``pricing bench --help``.

``--quick`` picks the smallest size of each stage, for CI's smoke test; ``--size`` runs
one stage at sizes of one's choosing, for the stages listed with a size in
:data:`STAGES`.

To add a stage: write ``pricing/bench/<stage>.py`` (setups, baselines, a function that
builds the :class:`~pricing.bench.harness.Case` of one size, and a docstring saying what
is timed and why its baseline is the right one), add one function here that picks its
sizes, register it in :data:`STAGES` (with what ``--size`` counts, and the modules it
needs beyond pricing's own dependencies), and describe it in benchmarks/README.md.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pricing.report.browser import CHROMIUM_ENV, chromium

if TYPE_CHECKING:
    from pricing.bench.harness import Case


@dataclass(frozen=True)
class Sizes:
    """The sizes a stage runs: its smallest when ``quick``, all of them otherwise, or
    ``given`` (``pricing bench --size``) instead of either."""

    quick: bool = False
    given: tuple[int, ...] = ()

    def pick(self, smallest: tuple[int, ...], every: tuple[int, ...]) -> tuple[int, ...]:
        return self.given or (smallest if self.quick else every)


def load(sizes: Sizes) -> Iterator[Case]:
    from pricing.bench import load as stage

    for rows in sizes.pick((10_000,), (10_000, 100_000, 1_000_000)):
        yield stage.case(rows)


def estimate(sizes: Sizes) -> Iterator[Case]:
    from pricing.bench import estimate as stage

    for segments in sizes.pick((1_000,), (1_000, 10_000, 100_000)):
        yield stage.case(segments)


def equilibrium(sizes: Sizes) -> Iterator[Case]:
    """``auto`` at every size; the convex program up to 10^4 segments (coupled only when
    quick); the per-component loop at 10^3 segments (not when quick)."""
    from pricing.bench import equilibrium as stage

    every = {"uncoupled": (1_000, 10_000, 100_000, 1_000_000), "coupled": (1_000, 10_000, 100_000)}
    for kind in ("uncoupled", "coupled"):
        for n in sizes.pick((1_000,), every[kind]):
            methods = ["auto"]
            if n <= 10_000 and not (sizes.quick and kind == "uncoupled"):
                methods.append("cvxpy")
            if n == 1_000 and not sizes.quick:
                methods.append("loop")
            yield from stage.cases(kind, n, methods)


def connected(sizes: Sizes) -> Iterator[Case]:
    """One connected market of 10^4 segments against the same segments cut into
    components of 10, 10^5 connected segments and 10^5 in components of 2–50 against the
    closed form, and a warm-started what-if on the connected 10^5 against a cold solve
    (the cut case at 10^3 only when quick)."""
    from pricing.bench import connected as stage

    yield from stage.cases(sizes.quick)


def whatif(sizes: Sizes) -> Iterator[Case]:
    from pricing.bench import whatif as stage

    for segments in sizes.pick((1_000,), (10_000, 100_000)):
        yield from stage.warm_cases(segments)
    for segments in sizes.pick((1_000,), (10_000,)):
        yield from stage.stored_cases(segments)


def guidance(sizes: Sizes) -> Iterator[Case]:
    """Both markets and the nightly run's step; the uncoupled one only when quick (the
    others take longer)."""
    from pricing.bench import guidance as stage

    for kind in ("uncoupled",) if sizes.quick else ("uncoupled", "coupled"):
        yield stage.case(kind)
    if not sizes.quick:
        yield stage.nightly_case()


def interventions(sizes: Sizes) -> Iterator[Case]:
    """The random markets and the sample; the sample only when quick."""
    from pricing.bench import interventions as stage

    for name in ("sample",) if sizes.quick else tuple(stage.MARKETS):
        yield stage.case(name)


def run(sizes: Sizes) -> Iterator[Case]:
    """The plan runs up to 10^6 job rows; at 10^7 it is left out (planning that market is
    the interventions stage's subject at a smaller size), and when quick."""
    from pricing.bench import run as stage

    for rows in sizes.pick((10_000,), (1_000_000, 10_000_000)):
        plan = rows <= 1_000_000 and not sizes.quick
        yield stage.case(rows, plan, None if sizes.quick else 1)


def backtest(sizes: Sizes) -> Iterator[Case]:
    """12 origins of 1,000 segments (issue 17's size), once: it takes minutes; when
    quick, 2 origins of 36 segments."""
    from pricing.bench import backtest as stage

    for segments in sizes.pick((36,), (1_000,)):
        yield stage.case(segments, 2 if sizes.quick else 12, None if sizes.quick else 1)


def report(sizes: Sizes) -> Iterator[Case]:
    """The sample (36 segments), then simulated markets."""
    from pricing.bench import report as stage

    yield from stage.cases(sizes.pick((36,), (36, 1_000, 10_000)))


def cluster(sizes: Sizes) -> Iterator[Case]:
    from pricing.bench import cluster as stage

    yield from stage.cases(sizes.quick)


@dataclass(frozen=True)
class Stage:
    """A stage of the suite: its cases, what ``--size`` counts for it (None: its markets
    are fixed) and the modules it needs beyond pricing's dependencies (the ``bench``
    extra)."""

    cases: Callable[[Sizes], Iterator[Case]]
    size: str | None = None
    needs: tuple[str, ...] = ()


#: every stage, in the order the suite runs them
STAGES: dict[str, Stage] = {
    "load": Stage(load, "job rows"),
    "estimate": Stage(estimate, "segments", ("linearmodels",)),
    "equilibrium": Stage(equilibrium, "segments"),
    "connected": Stage(connected),
    "whatif": Stage(whatif, "segments"),
    "guidance": Stage(guidance),
    "interventions": Stage(interventions),
    "run": Stage(run, "job rows"),
    "backtest": Stage(backtest, "segments"),
    "report": Stage(report, "segments; 36 is the sample", ("playwright",)),
    "cluster": Stage(cluster, None, ("dask", "distributed")),
}


def stages(only: str | None) -> list[str]:
    """The stages ``only`` selects: all for None, else the stage it names, starts or is
    the start of (``equilibrium.coupled`` selects equilibrium, ``e`` two stages)."""
    return [s for s in STAGES if only is None or s.startswith(only) or only.startswith(s)]


def missing(names: list[str]) -> list[str]:
    """What the stages ``names`` need and this machine lacks, one line each."""
    lines = []
    for name in names:
        absent = [m for m in STAGES[name].needs if importlib.util.find_spec(m) is None]
        if absent:
            lines.append(f"{name} needs {', '.join(absent)} (pip install 'pricing[bench]')")
        if name == "report" and chromium() is None:
            lines.append(f"report needs Chromium (apt-get install chromium, or {CHROMIUM_ENV})")
    return lines


def cases(sizes: Sizes, only: str | None = None) -> Iterator[Case]:
    """The suite's cases in order; ``only`` keeps a stage (``equilibrium``) or the cases
    whose name starts with it (``equilibrium.coupled``)."""
    for stage in stages(only):
        for case in STAGES[stage].cases(sizes):
            if only is None or case.name.startswith(only) or stage == only:
                yield case
