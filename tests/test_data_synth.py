"""Synthetic multitrack songs: determinism, exact mixtures, stem activity, JSON contents."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from stemstream.export.data.composer import INSTRUMENT_STEMS, PROGRAM_RANGES, compose_song
from stemstream.export.data.synth import render_dataset, song_seed
from stemstream.export.data.wavio import open_wav, write_wav
from stemstream.realtime.errors import AudioInputError, ConfigError
from stemstream.realtime.stems import STEMS


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("synth")
    dirs = {}
    for key, seed, workers in (("a", 5, 1), ("b", 5, 2), ("c", 6, 1)):
        dirs[key] = base / key
        render_dataset(dirs[key], songs=2, seconds=3.0, seed=seed, workers=workers)
    return dirs


def _files(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*"))
            if p.is_file() and p.name != "dataset.json"}


def test_same_seed_same_bytes_any_worker_count(rendered):
    a, b = _files(rendered["a"]), _files(rendered["b"])
    assert len(a) == 2 * 6  # 4 stems + mixture + song.json per song
    assert a.keys() == b.keys()
    for name in a:
        assert a[name] == b[name], f"{name} differs between workers=1 and workers=2"


def test_different_seed_different_audio(rendered):
    x, _ = sf.read(rendered["a"] / "song00000" / "mixture.wav", dtype="float32")
    y, _ = sf.read(rendered["c"] / "song00000" / "mixture.wav", dtype="float32")
    assert x.shape == y.shape
    assert not np.array_equal(x, y)
    assert song_seed(5, 0) != song_seed(6, 0) and song_seed(5, 0) != song_seed(5, 1)


def test_mixture_is_exact_float32_sum_of_stems(rendered):
    for song in ("song00000", "song00001"):
        d = rendered["a"] / song
        info = json.loads((d / "song.json").read_text())
        assert info["stems"] == list(STEMS)
        stems = [sf.read(d / f"{s}.wav", dtype="float32")[0] for s in info["stems"]]
        mixture, rate = sf.read(d / "mixture.wav", dtype="float32")
        assert rate == 44100 and mixture.shape == (3 * 44100, 2)
        total = stems[0].copy()
        for x in stems[1:]:
            total += x
        np.testing.assert_array_equal(total, mixture)
        assert 0.3 < np.abs(mixture).max() <= 0.95  # normalised, no clipping
        assert max(np.abs(x).max() for x in stems) <= 1.0


def test_json_contents(rendered):
    dataset = json.loads((rendered["a"] / "dataset.json").read_text())
    assert dataset["format"] == "stemstream-synth"
    assert dataset["seed"] == 5 and dataset["songs"] == 2 and dataset["seconds"] == 3.0
    assert dataset["stems"] == list(STEMS) and dataset["sample_rate"] == 44100
    assert dataset["song_names"] == ["song00000", "song00001"]
    assert dataset["speed"]["x_realtime_per_core"] > 0
    info = json.loads((rendered["a"] / "song00001" / "song.json").read_text())
    assert info["seed"] == song_seed(5, 1) and info["num_samples"] == 3 * 44100
    assert info["meter"] in ("4/4", "3/4", "6/8", "5/4")
    assert 40 <= info["tempo_bpm"] <= 180
    assert info["sections"] and all(s["chords"] for s in info["sections"])
    for stem, inst in info["instruments"].items():
        if stem == "drums":
            assert inst["bank"] == 128
        else:
            lo, hi = PROGRAM_RANGES[stem]
            assert inst["bank"] == 0 and lo <= inst["program"] <= hi
        assert inst["program_name"]
        assert 0 <= inst["active_fraction"] <= 1
        assert isinstance(inst["effects"], list)  # composer version 2


def test_stems_enter_and_drop_out():
    """Across songs, every song has a section where some stem sits out, and every stem plays."""
    for seed in range(12):
        song = compose_song(seed, 24.0)
        sections = song.plan.sections
        assert len(sections) >= 2
        assert any(len(s.active) < len(INSTRUMENT_STEMS) for s in sections), seed
        for stem in INSTRUMENT_STEMS:
            assert any(stem in s.active for s in sections), (seed, stem)
            assert song.stems[stem].notes, (seed, stem)
        assert all(len(s.active) >= 2 for s in sections)


def test_compose_varies_with_seed():
    songs = [compose_song(seed, 20.0) for seed in range(30)]
    assert len({s.plan.style for s in songs}) >= 4
    assert len({s.plan.meter for s in songs}) >= 2
    assert len({s.plan.tonic for s in songs}) >= 6
    assert len({round(s.plan.tempo_bpm) for s in songs}) >= 20
    assert len({s.stems["bass"].program for s in songs}) >= 5
    a, b = compose_song(3, 10.0), compose_song(3, 10.0)
    assert a.stems["piano"].notes == b.stems["piano"].notes


def test_extra_other_stem(tmp_path):
    render_dataset(tmp_path, songs=1, seconds=2.0, seed=1, workers=1, extra_other=True)
    info = json.loads((tmp_path / "song00000" / "song.json").read_text())
    assert info["stems"] == list(STEMS) + ["other"]
    assert 40 <= info["instruments"]["other"]["program"] <= 95
    assert (tmp_path / "song00000" / "other.wav").is_file()


@pytest.mark.parametrize("kwargs", [{"songs": 0}, {"songs": 2.5}, {"seconds": 0.1},
                                    {"seed": -1}, {"workers": 0}])
def test_bad_arguments(tmp_path, kwargs):
    args = {"songs": 1, "seconds": 2.0, "seed": 0, "workers": 1, **kwargs}
    with pytest.raises(ConfigError, match=next(iter(kwargs))):
        render_dataset(tmp_path, **args)


def test_wav_roundtrip_and_bad_files(tmp_path):
    x = np.random.default_rng(0).standard_normal((2, 1000)).astype(np.float32)
    write_wav(tmp_path / "x.wav", x, 44100)
    y, rate = sf.read(tmp_path / "x.wav", dtype="float32")
    np.testing.assert_array_equal(y.T, x)
    mm, rate2 = open_wav(tmp_path / "x.wav")
    assert rate == rate2 == 44100
    np.testing.assert_array_equal(np.asarray(mm).T, x)
    (tmp_path / "bad.wav").write_bytes(b"not a wave file at all")
    with pytest.raises(AudioInputError, match="RIFF"):
        open_wav(tmp_path / "bad.wav")
    write_wav(tmp_path / "empty.wav", np.zeros((2, 0), np.float32), 44100)
    with pytest.raises(AudioInputError, match="no audio"):
        open_wav(tmp_path / "empty.wav")


def _score_digest(song) -> str:
    import hashlib

    h = hashlib.sha256()
    for stem, score in sorted(song.stems.items()):
        h.update(repr((stem, score.program, score.notes, score.controls, score.pan)).encode())
    return h.hexdigest()[:16]


def test_generator_version_1_is_frozen():
    """data/synth was rendered by composer version 1: it must keep producing the same notes."""
    assert _score_digest(compose_song(1234, 12.0, version=1)) == "20386eb92964beb1"
    assert _score_digest(compose_song(1234, 12.0, True, version=1)) == "3e89ca8197f9b800"
    assert _score_digest(compose_song(1234, 12.0)) != _score_digest(compose_song(1234, 12.0, version=1))
    with pytest.raises(ConfigError, match="version"):
        compose_song(1, 5.0, version=99)


def test_bass_locks_to_kicks_in_version_2():
    """A kick-locked bass plays on the groove's kicks (version 1 only hit the downbeat)."""
    checked = 0
    for seed in range(60):
        for version in (1, 2):
            song = compose_song(seed, 24.0, version=version)
            plan = song.plan
            if plan.meter != "4/4" or plan.style not in ("rock", "pop", "dance", "funk"):
                continue  # grooves with at least two kicks a bar
            for sec in plan.sections:
                if sec.roles.get("bass") != "kick" or "bass" not in sec.active or sec.bars < 2:
                    continue
                t0 = plan.step_time(sec.start_step) - 0.05
                t1 = plan.step_time(sec.start_step + sec.bars * plan.steps_per_bar) - 0.05
                onsets = [n for n in song.stems["bass"].notes if t0 <= n[0] < t1]
                if version == 2:
                    assert len(onsets) >= 2 * sec.bars, (seed, sec.name)  # >= 2 kicks per bar
                    checked += 1
                break
    assert checked >= 3


def test_effect_chains():
    from stemstream.export.data.effects import apply_chain, draw_chain

    rng = np.random.default_rng(0)
    chains = [draw_chain("guitar", 27, rng) for _ in range(200)]
    kinds = {fx["type"] for chain in chains for fx in chain}
    assert kinds == {"distortion", "lowpass", "low_shelf", "peak", "high_shelf", "compressor"}
    assert any(not chain for chain in chains)
    x = (0.1 * np.random.default_rng(1).standard_normal((2, 4410))).astype(np.float32)
    chain = next(c for c in chains if len(c) >= 4)
    y1, y2 = apply_chain(x, chain, 44100), apply_chain(x, chain, 44100)
    assert y1.shape == x.shape and y1.dtype == np.float32
    np.testing.assert_array_equal(y1, y2)
    assert not np.allclose(y1, x)
    assert apply_chain(x, [], 44100) is x


TIMGM = "/usr/share/sounds/sf2/TimGM6mb.sf2"  # Debian's timgm6mb-soundfont (installed by .ci/setup)


def test_stem_soundfonts_draw_is_seeded_and_single_font_draws_nothing():
    from stemstream.export.data.synth import stem_soundfonts

    assert stem_soundfonts(("a.sf2",), list(STEMS), 1) == {s: "a.sf2" for s in STEMS}
    fonts = ("a.sf2", "b.sf2")
    draws = [stem_soundfonts(fonts, list(STEMS), seed) for seed in range(20)]
    assert draws[3] == stem_soundfonts(fonts, list(STEMS), 3)
    assert {f for d in draws for f in d.values()} == set(fonts)


def test_several_soundfonts_change_timbre_not_composition(rendered, tmp_path):
    from stemstream.export.data.render import DEFAULT_SOUNDFONT

    if not Path(TIMGM).is_file():
        pytest.skip("timgm6mb-soundfont not installed")
    render_dataset(tmp_path, songs=2, seconds=3.0, seed=5, workers=1, soundfonts=(DEFAULT_SOUNDFONT, TIMGM))
    assert json.loads((tmp_path / "dataset.json").read_text())["renderer"]["soundfont"].endswith("TimGM6mb.sf2")
    used = set()
    for song in ("song00000", "song00001"):
        one = json.loads((rendered["a"] / song / "song.json").read_text())
        two = json.loads((tmp_path / song / "song.json").read_text())
        assert one["sections"] == two["sections"] and one["tempo_bpm"] == two["tempo_bpm"]
        mix = sf.read(tmp_path / song / "mixture.wav", dtype="float32")[0]
        total = np.zeros_like(mix)
        for stem in STEMS:
            info = two["instruments"][stem]
            used.add(info["soundfont"])
            assert info["program"] == one["instruments"][stem]["program"]
            audio = sf.read(tmp_path / song / f"{stem}.wav", dtype="float32")[0]
            ref = sf.read(rendered["a"] / song / f"{stem}.wav", dtype="float32")[0]
            corr = float(np.sum(audio * ref) / np.sqrt(np.sum(audio**2) * np.sum(ref**2) + 1e-20))
            if info["soundfont"] == "TimGM6mb.sf2":  # the same notes, another instrument's samples
                assert corr < 0.99, (stem, corr)
            total += audio
        np.testing.assert_allclose(total, mix, atol=1e-6)
    assert used == {"FluidR3_GM.sf2", "TimGM6mb.sf2"}


def test_missing_presets_fall_back_to_general_midi_ones():
    from stemstream.export.data.render import DEFAULT_SOUNDFONT, available_preset

    assert available_preset(128, 41, DEFAULT_SOUNDFONT) == (128, 41)  # FluidR3 has the brush kit
    if not Path(TIMGM).is_file():
        pytest.skip("timgm6mb-soundfont not installed")
    assert available_preset(128, 41, TIMGM) == (128, 0)  # one kit only: the standard one, not silence
    assert available_preset(0, 33, TIMGM) == (0, 33)
