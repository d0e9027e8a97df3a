"""The worker's thread clock: a span's wall time split into on-CPU, waiting and blocked."""

from __future__ import annotations

import math
import threading
import time

import pytest

from stemstream.realtime.engine.thread_clock import Mark, Split, ThreadClock


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


def test_split_adds_up_to_the_wall_time() -> None:
    """on CPU + waiting + blocked = wall; an unknown wait (NaN) counts as blocked; rounding
    that makes CPU + wait exceed the wall time leaves blocked at 0, not negative."""
    split = ThreadClock.split(Mark(10.0, 1.0, 0.5), Mark(11.0, 1.25, 0.625))
    assert split == pytest.approx(Split(1.0, 0.25, 0.125, 0.625))
    unknown = ThreadClock.split(Mark(10.0, 1.0, math.nan), Mark(11.0, 1.25, math.nan))
    assert math.isnan(unknown.wait_s) and unknown.blocked_s == pytest.approx(0.75)
    assert ThreadClock.split(Mark(0.0, 0.0, 0.0), Mark(1.0, 0.75, 0.5)).blocked_s == 0.0


def test_sleep_is_blocked() -> None:
    sleep = _measure(lambda: time.sleep(0.05))
    assert sleep.wall_s >= 0.05 and sleep.blocked_s >= 0.045 and sleep.cpu_s < 0.01


@pytest.mark.timing
def test_spin_is_cpu_or_waiting() -> None:
    """A busy thread is on a CPU or queued for one, not blocked - unless the machine is so busy
    that its virtual CPU is not running (steal shows as blocked)."""
    spin = _measure(lambda: _spin(0.05))
    waited = 0.0 if math.isnan(spin.wait_s) else spin.wait_s
    assert spin.cpu_s + waited >= 0.5 * spin.wall_s


def test_closed_clock_falls_back_to_thread_time() -> None:
    clock = ThreadClock()
    clock.close()
    before = time.thread_time()
    mark = clock.mark()
    after = time.thread_time()
    assert math.isnan(mark.wait_s) and before <= mark.cpu_s <= after
