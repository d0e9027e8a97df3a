"""Reading a song block by block: ``(channels, n)`` float32 at the file's own rate.

:func:`open_source` opens anything libsndfile reads (WAV, FLAC, OGG/Vorbis, MP3, AIFF, CAF...)
through ``soundfile``, and anything else ffmpeg decodes (M4A/AAC, ALAC, Opus, WMA...) through an
``ffmpeg`` process writing raw float32 to a pipe. Either way only one block is in memory at a
time. A missing, unreadable, corrupt or empty file raises ``AudioInputError`` naming the path
and the reason; more than two channels is refused (as ``stemstream separate`` always has).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import IO, Protocol

import numpy as np

from stemstream.realtime.errors import AudioInputError

#: File name endings a folder scan picks up (lower case, with the dot). ``.stem.mp4`` files are
#: stem files (ours, or a DJ's), not songs, and are left out of scans.
AUDIO_EXTENSIONS: frozenset[str] = frozenset({
    ".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc", ".caf",
    ".w64", ".m4a", ".aac", ".alac", ".wma", ".mka",
})

#: Largest channel count accepted (the engine takes mono or stereo).
MAX_CHANNELS = 2


class AudioSource(Protocol):
    """A song being read. ``frames`` is the length in samples per channel where the file says
    (ffmpeg's estimate from the duration for formats libsndfile does not read; None if unknown)."""

    path: Path
    sample_rate: int
    channels: int
    frames: int | None

    def read(self, n: int) -> np.ndarray:
        """The next ``(channels, m)`` float32 samples, ``m == n`` except at the end (0: the end)."""
        ...

    def close(self) -> None:
        """Release the file (and stop the decoder)."""
        ...


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[-1] if text else type(exc).__name__


class _CannotOpen(Exception):
    """Internal: one reader could not open a file (``open_source`` tries the next)."""


class SoundFileSource:
    """A file libsndfile reads, block by block."""

    def __init__(self, path: Path) -> None:
        import soundfile as sf

        self.path = path
        try:
            self._file = sf.SoundFile(str(path))
        except (sf.LibsndfileError, RuntimeError, ValueError, TypeError, OSError) as exc:
            raise _CannotOpen(_reason(exc).removeprefix(f"Error opening {str(path)!r}: ")) from None
        self.sample_rate = int(self._file.samplerate)
        self.channels = int(self._file.channels)
        self.frames: int | None = int(self._file.frames) if self._file.frames >= 0 else None

    def read(self, n: int) -> np.ndarray:
        import soundfile as sf

        try:
            data = self._file.read(n, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, ValueError, OSError) as exc:
            raise AudioInputError(f"input={str(self.path)!r}: cannot read audio ({_reason(exc)})") from None
        return np.ascontiguousarray(data.T)

    def close(self) -> None:
        self._file.close()


def ffmpeg_path() -> str | None:
    """The ``ffmpeg`` executable on ``PATH`` (None: not installed)."""
    return shutil.which("ffmpeg")


def _probe(path: Path) -> tuple[int, int, int | None]:
    """``(sample_rate, channels, frames or None)`` of ``path``'s first audio stream, by ffprobe."""
    probe = shutil.which("ffprobe")
    if probe is None:
        raise _CannotOpen("ffprobe not found; install ffmpeg")
    cmd = [probe, "-v", "error", "-select_streams", "a:0", "-show_entries",
           "stream=sample_rate,channels,duration:format=duration", "-of", "json", f"file:{path}"]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as exc:
        raise _CannotOpen(f"ffprobe: {_reason(exc)}") from None
    try:
        info = json.loads(result.stdout or "{}")
        stream = info["streams"][0]
        rate, channels = int(stream["sample_rate"]), int(stream["channels"])
    except (ValueError, KeyError, IndexError, TypeError):
        why = (result.stderr.strip().splitlines() or ["no audio stream"])[-1]
        raise _CannotOpen(f"ffmpeg: {why}") from None
    duration = stream.get("duration") or info.get("format", {}).get("duration")
    try:
        frames = int(round(float(duration) * rate)) if duration is not None else None
    except ValueError:
        frames = None
    return rate, channels, frames


class FfmpegSource:
    """A file ffmpeg decodes, read from its raw float32 output block by block."""

    def __init__(self, path: Path, executable: str) -> None:
        self.path = path
        self.sample_rate, self.channels, self.frames = _probe(path)
        self._stderr: IO[bytes] = tempfile.TemporaryFile()
        cmd = [executable, "-nostdin", "-hide_banner", "-v", "error", "-i", f"file:{path}", "-map", "0:a:0",
               "-vn", "-f", "f32le", "-acodec", "pcm_f32le", "pipe:1"]
        try:
            self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._stderr)
        except OSError as exc:
            self._stderr.close()
            raise _CannotOpen(f"ffmpeg: {_reason(exc)}") from None

    def read(self, n: int) -> np.ndarray:
        assert self._proc.stdout is not None
        frame = 4 * self.channels
        data = self._proc.stdout.read(n * frame)
        if len(data) < n * frame:  # the end: the decoder must have finished cleanly
            code = self._proc.wait()
            if code != 0:
                self._stderr.seek(0)
                why = (self._stderr.read().decode(errors="replace").strip().splitlines() or [f"exit {code}"])[-1]
                raise AudioInputError(f"input={str(self.path)!r}: cannot read audio (ffmpeg: {why})")
            data = data[: len(data) - len(data) % frame]
        return np.frombuffer(data, dtype="<f4").reshape(-1, self.channels).T.astype(np.float32, order="C")

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        self._stderr.close()


def open_source(path: str | Path) -> AudioSource:
    """Open ``path`` for reading block by block (libsndfile first, then ffmpeg where installed)."""
    p = Path(path)
    if not p.exists():
        raise AudioInputError(f"input={str(p)!r}: file not found")
    if p.is_dir():
        raise AudioInputError(f"input={str(p)!r}: is a directory, expected an audio file")
    source: AudioSource
    try:
        source = SoundFileSource(p)
    except _CannotOpen as first:
        executable = ffmpeg_path()
        try:
            if executable is None:
                raise _CannotOpen("ffmpeg not installed") from None
            source = FfmpegSource(p, executable)
        except _CannotOpen as second:
            raise AudioInputError(f"input={str(p)!r}: cannot read audio ({first}; {second})") from None
    if source.channels > MAX_CHANNELS or source.channels < 1:
        source.close()
        raise AudioInputError(
            f"input={str(p)!r}: {source.channels} channels; expected mono or stereo (downmix it first)"
        )
    if source.frames == 0:
        source.close()
        raise AudioInputError(f"input={str(p)!r}: the file holds no audio samples")
    return source
