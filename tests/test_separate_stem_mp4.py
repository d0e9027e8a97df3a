"""`--format stem.mp4`: the NI Stems container - five stereo tracks (the mixture, then drums, bass,
other, vocals), NI's ``moov/udta/stem`` metadata as DJ software reads it, the stems back through
ffmpeg (AAC: close; ALAC: exact), and the MP4 box writer on its own."""

from __future__ import annotations

import io
import json
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from stemstream.bridge.files import stem_mp4
from stemstream.bridge.files.mp4_boxes import find_box, iter_boxes, make_box, read_box_payload, set_udta_box
from stemstream.bridge.files.stem_mp4 import read_stem_metadata
from stemstream.realtime.errors import StemstreamError
from tests.separate_support import files_under, separate, song, tiny_dj_weights  # noqa: F401 - a fixture

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
NI_ORDER = ("drums", "bass", "other", "vocals")


def _streams(path: Path) -> list[dict]:
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries",
                            "stream=index,codec_type,codec_name,channels,sample_rate:stream_disposition=default",
                            "-of", "json", str(path)], capture_output=True, text=True, check=True)
    return json.loads(probe.stdout)["streams"]


def _decode(path: Path, index: int) -> np.ndarray:
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", f"0:a:{index}", "-f", "f32le", "-"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(raw, "<f4").reshape(-1, 2)


def _snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    n = min(len(reference), len(estimate))
    err = reference[:n] - estimate[:n]
    return float(10 * np.log10(np.sum(reference[:n] ** 2) / max(np.sum(err**2), 1e-20)))


def _mp4(tmp_path: Path, *boxes: bytes) -> Path:
    path = tmp_path / "t.mp4"
    path.write_bytes(b"".join(boxes))
    return path


def test_box_writer_adds_and_replaces_the_stem_box(tmp_path: Path) -> None:
    ftyp = make_box(b"ftyp", b"isom\0\0\2\0isomiso2mp41")
    mdat = make_box(b"mdat", bytes(range(256)) * 4)
    meta = make_box(b"meta", b"\0\0\0\0" + make_box(b"hdlr", bytes(25)))
    moov = make_box(b"moov", make_box(b"mvhd", bytes(100)) + make_box(b"trak", bytes(40)) + make_box(b"udta", meta))
    path = _mp4(tmp_path, ftyp, mdat, moov)
    set_udta_box(path, b"stem", b'{"version": 1}')
    assert read_box_payload(path, (b"moov", b"udta", b"stem")) == b'{"version": 1}'
    assert read_box_payload(path, (b"moov", b"udta", b"meta"))[:4] == b"\0\0\0\0"  # the tags kept
    set_udta_box(path, b"stem", b'{"version": 2}')  # replaced, not added twice
    with open(path, "rb") as f:
        udta = find_box(f, (b"moov", b"udta"))
        assert [b.type for b in iter_boxes(f, udta.payload_offset, udta.end)] == [b"meta", b"stem"]
        assert [b.type for b in iter_boxes(f, 0, path.stat().st_size)] == [b"ftyp", b"mdat", b"moov"]
    assert path.read_bytes()[: len(ftyp) + len(mdat)] == ftyp + mdat  # media data never moves

    bare = _mp4(tmp_path, ftyp, mdat, make_box(b"moov", make_box(b"mvhd", bytes(100))), make_box(b"free", bytes(8)))
    set_udta_box(bare, b"stem", b"{}")  # no udta yet: created; trailing padding dropped
    assert read_box_payload(bare, (b"moov", b"udta", b"stem")) == b"{}"
    with pytest.raises(StemstreamError, match="moov is not the last box"):
        set_udta_box(_mp4(tmp_path, ftyp, moov, mdat), b"stem", b"{}")  # faststart layout: refused
    big = struct.pack(">I4sQ", 1, b"mdat", 16 + 8) + bytes(8)  # a 64-bit size is read as such
    assert [b.type for b in iter_boxes(io.BytesIO(big + moov), 0, len(big) + len(moov))] == [b"mdat", b"moov"]


@needs_ffmpeg
@pytest.mark.parametrize("channels", [2, 1])
def test_stem_mp4_has_five_tracks_and_ni_metadata(tmp_path: Path, tiny_dj_weights: Path, capsys, channels: int) -> None:
    src = song(tmp_path / "Track One.wav", seconds=1.0, channels=channels, seed=5, level=0.1, tonal=True)
    out = tmp_path / "out"
    code, _, err = separate(capsys, src, "-o", out, "--model", tiny_dj_weights, "--format", "stem.mp4")
    assert code == 0, err
    assert files_under(out) == sorted([".stemstream", ".stemstream/Track One.json", "Track One.stem.mp4"])
    stem_file = out / "Track One.stem.mp4"
    streams = _streams(stem_file)
    assert [(s["codec_type"], s["codec_name"], s["channels"], int(s["sample_rate"])) for s in streams] == \
        [("audio", "aac", 2, 44100)] * 5
    assert [s["disposition"]["default"] for s in streams] == [1, 0, 0, 0, 0]  # players play the mixture
    meta = read_stem_metadata(stem_file)
    assert meta["version"] == 1 and [s["name"] for s in meta["stems"]] == ["Drums", "Bass", "Other", "Vocals"]
    assert [s["color"] for s in meta["stems"]] == ["#009E73", "#D55E00", "#CC79A7", "#56B4E9"]
    assert meta["mastering_dsp"]["compressor"]["enabled"] is False and meta["mastering_dsp"]["limiter"]["enabled"] is False

    code, _, _ = separate(capsys, src, "-o", tmp_path / "wav", "--model", tiny_dj_weights)  # the same stems as WAV
    mixture = sf.read(src, dtype="float32", always_2d=True)[0]
    references = [np.repeat(mixture, 2 // channels, axis=1)] + [
        np.repeat(sf.read(tmp_path / "wav" / "Track One" / f"{s}.wav", dtype="float32", always_2d=True)[0],
                  2 // channels, axis=1) for s in NI_ORDER]
    for k, reference in enumerate(references):  # lossy: close and aligned, not equal
        decoded = _decode(stem_file, k)
        assert 0 <= len(decoded) - len(reference) < 2048  # ffmpeg decodes whole AAC frames
        snr = [_snr_db(reference, decoded[lag:]) for lag in (0, 1)] + [_snr_db(reference[1:], decoded)]
        assert snr[0] > 25.0 and snr[0] > max(snr[1:]) + 10, (k, snr)  # ~32-39 dB, and not a sample off
        if channels == 1:  # written as two identical channels
            assert _snr_db(decoded[:, :1], decoded[:, 1:]) > 15.0


@needs_ffmpeg
def test_stem_mp4_alac_is_lossless(tmp_path: Path, tiny_dj_weights: Path, capsys) -> None:
    src = song(tmp_path / "s.wav", seconds=0.5, seed=6)
    code, _, err = separate(capsys, src, "-o", tmp_path / "out", "--model", tiny_dj_weights, "--format", "stem.mp4",
                            "--codec", "alac")
    assert code == 0, err
    stem_file = tmp_path / "out" / "s.stem.mp4"
    assert {s["codec_name"] for s in _streams(stem_file)} == {"alac"}
    separate(capsys, src, "-o", tmp_path / "wav", "--model", tiny_dj_weights)
    for k, name in enumerate(NI_ORDER, start=1):
        reference = sf.read(tmp_path / "wav" / "s" / f"{name}.wav", dtype="float32")[0]
        np.testing.assert_allclose(_decode(stem_file, k), reference, atol=2.0**-22)  # 24 bit, sample-aligned


@needs_ffmpeg
def test_stem_mp4_refusals_and_ffmpeg_failures(tmp_path: Path, tiny_dj_weights: Path, tiny_live_weights: Path, capsys,
                                               monkeypatch) -> None:
    src = song(tmp_path / "s.wav")
    for argv, needle in ((["--stems", "vocals"], "exactly four stems"), (["--bit-depth", "24"], "no bit depth"),
                         (["--stems", "acapella"], "exactly four stems"), (["--codec", "flac"], "codec='flac'")):
        code, _, err = separate(capsys, src, "-o", tmp_path / "o", "--model", tiny_dj_weights, "--format", "stem.mp4",
                                *argv)
        assert code == 2 and len(err) == 1 and needle in err[0], err
    assert not (tmp_path / "o").exists()
    code, _, _ = separate(capsys, src, "-o", tmp_path / "inst", "--model", tiny_live_weights, "--format", "stem.mp4")
    assert code == 0 and [s["name"] for s in read_stem_metadata(tmp_path / "inst" / "s.stem.mp4")["stems"]] == \
        ["Drums", "Bass", "Guitar", "Piano"]

    fake = tmp_path / "ffmpeg"  # an encoder that gives up half-way, as on a full disk
    fake.write_text("#!/bin/sh\nhead -c 20000 > /dev/null\necho 'Error writing trailer: No space left on device' >&2\n"
                    "exit 1\n")
    fake.chmod(0o755)
    monkeypatch.setattr(stem_mp4, "ffmpeg_path", lambda: str(fake))
    code, _, err = separate(capsys, song(tmp_path / "long.wav", seconds=3.0), "-o", tmp_path / "full",
                            "--model", tiny_dj_weights, "--format", "stem.mp4")
    assert code == 2 and len(err) == 1 and "No space left on device" in err[0], err
    assert not (tmp_path / "full").exists()  # no temporary, no manifest, no folder
