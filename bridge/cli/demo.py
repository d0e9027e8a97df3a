"""`stemstream demo`: the main job on an embedded default - no sound card, no downloads.

Renders a built-in demo song (fixed seed, so it is the same song on every machine: a synthetic
backing and, for the DJ stems, a sung voice of our own rendering; ``stemstream.export.data.demo_song``),
streams it block by block through the streaming engine (the code path of ``stemstream live``)
with ``dj-live`` (vocals, drums, bass, other) or, with ``--stems instruments``, ``live``, writes
the stems, and reports latency, real-time factor and SI-SDR improvement per stem (and of the
instrumental, every stem but the vocals) against the song's true stems.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from stemstream.realtime.backends import BACKEND_HELP
from stemstream.realtime.errors import bad_value

DEMO_SECONDS = 20.0
DEMO_STEM_SETS = ("dj", "instruments")  # as stemstream.export.data.demo_song (imported only when the demo runs)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="separate a built-in demo song through the streaming engine and report latency and quality",
    )
    parser.add_argument("-o", "--out", default="out/demo", help="folder for the demo song and its stems")
    parser.add_argument("--stems", choices=DEMO_STEM_SETS, default=None,
                        help="dj: a song with a sung voice, separated into vocals, drums, bass, other (the "
                             "default); instruments: the synthetic song's bass, drums, guitar, piano")
    parser.add_argument("--model", default=None, help="model name (default: dj-live, or live for the instrument set)")
    parser.add_argument("--backend", default="auto", help=BACKEND_HELP)
    parser.add_argument("--block-size", type=int, default=256, help="samples per block fed to the engine")
    parser.add_argument("--seconds", type=float, default=DEMO_SECONDS, help="length of the demo song")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not 1 <= args.block_size <= 65536:
        raise bad_value("--block-size", args.block_size, "an integer in 1..65536")
    if not 2.0 <= args.seconds <= 600.0:
        raise bad_value("--seconds", args.seconds, "a length in 2..600 seconds")
    from stemstream.export.evaluation.protocol import evaluate_tracks, format_table
    from stemstream.export.evaluation.separators import SubsetSeparator
    from stemstream.bridge.audio_files import write_audio_atomic
    from stemstream.export.data.demo_song import DEMO_SEED, render_demo_song
    from stemstream.realtime.engine.offline import separate_array
    from stemstream.realtime.engine.streamer import StreamingSeparator
    from stemstream.realtime.models.registry import load_model
    from stemstream.realtime.stems import STEM_SETS

    from stemstream.realtime.models.registry import default_model

    stem_set = args.stems or ("dj" if default_model(None) != "live" or args.model else "instruments")
    model = load_model(args.model or default_model(STEM_SETS[stem_set]), backend=args.backend)
    if stem_set == "dj" and "vocals" not in model.info.stems:
        raise bad_value("--model", args.model, "a DJ-set model (vocals, drums, bass, other) for --stems dj; "
                        "use --stems instruments for the instrument set")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="stemstream-demo-") as tmp:
        print(f"rendering the demo song (seed {DEMO_SEED}, {args.seconds:g} s, "
              f"{'with a sung voice' if stem_set == 'dj' else 'instruments'}) ...")
        track = render_demo_song(args.seconds, Path(tmp), stem_set)
    write_audio_atomic(out / "mixture.wav", track.mixture, track.sample_rate)

    separator = StreamingSeparator(model, host_sample_rate=track.sample_rate, channels=track.mixture.shape[0])
    latency = separator.latency_samples
    start = time.perf_counter()
    stems_out = separate_array(model, track.mixture, track.sample_rate, args.block_size, separator=separator)
    elapsed = time.perf_counter() - start
    names = tuple(model.info.stems)
    for index, name in enumerate(names):
        write_audio_atomic(out / f"{name}.wav", stems_out[index], track.sample_rate)

    duration = track.num_samples / track.sample_rate
    scored = names + (("instrumental",) if "vocals" in names else ())
    report = evaluate_tracks([track], SubsetSeparator(_Fixed(names, stems_out), scored), scored)
    report["demo"] = {
        "model": model.info.name,
        "stems": stem_set,
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
        f"model {model.info.name} ({demo['backend']}), blocks of {args.block_size} samples: "
        f"latency {latency} samples = {demo['latency_ms']:.2f} ms, "
        f"real-time factor {demo['real_time_factor']:.3f} ({duration:.1f} s of audio in {elapsed:.2f} s)"
    )
    print(f"stems and report written to {out}/")
    return 0


class _Fixed:
    """Already separated stems as an evaluation separator."""

    def __init__(self, stems: tuple[str, ...], audio: np.ndarray) -> None:
        self.stems, self.audio = stems, audio

    def __call__(self, _track: object) -> np.ndarray:
        return self.audio
