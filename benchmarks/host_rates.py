"""`stemstream bench hostrates`: what a host rate other than the model's costs, in latency and quality.

For each host rate (``--rates``, default 44.1, 48, 96 and 22.05 kHz) the test songs are
converted to that rate offline with soxr's very-high-quality resampler (mixture and true stems
alike, so the reference is as good as it gets), separated through the streaming engine at that
rate (the engine converts host -> model -> host with its low-delay resampler,
``stemstream.realtime.engine.resample``) and scored with the one evaluation protocol. Beside the
scores: the engine's latency at each rate (the model's delay plus what the resamplers hold
back, at ``--block`` samples) in milliseconds. The row at the model's own rate is the baseline;
``delta`` columns are measured against it in the same run.

Where the extra latency comes from: the two conversions hold back ``resampler_ms`` (0.73 ms for
``LD``), and a host block is no longer a whole number of model hops (at 48 kHz 256 samples are
235.2 model samples), so the last hop of a block may wait for the next one: up to one hop more.
Where a model has a rate sibling (``dj-live`` -> ``dj-live-48k``, ``registry.rate_variant``), the
rows at 48 and 96 kHz run the sibling, as ``stemstream live`` does (the row's ``model_run``): no
resampler at 48 kHz, a 2:1 one at 96 kHz, and blocks of whole hops.

Writes ``hostrates.json`` and ``hostrates.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from stemstream.realtime.backends import BACKEND_HELP

DEFAULT_OUT = "runs/bench/hostrates"
DEFAULT_RATES = "44100,48000,96000,22050"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``stemstream bench hostrates``."""
    parser.add_argument("--dataset", default="data/synth/test", help="dataset folder (default data/synth/test)")
    parser.add_argument("--model", default="live", help="registry model name or .safetensors path (default live)")
    parser.add_argument("--rates", default=DEFAULT_RATES, help=f"comma-separated host rates in Hz (default {DEFAULT_RATES})")
    parser.add_argument("--block", type=int, default=256, help="host block size for the latency column (default 256)")
    parser.add_argument("--backend", default="auto", help=BACKEND_HELP)
    parser.add_argument("--max-tracks", type=int, default=None, help="evaluate at most this many tracks")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")


def engine_latency(model: Any, rate: int, block: int) -> dict[str, float]:
    """The engine's delay at host ``rate``: the reported latency (exact, in host samples) and the
    worst extra the resamplers and hop buffering hold back at ``block`` samples, in ms."""
    from stemstream.realtime.engine.streamer import StreamingSeparator

    from stemstream.realtime.engine.resample import StreamResampler

    sep = StreamingSeparator(model, rate, 2)
    pending = sep.max_pending_samples(block)
    native = sep.model_sample_rate
    resampler_ms = 0.0
    if rate != native:
        resampler_ms = (StreamResampler(rate, native, 1).delay_ms + StreamResampler(native, rate, 1).delay_ms)
    return {"latency_ms": 1000.0 * sep.latency_samples / rate,
            "algorithmic_ms": 1000.0 * (sep.latency_samples + pending) / rate,
            "resampler_ms": resampler_ms}


def measure(args: argparse.Namespace, rates: list[int]) -> dict[str, Any]:
    """Score the model at every rate; returns the result record."""
    from stemstream.export.data.loaders import load_tracks
    from stemstream.export.data.tracks import track_at_rate
    from stemstream.export.evaluation.protocol import evaluate_tracks
    from stemstream.export.evaluation.separators import model_separator
    from stemstream.realtime.models.registry import rate_variant

    separators = {args.model: model_separator(args.model, backend=args.backend)}
    native = int(separators[args.model].model.info.sample_rate)
    rows = []
    for rate in rates:
        run_name = rate_variant(args.model, rate)  # dj-live's 48 kHz sibling at 48/96 kHz, as live runs
        if run_name not in separators:
            separators[run_name] = model_separator(run_name, backend=args.backend)
        separator = separators[run_name]
        model = separator.model
        started = time.perf_counter()
        tracks = load_tracks(args.dataset)
        if args.max_tracks is not None:
            tracks = itertools.islice(tracks, args.max_tracks)
        report = evaluate_tracks((track_at_rate(t, rate) for t in tracks), separator, separator.stems, with_sdr=False)
        # the stems the songs hold (a DJ model on the instrument set: drums and bass)
        scores = {s: report["per_stem"][s]["si_sdri"]["mean"] for s in separator.stems if s in report["per_stem"]}
        rows.append({"rate": rate, "model_run": run_name, "model_rate": int(model.info.sample_rate),
                     **engine_latency(model, rate, args.block), "si_sdri": scores,
                     "mean": float(np.mean(list(scores.values()))), "tracks": report["counts"]["tracks"],
                     "seconds": round(time.perf_counter() - started, 1)})
        print(f"{rate:6d} Hz{'' if run_name == args.model else f' ({run_name})'}: latency {rows[-1]['latency_ms']:.2f} ms (algorithmic {rows[-1]['algorithmic_ms']:.2f} ms "
              f"at {args.block}), mean SI-SDRi {rows[-1]['mean']:.2f} dB", flush=True)
    base = next((r for r in rows if r["rate"] == native), None)
    for r in rows:
        r["delta_mean"] = None if base is None else r["mean"] - base["mean"]
        r["delta_latency_ms"] = None if base is None else r["algorithmic_ms"] - base["algorithmic_ms"]
    return {"benchmark": "hostrates", "model": args.model, "model_rate": native, "dataset": args.dataset,
            "block": args.block, "backend": args.backend, "rows": rows,
            "machine": f"{platform.node() or 'host'}: {platform.machine()}, {os.cpu_count()} CPUs",
            "date": time.strftime("%Y-%m-%d")}


def format_markdown(r: dict[str, Any]) -> str:
    stems = list(r["rows"][0]["si_sdri"]) if r["rows"] else []
    lines = [f"# Host rates: {r['model']} on {r['dataset']} (SI-SDRi dB; latency at {r['block']}-sample blocks)", "",
             "| host rate | latency ms | algorithmic ms | of which resamplers ms | vs model rate ms | "
             + " | ".join(stems) + " | mean | vs model rate dB |",
             "|" + " ---: |" * (7 + len(stems))]
    for row in r["rows"]:
        dl = "-" if row["delta_latency_ms"] is None else f"{row['delta_latency_ms']:+.2f}"
        dm = "-" if row["delta_mean"] is None else f"{row['delta_mean']:+.2f}"
        cells = " | ".join(f"{row['si_sdri'][s]:.2f}" for s in stems)
        ran = "" if row.get("model_run", r["model"]) == r["model"] else f" ({row['model_run']})"
        lines.append(f"| {row['rate']}{ran} | {row['latency_ms']:.2f} | {row['algorithmic_ms']:.2f} | {row['resampler_ms']:.2f} | {dl} | {cells} | "
                     f"{row['mean']:.2f} | {dm} |")
    lines += ["", f"Model rate {r['model_rate']} Hz; songs converted offline (soxr VHQ), the engine's own "
              f"low-delay resampler inside; backend {r['backend']}; {r['machine']}; {r['date']}."]
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    """Run the benchmark; returns 0."""
    from stemstream.benchmarks.report import write_report, wrote
    from stemstream.realtime.errors import bad_value

    if not Path(args.dataset).is_dir():
        raise bad_value("--dataset", args.dataset, "an existing dataset folder")
    try:
        rates = [int(x) for x in args.rates.split(",") if x.strip()]
    except ValueError:
        raise bad_value("--rates", args.rates, "comma-separated integers in Hz") from None
    if not rates or any(not 8000 <= x <= 192000 for x in rates):
        raise bad_value("--rates", args.rates, "host rates in [8000, 192000] Hz")
    if not 16 <= args.block <= 8192:
        raise bad_value("--block", args.block, "an integer in [16, 8192]")
    if args.max_tracks is not None and args.max_tracks < 1:
        raise bad_value("--max-tracks", args.max_tracks, "an integer >= 1")
    result = measure(args, rates)
    print(wrote(write_report(args.out, "hostrates", result, format_markdown(result))))
    return 0
