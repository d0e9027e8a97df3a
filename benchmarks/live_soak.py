"""Live soak: ``stemstream live`` on a private JACK dummy server for N minutes.

A JACK player client loops a song (``data/synth/test/<song>/mixture.wav`` when present,
else a synthetic music-like signal) into stemstream's inputs; stemstream runs the engine's
real-time session and the mixer with per-stem output ports, exactly as ``stemstream live
--jack``. Reported: xruns (JACK), deadline misses (engine), non-finite samples, CPU (process
CPU over wall time, JACK DSP load, callback load), worker inference time per call against
the block period, the machine's load average (this box is shared), and what the late blocks
came with: stalls of the whole machine (``stemstream.benchmarks.stall_probe`` runs beside the soak),
hypervisor steal, JACK xruns, and the session's slow worker calls split into on-CPU, waiting
for a CPU and blocked (``RealtimeSession.slow_calls``). Writes
``live_soak.json``, ``live_soak.md`` and ``live_soak.png`` under ``--out``.

``stemstream bench live --minutes 10 --block-size 256 --model live``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from stemstream.realtime.backends import BACKEND_HELP

#: Default output folder.
DEFAULT_OUT = "runs/bench/live"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--minutes", type=float, default=10.0, help="soak length in minutes (default 10)")
    parser.add_argument("--block-size", type=int, default=256, help="JACK buffer size in samples (default 256)")
    parser.add_argument("--samplerate", type=int, default=44100, help="JACK rate in Hz (default 44100)")
    parser.add_argument("--model", default="live", help="model name or .safetensors path (default live)")
    parser.add_argument("--backend", default="auto", help=BACKEND_HELP)
    parser.add_argument("--queue-blocks", type=int, default=None,
                        help="worker slack in blocks (default: as stemstream live, enough for 10 ms)")
    parser.add_argument("--no-realtime-worker", dest="realtime_worker", action="store_false",
                        help="do not ask for SCHED_FIFO for the engine's inference worker")
    parser.add_argument("--routing", default="both", choices=("stems", "mix", "both"))
    parser.add_argument("--effects", default=None, help="effects config file (optional)")
    parser.add_argument("--no-realtime", action="store_true",
                        help="run jackd with --no-realtime (default: ask for SCHED_FIFO, as a tuned audio box)")
    parser.add_argument("--python-callback", dest="native_callback", action="store_false",
                        help="run stemstream's JACK process callback in Python (default: native code, no GIL)")
    parser.add_argument("--song", default=None, help="audio file to loop (default: first data/synth/test song)")
    parser.add_argument("--sample-every", type=float, default=5.0, help="seconds between time-series samples")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")


def load_song(path: str | None, sample_rate: int) -> tuple[np.ndarray, str]:
    """``(audio (2, samples) at sample_rate, description)``."""
    import soundfile as sf

    candidates = [Path(path)] if path else sorted(Path("data/synth/test").glob("*/mixture.wav"))
    for p in candidates:
        if p.is_file():
            audio, sr = sf.read(str(p), dtype="float32", always_2d=True)
            audio = audio.T
            if audio.shape[0] == 1:
                audio = np.repeat(audio, 2, axis=0)
            if sr != sample_rate:
                import soxr

                audio = soxr.resample(audio.T, sr, sample_rate).T.astype(np.float32)
            return np.ascontiguousarray(audio[:2]), str(p)
    from stemstream.benchmarks.rig.jack_player import music_like

    return music_like(20.0, sample_rate), "synthetic (sinusoids + noise bursts, 20 s loop)"


#: Seconds between polls of the xrun and miss counters (the time resolution of the attribution).
POLL_S: float = 0.05


def _steal_s() -> float:
    """CPU time the hypervisor gave to others while this VM's CPUs wanted it, summed over CPUs,
    seconds since boot (``/proc/stat``, 10 ms resolution); 0 where there is none."""
    try:
        with open("/proc/stat", "rb") as f:
            fields = f.readline().split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def _start_probe(path: Path, seconds: float) -> Any:
    """``stemstream.benchmarks.stall_probe`` in its own process for ``seconds`` (writes ``path``)."""
    import subprocess
    import sys

    path.unlink(missing_ok=True)
    return subprocess.Popen([sys.executable, "-m", "stemstream.benchmarks.stall_probe", "--seconds", f"{seconds:.1f}",
                             "--out", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _finish_probe(probe: Any, path: Path) -> dict[str, Any] | None:
    """Wait for the probe (a few seconds at most) and read its result; None if it has none."""
    if probe is None:
        return None
    try:
        probe.wait(timeout=10.0)
    except Exception:  # still running after an early stop: end it
        probe.kill()
        probe.wait()
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _stall_summary(stalls: dict[str, Any] | None, events: dict[str, list[Any]], seconds: float,
                   block_size: int, sample_rate: int) -> dict[str, Any]:
    """The probe's figures, and how many xruns / misses came with a machine stall."""
    if stalls is None:
        return {"probe": "no result"}
    from stemstream.benchmarks.stall_probe import attribute, coverage, summary

    listed = stalls["stalls"]
    counted = summary(stalls, block_size, sample_rate)
    return {
        "probe_scheduling": stalls["scheduling"], "wakeups": stalls["wakeups"], "late_ms": stalls["late_ms"],
        "stalls_over_2ms": len(listed), "stalls_over_5ms": counted["stalls_over_5ms"],
        "stalls_over_block": counted["stalls_over_block"],
        "xruns_seen": len(events["xruns"]), "xruns_with_stall": attribute(events["xruns"], listed),
        "misses_seen": len(events["deadline_misses"]),
        "misses_with_stall": attribute(events["deadline_misses"], listed),
        "chance_fraction": round(coverage(listed, seconds), 4),
        "misses_with_xrun": attribute(events["deadline_misses"], [[t, 0.0] for t in events["xruns"]],
                                      2 * POLL_S, 2 * POLL_S),
        "polls_with_steal": len(events["steal"]),
        "misses_with_steal": attribute(events["deadline_misses"], events["steal"], 2 * POLL_S, 2 * POLL_S),
        "xruns_with_steal": attribute(events["xruns"], events["steal"], 2 * POLL_S, 2 * POLL_S),
        "worst_stalls": sorted(listed, key=lambda s: -s[1])[:10],
    }


def _slow_call_summary(calls: list[tuple[float, ...]], events: dict[str, list[float]],
                       stalls: dict[str, Any] | None, block_size: int) -> dict[str, Any]:
    """The session's ``slow_calls`` (slow, or too late for the next callback): where their time
    went (on CPU, waiting for a CPU, blocked), how many started late (more than a block of
    input waiting), how many misses came with one, how many came with a probe stall."""
    from stemstream.benchmarks.stall_probe import attribute

    spans = [[end - wall, 1e3 * wall] for end, wall, *_ in calls]  # [start, ms] as the probe's stalls
    by_cause = {"cpu": 0, "wait": 0, "blocked": 0}
    for _, wall, cpu, wait, blocked, *_ in calls:
        parts = {"cpu": cpu, "wait": 0.0 if wait != wait else wait, "blocked": blocked}
        by_cause[max(parts, key=parts.get)] += 1
    total = [sum(c[i] for c in calls) for i in range(1, 5)]
    return {
        "count": len(calls),
        "late_starts": sum(1 for c in calls if c[6] > block_size),  # took more than one block: woke late
        "ended_late": sum(1 for c in calls if c[5] < 0),  # too late for the next callback: a miss
        "mostly": by_cause,
        "seconds": dict(zip(("wall", "cpu", "wait", "blocked"), (round(x, 4) for x in total))),
        "misses_with_slow_call": attribute(events["deadline_misses"], spans),
        "slow_calls_with_stall": (attribute([s[0] for s in spans], stalls["stalls"], 0.05, 0.05)
                                  if stalls else None),
        "worst": [[round(1e3 * x, 2) for x in c[1:5]] + list(c[5:]) for c in sorted(calls, key=lambda c: -c[1])[:10]],
    }


def _percentiles(session: Any) -> dict[str, float]:
    """Inference time per worker call over the whole soak, from the session's histogram (to
    10 us), and the exact maximum."""
    from stemstream.realtime.engine.session import COMPUTE_BIN_S, histogram_percentiles

    hist = session.compute_histogram.copy()
    p50, p99, p999 = histogram_percentiles(hist, COMPUTE_BIN_S, (0.5, 0.99, 0.999))
    return {"p50_ms": 1e3 * p50, "p99_ms": 1e3 * p99, "p999_ms": 1e3 * p999,
            "max_ms": 1e3 * session.compute_max_s, "calls": int(hist.sum())}


def soak(args: argparse.Namespace) -> dict[str, Any]:
    """Run the soak; returns the result record."""
    from stemstream.benchmarks.rig.jack_player import JackPlayer
    from stemstream.benchmarks.rig.jack_server import DummyJackServer
    from stemstream.bridge.live.processor import LiveConfig
    from stemstream.bridge.live.runner import HostOptions, LiveRun

    config = LiveConfig(model=args.model, backend=args.backend, sample_rate=args.samplerate,
                        block_size=args.block_size, routing=args.routing, queue_blocks=args.queue_blocks,
                        realtime_worker=args.realtime_worker)
    audio, source = load_song(args.song, args.samplerate)
    series: list[dict[str, float]] = []
    events: dict[str, list[Any]] = {"xruns": [], "deadline_misses": [], "steal": []}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    probe = None
    with DummyJackServer(args.samplerate, args.block_size, realtime=not args.no_realtime) as server:
        player = JackPlayer(audio, "player", server.name, loop=True).activate()
        options = HostOptions(audio="jack", jack_server=server.name, jack_inputs=tuple(player.port_names),
                              osc_port=None, effects=args.effects, native_callback=args.native_callback)
        run = LiveRun(config, options)
        try:
            time.sleep(0.5)  # let the graph settle; count from here
            run.processor.xruns = 0
            session = run.processor.switcher.active
            misses0 = int(getattr(session, "deadline_misses", 0))
            session.compute_histogram[:] = 0  # count from here, every call (not only the recent ones)
            session.compute_max_s = 0.0
            session.slow_calls.clear()
            run._t0, run._cpu0 = time.monotonic(), time.process_time()
            probe = _start_probe(out / "stall_probe.json", 60.0 * args.minutes)
            player.play()
            end = time.monotonic() + 60.0 * args.minutes
            next_sample = time.monotonic() + args.sample_every
            seen = {"xruns": 0, "deadline_misses": 0}
            steal0 = steal = _steal_s()
            while True:
                left = end - time.monotonic()
                if left <= 0:
                    break
                time.sleep(min(POLL_S, left))
                now = time.monotonic()
                counts = {"xruns": run.processor.xruns + int(run.processor.host_counters[1]),
                          "deadline_misses": session.deadline_misses - misses0}
                for key, count in counts.items():
                    events[key] += [now] * (count - seen[key])
                    seen[key] = count
                stolen = _steal_s()
                if stolen > steal:
                    events["steal"].append([now, 1e3 * (stolen - steal)])
                steal = stolen
                if now < next_sample:
                    continue
                next_sample += args.sample_every
                s = run.summary()
                series.append({"t_s": s["seconds"], "xruns": s["xruns"],
                               "deadline_misses": s["deadline_misses"] - misses0,
                               "process_cpu_percent": s["process_cpu_percent"],
                               "jack_cpu_load_percent": s.get("jack_cpu_load_percent", 0.0),
                               "loadavg_1m": os.getloadavg()[0]})
            summary = run.summary()
            summary["deadline_misses"] -= misses0
            summary["inference_per_call"] = _percentiles(session)
            summary["worker_overruns"] = int(getattr(session, "overruns", 0))
            summary["steal_s"] = round(_steal_s() - steal0, 3)
            slow_calls = list(session.slow_calls)
        finally:
            run.close()
            player.close()
            stalls = _finish_probe(probe, out / "stall_probe.json")
        summary["jack_realtime"] = server.realtime
        summary["realtime_worker"] = args.realtime_worker
    summary.update({
        "minutes": args.minutes,
        "block_period_ms": 1000.0 * args.block_size / args.samplerate,
        "queue_blocks": config.worker_queue_blocks,
        "backend": args.backend,
        "source": source,
        "machine": f"{platform.machine()} {os.cpu_count()}-core CPU, {platform.system()}",
        "loadavg_end": list(os.getloadavg()),
        "series": series,
        "machine_stalls": _stall_summary(stalls, events, 60.0 * args.minutes, args.block_size, args.samplerate),
        "slow_calls": _slow_call_summary(slow_calls, events, stalls, args.block_size),
        "events": {k: v for k, v in events.items()},  # monotonic seconds (steal: [t, ms])
    })
    return summary


def _markdown(r: dict[str, Any]) -> str:
    inf = r.get("inference_per_call", {})
    rows = [
        ("model / backend", f"{r['model']} / {r['backend']} ({r.get('model_runtime', '?')})"),
        ("duration", f"{r['seconds'] / 60:.2f} min ({r['callbacks']} callbacks)"),
        ("rate / block / worker queue", f"{r['sample_rate']} Hz / {r['block_size']} samples ({r['block_period_ms']:.2f} ms)"
                                        f" / {r['queue_blocks']} block(s)"),
        ("JACK real-time scheduling / real-time worker", f"{r['jack_realtime']} / {r['realtime_worker']}"),
        ("audio callback", str(r.get("audio_callback", "python"))),
        ("xruns", str(r["xruns"])),
        ("deadline misses", f"{r['deadline_misses']} ({100 * r['deadline_misses'] / max(1, r['callbacks']):.3f} % of blocks)"),
        ("worker overruns", str(r["worker_overruns"])),
        ("non-finite samples", str(r["nonfinite_samples"])),
        ("latency", f"engine {r['engine_latency_samples']} samples ({r['engine_latency_ms']:.2f} ms), "
                    f"+ JACK buffers {r['total_latency_ms']:.2f} ms"),
        ("hypervisor steal (all CPUs)", f"{r.get('steal_s', 0.0):.2f} s"),
        ("process CPU", f"{r['process_cpu_percent']:.1f} % of one core"),
        ("JACK DSP load", f"{r.get('jack_cpu_load_percent', 0.0):.1f} %"),
        ("callback load", f"mean {100 * r['callback_load_mean']:.1f} %, max {100 * r['callback_load_max']:.1f} % of the block"),
        ("inference per worker call (all calls)", f"p50 {inf.get('p50_ms', 0):.2f} ms, p99 {inf.get('p99_ms', 0):.2f} ms, "
                                      f"p99.9 {inf.get('p999_ms', 0):.2f} ms, "
                                      f"max {inf.get('max_ms', 0):.2f} ms" if inf else "n/a"),
        ("machine stalls (a FIFO-90 probe process woke up late)", _stall_row(r.get("machine_stalls", {}))),
        ("worker calls longer than a block or too late for the next callback", _slow_row(r.get("slow_calls", {}))),
        ("machine load average (1/5/15 min, end)", ", ".join(f"{x:.2f}" for x in r["loadavg_end"])),
        ("audio", r["source"]),
        ("machine", r["machine"]),
    ]
    lines = ["# Live soak (JACK dummy driver)", "", "| | |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    return "\n".join(lines) + "\n"


def _stall_row(m: dict[str, Any]) -> str:
    if "late_ms" not in m:
        return "n/a"
    return (f"{m['stalls_over_2ms']} over 2 ms, {m['stalls_over_5ms']} over 5 ms, worst {m['late_ms']['max']:.1f} ms; "
            f"misses with a stall: {m['misses_with_stall']} of {m['misses_seen']}, "
            f"xruns with a stall: {m['xruns_with_stall']} of {m['xruns_seen']} "
            f"(by chance alone: {100 * m.get('chance_fraction', 0.0):.1f} %); hypervisor steal seen in "
            f"{m.get('polls_with_steal', 0)} polls of {1e3 * POLL_S:.0f} ms, with {m.get('misses_with_steal', 0)} misses "
            f"and {m.get('xruns_with_steal', 0)} xruns; misses within 0.1 s of a JACK xrun: "
            f"{m.get('misses_with_xrun', 0)}")


def _slow_row(m: dict[str, Any]) -> str:
    if "count" not in m:
        return "n/a"
    sec, most = m["seconds"], m["mostly"]
    return (f"{m['count']} ({m['late_starts']} started late, {m['ended_late']} ended too late for the next callback), "
            f"mostly on CPU / waiting for a CPU / blocked: {most['cpu']} / {most['wait']} / "
            f"{most['blocked']} (time: {sec['cpu']:.3f} / {sec['wait']:.3f} / {sec['blocked']:.3f} s); "
            f"misses with a slow call: {m['misses_with_slow_call']}; slow calls with a probe stall: "
            f"{m['slow_calls_with_stall']}")


def _plot(r: dict[str, Any], path: Path) -> bool:
    if not r["series"]:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [p["t_s"] / 60 for p in r["series"]]
    fig, (a, b) = plt.subplots(2, 1, figsize=(7, 5), sharex=True)
    a.plot(t, [p["process_cpu_percent"] for p in r["series"]], label="process CPU % (one core)")
    a.plot(t, [p["jack_cpu_load_percent"] for p in r["series"]], label="JACK DSP load %")
    a.plot(t, [100 * p["loadavg_1m"] / (os.cpu_count() or 1) for p in r["series"]], label="machine load % (1 min avg)")
    a.set_ylabel("%")
    a.legend(fontsize=8)
    b.step(t, [p["xruns"] for p in r["series"]], label="xruns", where="post")
    b.step(t, [p["deadline_misses"] for p in r["series"]], label="deadline misses", where="post")
    b.set_xlabel("minutes")
    b.set_ylabel("count")
    b.legend(fontsize=8)
    fig.suptitle(f"live soak: {r['model']}, block {r['block_size']} @ {r['sample_rate']} Hz")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def run(args: argparse.Namespace) -> int:
    from stemstream.realtime.errors import bad_value

    if not args.minutes > 0:
        raise bad_value("minutes", args.minutes, "a positive number")
    result = soak(args)
    from stemstream.benchmarks.report import write_report, wrote

    md = _markdown(result)
    paths = write_report(args.out, "live_soak", result, md, lambda p: _plot(result, p))
    print(md)
    print(wrote(paths))
    return 0

