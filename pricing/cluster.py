"""Where the parallel parts of a run execute: in this process, or on a Dask cluster.

The heavy steps of a run split into independent parts — files of a partitioned input,
batches of segments to estimate, connected components to clear, blocks of band draws —
mapped through an :class:`Executor` and combined on the caller's side:

    step(inputs) = combine( executor.map(part_fn, split(inputs, parts)) )

``split`` and ``combine`` are the same whichever executor runs the parts, and each part
is deterministic, so a run on a cluster gives the local run's numbers (work too small
to split stays in this process: :func:`plan_parts`). They agree exactly where a part's
answer does not depend on its batch-mates (curve estimates, closed forms, band draws:
each block has its own random stream) and to the solver's tolerance where it does
(interior-point iterations stop on the worst component of a batch; sums combined in
another order differ in the last bits).

:data:`LOCAL` runs parts in this process, on a thread pool, or, for parts that hold the
GIL (``map(..., holds_gil=True)``: the band draws' forest rounds), in worker processes
of this machine (:func:`_in_processes`). :func:`executor` connects to
a scheduler (``tcp://HOST:PORT``) or starts a :class:`distributed.LocalCluster` of worker
processes; Dask is imported only then (the ``pricing[dask]`` extra).

On a cluster every worker must have the same version of ``pricing`` installed and see
the data directory at the same path (a shared filesystem); both are checked when the
run connects.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import multiprocessing.forkserver
import os
import resource
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from pricing._version import __version__
from pricing.errors import ClusterError
from pricing.memory import keep_freed_memory

if TYPE_CHECKING:
    from distributed import Client

T = TypeVar("T")
R = TypeVar("R")

#: parts per worker thread on a cluster: a little slack for uneven parts
PARTS_PER_WORKER = 2


class Executor(Protocol):
    """Runs a function over independent parts and returns the answers in order."""

    @property
    def workers(self) -> int:
        """How many parts run at once."""
        ...

    @property
    def remote(self) -> bool:
        """True when parts run in other processes (their inputs are sent to them)."""
        ...

    def map(self, fn: Callable[[T], R], items: Sequence[T], *, holds_gil: bool = False) -> list[R]:
        """``[fn(item) for item in items]``, the parts side by side; ``holds_gil``: ``fn``
        spends its time in Python and in numpy calls too small to release the GIL, so
        threads of one process would take turns."""
        ...

    def describe(self) -> dict[str, Any]:
        """What ran the parts, for the run's manifest."""
        ...

    def prepare(self, module: str) -> None:
        """Get ready to run tasks of ``module`` that hold the GIL, beside the caller's
        work, and return at once."""
        ...


@dataclass(frozen=True)
class Local:
    """Parts run in this process, on one thread per core (numpy and DuckDB release the
    GIL in their heavy loops)."""

    threads: int = len(os.sched_getaffinity(0))

    @property
    def workers(self) -> int:
        return self.threads

    @property
    def remote(self) -> bool:
        return False

    def map(self, fn: Callable[[T], R], items: Sequence[T], *, holds_gil: bool = False) -> list[R]:
        if len(items) <= 1 or self.threads == 1:
            return [fn(item) for item in items]
        workers = min(self.threads, len(items))
        if holds_gil and _FORK_SERVER:
            return _in_processes(fn, items, workers)
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(fn, items))

    def describe(self) -> dict[str, Any]:
        return {"kind": "local", "workers": 1, "threads": self.threads}

    def prepare(self, module: str) -> None:
        """Start the fork server of the worker processes (:func:`_in_processes`) now,
        with ``module`` imported in it (~1 s, in its own process)."""
        if self.threads > 1 and _FORK_SERVER:
            _fork_server(module)
            multiprocessing.forkserver.ensure_running()


LOCAL = Local()

# a solve's threads free large arrays many times a second: keep their pages
# (:mod:`pricing.memory`)
keep_freed_memory()

#: whether this platform has multiprocessing's fork server (POSIX; not Windows, where
#: parts that hold the GIL stay on threads)
_FORK_SERVER = "forkserver" in multiprocessing.get_all_start_methods()


def _in_processes(fn: Callable[[T], R], items: Sequence[T], workers: int) -> list[R]:
    """``fn`` over ``items`` in ``workers`` worker processes, forked from multiprocessing's
    fork server (started once per process, with ``fn``'s module imported there, so a
    worker starts in milliseconds instead of the ~1 s of importing scipy and pandas).
    Measured on the band draws of a connected 10^4-segment market (12 parts of ~1.5 s,
    mostly the forest's rounds), on 2 cores: 2 threads took 1.04× the time of one thread,
    2 processes 0.61× (10.7 s against 17.6 s, the fork server's start included).

    As in every program that starts processes this way (multiprocessing's "spawn" and
    "forkserver", a Dask LocalCluster), a worker imports the main script, so a script
    must run its work under ``if __name__ == "__main__":``; the commands and notebooks
    do. The workers ignore SIGINT: Ctrl-C interrupts this process, which cancels the
    parts not yet started and waits for the running ones (a part is seconds)."""
    pool = ProcessPoolExecutor(
        workers, mp_context=_fork_server(fn.__module__), initializer=_worker_start
    )
    try:
        return list(pool.map(fn, items))
    except BrokenProcessPool as exc:
        raise RuntimeError(
            f"a worker process died while running {fn.__qualname__} ({exc}). If this runs "
            'from a script, put its work under `if __name__ == "__main__":` (each worker '
            "imports the main script), or pass executor=pricing.cluster.Local(1) to stay in "
            "one process; otherwise the machine may be out of memory"
        ) from exc
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _fork_server(module: str) -> multiprocessing.context.ForkServerContext:
    """The fork server's context, with ``module`` to import when it starts (a server
    already running keeps what it has: :meth:`Local.prepare` starts it with the same).
    The main script is not imported there: the server would run an unguarded script's
    work."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([module])
    return context


def _worker_start() -> None:
    """Run in each worker process as it starts: Ctrl-C is for the process that started
    it, and when that process dies (killed: it cannot shut its workers down) the worker
    exits too, instead of waiting for work for ever (measured: orphaned workers, the
    fork server and multiprocessing's resource tracker lived on after a SIGKILL)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    if parent is not None:

        def orphaned() -> None:
            multiprocessing.connection.wait([parent.sentinel])
            os._exit(1)

        threading.Thread(target=orphaned, name="orphaned", daemon=True).start()


@dataclass(frozen=True)
class Dask:
    """Parts run as tasks on a Dask cluster through ``client``."""

    client: Client
    kind: str  # "scheduler" (an existing cluster) or "local_cluster"
    address: str
    warming: list[Any] = field(default_factory=list)  # futures of the workers' imports

    @property
    def workers(self) -> int:
        return max(1, int(sum(self.client.nthreads().values())))

    @property
    def remote(self) -> bool:
        return True

    def map(self, fn: Callable[[T], R], items: Sequence[T], *, holds_gil: bool = False) -> list[R]:
        # the workers are processes of their own: the GIL is no concern
        if not items:
            return []
        # inputs go straight to the workers, not through the task graph: a batch of a
        # large panel is megabytes
        from concurrent.futures import CancelledError

        import dask.config
        from distributed import KilledWorker

        try:
            # the parts travel inside their tasks, not scattered ahead: a scattered part
            # dies with the worker holding it, while a task's own input lets Dask run it
            # again elsewhere. A batch of a large panel is megabytes: no warning for that
            with dask.config.set({"distributed.admin.large-graph-warning-threshold": "16 GiB"}):
                futures = self.client.map(fn, list(items), pure=False)
            return list(self.client.gather(futures))
        except (OSError, TimeoutError, CancelledError, KilledWorker) as exc:
            # the scheduler was lost, or a part kept killing the workers it ran on
            raise ClusterError(
                f"the Dask cluster at {self.address} failed: {type(exc).__name__}: {exc}"
            ) from exc

    def prepare(self, module: str) -> None:
        """Nothing to do: the workers import what their tasks need when they join
        (:func:`_warm_up`)."""

    def describe(self) -> dict[str, Any]:
        info = self.client.scheduler_info()
        workers = info.get("workers", {})
        return {
            "kind": self.kind,
            "address": self.address,
            "workers": len(workers),
            "threads": sum(int(w.get("nthreads", 0)) for w in workers.values()),
        }


def plan_parts(executor: Executor, units: int, per_part: int) -> tuple[Executor, int]:
    """Where to run ``units`` of work that splits into parts of at least ``per_part``
    units, and in how many parts: on a remote ``executor`` up to
    :data:`PARTS_PER_WORKER` per worker thread, or in this process (:data:`LOCAL`), in
    one part, when there is too little for two (sending it would cost more than it
    saves); a local ``executor`` is kept, in one part. The answer is the same wherever it
    runs."""
    if not executor.remote:
        return executor, 1  # as it is: a caller may have asked for one thread
    if units >= 2 * per_part:
        return executor, min(executor.workers * PARTS_PER_WORKER, units // per_part)
    return LOCAL, 1


def peak_memory_mb() -> float:
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


def compute_text(compute: dict[str, Any] | None) -> str:
    """Where a run ran, in words, from its manifest's ``compute`` (None: an older run)."""
    if compute is None:
        return "not recorded"
    if compute["kind"] == "local":
        text = f"this process ({compute['threads']} threads"
        if compute.get("band_workers"):
            text += (
                f"; band draws in {compute['band_workers']} worker processes, each at most "
                f"{compute['band_worker_peak_memory_mb']:,.0f} MB"
            )
        return text + ")"
    where = (
        "a local Dask cluster"
        if compute["kind"] == "local_cluster"
        else f"the Dask cluster at {compute['address']}"
    )
    return f"{where} ({compute['workers']} workers, {compute['threads']} threads)"


@contextmanager
def executor(
    scheduler: str | None = None, workers: int | None = None, data_dir: str | Path | None = None
) -> Iterator[Executor]:
    """The executor for ``scheduler`` (an address), ``workers`` (a LocalCluster of that
    many single-threaded worker processes), or :data:`LOCAL` when neither is given.

    Raises :class:`ClusterError` when Dask is not installed, the scheduler does not
    answer, a worker runs another version of ``pricing``, or a worker cannot see
    ``data_dir``. The cluster started for ``workers`` is shut down on exit.
    """
    if scheduler is not None and workers is not None:
        raise ValueError("give a scheduler address or a number of workers, not both")
    if scheduler is None and workers is None:
        yield LOCAL
        return
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise ClusterError(
            "running on Dask needs the dask extra: pip install 'pricing[dask]'"
        ) from exc
    with ExitStack() as stack:
        if workers is not None:
            try:
                cluster = stack.enter_context(
                    LocalCluster(
                        n_workers=workers,
                        threads_per_worker=1,
                        processes=True,
                        # the scheduler always serves HTTP; on a free local port, so
                        # that runs side by side (or a cluster on 8787) do not collide
                        dashboard_address="127.0.0.1:0",
                        silence_logs=logging.ERROR,
                    )
                )
            except (OSError, TimeoutError) as exc:
                raise ClusterError(
                    f"cannot start a local Dask cluster of {workers} workers: {exc}"
                ) from exc
            address, kind = str(cluster.scheduler_address), "local_cluster"
            client = stack.enter_context(Client(cluster))
        else:
            assert scheduler is not None
            address, kind = scheduler, "scheduler"
            try:
                client = stack.enter_context(Client(scheduler))
            except (OSError, TimeoutError, ValueError) as exc:
                import dask.config

                waited = dask.config.get("distributed.comm.timeouts.connect")
                raise ClusterError(
                    f"cannot reach the Dask scheduler at {scheduler} (waited {waited}; "
                    f"Dask's distributed.comm.timeouts.connect): {exc}; check the address "
                    "(--scheduler or DASK_SCHEDULER_ADDRESS) and that the scheduler is up"
                ) from exc
        # a directory this process cannot see either is for validation to report
        seen = None if data_dir is None or not Path(data_dir).is_dir() else Path(data_dir)
        _check_workers(client, address, seen)
        # the workers import what their tasks need while this process validates the
        # inputs (a fresh worker spends ~1.5 s importing pandas, DuckDB and scipy); the
        # futures are kept so that the tasks are not released before they run
        warming = [
            client.submit(_warm_up, pure=False, workers=[worker])
            for worker in client.scheduler_info()["workers"]
        ]
        yield Dask(client, kind, address, warming)


def _warm_up() -> None:
    """Run on each worker: import the modules whose functions its tasks run."""
    import importlib

    for module in (
        "pricing.inputs.panel",
        "pricing.estimation.curves",
        "pricing.market.equilibrium",
        "pricing.decisions.guidance",
        "scipy.stats",  # imported on first use by the estimator (pricing.estimation.iv)
        "scipy.sparse",  # and by the interior point's large components
    ):
        importlib.import_module(module)


def _worker_facts(data_dir: str | None) -> tuple[str, bool]:
    """Run on each worker: its ``pricing`` version and whether it sees ``data_dir``."""
    return __version__, data_dir is None or Path(data_dir).is_dir()


def _check_workers(client: Client, address: str, data_dir: Path | None) -> None:
    try:
        facts: dict[str, tuple[str, bool]] = client.run(
            _worker_facts, None if data_dir is None else str(data_dir.resolve())
        )
    except ImportError as exc:  # a worker without pricing cannot even load the check
        raise ClusterError(
            f"a worker of the Dask cluster at {address} cannot import pricing ({exc}); "
            f"install pricing {__version__} with the dask extra on every worker"
        ) from exc
    if not facts:
        raise ClusterError(f"the Dask cluster at {address} has no workers; start some")
    problems = [
        f"worker {w} runs pricing {v}, this process {__version__}: install the same version"
        for w, (v, _) in facts.items()
        if v != __version__
    ]
    problems += [
        f"worker {w} cannot see the data directory {data_dir}: mount it at the same path"
        for w, (_, seen) in facts.items()
        if not seen
    ]
    if problems:
        raise ClusterError(
            f"the Dask cluster at {address} cannot run this:\n"
            + "\n".join(f"  - {p}" for p in problems)
        )
