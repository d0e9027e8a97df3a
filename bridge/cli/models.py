"""`stemstream models`: list the shipped models (name, stems, rate, latency, size, cost)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "models",
        help="list the shipped models",
        description="List the shipped separation models with latency, parameters and MACs per second of audio.",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)


def _trained_on(record: dict) -> str:
    data = record.get("data", {})
    train = record.get("train", {})
    if isinstance(data, str):  # the diffusion run records: data name, role and steps
        steps = f"{data} data, {record.get('steps', '?')} {record.get('role', 'training')} steps"
        start = str(record.get("init", ""))
        if start.startswith("initialised from ") and "(" in start:  # a continuation: what it started from
            steps += f" in its last run (after {start.rsplit('(', 1)[1].rstrip(')')})"
        return steps
    if not data:
        return "-"
    dj = data.get("dj_sources")
    if dj:  # the DJ models: real recordings (licences in the run record and the model card) + synthetic
        seen = (f"real: MIR-1K {dj.get('mir1k_clips', '?')} clips, MedleyDB {len(dj.get('musicdelta_songs', []))} "
                f"songs (non-commercial licences); {dj.get('synth_songs', '?')} synth songs; "
                f"{train.get('audio_seen_hours', '?')} h seen")
    else:
        seen = f"{data.get('train_songs', '?')} synth songs, {train.get('audio_seen_hours', '?')} h seen"
    if train.get("init_from"):  # a continuation: the record covers its own run, not the runs before
        seen += f" in its last run (from {Path(str(train['init_from'])).stem})"
    return seen


def run(args: argparse.Namespace) -> int:
    from stemstream.realtime.models.registry import list_models

    cards = list_models()
    if args.json:
        rows = [
            {
                "name": c.name, "stems": list(c.stems), "sample_rate": c.sample_rate,
                "hop_samples": c.hop_samples, "latency_samples": c.latency_samples, "buffer_samples": c.buffer_samples,
                "latency_ms": round(c.latency_ms, 2), "total_latency_ms": round(c.total_latency_ms, 2),
                "params": c.params, "macs_per_second": c.macs_per_second, "path": c.path,
                "architecture": c.architecture,
                "final_scores": c.run_record.get("final_scores", c.run_record.get("final_valid", {})),
                "real_training_data": c.run_record.get("real_training_data"),
            }
            for c in cards
        ]
        print(json.dumps(rows, indent=1))
        return 0
    header = ("name", "stems", "rate", "latency ms (+buffer)", "params", "GMAC/s", "trained on")
    rows = [
        (
            c.name, ",".join(c.stems), f"{c.sample_rate}", f"{c.latency_ms:.1f} ({c.total_latency_ms:.1f})",
            f"{c.params / 1e6:.2f}M", f"{c.macs_per_second / 1e9:.2f}", _trained_on(c.run_record),
        )
        for c in cards
    ]
    if not rows:
        print("no models shipped in this build")
        return 0
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    for r in (header, *rows):
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
    from stemstream.realtime.models.wiener import DEFAULT_WINDOW, MASK_SUFFIX, SUFFIX, added_delay

    print(f"\nNAME{SUFFIX} (any hop model above): its stems re-filter the input over a {DEFAULT_WINDOW}-sample STFT "
          f"(stereo: the multichannel Wiener filter), better stems for {added_delay(DEFAULT_WINDOW)} samples more "
          f"delay; what `stemstream separate` runs by default. NAME{MASK_SUFFIX}: the per-channel ratio mask alone")
    return 0
