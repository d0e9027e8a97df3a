"""Machine-stall probe: how late a high-priority thread wakes up (a small ``cyclictest``).

A separate process (no GIL shared with the program under test) asks for ``SCHED_FIFO`` at
priority 90, above JACK's and stemstream's threads, then sleeps ``period_ms`` again and
again and records how late each wake-up was. A late wake-up of a thread that outranks every
audio thread means the whole machine (or the VM it runs in) did not run it: whatever the
audio path missed at that moment, it could not have run either. ``stemstream bench live``
runs it beside the soak and attributes each deadline miss and xrun to a stall when one
happened close to it (:func:`attribute`).

Wake-up times are ``time.monotonic()``, one clock for every process on the machine.

Before a gig, ``stemstream bench stalls --seconds 60 --block-size 256`` checks a machine on its
own: how many times in that minute nothing of ours could have run for a whole block (writes
``stalls.json`` / ``stalls.md``). The soak starts it as ``python -m stemstream.benchmarks.stall_probe
--seconds N --out FILE``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

#: Wake-ups later than this are listed as stalls, ms.
STALL_MS: float = 2.0


def probe(seconds: float, period_ms: float = 1.0, stall_ms: float = STALL_MS, priority: int = 90) -> dict[str, Any]:
    """Sleep-and-wake for ``seconds``; returns ``{"scheduling", "wakeups", "late_ms": {p50,
    p99, p999, max}, "stalls": [[monotonic_s, late_ms], ...]}`` (stalls: wake-ups later than
    ``stall_ms``)."""
    scheduling = "default"
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
        scheduling = f"fifo:{priority}"
    except (AttributeError, OSError) as exc:
        scheduling = f"default ({exc})"
    period = period_ms / 1000.0
    late = np.zeros(int(seconds / period) + 2, dtype=np.float32)
    stalls: list[list[float]] = []
    n = 0
    end = time.monotonic() + seconds
    due = time.monotonic() + period
    while due < end and n < late.size:
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        now = time.monotonic()
        lag = (now - due) * 1000.0
        late[n] = lag
        n += 1
        if lag > stall_ms:
            stalls.append([round(due, 4), round(lag, 3)])
        due = max(due + period, now + period / 2)  # after a stall, start again from now
    lat = late[:n]
    pct = {f"p{p}": round(float(np.percentile(lat, q)), 3) for p, q in (("50", 50), ("99", 99), ("999", 99.9))} if n else {}
    return {"scheduling": scheduling, "period_ms": period_ms, "stall_ms": stall_ms, "wakeups": n,
            "late_ms": {**pct, "max": round(float(lat.max()), 3) if n else 0.0}, "stalls": stalls}


def attribute(events: list[float], stalls: list[list[float]], before_s: float = 0.25, after_s: float = 0.1) -> int:
    """How many of ``events`` (monotonic seconds at which a counter was seen to rise) have a
    stall starting within ``before_s`` before or ``after_s`` after them. The counters are
    polled, so an event is seen up to one poll interval after it happened."""
    starts = np.array([s[0] for s in stalls], dtype=np.float64)
    if starts.size == 0:
        return 0
    return sum(bool(np.any((starts >= t - before_s) & (starts <= t + after_s))) for t in events)


def coverage(stalls: list[list[float]], seconds: float, before_s: float = 0.25, after_s: float = 0.1) -> float:
    """Fraction of ``seconds`` inside the windows :func:`attribute` uses: the share of events
    that would be attributed to a stall by chance alone."""
    spans = sorted((s[0] - after_s, s[0] + before_s) for s in stalls)
    covered, end = 0.0, -float("inf")
    for lo, hi in spans:
        lo = max(lo, end)
        if hi > lo:
            covered += hi - lo
            end = hi
    return min(1.0, covered / seconds) if seconds > 0 else 0.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``stemstream bench stalls``."""
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to probe (default 60)")
    parser.add_argument("--period-ms", type=float, default=1.0, help="sleep between wake-ups, ms (default 1)")
    parser.add_argument("--block-size", type=int, default=256, help="audio block to judge against, samples (default 256)")
    parser.add_argument("--samplerate", type=int, default=44100, help="audio rate, Hz (default 44100)")
    parser.add_argument("--out", default="runs/bench/stalls", help="output folder (default runs/bench/stalls)")


def summary(result: dict[str, Any], block_size: int, sample_rate: int) -> dict[str, Any]:
    """The probe's result with the stalls counted against one audio block."""
    block_ms = 1000.0 * block_size / sample_rate
    lags = [s[1] for s in result["stalls"]]
    return {**result, "block_size": block_size, "sample_rate": sample_rate, "block_ms": block_ms,
            "stalls_over_5ms": sum(lag >= 5.0 for lag in lags), "stalls_over_block": sum(lag >= block_ms for lag in lags)}


def markdown(r: dict[str, Any], seconds: float) -> str:
    late = r["late_ms"]
    return "\n".join([
        "# Machine stalls (a SCHED_FIFO-90 thread waking every %g ms)" % r["period_ms"], "",
        "| | |", "| --- | --- |",
        f"| probe | {r['wakeups']} wake-ups in {seconds:g} s, scheduling {r['scheduling']} |",
        f"| wake-up lateness p50 / p99 / p99.9 / max | {late.get('p50', 0):.3f} / {late.get('p99', 0):.3f} / "
        f"{late.get('p999', 0):.3f} / {late['max']:.2f} ms |",
        f"| stalls over {r['stall_ms']:g} ms / 5 ms | {len(r['stalls'])} / {r['stalls_over_5ms']} |",
        f"| stalls longer than one {r['block_size']}-sample block ({r['block_ms']:.2f} ms) | **{r['stalls_over_block']}** |",
        "", "Each stall longer than a block is a block that no audio software on this machine could have "
        "delivered on time with one block of buffering.", ""])


def run(args: argparse.Namespace) -> int:
    """``stemstream bench stalls``."""
    from stemstream.benchmarks.report import write_report, wrote
    from stemstream.realtime.errors import bad_value

    if not 0 < args.seconds <= 86400:
        raise bad_value("--seconds", args.seconds, "a number of seconds in (0, 86400]")
    if not 0.1 <= args.period_ms <= 100:
        raise bad_value("--period-ms", args.period_ms, "a period in [0.1, 100] ms")
    if not 16 <= args.block_size <= 8192 or not 8000 <= args.samplerate <= 192000:
        raise bad_value("--block-size/--samplerate", (args.block_size, args.samplerate), "16-8192 samples at 8-192 kHz")
    result = summary(probe(args.seconds, args.period_ms), args.block_size, args.samplerate)
    md = markdown(result, args.seconds)
    paths = write_report(args.out, "stalls", result, md)
    print(md)
    print(wrote(paths))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--period-ms", type=float, default=1.0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    result = probe(args.seconds, args.period_ms)
    out = Path(args.out)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
