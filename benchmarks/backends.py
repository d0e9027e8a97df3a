"""`stemstream bench backends`: per model and backend, per-hop latency and real-time factor,
side by side in one run, as ratios to PyTorch eager.

Backends measured (those available here): ``torch`` (eager, CPU), ``onnx`` fp32 / int8
(dynamic and static) / fp16 on the CPU execution provider, and on a GPU machine
``torch-cuda``, ``onnx-cuda`` fp32 / fp16, ``onnx-tensorrt`` (TensorRT EP) and native
``tensorrt`` fp32 / fp16. PyTorch runs with 1 intra-op thread and ONNX Runtime with 1
intra-op thread, as in live use.

Two modes per backend, over the same synthetic-music input with state carried:

* ``live``: one hop per call (what the audio worker does): per-hop p50 / p99 / mean in ms
  and RTF = mean time per hop / hop duration.
* ``block``: ``--block-hops`` hops per call (offline separation): RTF only.

Backends are interleaved in ``--rounds`` rounds so load from other processes on a shared
machine hits all of them alike. Each backend's output is also compared with PyTorch's on
the first second of input (max abs diff). Writes ``backends.json`` and ``backends.md``
under ``--out``.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from stemstream.realtime.errors import StemstreamError, bad_value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``stemstream bench backends``."""
    parser.add_argument("--models", default="live,live-pruned", help="comma-separated model names (default live,live-pruned)")
    parser.add_argument("--backends", default="all", help="comma-separated backend labels to run, or 'all'")
    parser.add_argument("--hops", type=int, default=1500, help="timed one-hop calls per backend (default 1500)")
    parser.add_argument("--warmup", type=int, default=100, help="untimed calls first (default 100)")
    parser.add_argument("--block-hops", type=int, default=32, help="hops per call in block mode (default 32)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--out", default="runs/bench/backends", help="output folder (default runs/bench/backends)")


@dataclass
class Candidate:
    """One backend under test: a label, precision and a ``HopModel`` factory."""

    label: str
    precision: str
    open: Callable[[], Any]


def _module_for(name: str) -> tuple[Any, str]:
    """The torch module of ``name`` and where its weights came from."""
    from stemstream.realtime.models.registry import SHIPPED, available_models, load_torch_model

    if name in available_models() or name.endswith(".safetensors"):
        return load_torch_model(name), "shipped weights"
    if name == "live":
        import torch

        from stemstream.realtime.models.hybrid import HybridConfig, HybridSeparator

        torch.manual_seed(0)
        return HybridSeparator(HybridConfig()).eval(), "random init (weights not shipped; same architecture and cost)"
    if name in SHIPPED:
        raise StemstreamError(f"model={name!r}: weights not shipped in this build")
    return load_torch_model(name), "shipped weights"  # raises the registry's error


def _candidates(module: Any, name: str, graphs: Path) -> list[Candidate]:
    import torch

    from stemstream.realtime.backends.onnx_backend import available_providers, open_onnx, open_onnx_file
    from stemstream.realtime.backends.tensorrt_backend import open_tensorrt, tensorrt_available
    from stemstream.realtime.backends.torch_backend import TorchHopModel

    cands = [Candidate("torch", "fp32", lambda: TorchHopModel(module, name))]
    fp32 = open_onnx(module, name, ("cpu",))
    cands.append(Candidate("onnx", "fp32", lambda: fp32))
    try:
        from stemstream.export.quantise import convert_fp16, quantise_dynamic, quantise_static

        made = {
            "int8-dynamic": (quantise_dynamic, graphs / f"{name}-int8-dynamic.onnx"),
            "int8-static": (quantise_static, graphs / f"{name}-int8-static.onnx"),
            "fp16": (convert_fp16, graphs / f"{name}-fp16.onnx"),
        }
        for prec, (fn, path) in made.items():
            fn(fp32.path, path)
            cands.append(Candidate("onnx", prec, lambda p=path: open_onnx_file(p)))
    except ImportError as exc:  # onnx / onnxconverter-common missing: fp32 only
        logging.getLogger(__name__).warning("reduced-precision graphs skipped: %s", exc)
    gpu = torch.cuda.is_available()
    if gpu:
        cands.append(Candidate("torch-cuda", "fp32", lambda: TorchHopModel(module.to("cuda"), name)))
    providers = available_providers()
    if "cuda" in providers:
        cands.append(Candidate("onnx-cuda", "fp32", lambda: open_onnx(module.cpu(), name, ("cuda",))))
        fp16 = graphs / f"{name}-fp16.onnx"
        if fp16.exists():
            cands.append(Candidate("onnx-cuda", "fp16", lambda: open_onnx_file(fp16, ("cuda",))))
    if "tensorrt" in providers:
        cands.append(Candidate(
            "onnx-tensorrt", "fp16", lambda: open_onnx(module.cpu(), name, ("tensorrt",), trt_fp16=True)
        ))
    if tensorrt_available():
        cands.append(Candidate("tensorrt", "fp32", lambda: open_tensorrt(module.cpu(), name)))
        try:
            from stemstream.export.tensorrt_export import export_tensorrt
            from stemstream.realtime.backends.tensorrt_backend import TensorRTHopModel

            plan = graphs / f"{name}-fp16.plan"
            cands.append(Candidate(
                "tensorrt", "fp16",
                lambda: TensorRTHopModel(export_tensorrt(module.cpu(), name, plan, "fp16"), name=name),
            ))
        except ImportError:
            pass
    return cands


def _time_live(model: Any, audio: np.ndarray, state: Any, hops: int, start_hop: int) -> tuple[list[float], Any]:
    hop = model.hop_samples
    total = audio.shape[1] // hop
    times = []
    for j in range(hops):
        k = (start_hop + j) % total
        piece = audio[:, k * hop : (k + 1) * hop]
        t0 = time.perf_counter_ns()
        _, state = model.process_hops(piece, state)
        times.append((time.perf_counter_ns() - t0) / 1e6)
    return times, state


def _time_block(model: Any, audio: np.ndarray, block_hops: int) -> float:
    """Seconds to process ``audio`` in calls of ``block_hops`` hops (fewer if the model caps it)."""
    hop = model.hop_samples
    step = hop * max(1, min(block_hops, model.max_hops_per_call))
    usable = audio.shape[1] - audio.shape[1] % step
    state = model.init_state()
    t0 = time.perf_counter()
    for s in range(0, usable, step):
        _, state = model.process_hops(audio[:, s : s + step], state)
    return time.perf_counter() - t0


def _output(model: Any, audio: np.ndarray) -> np.ndarray:
    from stemstream.export.parity import separate

    return separate(model, audio)


def bench_model(name: str, args: argparse.Namespace, graphs: Path, wanted: set[str] | None) -> dict[str, Any]:
    """Measure every available backend for model ``name``; returns the JSON-able result."""
    from stemstream.export.parity import synthetic_music

    module, weights = _module_for(name)
    cfg = module.config
    hop_ms = 1000.0 * cfg.hop_samples / cfg.sample_rate
    audio = synthetic_music(6.0, cfg.sample_rate, cfg.channels, seed=0)
    cands = [
        c for c in _candidates(module, name, graphs)
        if wanted is None or c.label == "torch" or c.label in wanted or f"{c.label}-{c.precision}" in wanted
    ]
    models = {f"{c.label} {c.precision}": c.open() for c in cands}
    reference = _output(models["torch fp32"], audio[:, : cfg.sample_rate])
    live_times: dict[str, list[float]] = {k: [] for k in models}
    states = {k: m.init_state() for k, m in models.items()}
    for k, m in models.items():  # warm-up (graph optimisation, allocator, caches)
        _, states[k] = _time_live(m, audio, states[k], args.warmup, 0)
    per_round = max(1, args.hops // args.rounds)
    block_s: dict[str, float] = {k: 0.0 for k in models}
    for r in range(args.rounds):
        for k, m in models.items():
            t, states[k] = _time_live(m, audio, states[k], per_round, args.warmup + r * per_round)
            live_times[k] += t
        for k, m in models.items():
            block_s[k] += _time_block(m, audio[:, : audio.shape[1] // args.rounds], args.block_hops)
    block_audio_s = args.rounds * (audio.shape[1] // args.rounds) / cfg.sample_rate
    rows = []
    torch_mean = float(np.mean(live_times["torch fp32"]))
    torch_block = block_s["torch fp32"]
    for k, m in models.items():
        t = np.asarray(live_times[k])
        diff = float(np.abs(_output(m, audio[:, : cfg.sample_rate]) - reference).max())
        label, precision = k.split(" ")
        rows.append({
            "backend": label,
            "precision": precision,
            "hop_p50_ms": float(np.percentile(t, 50)),
            "hop_p99_ms": float(np.percentile(t, 99)),
            "hop_mean_ms": float(t.mean()),
            "hop_max_ms": float(t.max()),
            "rtf_live": float(t.mean() / hop_ms),
            "rtf_block": block_s[k] / block_audio_s,
            "speedup_live": torch_mean / float(t.mean()),
            "speedup_block": torch_block / block_s[k],
            "max_abs_diff_vs_torch": diff,
            "timed_hops": int(t.size),
        })
    return {
        "model": name,
        "weights": weights,
        "hop_samples": cfg.hop_samples,
        "hop_ms": hop_ms,
        "latency_samples": cfg.latency_samples,
        "block_hops": args.block_hops,
        "rows": rows,
    }


def _machine() -> dict[str, Any]:
    import onnxruntime
    import torch

    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "onnxruntime": onnxruntime.__version__,
        "onnxruntime_threads": 1,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average_1min_at_start": os.getloadavg()[0],
    }
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        if names:
            info["cpu_model"] = names[0]
    except OSError:
        pass
    return info


def format_markdown(report: dict[str, Any]) -> str:
    """Markdown tables of a report (one per model)."""
    lines = ["# Backends: per-hop latency and real-time factor", ""]
    m = report["machine"]
    lines += [
        f"Machine: {m.get('cpu_model', m['processor'])}, {m['cpu_count']} cores; GPU: {m['gpu'] or 'none'}; "
        f"torch {m['torch']} ({m['torch_threads']} thread), onnxruntime {m['onnxruntime']} (1 intra-op thread); "
        f"1-min load average {m['load_average_1min_at_start']:.2f} at start, {m.get('load_average_1min_at_end', float('nan')):.2f} at end "
        "(shared machine: other processes' load shows in p99).",
        "Live: one hop per call, state carried; RTF = time per hop / hop duration (< 1: faster than real time). "
        "Speedup = PyTorch eager time / backend time. Block: hops per call as given.",
        "",
    ]
    for res in report["models"]:
        lines += [
            f"## {res['model']} ({res['weights']}); hop {res['hop_samples']} samples = {res['hop_ms']:.2f} ms, block {res['block_hops']} hops",
            "",
            "| backend | precision | hop p50 ms | hop p99 ms | mean ms | RTF live | RTF block | speedup live | speedup block | max abs diff vs torch |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in res["rows"]:
            lines.append(
                f"| {r['backend']} | {r['precision']} | {r['hop_p50_ms']:.3f} | {r['hop_p99_ms']:.3f} | {r['hop_mean_ms']:.3f} | "
                f"{r['rtf_live']:.3f} | {r['rtf_block']:.4f} | {r['speedup_live']:.2f}x | {r['speedup_block']:.2f}x | "
                f"{r['max_abs_diff_vs_torch']:.2e} |"
            )
        lines.append("")
    if report.get("skipped"):
        lines += ["Skipped: " + "; ".join(f"{k}: {v}" for k, v in report["skipped"].items()), ""]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run the benchmark; writes ``backends.json`` and ``backends.md`` under ``args.out``."""
    import torch

    for opt in ("hops", "warmup", "block_hops", "rounds"):
        if getattr(args, opt) < 1:
            raise bad_value(f"--{opt.replace('_', '-')}", getattr(args, opt), "an integer >= 1")
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    if not names:
        raise bad_value("--models", args.models, "a comma-separated list of model names")
    wanted = None if args.backends == "all" else {b.strip() for b in args.backends.split(",")}
    torch.set_num_threads(1)
    logging.getLogger("root").setLevel(logging.ERROR)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"machine": _machine(), "models": [], "skipped": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            try:
                result = bench_model(name, args, Path(tmp), wanted)
            except StemstreamError as exc:
                report["skipped"][name] = str(exc)
                print(f"skipped {name}: {exc}")
                continue
            report["models"].append(result)
    report["machine"]["load_average_1min_at_end"] = os.getloadavg()[0]
    from stemstream.benchmarks.report import write_report, wrote

    md = format_markdown(report)
    paths = write_report(out, "backends", report, md)
    print(md)
    print(wrote(paths))
    return 0 if report["models"] else 2


__all__ = ["add_arguments", "bench_model", "format_markdown", "run"]
