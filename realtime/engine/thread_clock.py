"""Where a thread's wall-clock time went: on a CPU, waiting for one, or blocked.

CPU time comes from ``time.thread_time`` (exact at the moment it is read). The time spent
runnable but waiting in a run queue comes from ``/proc/thread-self/schedstat`` (field 2, which
Linux adds to each time the thread gets a CPU after waiting; field 1, run time, is only brought
up to date at scheduler ticks and switches, so it is not used). The rest of a span's wall time
the thread was blocked: a lock (the GIL), a page fault served from disk,
I/O - or, in a virtual machine, its virtual CPU was not running at all (whether such steal
shows here or as run time depends on the guest kernel's accounting). The session's worker
uses this to say why a slow call was slow.

Reading is one ``pread`` of an open file (about 2 us); :meth:`ThreadClock.mark` must be
called from the thread it describes (the clock opens that thread's file). Where the file
does not exist, the run-queue wait is NaN.
"""

from __future__ import annotations

import math
import os
import time
from typing import NamedTuple


class Mark(NamedTuple):
    """One reading: wall clock (``perf_counter``, s), CPU (s), run-queue wait (s, NaN if unknown)."""

    wall_s: float
    cpu_s: float
    wait_s: float


class Split(NamedTuple):
    """A span's wall time, split: on CPU + waiting for a CPU + blocked = wall (seconds)."""

    wall_s: float
    cpu_s: float
    wait_s: float
    blocked_s: float


class ThreadClock:
    """Per-thread CPU / run-queue clock; create and use it in the thread it measures."""

    def __init__(self) -> None:
        try:
            self._fd = os.open("/proc/thread-self/schedstat", os.O_RDONLY)
        except OSError:
            self._fd = -1

    def mark(self) -> Mark:
        """Read the clocks now."""
        wall, cpu = time.perf_counter(), time.thread_time()
        if self._fd >= 0:
            try:
                return Mark(wall, cpu, int(os.pread(self._fd, 64, 0).split()[1]) * 1e-9)
            except (OSError, ValueError, IndexError):
                pass
        return Mark(wall, cpu, math.nan)

    @staticmethod
    def split(before: Mark, after: Mark) -> Split:
        """The span between two marks of the same thread."""
        wall = after.wall_s - before.wall_s
        cpu = after.cpu_s - before.cpu_s
        wait = after.wait_s - before.wait_s
        blocked = wall - cpu - (0.0 if math.isnan(wait) else wait)
        return Split(wall, cpu, wait, max(0.0, blocked))

    def close(self) -> None:
        """Close the thread's file (marks then fall back to ``time.thread_time``)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
