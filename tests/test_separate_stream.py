"""`stemstream separate` disk to disk: the stream equals the whole-array path, the written stems equal
what the in-memory separation gave before, and memory does not grow with the song's length."""

from __future__ import annotations

import shutil
import subprocess
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from stemstream.bridge.audio_files import read_audio
from stemstream.bridge.cli.main import main
from stemstream.bridge.files.crate import Song
from stemstream.bridge.files.sinks import OutputFormat
from stemstream.bridge.files.song import run_song
from stemstream.realtime.engine.offline import separate_array, separate_stream
from stemstream.realtime.engine.streamer import StreamingSeparator
from stemstream.realtime.models.registry import load_model
from stemstream.realtime.stems import STEMS
from tests.engine_support import ContextSegmentModel, SlowHopModel

torch.set_num_threads(1)


def _noise(seconds: float, rate: int, channels: int = 2, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.2 * rng.standard_normal((channels, int(seconds * rate)))).astype(np.float32)


@pytest.mark.parametrize("model,rate,channels,block", [
    (SlowHopModel(hop=64, latency=100), 44100, 2, 333),
    (SlowHopModel(hop=64, latency=100), 48000, 1, 4096),
    (ContextSegmentModel(segment=256, context=48, latency=10), 44100, 2, 1000),
])
def test_stream_equals_whole_array(model, rate: int, channels: int, block: int) -> None:
    x = _noise(0.3, rate, channels)
    whole = separate_array(model, x, rate, block)
    separator = StreamingSeparator(model, rate, channels)
    seen: list[int] = []
    pieces = list(separate_stream(separator, (x[:, s : s + block] for s in range(0, x.shape[1], block)), seen.append))
    streamed = np.concatenate(pieces, axis=2)
    assert streamed.shape == whole.shape == (len(STEMS), channels, x.shape[1])
    np.testing.assert_array_equal(streamed, whole)
    assert seen[-1] == x.shape[1] and all(p.shape[2] <= block + 4096 for p in pieces)


@pytest.mark.parametrize("rate,channels", [(44100, 2), (48000, 1)])
def test_written_stems_equal_the_in_memory_separation(tmp_path: Path, tiny_live_weights: Path, rate: int,
                                                      channels: int) -> None:
    """What `separate` wrote before it streamed (the whole file through ``separate_array``, then
    32-bit float WAV) is what it writes now, sample for sample."""
    src = tmp_path / "song.flac"
    sf.write(src, _noise(0.7, rate, channels).T, rate, subtype="PCM_24")
    out = tmp_path / "out"
    assert main(["separate", str(src), "-o", str(out), "--model", str(tiny_live_weights), "--block-size", "1000",
                 "--quiet"]) == 0
    audio, _ = read_audio(src)
    before = separate_array(load_model(str(tiny_live_weights), "auto"), audio, rate, 1000)
    for k, name in enumerate(STEMS):
        written, written_rate = read_audio(out / "song" / f"{name}.wav")
        assert written_rate == rate and sf.info(str(out / "song" / f"{name}.wav")).subtype == "FLOAT"
        np.testing.assert_allclose(written, before[k], rtol=0, atol=1e-6)


def _peak_bytes(tmp_path: Path, seconds: float) -> int:
    src = tmp_path / f"long-{seconds:g}.wav"
    sf.write(src, _noise(seconds, 44100).T, 44100, subtype="FLOAT")
    model = SlowHopModel(hop=1024, latency=100)
    out = tmp_path / f"out-{seconds:g}"
    out.mkdir()
    tracemalloc.start()
    try:
        result = run_song(Song(src, "long"), out, STEMS, OutputFormat("wav"), {}, lambda r, c: StreamingSeparator(model, r, c))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.samples == int(seconds * 44100) and sf.info(str(out / "long" / "bass.wav")).frames == result.samples
    return peak


def test_memory_does_not_grow_with_the_song(tmp_path: Path) -> None:
    short, long = _peak_bytes(tmp_path, 5.0), _peak_bytes(tmp_path, 60.0)
    whole_song = 60 * 44100 * 2 * 4  # one stereo float copy of the long song: 21 MB
    assert long < 1.25 * short + 256 * 1024, (short, long)
    assert long < whole_song / 4, long


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
def test_a_song_only_ffmpeg_reads(tmp_path: Path, tiny_live_weights: Path, capsys) -> None:
    wav = tmp_path / "in.wav"
    sf.write(wav, _noise(1.0, 44100).T, 44100)
    m4a = tmp_path / "tune.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(wav), "-c:a", "aac", str(m4a)], check=True)
    with pytest.raises(sf.LibsndfileError):
        sf.info(str(m4a))  # libsndfile cannot: the ffmpeg reader does
    assert main(["separate", str(m4a), "-o", str(tmp_path / "out"), "--model", str(tiny_live_weights), "--quiet"]) == 0
    decoded = subprocess.run(["ffmpeg", "-v", "error", "-i", str(m4a), "-f", "f32le", "-"], capture_output=True,
                             check=True).stdout
    frames = len(decoded) // 8
    stems = [sf.read(tmp_path / "out" / "tune" / f"{s}.wav", dtype="float32")[0] for s in STEMS]
    assert all(y.shape == (frames, 2) for y in stems)
    mix = np.frombuffer(decoded, "<f4").reshape(-1, 2)
    np.testing.assert_allclose(np.sum(stems, axis=0), mix, atol=1e-4)  # mixture consistency, aligned
