"""Plain IEEE-float WAV files: byte-reproducible writing and memory-mapped reading.

libsndfile adds a ``PEAK`` chunk with a time stamp to float WAVs, so the same audio gives
different bytes on each run; ``write_wav`` writes only ``fmt `` + ``fact`` + ``data``.
``open_wav`` memory-maps such a file (any plain PCM16/float32 WAV with a ``data`` chunk)
without reading it, which lets a training dataset address hours of audio cheaply.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from stemstream.realtime.errors import AudioInputError

_WAVE_FORMAT_PCM = 1
_WAVE_FORMAT_IEEE_FLOAT = 3
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int) -> None:
    """Write ``audio`` ``(channels, samples)`` as a 32-bit float WAV (same bytes for the
    same audio)."""
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim != 2:
        raise AudioInputError(f"audio.shape={x.shape!r}: expected (channels, samples)")
    channels, samples = x.shape
    data = np.ascontiguousarray(x.T).astype("<f4", copy=False).tobytes()
    fmt = struct.pack("<HHIIHH", _WAVE_FORMAT_IEEE_FLOAT, channels, sample_rate,
                      sample_rate * channels * 4, channels * 4, 32)
    fmt_chunk = b"fmt " + struct.pack("<I", len(fmt) + 2) + fmt + b"\0\0"
    fact_chunk = b"fact" + struct.pack("<II", 4, samples)
    body = b"WAVE" + fmt_chunk + fact_chunk + b"data" + struct.pack("<I", len(data))
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", len(body) + len(data)) + body)
        f.write(data)


def open_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Memory-map a WAV file: returns ``(frames, sample_rate)`` where ``frames`` is a
    read-only ``(samples, channels)`` float32 or int16 memmap. Raises ``AudioInputError``
    for files that are not plain PCM16/float32 WAVs."""
    p = Path(path)
    try:
        size = p.stat().st_size
        with open(p, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                raise AudioInputError(f"{str(p)!r}: not a RIFF/WAVE file")
            fmt = None
            offset = 12
            while offset + 8 <= size:
                f.seek(offset)
                cid, clen = struct.unpack("<4sI", f.read(8))
                if cid == b"fmt ":
                    fmt = struct.unpack("<HHIIHH", f.read(16))
                elif cid == b"data":
                    if fmt is None:
                        raise AudioInputError(f"{str(p)!r}: WAV data chunk before its fmt chunk")
                    tag, channels, rate, _, _, bits = fmt
                    if tag == _WAVE_FORMAT_EXTENSIBLE:
                        f.seek(offset + 8 + 24)
                        tag = struct.unpack("<H", f.read(2))[0]
                    if tag == _WAVE_FORMAT_IEEE_FLOAT and bits == 32:
                        dtype = np.dtype("<f4")
                    elif tag == _WAVE_FORMAT_PCM and bits == 16:
                        dtype = np.dtype("<i2")
                    else:
                        raise AudioInputError(f"{str(p)!r}: WAV format {tag}/{bits} bit: "
                                              "expected float32 or PCM16")
                    clen = min(clen, size - offset - 8)
                    frames = clen // (dtype.itemsize * channels)
                    if frames == 0:
                        raise AudioInputError(f"{str(p)!r}: WAV file has no audio")
                    mm = np.memmap(p, dtype=dtype, mode="r", offset=offset + 8,
                                   shape=(frames, channels))
                    return mm, int(rate)
                offset += 8 + clen + (clen & 1)
    except OSError as exc:
        raise AudioInputError(f"{str(p)!r}: cannot read ({exc.strerror})") from None
    except struct.error:
        raise AudioInputError(f"{str(p)!r}: truncated WAV header") from None
    raise AudioInputError(f"{str(p)!r}: WAV file has no data chunk")
