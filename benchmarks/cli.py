"""`stemstream bench <what>`: run a benchmark from ``benchmarks/``.

Each benchmark module has ``add_arguments(parser)`` and ``run(args) -> int`` and writes
JSON + Markdown (+ PNG) under ``--out`` (default ``runs/bench/<what>/``). Modules are imported
only when their benchmark runs, so ``stemstream --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib

from stemstream.realtime.errors import StemstreamError

#: Benchmark name -> (module, one-line description).
BENCHMARKS: dict[str, tuple[str, str]] = {
    "latency": ("stemstream.benchmarks.latency", "algorithmic latency, compute per callback, deadline misses per block size"),
    "backends": ("stemstream.benchmarks.backends", "per-hop time of each backend and precision"),
    "live": ("stemstream.benchmarks.live_soak", "soak test of the live JACK path"),
    "diffusion": ("stemstream.benchmarks.diffusion_table", "diffusion separators: quality vs steps vs time"),
    "tradeoff": ("stemstream.benchmarks.tradeoff", "latency / quality trade-off of the separators (SI-SDRi vs latency)"),
    "peers": ("stemstream.benchmarks.peers", "our models beside Spleeter, the mixture and the oracle mask on real songs"),
    "mixstats": ("stemstream.benchmarks.mix_stats", "level, crest factor and width of released music vs our training mixes"),
    "stalls": ("stemstream.benchmarks.stall_probe", "is this machine fit for live audio: how late a real-time thread wakes up"),
    "hostrates": ("stemstream.benchmarks.host_rates", "latency and quality at host rates other than the model's (the low-delay resampler)"),
    "files": ("stemstream.benchmarks.separate_files", "`separate` disk to disk: a crate's time, peak memory on long files"),
    "denormals": ("stemstream.benchmarks.denormals", "denormal input (1e-40, decaying tails) vs silence and music, flushed and not"),
}


def register(subparsers: argparse._SubParsersAction) -> None:
    lines = "; ".join(f"{k}: {v[1]}" for k, v in BENCHMARKS.items())
    parser = subparsers.add_parser(
        "bench",
        help="run a benchmark (latency, backends, live, diffusion, tradeoff, peers, mixstats, stalls, hostrates, files, "
        "denormals)",
        description=f"Run a benchmark. {lines}. 'stemstream bench WHAT --help' lists its options.",
    )
    parser.add_argument("what", metavar="WHAT", choices=tuple(BENCHMARKS), help=" | ".join(BENCHMARKS))
    parser.add_argument("options", nargs=argparse.REMAINDER, help="the benchmark's own options")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from stemstream.bridge.cli.main import OneLineParser

    module_name, description = BENCHMARKS[args.what]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise StemstreamError(f"bench {args.what!r}: {module_name} is not available in this build ({exc})") from None
    parser = OneLineParser(prog=f"stemstream bench {args.what}", description=description)
    module.add_arguments(parser)
    options = parser.parse_args(args.options)
    return int(module.run(options) or 0)
