"""Reading audio files into ``(channels, samples)`` float32, and writing them atomically.

Reading: anything ``soundfile`` (libsndfile) reads - WAV, FLAC, OGG/Vorbis, MP3 (libsndfile
>= 1.1), AIFF... A missing, unreadable, corrupt or empty file raises ``AudioInputError``
with the path and the reason.

Writing: every file is first written to a temporary file in the destination folder and moved
into place with ``os.replace`` (atomic on one file system). :func:`write_files_atomic`
writes a set of files all-or-nothing: every file is written to its temporary first; on any
failure the temporaries are removed (and, should a rename fail half-way, the files this call
already moved into place), so a failed run leaves no half-written output.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Mapping

import numpy as np

from stemstream.realtime.errors import AudioInputError, StemstreamError
from stemstream.realtime.files import give_default_mode


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Read ``path`` -> ``(audio (channels, samples) float32, sample_rate Hz)``."""
    import soundfile as sf

    p = Path(path)
    if not p.exists():
        raise AudioInputError(f"input={str(p)!r}: file not found")
    if p.is_dir():
        raise AudioInputError(f"input={str(p)!r}: is a directory, expected an audio file")
    try:
        data, rate = sf.read(str(p), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError, OSError) as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise AudioInputError(f"input={str(p)!r}: cannot read audio ({reason})") from None
    if data.shape[0] == 0 or data.shape[1] == 0:
        raise AudioInputError(f"input={str(p)!r}: the file holds no audio samples")
    return np.ascontiguousarray(data.T), int(rate)


def _write_temp(path: Path, audio: np.ndarray, sample_rate: int, subtype: str) -> Path:
    import soundfile as sf

    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".part" + path.suffix, dir=path.parent)
    os.close(fd)
    try:
        give_default_mode(tmp)  # mkstemp creates 0600; a finished stem file should read like any other
        sf.write(tmp, np.ascontiguousarray(np.asarray(audio, dtype=np.float32).T), sample_rate,
                 subtype=subtype, format=_format_of(path))
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def _format_of(path: Path) -> str:
    ext = path.suffix.lower().lstrip(".")
    return {"wav": "WAV", "flac": "FLAC", "ogg": "OGG", "aiff": "AIFF", "aif": "AIFF"}.get(ext, "WAV")


def write_files_atomic(files: Mapping[str | Path, np.ndarray], sample_rate: int, subtype: str = "FLOAT") -> list[Path]:
    """Write each ``path -> audio (channels, samples)`` all-or-nothing; returns the paths.

    ``subtype``: soundfile subtype (``FLOAT`` keeps stems above full scale unclipped;
    ``PCM_16``/``PCM_24`` for smaller files).
    """
    for dest in files:
        if Path(dest).is_dir():
            raise StemstreamError(f"output={str(dest)!r}: is a directory, cannot write a file there")
    temps: list[tuple[Path, Path]] = []
    moved: list[Path] = []
    try:
        for dest, audio in files.items():
            dest = Path(dest)
            audio = np.asarray(audio)
            if audio.ndim != 2:
                raise AudioInputError(f"audio for {str(dest)!r}: shape {audio.shape!r}, expected (channels, samples)")
            temps.append((_write_temp(dest, audio, sample_rate, subtype), dest))
        for tmp, dest in temps:
            os.replace(tmp, dest)
            moved.append(dest)
    except BaseException as exc:
        for tmp, _ in temps:
            tmp.unlink(missing_ok=True)
        for dest in moved:  # a rename failed half-way: take back this run's files
            dest.unlink(missing_ok=True)
        import soundfile as sf

        if isinstance(exc, (OSError, sf.SoundFileError)):  # libsndfile's errors are not OSErrors
            raise StemstreamError(f"cannot write output files ({exc})") from None
        raise
    return [dest for _, dest in temps]


def write_audio_atomic(path: str | Path, audio: np.ndarray, sample_rate: int, subtype: str = "FLOAT") -> Path:
    """Write one file atomically (see :func:`write_files_atomic`)."""
    return write_files_atomic({path: audio}, sample_rate, subtype)[0]
