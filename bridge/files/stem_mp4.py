"""The Native Instruments Stems container, ``<song>.stem.mp4``, written through one ffmpeg process.

The format (what Traktor, Mixxx and other DJ software load): an MP4 file with five stereo audio
tracks at one sample rate - track 1 the mixture (the only one enabled, so any other player plays
the song), tracks 2-5 the four stems - and a ``moov/udta/stem`` box holding JSON: ``version`` 1,
``stems`` (``name`` and ``color`` of tracks 2-5, in order) and ``mastering_dsp`` (a compressor and
a limiter DJ software may apply to the summed stems; written disabled, since our stems already
sum to the mixture). Codec: AAC (ffmpeg's native ``aac`` encoder, 256 kb/s per track) or ALAC.

Stem order: NI's slots are drums, bass, other (synths), vocals, with NI's default colours; the
DJ set is written in that order, the instrument set as drums, bass, guitar, piano. Mono songs are
written as two identical channels (DJ software expects stereo tracks).

How it is written, in bounded memory: the mixture and the stems go interleaved, ten float32
channels per sample, into ffmpeg's standard input; ffmpeg splits them into five stereo tracks
(``asplit`` + ``pan``), encodes and muxes them into a hidden temporary beside the destination.
When the stream ends, the ``stem`` box is added (``mp4_boxes.set_udta_box``) and the temporary is
renamed into place. ``mutagen`` cannot write this box (it edits ``ilst`` tags), and ``stempeg``
adds it with GPAC's ``MP4Box``, which Debian does not ship: hence our own box writer.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import IO, Any

import numpy as np

from stemstream.bridge.files.mp4_boxes import read_box_payload, set_udta_box
from stemstream.bridge.files.sinks import OutputFormat, temp_path
from stemstream.bridge.files.sources import ffmpeg_path
from stemstream.realtime.errors import MissingDependencyError, StemstreamError, bad_value
from stemstream.realtime.stems import DJ_STEMS, INSTRUMENT_STEMS

#: NI's slot order for the DJ set, and ours for the instrument set (drums and bass in NI's slots).
STEM_ORDERS: tuple[tuple[str, ...], ...] = (("drums", "bass", "other", "vocals"), ("drums", "bass", "guitar", "piano"))
#: NI's default colours of slots 1-4 (tracks 2-5).
SLOT_COLORS: tuple[str, ...] = ("#009E73", "#D55E00", "#CC79A7", "#56B4E9")
#: AAC bit rate per track (each of the five), bits per second.
AAC_BITRATE = 256_000
#: Sample rates ffmpeg's AAC encoder takes; other rates are written at 48 kHz.
AAC_RATES: frozenset[int] = frozenset({7350, 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000,
                                       88200, 96000})
#: The ``stem`` box's type, and the path DJ software reads it from.
STEM_BOX = b"stem"
STEM_BOX_PATH = (b"moov", b"udta", STEM_BOX)


def stem_order(stems: tuple[str, ...]) -> tuple[str, ...]:
    """The four stems of a stem.mp4 in track order, or a ``ConfigError``: the container holds
    exactly four stems that make up the whole mix (the DJ set, or the instrument set)."""
    for order in STEM_ORDERS:
        if sorted(stems) == sorted(order):
            return order
    raise bad_value("stems", ",".join(stems), f"exactly four stems that make up the mix for --format stem.mp4: "
                    f"{','.join(DJ_STEMS)} (--stems dj) or {','.join(INSTRUMENT_STEMS)} (--stems instruments)")


def stem_metadata(order: tuple[str, ...]) -> dict[str, Any]:
    """NI's stem manifest for tracks 2-5 holding ``order``."""
    return {
        "version": 1,
        "mastering_dsp": {
            "compressor": {"enabled": False, "input_gain": 0.5, "output_gain": 0.5, "threshold": 0.0,
                           "dry_wet": 50, "attack": 0.003, "release": 0.3, "ratio": 3.0, "hp_cutoff": 300},
            "limiter": {"enabled": False, "threshold": 0.0, "ceiling": -0.35, "release": 0.05},
        },
        "stems": [{"name": name.capitalize(), "color": color} for name, color in zip(order, SLOT_COLORS)],
    }


def read_stem_metadata(path: str | Path) -> dict[str, Any] | None:
    """The NI stem manifest of a ``.stem.mp4`` (None: no ``moov/udta/stem`` box)."""
    payload = read_box_payload(path, STEM_BOX_PATH)
    return None if payload is None else json.loads(payload.rstrip(b"\0").decode("utf-8"))


def _ffmpeg_command(executable: str, rate: int, out_rate: int, fmt: OutputFormat, order: tuple[str, ...],
                    dest: Path, tags_from: Path | None) -> list[str]:
    graph = "[0:a]asplit=5" + "".join(f"[i{k}]" for k in range(5))
    for k in range(5):
        graph += f";[i{k}]pan=stereo|c0=c{2 * k}|c1=c{2 * k + 1}"
        graph += f",aresample={out_rate}[o{k}]" if out_rate != rate else f"[o{k}]"
    cmd = [executable, "-nostdin", "-hide_banner", "-v", "error", "-y",
           "-f", "f32le", "-ar", str(rate), "-ac", "10", "-i", "pipe:0"]
    if tags_from is not None:  # the song's own tags (title, artist...) on the container
        cmd += ["-i", f"file:{tags_from}", "-map_metadata", "1"]
    cmd += ["-filter_complex", graph]
    for k in range(5):
        cmd += ["-map", f"[o{k}]"]
    if (fmt.codec or "aac") == "aac":
        cmd += ["-c:a", "aac", "-b:a", str(AAC_BITRATE)]
    else:
        cmd += ["-c:a", "alac", "-sample_fmt", "s16p" if fmt.depth == "16" else "s32p"]
    for k, name in enumerate(("mixture",) + order):
        cmd += [f"-metadata:s:a:{k}", f"handler_name={name.capitalize()}"]
    return cmd + ["-f", "mp4", f"file:{dest}"]


class StemMp4Sink:
    """One song's ``.stem.mp4``: the mixture and four stems, written block by block.

    Args:
        dest: the final path (``OUT/<song>.stem.mp4``); its folder must exist.
        stems: stem names in the order of the blocks' first axis (the four of a set, any order).
        sample_rate: Hz. channels: 1 or 2 (mono is written as stereo).
        fmt: a ``stem.mp4`` :class:`OutputFormat` (codec, ALAC bit depth).
        tags_from: the song's file, whose tags are copied onto the container (None: none).
    """

    needs_mix = True

    def __init__(self, dest: Path, stems: tuple[str, ...], sample_rate: int, channels: int, fmt: OutputFormat,
                 tags_from: Path | None = None) -> None:
        assert fmt.stem_file
        executable = ffmpeg_path()
        if executable is None:
            raise MissingDependencyError("--format stem.mp4 needs ffmpeg, which is not installed "
                                         "(Debian/Ubuntu: apt install ffmpeg)")
        self.order = stem_order(stems)
        self._index = [stems.index(name) for name in self.order]
        self.channels = channels
        self.clipped_samples = 0
        self.outputs = (dest,)
        self.sample_rate = sample_rate
        aac = (fmt.codec or "aac") == "aac"
        self.out_rate = sample_rate if (not aac or sample_rate in AAC_RATES) else 48000
        self._tmp: Path | None = temp_path(dest)
        self._stderr: IO[bytes] = tempfile.TemporaryFile()
        try:
            cmd = _ffmpeg_command(executable, sample_rate, self.out_rate, fmt, self.order, self._tmp, tags_from)
            self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._stderr)
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            self._stderr.close()
            raise

    def _ffmpeg_error(self, what: str) -> StemstreamError:
        self._stderr.seek(0)
        lines = self._stderr.read().decode(errors="replace").strip().splitlines()
        return StemstreamError(f"output={str(self.outputs[0])!r}: ffmpeg {what} ({lines[-1] if lines else 'no message'})")

    def write(self, stems: np.ndarray, mix: np.ndarray | None) -> None:
        assert mix is not None and mix.shape[1] == stems.shape[2]
        n = mix.shape[1]
        frame = np.empty((n, 5, 2), dtype="<f4")
        tracks = [mix] + [stems[k] for k in self._index]
        for k, x in enumerate(tracks):
            frame[:, k, :] = x.T if self.channels == 2 else x[0][:, None]
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(frame.tobytes())
        except BrokenPipeError:
            self._proc.wait()
            raise self._ffmpeg_error("stopped") from None

    def commit(self) -> list[Path]:
        assert self._proc.stdin is not None and self._tmp is not None
        try:
            self._proc.stdin.close()
        except BrokenPipeError:
            pass
        if self._proc.wait() != 0:
            raise self._ffmpeg_error(f"failed with exit code {self._proc.returncode}")
        self._stderr.close()
        set_udta_box(self._tmp, STEM_BOX, json.dumps(stem_metadata(self.order)).encode("utf-8"))
        os.replace(self._tmp, self.outputs[0])
        self._tmp = None
        return list(self.outputs)

    def abort(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        if self._proc.stdin is not None:
            try:
                self._proc.stdin.close()
            except OSError:
                pass
        if not self._stderr.closed:
            self._stderr.close()
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None
