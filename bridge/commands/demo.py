"""`stemstream demo`: the main job on an embedded default - no sound card, no downloads.

Renders a built-in demo song with the synthesiser (fixed seed, so it is the same song on every
machine), streams it block by block through the streaming engine with the ``live`` model (the
same code path as ``stemstream live``), writes the stems, and reports latency, real-time factor
and SI-SDR improvement per stem against the song's true stems.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from realtime.errors import StemstreamError, bad_value

#: The demo song: one synthetic song rendered from this seed.
DEMO_SEED = 20261121
DEMO_SECONDS = 20.0
#: The composer version the shipped models were trained on (see ``stemstream data synth --help``).
DEMO_GENERATOR_VERSION = 1


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="separate a built-in demo song through the streaming engine and report latency and quality",
    )
    parser.add_argument("-o", "--out", default="out/demo", help="folder for the demo song and its stems")
    parser.add_argument("--model", default="live", help="model name (see `stemstream models`)")
    parser.add_argument("--backend", default="auto", help="torch, onnx, onnx-cuda, tensorrt or auto")
    parser.add_argument("--block-size", type=int, default=256, help="samples per block fed to the engine")
    parser.add_argument("--seconds", type=float, default=DEMO_SECONDS, help="length of the demo song")
    parser.set_defaults(func=run)


def _render_demo_song(seconds: float, workdir: Path):
    """Render the demo song and return it as a ``Track``."""
    from export.data.loaders import load_tracks
    from export.data.synth import render_dataset

    render_dataset(workdir, songs=1, seconds=seconds, seed=DEMO_SEED, workers=1,
                   generator_version=DEMO_GENERATOR_VERSION)
    tracks = list(load_tracks(workdir))
    if len(tracks) != 1:
        raise StemstreamError(f"demo song rendering produced {len(tracks)} tracks, expected 1")
    return tracks[0]


def _stream(model, audio: np.ndarray, sample_rate: int, block_size: int) -> tuple[np.ndarray, float, int]:
    """Stream ``audio`` (C, T) through the engine in blocks; return stems, seconds taken, latency."""
    from realtime.engine.streamer import StreamingSeparator

    separator = StreamingSeparator(model, host_sample_rate=sample_rate, channels=audio.shape[0])
    latency = separator.latency_samples
    pieces = []
    start = time.perf_counter()
    for begin in range(0, audio.shape[1], block_size):
        pieces.append(separator.process(audio[:, begin : begin + block_size]))
    pieces.append(separator.flush())
    elapsed = time.perf_counter() - start
    stems = np.concatenate(pieces, axis=-1)[..., latency : latency + audio.shape[1]]
    return stems, elapsed, latency


def run(args: argparse.Namespace) -> int:
    if not 1 <= args.block_size <= 65536:
        raise bad_value("--block-size", args.block_size, "an integer in 1..65536")
    if not 2.0 <= args.seconds <= 600.0:
        raise bad_value("--seconds", args.seconds, "a length in 2..600 seconds")
    from benchmarks.evaluate import evaluate_tracks, format_table
    from bridge.audio_files import write_audio_atomic
    from realtime.models.registry import load_model

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="stemstream-demo-") as tmp:
        print(f"rendering the demo song (seed {DEMO_SEED}, {args.seconds:g} s) ...")
        track = _render_demo_song(args.seconds, Path(tmp))
    write_audio_atomic(out / "mixture.wav", track.mixture, track.sample_rate)

    model = load_model(args.model, backend=args.backend)
    stems_out, elapsed, latency = _stream(model, track.mixture, track.sample_rate, args.block_size)
    names = tuple(model.info.stems)
    for index, name in enumerate(names):
        write_audio_atomic(out / f"{name}.wav", stems_out[index], track.sample_rate)

    duration = track.num_samples / track.sample_rate
    report = evaluate_tracks([track], lambda _t: stems_out, names)
    report["demo"] = {
        "model": args.model,
        "backend": f"{args.backend} -> {type(model).__name__}",
        "block_size": args.block_size,
        "latency_samples": latency,
        "latency_ms": 1000.0 * latency / track.sample_rate,
        "real_time_factor": elapsed / duration,
        "seconds_of_audio": duration,
    }
    (out / "report.json").write_text(json.dumps(report, indent=2))
    print(format_table(report))
    demo = report["demo"]
    print(
        f"model {args.model} ({demo['backend']}), blocks of {args.block_size} samples: "
        f"latency {latency} samples = {demo['latency_ms']:.2f} ms, "
        f"real-time factor {demo['real_time_factor']:.3f} ({duration:.1f} s of audio in {elapsed:.2f} s)"
    )
    print(f"stems and report written to {out}/")
    return 0
