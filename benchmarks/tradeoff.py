"""`stemstream bench tradeoff`: the latency / quality trade-off of the shipped separators.

For each model (registry name or ``.safetensors`` path): its algorithmic latency (the model's
``latency_samples``, and with its input buffering: a hop, or a diffusion segment) and its SI-SDRi per stem on a dataset,
with the one evaluation protocol (``stemstream.export.evaluation.protocol.evaluate_tracks``, streaming engine);
beside them the oracle ratio mask through the live model's own windows (the ceiling of a
mask-based model at that latency). Writes ``tradeoff.json``, ``tradeoff.md`` and
``tradeoff.png`` (mean SI-SDRi against latency) under ``--out``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path
from typing import Any

from stemstream.realtime.backends import BACKEND_HELP

DEFAULT_OUT = "runs/bench/tradeoff"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default="data/synth/test", help="dataset folder (default data/synth/test)")
    parser.add_argument("--models", default="live,live-pruned,quality",
                        help="comma-separated registry names or .safetensors paths (LABEL=PATH names a path)")
    parser.add_argument("--backend", default="auto", help=BACKEND_HELP)
    parser.add_argument("--max-tracks", type=int, default=None, help="evaluate at most this many tracks")
    parser.add_argument("--no-oracle", action="store_true", help="skip the oracle mask at the live windows")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")


def _entries(text: str) -> list[tuple[str, str]]:
    from stemstream.realtime.errors import bad_value

    entries = []
    for item in (s.strip() for s in text.split(",")):
        if not item:
            continue
        label, _, path = item.partition("=")
        entries.append((label, path or label))
    if not entries:
        raise bad_value("--models", text, "at least one model name or LABEL=PATH")
    return entries


def _score(separator: Any, args: argparse.Namespace) -> dict[str, Any]:
    import itertools

    from stemstream.export.evaluation.protocol import evaluate_tracks
    from stemstream.export.data.loaders import load_tracks

    tracks = load_tracks(args.dataset)
    if args.max_tracks is not None:
        tracks = itertools.islice(tracks, args.max_tracks)
    report = evaluate_tracks(tracks, separator, separator.stems, with_sdr=False)
    stems = {s: report["per_stem"][s]["si_sdri"]["mean"] for s in separator.stems}
    return {"si_sdri": stems, "mean": sum(stems.values()) / len(stems)}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Score every model (and the oracle); returns the result record."""
    from stemstream.export.evaluation.separators import model_separator
    from stemstream.realtime.models.registry import model_card

    rows = []
    for label, ref in _entries(args.models):
        card = model_card(ref)
        started = time.perf_counter()
        scores = _score(model_separator(ref, backend=args.backend), args)
        sr = card.sample_rate
        rows.append({
            "model": label, "path": str(card.path),
            "latency_ms": 1000.0 * card.latency_samples / sr,
            "algorithmic_latency_ms": card.total_latency_ms,
            "params": card.params, "macs_per_second": card.macs_per_second,
            "train_steps": (card.run_record or {}).get("train", {}).get("steps"),
            "init_from": (card.run_record or {}).get("train", {}).get("init_from"),
            **scores, "eval_seconds": round(time.perf_counter() - started, 1),
        })
    oracle = None
    if not args.no_oracle:
        from stemstream.export.evaluation.reference import reference_separator
        from stemstream.realtime.stems import STEMS

        oracle = _score(reference_separator("oracle-mask", STEMS, windows="live"), args)
    return {"dataset": args.dataset, "backend": args.backend, "rows": rows, "oracle_live_windows": oracle,
            "machine": f"{platform.machine()} {os.cpu_count()}-core CPU, {platform.system()}",
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def format_markdown(r: dict[str, Any]) -> str:
    stems = list(r["rows"][0]["si_sdri"]) if r["rows"] else []
    head = "| model | latency (model / with buffering) | params | MACs/s | " + " | ".join(stems) + " | mean |"
    lines = [f"# Latency / quality trade-off on {r['dataset']} (SI-SDRi, dB)", "", head,
             "|" + " --- |" * (5 + len(stems))]
    for row in r["rows"]:
        cells = " | ".join(f"{row['si_sdri'][s]:.2f}" for s in stems)
        lines.append(f"| {row['model']} | {row['latency_ms']:.1f} / {row['algorithmic_latency_ms']:.1f} ms | "
                     f"{row['params'] / 1e6:.2f} M | {row['macs_per_second'] / 1e9:.2f} G | {cells} | "
                     f"**{row['mean']:.2f}** |")
    if r["oracle_live_windows"]:
        o = r["oracle_live_windows"]
        cells = " | ".join(f"{o['si_sdri'][s]:.2f}" for s in stems)
        lines.append(f"| oracle mask, live windows | - | - | - | {cells} | {o['mean']:.2f} |")
    lines += ["", f"backend {r['backend']}; machine: {r['machine']}; {r.get('date', 'date not recorded')}"]
    return "\n".join(lines) + "\n"


def _plot(r: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for row in r["rows"]:
        ax.scatter(row["algorithmic_latency_ms"], row["mean"])
        ax.annotate(row["model"], (row["algorithmic_latency_ms"], row["mean"]), textcoords="offset points",
                    xytext=(5, 5), fontsize=8)
    if r["oracle_live_windows"]:
        ax.axhline(r["oracle_live_windows"]["mean"], linestyle="--", color="gray",
                   label="oracle mask, live windows")
        ax.legend(fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("algorithmic latency incl. input buffering (ms)")
    ax.set_ylabel("mean SI-SDRi (dB)")
    ax.set_title(f"latency / quality on {Path(r['dataset']).name}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    from stemstream.realtime.errors import bad_value

    if not Path(args.dataset).is_dir():
        raise bad_value("--dataset", args.dataset, "an existing dataset folder")
    if args.max_tracks is not None and args.max_tracks < 1:
        raise bad_value("--max-tracks", args.max_tracks, "a positive integer")
    result = measure(args)
    from stemstream.benchmarks.report import write_report, wrote

    text = format_markdown(result)
    plot = (lambda p: _plot(result, p)) if result["rows"] else None
    paths = write_report(args.out, "tradeoff", result, text, plot)
    print(text)
    print(wrote(paths))
    return 0
