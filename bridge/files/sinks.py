"""Writing a song's stems block by block, each to a temporary renamed into place when complete.

``OutputFormat`` is what a user asks for (``--format``, ``--bit-depth``, ``--codec``), checked at
construction. A sink opens every output file as a temporary in the destination folder *before*
anything is computed (so an unwritable folder, a full disk at open time or a path libsndfile
refuses fails first), writes each block as it comes, and on :meth:`StemSink.commit` closes and
renames the temporaries to their final names; :meth:`StemSink.abort` deletes them. A finished
name therefore only ever holds a complete file.

PCM output (16 or 24 bit) is clipped to [-1, 1] (libsndfile would wrap around above full scale)
and the clipped samples are counted; 32-bit float keeps stems above full scale as they are.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from stemstream.realtime.errors import bad_value
from stemstream.realtime.files import give_default_mode

#: ``--format`` values: one file per stem (``wav``, ``flac``) or one NI Stems file (``stem.mp4``).
FORMATS: tuple[str, ...] = ("wav", "flac", "stem.mp4")
#: ``--bit-depth`` values each format (and stem.mp4 codec) accepts; the first is the default.
BIT_DEPTHS: dict[str, tuple[str, ...]] = {
    "wav": ("32f", "24", "16"),  # 32-bit float first: what `separate` has always written
    "flac": ("24", "16"),
    "stem.mp4/aac": (),
    "stem.mp4/alac": ("24", "16"),
}
#: stem.mp4 codecs: ffmpeg's native AAC encoder (lossy, what NI's own files use) or ALAC (lossless).
CODECS: tuple[str, ...] = ("aac", "alac")
#: libsndfile subtype per bit depth.
SUBTYPES: dict[str, str] = {"16": "PCM_16", "24": "PCM_24", "32f": "FLOAT"}
#: Largest stem a plain WAV file holds (its sizes are 32-bit); longer stems are written as RF64
#: (the 64-bit WAV every DAW reads; at 32-bit float stereo, songs longer than about 3.3 hours).
WAV_MAX_BYTES = 0xFFFFFFFF - (1 << 20)


@dataclass(frozen=True)
class OutputFormat:
    """What is written per song.

    Attributes:
        format: ``wav`` / ``flac`` (``OUT/<song>/<stem>.<ext>``) or ``stem.mp4`` (``OUT/<song>.stem.mp4``).
        bit_depth: ``16``, ``24`` or ``32f`` (wav only); None: the format's default (wav 32f,
            flac 24, ALAC 24; AAC has none).
        codec: stem.mp4 only: ``aac`` (default) or ``alac``.
    """

    format: str = "wav"
    bit_depth: str | None = None
    codec: str | None = None

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise bad_value("format", self.format, f"one of {', '.join(FORMATS)}")
        if self.codec is not None and (self.format != "stem.mp4" or self.codec not in CODECS):
            raise bad_value("codec", self.codec, f"{' or '.join(CODECS)}, with --format stem.mp4 only")
        allowed = BIT_DEPTHS[self._key]
        if self.bit_depth is not None and self.bit_depth not in allowed:
            what = f"one of {', '.join(allowed)} for {self._key}" if allowed else f"no bit depth for {self._key} (lossy)"
            raise bad_value("bit_depth", self.bit_depth, what)

    @property
    def _key(self) -> str:
        return f"stem.mp4/{self.codec or 'aac'}" if self.format == "stem.mp4" else self.format

    @property
    def depth(self) -> str | None:
        """The bit depth written (the default filled in); None for AAC."""
        allowed = BIT_DEPTHS[self._key]
        return self.bit_depth or (allowed[0] if allowed else None)

    @property
    def stem_file(self) -> bool:
        """True for one NI Stems file per song, False for one file per stem."""
        return self.format == "stem.mp4"

    def describe(self) -> str:
        """E.g. ``wav 32f``, ``flac 24``, ``stem.mp4 aac``, ``stem.mp4 alac 24``."""
        parts = [self.format] + ([self.codec or "aac"] if self.stem_file else []) + ([self.depth] if self.depth else [])
        return " ".join(p for p in parts if p)

    def settings(self) -> dict[str, Any]:
        """The fields a manifest records (a song is done only with the same ones)."""
        return {"format": self.format, "bit_depth": self.depth, "codec": (self.codec or "aac") if self.stem_file else None}


class StemSink(Protocol):
    """Where one song's stems go. ``outputs``: the final paths, known before anything is written."""

    outputs: tuple[Path, ...]
    #: Whether :meth:`write` needs the mixture (the stem.mp4 container holds it).
    needs_mix: bool
    #: Samples clipped to full scale so far (PCM output only).
    clipped_samples: int

    def write(self, stems: np.ndarray, mix: np.ndarray | None) -> None:
        """Append ``stems`` ``(stems, channels, n)`` (and the mixture ``(channels, n)``)."""
        ...

    def commit(self) -> list[Path]:
        """Finish every file and move it to its final name; returns the final paths."""
        ...

    def abort(self) -> None:
        """Drop everything written (temporaries deleted, final names untouched)."""
        ...


def temp_path(dest: Path) -> Path:
    """A fresh hidden temporary beside ``dest`` (``.NAME.XXXX.part.EXT``), created with the mode a
    plain ``open()`` would give (``mkstemp`` alone makes it 0600)."""
    ext = "".join(dest.suffixes[-2:]) if dest.name.endswith(".stem.mp4") else dest.suffix
    stem = dest.name[: len(dest.name) - len(ext)]
    fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=f".part{ext}", dir=dest.parent)
    os.close(fd)
    give_default_mode(tmp)
    return Path(tmp)


def is_temp_of(name: str, dest_name: str) -> bool:
    """Whether file ``name`` is a temporary :func:`temp_path` made for ``dest_name`` (a killed run's)."""
    ext = ".stem.mp4" if dest_name.endswith(".stem.mp4") else Path(dest_name).suffix
    stem = dest_name[: len(dest_name) - len(ext)]
    return name.startswith(f".{stem}.") and name.endswith(f".part{ext}") and len(name) > len(stem) + len(ext) + 7


def clip_count(x: np.ndarray) -> tuple[np.ndarray, int]:
    """``x`` clipped to [-1, 1] (a copy only where needed) and how many samples were beyond."""
    over = int(np.count_nonzero(np.abs(x) > 1.0))
    return (np.clip(x, -1.0, 1.0) if over else x), over


class SoundFileSink:
    """One WAV or FLAC file per stem: ``folder/<stem>.<ext>``.

    Args:
        folder: the song's folder (must exist).
        stems: stem names, in the order of the blocks' first axis.
        sample_rate: Hz. channels: 1 or 2. fmt: ``wav`` or ``flac`` output.
        frames: the song's length in samples where known (a WAV stem too long for WAV's 32-bit
            sizes is written as RF64).
    """

    needs_mix = False

    def __init__(self, folder: Path, stems: tuple[str, ...], sample_rate: int, channels: int, fmt: OutputFormat,
                 frames: int | None = None) -> None:
        import soundfile as sf

        assert not fmt.stem_file and fmt.depth is not None
        self.subtype = SUBTYPES[fmt.depth]
        container = fmt.format.upper()
        if container == "WAV" and frames and wav_bytes(frames, channels, 1, fmt.depth) > WAV_MAX_BYTES:
            container = "RF64"
        self.pcm = fmt.depth != "32f"
        self.clipped_samples = 0
        self.outputs = tuple(folder / f"{name}.{fmt.format}" for name in stems)
        self._temps: list[Path] = []
        self._files: list[Any] = []
        try:
            for dest in self.outputs:
                tmp = temp_path(dest)
                self._temps.append(tmp)
                self._files.append(sf.SoundFile(str(tmp), "w", sample_rate, channels, self.subtype, format=container))
        except BaseException:
            self.abort()
            raise

    def write(self, stems: np.ndarray, mix: np.ndarray | None = None) -> None:
        for k, f in enumerate(self._files):
            x = stems[k]
            if self.pcm:
                x, over = clip_count(x)
                self.clipped_samples += over
            f.write(np.ascontiguousarray(x.T))

    def commit(self) -> list[Path]:
        for f in self._files:
            f.close()
        for tmp, dest in zip(self._temps, self.outputs):
            os.replace(tmp, dest)
        self._temps = []
        return list(self.outputs)

    def abort(self) -> None:
        for f in self._files:
            try:
                f.close()
            except Exception:  # noqa: BLE001 - a failed close (disk full) must not hide the first error
                pass
        for tmp in self._temps:
            tmp.unlink(missing_ok=True)
        self._temps = []


def wav_bytes(frames: int, channels: int, stems: int, depth: str) -> int:
    """What ``stems`` WAV files of ``frames`` samples take on disk (headers included, roughly)."""
    per_sample = {"16": 2, "24": 3, "32f": 4}[depth]
    return stems * (frames * channels * per_sample + 4096)
