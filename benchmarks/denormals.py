"""`stemstream bench denormals`: what denormal input costs the live engine, flushed and not.

Four inputs, side by side in one run: silence, a constant 1e-40 (a denormal: what some hosts
and plugins feed instead of 0), a tail (music whose level decays 520 dB a second, down through
the denormal range into zeros, as a reverb tail does) and music (``music_like``). Each goes
through a real-time session (``stemstream.realtime.engine.session.RealtimeSession``) of the model
at the host rate, two ways:

* ``flushed``: as ``stemstream live`` runs it: the worker flushes denormals to zero (FTZ/DAZ) and
  zeroes input below 1e-30 (``stemstream.realtime.engine.denormals``);
* ``kept``: ``flush_denormals=False``: the worker's thread computes with denormals, as before.

Two figures per row:

* real-time factor: the worker's job (``RealtimeSession.pump``) on a thread of its own (its mode
  set as the worker's would be), CPU seconds of that thread per second of audio (its CPU time, not
  the wall clock, so time spent waiting for a core on a busy machine does not count); the rows are
  measured in turn ``--repeats`` times and the fastest of each is kept;
* deadline misses: the session's worker thread, callbacks paced in real time as a sound card
  would for ``--paced`` seconds (0 skips it); these depend on how busy the machine is.

How much denormals slow a CPU down depends on the CPU: Intel cores take a microcode assist on
many operations with denormal operands or results (tens of times slower), AMD Zen cores far
fewer. Writes ``denormals.json`` and ``denormals.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import os
import platform
import threading
import time
from typing import Any

import numpy as np

from stemstream.realtime.backends import BACKEND_HELP

DEFAULT_OUT = "runs/bench/denormals"
SIGNALS: tuple[str, ...] = ("silence", "1e-40", "tail", "music")
MODES: tuple[str, ...] = ("kept", "flushed")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``stemstream bench denormals``."""
    parser.add_argument("--model", default="dj-live", help="registry model name or .safetensors path (default dj-live)")
    parser.add_argument("--backend", default="auto", help=BACKEND_HELP)
    parser.add_argument("--rate", type=int, default=48000, help="host sample rate in Hz (default 48000)")
    parser.add_argument("--block", type=int, default=256, help="callback size in samples (default 256)")
    parser.add_argument("--seconds", type=float, default=4.0, help="audio per real-time-factor row (default 4)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds over all rows; the fastest is kept (default 3)")
    parser.add_argument("--paced", type=float, default=3.0, help="seconds of paced callbacks per row (default 3; 0: none)")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")


def signal(name: str, seconds: float, rate: int) -> np.ndarray:
    """One of :data:`SIGNALS`, ``(2, samples)`` float32."""
    from stemstream.benchmarks.rig.jack_player import music_like

    n = int(seconds * rate)
    if name == "silence":
        return np.zeros((2, n), np.float32)
    if name == "1e-40":
        return np.full((2, n), 1e-40, np.float32)
    music = music_like(seconds, rate, seed=1)
    if name == "music":
        return music
    if name == "tail":  # 520 dB/s: from music to 1e-45 and below (zeros) in about 0.8 s, again every second
        t = (np.arange(n) % rate) / rate
        return (music * np.exp(-60.0 * t)).astype(np.float32)
    raise ValueError(name)


def _session(model: Any, rate: int, block: int, flush: bool) -> Any:
    from stemstream.realtime.engine.session import RealtimeSession
    from stemstream.realtime.engine.streamer import StreamingSeparator

    return RealtimeSession(StreamingSeparator(model, rate, 2), block, queue_blocks=2, flush_denormals=flush)


def real_time_factor(model: Any, x: np.ndarray, rate: int, block: int, flush: bool) -> float:
    """CPU seconds per second of audio of the worker's job on ``x``, on a thread whose denormal
    mode is the worker's (flushed or kept)."""
    from stemstream.realtime.engine.denormals import flush_denormals

    session = _session(model, rate, block, flush)
    session.start()  # warm-up as live does, then run the worker's job here instead
    session.stop()
    indata = np.ascontiguousarray(x.T)
    out = np.zeros((len(session.stems), 2, block), np.float32)
    spent: list[float] = []

    def work() -> None:
        flush_denormals(flush)
        total = 0.0
        for k in range(x.shape[1] // block):
            session.callback(indata[k * block : (k + 1) * block], out)
            t0 = time.thread_time()
            session.pump()
            total += time.thread_time() - t0
        spent.append(total)

    thread = threading.Thread(target=work, name="denormal-bench")
    thread.start()
    thread.join()
    return spent[0] / (x.shape[1] / rate)


def paced_misses(model: Any, x: np.ndarray, rate: int, block: int, flush: bool, seconds: float) -> dict[str, Any]:
    """Deadline misses of the session's worker thread with callbacks paced in real time."""
    session = _session(model, rate, block, flush)
    indata = np.ascontiguousarray(x.T)
    out = np.zeros((len(session.stems), 2, block), np.float32)
    blocks = min(x.shape[1] // block, int(seconds * rate / block))
    with session:
        time.sleep(0.05)
        due = time.perf_counter()
        for k in range(blocks):
            due += block / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            session.callback(indata[k * block : (k + 1) * block], out)
    return {"blocks": blocks, "deadline_misses": session.deadline_misses, "overruns": session.overruns,
            "worker_denormals": session.worker_denormals}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from stemstream.realtime.models.registry import load_model

    model = load_model(args.model, args.backend)
    seconds = max(args.seconds, args.paced)
    signals = {name: signal(name, seconds, args.rate) for name in SIGNALS}
    rows: list[dict[str, Any]] = [{"signal": name} for name in SIGNALS]
    for _ in range(args.repeats):
        for row in rows:
            x = signals[row["signal"]][:, : int(args.seconds * args.rate)]
            for mode in MODES:
                rtf = real_time_factor(model, x, args.rate, args.block, mode == "flushed")
                row.setdefault(f"rtfs_{mode}", []).append(rtf)
    for row in rows:
        for mode in MODES:
            row[f"rtf_{mode}"] = min(row[f"rtfs_{mode}"])
            if args.paced > 0:
                row[f"paced_{mode}"] = paced_misses(model, signals[row["signal"]], args.rate, args.block,
                                                    mode == "flushed", args.paced)
        print(f"{row['signal']:8s} RTF kept {row['rtf_kept']:.3f}, flushed {row['rtf_flushed']:.3f}", flush=True)
    silence = {mode: rows[0][f"rtf_{mode}"] for mode in MODES}
    for row in rows:
        for mode in MODES:
            row[f"vs_silence_{mode}"] = row[f"rtf_{mode}"] / max(silence[mode], 1e-12)
    return {"benchmark": "denormals", "model": args.model, "backend": args.backend, "rate": args.rate,
            "block": args.block, "seconds": args.seconds, "repeats": args.repeats, "paced_seconds": args.paced,
            "rows": rows,
            "machine": _machine(), "date": time.strftime("%Y-%m-%d")}


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} CPUs"


def format_markdown(r: dict[str, Any]) -> str:
    paced = r["paced_seconds"] > 0
    lines = [f"# Denormal input: {r['model']} at {r['rate']} Hz, {r['block']}-sample blocks", "",
             "| input | RTF kept | x silence | RTF flushed | x silence |"
             + (" misses kept | misses flushed |" if paced else ""),
             "| --- |" + " ---: |" * (4 + 2 * paced)]
    for row in r["rows"]:
        cells = (f"| {row['signal']} | {row['rtf_kept']:.3f} | {row['vs_silence_kept']:.2f} | "
                 f"{row['rtf_flushed']:.3f} | {row['vs_silence_flushed']:.2f} |")
        if paced:
            kept, flushed = row["paced_kept"], row["paced_flushed"]
            cells += (f" {kept['deadline_misses']} / {kept['blocks']} | "
                      f"{flushed['deadline_misses']} / {flushed['blocks']} |")
        lines.append(cells)
    lines += ["", f"RTF: the worker's CPU seconds per second of audio ({r['seconds']:g} s per row, the "
              f"fastest of {r['repeats']} rounds); "
              f"kept: denormals computed, flushed: flush-to-zero on the worker and input below 1e-30 zeroed "
              f"(what `stemstream live` does). Misses: blocks not separated in time with callbacks paced in "
              f"real time for {r['paced_seconds']:g} s. Backend {r['backend']}; {r['machine']}; {r['date']}."]
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    """Run the benchmark; returns 0."""
    from stemstream.benchmarks.report import write_report, wrote
    from stemstream.realtime.errors import bad_value

    if not 8000 <= args.rate <= 192000:
        raise bad_value("--rate", args.rate, "a rate in [8000, 192000] Hz")
    if not 16 <= args.block <= 8192:
        raise bad_value("--block", args.block, "an integer in [16, 8192]")
    if not args.seconds > 0 or args.paced < 0:
        raise bad_value("--seconds", args.seconds, "a positive number of seconds (and --paced >= 0)")
    if args.repeats < 1:
        raise bad_value("--repeats", args.repeats, "an integer >= 1")
    result = measure(args)
    print(wrote(write_report(args.out, "denormals", result, format_markdown(result))))
    return 0


if __name__ == "__main__":  # python -m stemstream.benchmarks.denormals
    from stemstream.bridge.cli.main import OneLineParser

    cli = OneLineParser(prog="python -m stemstream.benchmarks.denormals", description=__doc__.splitlines()[0])
    add_arguments(cli)
    raise SystemExit(run(cli.parse_args()))
