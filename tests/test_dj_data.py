"""The DJ stem set's training data: mixing that keeps the sum exact, the band-limited and grouped
losses, the real-recording loaders (on small fixtures made here) and the recipe sampler."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from stemstream.export.data.mixing import (
    MasterSettings, clipper_gain, master, measure, pan_mono, set_width, stem_chain,
)
from stemstream.export.data.real import load_mir1k, load_musicdelta
from stemstream.export.train.data import SongSet
from stemstream.export.train.dj_data import RECIPES, VARIED_VOICE_RECIPES, DjExampleMaker, DjSampler, DjSources
from stemstream.export.train.losses import band_limit, grouped_sdr_loss

SR = 44100


def _noise(rng: np.random.Generator, shape: tuple[int, ...], level: float = 0.1) -> np.ndarray:
    return (level * rng.standard_normal(shape)).astype(np.float32)


# ------------------------------------------------------------------------- mixing


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_master_of_the_stems_is_the_master_of_the_mixture(seed: int) -> None:
    rng = np.random.default_rng(seed)
    stems = _noise(rng, (4, 2, SR), 0.2) * np.linspace(0, 3, SR, dtype=np.float32)  # loud enough to limit
    settings = MasterSettings.draw(rng)
    if seed == 3:  # the clipper too
        settings = MasterSettings(settings.width, -10.0, settings.glue_threshold_db, settings.glue_ratio, 2.0)
    mastered = master(stems, SR, settings)
    alone = master(stems.sum(axis=0, keepdims=True), SR, settings)[0]
    assert mastered.shape == stems.shape and np.isfinite(mastered).all()
    np.testing.assert_allclose(mastered.sum(axis=0), alone, atol=2e-5)
    assert np.max(np.abs(alone)) <= 10 ** (-0.3 / 20) + 1e-4  # the limiter's ceiling holds


def test_master_reaches_the_drawn_width_and_level() -> None:
    rng = np.random.default_rng(7)
    stems = _noise(rng, (3, 2, 2 * SR), 0.02)  # wide (independent channels) and quiet
    settings = MasterSettings(width=0.25, rms_dbfs=-16.0, glue_threshold_db=-10, glue_ratio=2.0, clip_drive=0.0)
    stats = measure(master(stems, SR, settings).sum(axis=0))
    assert stats.width < 0.45  # narrowed from ~1.0 (limited to x0.4 per call)
    assert -18.0 < stats.rms_dbfs < -15.0


def test_pan_is_constant_power_and_width_is_linear() -> None:
    x = np.ones(100, dtype=np.float32)
    for position in (-1.0, -0.3, 0.0, 0.7, 1.0):
        y = pan_mono(x, position)
        np.testing.assert_allclose((y**2).sum(axis=0), 1.0, atol=1e-6)
    with pytest.raises(ValueError, match="position"):
        pan_mono(x, 1.5)
    rng = np.random.default_rng(1)
    stems = _noise(rng, (3, 2, 500))
    np.testing.assert_allclose(set_width(stems, 0.5).sum(axis=0), set_width(stems.sum(0, keepdims=True), 0.5)[0],
                               atol=1e-6)


def test_clipper_gain_is_the_soft_clip_of_the_mixture() -> None:
    mix = np.linspace(-3, 3, 1001)[None].repeat(2, axis=0)
    np.testing.assert_allclose(clipper_gain(mix, 2.0) * mix, np.tanh(2.0 * mix) / 2.0, atol=1e-9)


def test_stem_chain_keeps_shape_and_is_seeded() -> None:
    x = _noise(np.random.default_rng(0), (2, SR // 2))
    a = stem_chain(x, "vocals", np.random.default_rng(5), SR)
    b = stem_chain(x, "vocals", np.random.default_rng(5), SR)
    assert a.shape == x.shape and np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------- losses


def test_band_limit_removes_only_the_band_above_the_limit() -> None:
    t = np.arange(SR // 4) / SR
    low, high = np.sin(2 * np.pi * 440 * t), 0.5 * np.sin(2 * np.pi * 12000 * t)
    x = torch.tensor(np.stack([low + high, low + high]), dtype=torch.float32).view(2, 1, 1, -1)
    out = band_limit(x, torch.tensor([8000.0, 0.0]), SR)
    torch.testing.assert_close(out[0, 0, 0], torch.tensor(low, dtype=torch.float32), atol=1e-4, rtol=0)
    assert torch.equal(out[1], x[1])  # band 0: untouched


def _loss_inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    targets = 0.1 * torch.randn(2, 4, 2, 4000, generator=g)
    mix = targets.sum(dim=1)
    groups = torch.eye(4).expand(2, 4, 4).clone()
    valid = torch.ones(2, 4, dtype=torch.bool)
    return targets, mix, groups, valid


def test_band_limited_loss_ignores_the_unknown_band() -> None:
    targets, mix, groups, valid = _loss_inputs()
    t = torch.arange(4000) / SR
    on_bin = 1360 * SR / 4000  # ~15 kHz, on the excerpt's DFT grid (no leakage below 8 kHz)
    hiss = 0.05 * torch.sin(2 * torch.pi * on_bin * t)  # what a 16 kHz recording cannot hold
    estimate = targets + 0.01 * torch.randn(targets.shape, generator=torch.Generator().manual_seed(1))
    limited, full = torch.tensor([8000.0, 8000.0]), torch.zeros(2)
    base = grouped_sdr_loss(estimate, targets, mix, groups, valid, limited, SR)
    with_hiss = grouped_sdr_loss(estimate + hiss, targets, mix, groups, valid, limited, SR)
    torch.testing.assert_close(base, with_hiss, atol=1e-3, rtol=0)
    full_base = grouped_sdr_loss(estimate, targets, mix, groups, valid, full, SR)
    assert grouped_sdr_loss(estimate + hiss, targets, mix, groups, valid, full, SR) > full_base + 1.0


def test_grouped_loss_does_not_care_how_the_group_splits() -> None:
    targets, mix, _, _ = _loss_inputs(3)
    accompaniment = targets[:, 1:].sum(dim=1)
    grouped_targets = torch.stack([targets[:, 0], accompaniment, torch.zeros_like(mix), torch.zeros_like(mix)], 1)
    groups = torch.zeros(2, 4, 4)
    groups[:, 0, 0] = 1.0
    groups[:, 1, 1:] = 1.0
    valid = torch.tensor([[True, True, False, False]] * 2)
    band = torch.zeros(2)
    split_a = torch.stack([targets[:, 0], accompaniment, torch.zeros_like(mix), torch.zeros_like(mix)], 1)
    split_b = torch.stack([targets[:, 0], 0.2 * accompaniment, 0.5 * accompaniment, 0.3 * accompaniment], 1)
    noise = 0.01 * torch.randn(2, 2, 4000, generator=torch.Generator().manual_seed(2))
    split_a[:, 0] += noise
    split_b[:, 0] += noise
    a = grouped_sdr_loss(split_a, grouped_targets, mix, groups, valid, band, SR)
    b = grouped_sdr_loss(split_b, grouped_targets, mix, groups, valid, band, SR)
    torch.testing.assert_close(a, b, atol=1e-4, rtol=0)
    wrong = split_b.clone()
    wrong[:, 1] += 0.5 * targets[:, 0]  # vocals leaking into the accompaniment is penalised
    assert grouped_sdr_loss(wrong, grouped_targets, mix, groups, valid, band, SR) > a + 1.0


# ---------------------------------------------------------------- loaders


@pytest.fixture(scope="module")
def real_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A miniature ``realdata-train``: two MIR-1K singers (one held out) and three MusicDelta songs."""
    root = tmp_path_factory.mktemp("realdata-train")
    rng = np.random.default_rng(0)
    for singer in ("abjones", "amy"):  # abjones is a validation singer
        d = root / "mir1k" / singer
        d.mkdir(parents=True)
        for clip in (1, 2):
            for part in ("vocals", "accompaniment"):
                sf.write(d / f"{singer}_1_0{clip}.{part}.ogg", _noise(rng, (16000 * 2,)), 16000)
    for song, labels in (("Beatles", ("drums", "bass", "guitar", "guitar", "vocals")),
                         ("Country1", ("drums", "bass", "guitar", "vocals")),
                         ("80sRock", ("drums", "bass", "guitar", "vocals"))):
        d = root / "musicdelta" / song
        d.mkdir(parents=True)
        tracks = []
        for i, label in enumerate(labels):
            name = f"S0{i + 1}R01_{label}.flac"
            sf.write(d / name, _noise(rng, (SR * 3,)), SR, subtype="PCM_24")
            tracks.append({"file": name, "stem": label, "instrument": label})
        (d / "tracks.json").write_text(json.dumps({"song": song, "tracks": tracks}))
    return root


def test_mir1k_split_by_whole_singer_and_resampled(real_fixture: Path) -> None:
    train, valid = load_mir1k(real_fixture, "train"), load_mir1k(real_fixture, "valid")
    assert {c.singer for c in train} == {"amy"} and {c.singer for c in valid} == {"abjones"}
    clip = train[0]
    assert clip.vocals.shape == clip.accompaniment.shape
    assert abs(clip.vocals.shape[-1] - 2 * SR) <= 2  # 2 s at 16 kHz -> 44.1 kHz
    assert clip.band_limit_hz == 8000.0


def test_musicdelta_split_maps_guitars_to_other_and_leaves_the_eval_song_out(real_fixture: Path) -> None:
    train, valid = load_musicdelta(real_fixture, "train"), load_musicdelta(real_fixture, "valid")
    assert [s.name for s in train] == ["Beatles"] and [s.name for s in valid] == ["Country1"]
    assert sorted(train[0].tracks) == ["bass", "drums", "other", "vocals"]
    assert len(train[0].tracks["other"]) == 2  # both guitars


def test_load_tracks_reads_the_real_training_layouts(real_fixture: Path) -> None:
    from stemstream.export.data.loaders import load_tracks

    songs = {t.name: t for t in load_tracks(real_fixture / "musicdelta")}
    assert set(songs) == {"80sRock", "Beatles", "Country1"}
    beatles = songs["Beatles"]
    assert set(beatles.stems) == {"vocals", "drums", "bass", "other"}
    np.testing.assert_allclose(beatles.mixture, sum(beatles.stems.values()), atol=1e-6)
    clips = list(load_tracks(real_fixture / "mir1k" / "amy"))
    assert [c.name for c in clips] == ["amy_1_01", "amy_1_02"]
    assert set(clips[0].stems) == {"vocals", "accompaniment"} and clips[0].sample_rate == 16000


def test_load_tracks_reads_musdb_layout_in_any_format(tmp_path: Path) -> None:
    from stemstream.export.data.loaders import load_tracks

    d = tmp_path / "song"
    d.mkdir()
    rng = np.random.default_rng(2)
    for stem in ("vocals", "drums", "bass", "other"):
        sf.write(d / f"{stem}.flac", _noise(rng, (SR // 2, 2)), SR)
    (track,) = load_tracks(tmp_path)
    assert set(track.stems) == {"vocals", "drums", "bass", "other"}
    assert track.mixture.shape == (2, SR // 2)


# ----------------------------------------------------------------- sampler


@pytest.fixture(scope="module")
def sources(real_fixture: Path) -> DjSources:
    rng = np.random.default_rng(4)
    synth = SongSet(["s0", "s1"], [_noise(rng, (4, 2, 3 * SR)) for _ in range(2)], "synthetic")
    return DjSources.load(real_fixture, synth, "train")


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_every_recipe_gives_a_mixture_that_is_the_sum_of_its_targets(sources: DjSources, recipe: str) -> None:
    stems, groups, valid, band = DjExampleMaker(sources).make(SR // 2, np.random.default_rng(9), recipe)
    assert stems.shape == (4, 2, SR // 2) and np.isfinite(stems).all()
    mix = stems.sum(axis=0)
    assert measure(mix).rms_dbfs > -40  # mastered to a released level, not silence
    grouped = recipe in ("mir1k_pair", "mir1k_over_mir1k")
    assert valid.tolist() == ([True, True, False, False] if grouped else [True] * 4)
    assert (band == 8000.0) == recipe.startswith("mir1k")
    if grouped:
        assert groups[1].tolist() == [0.0, 1.0, 1.0, 1.0]
        assert not stems[2:].any()
    else:
        np.testing.assert_array_equal(groups, np.eye(4))
    if recipe == "synth":
        assert not stems[0].any()  # no voice in a synthetic song


@pytest.mark.parametrize("recipe", sorted(VARIED_VOICE_RECIPES & set(RECIPES)))
def test_varied_voices_keep_every_example_exact(sources: DjSources, recipe: str) -> None:
    maker = DjExampleMaker(sources, voice_variants=True)
    for seed in range(4):  # some draws shift, some harmonise, some leave the voice alone
        stems, groups, valid, band = maker.make(SR // 2, np.random.default_rng(seed), recipe)
        assert stems.shape == (4, 2, SR // 2) and np.isfinite(stems).all()
        assert (0 < band <= 8000.0) if recipe.startswith("mir1k") else band == 0.0
        again = maker.make(SR // 2, np.random.default_rng(seed), recipe)[0]
        np.testing.assert_array_equal(stems, again)  # seeded


def test_voice_variants_leave_the_other_recipes_and_the_draws_alone(sources: DjSources) -> None:
    plain, varied = DjExampleMaker(sources), DjExampleMaker(sources, voice_variants=True)
    for recipe in ("synth", "musicdelta", "mir1k_pair"):  # a song as recorded keeps its singer
        a = plain.make(SR // 4, np.random.default_rng(2), recipe)
        b = varied.make(SR // 4, np.random.default_rng(2), recipe)
        np.testing.assert_array_equal(a[0], b[0])
        assert a[3] == b[3]


def test_sampler_is_seeded(sources: DjSources) -> None:
    a = DjSampler(sources, 4410, seed=3).batch(3)
    b = DjSampler(sources, 4410, seed=3).batch(3)
    assert torch.equal(a.mix, b.mix) and torch.equal(a.targets, b.targets)
    torch.testing.assert_close(a.mix, a.targets.sum(dim=1))


def test_compressor_detector_is_the_moving_mean_it_replaced() -> None:
    from stemstream.export.data.mixing import _moving_mean

    x = np.random.default_rng(0).random(5000)
    for win in (1, 2, 440, 441):
        np.testing.assert_allclose(_moving_mean(x, win), np.convolve(x, np.ones(win) / win, mode="same"), atol=1e-12)
    assert _moving_mean(np.ones(10), 441).shape == (10,)  # shorter than the window: still one value per sample
