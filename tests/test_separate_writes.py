"""Writes checked first, failures clean: an output folder that cannot be written is found before the
model loads, a path libsndfile refuses before anything is computed; a write failing mid-song (disk
full: ``LibsndfileError`` or ``OSError``) is one line and exit 2, leaves no folder it created and
never a partial file under a finished name; earlier outputs survive a failed redo. Non-finite input
is counted, and ``auto`` is the default backend."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from stemstream.realtime.stems import STEMS
from tests.separate_support import files_under, separate, song

WAVS = sorted(f"{s}.wav" for s in STEMS)


def _failing_writes(monkeypatch, error: BaseException, after: int, seen: list[list[str]] | None = None) -> None:
    """``soundfile.SoundFile.write`` raises ``error`` from its ``after``-th call on (recording the
    song folder's listing at each call in ``seen``)."""
    real = sf.SoundFile.write
    calls = []

    def write(self, data):
        calls.append(1)
        if seen is not None:
            seen.append(sorted(os.listdir(Path(self.name).parent)))
        if len(calls) >= after:
            raise error
        return real(self, data)

    monkeypatch.setattr(sf.SoundFile, "write", write)


@pytest.mark.parametrize("error,needle", [(sf.LibsndfileError(2), "System error"),
                                          (OSError(28, "No space left on device"), "No space left on device")])
def test_a_full_disk_mid_song_is_one_line_and_leaves_nothing(tmp_path: Path, tiny_live_weights: Path, capsys,
                                                             monkeypatch, error, needle) -> None:
    src = song(tmp_path / "in.wav", seconds=1.0)
    out = tmp_path / "new" / "stems"
    seen: list[list[str]] = []
    _failing_writes(monkeypatch, error, after=9, seen=seen)
    code, _, err = separate(capsys, src, "-o", out, "--model", tiny_live_weights)
    assert code == 2 and len(err) == 1 and needle in err[0] and "output=" in err[0], err
    assert not (tmp_path / "new").exists()  # every folder this run made is gone again
    assert seen and all(name.startswith(".") and ".part." in name for listing in seen for name in listing)


def test_a_failed_redo_keeps_the_earlier_stems(tmp_path: Path, tiny_live_weights: Path, capsys, monkeypatch) -> None:
    src = song(tmp_path / "in.wav", seconds=1.0)
    out = tmp_path / "out"
    assert separate(capsys, src, "-o", out, "--model", tiny_live_weights)[0] == 0
    before = {name: (out / "in" / name).read_bytes() for name in WAVS}
    _failing_writes(monkeypatch, sf.LibsndfileError(2), after=20)
    code, _, err = separate(capsys, src, "-o", out, "--model", tiny_live_weights, "--force")
    assert code == 2 and len(err) == 1
    monkeypatch.undo()
    assert files_under(out / "in") == WAVS and {n: (out / "in" / n).read_bytes() for n in WAVS} == before
    code, lines, _ = separate(capsys, src, "-o", out, "--model", tiny_live_weights)
    assert code == 0 and lines[-1].startswith("crate: 0 separated, 1 skipped")  # still done


def test_a_path_libsndfile_refuses_fails_before_computing(tmp_path: Path, tiny_live_weights: Path, capsys) -> None:
    src = song(tmp_path / "in.wav")
    deep = tmp_path / "deep"
    out = deep
    while len(str(out)) < 3000:  # the OS takes it (PATH_MAX 4096), libsndfile does not
        out = out / ("d" * 200)
    code, lines, err = separate(capsys, src, "-o", out, "--model", tiny_live_weights)
    assert code == 2 and len(err) == 1 and "too long" in err[0], err
    assert "[1/1] failed" in lines[-2] and not deep.exists()


def test_an_output_folder_that_cannot_be_written_is_found_first(tmp_path: Path, capsys) -> None:
    src = song(tmp_path / "in.wav")
    (tmp_path / "file").write_text("a file, not a folder")
    code, lines, err = separate(capsys, src, "-o", tmp_path / "file" / "out", "--model", "no-such-model")
    assert code == 2 and len(err) == 1 and "cannot write there" in err[0] and "no-such-model" not in err[0], err
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        code, _, err = separate(capsys, src, "-o", locked / "out", "--model", "no-such-model")
        assert code == 2 and "Permission denied" in err[0] and list(locked.iterdir()) == []


def test_non_finite_input_is_counted_and_auto_is_the_default(tmp_path: Path, tiny_live_weights: Path, capsys) -> None:
    x = sf.read(song(tmp_path / "in.wav"), dtype="float32")[0]
    x[[10, 500, 501, 9000], 0] = [np.nan, np.inf, -np.inf, np.nan]
    x[77, 1] = np.nan
    sf.write(tmp_path / "in.wav", x, 44100, subtype="FLOAT")
    code, lines, _ = separate(capsys, tmp_path / "in.wav", "-o", tmp_path / "out", "--model", tiny_live_weights)
    assert code == 0 and "(--backend auto)" in lines[0] and "on backend onnx" in lines[0]
    assert "[1/1] replaced 5 non-finite input samples (NaN/Inf) with 0" in lines
    assert all(np.isfinite(sf.read(tmp_path / "out" / "in" / w)[0]).all() for w in WAVS)


def test_whole_file_writes_turn_libsndfile_errors_into_one_line(tmp_path: Path, monkeypatch) -> None:
    from stemstream.bridge.audio_files import write_files_atomic
    from stemstream.realtime.errors import StemstreamError

    def refuse(*args, **kwargs):
        raise sf.LibsndfileError(2, prefix="Error opening 'x': ")

    monkeypatch.setattr(sf, "write", refuse)
    with pytest.raises(StemstreamError, match="System error"):
        write_files_atomic({tmp_path / "a.wav": np.zeros((2, 10), np.float32)}, 44100)
    assert list(tmp_path.iterdir()) == []
