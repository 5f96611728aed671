"""The run store: one folder of Parquet tables per run and per what-if scenario.

Layout under the store root (``./pricing-runs`` by default)::

    runs/as_of=2025-12-28/build=20261127T110019123456Z/
        curves.parquet  equilibrium.parquet  flows.parquet  guidance.parquet
        [interventions.parquet  plan_categories.parquet  plan_constraints.parquet]
        market.parquet  edges.parquet  [catalogue.parquet]  manifest.json  [report.html]
    scenarios/baseline=2025-12-28/scenario=design-boom/build=…/
        segments.parquet  totals.parquet  equilibrium.parquet  flows.parquet
        [interventions.parquet  plan_categories.parquet  plan_constraints.parquet]
        scenario.toml  manifest.json  [report.html]
    backtests/as_of=2025-12-28/build=…/
        scores.parquet  segments.parquet  [truth.parquet]  manifest.json

**Atomic commits.** A run (a scenario result, a backtest) is written into a hidden
temporary folder next to its final place and renamed to a fresh ``build=`` folder only
when every table, file (the report included) and the manifest are complete. The rename
is the commit: a crash or SIGKILL at any moment leaves either no new build (the temporary
folder is invisible to readers and removed by the next writer) or a complete one. Readers
take the **newest build** of each as-of date (and of each scenario): re-running an as-of
replaces the run (or backtest) in one step.

**Durable.** Every file and the temporary folder are fsynced before the rename and the
folder holding the build after it (:func:`pricing.inputs.io.atomic_directory`).

**Isolated.** Writers serialize their commits on an exclusive ``flock`` of ``.lock``, so
a temporary folder found while holding it belongs to a dead writer. Readers hold a shared
``flock`` of ``.readers`` while they read (:meth:`RunStore.hold`): a commit retires
superseded builds — renames them to hidden ``.retired=…`` folders and deletes them —
only when it can take that lock exclusively, that is when no reader is reading. So a
build never vanishes under a reader; a superseded build outlives its readers, invisible
to new ones, until the next commit that finds the store without readers.

**Names.** Only folders named exactly ``as_of=YYYY-MM-DD``, ``baseline=YYYY-MM-DD``,
``scenario=NAME`` and ``build=YYYYMMDDTHHMMSSffffffZ`` are read. Anything else that is
not hidden (a ``as_of=2025-12-28.bak`` copy, a stray file) is left alone and reported as
:class:`Damage` — the readers in :mod:`pricing.store.snapshot` say so on stderr, and
``pricing store check`` lists it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import os
import re
import shutil
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

import pandas as pd

from pricing.errors import StoreError, StoreWriteError, os_reason
from pricing.inputs.io import atomic_directory
from pricing.store.manifest import MANIFEST, BacktestManifest, Manifest, ScenarioManifest

DEFAULT_STORE = Path("pricing-runs")
#: Tables of a run folder, in the order they are written (the manifest comes last).
RUN_TABLES = (
    "curves",
    "equilibrium",
    "flows",
    "guidance",
    "interventions",
    "plan_categories",
    "plan_constraints",
    "market",
    "edges",
    "catalogue",
)
#: Tables of a scenario folder; as views they are prefixed ``scenario_``.
SCENARIO_TABLES = (
    "segments",
    "totals",
    "equilibrium",
    "flows",
    "interventions",
    "plan_categories",
    "plan_constraints",
)
#: Tables of a backtest folder; as views they are prefixed ``backtest_``.
BACKTEST_TABLES = ("scores", "segments", "truth")

_DATE = r"(\d{4}-\d{2}-\d{2})"
_AS_OF = re.compile(rf"as_of={_DATE}")
_BASELINE = re.compile(rf"baseline={_DATE}")
_SCENARIO = re.compile(r"scenario=([A-Za-z0-9_.-]+)")
_BUILD = re.compile(r"build=(\d{8}T\d{12}Z)")
_STAMP = "%Y%m%dT%H%M%S%fZ"
#: prefix of a superseded build being deleted (hidden: no reader lists it)
_RETIRED = ".retired="
#: the lock readers share and a commit takes alone to retire builds
_READERS = ".readers"


@dataclass(frozen=True)
class Damage:
    """One damaged or stray item of a store: where it is, what it is, what is wrong."""

    path: Path
    item: str  # "run 2025-12-28", "scenario boom of run 2025-12-28", "stray entry"
    problem: str

    def __str__(self) -> str:
        return f"{self.item} at {self.path}: {self.problem}"

    def to_dict(self) -> dict[str, str]:
        return {"item": self.item, "path": str(self.path), "problem": self.problem}


@dataclass
class Listing:
    """What the store's folders hold, from their names alone (no file is read): the
    current build of every run and scenario, superseded builds, hidden leftovers of
    writers, and stray entries (as :class:`Damage`)."""

    runs: dict[dt.date, Path] = field(default_factory=dict)
    scenarios: dict[tuple[dt.date, str], Path] = field(default_factory=dict)
    backtests: dict[dt.date, Path] = field(default_factory=dict)
    superseded: list[Path] = field(default_factory=list)
    leftovers: list[Path] = field(default_factory=list)
    stray: list[Damage] = field(default_factory=list)


class ReaderHold:
    """A reader's shared lock of the store (module docstring, "Isolated"): while any is
    held, no commit retires a build. Taken by :meth:`take` (:meth:`RunStore.hold`, or a
    commit for its writer); released by :meth:`release`, or when the object is
    garbage-collected (the process's end included). A store that cannot be written has
    no writers to keep out, and is held without the lock."""

    def __init__(self) -> None:
        self._handle: IO[bytes] | None = None

    def take(self, lock: Path) -> ReaderHold:
        """Take the shared lock of the file ``lock``; blocks only while a commit renames
        superseded builds away."""
        self.release()
        try:  # a reader may lack the right to write: read-only suffices for a lock
            handle = lock.open("rb") if lock.exists() else lock.open("ab")
        except OSError:
            return self
        fcntl.flock(handle, fcntl.LOCK_SH)
        self._handle = handle
        return self

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing the file drops its flock
            self._handle = None

    def __del__(self) -> None:
        self.release()

    def __enter__(self) -> ReaderHold:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class BacktestRecord(Protocol):
    """What the store writes of a backtest (:class:`pricing.runs.backtest.BacktestResult`)."""

    @property
    def as_of(self) -> dt.date: ...

    def tables(self) -> dict[str, pd.DataFrame]: ...

    def manifest(self) -> BacktestManifest: ...


class RunStore:
    """A folder of runs, scenario results and backtests (see the module docstring)."""

    def __init__(self, root: str | Path = DEFAULT_STORE) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"RunStore({str(self.root)!r})"

    # ---------------------------------------------------------------- reading
    def run_paths(self) -> dict[dt.date, Path]:
        """The current (newest) build of every as-of date, oldest as-of first."""
        return self.listing().runs

    def scenario_paths(self) -> dict[tuple[dt.date, str], Path]:
        """The current build of every (baseline as-of, scenario name)."""
        return self.listing().scenarios

    def listing(self) -> Listing:
        """The store's folders by name (:class:`Listing`); a :class:`StoreError` when the
        root or its ``runs``/``scenarios`` is not a folder."""
        found = Listing()
        for kind in ("runs", "scenarios", "backtests"):
            folder = self.root / kind
            if folder.exists() and not folder.is_dir():
                raise StoreError(
                    f"{self.root} is not a run store: {folder} is not a folder; "
                    "pass the store's folder with --store"
                )
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"run store {self.root} is a file, not a folder")
        for as_of, folder in _dated(self.root / "runs", _AS_OF, found):
            build = _current_build(folder, found)
            if build is not None:
                found.runs[as_of] = build
        for as_of, base in _dated(self.root / "scenarios", _BASELINE, found):
            for folder in _entries(base, found, _SCENARIO):
                build = _current_build(folder, found)
                if build is not None:
                    found.scenarios[(as_of, folder.name.removeprefix("scenario="))] = build
        for as_of, folder in _dated(self.root / "backtests", _AS_OF, found):
            build = _current_build(folder, found)
            if build is not None:
                found.backtests[as_of] = build
        found.runs = dict(sorted(found.runs.items()))
        found.scenarios = dict(sorted(found.scenarios.items()))
        found.backtests = dict(sorted(found.backtests.items()))
        return found

    def backtest_paths(self) -> dict[dt.date, Path]:
        """The current build of every backtest's as-of date, oldest first."""
        return self.listing().backtests

    def latest_backtests(self, as_of: dt.date) -> list[Path]:
        """The current builds of the backtests as of ``as_of`` or before, latest first
        (an empty list when the store does not exist)."""
        if not self.root.is_dir():
            return []
        stored = self.backtest_paths()
        return [stored[d] for d in sorted(stored, reverse=True) if d <= as_of]

    def resolve(self, run_id: str) -> Path:
        """The folder of run ``run_id``: ``latest`` or an as-of date (YYYY-MM-DD)."""
        if not self.root.exists():
            raise StoreError(f"run store {self.root} does not exist; run `pricing run` first")
        runs = self.run_paths()  # a StoreError when the root or its runs is not a folder
        if not runs:
            raise StoreError(f"run store {self.root} holds no runs yet; run `pricing run` first")
        if run_id == "latest":
            return runs[max(runs)]
        try:
            as_of = dt.date.fromisoformat(run_id)
        except ValueError:
            raise StoreError(
                f"run id {run_id!r} is neither 'latest' nor a date (YYYY-MM-DD); "
                f"runs in {self.root}: {_shown(runs)}"
            ) from None
        if as_of not in runs:
            raise StoreError(f"no run as of {run_id} in {self.root}; runs: {_shown(runs)}")
        return runs[as_of]

    def earlier(self, as_of: dt.date) -> list[Path]:
        """The current builds of the runs before ``as_of``, latest first."""
        runs = self.run_paths()
        return [runs[d] for d in sorted(runs, reverse=True) if d < as_of]

    def hold(self) -> ReaderHold:
        """Hold the store for reading (:class:`ReaderHold`)."""
        return ReaderHold().take(self.root / _READERS)

    # ---------------------------------------------------------------- writing
    def check_writable(self) -> None:
        """Fail fast, before a run computes anything: a :class:`StoreError` (exit 3) when
        the path is not a run store, a :class:`StoreWriteError` (exit 6) when it cannot
        be written. The commit itself can still fail (a disk filling up meanwhile), with
        a :class:`StoreWriteError`."""
        self.listing()
        existing = next(p for p in (self.root, *self.root.parents) if p.exists())
        if not existing.is_dir():
            raise StoreError(f"run store {self.root} cannot be created: {existing} is a file")
        if not os.access(existing, os.W_OK | os.X_OK):
            reason = os.strerror(errno.EROFS if _read_only(existing) else errno.EACCES)
            raise StoreWriteError(f"run store {self.root} cannot be written: {reason}")

    def write_run(
        self,
        as_of: dt.date,
        tables: dict[str, pd.DataFrame],
        manifest: Manifest,
        finish: Callable[[Path], None] | None = None,
        on_commit: Callable[[Path], None] | None = None,
        hold: ReaderHold | None = None,
    ) -> Path:
        """Commit a run for ``as_of``; it replaces any earlier run of that date. The
        stored manifest gets the build, the path, the tables' rows and the store's own
        seconds. ``finish(folder)`` adds files (the report) to the complete build before
        the commit; ``on_commit(path)`` learns of the commit before anything can
        interrupt it (Ctrl-C is held back from the rename until it returns); ``hold`` is
        taken before another commit can retire the new build, for a writer that reads it
        back."""
        folder = self.root / "runs" / f"as_of={as_of.isoformat()}"
        return self._commit(folder, tables, manifest, {}, (finish, on_commit, hold))

    def write_scenario(
        self,
        baseline: dt.date,
        name: str,
        tables: dict[str, pd.DataFrame],
        manifest: ScenarioManifest,
        files: dict[str, str] | None = None,
        finish: Callable[[Path], None] | None = None,
        on_commit: Callable[[Path], None] | None = None,
        hold: ReaderHold | None = None,
    ) -> Path:
        """Commit a scenario result against the run of ``baseline``; it replaces an earlier
        result of the same scenario and baseline (``finish``, ``on_commit``, ``hold``: as
        :meth:`write_run`)."""
        folder = self.root / "scenarios" / f"baseline={baseline.isoformat()}" / f"scenario={name}"
        return self._commit(folder, tables, manifest, files or {}, (finish, on_commit, hold))

    def write_backtest(
        self,
        result: BacktestRecord,
        on_commit: Callable[[Path], None] | None = None,
        hold: ReaderHold | None = None,
    ) -> Path:
        """Commit a backtest (its tables and manifest) for its as-of date; it replaces an
        earlier backtest of that date (``on_commit``, ``hold``: as :meth:`write_run`)."""
        folder = self.root / "backtests" / f"as_of={result.as_of.isoformat()}"
        return self._commit(folder, result.tables(), result.manifest(), {}, (None, on_commit, hold))

    def _commit(
        self,
        folder: Path,
        tables: dict[str, pd.DataFrame],
        manifest: Manifest | ScenarioManifest | BacktestManifest,
        files: dict[str, str],
        hooks: tuple[
            Callable[[Path], None] | None, Callable[[Path], None] | None, ReaderHold | None
        ],
    ) -> Path:
        """Write the tables, the files and (last) the manifest, with the seconds the
        writing took as the ``store`` timing, into a new build folder; then ``finish``;
        then the rename, ``on_commit``, the retiring of superseded builds and the
        ``hold`` (``hooks``; module docstring). Failures to write are a
        :class:`StoreWriteError`: nothing was stored."""
        finish, on_commit, hold = hooks
        with self._lock():
            with _deferred_interrupts() as hold_interrupts:
                try:
                    folder.mkdir(parents=True, exist_ok=True)
                    final = folder / _build_name(folder)
                    with atomic_directory(final) as tmp:
                        start = time.perf_counter()
                        for name, frame in tables.items():
                            frame.to_parquet(tmp / f"{name}.parquet", index=False)
                        for name, text in files.items():
                            (tmp / name).write_text(text, encoding="utf-8")
                        seconds = round(time.perf_counter() - start, 3)
                        stored = manifest.model_copy(
                            update={
                                "build": final.name.removeprefix("build="),
                                "path": str(final),
                                "timings_s": {**manifest.timings_s, "store": seconds},
                                "tables": {name: len(frame) for name, frame in tables.items()},
                            }
                        )
                        (tmp / MANIFEST).write_text(stored.to_json(), encoding="utf-8")
                        if finish is not None:
                            finish(tmp)
                        hold_interrupts()  # the rename is next, as the block ends
                except OSError as exc:
                    raise StoreWriteError(
                        f"run store {self.root} cannot be written: {os_reason(exc)}; "
                        "nothing was stored"
                    ) from None
                if on_commit is not None:
                    on_commit(final)
            self._retire()
            if hold is not None:  # before another commit may retire the new build
                hold.take(self.root / _READERS)
        return final

    def _retire(self) -> None:
        """Under the commit lock: remove superseded builds, if no reader is reading, and
        dead writers' folders (module docstring); what cannot be removed now is left for
        a later commit."""
        listing = self.listing()
        if listing.superseded:
            listing.leftovers += _hide_if_unread(self.root / _READERS, listing.superseded)
        for path in listing.leftovers:  # hidden: no reader lists them
            shutil.rmtree(path, ignore_errors=True)

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            handle = (self.root / ".lock").open("a")
        except OSError as exc:
            raise StoreWriteError(
                f"run store {self.root} cannot be written: {os_reason(exc)}; nothing was stored"
            ) from None
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield


def _hide_if_unread(readers: Path, builds: list[Path]) -> list[Path]:
    """Rename ``builds`` to hidden ``.retired=`` folders if no reader holds the store
    (a shared lock of ``readers``); where they went (none while a reader reads)."""
    hidden: list[Path] = []
    try:
        with readers.open("ab") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError: a reader
            for build in builds:
                target = build.with_name(f"{_RETIRED}{build.name}-{uuid.uuid4().hex[:8]}")
                build.rename(target)
                hidden.append(target)
    except OSError:
        pass  # a reader is reading, or the store is not writable: a later commit retires them
    return hidden


@contextlib.contextmanager
def _deferred_interrupts() -> Iterator[Callable[[], None]]:
    """Yield a function that holds SIGINT and SIGTERM back until the block ends.

    A commit calls it just before its rename, so that an interrupt either stops the
    commit (nothing stored) or arrives after ``on_commit`` has learnt of the build (and
    the command line says what was stored); it is never lost in between: it is sent
    again, to the handlers it would have met, when the block ends.

    The signals are caught by Python handlers that only note them, not blocked with
    ``pthread_sigmask``: a mask holds only for the thread that sets it, and the kernel
    delivers a process's signal to any thread that does not block it (BLAS, Arrow and
    DuckDB pools), whose C handler makes the main thread raise KeyboardInterrupt anyway
    — after the rename, before ``on_commit``: "nothing was stored" for a stored run.
    Python runs signal handlers in the main thread only; a commit from another thread
    cannot be interrupted by them, and holds nothing back."""
    pending: list[int] = []
    previous: dict[int, Any] = {}

    def note(signum: int, frame: object) -> None:
        pending.append(signum)

    def hold() -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(signum) is not None:  # None: a handler Python cannot restore
                previous[signum] = signal.signal(signum, note)

    try:
        yield hold
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in dict.fromkeys(pending):  # each once, in the order they came
            signal.raise_signal(signum)


#: the columns of :func:`run_row`
RUN_COLUMNS = (
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


def run_row(m: Manifest, path: Path) -> dict[str, object]:
    """A run's row in ``pricing history`` and the ``runs`` view, from its manifest."""
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


def _entries(folder: Path, found: Listing, pattern: re.Pattern[str]) -> list[Path]:
    """The folders in ``folder`` named by ``pattern``, sorted; other entries that are not
    hidden are stray."""
    if not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_dir() and pattern.fullmatch(path.name):
            out.append(path)
        else:
            found.stray.append(Damage(path, "stray entry", _stray_reason(path, pattern)))
    return out


def _dated(
    folder: Path, pattern: re.Pattern[str], found: Listing
) -> Iterator[tuple[dt.date, Path]]:
    """The ``as_of=``/``baseline=`` folders of ``folder`` with their dates (an impossible
    date, such as 2025-02-30, is stray)."""
    for path in _entries(folder, found, pattern):
        match = pattern.fullmatch(path.name)
        assert match is not None
        try:
            yield dt.date.fromisoformat(match.group(1)), path
        except ValueError:
            found.stray.append(Damage(path, "stray entry", f"{match.group(1)} is not a date"))


def _current_build(folder: Path, found: Listing) -> Path | None:
    """The newest well-named build of ``folder``; older ones are superseded, hidden
    folders are writers' leftovers (a live writer's temporary folder among them: the
    commit lock tells them apart)."""
    builds = []
    for path in _entries(folder, found, _BUILD):
        try:
            dt.datetime.strptime(path.name.removeprefix("build="), _STAMP)
        except ValueError:
            found.stray.append(Damage(path, "stray entry", "its name is not a build time stamp"))
            continue
        builds.append(path)
    found.superseded += builds[:-1]
    found.leftovers += [
        p for p in folder.iterdir() if p.name.startswith((".build=", _RETIRED)) and p.is_dir()
    ]
    return builds[-1] if builds else None


def _stray_reason(path: Path, pattern: re.Pattern[str]) -> str:
    expected = {
        _AS_OF: "as_of=YYYY-MM-DD",
        _BASELINE: "baseline=YYYY-MM-DD",
        _SCENARIO: "scenario=NAME",
        _BUILD: "build=YYYYMMDDTHHMMSSffffffZ",
    }[pattern]
    kind = "folder" if path.is_dir() else "file"
    return f"a {kind} where only {expected} folders belong; it is not read (move it out)"


def _build_name(folder: Path) -> str:
    """A build name later than every build in ``folder`` (UTC time stamp, µs)."""
    name = "build=" + dt.datetime.now(dt.UTC).strftime(_STAMP)
    newest = _current_build(folder, Listing())
    if newest is not None and newest.name >= name:  # the clock went back: keep the order
        stamp = dt.datetime.strptime(newest.name.removeprefix("build="), _STAMP)
        name = "build=" + (stamp + dt.timedelta(microseconds=1)).strftime(_STAMP)
    return name


def _read_only(path: Path) -> bool:
    return bool(os.statvfs(path).f_flag & os.ST_RDONLY)


def _shown(runs: dict[dt.date, Path]) -> str:
    shown = [d.isoformat() for d in sorted(runs)[-8:]]
    return ", ".join(shown) + (f" (and {len(runs) - 8} earlier)" if len(runs) > 8 else "")
