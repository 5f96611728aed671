"""The allocator's thresholds (:mod:`pricing.memory`), in fresh processes: a thread that
frees large arrays keeps their pages once ``pricing.cluster`` is imported, and the
environment's own malloc tuning is left alone.

The measure is page faults (``ru_minflt``, counted by the kernel: integers). A thread
allocates three arrays of 8 MiB (2,048 pages each), frees them, and repeats 20 times.
The faults of the last 10 rounds are compared with the pages those rounds use (61,440):

- with glibc's defaults the memory goes back to the system and returns a page at a
  time: measured 15,130 faults in the last 10 rounds, a quarter of the pages used;
- with the thresholds fixed it stays: measured 0 (all 1,500 faults of the 20 rounds
  are the first round's, its pages' first touch).

So the bound is a tenth of the pages used. It is far above the ~0 expected, and far
below what the defaults give.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from pricing.memory import USER_TUNING

pytestmark = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc", reason="the thresholds are glibc's (mallopt)"
)

ROUNDS, PAGES_PER_ROUND = 10, 3 * 2048

_FAULTS = """
import resource, sys, threading
import numpy as np
if sys.argv[1] == "import":
    import pricing.cluster
out = {}
def rounds(n):
    for _ in range(n):
        a = np.ones(1 << 20); b = np.ones(1 << 20); c = a + b
        del a, b, c
def run():
    rounds(10)
    before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
    rounds(10)
    out["faults"] = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before
thread = threading.Thread(target=run)
thread.start()
thread.join()
print(out["faults"])
"""


def _untuned() -> dict[str, str]:
    """This environment without malloc's tuning variables (a Dask LocalCluster started
    by another test sets ``MALLOC_TRIM_THRESHOLD_`` in its process's environment, for
    its workers)."""
    return {k: v for k, v in os.environ.items() if k not in USER_TUNING}


def _faults(how: str) -> int:
    """Page faults of the last rounds of the script above, in a fresh process."""
    done = subprocess.run(
        [sys.executable, "-c", _FAULTS, how],
        capture_output=True,
        text=True,
        check=True,
        env=_untuned(),
    )
    return int(done.stdout.strip())


def test_a_thread_keeps_the_pages_of_the_arrays_it_frees() -> None:
    assert _faults("import") < PAGES_PER_ROUND * ROUNDS / 10


def test_without_the_thresholds_the_same_rounds_fault_again() -> None:
    # the measure can tell: glibc's defaults fault on a large share of the pages
    assert _faults("no-import") > PAGES_PER_ROUND * ROUNDS / 10


def test_the_environments_own_malloc_tuning_is_left_alone() -> None:
    probe = "from pricing.memory import keep_freed_memory; print(keep_freed_memory())"
    tuned = {"GLIBC_TUNABLES": "glibc.malloc.tcache_count=7"}  # glibc's default value
    for env, expected in (({}, "True"), (tuned, "False")):
        done = subprocess.run(
            [sys.executable, "-c", probe],
            capture_output=True,
            text=True,
            check=True,
            env={**_untuned(), **env},
        )
        assert done.stdout.strip() == expected
