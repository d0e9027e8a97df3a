"""`stemstream separate INPUT -o OUTDIR`: separate a file through the streaming engine.

The file is streamed block by block through ``stemstream.realtime.engine.streamer.StreamingSeparator``
(the code path the live engine uses), the latency trimmed and the tail flushed, and each stem
written as ``OUTDIR/<stem>.wav`` (32-bit float, the input's sample rate, channels and length),
all files atomically. Reports the latency and the real-time factor.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


from stemstream.bridge.cli.stem_choice import HELP as STEMS_HELP
from stemstream.realtime.backends import BACKEND_HELP
from stemstream.realtime.errors import AudioInputError, StemstreamError, bad_value

#: Block sizes accepted, in samples.
BLOCK_RANGE = (1, 65536)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "separate",
        help="separate an audio file into stems (WAV/FLAC/OGG/MP3 in, one WAV per stem out)",
        description="Stream INPUT through the separation engine and write OUTDIR/<stem>.wav.",
    )
    parser.add_argument("input", metavar="INPUT", help="audio file (anything soundfile reads)")
    parser.add_argument("-o", "--out", metavar="OUTDIR", required=True, help="output folder (created)")
    parser.add_argument("--stems", default=None, help=STEMS_HELP)
    parser.add_argument("--model", default=None,
                        help="model name or .safetensors path (default: dj-live, or live for the instrument set)")
    parser.add_argument("--backend", default="auto", help=BACKEND_HELP)
    parser.add_argument("--block-size", type=int, default=4096, help="samples per block (default: 4096)")
    parser.add_argument(
        "--threads", type=int, default=1,
        help="torch intra-op threads (default 1: on a small shared CPU more threads mostly contend)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def _load(model: str, backend: str):  # noqa: ANN202 - StreamModel
    from stemstream.realtime.models.registry import available_models, load_model

    try:
        return load_model(model, backend)
    except StemstreamError as exc:
        names = ", ".join(available_models()) or "(none shipped in this build)"
        raise type(exc)(f"{exc}; models available: {names}") from None


def run(args: argparse.Namespace) -> int:
    from stemstream.bridge.audio_files import read_audio, write_files_atomic
    from stemstream.realtime.engine.offline import separate_array
    from stemstream.realtime.engine.streamer import StreamingSeparator

    lo, hi = BLOCK_RANGE
    if not lo <= args.block_size <= hi:
        raise bad_value("--block-size", args.block_size, f"an integer in [{lo}, {hi}] samples")
    if not 1 <= args.threads <= 256:
        raise bad_value("--threads", args.threads, "an integer in [1, 256]")
    audio, rate = read_audio(args.input)
    if audio.shape[0] > 2:
        raise AudioInputError(
            f"input={args.input!r}: {audio.shape[0]} channels; expected mono or stereo (downmix it first)"
        )
    outdir = Path(args.out)
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StemstreamError(f"-o={str(outdir)!r}: cannot create the output folder ({exc.strerror})") from None

    import torch

    from stemstream.bridge.cli.stem_choice import asked_stems, with_stems
    from stemstream.realtime.models.registry import default_model

    torch.set_num_threads(args.threads)
    model = with_stems(_load(args.model or default_model(asked_stems(args.stems)), args.backend), args.stems)
    separator = StreamingSeparator(model, rate, audio.shape[0])
    seconds = audio.shape[1] / rate
    bar = None
    if not args.quiet and seconds > 20:
        from tqdm import tqdm

        bar = tqdm(total=audio.shape[1], unit="sample", unit_scale=True, desc="separating", file=sys.stderr)
    done = [0]

    def progress(n: int) -> None:
        if bar is not None:
            bar.update(n - done[0])
            done[0] = n

    t0 = time.perf_counter()
    try:
        stems = separate_array(model, audio, rate, args.block_size, progress=progress, separator=separator)
    finally:
        if bar is not None:
            bar.close()
    compute = time.perf_counter() - t0
    files = {outdir / f"{name}.wav": stems[k] for k, name in enumerate(model.info.stems)}
    written = write_files_atomic(files, rate)
    rtf = compute / seconds
    print(
        f"separated {args.input} ({seconds:.2f} s, {rate} Hz, {audio.shape[0]} ch) with model "
        f"{model.info.name!r} on backend {args.backend!r}, block {args.block_size}"
    )
    print(
        f"latency: {separator.latency_ms:.2f} ms ({separator.latency_samples} samples at {rate} Hz; "
        f"model {model.info.latency_ms:.2f} ms{', with resampling' if separator.resampling else ''})"
    )
    if getattr(model, "kind", "hop") == "segment":
        buffered = separator.max_pending_samples(args.block_size)
        print(f"live, a segment model also buffers up to {1000.0 * buffered / rate:.2f} ms ({buffered} samples) "
              "until each segment is complete (stemstream live adds it to the reported latency)")
    print(f"real-time factor: {rtf:.3f} ({compute:.2f} s compute for {seconds:.2f} s of audio, {1 / max(rtf, 1e-9):.1f}x real time)")
    for path in written:
        print(f"wrote {path}")
    return 0
