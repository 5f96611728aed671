"""The C allocator's thresholds, fixed for a process that frees large arrays often.

**Why.** A solve allocates and frees hundreds of numpy arrays of 0.1–16 MB a second.
glibc's malloc takes an array above its mmap threshold from the system and returns it
when freed, and returns free memory at the top of a heap once it exceeds the trim
threshold. Both thresholds start low (128 KiB) and rise only as large blocks are freed.
Memory that goes back to the system comes back one page fault at a time (4 KiB zeroed
each).

Measured on 2 cores (a cold solve of 10^5 segments in components of 2–50, its two parts
in two threads):

==========================================  ============  ===========
allocator                                   page faults   solve
==========================================  ============  ===========
glibc's defaults                            15,600        0.157–0.178 s
the thresholds fixed (16 MiB, 64 MiB)       4             0.121 s
==========================================  ============  ===========

The faults come from the threads. With one arena for the whole process
(``MALLOC_ARENA_MAX=1``) there were 1,800–2,600, and with the solve in one thread
2,100–2,400.

**What it sets.** An mmap threshold of 16 MiB and a trim threshold of 64 MiB. Both lie
inside the range glibc's own rule reaches (mmap up to 32 MiB, trim twice that). Arrays
above 16 MiB still go back to the system as soon as they are freed. Up to 64 MiB of free
memory stays with each arena: one per thread that allocates, so two to three here.

**When.** :mod:`pricing.cluster` calls :func:`keep_freed_memory` when it is imported, so
every run, bench and notebook that solves gets it. It does nothing on a C library other
than glibc (macOS, musl). It also does nothing when the environment already tunes malloc
(``MALLOC_*_`` variables, ``GLIBC_TUNABLES``): those settings are the user's.
"""

from __future__ import annotations

import ctypes
import os
import platform

#: mallopt's parameters (glibc's malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3

#: arrays above this many bytes come from the system and go back when freed
MMAP_THRESHOLD = 16 * 2**20

#: free memory at the top of an arena above this many bytes goes back to the system
TRIM_THRESHOLD = 64 * 2**20

#: environment variables by which a user tunes glibc's malloc (then left as it is)
USER_TUNING = (
    "GLIBC_TUNABLES",
    "MALLOC_ARENA_MAX",
    "MALLOC_MMAP_MAX_",
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TOP_PAD_",
    "MALLOC_TRIM_THRESHOLD_",
)


def keep_freed_memory() -> bool:
    """Fix malloc's mmap and trim thresholds (module docstring); whether they were set
    (False off glibc, or when the environment tunes malloc itself)."""
    if platform.libc_ver()[0] != "glibc" or any(name in os.environ for name in USER_TUNING):
        return False
    libc = ctypes.CDLL(None)
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
