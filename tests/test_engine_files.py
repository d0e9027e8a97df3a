"""Audio files in and out, `stemstream separate` end to end, `stemstream bench latency` smoke run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from stemstream.bridge.audio_files import read_audio, write_files_atomic
from stemstream.bridge.cli.main import main
from stemstream.realtime.errors import AudioInputError, StemstreamError
from stemstream.realtime.files import process_umask
from stemstream.realtime.stems import STEMS

torch.set_num_threads(1)


def _song(rate: int, seconds: float = 0.5, channels: int = 2) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (0.2 * rng.standard_normal((channels, int(rate * seconds)))).astype(np.float32)


@pytest.mark.parametrize("fmt,subtype,tol", [("wav", "FLOAT", 0.0), ("flac", "PCM_24", 1e-6), ("ogg", "VORBIS", None)])
def test_read_formats(tmp_path: Path, fmt: str, subtype: str, tol) -> None:
    x = 0.5 * _song(44100)
    path = tmp_path / f"a.{fmt}"
    sf.write(path, x.T, 44100, subtype=subtype)
    y, rate = read_audio(path)
    assert rate == 44100 and y.dtype == np.float32 and y.shape[0] == 2
    if tol is not None:
        np.testing.assert_allclose(y, x, atol=tol)


def test_read_errors(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" + bytes(range(256)) * 4)
    empty = tmp_path / "empty.flac"
    empty.write_bytes(b"")
    silent = tmp_path / "zero.wav"
    sf.write(silent, np.zeros((0, 2), np.float32), 44100)
    for path, reason in ((corrupt, "cannot read audio"), (empty, "cannot read audio"),
                         (silent, "no audio samples"), (tmp_path / "missing.wav", "not found"), (tmp_path, "directory")):
        with pytest.raises(AudioInputError, match=reason):
            read_audio(path)


def test_atomic_write_all_or_nothing(tmp_path: Path, monkeypatch, write_tiny_live_weights) -> None:
    x = _song(8000, 0.1)
    written = write_files_atomic({tmp_path / "a.wav": x, tmp_path / "b.wav": x}, 8000)
    assert [p.name for p in written] == ["a.wav", "b.wav"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav", "b.wav"]
    # finished files get the mode a plain open() gives (mkstemp alone would leave them 0600)
    mode = 0o666 & ~process_umask()
    assert all(p.stat().st_mode & 0o777 == mode for p in written)
    write_tiny_live_weights(tmp_path / "w.safetensors")
    assert (tmp_path / "w.safetensors").stat().st_mode & 0o777 == mode
    (tmp_path / "w.safetensors").unlink()

    out = tmp_path / "out"
    out.mkdir()
    real_write = sf.write
    calls = []

    def failing_write(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real_write(*args, **kwargs)

    monkeypatch.setattr(sf, "write", failing_write)
    with pytest.raises(StemstreamError, match="No space left"):
        write_files_atomic({out / f"{s}.wav": x for s in STEMS}, 8000)
    assert list(out.iterdir()) == []  # no stems, no temporaries
    monkeypatch.undo()
    (out / "drums.wav").mkdir()
    with pytest.raises(StemstreamError, match="is a directory"):
        write_files_atomic({out / f"{s}.wav": x for s in STEMS}, 8000)
    assert [p.name for p in out.iterdir()] == ["drums.wav"]


@pytest.mark.parametrize("rate,channels", [(44100, 2), (48000, 1)])
def test_separate_command(tmp_path: Path, tiny_live_weights: Path, capsys, rate: int, channels: int) -> None:
    x = _song(rate, 0.6, channels)
    src = tmp_path / "song.flac"
    sf.write(src, x.T, rate, subtype="PCM_24")
    x, _ = read_audio(src)
    out = tmp_path / "stems"
    code = main(["separate", str(src), "-o", str(out), "--model", str(tiny_live_weights), "--block-size", "333"])
    assert code == 0
    report = capsys.readouterr().out
    assert "latency:" in report and "real-time factor:" in report
    stems = []
    for name in STEMS:  # OUT/<song>/<stem>.wav, as for a crate
        y, r = read_audio(out / "song" / f"{name}.wav")
        assert r == rate and y.shape == x.shape
        stems.append(y)
    assert sorted(p.name for p in (out / "song").iterdir()) == sorted(f"{s}.wav" for s in STEMS)
    if rate == 44100:  # mixture consistency: the stems add up to the (latency-trimmed) input
        np.testing.assert_allclose(np.sum(stems, axis=0), x, atol=1e-4)


def test_separate_errors_are_one_line(tmp_path: Path, tiny_live_weights: Path, capsys) -> None:
    src = tmp_path / "song.wav"
    sf.write(src, _song(44100, 0.1).T, 44100)
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(b"ID3" + bytes(500))
    cases = [
        (["--block-size", "0"], "--block-size=0"),
        (["--block-size", str(10**7)], "--block-size=10000000"),
        (["--model", "no-such-model"], "unknown model; available:"),
    ]
    for extra, needle in cases:
        code = main(["separate", str(src), "-o", str(tmp_path / "o"), "--model", str(tiny_live_weights), *extra])
        err = capsys.readouterr().err
        assert code == 2 and needle in err and err.count("\n") == 1, err
    code = main(["separate", str(bad), "-o", str(tmp_path / "o2"), "--model", str(tiny_live_weights)])
    err = capsys.readouterr().err
    assert code == 2 and "cannot read audio" in err and err.count("\n") == 1
    assert not (tmp_path / "o2").exists() or list((tmp_path / "o2").iterdir()) == []


def test_bench_latency_smoke(tmp_path: Path, capsys) -> None:
    code = main(["bench", "latency", "--model", "tiny", "--backends", "torch", "--block-sizes", "128,256",
                 "--callbacks", "12", "--out", str(tmp_path)])
    assert code == 0
    report = json.loads((tmp_path / "latency.json").read_text())
    assert [r["block_size"] for r in report["results"]] == [128, 256]
    assert [r["queue_blocks"] for r in report["results"]] == [4, 2]  # as `stemstream live`: >= 10 ms
    row = report["results"][0]
    assert row["model_latency_ms"] == pytest.approx(1000 * 96 / 44100)  # tiny: M - H = 128 - 32
    assert row["session_latency_ms"] > row["algorithmic_latency_ms"] >= row["model_latency_ms"]
    assert (tmp_path / "latency.md").read_text().count("| torch |") == 2
    assert (tmp_path / "latency.png").stat().st_size > 1000
    assert main(["bench", "latency", "--callbacks", "1", "--out", str(tmp_path)]) == 2
    assert main(["bench", "latency", "--queue-blocks", "0", "--out", str(tmp_path)]) == 2
