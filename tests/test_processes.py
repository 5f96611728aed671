"""Parts that hold the GIL (the band draws' forest rounds) run in worker processes of
this machine (:func:`pricing.cluster.Local.map` with ``holds_gil``): the answers are a
serial map's, errors reach the caller, and no worker outlives the process that started
it, whether that process ends, is interrupted or is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import SAMPLE

from pricing import cluster
from pricing.cluster import Local, compute_text
from pricing.decisions import guidance
from pricing.runs.pipeline import run_batch

#: how long a killed run's workers may take to notice (their watcher thread wakes at
#: once; the margin is for a loaded machine)
GONE_WITHIN_S = 10.0


def _square_and_pid(x: int) -> tuple[int, int]:
    return x * x, os.getpid()


def _fails(x: int) -> int:
    raise ValueError(f"part {x} is bad")


def test_parts_run_in_other_processes_and_come_back_in_order() -> None:
    items = list(range(7))
    answers = Local(2).map(_square_and_pid, items, holds_gil=True)
    assert [a for a, _ in answers] == [x * x for x in items]
    assert os.getpid() not in {pid for _, pid in answers}
    # one thread, or a single part, stays in this process
    assert {pid for _, pid in Local(1).map(_square_and_pid, items, holds_gil=True)} == {os.getpid()}
    assert Local(2).map(_square_and_pid, [3], holds_gil=True) == [(9, os.getpid())]


def test_without_a_fork_server_the_parts_stay_on_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    # Windows has no fork server: the parts run on this process's threads
    monkeypatch.setattr(cluster, "_FORK_SERVER", False)
    answers = Local(2).map(_square_and_pid, list(range(4)), holds_gil=True)
    assert answers == [(x * x, os.getpid()) for x in range(4)]


def test_an_error_in_a_part_reaches_the_caller_as_it_was_raised() -> None:
    with pytest.raises(ValueError, match="part 1 is bad"):
        Local(2).map(_fails, [1, 2], holds_gil=True)


def _script(tmp_path: Path, parts: int, seconds: float) -> Path:
    """A script that maps ``parts`` parts over 2 workers, each part writing its number
    and process id and sleeping ``seconds`` (each worker imports the script: its work
    is guarded)."""
    path = tmp_path / "parts.py"
    path.write_text(
        textwrap.dedent(
            f"""
            import os, sys, time
            from pathlib import Path
            from pricing.cluster import Local

            def part(i):
                Path(sys.argv[1], f"part-{{i}}").write_text(str(os.getpid()))
                time.sleep({seconds})

            if __name__ == "__main__":
                Local(2).map(part, list(range({parts})), holds_gil=True)
            """
        )
    )
    return path


def _start(script: Path, tmp_path: Path) -> tuple[subprocess.Popen[str], list[int]]:
    """The script in a process of its own with SIGINT handled (a background job's is
    ignored), once both of its workers are running: it and their process ids."""
    proc = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path)],
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("part-*"))) < 2:
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "the workers did not start"
        time.sleep(0.05)
    time.sleep(0.2)  # both files written in full
    return proc, [int(p.read_text()) for p in tmp_path.glob("part-*")]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _gone(pids: list[int]) -> bool:
    deadline = time.monotonic() + GONE_WITHIN_S
    while any(_alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.mark.slow
def test_a_killed_process_leaves_no_worker_behind(tmp_path: Path) -> None:
    # before: the workers, the fork server and the resource tracker lived on for ever
    proc, workers = _start(_script(tmp_path, parts=2, seconds=60), tmp_path)
    proc.kill()
    proc.communicate()
    assert _gone(workers)


@pytest.mark.slow
def test_ctrl_c_waits_for_the_running_parts_and_cancels_the_rest(tmp_path: Path) -> None:
    # SIGINT to the caller and its workers, as a terminal's Ctrl-C to the process group:
    # the workers ignore it and finish their parts (3 s), the caller cancels the parts
    # not yet handed out and raises KeyboardInterrupt. The pool hands out one part ahead
    # of its workers, so a third part may still run; the other three do not
    proc, workers = _start(_script(tmp_path, parts=6, seconds=3), tmp_path)
    for pid in (proc.pid, *workers):
        os.kill(pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGINT and "KeyboardInterrupt" in err
    assert len(list(tmp_path.glob("part-*"))) <= 3
    assert _gone(workers)


def test_an_unguarded_script_is_told_to_guard_its_work(tmp_path: Path) -> None:
    script = tmp_path / "unguarded.py"
    script.write_text(
        "from pricing.cluster import Local\n"
        "import math\n"
        "print(Local(2).map(math.sqrt, [4.0, 9.0], holds_gil=True))\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert done.returncode == 1
    assert "RuntimeError: a worker process died" in done.stderr
    assert 'if __name__ == "__main__":' in done.stderr


def test_a_run_records_its_band_workers_and_their_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the sample's coupled market with its band draws cut into 3 tasks a market: they run
    # in 2 worker processes, and the manifest says so beside this process's threads
    monkeypatch.setattr(guidance, "CHUNK_SEGMENTS", 36 * 128 // 3)
    run = run_batch(SAMPLE, store=tmp_path / "store", executor=Local(2))
    compute = run.manifest.compute
    assert compute is not None and compute["band_workers"] == 2
    assert 50 < compute["band_worker_peak_memory_mb"] < run.manifest.peak_memory_mb * 4
    assert compute_text(compute) == (
        "this process (2 threads; band draws in 2 worker processes, each at most "
        f"{compute['band_worker_peak_memory_mb']:,.0f} MB)"
    )
    assert compute_text({"kind": "local", "workers": 1, "threads": 2}) == "this process (2 threads)"
