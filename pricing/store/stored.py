"""A run, a scenario and a backtest as stored: manifest, tables (read on first use) and
the market.

These are the records the report renders and :class:`pricing.runs.run.Run` builds on
(adding what a stored run can do: re-solve, what-ifs, its report). Each holds the store
for reading while it lives (:meth:`RunStore.hold`), so the build it reads cannot be
removed under it by a re-run of its date, and is checked when opened
(:func:`~pricing.store.snapshot.check_build`): a damaged run is a :class:`StoreError`
naming it and what is wrong, never a traceback half-way through.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import pandas as pd
import pyarrow as pa

from pricing.cluster import compute_text
from pricing.config import RunConfig, parse_config
from pricing.display import Display, table
from pricing.errors import StoreError, suggest
from pricing.market.market import Market
from pricing.store.manifest import (
    BacktestManifest,
    Manifest,
    ScenarioManifest,
    read_backtest_manifest,
    read_manifest,
    read_scenario_manifest,
)
from pricing.store.snapshot import PERCENT_COLUMNS, check_build
from pricing.store.store import ReaderHold, RunStore

if TYPE_CHECKING:
    from collections.abc import Callable


@dataclass(frozen=True, eq=False)
class StoredRun(Display):
    """A run read back from the store: its typed manifest, its tables (loaded on first
    use, handed out as copies), its configuration and the market it solved."""

    path: Path
    manifest: Manifest
    store: RunStore = field(repr=False)
    _tables: dict[str, pd.DataFrame | None] = field(default_factory=dict, repr=False)
    #: the store held for reading while this object lives (module docstring)
    hold: ReaderHold = field(default_factory=ReaderHold, repr=False)

    @classmethod
    def open(
        cls, path: Path, store: RunStore, hold: ReaderHold | None = None, **fields: Any
    ) -> Self:
        """The stored run in folder ``path``, checked, holding the store for reading
        (``hold``: one already taken; ``fields``: a subclass's own). A
        :class:`StoreError` names the run when it is gone or damaged."""
        hold = hold or store.hold()
        manifest = read_manifest(_checked(path, "run", None))
        return cls(path, manifest, store, hold=hold, **fields)

    def close(self) -> None:
        """Let writers remove this build once superseded (also when garbage-collected)."""
        self.hold.release()

    @property
    def run_id(self) -> str:
        return self.manifest.run_id

    @property
    def as_of(self) -> dt.date:
        return self.manifest.as_of

    @property
    def status(self) -> str:
        return str(self.manifest.status)

    @cached_property
    def config(self) -> RunConfig:
        return parse_config(self.manifest.config, source=f"{self.path}/manifest.json")

    def table(self, name: str) -> pd.DataFrame | None:
        """A stored table (a copy), or None when the run has none of that name; a
        :class:`StoreError` naming the run when the file cannot be read."""
        if name not in self._tables:
            self._tables[name] = read_table(self.path, name, f"run {self.run_id}")
        frame = self._tables[name]
        return None if frame is None else frame.copy()

    def required(self, name: str) -> pd.DataFrame:
        """A stored table every run has; a :class:`StoreError` naming the run if it is gone."""
        frame = self.table(name)
        if frame is None:
            raise StoreError(f"run {self.run_id} at {self.path} is damaged: it has no {name} table")
        return frame

    @property
    def curves(self) -> pd.DataFrame:
        return self.required("curves")

    @property
    def equilibrium(self) -> pd.DataFrame:
        return self.required("equilibrium")

    @property
    def guidance(self) -> pd.DataFrame:
        return self.required("guidance")

    @property
    def interventions(self) -> pd.DataFrame | None:
        return self.table("interventions")

    @property
    def catalogue(self) -> pd.DataFrame | None:
        return self.table("catalogue")

    @cached_property
    def market(self) -> Market:
        """The market the run solved, as stored (curves with their uncertainty, fees,
        bounds, edges)."""
        return Market(self.required("market"), self.required("edges"), self.config.segment_keys)

    def scenario(self, name: str) -> StoredScenario:
        """The scenario ``name`` stored against this run; a :class:`StoreError` with the
        closest stored name when there is none."""
        stored = self.store.scenario_paths()
        path = stored.get((self.as_of, name))
        if path is None:
            known = sorted(n for (d, n) in stored if d == self.as_of)
            hint = suggest(name, known)
            raise StoreError(
                f"no scenario {name!r} is stored against run {self.run_id}"
                + (f"; did you mean {hint!r}?" if hint else "")
                + (f" (stored: {', '.join(known)})" if known else "; run `pricing whatif` first")
            )
        manifest = read_scenario_manifest(_checked(path, "scenario", name))
        return StoredScenario(path, manifest, self.hold)

    def to_frame(self) -> pd.DataFrame:
        """The stored guidance, one row per segment."""
        return self.guidance

    def to_dict(self) -> dict[str, Any]:
        """Where the run is, how it came out, and how it ran (from its manifest)."""
        m = self.manifest.model_dump(mode="json")
        shown = (
            "as_of", "status", "counts", "statuses", "degraded", "rows_after_as_of",
            "previous_run", "plan", "timings_s", "peak_memory_mb", "compute",
        )  # fmt: skip
        return {"run_id": self.run_id, "run_path": str(self.path), **{k: m[k] for k in shown}}

    def summary(self, max_rows: int = 0) -> str:
        m = self.manifest
        c, s = m.counts, m.statuses
        lines = [
            f"Run {self.run_id} ({m.status}), created {m.created}, from {m.data_dir}",
            f"  {c.segments:,} segments: {c.estimated:,} estimated, "
            f"{c.flagged:,} flagged, {c.failed:,} failed",
            "  equilibrium: " + ", ".join(f"{n:,} {k}" for k, n in s.equilibrium.items()),
            "  guidance: "
            + ", ".join(f"{n:,} {k}" for k, n in s.guidance.market_state.items() if n)
            + f"; {s.guidance.capped:,} capped"
            + (f" against run {m.previous_run}" if m.previous_run else ""),
            f"  interventions: {plan_text(m)}",
        ]
        if m.plan:
            p = m.plan
            lines.append(
                f"    spend ${p.spend:,.0f} of ${p.budget:,.0f}, {p.objective} "
                f"+{p.verified_gain:,.1f} verified (predicted +{p.predicted_gain:,.1f})"
            )
        lines += [f"  degraded: {d}" for d in m.degraded]
        after = m.rows_after_as_of
        if any(after.values()):
            lines.append(
                "  left out (after the as-of week): "
                + ", ".join(f"{n:,} {t} rows" for t, n in after.items())
            )
        lines.append(
            "  time: "
            + ", ".join(f"{k} {v:.2f} s" for k, v in m.timings_s.items())
            + f"; peak memory {m.peak_memory_mb:,.0f} MB"
        )
        lines.append(f"  ran on {compute_text(m.compute)}")
        lines.append(f"  stored in {self.path}")
        if max_rows:
            lines.append(table(self.guidance.head(max_rows)))
        return "\n".join(lines)


def plan_text(m: Manifest) -> str:
    """The plan's status, with the reason when planning failed."""
    s = m.statuses
    return f"{s.interventions}: {s.plan_error}" if s.plan_error else str(s.interventions)


@dataclass(frozen=True, eq=False)
class StoredScenario:
    """A scenario result as stored: its manifest, tables and settings."""

    path: Path
    manifest: ScenarioManifest
    #: the store held for reading (shared with the run it was read from)
    hold: ReaderHold = field(default_factory=ReaderHold, repr=False)

    def table(self, name: str) -> pd.DataFrame | None:
        return read_table(self.path, name, f"scenario {self.manifest.scenario}")

    def required(self, name: str) -> pd.DataFrame:
        frame = self.table(name)
        if frame is None:
            raise StoreError(f"scenario {self.manifest.scenario!r} at {self.path} lacks its {name}")
        return frame

    @property
    def settings(self) -> str:
        """The scenario's resolved TOML."""
        return (self.path / "scenario.toml").read_text(encoding="utf-8")


def latest_before(store: RunStore, as_of: dt.date, warn: Callable[[str], None]) -> StoredRun | None:
    """The latest run before ``as_of`` whose guidance reads, held; damaged runs are
    skipped, each named through ``warn``. None when there is none."""
    hold = store.hold()
    for path in store.earlier(as_of):
        try:
            run = StoredRun.open(path, store, hold)
            run.required("guidance")
        except StoreError as exc:
            warn(f"{exc}; skipped, the previous run is an earlier one")
            continue
        return run
    hold.release()
    return None


@dataclass(frozen=True, eq=False)
class StoredBacktest(Display):
    """A backtest read back from the store (:mod:`pricing.runs.backtest`): its manifest,
    which carries the headline and verdict, and its tables (``scores``, ``segments``,
    ``truth`` when it had a truth table), holding the store for reading while it lives."""

    path: Path
    manifest: BacktestManifest
    hold: ReaderHold = field(default_factory=ReaderHold, repr=False)

    @classmethod
    def open(cls, path: Path, store: RunStore, hold: ReaderHold | None = None) -> Self:
        """The backtest in folder ``path``, checked; a :class:`StoreError` naming it when
        it is gone or damaged."""
        hold = hold or store.hold()
        return cls(path, read_backtest_manifest(_checked(path, "backtest", None)), hold)

    def close(self) -> None:
        self.hold.release()

    def table(self, name: str) -> pd.DataFrame | None:
        return read_table(self.path, name, f"backtest {self.manifest.as_of}")

    def to_frame(self) -> pd.DataFrame:
        """The scores, one row per scope (origin or ``pooled``), horizon and metric."""
        frame = self.table("scores")
        if frame is None:
            raise StoreError(f"backtest at {self.path} is damaged: it has no scores table")
        return frame

    def to_dict(self) -> dict[str, Any]:
        return {**self.manifest.headline, "path": str(self.path), "build": self.manifest.build}

    def summary(self, max_rows: int = 0) -> str:
        m = self.manifest
        verdict = "beats" if m.beats_baselines else "does NOT beat"
        return (
            f"Backtest as of {m.as_of} ({len(m.origins)} origins, {m.origins[0]} .. "
            f"{m.origins[-1]}, {m.horizon} week(s) ahead): the engine {verdict} the naive "
            f"baselines; stored in {self.path}"
        )


def latest_backtest(
    store: RunStore, as_of: dt.date, warn: Callable[[str], None]
) -> StoredBacktest | None:
    """The latest readable backtest as of ``as_of`` or before, held; damaged ones are
    skipped, each named through ``warn``. None when there is none."""
    hold = store.hold()
    for path in store.latest_backtests(as_of):
        try:
            return StoredBacktest.open(path, store, hold)
        except StoreError as exc:
            warn(f"{exc}; skipped, an earlier backtest is used")
    hold.release()
    return None


def read_table(path: Path, name: str, what: str) -> pd.DataFrame | None:
    """Table ``name`` of a run or scenario folder (``what``: which, for messages), or
    None if the folder lacks it; a :class:`StoreError` when the file cannot be read."""
    file = path / f"{name}.parquet"
    if not file.exists():
        return None
    try:
        return _fractions(pd.read_parquet(file))
    except (OSError, pa.ArrowException) as exc:
        raise StoreError(
            f"{what} at {path} is damaged: {file.name} cannot be read ({exc}); "
            "`pricing store check` lists all damage"
        ) from None


def _checked(path: Path, kind: str, scenario: str | None) -> Path:
    """``path``, after :func:`check_build`; a :class:`StoreError` naming the build when
    it is gone (replaced by a newer one and removed) or damaged."""
    dated = path.parent if kind != "scenario" else path.parent.parent  # as_of= / baseline=
    date = dt.date.fromisoformat(dated.name.split("=", 1)[1])
    what = f"scenario {scenario} of run {date}" if kind == "scenario" else f"{kind} {date}"
    if not path.is_dir():
        raise StoreError(f"{what} at {path} is gone: a newer build replaced it; read it again")
    _, problems = check_build(path, kind, (date, scenario))
    if problems:
        raise StoreError(
            f"{what} at {path} is damaged: {'; '.join(problems)}; "
            "`pricing store check` lists all damage"
        )
    return path


def _fractions(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` as stored now: a column of ``PERCENT_COLUMNS`` written by an earlier version
    (``gap_pct = 100 (p* / o − 1)``) read as its fraction (``gap_frac = p* / o − 1``), so
    that the report and the API read old runs and scenarios too."""
    old = [c for c in PERCENT_COLUMNS if c in frame.columns]
    if not old:
        return frame
    frame = frame.rename(columns=PERCENT_COLUMNS)
    for c in old:
        frame[PERCENT_COLUMNS[c]] = frame[PERCENT_COLUMNS[c]] / 100.0
    return frame
