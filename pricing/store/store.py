"""The run store: one folder of Parquet tables per run and per what-if scenario.

Layout under the store root (``./pricing-runs`` by default)::

    runs/as_of=2025-12-28/build=20261127T110019123456Z/
        curves.parquet  equilibrium.parquet  guidance.parquet  [interventions.parquet]
        market.parquet  edges.parquet  [catalogue.parquet]  manifest.json
    scenarios/baseline=2025-12-28/scenario=design-boom/build=…/
        segments.parquet  totals.parquet  equilibrium.parquet  [interventions.parquet]
        scenario.toml  manifest.json

**Atomic commits.** A run is written into a hidden temporary folder next to its final
place and renamed to a fresh ``build=`` folder only when every table and the manifest are
complete. The rename is the commit: a crash or SIGKILL at any moment leaves either no new
build (the temporary folder is invisible to readers and removed by the next writer) or a
complete one. Readers take the **newest build** of each as-of date (and of each
scenario): re-running an as-of replaces the run in one step, and superseded builds are
deleted after the commit. A kill between the commit and that clean-up leaves an older
build that nobody reads and the next writer removes.

Writers serialize their commits on an exclusive ``flock`` of ``.lock``, so a temporary
folder found while holding it belongs to a dead writer. Readers take no lock.

**Queries.** :meth:`RunStore.connect` exposes every table as a DuckDB view over the
current builds' files with hive partitioning, so each row carries its ``as_of`` (and
``build``; scenario tables ``baseline`` and ``scenario``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from pricing.errors import StoreError, StoreWriteError, suggest
from pricing.inputs.io import atomic_directory, connect
from pricing.store.manifest import (
    MANIFEST,
    Manifest,
    ScenarioManifest,
    read_manifest,
    read_scenario_manifest,
)

DEFAULT_STORE = Path("pricing-runs")
#: Tables of a run folder, in the order they are written (the manifest comes last).
RUN_TABLES = (
    "curves",
    "equilibrium",
    "guidance",
    "interventions",
    "market",
    "edges",
    "catalogue",
)
#: Tables of a scenario folder; as views they are prefixed ``scenario_``.
SCENARIO_TABLES = ("segments", "totals", "equilibrium", "interventions")


class RunStore:
    """A folder of runs and scenario results (see the module docstring)."""

    def __init__(self, root: str | Path = DEFAULT_STORE) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"RunStore({str(self.root)!r})"

    # ---------------------------------------------------------------- reading
    def run_paths(self) -> dict[dt.date, Path]:
        """The current (newest) build of every as-of date, oldest as-of first."""
        found = {}
        for folder in _children(self.root / "runs", "as_of="):
            build = _newest_build(folder)
            if build is not None:
                found[dt.date.fromisoformat(folder.name.removeprefix("as_of="))] = build
        return dict(sorted(found.items()))

    def scenario_paths(self) -> dict[tuple[dt.date, str], Path]:
        """The current build of every (baseline as-of, scenario name)."""
        found = {}
        for base in _children(self.root / "scenarios", "baseline="):
            as_of = dt.date.fromisoformat(base.name.removeprefix("baseline="))
            for folder in _children(base, "scenario="):
                build = _newest_build(folder)
                if build is not None:
                    found[(as_of, folder.name.removeprefix("scenario="))] = build
        return dict(sorted(found.items()))

    def resolve(self, run_id: str) -> Path:
        """The folder of run ``run_id``: ``latest`` or an as-of date (YYYY-MM-DD)."""
        if not self.root.is_dir():
            raise StoreError(f"run store {self.root} does not exist; run `pricing run` first")
        runs = self.run_paths()
        if not runs:
            raise StoreError(f"run store {self.root} holds no runs yet; run `pricing run` first")
        if run_id == "latest":
            return runs[max(runs)]
        try:
            as_of = dt.date.fromisoformat(run_id)
        except ValueError:
            raise StoreError(
                f"run id {run_id!r} is neither 'latest' nor a date (YYYY-MM-DD); "
                f"runs in {self.root}: {_listing(runs)}"
            ) from None
        if as_of not in runs:
            raise StoreError(f"no run as of {run_id} in {self.root}; runs: {_listing(runs)}")
        return runs[as_of]

    def previous(self, as_of: dt.date) -> Path | None:
        """The current build of the latest run before ``as_of``, if any."""
        earlier = [d for d in self.run_paths() if d < as_of]
        return self.run_paths()[max(earlier)] if earlier else None

    def runs(self) -> pd.DataFrame:
        """One row per current run, from its manifest (oldest first)."""
        return pd.DataFrame(
            [_run_row(path) for path in self.run_paths().values()],
            columns=list(_RUN_COLUMNS),
        )

    def scenarios(self) -> pd.DataFrame:
        """One row per current scenario result."""
        rows = []
        for (as_of, name), path in self.scenario_paths().items():
            manifest = read_scenario_manifest(path)
            rows.append(
                {
                    "baseline": as_of,
                    "scenario": name,
                    "created": manifest.created,
                    "status": str(manifest.status),
                    "description": manifest.description,
                    "path": str(path),
                }
            )
        return pd.DataFrame(
            rows, columns=["baseline", "scenario", "created", "status", "description", "path"]
        )

    def connect(self) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB database with a view per table over the current builds:
        ``runs``, ``curves``, ``equilibrium``, ``guidance``, ``interventions``, ``market``,
        ``edges``, ``catalogue``, ``scenarios``, ``scenario_segments``, ``scenario_totals``,
        ``scenario_equilibrium``, ``scenario_interventions`` (a view exists once some
        build has the table)."""
        con = connect()
        runs = self.run_paths()
        scenarios = self.scenario_paths()
        for name in RUN_TABLES:
            _view(con, name, [p / f"{name}.parquet" for p in runs.values()])
        for name in SCENARIO_TABLES:
            _view(con, f"scenario_{name}", [p / f"{name}.parquet" for p in scenarios.values()])
        for name, frame, date in (
            ("runs", self.runs(), "as_of"),
            ("scenarios", self.scenarios(), "baseline"),
        ):
            con.register("_frame", frame)
            con.execute(
                f"CREATE TABLE {name} AS SELECT * REPLACE (CAST({date} AS DATE) AS {date}) "
                "FROM _frame"
            )
            con.unregister("_frame")
        return con

    def segment_keys(self) -> list[str]:
        """The segment keys of the stored guidance (category, tier[, region]); a
        :class:`StoreError` when the store holds no run."""
        if not self.run_paths():
            raise StoreError(f"run store {self.root} holds no runs yet; run `pricing run` first")
        con = self.connect()
        columns = {r[0] for r in con.execute("DESCRIBE guidance").fetchall()}
        return [c for c in ("category", "tier", "region") if c in columns]

    def segment_history(self, segment: dict[str, str]) -> pd.DataFrame:
        """Guidance and equilibrium of one segment (its key values) in every run, oldest
        first; a :class:`StoreError` with the closest segment when no run has it."""
        con = self.connect()
        keys = list(segment)
        where = " AND ".join(f"g.{k} = ?" for k in keys)
        frame: pd.DataFrame = con.execute(
            f"""SELECT g.as_of, g.freelancer_rate, g.freelancer_rate_low,
                       g.freelancer_rate_high, g.client_rate, g.client_rate_low,
                       g.client_rate_high, g.observed_rate, g.gap_pct, g.market_state,
                       g.capped, e.rate, e.hours, e.shortage_hours, e.status
                FROM guidance g JOIN equilibrium e USING (as_of, {", ".join(keys)})
                WHERE {where} ORDER BY g.as_of""",
            list(segment.values()),
        ).df()
        if frame.empty:
            label = "/".join(segment.values())
            known = [
                "/".join(map(str, r))
                for r in con.execute(f"SELECT DISTINCT {', '.join(keys)} FROM guidance").fetchall()
            ]
            hint = suggest(label, known)
            raise StoreError(
                f"segment {label!r} is in no run of {self.root}"
                + (f"; did you mean {hint!r}?" if hint else "")
            )
        frame["as_of"] = frame["as_of"].dt.date
        return frame

    # ---------------------------------------------------------------- writing
    def write_run(
        self, as_of: dt.date, tables: dict[str, pd.DataFrame], manifest: Manifest
    ) -> Path:
        """Commit a run for ``as_of``; it replaces any earlier run of that date. The
        stored manifest gets the build, the path and the store's own seconds."""
        return self._commit(self.root / "runs" / f"as_of={as_of.isoformat()}", tables, manifest)

    def write_scenario(
        self,
        baseline: dt.date,
        name: str,
        tables: dict[str, pd.DataFrame],
        manifest: ScenarioManifest,
        files: dict[str, str] | None = None,
    ) -> Path:
        """Commit a scenario result against the run of ``baseline``; it replaces an earlier
        result of the same scenario and baseline."""
        folder = self.root / "scenarios" / f"baseline={baseline.isoformat()}" / f"scenario={name}"
        return self._commit(folder, tables, manifest, files)

    def _commit(
        self,
        folder: Path,
        tables: dict[str, pd.DataFrame],
        manifest: Manifest | ScenarioManifest,
        files: dict[str, str] | None = None,
    ) -> Path:
        """Write the tables, the files and (last) the manifest, with the seconds the
        writing took as the ``store`` timing, into a new build folder (module docstring)."""
        with self._lock():
            folder.mkdir(parents=True, exist_ok=True)
            build = _build_name(folder)
            final = folder / build
            with atomic_directory(final) as tmp:
                start = time.perf_counter()
                for name, frame in tables.items():
                    frame.to_parquet(tmp / f"{name}.parquet", index=False)
                for name, text in (files or {}).items():
                    (tmp / name).write_text(text, encoding="utf-8")
                timings = {**manifest.timings_s, "store": round(time.perf_counter() - start, 3)}
                manifest = manifest.model_copy(
                    update={
                        "build": build.removeprefix("build="),
                        "path": str(final),
                        "timings_s": timings,
                    }
                )
                (tmp / MANIFEST).write_text(manifest.to_json(), encoding="utf-8")
            for old in folder.iterdir():  # superseded builds and dead writers' folders
                if old != final and (old.name.startswith(("build=", ".build="))):
                    shutil.rmtree(old, ignore_errors=True)
        return final

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            handle = (self.root / ".lock").open("a")
        except OSError as exc:
            raise StoreWriteError(
                f"run store {self.root} cannot be written: {exc.strerror}"
            ) from None
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield


_RUN_COLUMNS = (
    "run_id",
    "as_of",
    "created",
    "status",
    "segments",
    "estimated",
    "flagged",
    "failed",
    "plan",
    "data_dir",
    "path",
)


def _run_row(path: Path) -> dict[str, Any]:
    m = read_manifest(path)
    return {
        "run_id": m.run_id,
        "as_of": m.as_of,
        "created": m.created,
        "status": str(m.status),
        "segments": m.counts.segments,
        "estimated": m.counts.estimated,
        "flagged": m.counts.flagged,
        "failed": m.counts.failed,
        "plan": str(m.statuses.interventions),
        "data_dir": m.data_dir,
        "path": str(path),
    }


def read_table(path: Path, name: str) -> pd.DataFrame | None:
    """Table ``name`` of a run or scenario folder, or None if the folder lacks it."""
    file = path / f"{name}.parquet"
    return pd.read_parquet(file) if file.exists() else None


def _children(folder: Path, prefix: str) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and p.name.startswith(prefix))


def _newest_build(folder: Path) -> Path | None:
    builds = _children(folder, "build=")
    return builds[-1] if builds else None


def _build_name(folder: Path) -> str:
    """A build name later than every build in ``folder`` (UTC time stamp, µs)."""
    name = "build=" + dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    newest = _newest_build(folder)
    if newest is not None and newest.name >= name:  # the clock went back: keep the order
        stamp = dt.datetime.strptime(newest.name.removeprefix("build="), "%Y%m%dT%H%M%S%fZ")
        name = "build=" + (stamp + dt.timedelta(microseconds=1)).strftime("%Y%m%dT%H%M%S%fZ")
    return name


def _view(con: duckdb.DuckDBPyConnection, name: str, files: list[Path]) -> None:
    present = [str(f) for f in files if f.exists()]
    if not present:
        return
    listed = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in present) + "]"
    con.execute(
        f"CREATE VIEW {name} AS SELECT * FROM read_parquet({listed}, "
        "hive_partitioning = true, union_by_name = true)"
    )


def _listing(runs: dict[dt.date, Path]) -> str:
    shown = [d.isoformat() for d in sorted(runs)[-8:]]
    return ", ".join(shown) + (f" (and {len(runs) - 8} earlier)" if len(runs) > 8 else "")
