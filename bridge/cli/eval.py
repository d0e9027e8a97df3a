"""`stemstream eval`: score a separator on a dataset with the seeds' chunk protocol.

    stemstream eval --dataset PATH --model NAME [--json OUT] [--backend NAME]
                    [--stft-size N | --oracle-windows live] [--max-tracks K] [--stems a,b]
                    [--compare EARLIER.json]

``NAME`` is a registry model (run through the streaming engine) or a reference separator:
``mixture`` (SI-SDRi exactly 0) or ``oracle-mask`` (ideal ratio masks through a Hann STFT of
``--stft-size``, or with ``--oracle-windows live`` through the live model's own low-delay STFT).
Prints a per-stem table (SI-SDR, SI-SDRi, SDR in dB, mean and median over 4 s chunks) and
writes the full report as JSON with ``--json``. The stem mean comes with its 95 % song-bootstrap
interval; ``--compare`` adds the paired interval of the difference to an earlier report.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path
from typing import Any

from stemstream.realtime.backends import BACKEND_HELP
from stemstream.realtime.errors import StemstreamError, bad_value


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval", help="score a model (or a reference separator) on a dataset",
        description="SI-SDR, SI-SDRi and SDR per stem on 4 s chunks (2 s hop), silent and "
        "single-source chunks skipped. --model: a registry model, 'mixture' or 'oracle-mask'.",
    )
    parser.add_argument("--dataset", required=True, help="dataset folder (synthetic, MUSDB18-HQ, Slakh2100, realdata)")
    parser.add_argument("--model", required=True, help="registry model name or path, 'mixture' or 'oracle-mask'")
    parser.add_argument("--json", dest="json_out", default=None,
                        help="write the full report to this JSON file (and the table to the same name .md)")
    parser.add_argument("--stft-size", type=int, default=2048,
                        help="oracle-mask Hann STFT window in samples (hop = size/4); ignored with --oracle-windows live")
    parser.add_argument("--oracle-windows", choices=("hann", "live"), default="hann",
                        help="oracle-mask STFT: 'hann' (centered Hann window of --stft-size) or 'live' (the live "
                        "model's own low-delay STFT: analysis 1024, synthesis 256, hop 128 samples, i.e. the "
                        "ceiling of a mask-based model with the live model's windows)")
    parser.add_argument("--mask-power", type=float, default=1.0, help="oracle-mask exponent: 1 magnitude ratio, 2 power ratio")
    parser.add_argument("--backend", default="auto", help=BACKEND_HELP)
    parser.add_argument("--max-tracks", type=int, default=None, help="evaluate at most this many tracks")
    parser.add_argument("--stems", default=None, help="comma-separated stems to score (default: all the model outputs)")
    parser.add_argument("--chunk-seconds", type=float, default=4.0, help="chunk length in seconds")
    parser.add_argument("--hop-seconds", type=float, default=2.0, help="chunk hop in seconds")
    parser.add_argument("--silence-db", type=float, default=-60.0, help="RMS dBFS under which a stem chunk is silent")
    parser.add_argument("--no-sdr", action="store_true", help="skip BSS Eval SDR (faster)")
    parser.add_argument("--compare", default=None, metavar="REPORT.json",
                        help="an earlier --json report of the same dataset: also print this model minus "
                        "that one in mean SI-SDRi with its paired 95%% song-bootstrap interval")
    parser.set_defaults(func=run)


def _parse_stems(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    stems = tuple(s.strip() for s in text.split(",") if s.strip())
    if not stems or len(set(stems)) != len(stems):
        raise bad_value("--stems", text, "comma-separated distinct stem names, e.g. 'bass,drums'")
    return stems


def _build_separator(args: argparse.Namespace, stems: tuple[str, ...] | None) -> Any:
    from stemstream.export.evaluation.reference import REFERENCE_SEPARATORS, reference_separator

    if args.model in REFERENCE_SEPARATORS:
        from stemstream.realtime.stems import STEMS

        return reference_separator(args.model, stems or STEMS, stft_size=args.stft_size,
                                   mask_power=args.mask_power, windows=args.oracle_windows)
    from stemstream.export.evaluation.separators import SubsetSeparator, model_separator

    separator = model_separator(args.model, backend=args.backend)
    if not stems:
        return separator
    try:
        return SubsetSeparator(separator, stems)
    except StemstreamError:
        raise bad_value("--stems", ",".join(stems), f"stems the model outputs: {','.join(separator.stems)}") from None


def _read_report(path: str) -> dict[str, Any]:
    """An earlier ``--json`` report, checked to have per-track scores."""
    import json

    try:
        report = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise bad_value("--compare", path, f"a readable JSON report written by --json ({exc})") from None
    if not isinstance(report, dict) or not report.get("tracks") or "per_stem" not in report:
        raise bad_value("--compare", path, "a report written by stemstream eval --json (with per-track scores)")
    return report


def _compare(baseline: dict[str, Any], report: dict[str, Any], path: str) -> dict[str, Any]:
    """Print and return this report minus ``baseline`` (paired song bootstrap, SI-SDRi)."""
    from stemstream.export.evaluation.confidence import paired_difference

    try:
        diff = paired_difference(baseline, report)
    except StemstreamError as exc:
        raise bad_value("--compare", path, f"a report of the same songs and stems ({exc})") from None
    print(f"vs {path}: {diff['mean']:+.2f} dB mean SI-SDRi, paired 95% interval "
          f"[{diff['low']:+.2f}, {diff['high']:+.2f}] over {diff['songs']} songs: {diff['verdict']}")
    return {"report": str(path), "si_sdri_difference": diff, "verdict": diff["verdict"]}


def run(args: argparse.Namespace) -> int:
    from stemstream.export.evaluation.protocol import evaluate_tracks, format_markdown, format_table, write_json

    if args.max_tracks is not None and args.max_tracks < 1:
        raise bad_value("--max-tracks", args.max_tracks, "a positive integer")
    dataset = Path(args.dataset)
    if not dataset.is_dir():
        raise bad_value("--dataset", args.dataset, "an existing dataset folder")
    stems = _parse_stems(args.stems)
    baseline = _read_report(args.compare) if args.compare else None
    separator = _build_separator(args, stems)
    from stemstream.export.data.loaders import load_tracks

    tracks = load_tracks(str(dataset))
    if args.max_tracks is not None:
        tracks = itertools.islice(tracks, args.max_tracks)

    def progress(items: Any) -> Any:
        for k, track in enumerate(items, 1):
            print(f"[{k}] {track.name} ({track.num_samples / track.sample_rate:.1f} s)", file=sys.stderr)
            yield track

    started = time.perf_counter()
    report = evaluate_tracks(
        progress(tracks), separator, separator.stems, chunk_seconds=args.chunk_seconds,
        hop_seconds=args.hop_seconds, silence_db=args.silence_db, with_sdr=not args.no_sdr,
    )
    report["run"] = {
        "model": args.model, "dataset": str(dataset), "backend": args.backend,
        "stft_size": args.stft_size if args.model == "oracle-mask" and args.oracle_windows == "hann" else None,
        "oracle_windows": args.oracle_windows if args.model == "oracle-mask" else None,
        "mask_power": args.mask_power if args.model == "oracle-mask" else None,
        "max_tracks": args.max_tracks, "seconds": round(time.perf_counter() - started, 3),
    }
    label = args.model
    if args.model == "oracle-mask":
        label += " (live model's low-delay STFT)" if args.oracle_windows == "live" else f" (STFT {args.stft_size})"
    print(f"{label} on {dataset}")
    print(format_table(report))
    if baseline is not None:
        report["compare"] = _compare(baseline, report, args.compare)
    if args.json_out:
        out = write_json(report, args.json_out)
        out.with_suffix(".md").write_text(format_markdown(report, f"{label} on {dataset.name}"))
        print(f"report: {out} (+ {out.with_suffix('.md').name})")
    return 0
