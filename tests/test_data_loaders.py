"""Loaders on small fixture folders of each layout, and their errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from stemstream.export.data.loaders import load_track, load_tracks, parse_simple_yaml, slakh_target
from stemstream.export.data.wavio import write_wav
from stemstream.realtime.errors import AudioInputError

RATE = 44100
N = 2205  # 50 ms


def _tone(seed: int, channels: int = 2, n: int = N) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal((channels, n))).astype(np.float32)


def _write(path: Path, x: np.ndarray, fmt: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x.T, RATE, format=fmt, subtype="FLOAT" if path.suffix == ".wav" else None)


def test_synthetic_folder(tmp_path):
    root = tmp_path / "synth"
    for i in range(2):
        d = root / f"song{i:05d}"
        d.mkdir(parents=True)
        stems = {s: _tone(10 * i + k) for k, s in enumerate(("bass", "drums", "guitar", "piano"))}
        mix = sum(stems.values())
        for s, x in stems.items():
            write_wav(d / f"{s}.wav", x, RATE)
        write_wav(d / "mixture.wav", mix, RATE)
        (d / "song.json").write_text(json.dumps({"stems": list(stems), "seed": i, "style": "rock"}))
    (root / "dataset.json").write_text("{}")
    tracks = list(load_tracks(root))
    assert [t.name for t in tracks] == ["song00000", "song00001"]
    t = tracks[1]
    assert t.sample_rate == RATE and t.meta["style"] == "rock" and t.meta["seed"] == 1
    np.testing.assert_array_equal(t.stems["guitar"], _tone(12))
    np.testing.assert_allclose(t.mixture, t.stack(("bass", "drums", "guitar", "piano")).sum(0), atol=1e-6)
    only = next(load_tracks(root, stems=("drums", "vocals")))
    assert list(only.stems) == ["drums"]
    assert only.stack(("drums", "vocals"))[1].max() == 0.0


def test_musdb18hq_layout(tmp_path):
    root = tmp_path / "musdb18hq"
    for split, name, seed in (("train", "A - One", 1), ("test", "B - Two", 2)):
        d = root / split / name
        stems = {s: _tone(seed * 10 + k) for k, s in enumerate(("drums", "bass", "other", "vocals"))}
        for s, x in stems.items():
            _write(d / f"{s}.wav", x)
        _write(d / "mixture.wav", 0.5 * sum(stems.values()))  # a mix that is not the sum
    tracks = list(load_tracks(root))
    assert [t.name for t in tracks] == ["B - Two", "A - One"]  # sorted folders: test, train
    assert tracks[1].meta["split"] == "train" and tracks[1].meta["dataset"] == "musdb18hq"
    np.testing.assert_allclose(tracks[1].mixture, 0.5 * tracks[1].stack(("drums", "bass", "other", "vocals")).sum(0),
                               atol=1e-6)
    assert [t.name for t in load_tracks(root / "train")] == ["A - One"]
    assert load_track(root / "test" / "B - Two").stems.keys() == {"drums", "bass", "other", "vocals"}


SLAKH_YAML = """\
audio_dir: stems
midi_dir: MIDI
normalization_factor: -13.0
overall_gain: 0.18
UUID: 1a81ae092884234f3264e2f45927f00a
stems:
  S00:
    audio_rendered: true
    inst_class: Guitar
    is_drum: false
    midi_program_name: Distortion Guitar
    program_num: 30
  S01:
    audio_rendered: true
    inst_class: Drums
    is_drum: true
    program_num: 128
  S02:
    audio_rendered: true
    inst_class: Bass
    is_drum: false
    program_num: 33
  S03:
    audio_rendered: true
    inst_class: Piano
    is_drum: false
    program_num: 0
  S04:
    audio_rendered: true
    inst_class: Strings (continued)
    is_drum: false
    program_num: 48
  S05:
    audio_rendered: true
    inst_class: Guitar
    is_drum: false
    program_num: 25
  S06:
    audio_rendered: false
    inst_class: Piano
    is_drum: false
    program_num: 4
"""


def test_slakh_layout(tmp_path):
    d = tmp_path / "slakh2100" / "train" / "Track00001"
    (d / "stems").mkdir(parents=True)
    (d / "metadata.yaml").write_text(SLAKH_YAML)
    audio = {f"S0{i}": _tone(100 + i) for i in range(6)}
    for sid, x in audio.items():
        _write(d / "stems" / f"{sid}.flac", x)
    tracks = list(load_tracks(tmp_path / "slakh2100"))
    assert len(tracks) == 1
    t = tracks[0]
    assert t.meta["stem_mapping"] == {"S00": "guitar", "S01": "drums", "S02": "bass", "S03": "piano",
                                      "S04": "other", "S05": "guitar"}
    # FLAC is 16-bit here: compare within its quantisation step (2 files summed).
    np.testing.assert_allclose(t.stems["guitar"], audio["S00"] + audio["S05"], atol=1e-4)
    np.testing.assert_allclose(t.stems["other"], audio["S04"], atol=1e-4)
    np.testing.assert_allclose(t.mixture, sum(t.stems.values()), atol=1e-6)
    assert set(t.stems) == {"bass", "drums", "guitar", "piano", "other"}


def test_simple_yaml_and_slakh_mapping():
    meta = parse_simple_yaml(SLAKH_YAML + "# a comment\nname: 'x: y'\nflag: no\nnothing: null\n")
    assert meta["overall_gain"] == 0.18 and meta["stems"]["S01"]["is_drum"] is True
    assert meta["name"] == "x: y" and meta["flag"] is False and meta["nothing"] is None
    assert slakh_target({"inst_class": "Chromatic Percussion", "program_num": 5}) == "other"
    assert slakh_target({"program_num": 36}) == "bass"
    assert slakh_target({"program_num": 2}) == "piano"
    with pytest.raises(ValueError):
        parse_simple_yaml("just text without a colon")


def test_realdata_layouts(tmp_path):
    """musdb18-sample (FLAC stems, no mixture) and koronium (MP3 stems, no mixture)."""
    root = tmp_path / "realdata"
    stems = {s: _tone(200 + k) for k, s in enumerate(("drums", "bass", "other", "vocals"))}
    for s, x in stems.items():
        _write(root / "musdb18-sample" / "Song - Title" / f"{s}.flac", x)
    for k, s in enumerate(("bass", "drums", "synth", "violins")):
        _write(root / "koronium" / f"{s}.mp3", _tone(300 + k, n=RATE // 2), fmt="MP3")
    tracks = {t.name: t for t in load_tracks(root)}
    assert set(tracks) == {"Song - Title", "koronium"}
    song = tracks["Song - Title"]
    assert song.meta["evaluation_only"] is True
    np.testing.assert_allclose(song.mixture, sum(song.stems.values()), atol=1e-6)
    kor = tracks["koronium"]
    assert set(kor.stems) == {"bass", "drums", "synth", "violins"}
    assert kor.mixture.shape[0] == 2 and kor.num_samples > RATE // 4
    np.testing.assert_allclose(kor.mixture, sum(kor.stems.values()), atol=1e-6)


def test_shared_realdata_if_present():
    root = Path("/work/shared/realdata/musdb18-sample")
    if not root.is_dir():
        pytest.skip("shared realdata not on this machine")
    tracks = list(load_tracks(root))
    assert len(tracks) == 2 and all(t.sample_rate == RATE for t in tracks)


def _assert_one_line(exc: pytest.ExceptionInfo) -> None:
    assert "\n" not in str(exc.value)


def test_errors(tmp_path):
    with pytest.raises(AudioInputError, match="does not exist") as e:
        list(load_tracks(tmp_path / "missing"))
    _assert_one_line(e)
    (tmp_path / "empty").mkdir()
    with pytest.raises(AudioInputError, match="no tracks found") as e:
        list(load_tracks(tmp_path / "empty"))
    _assert_one_line(e)
    bad = tmp_path / "bad" / "train" / "T"
    for s in ("drums", "bass", "other", "vocals"):
        _write(bad / f"{s}.wav", _tone(1))
    (bad / "mixture.wav").write_bytes(b"RIFF\x00\x00garbage")  # corrupt
    with pytest.raises(AudioInputError, match="cannot read audio") as e:
        list(load_tracks(tmp_path / "bad"))
    _assert_one_line(e)
    sf.write(bad / "mixture.wav", np.zeros((0, 2), np.float32), RATE, subtype="FLOAT")  # empty
    with pytest.raises(AudioInputError, match="empty") as e:
        list(load_tracks(tmp_path / "bad"))
    _assert_one_line(e)
    slakh = tmp_path / "slakh" / "Track00002"
    (slakh / "stems").mkdir(parents=True)
    (slakh / "metadata.yaml").write_text("stems:\n  S00:\n    audio_rendered: true\n")
    with pytest.raises(AudioInputError, match="no rendered stem files") as e:
        list(load_tracks(tmp_path / "slakh"))
    _assert_one_line(e)
