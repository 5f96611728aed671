"""The nightly run and what-ifs in batches: the only orchestration, one line per arrow of
DESIGN.md §1.

    load + validate ─► aggregate ─► estimate ─► market          (fitted_market)
                                                  ├► equilibrium ─► guidance
                                                  └► interventions (catalogue and budget given)
                                                                    ─► store ─► report (run_batch)
    stored run ─► scenarios, every one checked first ─► solve ─► store ─► report (run_whatifs)

The command line calls these and prints what they return; a notebook calls the same.

**As-of date.** A run covers whole weeks: its as-of date is a Sunday, by default the one
ending the last week the jobs table covers to its final day; ``as_of=D`` (``--as-of D``
everywhere on the command line) takes the Sunday on or before D. Later rows are left
out of the panel and counted (``rows_after_as_of``); they are still validated, against
today. An as-of date after today, or before the contract's earliest date, is rejected.

**Degraded, not dead.** A segment without a usable curve or whose component no solver
clears is reported (``failed``) and the rest of the run goes on; so does a plan that
raises. The run is stored with status ``degraded``, unless ``strict`` asks to store
nothing instead (:class:`RunError`). Invalid inputs or settings store nothing.

**Stability.** Guidance is capped against the store's latest run before this as-of date.
"""

from __future__ import annotations

import datetime as dt
import platform
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property, partial
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from pricing.cluster import LOCAL, Executor, peak_memory_mb
from pricing.config import RunConfig, Scenario, load_scenario, resolve_config
from pricing.decisions.flows import flows_table
from pricing.decisions.guidance import Guidance, band_tasks, check_previous, rate_guidance
from pricing.decisions.interventions import InterventionPlan, plan_interventions
from pricing.decisions.scenario import WhatIf, check_scenario
from pricing.errors import ConfigError, DataError, MarketError, RunError
from pricing.estimation.curves import CurveSet, fit_curves
from pricing.inputs import SAMPLE_DIR
from pricing.inputs.contract import EARLIEST_DATE
from pricing.inputs.panel import Panel, build_panel, last_complete_week, rows_after
from pricing.inputs.validation import (
    CheckedInputs,
    check_inputs,
)
from pricing.market.equilibrium import EquilibriumResult, equilibrium_table, solve
from pricing.market.market import (
    ANCHOR_WEEK,
    FLAG_COLUMNS,
    PARAMETERS,
    UNCERTAINTY,
    Market,
)
from pricing.report.report import report_path
from pricing.runs.provenance import fingerprints, versions
from pricing.runs.run import Run, save_whatif
from pricing.statuses import PlanStatus, RunStatus
from pricing.store.manifest import (
    Components,
    Counts,
    GuidanceCounts,
    Manifest,
    PlanSummary,
    Provenance,
    Statuses,
    Weeks,
)
from pricing.store.store import DEFAULT_STORE, ReaderHold, RunStore
from pricing.store.stored import latest_before

STEPS = (
    "validate",
    "aggregate",
    "estimate",
    "market",
    "equilibrium",
    "guidance",
    "interventions",
    "store",
)
_LABELS = {
    "validate": "loading and validating the inputs",
    "aggregate": "aggregating the segment x week panel",
    "estimate": "estimating demand and supply curves",
    "market": "building the market",
    "equilibrium": "clearing the market",
    "guidance": "rate guidance",
    "interventions": "planning interventions",
    "store": "storing the run",
}


class Reporter(Protocol):
    """Where a run reports its steps (``step``), their sub-steps (call), what it had to
    skip (``warn``) and what it committed to the store (``stored``, as the commit
    happens: an interrupt right after it can still say what was stored)."""

    def step(self, label: str) -> None: ...

    def __call__(self, label: str) -> None: ...

    def warn(self, message: str) -> None: ...

    def stored(self, what: str, path: Path) -> None: ...


class _Silent:
    def step(self, label: str) -> None:
        pass

    def __call__(self, label: str) -> None:
        pass

    def warn(self, message: str) -> None:
        pass

    def stored(self, what: str, path: Path) -> None:
        pass


class _Clock:
    """Times each step into ``timings`` and announces it to the reporter."""

    def __init__(self, report: Reporter, timings: dict[str, float]) -> None:
        self.report, self.timings = report, timings

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        self.report.step(f"[{STEPS.index(name) + 1}/{len(STEPS)}] {_LABELS[name]}")
        start = time.perf_counter()
        yield
        self.timings[name] = round(time.perf_counter() - start, 3)


# --------------------------------------------------------------------------- the steps
@dataclass(frozen=True)
class Inputs:
    """Inputs that passed validation, with the week a run ends on.

    ``through`` is the as-of Sunday; ``rows_after`` the jobs and supply rows after it,
    left out of the panel; ``config_source`` the TOML the settings came from (None:
    given or defaults)."""

    data_dir: Path
    config: RunConfig
    config_source: Path | None
    checked: CheckedInputs
    through: dt.date
    rows_after: dict[str, int]

    @cached_property
    def catalogue(self) -> pd.DataFrame | None:
        return self.table("interventions")

    def table(self, name: str) -> pd.DataFrame | None:
        """An optional input table (None when the data has none)."""
        return self.checked.table(name) if name in self.checked.tables else None


@dataclass(frozen=True)
class FittedMarket:
    """Everything a run or an analyst's command solves on: the inputs, the panel, the
    curves and the market, with each step's seconds."""

    inputs: Inputs
    panel: Panel
    curves: CurveSet
    market: Market
    next_market: Market  # a week (or ``ahead`` weeks) after the as-of week: forecast levels
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def config(self) -> RunConfig:
        return self.inputs.config


def check_as_of(as_of: dt.date) -> None:
    """A :class:`ConfigError` unless ``as_of`` lies between the contract's earliest date
    and today: a run as of a future date would stay the store's ``latest`` run until
    that date, and no marketplace data is older than :data:`EARLIEST_DATE`."""
    today = dt.date.today()
    if as_of > today:
        raise ConfigError(
            f"the as-of date {as_of.isoformat()} is after today ({today.isoformat()}): a "
            "run covers weeks that have happened; leave --as-of out for the latest week"
        )
    if as_of < EARLIEST_DATE:
        raise ConfigError(
            f"the as-of date {as_of.isoformat()} is before {EARLIEST_DATE.isoformat()}, "
            "the earliest date the data contract accepts"
        )


def checked_inputs(
    data_dir: str | Path = SAMPLE_DIR,
    config: RunConfig | str | Path | None = None,
    as_of: dt.date | None = None,
    progress: Reporter | None = None,
) -> Inputs:
    """The inputs of ``data_dir`` validated and the as-of week found (module docstring).

    ``config``: settings, or a TOML path (default: ``pricing.toml`` in ``data_dir`` if
    present, else defaults). Raises :class:`DataError` (with the full report) or
    :class:`ConfigError`."""
    data_dir = Path(data_dir)
    if as_of is not None:
        check_as_of(as_of)
    settings, source = _settings(data_dir, config)
    # rows after the as-of week are left out, not wrong: dates are checked against today
    report = check_inputs(data_dir, settings, progress=progress)
    if not report.ok:
        raise DataError(report.summary(), report=report)
    checked = report.checked()
    through = _through(checked, as_of)
    return Inputs(data_dir, settings, source, checked, through, rows_after(checked, through))


def fitted_market(
    data_dir: str | Path = SAMPLE_DIR,
    config: RunConfig | str | Path | None = None,
    as_of: dt.date | None = None,
    executor: Executor = LOCAL,
    progress: Reporter | None = None,
    timings: dict[str, float] | None = None,
) -> FittedMarket:
    """Validate ``data_dir`` and cut it at the as-of week (:func:`checked_inputs`),
    aggregate the panel, estimate the curves and build the market: the first four steps
    of every run and of the analysts' commands. Raises as :func:`checked_inputs` does,
    and :class:`MarketError` for ``[market]`` settings that do not fit the segments.
    ``timings`` (if given) receives each step's seconds."""
    clock = _Clock(progress or _Silent(), timings if timings is not None else {})
    with clock("validate"):
        inputs = checked_inputs(data_dir, config, as_of, progress)
    with clock("aggregate"):
        panel = build_panel(inputs.checked, inputs.through, executor)
    return fit_market(inputs, panel, executor, clock=clock)


def fit_market(
    inputs: Inputs,
    panel: Panel,
    executor: Executor = LOCAL,
    ahead: int = 1,
    clock: _Clock | None = None,
) -> FittedMarket:
    """Estimate the curves of ``panel`` and build the market of its as-of week and the
    one ``ahead`` weeks on (``next_market``): the steps every run, analyst's command and
    backtest origin shares."""
    clock = clock or _Clock(_Silent(), {})
    adjacency, settings = inputs.table("adjacency"), inputs.config.market
    if (
        adjacency is not None
        and len(adjacency)
        and band_tasks(panel.n_segments, inputs.config.guidance) > 1
    ):
        # the band draws of coupled segments will run in parts that hold the GIL: their
        # worker processes' server starts now, beside the estimation
        executor.prepare(rate_guidance.__module__)
    with clock("estimate"):
        curves = fit_curves(panel, inputs.config.estimation, executor, ahead)
    with clock("market"):
        market = Market.from_curves(curves, adjacency, settings)
        following = Market.from_curves(curves, adjacency, settings, week="next")
    return FittedMarket(inputs, panel, curves, market, following, dict(clock.timings))


def run_batch(
    data_dir: str | Path = SAMPLE_DIR,
    config: RunConfig | str | Path | None = None,
    store: RunStore | str | Path = DEFAULT_STORE,
    as_of: dt.date | None = None,
    strict: bool = False,
    progress: Reporter | None = None,
    executor: Executor = LOCAL,
    report: bool = False,
) -> Run:
    """Run every step on ``data_dir`` and commit the result to ``store``; with ``report``
    write its HTML report beside the stored tables (``report.html``).

    ``executor`` runs the partitioned steps — aggregation, estimation, the coupled
    equilibrium and the band draws — here (the default) or on a Dask cluster
    (:func:`pricing.cluster.executor`); the result is the same, and it is stored here.
    Raises as :func:`fitted_market` does for invalid inputs, and :class:`RunError` when
    ``strict`` and some segment is degraded; nothing is stored then.
    """
    reporter = progress or _Silent()
    store = store if isinstance(store, RunStore) else RunStore(store)
    store.check_writable()
    created = dt.datetime.now(dt.UTC)
    timings: dict[str, float] = {}
    fitted = fitted_market(data_dir, config, as_of, executor, reporter, timings)
    inputs = fitted.inputs
    clock = _Clock(reporter, timings)
    with clock("equilibrium"):
        equilibrium = solve(fitted.market, executor=executor)
        forecast = solve(fitted.next_market, baseline=equilibrium, executor=executor)
    with clock("guidance"):
        previous = latest_before(store, inputs.through, reporter.warn)
        previous_guidance = None if previous is None else previous.guidance
        guidance = rate_guidance(
            equilibrium,
            fitted.config.guidance,
            None
            if previous_guidance is None
            else check_previous(previous_guidance, list(fitted.config.segment_keys)),
            executor,
            forecast=forecast,
        )
    with clock("interventions"):
        plan, plan_status, plan_error = _plan(fitted, equilibrium, reporter)
    degraded = _degraded(equilibrium, guidance, plan_error)
    if strict and degraded:
        raise RunError(
            "--strict: the run is degraded, nothing was stored:\n"
            + "\n".join(f"  - {d}" for d in degraded)
        )
    reporter.step(f"[{len(STEPS)}/{len(STEPS)}] {_LABELS['store']}")
    tables = _tables(fitted, equilibrium, guidance, plan)
    manifest = Manifest(
        run_id=inputs.through.isoformat(),
        as_of=inputs.through,
        created=created.isoformat(timespec="seconds"),
        status=_status(degraded, plan_status),
        degraded=tuple(degraded),
        counts=_counts(fitted.curves, equilibrium),
        statuses=_statuses(equilibrium, guidance, plan_status, plan_error),
        plan=PlanSummary.of(plan),
        previous_run=None if previous is None else previous.run_id,
        tables={name: len(frame) for name, frame in tables.items()},
        **dict(provenance(inputs, fitted.panel, executor, guidance.workers)),
        timings_s=dict(timings),
        peak_memory_mb=peak_memory_mb(),
    )
    if previous is not None:
        previous.close()  # its build may be removed once superseded, by this commit too
    hold = ReaderHold()  # taken by the commit: the new build cannot go before it is read
    path = store.write_run(
        inputs.through,
        tables,
        manifest,
        finish=_report_writer(store, reporter) if report else None,
        on_commit=lambda committed: reporter.stored(f"run {inputs.through}", committed),
        hold=hold,
    )
    return Run.open(path, store, hold, executor=executor)


def provenance(
    inputs: Inputs, panel: Panel, executor: Executor, workers: dict[str, float] | None = None
) -> Provenance:
    """What a run or a backtest read and with what, for its manifest: the data folder,
    settings, input fingerprints, rows left out, the panel's weeks, versions, machine,
    and where the parts ran (with the band draws' ``workers``, :attr:`Guidance.workers`)."""
    return Provenance(
        data_dir=str(inputs.data_dir.resolve()),
        config_source=str(inputs.config_source) if inputs.config_source else None,
        config=inputs.config.model_dump(mode="json"),
        inputs=fingerprints(inputs.data_dir, inputs.checked),
        rows_after_as_of=inputs.rows_after,
        weeks=Weeks(first=panel.weeks.min().date(), count=len(panel.weeks)),
        versions=versions(),
        machine={"platform": platform.platform(), "cpus": LOCAL.threads},
        compute={**executor.describe(), **(workers or {})},
    )


def _report_writer(store: RunStore, reporter: Reporter) -> Callable[[Path], None]:
    """Write the report into a build before its commit: it is part of the build, never
    added to a folder a concurrent re-run may already have replaced."""

    def write(folder: Path) -> None:
        reporter("writing the report")
        # the folder is not committed yet: no writer can remove it, so no hold is needed
        unheld = Run.open(folder, store, ReaderHold())
        unheld.report().write(report_path(folder))

    return write


@dataclass(frozen=True)
class StoredWhatIf:
    """A what-if solved against a stored run and committed: the result, the folder it is
    stored in and its report (None when not written)."""

    result: WhatIf
    path: Path
    report: Path | None
    store_seconds: float


@dataclass(frozen=True)
class WhatIfBatch:
    """Scenarios solved against one stored run, in the order given; ``timings`` has the
    seconds the baseline's solve took."""

    results: list[StoredWhatIf]
    timings: dict[str, float]


def run_whatifs(
    scenarios: Sequence[Scenario | str | Path],
    baseline: Run,
    progress: Reporter | None = None,
    report: bool = False,
) -> WhatIfBatch:
    """Solve every scenario (a :class:`Scenario` or a TOML path) against ``baseline`` and
    store each, with its report when ``report``.

    Every scenario is read and checked against the baseline's market first, and a
    :class:`ConfigError` lists every problem of every file before anything is solved;
    names must differ within a batch (each is stored under its name)."""
    reporter = progress or _Silent()
    chosen = _checked_scenarios(scenarios, baseline)
    reporter(f"solving the baseline market ({len(baseline.market):,} segments)")
    start = time.perf_counter()
    _ = baseline.baseline
    timings = {"baseline": round(time.perf_counter() - start, 3)}
    out = []
    for i, scenario in enumerate(chosen, 1):
        reporter.step(f"[{i}/{len(chosen)}] scenario {scenario.name}")
        result = baseline.whatif(scenario, progress=reporter)
        reporter("storing the result")
        start = time.perf_counter()
        what = f"scenario {scenario.name} against run {baseline.run_id}"
        path = save_whatif(baseline, result, partial(reporter.stored, what))
        seconds = round(time.perf_counter() - start, 3)
        page = None
        if report:
            reporter(f"writing the report of {scenario.name}")
            page = baseline.report(scenario.name).write(report_path(path))
        out.append(StoredWhatIf(result, path, page, seconds))
    return WhatIfBatch(out, timings)


def _checked_scenarios(scenarios: Sequence[Scenario | str | Path], run: Run) -> list[Scenario]:
    """Every scenario read and checked against ``run``; one :class:`ConfigError` with
    every problem found."""
    problems: list[str] = []
    chosen = []
    for item in scenarios:
        try:
            chosen.append(load_scenario(item) if isinstance(item, (str, Path)) else item)
        except ConfigError as exc:
            problems.append(str(exc))
    names = [s.name for s in chosen]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        problems.append(f"scenario names must differ within a batch; repeated: {repeated}")
    for scenario in chosen:
        try:
            check_scenario(run.market, scenario, run.config, run.catalogue)
        except (ConfigError, MarketError) as exc:
            problems.append(f"scenario {scenario.name!r}: {exc}")
    if problems:
        raise ConfigError("\n".join(problems))
    return chosen


# --------------------------------------------------------------------------- helpers
def _settings(data_dir: Path, config: RunConfig | str | Path | None) -> tuple[RunConfig, Any]:
    if isinstance(config, RunConfig):
        return config, None
    return resolve_config(data_dir, config)


def _through(checked: CheckedInputs, as_of: dt.date | None) -> dt.date:
    """The Sunday the run ends on (module docstring); a :class:`DataError` when no week
    of the data ends by then."""
    if as_of is None:
        return last_complete_week(checked)
    through = as_of - dt.timedelta(days=as_of.isoweekday() % 7)
    first: dt.date = checked.con.execute("SELECT min(posted_at) FROM jobs").fetchall()[0][0]
    if first > through:
        raise DataError(
            f"no job was posted by the as-of week ending {through.isoformat()} (--as-of "
            f"{as_of.isoformat()}): the jobs start on {first.isoformat()}; pass a later --as-of"
        )
    return through


def _plan(
    fitted: FittedMarket, baseline: EquilibriumResult, progress: Reporter
) -> tuple[InterventionPlan | None, PlanStatus, str | None]:
    """The plan, its status and, when planning raised, why (the run goes on, degraded);
    ``not_configured`` without a catalogue or budget."""
    catalogue = fitted.inputs.catalogue
    settings = fitted.config.interventions
    if catalogue is None or settings.budget <= 0:
        return None, PlanStatus.NOT_CONFIGURED, None
    try:
        plan = plan_interventions(fitted.market, catalogue, settings, baseline, progress)
    except MarketError:
        raise  # the catalogue does not fit the market: invalid input
    except Exception as exc:  # a failure of the plan must not lose the rest of the run
        return None, PlanStatus.FAILED, f"{type(exc).__name__}: {exc}"
    return plan, plan.status, None


def _status(degraded: list[str], plan: PlanStatus) -> RunStatus:
    """Degraded above infeasible above ok."""
    if degraded:
        return RunStatus.DEGRADED
    return RunStatus.INFEASIBLE if plan == PlanStatus.INFEASIBLE else RunStatus.OK


def _counts(curves: CurveSet, equilibrium: EquilibriumResult) -> Counts:
    status = equilibrium.status
    keys = list(curves.segment_keys)
    flagged = curves.frame.groupby(keys, sort=False)["flags"].agg(lambda f: bool((f != "").any()))
    return Counts(
        segments=len(status),
        estimated=int((status != "no_curve").sum()),
        flagged=int(flagged.sum()),
        failed=int(np.isin(status, ("failed", "no_curve")).sum()),
    )


def _degraded(
    equilibrium: EquilibriumResult, guidance: Guidance, plan_error: str | None
) -> list[str]:
    out = []
    frame = guidance.frame  # the equilibrium's statuses, and implausible rates withheld
    keys = list(equilibrium.market.segment_keys)
    for status, why in (
        ("no_curve", "no usable curve"),
        ("failed", "not cleared"),
        ("implausible", "a rate withheld as implausible"),
    ):
        bad = frame[frame["status"] == status]
        if len(bad):
            names = ["/".join(map(str, r)) for r in bad[keys].head(10).itertuples(index=False)]
            more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
            out.append(f"{len(bad)} segment(s) with {why}: {', '.join(names)}{more}")
    if plan_error is not None:
        out.append(f"the intervention plan failed: {plan_error}")
    return out


def _statuses(
    equilibrium: EquilibriumResult,
    guidance: Guidance,
    plan_status: PlanStatus,
    plan_error: str | None,
) -> Statuses:
    components = equilibrium.components
    return Statuses(
        equilibrium={k: int(v) for k, v in pd.Series(equilibrium.status).value_counts().items()},
        components=Components(
            total=len(components),
            failed=int((components["status"] == "failed").sum()),
            max_residual=float(components["residual"].max()),
        ),
        guidance=GuidanceCounts(
            market_state=guidance.state_counts,
            failed_draws=guidance.failed_draws,
            capped=int(guidance.frame["capped"].sum()),
        ),
        interventions=plan_status,
        plan_error=plan_error,
    )


def _tables(
    fitted: FittedMarket,
    equilibrium: EquilibriumResult,
    guidance: Guidance,
    plan: InterventionPlan | None,
) -> dict[str, pd.DataFrame]:
    keys = list(fitted.config.segment_keys)
    tables = {
        "curves": fitted.curves.to_frame(),
        "equilibrium": equilibrium_table(equilibrium),
        "flows": flows_table(equilibrium),
        "guidance": guidance.to_frame(),
    }
    if plan is not None:
        tables.update(plan.tables())
    stored = [*keys, *PARAMETERS, *UNCERTAINTY, *FLAG_COLUMNS, ANCHOR_WEEK]
    tables["market"] = fitted.market.segments[stored]
    tables["edges"] = fitted.market.edges
    if fitted.inputs.catalogue is not None:
        tables["catalogue"] = fitted.inputs.catalogue
    return tables
