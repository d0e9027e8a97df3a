"""One song from disk to disk: its source through the streaming engine into its sink.

:func:`run_song` opens the song, creates its folder and manifest, opens every output (the write
probe: done before anything is computed), then streams block by block - read, separate
(``stemstream.realtime.engine.offline.separate_stream``, the engine ``live`` runs), write - and
commits. Memory is a few blocks whatever the song's length. On any failure, an interruption
included, the temporaries are deleted and what this song created (its folder, its first
manifest, ``OUT/.stemstream``) is removed again if empty; a finished name never holds a partial
file. Write failures of every kind - ``OSError`` (disk full, permissions, a name too long),
``soundfile.LibsndfileError`` (which is not an ``OSError``), ffmpeg stopping - become one
``StemstreamError`` naming the output.
"""

from __future__ import annotations

import shutil
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from stemstream.bridge.files.crate import (MANIFEST_DIR, Song, input_identity, manifest_path, outputs_of, read_manifest,
                                           write_manifest)
from stemstream.bridge.files.sinks import OutputFormat, SoundFileSink, StemSink, is_temp_of, wav_bytes
from stemstream.bridge.files.sources import AudioSource, open_source
from stemstream.realtime.engine.offline import separate_stream
from stemstream.realtime.engine.streamer import StreamingSeparator
from stemstream.realtime.errors import StemstreamError


#: Free space below which a failed write is reported as a full disk, in bytes.
DISK_FULL_BYTES = 1 << 20


@dataclass
class SongResult:
    """What one song took and gave."""

    song: Song
    sample_rate: int = 0
    channels: int = 0
    samples: int = 0
    compute_s: float = 0.0
    nonfinite_in: int = 0
    nonfinite_out: int = 0
    clipped: int = 0
    outputs: list[Path] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return self.samples / self.sample_rate if self.sample_rate else 0.0


def write_error(where: Path, exc: BaseException) -> StemstreamError:
    """One line for a failed write: the output and the system's reason."""
    if isinstance(exc, StemstreamError):
        return exc
    if isinstance(exc, OSError) and exc.strerror:
        reason = exc.strerror
    else:  # libsndfile says "System error." for a full disk: say what it is where we can tell
        text = str(exc).strip()
        reason = text.splitlines()[-1] if text else type(exc).__name__
        if reason.startswith("Error opening '") and "': " in reason:  # libsndfile repeats the path
            reason = reason.rsplit("': ", 1)[-1]
        try:
            free = shutil.disk_usage(where if where.is_dir() else where.parent).free
        except OSError:
            free = None
        if free is not None and free < DISK_FULL_BYTES:
            reason += f"; the disk is full: {free / 1e6:.1f} MB free"
    return StemstreamError(f"output={str(where)!r}: cannot write ({reason})")


def _write_errors() -> tuple[type[BaseException], ...]:
    import soundfile as sf

    return (OSError, sf.SoundFileError, StemstreamError)  # LibsndfileError is a SoundFileError, not an OSError


def make_dirs(path: Path) -> list[Path]:
    """``mkdir -p path``; returns the folders it created, outermost first."""
    created = []
    p = path
    while not p.exists():
        created.append(p)
        if p.parent == p:
            break
        p = p.parent
    created.reverse()
    for folder in created:
        folder.mkdir()
    return created


def remove_if_empty(folders: list[Path]) -> None:
    """Remove ``folders`` (innermost last in the list, removed first) that are empty."""
    for folder in reversed(folders):
        try:
            folder.rmdir()
        except OSError:
            pass


class _MixDelay:
    """The input, kept until the aligned stems of the same samples come out (stem.mp4 holds the
    mixture beside its stems). Holds at most the engine's latency plus a block or two."""

    def __init__(self) -> None:
        self._blocks: deque[np.ndarray] = deque()

    def push(self, block: np.ndarray) -> None:
        self._blocks.append(np.nan_to_num(block, nan=0.0, posinf=0.0, neginf=0.0))

    def pop(self, n: int) -> np.ndarray:
        pieces, need = [], n
        while need:
            head = self._blocks[0]
            take = min(need, head.shape[1])
            pieces.append(head[:, :take])
            if take == head.shape[1]:
                self._blocks.popleft()
            else:
                self._blocks[0] = head[:, take:]
            need -= take
        return np.concatenate(pieces, axis=1) if len(pieces) != 1 else pieces[0]


def _blocks(source: AudioSource, block_size: int, result: SongResult, mix: _MixDelay | None) -> Iterator[np.ndarray]:
    while True:
        block = source.read(block_size)
        if block.shape[1] == 0:
            return
        result.samples += block.shape[1]
        if mix is not None:
            mix.push(block)
        yield block


def open_sink(song: Song, out: Path, stems: tuple[str, ...], source: AudioSource, fmt: OutputFormat) -> StemSink:
    """The sink for ``song`` read from ``source`` (its folder must exist for wav/flac)."""
    rate, channels = source.sample_rate, source.channels
    if fmt.stem_file:
        from stemstream.bridge.files.stem_mp4 import StemMp4Sink

        return StemMp4Sink(out / f"{song.name}.stem.mp4", stems, rate, channels, fmt, tags_from=song.source)
    return SoundFileSink(out / song.name, stems, rate, channels, fmt, frames=source.frames)


def _clear_stale_temps(folder: Path, outputs: list[Path]) -> None:
    """Delete temporaries a killed run left for these outputs (only ours: the song's own names)."""
    try:
        names = [p.name for p in folder.iterdir()]
    except OSError:
        return
    for name in names:
        if any(is_temp_of(name, dest.name) for dest in outputs):
            (folder / name).unlink(missing_ok=True)


def run_song(
    song: Song,
    out: Path,
    stems: tuple[str, ...],
    fmt: OutputFormat,
    settings: dict[str, Any],
    separator_for: Callable[[int, int], StreamingSeparator],
    block_size: int = 4096,
    progress: Callable[[int, int | None, int], None] | None = None,
) -> SongResult:
    """Separate ``song`` into ``out`` (see the module docstring); ``stems`` in the separator's order.

    ``separator_for(sample_rate, channels)`` gives the engine for the song's format.
    ``progress(samples_done, samples_total or None, sample_rate)`` is called after each block.
    """
    result = SongResult(song)
    source = open_source(song.source)
    created: list[Path] = []
    wrote_manifest = False
    sink: StemSink | None = None
    try:
        result.sample_rate, result.channels = source.sample_rate, source.channels
        separator = separator_for(source.sample_rate, source.channels)
        outputs = outputs_of(out, song.name, stems, fmt.format)
        folder = outputs[0].parent
        errors = _write_errors()
        try:
            created += make_dirs(folder) + make_dirs(out / MANIFEST_DIR)
            if read_manifest(out, song.name) is None:  # claim the name before anything is written
                write_manifest(out, song.name, {"input": input_identity(song.source), "complete": False})
                wrote_manifest = True
            _clear_stale_temps(folder, outputs)
            if fmt.format == "wav" and source.frames:
                need = wav_bytes(source.frames, source.channels, len(stems), fmt.depth or "32f")
                free = shutil.disk_usage(folder).free
                if need > free:
                    raise StemstreamError(f"output={str(folder)!r}: the stems need {need / 1e6:.1f} MB, "
                                          f"{free / 1e6:.1f} MB free")
            sink = open_sink(song, out, stems, source, fmt)
        except errors as exc:
            raise write_error(folder, exc) from None
        mix = _MixDelay() if sink.needs_mix else None
        total = source.frames
        rate = source.sample_rate
        report = (lambda done: progress(done, total, rate)) if progress is not None else None
        t0 = time.perf_counter()
        before_in, before_out = separator.nonfinite_samples, separator.nonfinite_output_samples
        for chunk in separate_stream(separator, _blocks(source, block_size, result, mix), report):
            try:
                sink.write(chunk, mix.pop(chunk.shape[2]) if mix is not None else None)
            except errors as exc:
                raise write_error(folder, exc) from None
        if result.samples == 0:
            raise StemstreamError(f"input={str(song.source)!r}: the file holds no audio samples")
        try:
            write_manifest(out, song.name, {"input": input_identity(song.source), "complete": False})
            result.clipped = sink.clipped_samples
            result.outputs = sink.commit()
            sink, wrote_manifest = None, False  # the outputs are in place: the name stays theirs
            write_manifest(out, song.name, {
                "input": input_identity(song.source), "settings": settings, "complete": True,
                "outputs": {str(p.relative_to(out)): p.stat().st_size for p in result.outputs},
            })
        except errors as exc:
            raise write_error(folder, exc) from None
        result.compute_s = time.perf_counter() - t0
        result.nonfinite_in = separator.nonfinite_samples - before_in
        result.nonfinite_out = separator.nonfinite_output_samples - before_out
        return result
    except BaseException:
        if sink is not None:
            sink.abort()
        if wrote_manifest:
            manifest_path(out, song.name).unlink(missing_ok=True)
        remove_if_empty(created)
        raise
    finally:
        source.close()
