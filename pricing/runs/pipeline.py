"""The nightly run, one line per arrow of DESIGN.md §1, and the stored run it leaves.

    load + validate ─► aggregate ─► estimate ─► market ─► equilibrium ─► guidance
                                          └► interventions (catalogue and budget given) ─► store

**As-of date.** A run covers whole weeks: its as-of date is a Sunday, by default the one
ending the last week the jobs table covers to its final day; ``--as-of D`` takes the
Sunday on or before D. Later rows are left out of the panel and counted in the manifest
(``rows_after_as_of``); they are still validated, against today.

**Degraded, not dead.** A segment without a usable curve or whose component no solver
clears is reported (``failed``) and the rest of the run goes on; so does a plan that
raises. The run is stored with status ``degraded``, unless ``strict`` asks to store
nothing instead (:class:`RunError`). Invalid inputs or settings store nothing.

**Stability.** Guidance is capped against the store's latest run before this as-of date.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import importlib.metadata
import platform
import resource
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

from pricing._version import __version__
from pricing.cluster import LOCAL, Executor, compute_text
from pricing.config import RunConfig, parse_config, resolve_config
from pricing.decisions.guidance import Guidance, check_previous, rate_guidance
from pricing.decisions.interventions import InterventionPlan, plan_interventions
from pricing.errors import DataError, MarketError, RunError
from pricing.estimation.curves import CurveSet, fit_curves
from pricing.inputs import SAMPLE_DIR
from pricing.inputs.io import find_sources
from pricing.inputs.panel import build_panel, last_complete_week, rows_after
from pricing.inputs.validation import OPTIONAL_TABLES, REQUIRED_TABLES, CheckedInputs, check_inputs
from pricing.market.equilibrium import EquilibriumResult, solve
from pricing.market.market import PARAMETERS, Market
from pricing.store.store import DEFAULT_STORE, RunStore, read_manifest, read_table

if TYPE_CHECKING:
    from pricing.config import Scenario
    from pricing.decisions.scenario import WhatIf
    from pricing.report.report import Report

#: The contract columns of the stored tables, after the segment keys (README "Run store").
CURVE_COLUMNS = (
    "side",
    "elasticity",
    "elasticity_raw",
    "std_error",
    "ci_low",
    "ci_high",
    "first_stage_f",
    "n_weeks",
    "ref_rate",
    "ref_hours",
    "flags",
)
EQUILIBRIUM_COLUMNS = (
    "observed_rate",
    "rate",
    "client_rate",
    "freelancer_rate",
    "hours",
    "demand_hours_at_observed",
    "supply_hours_at_observed",
    "shortage_hours",
    "status",
)
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
    """Where a run reports its steps (``step``) and their sub-steps (call)."""

    def step(self, label: str) -> None: ...

    def __call__(self, label: str) -> None: ...


class _Silent:
    def step(self, label: str) -> None:
        pass

    def __call__(self, label: str) -> None:
        pass


# --------------------------------------------------------------------------- the run
def run_batch(
    data_dir: str | Path = SAMPLE_DIR,
    config: RunConfig | str | Path | None = None,
    store: RunStore | str | Path = DEFAULT_STORE,
    as_of: dt.date | None = None,
    strict: bool = False,
    progress: Reporter | None = None,
    executor: Executor = LOCAL,
) -> Run:
    """Run every step on ``data_dir`` and commit the result to ``store``.

    ``executor`` runs the partitioned steps — aggregation, estimation, the coupled
    equilibrium and the band draws — here (the default) or on a Dask cluster
    (:func:`pricing.cluster.executor`); the result is the same, and it is stored here.

    ``config``: settings, or a TOML path (default: ``pricing.toml`` in ``data_dir`` if
    present, else defaults). Raises :class:`DataError` (with the full report) or
    :class:`ConfigError`/:class:`MarketError` for invalid inputs, :class:`RunError` when
    ``strict`` and some segment is degraded; nothing is stored then.
    """
    report = progress or _Silent()
    store = store if isinstance(store, RunStore) else RunStore(store)
    data_dir = Path(data_dir)
    created = dt.datetime.now(dt.UTC)
    timings: dict[str, float] = {}
    clock = _Clock(report, timings)

    with clock("validate"):
        settings, source = _settings(data_dir, config)
        today = dt.date.today()
        checked = _checked(data_dir, settings, max(today, as_of or today), report)
        through = _through(checked, as_of)
        excluded = rows_after(checked, through)
    with clock("aggregate"):
        panel = build_panel(checked, through, executor)
    with clock("estimate"):
        curves = fit_curves(panel, settings.estimation, executor)
    with clock("market"):
        adjacency = checked.table("adjacency") if "adjacency" in checked.tables else None
        market = Market.from_curves(curves, adjacency, settings.market)
    with clock("equilibrium"):
        equilibrium = solve(market, executor=executor)
    with clock("guidance"):
        previous_path = store.previous(through)
        previous = _previous_guidance(previous_path, settings)
        guidance = rate_guidance(
            equilibrium, curves, settings.guidance, previous, executor=executor
        )
    with clock("interventions"):
        catalogue = checked.table("interventions") if "interventions" in checked.tables else None
        plan, plan_status = _plan(market, catalogue, settings, equilibrium, report)

    counts = _counts(curves, equilibrium)
    degraded = _degraded(equilibrium, plan_status)
    if strict and degraded:
        raise RunError(
            "--strict: the run is degraded, nothing was stored:\n"
            + "\n".join(f"  - {d}" for d in degraded)
        )
    status = "degraded" if degraded else "infeasible" if plan_status == "infeasible" else "ok"
    with clock("store"):
        tables = _tables(curves, equilibrium, guidance, plan, market, catalogue)
        manifest = {
            "run_id": through.isoformat(),
            "as_of": through.isoformat(),
            "created": created.isoformat(timespec="seconds"),
            "status": status,
            "degraded": degraded,
            "data_dir": str(data_dir.resolve()),
            "config_source": str(source) if source else None,
            "config": settings.model_dump(mode="json"),
            "inputs": _fingerprints(data_dir, checked),
            "rows_after_as_of": excluded,
            "weeks": {"first": panel.weeks.min().date().isoformat(), "count": len(panel.weeks)},
            "counts": counts,
            "statuses": _statuses(equilibrium, guidance, plan, plan_status),
            "plan": plan_summary(plan),
            "previous_run": read_manifest(previous_path)["run_id"] if previous_path else None,
            "tables": {name: len(frame) for name, frame in tables.items()},
            "versions": _versions(),
            "machine": {"platform": platform.platform(), "cpus": LOCAL.threads},
            "compute": executor.describe(),
        }
        manifest["timings_s"] = dict(timings)  # the steps before storing
        manifest["peak_memory_mb"] = _peak_memory_mb()
        path = store.write_run(through, tables, manifest)
    return Run.open(path, store)


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


def _settings(data_dir: Path, config: RunConfig | str | Path | None) -> tuple[RunConfig, Any]:
    if isinstance(config, RunConfig):
        return config, None
    return resolve_config(data_dir, config)


def _checked(data_dir: Path, config: RunConfig, today: dt.date, report: Reporter) -> CheckedInputs:
    validation = check_inputs(data_dir, config, today, progress=report)
    if not validation.ok:
        raise DataError(validation.summary(), report=validation)
    return validation.checked()


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


def _previous_guidance(path: Path | None, config: RunConfig) -> pd.DataFrame | None:
    if path is None:
        return None
    frame = read_table(path, "guidance")
    return None if frame is None else check_previous(frame, list(config.segment_keys))


def _plan(
    market: Market,
    catalogue: pd.DataFrame | None,
    config: RunConfig,
    baseline: EquilibriumResult,
    report: Reporter,
) -> tuple[InterventionPlan | None, str]:
    """The plan and its status; ``not_configured`` without a catalogue or budget, and
    ``failed: <reason>`` when planning raised (the run goes on, degraded)."""
    if catalogue is None or config.interventions.budget <= 0:
        return None, "not_configured"
    try:
        plan = plan_interventions(market, catalogue, config.interventions, baseline, report)
    except MarketError:
        raise  # the catalogue does not fit the market: invalid input
    except Exception as exc:  # a failure of the plan must not lose the rest of the run
        return None, f"failed: {type(exc).__name__}: {exc}"
    return plan, plan.status


def _counts(curves: CurveSet, equilibrium: EquilibriumResult) -> dict[str, int]:
    """Segments estimated (both curves usable), flagged (a curve carries a flag) and
    failed (no usable curve, or not cleared)."""
    status = equilibrium.status
    keys = list(curves.segment_keys)
    flagged = curves.frame.groupby(keys, sort=False)["flags"].agg(lambda f: bool((f != "").any()))
    return {
        "segments": len(status),
        "estimated": int((status != "no_curve").sum()),
        "flagged": int(flagged.sum()),
        "failed": int(np.isin(status, ("failed", "no_curve")).sum()),
    }


def _degraded(equilibrium: EquilibriumResult, plan_status: str) -> list[str]:
    out = []
    frame = equilibrium.to_frame()
    keys = list(equilibrium.market.segment_keys)
    for status, why in (("no_curve", "no usable curve"), ("failed", "not cleared")):
        bad = frame[frame["status"] == status]
        if len(bad):
            names = ["/".join(map(str, r)) for r in bad[keys].head(10).itertuples(index=False)]
            more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
            out.append(f"{len(bad)} segment(s) with {why}: {', '.join(names)}{more}")
    if plan_status.startswith("failed"):
        out.append(f"the intervention plan {plan_status}")
    return out


def _statuses(
    equilibrium: EquilibriumResult,
    guidance: Guidance,
    plan: InterventionPlan | None,
    plan_status: str,
) -> dict[str, Any]:
    components = equilibrium.components
    return {
        "equilibrium": {k: int(v) for k, v in pd.Series(equilibrium.status).value_counts().items()},
        "components": {
            "total": len(components),
            "failed": int((components["status"] == "failed").sum()),
            "max_residual": float(components["residual"].max()),
        },
        "guidance": {
            "market_state": guidance.state_counts,
            "failed_draws": guidance.failed_draws,
            "capped": int(guidance.frame["capped"].sum()),
        },
        "interventions": plan_status if plan is None else plan.status,
    }


def plan_summary(plan: InterventionPlan | None) -> dict[str, Any] | None:
    """The plan's headline numbers (manifests and JSON output)."""
    if plan is None:
        return None
    return {
        "objective": plan.objective,
        "budget": plan.budget,
        "spend": plan.spend,
        "units": int(plan.units.sum()),
        "base_value": plan.base_value,
        "predicted_gain": plan.predicted_gain,
        "verified_gain": plan.verified_gain,
        "marginal_value_per_usd": plan.marginal_value,
        "explanation": plan.explanation,
    }


def _tables(
    curves: CurveSet,
    equilibrium: EquilibriumResult,
    guidance: Guidance,
    plan: InterventionPlan | None,
    market: Market,
    catalogue: pd.DataFrame | None,
) -> dict[str, pd.DataFrame]:
    keys = list(curves.segment_keys)
    tables = {
        "curves": _contract_first(curves.to_frame(), keys, CURVE_COLUMNS),
        "equilibrium": equilibrium_table(equilibrium),
        "guidance": guidance.to_frame(),
    }
    if plan is not None:
        tables["interventions"] = plan.to_frame()
    tables["market"] = market.segments[[*keys, *PARAMETERS]]
    tables["edges"] = market.edges
    if catalogue is not None:
        tables["catalogue"] = catalogue
    return tables


def equilibrium_table(result: EquilibriumResult) -> pd.DataFrame:
    """The stored form of an equilibrium: segment keys, the contract columns, the rest."""
    return _contract_first(result.to_frame(), list(result.market.segment_keys), EQUILIBRIUM_COLUMNS)


def _contract_first(frame: pd.DataFrame, keys: list[str], columns: tuple[str, ...]) -> pd.DataFrame:
    rest = [c for c in frame.columns if c not in keys and c not in columns]
    return frame[[*keys, *columns, *rest]]


def _fingerprints(data_dir: Path, checked: CheckedInputs) -> dict[str, Any]:
    """Per input table: its files with size and SHA-256, and the rows read."""
    sources, _ = find_sources(data_dir, REQUIRED_TABLES + OPTIONAL_TABLES)
    out: dict[str, Any] = {}
    for name, source in sources.items():
        rows = checked.con.execute(f'SELECT count(*) FROM "{name}"').fetchall()[0][0]
        files = []
        for path in source.paths:
            with path.open("rb") as handle:
                digest = hashlib.file_digest(handle, "sha256").hexdigest()
            files.append(
                {"file": source.relative(path), "bytes": path.stat().st_size, "sha256": digest}
            )
        out[name] = {"rows": int(rows), "files": files}
    return out


def _versions() -> dict[str, str]:
    names = ("numpy", "pandas", "scipy", "cvxpy", "duckdb", "ortools", "pyarrow", "pydantic")
    out = {"pricing": __version__, "python": sys.version.split()[0]}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _peak_memory_mb() -> float:
    """Peak resident memory of this process so far, in MiB.

    Linux's ``VmHWM`` where there is one: ``ru_maxrss`` also counts the memory of the
    process this one was forked from, as it stood at the fork (a 3 GB benchmark harness
    made every `pricing run` it started report 3 GB).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)  # kB
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


# --------------------------------------------------------------------- a stored run
@dataclass(frozen=True, eq=False)
class Run:
    """A run read back from the store: its manifest, tables, market and what-ifs.

    Tables load on first use. ``baseline`` re-solves the stored market (the same
    deterministic solve the run made), as the warm start and reference of what-ifs.
    """

    path: Path
    manifest: dict[str, Any]
    store: RunStore = field(repr=False)
    #: where the baseline's and what-ifs' coupled components are cleared
    executor: Executor = field(default=LOCAL, repr=False)
    _tables: dict[str, pd.DataFrame | None] = field(default_factory=dict, repr=False)

    @classmethod
    def open(cls, path: Path, store: RunStore, executor: Executor = LOCAL) -> Run:
        return cls(path, read_manifest(path), store, executor)

    @property
    def run_id(self) -> str:
        return str(self.manifest["run_id"])

    @property
    def as_of(self) -> dt.date:
        return dt.date.fromisoformat(self.manifest["as_of"])

    @property
    def status(self) -> str:
        return str(self.manifest["status"])

    @cached_property
    def config(self) -> RunConfig:
        return parse_config(self.manifest["config"], source=f"{self.path}/manifest.json")

    def table(self, name: str) -> pd.DataFrame | None:
        """A stored table (a copy), or None when the run has none of that name."""
        if name not in self._tables:
            self._tables[name] = read_table(self.path, name)
        frame = self._tables[name]
        return None if frame is None else frame.copy()

    @property
    def curves(self) -> pd.DataFrame:
        return self._required("curves")

    @property
    def equilibrium(self) -> pd.DataFrame:
        return self._required("equilibrium")

    @property
    def guidance(self) -> pd.DataFrame:
        return self._required("guidance")

    @property
    def interventions(self) -> pd.DataFrame | None:
        return self.table("interventions")

    @property
    def catalogue(self) -> pd.DataFrame | None:
        return self.table("catalogue")

    def _required(self, name: str) -> pd.DataFrame:
        frame = self.table(name)
        if frame is None:
            raise RunError(f"run {self.run_id} at {self.path} has no {name} table")
        return frame

    @cached_property
    def market(self) -> Market:
        """The market the run solved, as stored (curves, fees, bounds, edges)."""
        return Market(self._required("market"), self._required("edges"), self.config.segment_keys)

    @cached_property
    def baseline(self) -> EquilibriumResult:
        return solve(self.market, executor=self.executor)

    def whatif(
        self,
        scenario: Scenario | str | Path,
        save: bool = False,
        progress: Callable[[str], None] | None = None,
    ) -> WhatIf:
        """The scenario (a :class:`Scenario` or a TOML path) solved against this run,
        without re-estimating; ``save`` commits it to the store, tagged with its name."""
        from pricing.config import load_scenario
        from pricing.decisions.scenario import whatif

        chosen = load_scenario(scenario) if isinstance(scenario, (str, Path)) else scenario
        result = whatif(
            self.market,
            self.baseline,
            chosen,
            self.config,
            self.catalogue,
            progress=progress,
            executor=self.executor,
        )
        if save:
            save_whatif(self, result)
        return result

    def report(self, scenario: str | None = None, rows: int = 200) -> Report:
        """The HTML report of this run, or of the stored scenario ``scenario`` solved
        against it (``Report.write(path)`` saves it; notebooks show it inline)."""
        from pricing.report.report import run_report, scenario_report

        if scenario is None:
            return run_report(self, rows=rows)
        return scenario_report(self, scenario, rows=rows)

    def to_frame(self) -> pd.DataFrame:
        """The stored guidance, one row per segment."""
        return self.guidance

    def summary(self) -> str:
        m = self.manifest
        c = m["counts"]
        s = m["statuses"]
        lines = [
            f"Run {self.run_id} ({m['status']}), created {m['created']}, from {m['data_dir']}",
            f"  {c['segments']:,} segments: {c['estimated']:,} estimated, "
            f"{c['flagged']:,} flagged, {c['failed']:,} failed",
            "  equilibrium: " + ", ".join(f"{n:,} {k}" for k, n in s["equilibrium"].items()),
            "  guidance: "
            + ", ".join(f"{n:,} {k}" for k, n in s["guidance"]["market_state"].items() if n)
            + f"; {s['guidance']['capped']:,} capped"
            + (f" against run {m['previous_run']}" if m["previous_run"] else ""),
            f"  interventions: {s['interventions']}",
        ]
        if m["plan"]:
            p = m["plan"]
            lines.append(
                f"    spend ${p['spend']:,.0f} of ${p['budget']:,.0f}, {p['objective']} "
                f"+{p['verified_gain']:,.1f} verified (predicted +{p['predicted_gain']:,.1f})"
            )
        for d in m["degraded"]:
            lines.append(f"  degraded: {d}")
        after = m["rows_after_as_of"]
        if any(after.values()):
            lines.append(
                "  left out (after the as-of week): "
                + ", ".join(f"{n:,} {t} rows" for t, n in after.items())
            )
        lines.append(
            "  time: "
            + ", ".join(f"{k} {v:.2f} s" for k, v in m["timings_s"].items())
            + f"; peak memory {m['peak_memory_mb']:,.0f} MB"
        )
        lines.append(f"  ran on {compute_text(m.get('compute'))}")
        lines.append(f"  stored in {self.path}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        head = html.escape(self.summary()).replace("\n", "<br>")
        return f"<p>{head}</p>" + self.guidance.head(50).to_html(index=False)


def load_run(
    run_id: str = "latest",
    store: RunStore | str | Path = DEFAULT_STORE,
    executor: Executor = LOCAL,
) -> Run:
    """A stored run: ``latest`` or its as-of date (YYYY-MM-DD); its what-ifs solve
    through ``executor``."""
    store = store if isinstance(store, RunStore) else RunStore(store)
    return Run.open(store.resolve(run_id), store, executor)


def save_whatif(run: Run, result: WhatIf) -> Path:
    """Commit a what-if result to the run's store, tagged with its scenario's name."""
    tables = {
        "segments": result.to_frame(),
        "totals": result.totals,
        "equilibrium": equilibrium_table(result.result),
    }
    if result.plan is not None:
        tables["interventions"] = result.plan.to_frame()
    manifest = {
        "scenario": result.scenario.name,
        "description": result.scenario.description,
        "baseline": run.run_id,
        "baseline_build": run.manifest["build"],
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "status": result.status,
        "inverse": None if result.inverse is None else result.inverse.to_dict(),
        "plan": plan_summary(result.plan),
        "timings_s": result.timings,
        "versions": _versions(),
    }
    return run.store.write_scenario(
        run.as_of,
        result.scenario.name,
        tables,
        manifest,
        files={"scenario.toml": result.scenario.to_toml()},
    )
