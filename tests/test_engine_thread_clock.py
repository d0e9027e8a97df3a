"""The worker's thread clock: a span's wall time split into on-CPU, waiting and blocked."""

from __future__ import annotations

import math
import threading
import time

from realtime.engine.thread_clock import ThreadClock


def _measure(work) -> tuple[float, float, float, float]:
    """Split of ``work()`` measured in a fresh thread (the clock is per thread)."""
    result = []

    def body() -> None:
        clock = ThreadClock()
        before = clock.mark()
        work()
        result.append(clock.split(before, clock.mark()))
        clock.close()

    t = threading.Thread(target=body)
    t.start()
    t.join()
    return result[0]


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_sleep_is_blocked_and_spin_is_cpu_or_waiting() -> None:
    sleep = _measure(lambda: time.sleep(0.05))
    assert sleep.wall_s >= 0.05 and sleep.blocked_s >= 0.045 and sleep.cpu_s < 0.01
    spin = _measure(lambda: _spin(0.05))
    waited = 0.0 if math.isnan(spin.wait_s) else spin.wait_s
    # a busy thread is on a CPU or queued for one (the box is shared); not blocked
    assert spin.cpu_s + waited >= 0.5 * spin.wall_s
    for s in (sleep, spin):
        assert s.cpu_s + (0.0 if math.isnan(s.wait_s) else s.wait_s) + s.blocked_s >= s.wall_s - 1e-6


def test_closed_clock_falls_back_to_thread_time() -> None:
    clock = ThreadClock()
    clock.close()
    mark = clock.mark()
    assert math.isnan(mark.wait_s) and mark.cpu_s >= 0.0
