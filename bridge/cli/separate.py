"""`stemstream separate INPUT... -o OUT`: separate songs (files, or folders of them) disk to disk.

Every song streams block by block from its file through the streaming engine (the code path
``live`` runs) into its outputs, so memory stays flat however long the song
(``stemstream.bridge.files.song``). Layout, the same for one song or a crate
(``stemstream.bridge.files.crate``)::

    OUT/<song>/<stem>.wav|flac     (--format wav, the default: 32-bit float; flac: 24 bit)
    OUT/<song>.stem.mp4            (--format stem.mp4: NI Stems, the mixture + four stems, AAC or ALAC)

Songs already done with the same settings are skipped unless ``--force``, so a crate run again
resumes where it stopped. The output folder is checked before the model loads, and each song's
outputs are opened before it is computed. A song that fails is one line on stderr and the rest go
on. Exit code: 0 every song done (or skipped as done), 1 some songs failed and the others are
done, 2 nothing done (bad arguments, an unwritable output folder, or every song failed), 130
interrupted (run the same command again to resume).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

from stemstream.bridge.cli.stem_choice import HELP as STEMS_HELP
from stemstream.realtime.backends import BACKEND_HELP
from stemstream.realtime.errors import StemstreamError, bad_value

#: Block sizes accepted, in samples.
BLOCK_RANGE = (1, 65536)
#: Songs shorter than this (seconds) get no progress lines between start and end.
PROGRESS_MIN_SECONDS = 20.0
#: What files get after the default model: the long-window multichannel Wiener filter
#: (``stemstream.realtime.models.wiener``; 139 ms more delay). ``--model dj-live``
#: runs the model alone.
FILE_POST_FILTER = "+wiener"
#: Runtimes behind ``--backend``, by the class ``open_backend`` returned.
RUNTIMES = {"OnnxHopModel": "onnx", "TorchHopModel": "torch", "TorchSegmentModel": "torch",
            "TorchCudaHopModel": "torch-cuda", "TensorRTHopModel": "tensorrt"}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "separate",
        help="separate songs or whole folders into stems (WAV / FLAC per stem, or NI .stem.mp4)",
        description="Stream each INPUT song through the separation engine and write OUT/<song>/<stem>.wav "
                    "(or .flac), or OUT/<song>.stem.mp4. Folders are searched recursively; songs already "
                    "done are skipped unless --force.",
    )
    parser.add_argument("inputs", metavar="INPUT", nargs="+",
                        help="audio files (anything libsndfile or ffmpeg reads) or folders of them")
    parser.add_argument("-o", "--out", metavar="OUT", required=True, help="output folder (created)")
    parser.add_argument("--format", default="wav", metavar="FMT",
                        help="wav (default), flac, or stem.mp4 (Native Instruments Stems for Traktor, Mixxx...)")
    parser.add_argument("--bit-depth", default=None, metavar="BITS",
                        help="16, 24 or 32f (32-bit float, wav only); default: wav 32f, flac 24, ALAC 24")
    parser.add_argument("--codec", default=None, help="stem.mp4 only: aac (default, 256 kb/s per track) or alac")
    parser.add_argument("--stems", default=None, help=STEMS_HELP)
    parser.add_argument("--model", default=None,
                        help="model name or .safetensors path; NAME+wiener adds the long-window post-filter "
                             "(default: dj-live+wiener, or live+wiener for the instrument set)")
    parser.add_argument("--backend", default="auto", help=BACKEND_HELP)
    parser.add_argument("--block-size", type=int, default=4096, help="samples per block (default: 4096)")
    parser.add_argument(
        "--threads", type=int, default=1,
        help="torch intra-op threads (default 1: on a small shared CPU more threads mostly contend)",
    )
    parser.add_argument("--force", action="store_true", help="separate songs again even if they are done")
    parser.add_argument("--quiet", action="store_true", help="no progress (the summary lines only)")
    parser.set_defaults(func=run)


def _load(model: str, backend: str):  # noqa: ANN202 - StreamModel
    from stemstream.realtime.models.registry import available_models, load_model

    try:
        return load_model(model, backend)
    except StemstreamError as exc:
        if "available" in str(exc):  # the registry already names them
            raise
        names = ", ".join(available_models()) or "(none shipped in this build)"
        raise type(exc)(f"{exc}; models available: {names}") from None


def runtime_name(model: Any) -> str:
    """The backend a model runs on (what ``--backend auto`` picked)."""
    from stemstream.realtime.models.grouped import GroupedHopModel
    from stemstream.realtime.models.wiener import WienerHopModel

    while isinstance(model, (GroupedHopModel, WienerHopModel)):  # stages around the model that runs
        model = model.model
    name = type(model).__name__
    runtime = RUNTIMES.get(name, name)
    providers = getattr(getattr(model, "session", None), "get_providers", lambda: [])()
    return "onnx-cuda" if runtime == "onnx" and "CUDAExecutionProvider" in providers else runtime


def prepare_out(out: Path) -> list[Path]:
    """Create ``out`` and check a file can be written there; returns the folders created. An
    error names the folder and the reason, and leaves nothing behind."""
    from stemstream.bridge.files.song import make_dirs, remove_if_empty

    created: list[Path] = []
    try:
        created = make_dirs(out)
        if not out.is_dir():
            raise NotADirectoryError(20, "Not a directory")
        with tempfile.NamedTemporaryFile(dir=out, prefix=".stemstream-probe."):
            pass
    except OSError as exc:
        remove_if_empty(created)
        raise StemstreamError(f"-o={str(out)!r}: cannot write there ({exc.strerror or exc})") from None
    return created


class _Progress:
    """Per-song progress: a bar on a terminal, a few plain lines otherwise, nothing when quiet."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self._bar: Any = None
        self._next = 0.25

    def start(self, label: str, total: int | None, rate: int) -> Callable[[int, int | None], None] | None:
        self.label, self.rate, self._next = label, rate, 0.25
        if self.quiet or not total or total / rate < PROGRESS_MIN_SECONDS:
            return None
        if self.tty:
            from tqdm import tqdm

            self._bar = tqdm(total=round(total / rate, 1), unit="s", desc=label, file=sys.stderr, leave=False)
        return self._update

    def _update(self, done: int, total: int | None) -> None:
        if self._bar is not None:
            self._bar.update(round(done / self.rate, 1) - self._bar.n)
        elif total and done / total >= self._next:
            print(f"{self.label}: {int(100 * self._next)}% ({done / self.rate:.0f} of {total / self.rate:.0f} s)",
                  flush=True)
            while done / total >= self._next:
                self._next += 0.25

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def run(args: argparse.Namespace) -> int:
    from stemstream.bridge.files.crate import assign_names, is_done, scan
    from stemstream.bridge.files.sinks import OutputFormat
    from stemstream.bridge.files.song import remove_if_empty, run_song

    lo, hi = BLOCK_RANGE
    if not lo <= args.block_size <= hi:
        raise bad_value("--block-size", args.block_size, f"an integer in [{lo}, {hi}] samples")
    if not 1 <= args.threads <= 256:
        raise bad_value("--threads", args.threads, "an integer in [1, 256]")
    fmt = OutputFormat(args.format, args.bit_depth, args.codec)
    out = Path(args.out)
    sources, missing = scan(args.inputs, out)
    if not sources and not missing:
        raise StemstreamError(f"inputs={args.inputs!r}: no audio files found (searched for "
                              "WAV, FLAC, OGG, MP3, M4A, AIFF... in the folders given)")
    for path in missing:
        print(f"stemstream: error: input={str(path)!r}: file not found", file=sys.stderr)
    if not sources:
        return 2
    created = prepare_out(out)
    try:
        model = _open_model(args, fmt)
    except BaseException:
        remove_if_empty(created)
        raise
    stems = tuple(model.info.stems)
    settings = {"model": model.info.name, "weights": _weights_checksum(args), "stems": list(stems), **fmt.settings()}
    songs = assign_names(sources, out)
    total = len(songs) + len(missing)
    print(f"{total} song{'s' * (total != 1)} -> {out}/ as {fmt.describe()} ({', '.join(stems)}); model "
          f"{model.info.name!r} on backend {runtime_name(model)} (--backend {args.backend}), block {args.block_size}")
    separators: dict[tuple[int, int], Any] = {}

    def separator_for(rate: int, channels: int) -> Any:
        from stemstream.realtime.engine.streamer import StreamingSeparator

        if (rate, channels) not in separators:
            separators[(rate, channels)] = sep = StreamingSeparator(model, rate, channels)
            _print_latency(sep, model, args.block_size)
        return separators[(rate, channels)]

    failed, done, skipped = len(missing), 0, 0
    seconds = compute = 0.0
    progress = _Progress(args.quiet)
    try:
        for i, song in enumerate(songs, start=len(missing) + 1):
            tag = f"[{i}/{total}]"
            where = out / (f"{song.name}.stem.mp4" if fmt.stem_file else f"{song.name}/")
            if not args.force and is_done(out, song, settings):
                skipped += 1
                print(f"{tag} skipped {song.source}: done in {where} (--force separates it again)")
                continue
            try:
                result = run_song(song, out, stems, fmt, settings, separator_for, args.block_size,
                                  _Starter(progress, f"{tag} {song.name}"))
            except StemstreamError as exc:
                failed += 1
                print(f"{tag} failed {song.source}")
                print(f"stemstream: error: {exc}", file=sys.stderr)
                continue
            finally:
                progress.stop()
            done += 1
            seconds += result.seconds
            compute += result.compute_s
            _print_song(tag, result, where)
    except KeyboardInterrupt:
        print(f"interrupted: {done} separated, {skipped} skipped, {failed} failed; run the same command again to "
              "resume (songs done are skipped)")
        raise
    finally:
        remove_if_empty(created)  # only if nothing at all was written there
    _print_summary(done, skipped, failed, seconds, compute)
    if failed == 0:
        return 0
    return 1 if done + skipped > 0 else 2


class _Starter:
    """``run_song``'s progress callback: starts the bar on the first call, when the length is known."""

    def __init__(self, progress: _Progress, label: str) -> None:
        self.progress, self.label = progress, label
        self._update: Callable[[int, int | None], None] | None = None
        self._started = False

    def __call__(self, done: int, total: int | None, rate: int) -> None:
        if not self._started:
            self._started = True
            self._update = self.progress.start(self.label, total, rate)
        if self._update is not None:
            self._update(done, total)


def _open_model(args: argparse.Namespace, fmt: Any) -> Any:
    import torch

    from stemstream.bridge.cli.stem_choice import with_stems

    torch.set_num_threads(args.threads)
    model = with_stems(_load(_model_name(args), args.backend), args.stems)
    if fmt.stem_file:
        from stemstream.bridge.files.sources import ffmpeg_path
        from stemstream.bridge.files.stem_mp4 import stem_order
        from stemstream.realtime.errors import MissingDependencyError

        stem_order(tuple(model.info.stems))
        if ffmpeg_path() is None:
            raise MissingDependencyError("--format stem.mp4 needs ffmpeg, which is not installed "
                                         "(Debian/Ubuntu: apt install ffmpeg)")
    return model


def _model_name(args: argparse.Namespace) -> str:
    """``--model``, or the default model of the stems asked for with the post-filter
    (:data:`FILE_POST_FILTER`): a file does not mind the delay it adds."""
    from stemstream.bridge.cli.stem_choice import asked_stems
    from stemstream.realtime.models.registry import default_model

    return args.model or default_model(asked_stems(args.stems)) + FILE_POST_FILTER


def _weights_checksum(args: argparse.Namespace) -> str | None:
    """The checksum stored in the model's weight file (so songs done with other weights are not
    done); None where there is none to read."""
    from stemstream.realtime.models.registry import model_card

    try:
        from safetensors import safe_open

        path = model_card(_model_name(args)).path
        with safe_open(path, "np") as f:
            return (f.metadata() or {}).get("checksum")
    except Exception:  # noqa: BLE001 - a missing checksum only means "compare by name"
        return None


def _print_latency(separator: Any, model: Any, block_size: int) -> None:
    rate = separator.host_sample_rate
    print(f"latency: {separator.latency_ms:.2f} ms ({separator.latency_samples} samples at {rate} Hz; "
          f"model {model.info.latency_ms:.2f} ms{', with resampling' if separator.resampling else ''})")
    if getattr(model, "kind", "hop") == "segment":
        buffered = separator.max_pending_samples(block_size)
        print(f"live, a segment model also buffers up to {1000.0 * buffered / rate:.2f} ms ({buffered} samples) "
              "until each segment is complete (stemstream live adds it to the reported latency)")


def _print_song(tag: str, result: Any, where: Path) -> None:
    rtf = result.compute_s / max(result.seconds, 1e-9)
    layout = "mono" if result.channels == 1 else "stereo"
    print(f"{tag} separated {result.song.source} ({result.seconds:.2f} s, {result.sample_rate} Hz {layout}) in "
          f"{result.compute_s:.2f} s (real-time factor {rtf:.3f}) -> {where} ({len(result.outputs)} "
          f"file{'s' * (len(result.outputs) != 1)})")
    if result.nonfinite_in:
        print(f"{tag} replaced {result.nonfinite_in} non-finite input samples (NaN/Inf) with 0")
    if result.nonfinite_out:
        print(f"{tag} replaced {result.nonfinite_out} non-finite output samples with 0 (a model fault)")
    if result.clipped:
        print(f"{tag} clipped {result.clipped} stem samples above full scale (--bit-depth 32f keeps them)")


def _print_summary(done: int, skipped: int, failed: int, seconds: float, compute: float) -> None:
    print(f"crate: {done} separated, {skipped} skipped (done), {failed} failed")
    if done:
        rtf = compute / max(seconds, 1e-9)
        print(f"real-time factor: {rtf:.3f} ({compute:.2f} s compute for {seconds:.2f} s of audio, "
              f"{1 / max(rtf, 1e-9):.1f}x real time)")
