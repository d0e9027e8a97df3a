"""`stemstream bench latency`: latency and real-time behaviour per block size and backend.

For each backend, host rate (``--sample-rates``, default 44.1 kHz: the models' own; other rates
go through the engine's low-delay resampler) and block size (64..1024 samples) a ``RealtimeSession`` runs
``--callbacks`` callbacks driven like a sound card: a driver thread sleeps to each block's
deadline and calls ``session.callback``; the session's worker thread runs the model. At 48 and
96 kHz ``dj-live`` runs as its 48 kHz sibling ``dj-live-48k`` where shipped, as ``stemstream
live`` does (``registry.rate_variant``; the row's ``model_run``). Reported:

* ``model_latency_ms``: the separator's algorithmic latency (output ``t`` = input ``t - L``).
* ``algorithmic_latency_ms``: plus the worst-case samples the separator holds back at this
  block size (hop buffering): the least delay any real-time use of it can have.
* ``session_latency_ms``: the session's input-to-output delay (adds ``queue_blocks`` block
  periods for the worker and the fade look-ahead); the sound card's own buffers come on top.
  The queue is ``stemstream live``'s default unless ``--queue-blocks`` fixes it: the fewest
  blocks that give the worker ``stemstream.bridge.live.processor.AUTO_QUEUE_MS`` (2 at 256 samples, 1 at 512+).
* ``compute_ms`` p50 / p99 / max: wall time per block of the worker's ``separator.process``
  calls (one block per call when on time; a call that catches up on ``k`` blocks counts as
  ``k`` blocks of a ``k``-th of its time), and ``rtf`` = mean compute / block period.
* ``callback_us`` p99: time inside the (copy-only) callback.
* ``lateness_ms`` p50 / p99 / max: how late the driver's wake-ups were (the machine's jitter).
* ``deadline_misses``: blocks whose output fell back to the mix.

The GIL switch interval is 0.5 ms during the run and the objects alive at its start are
frozen out of the cyclic garbage collector, as in ``stemstream live``. Where the system allows
it, the driver thread runs at ``SCHED_FIFO`` priority 2 (as a sound card's audio thread does)
and the session's worker at priority 1 (its default); ``--no-realtime`` leaves both at the
default scheduling. The rows record what applied (``worker_scheduling``, ``driver_scheduling``).

Writes ``latency.json``, ``latency.md`` and ``latency.png`` under ``--out``.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from stemstream.benchmarks.rig.jack_player import music_like
from stemstream.bridge.live.processor import LIVE_SWITCH_INTERVAL_S, auto_queue_blocks
from stemstream.realtime.errors import StemstreamError, bad_value

SAMPLE_RATE = 44100
DEFAULT_BLOCKS = (64, 128, 256, 512, 1024)
DEFAULT_OUT = "runs/bench/latency"
#: Built-in models for machines without shipped weights (timing only: untrained weights).
BUILTIN = ("untrained-live", "tiny")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``stemstream bench latency``."""
    parser.add_argument(
        "--model", default=None,
        help="registry model name or .safetensors path; built-in: untrained-live (the live architecture "
             "with seeded random weights, same cost), tiny. Default: live if shipped, else untrained-live",
    )
    parser.add_argument("--backends", default="all", help="comma-separated backends, or 'all' available (default)")
    parser.add_argument("--sample-rates", default=str(SAMPLE_RATE),
                        help="comma-separated host rates in Hz (default 44100, the models' rate); e.g. 44100,48000,96000")
    parser.add_argument("--block-sizes", default=",".join(map(str, DEFAULT_BLOCKS)), help="comma-separated block sizes")
    parser.add_argument("--callbacks", type=int, default=10_000, help="paced callbacks per configuration (default 10000)")
    parser.add_argument("--queue-blocks", type=int, default=None,
                        help="session queue in blocks (default: as `stemstream live`, the fewest blocks that give "
                             "the worker 10 ms; 1 gives the lowest latency)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--no-realtime", action="store_true",
                        help="default scheduling for the driver and worker threads (no SCHED_FIFO)")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")


def _module(name: str) -> tuple[Any, str]:
    """Torch hop module and a label for ``name`` (registry model or built-in)."""
    import torch

    from stemstream.realtime.models.hybrid import HybridConfig, HybridSeparator

    if name == "untrained-live":
        torch.manual_seed(0)
        return HybridSeparator(HybridConfig()).eval(), "untrained-live (live architecture, random weights)"
    if name == "tiny":
        torch.manual_seed(0)
        cfg = HybridConfig(width=32, encoder_channels=16, analysis_samples=256, synthesis_samples=128, hop=32, encoder_kernel=64)
        return HybridSeparator(cfg).eval(), "tiny (test-size live architecture, random weights)"
    from stemstream.realtime.models.registry import load_torch_model

    return load_torch_model(name), name


def _default_model() -> str:
    from stemstream.realtime.models.registry import available_models

    return "live" if "live" in available_models() else "untrained-live"


def _percentiles(values: list[float], scale: float) -> dict[str, float]:
    if not values:
        return {"p50": 0.0, "p99": 0.0, "max": 0.0, "mean": 0.0}
    a = np.asarray(values) * scale
    return {"p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)), "max": float(a.max()),
            "mean": float(a.mean())}


def measure(
    model: Any, block: int, callbacks: int, queue_blocks: int, realtime: bool = True, sample_rate: int = SAMPLE_RATE
) -> dict[str, Any]:
    """One configuration: a paced run of ``callbacks`` callbacks through a ``RealtimeSession``
    at host rate ``sample_rate`` (``realtime``: SCHED_FIFO driver and worker threads where
    allowed; module docstring)."""
    from stemstream.realtime.engine.session import RealtimeSession, set_thread_realtime
    from stemstream.realtime.engine.streamer import StreamingSeparator

    separator = StreamingSeparator(model, sample_rate, 2)
    session = RealtimeSession(
        separator, block, queue_blocks=queue_blocks, warmup_blocks=16, worker_priority=1 if realtime else None
    )
    period = block / sample_rate
    loop = music_like(min(20.0, max(2.0, 2 * callbacks * period)), sample_rate)
    frames = loop.shape[1] // block
    indata = np.ascontiguousarray(loop[:, : frames * block].T)
    views = [indata[k * block : (k + 1) * block] for k in range(frames)]
    out = np.zeros((len(separator.stems), 2, block), np.float32)
    lateness: list[float] = []
    in_callback: list[float] = []
    switch = sys.getswitchinterval()
    sys.setswitchinterval(min(switch, LIVE_SWITCH_INTERVAL_S))  # as `stemstream live` does
    gc.collect()
    gc.freeze()  # as `stemstream live` does: no long full collections during the run
    driver_scheduling = set_thread_realtime(2) if realtime else "default"
    session.start()
    try:
        t0 = time.perf_counter() + 0.05
        for k in range(callbacks):
            due = t0 + k * period
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            woke = time.perf_counter()
            session.callback(views[k % frames], out)
            done = time.perf_counter()
            lateness.append(max(0.0, woke - due))
            in_callback.append(done - woke)
    finally:
        session.stop()
        if driver_scheduling.startswith("fifo"):
            set_thread_realtime(None)
        gc.unfreeze()
        sys.setswitchinterval(switch)
    if session.worker_error is not None:
        raise StemstreamError(f"block {block}: worker failed: {session.worker_error!r}")
    # per block: a worker call that caught up on k blocks counts as k blocks of 1/k its time
    compute = [t * block / n for t, n in zip(session.compute_s, session.compute_frames) if n]
    pending = separator.max_pending_samples(block)
    stats = _percentiles(compute, 1000.0)
    return {
        "block_size": block,
        "sample_rate": sample_rate,
        "queue_blocks": queue_blocks,
        "block_ms": 1000.0 * period,
        "model_latency_ms": 1000.0 * separator.latency_samples / sample_rate,
        "algorithmic_latency_ms": 1000.0 * (separator.latency_samples + pending) / sample_rate,
        "session_latency_ms": session.latency_ms,
        "compute_ms": stats,
        "rtf": stats["mean"] / (1000.0 * period),
        "worker_calls": len(compute),
        "callback_us": _percentiles(in_callback, 1e6),
        "lateness_ms": _percentiles(lateness, 1000.0),
        "callbacks": callbacks,
        "deadline_misses": session.deadline_misses,
        "overruns": session.overruns,
        "p99_under_half_period": stats["p99"] < 500.0 * period,
        "worker_scheduling": session.worker_scheduling,
        "worker_wakeup": session.worker_wakeup,
        "driver_scheduling": driver_scheduling,
    }


def format_markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# Latency benchmark: {report['model']}",
        "",
        f"{report.get('date', 'date not recorded')}, {report['machine']}; {report['callbacks']} paced callbacks per row, worker queue {report['queue_blocks']} (column `queue`, blocks), "
        f"host rates {', '.join(str(r) for r in report.get('sample_rates', [SAMPLE_RATE]))} Hz, torch threads {report['threads']}; 1-min load average "
        f"{report['load_average']['before'][0]:.1f} before, {report['load_average']['after'][0]:.1f} after.",
        "",
        "| backend | rate Hz | block | queue | block ms | model ms | algorithmic ms | session ms | compute p50 / p99 / max ms | RTF "
        "| callback p99 us | lateness p99 ms | misses | p99 < T/2 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|:-:|",
    ]
    for r in report["results"]:
        c = r["compute_ms"]
        lines.append(
            f"| {r['backend']} | {r.get('sample_rate', SAMPLE_RATE)}{_ran(r, report)} | {r['block_size']} | {r['queue_blocks']} | {r['block_ms']:.2f} | {r['model_latency_ms']:.2f} | "
            f"{r['algorithmic_latency_ms']:.2f} | {r['session_latency_ms']:.2f} | "
            f"{c['p50']:.3f} / {c['p99']:.3f} / {c['max']:.2f} | {r['rtf']:.3f} | {r['callback_us']['p99']:.0f} | "
            f"{r['lateness_ms']['p99']:.2f} | {r['deadline_misses']} | {'yes' if r['p99_under_half_period'] else 'no'} |"
        )
    sched = sorted({f"worker {r['worker_scheduling']} (woken by {r['worker_wakeup']}), driver {r['driver_scheduling']}"
                    for r in report["results"]})
    lines += ["", "Columns as in `benchmarks/latency.py`'s docstring. Thread scheduling: "
              + ("; ".join(sched) or "n/a") + ". Skipped backends: "
              + (", ".join(f"{k} ({v})" for k, v in report["skipped"].items()) or "none")]
    return "\n".join(lines) + "\n"


def _ran(row: dict[str, Any], report: dict[str, Any]) -> str:
    """`` (dj-live-48k)`` where a row ran another model than the one asked for (a rate sibling)."""
    ran = row.get("model_run", report.get("model_name"))
    return f" ({ran})" if ran != report.get("model_name") else ""


def _plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    series = sorted({(r["backend"], r.get("sample_rate", SAMPLE_RATE)) for r in report["results"]})
    for b, rate in series:
        rows = [r for r in report["results"] if (r["backend"], r.get("sample_rate", SAMPLE_RATE)) == (b, rate)]
        blocks = [r["block_size"] for r in rows]
        tag = b if len(series) == len({s[0] for s in series}) else f"{b} {rate / 1000:g} kHz"
        ax1.plot(blocks, [r["compute_ms"]["p99"] for r in rows], "o-", label=f"{tag} p99")
        ax1.plot(blocks, [r["compute_ms"]["p50"] for r in rows], "x--", label=f"{tag} p50")
        ax2.plot(blocks, [r["session_latency_ms"] for r in rows], "o-", label=f"{tag} session")
    rows = [r for r in report["results"] if (r["backend"], r.get("sample_rate", SAMPLE_RATE)) == series[0]] if series else []
    if rows:
        blocks = [r["block_size"] for r in rows]
        ax1.plot(blocks, [r["block_ms"] for r in rows], "k-", lw=1, label="block period")
        ax1.plot(blocks, [r["block_ms"] / 2 for r in rows], "k:", lw=1, label="half period")
        ax2.plot(blocks, [r["algorithmic_latency_ms"] for r in rows], "k--", label="algorithmic")
        ax2.plot(blocks, [r["model_latency_ms"] for r in rows], "k:", label="model")
    ax1.set_yscale("log")
    for ax, title, ylabel in ((ax1, "compute per block", "ms"), (ax2, "latency", "ms")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("block size (samples)")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"stemstream latency: {report['model']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    """Run the benchmark; returns 0."""
    import torch

    from stemstream.realtime.backends import available_backends, open_backend
    from stemstream.realtime.models.registry import rate_variant

    if args.callbacks < 10:
        raise bad_value("--callbacks", args.callbacks, "an integer >= 10")
    if args.queue_blocks is not None and not 1 <= args.queue_blocks <= 64:
        raise bad_value("--queue-blocks", args.queue_blocks, "an integer in [1, 64] (or leave it out: automatic)")
    try:
        blocks = [int(b) for b in args.block_sizes.split(",") if b.strip()]
    except ValueError:
        raise bad_value("--block-sizes", args.block_sizes, "comma-separated integers") from None
    if not blocks or any(not 16 <= b <= 8192 for b in blocks):
        raise bad_value("--block-sizes", args.block_sizes, "block sizes in [16, 8192]")
    try:
        rates = [int(r) for r in args.sample_rates.split(",") if r.strip()]
    except ValueError:
        raise bad_value("--sample-rates", args.sample_rates, "comma-separated integers in Hz") from None
    if not rates or any(not 8000 <= r <= 192000 for r in rates):
        raise bad_value("--sample-rates", args.sample_rates, "host rates in [8000, 192000] Hz")
    torch.set_num_threads(args.threads)
    name = args.model or _default_model()
    modules = {name: _module(name)}  # by the name that runs: at 48/96 kHz, dj-live's 48 kHz sibling
    label = modules[name][1]
    have = available_backends()
    wanted = list(have) if args.backends == "all" else [b.strip() for b in args.backends.split(",") if b.strip()]
    results: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    load_before = os.getloadavg()
    for backend in wanted:
        opened: dict[str, Any] = {}
        for rate in rates:
            run_name = name if name in BUILTIN else rate_variant(name, rate)
            if run_name not in opened:
                if run_name not in modules:
                    modules[run_name] = _module(run_name)
                try:
                    opened[run_name] = open_backend(backend, modules[run_name][0], run_name)
                except StemstreamError as exc:
                    skipped[backend] = str(exc).split(";")[0]
                    break
            model = opened[run_name]
            for block in blocks:
                queue = args.queue_blocks or auto_queue_blocks(block, rate)
                row = measure(model, block, args.callbacks, queue, realtime=not args.no_realtime, sample_rate=rate)
                row["backend"] = backend
                row["model_run"] = run_name
                results.append(row)
                c = row["compute_ms"]
                print(
                    f"{backend:>9} {rate:6d} Hz block {block:5d}: session latency {row['session_latency_ms']:6.2f} ms, compute p50 "
                    f"{c['p50']:.3f} p99 {c['p99']:.3f} max {c['max']:.2f} ms, RTF {row['rtf']:.3f}, "
                    f"misses {row['deadline_misses']}/{args.callbacks}",
                    flush=True,
                )
    report = {
        "benchmark": "latency",
        "model": label,
        "model_name": name,
        "sample_rates": rates,
        "callbacks": args.callbacks,
        "queue_blocks": args.queue_blocks or "auto",
        "threads": args.threads,
        "machine": f"{platform.node() or 'host'}: {platform.processor() or platform.machine()}, "
                   f"{os.cpu_count()} CPUs, {platform.python_implementation()} {platform.python_version()}, "
                   f"torch {torch.__version__}",
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "skipped": skipped,
        "results": results,
    }
    from stemstream.benchmarks.report import write_report, wrote

    paths = write_report(args.out, "latency", report, format_markdown(report), (lambda p: _plot(report, p)) if results else None)
    print(wrote(paths))
    return 0
