"""Electronic material for the DJ stems: LMMS projects read without LMMS (tracks in render order,
labels, licences), rendered songs written and loaded (on tiny fixtures made here), the LMMS
recipes (exact sums), tempo-matched drums, and the sampler on a machine without ``data/lmms``."""

from __future__ import annotations

import json
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from stemstream.export.data import electronic
from stemstream.export.data.beats import BASS_ROOTS, KIT, SONIC_PI_SAMPLES, STYLES, groove, load_kit
from stemstream.export.data.electronic import (
    CACHE_NAME, RenderedSong, drums_in_tempo, load_lmms, stem_cache, tempo_partners, tempo_ratio,
)
from stemstream.export.data.lmms import (
    UNDECIDED, LmmsProject, LmmsTrack, label_by_spectrum, label_track, project_licence, read_project,
)
from stemstream.export.data.lmms_render import active_ranges, low_band_fraction, write_song
from stemstream.export.data.mixing import measure
from stemstream.export.train import dj_data
from stemstream.export.train.data import SongSet
from stemstream.export.train.dj_data import (
    BEATS_RECIPES, LMMS_RECIPES, RECIPES, DjExampleMaker, DjSampler, DjSources,
)
from stemstream.realtime.errors import ConfigError
from stemstream.realtime.models.wiener import PostFilter

SR = 44100


def _tone(freq: float, seconds: float, level: float = 0.2) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (level * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _clicks(bpm: float, seconds: float) -> np.ndarray:
    """A 1-sample click on every beat from sample 0, stereo."""
    x = np.zeros((2, int(seconds * SR)), dtype=np.float32)
    x[:, np.round(np.arange(0, seconds, 60 / bpm) * SR).astype(int)] = 1.0
    return x


# ------------------------------------------------------------------------ labels


@pytest.mark.parametrize("track, stem", [
    (LmmsTrack(1, "kick04.ogg", "audiofileprocessor", sample="drums/kick04.ogg"), "drums"),
    (LmmsTrack(1, "bassdrum_acoustic01.ogg", "audiofileprocessor", sample="drums/bassdrum_acoustic01.ogg"), "drums"),
    (LmmsTrack(1, "BD 03", "audiofileprocessor", sample="drums/bassdrum03.ogg"), "drums"),
    (LmmsTrack(1, "hats1", "kicker"), "drums"),
    (LmmsTrack(1, "Default Kicker Preset", "kicker"), UNDECIDED),  # kicker plays leads too
    (LmmsTrack(1, "wood.ds", "audiofileprocessor", sample="drumsynth/jorgensohn/wood.ds"), "drums"),  # folder
    (LmmsTrack(1, "Loop", "audiofileprocessor", sample="beats/house_loop01.ogg"), "drums"),
    (LmmsTrack(1, "Noise Clip", "audiofileprocessor", sample="drumsynth/misc/noise_clip.ds"), "drums"),  # folder first
    (LmmsTrack(1, "FX 1 Zip", "audiofileprocessor", sample="drums/zap03.ogg"), "other"),  # an effect by name
    (LmmsTrack(1, "Default preset", "zynaddsubfx", preset="Snare Noise"), "drums"),
    (LmmsTrack(1, "Plucky Bass high", "kicker"), "bass"),  # bass before "pluck", name before plugin
    (LmmsTrack(1, "gated sub", "tripleoscillator"), "bass"),
    (LmmsTrack(1, "Default preset", "zynaddsubfx", preset="Bass 4"), "bass"),
    (LmmsTrack(1, "Standard-Preset", "lb302"), "bass"),
    (LmmsTrack(1, "Mute Bass", "audiofileprocessor", sample="drumsynth/instrument/mute_bass.ds"), "bass"),
    (LmmsTrack(1, "E-Piano", "audiofileprocessor", sample="drumsynth/instrument/E_Piano.ds"), "other"),
    (LmmsTrack(1, "intro arp", "kicker"), "other"),  # a kicker used as a synth: the name says so
    (LmmsTrack(1, "Default preset", "zynaddsubfx", preset="Vocal Morph 7"), "other"),  # a synth voice
    (LmmsTrack(1, "Killed Voice", "tripleoscillator"), "other"),
    (LmmsTrack(1, "ufo_buzz.ds", "audiofileprocessor", sample="drumsynth/misc_fx/ufo_buzz.ds"), "other"),
    (LmmsTrack(1, "chorus01.ogg", "audiofileprocessor", sample="stringsnpads/chorus01.ogg"), "other"),
    (LmmsTrack(1, "override", "sfxr"), "other"),  # no "ride" inside a word
    (LmmsTrack(1, "Default preset", "tripleoscillator"), UNDECIDED),
    (LmmsTrack(1, "subtle", "bitinvader"), UNDECIDED),  # no "sub" inside a word
])
def test_label_rules(track: LmmsTrack, stem: str) -> None:
    got, reason = label_track(track)
    assert got == stem, reason
    assert reason


def test_undecided_synths_are_labelled_by_their_low_band() -> None:
    low, high = _tone(55, 1.0), _tone(880, 1.0)
    assert low_band_fraction(np.stack([low, low])) > 0.95 and low_band_fraction(np.stack([high, high])) < 0.05
    assert label_by_spectrum(low_band_fraction(np.stack([low, low])))[0] == "bass"
    assert label_by_spectrum(low_band_fraction(np.stack([high, high])))[0] == "other"
    assert label_by_spectrum(0.59)[0] == "other" and label_by_spectrum(0.6)[0] == "bass"
    assert label_by_spectrum(0.99, "kicker")[0] is None  # a kick or a bass: left out


# -------------------------------------------------------------------- projects


def _write_mmpz(path: Path, xml: str) -> None:
    data = xml.encode()
    path.write_bytes(struct.pack(">I", len(data)) + zlib.compress(data))  # Qt's qCompress


PROJECT_XML = """<?xml version="1.0"?>
<lmms-project version="1.0" type="song"><head bpm="120" timesig_numerator="4" timesig_denominator="4"/>
<song><trackcontainer type="song">
 <track type="0" name="Lead" muted="0"><instrumenttrack><instrument name="tripleoscillator"><tripleoscillator/></instrument></instrumenttrack>
  <pattern pos="0" len="384"/></track>
 <track type="0" name="Muted pad" muted="1"><instrumenttrack><instrument name="organic"><organic/></instrument></instrumenttrack></track>
 <track type="5" name="Automation track" muted="0"><automationpattern pos="0" len="768"/></track>
 <track type="1" name="Beat/Bassline 0" muted="0"><bbtrack><trackcontainer type="bbtrackcontainer">
  <track type="0" name="kick01.ogg" muted="0"><instrumenttrack><instrument name="audiofileprocessor">
   <audiofileprocessor src="drums/kick01.ogg"/></instrument></instrumenttrack></track>
  <track type="0" name="Default preset" muted="0"><instrumenttrack><instrument name="zynaddsubfx"><zynaddsubfx>
   <ZynAddSubFX-data><MASTER><MICROTONAL><string name="name">12tET</string></MICROTONAL>
   <PART id="0"><par_bool name="enabled" value="no"/><INSTRUMENT><INFORMATION><string name="name">Strings1</string></INFORMATION></INSTRUMENT></PART>
   <PART id="1"><par_bool name="enabled" value="yes"/><INSTRUMENT><INFORMATION><string name="name">Bass 2</string></INFORMATION></INSTRUMENT></PART>
   </MASTER></ZynAddSubFX-data></zynaddsubfx></instrument></instrumenttrack></track>
 </trackcontainer></bbtrack><bbtco pos="192" len="960"/></track>
 <track type="1" name="Beat/Bassline 1" muted="0"><bbtrack/><bbtco pos="0" len="192"/></track>
</trackcontainer></song></lmms-project>
"""


def test_read_project_lists_tracks_in_rendertracks_order(tmp_path: Path) -> None:
    _write_mmpz(tmp_path / "song.mmpz", PROJECT_XML)
    (tmp_path / "song.mmp").write_text(PROJECT_XML)
    for name in ("song.mmpz", "song.mmp"):
        project = read_project(tmp_path / name)
        assert project.bpm == 120.0
        assert project.seconds == pytest.approx(1152 / 48 * 0.5)  # the last clip ends at tick 1152
        assert [(t.number, t.name, t.beat_editor) for t in project.tracks] == [
            (1, "Lead", False), (2, "kick01.ogg", True), (3, "Default preset", True)]  # muted and automation left out
        assert project.tracks[1].sample == "drums/kick01.ogg"
        assert project.tracks[2].preset == "Bass 2"  # the first enabled part's instrument
        assert label_track(project.tracks[2])[0] == "bass"


def test_solo_project_keeps_one_track_and_everything_around_it(tmp_path: Path) -> None:
    from stemstream.export.data.lmms import solo_project

    _write_mmpz(tmp_path / "song.mmpz", PROJECT_XML)
    for number, name in ((1, "Lead"), (2, "kick01.ogg"), (3, "Default preset")):
        (tmp_path / f"{number}.mmp").write_bytes(solo_project(tmp_path / "song.mmpz", number))
        solo = read_project(tmp_path / f"{number}.mmp")
        assert [t.name for t in solo.tracks] == [name]
        assert solo.seconds == read_project(tmp_path / "song.mmpz").seconds  # BB clips and automation stay
        assert (tmp_path / f"{number}.mmp").read_text().count('type="1"') == 2
    with pytest.raises(Exception, match="no track number 4"):
        solo_project(tmp_path / "song.mmpz", 4)


def test_a_broken_project_is_one_error(tmp_path: Path) -> None:
    (tmp_path / "bad.mmpz").write_bytes(b"\x00\x00\x00\x10not zlib")
    with pytest.raises(Exception, match="not a readable LMMS project"):
        read_project(tmp_path / "bad.mmpz")


COPYRIGHT = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Files-Excluded:
 data/projects/demos/Excluded.mmpz

Files: *
Copyright:
 2004-2014 Tobias Doerffel
License: GPL-2+

Files: data/projects/demos/Saber-*
Copyright:
 Saber Rastikerdar
License: BSD-2-clause

Files: data/projects/demos/Jousboxx-*
 data/projects/*/Skiessi/*
Copyright:
 Jousboxx
 Skiessi
License: CC-BY-SA-4

License: GPL-2+
 The text of the licence.
"""


def test_licence_is_the_last_matching_stanza() -> None:
    saber = project_licence(COPYRIGHT, "demos/Saber-FinalStep.mmpz")
    assert (saber.licence, saber.copyright) == ("BSD-2-clause", ("Saber Rastikerdar",))
    assert project_licence(COPYRIGHT, "demos/Skiessi/Skiessi-C64.mmpz").licence == "CC-BY-SA-4"  # * spans folders
    assert project_licence(COPYRIGHT, "shorties/Skiessi-222.mmpz").licence == "GPL-2+"  # not in a Skiessi/ folder
    assert project_licence(COPYRIGHT, "shorties/DirtyLove.mmpz").copyright == ("2004-2014 Tobias Doerffel",)


# ---------------------------------------------------------------- rendered songs


def _project(tmp: Path, tracks: list[tuple[LmmsTrack, np.ndarray]]) -> tuple[LmmsProject, dict[int, Path]]:
    rendered = {}
    for track, audio in tracks:
        rendered[track.number] = tmp / f"{track.number}_{track.name}.wav"
        sf.write(rendered[track.number], audio.T, SR, subtype="FLOAT")
    return LmmsProject(tmp / "x.mmpz", 120.0, 2.0, tuple(t for t, _ in tracks)), rendered


def test_write_song_labels_scales_and_drops(tmp_path: Path) -> None:
    clicks = _clicks(120, 2.0) * 2.0  # peak 2: the song is scaled down by one gain
    bass = np.stack([_tone(55, 2.0)] * 2)
    synth = np.stack([_tone(55, 2.0, 0.1)] * 2)  # undecided: its spectrum makes it bass
    broken = np.full((2, 2 * SR), 1e34, dtype=np.float32)  # what LMMS' 2x oversampling wrote
    project, rendered = _project(tmp_path, [
        (LmmsTrack(1, "kick", "kicker"), clicks), (LmmsTrack(2, "Bass", "tripleoscillator"), bass),
        (LmmsTrack(3, "Default preset", "tripleoscillator"), synth), (LmmsTrack(4, "Pad", "organic"), 0 * bass),
        (LmmsTrack(5, "lead", "sid"), broken), (LmmsTrack(6, "never rendered", "sid"), bass)])
    del rendered[6]
    result = write_song(project, rendered, tmp_path / "out" / "Song", "demos/Saber-X.mmpz", COPYRIGHT)
    assert result.kept and result.stems == ("bass", "drums")
    meta = json.loads((tmp_path / "out" / "Song" / "tracks.json").read_text())
    assert [(t["name"], t["stem"]) for t in meta["tracks"]] == [("kick", "drums"), ("Bass", "bass"),
                                                                   ("Default preset", "bass")]
    assert meta["tracks"][2]["rule"].startswith("spectrum")
    assert [d["reason"][:6] for d in meta["dropped"]] == ["silent", "broken", "no fil"]
    assert meta["licence"] == "BSD-2-clause" and meta["bpm"] == 120.0
    assert meta["gain_db"] == pytest.approx(20 * np.log10(0.99 / 2.0), abs=0.01)
    kick, _ = sf.read(tmp_path / "out" / "Song" / meta["tracks"][0]["file"], always_2d=True)
    assert np.max(np.abs(kick)) == pytest.approx(0.99, abs=1e-3)
    assert not list((tmp_path / "out").glob(".*part"))


def test_write_song_skips_a_song_without_bass(tmp_path: Path) -> None:
    project, rendered = _project(tmp_path, [(LmmsTrack(1, "kick", "kicker"), _clicks(120, 1.0)),
                                            (LmmsTrack(2, "Pad", "organic"), np.stack([_tone(880, 1.0)] * 2))])
    result = write_song(project, rendered, tmp_path / "Song", "demos/Saber-X.mmpz", COPYRIGHT)
    assert not result.kept and result.reason == "no bass track"
    assert not (tmp_path / "Song").exists()


def test_active_ranges_leave_out_silence() -> None:
    mix = np.zeros((2, 6 * SR), dtype=np.float32)
    mix[:, SR : 3 * SR] = 0.1
    mix[:, 4 * SR : 5 * SR] = 0.1
    assert active_ranges(mix) == [[1.0, 3.0], [4.0, 5.0]]


def _fake_set(root: Path, songs: dict[str, tuple[str, float]], seconds: float = 4.0) -> Path:
    """A miniature ``data/lmms``: per song a drum click track, a bass tone and a synth, at ``bpm``."""
    rng = np.random.default_rng(1)
    entries = {}
    for name, (split, bpm) in songs.items():
        d = root / name
        d.mkdir(parents=True)
        tracks = []
        for i, (stem, audio) in enumerate((("drums", _clicks(bpm, seconds) * 0.5),
                                           ("bass", np.stack([_tone(55, seconds)] * 2)),
                                           ("other", (0.05 * rng.standard_normal((2, int(seconds * SR)))).astype(np.float32)),
                                           ("other", np.stack([_tone(660, seconds, 0.1)] * 2)))):
            file = f"{i + 1:02d}_{stem}.wav"
            sf.write(d / file, audio.T, SR, subtype="FLOAT")
            tracks.append({"file": file, "stem": stem, "name": stem})
        (d / "tracks.json").write_text(json.dumps({"song": name, "bpm": bpm, "licence": "CC-BY-SA-4",
                                                   "active": [[0.0, seconds]], "tracks": tracks}))
        entries[name] = {"split": split, "seconds": seconds, "bpm": bpm, "licence": "CC-BY-SA-4"}
    (root / "dataset.json").write_text(json.dumps({"songs": entries}))
    return root


@pytest.fixture(scope="module")
def lmms_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _fake_set(tmp_path_factory.mktemp("lmms"), {"A": ("train", 120.0), "B": ("train", 128.0),
                                                       "C": ("train", 70.0), "V": ("valid", 140.0)})


def test_load_lmms_reads_the_split_and_caches_the_stems(lmms_root: Path) -> None:
    train, valid = load_lmms(lmms_root, "train"), load_lmms(lmms_root, "valid")
    assert [s.name for s in train] == ["A", "B", "C"] and [s.name for s in valid] == ["V"]
    song = train[0]
    assert song.stems.shape == (3, 2, 4 * SR) and song.stems.dtype == np.float16
    assert isinstance(song.stems, np.memmap)  # shared through the page cache
    drums, bass, other = song.stems.astype(np.float32)
    np.testing.assert_allclose(bass[0], _tone(55, 4.0), atol=1e-3)
    assert np.max(drums) == pytest.approx(0.5, abs=1e-3)
    assert np.abs(other).max() > 0.1  # the two "other" tracks summed
    assert song.beat_samples == pytest.approx(SR / 2) and song.active.tolist() == [[0, 4 * SR]]
    written = (lmms_root / "A" / CACHE_NAME).stat().st_mtime_ns
    stem_cache(lmms_root / "A")
    assert (lmms_root / "A" / CACHE_NAME).stat().st_mtime_ns == written  # read back, not decoded again


def test_load_lmms_refuses_what_it_cannot_use(tmp_path: Path, lmms_root: Path) -> None:
    with pytest.raises(ConfigError, match="stemstream data lmms"):
        load_lmms(tmp_path, "train")
    with pytest.raises(ConfigError, match="split"):
        load_lmms(lmms_root, "test")
    shutil.copytree(lmms_root / "A", tmp_path / "set" / "A")
    meta = json.loads((tmp_path / "set" / "A" / "tracks.json").read_text())
    meta["tracks"][0]["stem"] = "vocals"
    (tmp_path / "set" / "A" / "tracks.json").write_text(json.dumps(meta))
    (tmp_path / "set" / "A" / CACHE_NAME).unlink()
    (tmp_path / "set" / "dataset.json").write_text(json.dumps({"songs": {"A": {"split": "train"}}}))
    with pytest.raises(Exception, match="vocals"):
        load_lmms(tmp_path / "set", "train")


def test_the_generic_loader_reads_a_rendered_song(lmms_root: Path) -> None:
    from stemstream.export.data.loaders import load_tracks

    tracks = {t.name: t for t in load_tracks(lmms_root)}
    assert sorted(tracks) == ["A", "B", "C", "V"]
    assert sorted(tracks["A"].stems) == ["bass", "drums", "other"]


# ----------------------------------------------------------------------- tempo


def test_tempo_ratio_folds_half_and_double_time() -> None:
    assert tempo_ratio(150, 140) == pytest.approx(150 / 140)
    assert tempo_ratio(70, 140) == pytest.approx(1.0) and tempo_ratio(280, 140) == pytest.approx(1.0)
    assert 1 / np.sqrt(2) <= tempo_ratio(87, 200) < np.sqrt(2)


def test_drums_in_tempo_fall_on_the_target_beats() -> None:
    source = RenderedSong("src", _clicks(150, 8.0).astype(np.float16)[None].repeat(3, axis=0), 150.0, "x",
                          np.array([[0, 8 * SR]]))
    out = drums_in_tempo(source, 140.0, 3 * SR, np.random.default_rng(0))
    assert out.shape == (2, 3 * SR)
    peaks = [int(np.argmax(np.abs(out[0, int(b) - 200 : int(b) + 200]))) - 200
             for b in np.arange(0, 3 * SR - 300, SR * 60 / 140)[1:]]
    assert max(abs(p) for p in peaks) <= 2, peaks  # every beat within 2 samples of the 140 bpm grid
    partners = tempo_partners(source, [source, RenderedSong("near", source.stems, 160.0, "x", source.active),
                                       RenderedSong("far", source.stems, 100.0, "x", source.active)])
    assert [s.name for s in partners] == ["near"]


# ---------------------------------------------------------------------- beats


def _fake_kit_folder(root: Path) -> Path:
    """Every sample the kit names, as short FLACs: drums a decaying noise burst, basses a 55 Hz tone."""
    rng = np.random.default_rng(2)
    root.mkdir(parents=True, exist_ok=True)
    decay = np.exp(-np.arange(SR // 10) / 400.0).astype(np.float32)
    for names in KIT.values():
        for name in names:
            sf.write(root / f"{name}.flac", 0.5 * decay * rng.standard_normal(SR // 10).astype(np.float32), SR)
    for name in BASS_ROOTS:
        sf.write(root / f"{name}.flac", _tone(55, 0.5, 0.5), SR)
    return root


@pytest.fixture(scope="module")
def kit_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _fake_kit_folder(tmp_path_factory.mktemp("sonic-pi"))


@pytest.mark.parametrize("style", list(STYLES))
def test_groove_plays_its_kick_on_the_grid(kit_root: Path, style: str) -> None:
    kit = load_kit(kit_root)
    bpm = 125.0
    drums, bass = groove(kit, bpm, 4 * SR, np.random.default_rng(3), style)
    assert drums.shape == bass.shape == (2, 4 * SR) and np.isfinite(drums).all() and np.isfinite(bass).all()
    assert np.abs(bass).max() > 0.1 and np.abs(drums).max() > 0.1
    assert low_band_fraction(bass) > 0.9  # the 55 Hz tone, pitched within an octave
    step = 60 / bpm / 4 * SR
    kick = [i for i, s in enumerate(STYLES[style]["kick"]) if s == "x"]
    assert np.abs(drums[:, :40]).max() > 0.1  # a kick on the bar at sample 0
    for i in kick[1:]:  # the first bar's other kicks start exactly on their 16th
        at = int(round(i * step))
        assert np.abs(drums[:, at : at + 40]).max() > 5 * np.abs(drums[:, at - 40 : at]).max(), (i, at)


def test_groove_is_seeded_and_refuses_unknown_styles(kit_root: Path) -> None:
    kit = load_kit(kit_root)
    a = groove(kit, 140.0, SR, np.random.default_rng(7))
    b = groove(kit, 140.0, SR, np.random.default_rng(7))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    with pytest.raises(ConfigError, match="style"):
        groove(kit, 140.0, SR, np.random.default_rng(7), "polka")
    with pytest.raises(ConfigError, match="sonic-pi-samples"):
        load_kit(kit_root.parent / "nothing-here")


@pytest.mark.skipif(not Path("/usr/share/doc/sonic-pi-samples/copyright").is_file(),
                    reason="Debian package sonic-pi-samples not installed (apt-get install sonic-pi-samples)")
def test_the_kit_uses_only_cc0_samples_of_the_package() -> None:
    import fnmatch

    from stemstream.export.data.lmms import parse_dep5

    stanzas = parse_dep5(Path("/usr/share/doc/sonic-pi-samples/copyright").read_text())
    for name in [n for names in KIT.values() for n in names] + list(BASS_ROOTS):
        found = [lic for patterns, lic in stanzas if any(fnmatch.fnmatchcase(f"etc/samples/{name}.flac", p)
                                                         for p in patterns)]
        assert found and found[-1].licence == "CC0", name
    kit = load_kit(SONIC_PI_SAMPLES)
    assert sum(len(v) for v in kit.drums.values()) == sum(len(v) for v in KIT.values())


# --------------------------------------------------------------------- recipes


@pytest.fixture(scope="module")
def real_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A miniature ``realdata-train``: one MIR-1K singer per split, one MusicDelta song per split."""
    root = tmp_path_factory.mktemp("realdata-train")
    rng = np.random.default_rng(0)
    for singer in ("abjones", "amy"):
        d = root / "mir1k" / singer
        d.mkdir(parents=True)
        for part in ("vocals", "accompaniment"):
            sf.write(d / f"{singer}_1_01.{part}.ogg", (0.1 * rng.standard_normal(2 * 16000)).astype(np.float32), 16000)
    for song in ("Beatles", "Country1"):
        d = root / "musicdelta" / song
        d.mkdir(parents=True)
        tracks = []
        for i, label in enumerate(("drums", "bass", "guitar", "vocals")):
            sf.write(d / f"{i}_{label}.flac", (0.1 * rng.standard_normal(3 * SR)).astype(np.float32), SR)
            tracks.append({"file": f"{i}_{label}.flac", "stem": label})
        (d / "tracks.json").write_text(json.dumps({"tracks": tracks}))
    return root


def _synth() -> SongSet:
    rng = np.random.default_rng(4)
    return SongSet(["s0"], [(0.1 * rng.standard_normal((4, 2, 3 * SR))).astype(np.float32)], "synthetic")


@pytest.fixture(scope="module")
def sources(real_root: Path, lmms_root: Path, kit_root: Path) -> DjSources:
    return DjSources.load(real_root, _synth(), "train", lmms_root=lmms_root, beats_root=kit_root)


@pytest.mark.parametrize("recipe", list(LMMS_RECIPES) + list(BEATS_RECIPES))
def test_every_lmms_recipe_gives_a_mixture_that_is_the_sum_of_its_targets(sources: DjSources, recipe: str) -> None:
    stems, groups, valid, band = DjExampleMaker(sources).make(SR // 2, np.random.default_rng(9), recipe)
    assert stems.shape == (4, 2, SR // 2) and np.isfinite(stems).all()
    assert measure(stems.sum(axis=0)).rms_dbfs > -40
    assert valid.tolist() == [True] * 4 and np.array_equal(groups, np.eye(4))
    assert band == (8000.0 if recipe.startswith("mir1k") else 0.0)
    assert stems[1].any() and stems[2].any()  # drums and bass
    assert stems[0].any() == ("over" in recipe)  # a voice only where the recipe puts one
    batch = DjSampler(sources, SR // 4, seed=5, recipes={recipe: 1.0}).batch(2)
    torch.testing.assert_close(batch.mix, batch.targets.sum(dim=1))


def test_lmms_remix_takes_drums_from_a_song_in_tempo(sources: DjSources) -> None:
    song = next(s for s in sources.lmms if s.name == "A")
    assert [s.name for s in tempo_partners(song, sources.lmms)] == ["B", "C"]  # 128 and 70 (half time) bpm


def test_sources_describe_the_lmms_songs(sources: DjSources) -> None:
    info = sources.describe()
    assert info["lmms_songs"] == ["A", "B", "C"] and info["lmms_minutes"] == pytest.approx(0.2)
    assert info["lmms_licences"] == {"CC-BY-SA-4": 3}
    assert info["sonic_pi_samples"] == sum(len(v) for v in KIT.values()) + len(BASS_ROOTS)
    assert DjExampleMaker(sources).names == list(RECIPES) + list(LMMS_RECIPES) + list(BEATS_RECIPES)
    no_beats = DjSources(sources.synth, sources.musicdelta, sources.mir1k, sources.lmms, None)
    assert DjExampleMaker(no_beats).names == list(RECIPES) + list(LMMS_RECIPES)
    with pytest.raises(ConfigError, match="sonic-pi-samples"):
        DjExampleMaker(no_beats, {"beats_lmms": 1.0})


def test_the_electronic_share_scales_only_the_electronic_recipes(sources: DjSources) -> None:
    full, low = DjExampleMaker(sources), DjExampleMaker(sources, electronic_share=0.25)
    electronic = set(LMMS_RECIPES) | set(BEATS_RECIPES)
    for name, p_full, p_low in zip(full.names, full.p, low.p):
        w_full, w_low = p_full / full.p[0], p_low / low.p[0]  # relative to "synth", never scaled
        assert w_low == pytest.approx(w_full * (0.25 if name in electronic else 1.0))
    share = sum(w for k, w in {**LMMS_RECIPES, **BEATS_RECIPES}.items()) * 0.25
    assert sum(p for k, p in zip(low.names, low.p) if k in electronic) == pytest.approx(share / (1 + share))
    for bad in (0.0, -1.0, float("nan"), 11.0):
        with pytest.raises(ConfigError, match="electronic_share"):
            DjExampleMaker(sources, electronic_share=bad)


def test_the_sampler_works_without_lmms(real_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dj_data, "DEFAULT_LMMS_ROOT", tmp_path / "no-lmms")
    plain = DjSources.load(real_root, _synth(), "train")  # "auto": no data/lmms here
    assert plain.lmms == [] and plain.beats is None  # the kit is read only for the LMMS recipes
    assert set(plain.describe()) == {"synth_songs", "synth_minutes", "musicdelta_songs", "mir1k_clips",
                                     "mir1k_singers", "mir1k_minutes"}  # as before LMMS
    assert DjSources.load(real_root, _synth(), "train", lmms_root=None).lmms == []
    maker = DjExampleMaker(plain)
    assert maker.names == list(RECIPES)
    a = DjSampler(plain, 2205, seed=3).batch(3)
    b = DjSampler(plain, 2205, seed=3, recipes=dict(RECIPES)).batch(3)  # the draws of RECIPES alone
    assert torch.equal(a.mix, b.mix)
    torch.testing.assert_close(a.mix, a.targets.sum(dim=1))
    with pytest.raises(ConfigError, match="LMMS"):
        DjExampleMaker(plain, {"lmms": 1.0})
    with pytest.raises(ConfigError, match="LMMS"):
        maker.make(2205, np.random.default_rng(0), "lmms")


def test_auto_reads_the_default_set(real_root: Path, lmms_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dj_data, "DEFAULT_LMMS_ROOT", lmms_root)
    assert [s.name for s in DjSources.load(real_root, _synth(), "valid").lmms] == ["V"]
    assert electronic.DEFAULT_LMMS_ROOT.name == "lmms" and electronic.DEFAULT_LMMS_ROOT.parent.name == "data"


def test_relabelling_applies_todays_rules_without_rendering(tmp_path: Path) -> None:
    from stemstream.export.data.lmms_render import relabel_song

    project, rendered = _project(tmp_path, [
        (LmmsTrack(1, "kick", "audiofileprocessor", sample="drums/kick01.ogg"), _clicks(120, 2.0)),
        (LmmsTrack(2, "Bass", "tripleoscillator"), np.stack([_tone(55, 2.0)] * 2)),
        (LmmsTrack(3, "Lead", "tripleoscillator"), np.stack([_tone(880, 2.0)] * 2))])
    song = tmp_path / "Song"
    assert write_song(project, rendered, song, "demos/Saber-X.mmpz", COPYRIGHT).kept
    meta = json.loads((song / "tracks.json").read_text())
    meta["tracks"][2].update(name="Default preset", plugin="kicker", stem="drums", rule="an old rule")
    meta["tracks"][0]["stem"] = "other"
    (song / "tracks.json").write_text(json.dumps(meta))
    result = relabel_song(song)
    meta = json.loads((song / "tracks.json").read_text())
    assert result.kept and [t["stem"] for t in meta["tracks"]] == ["drums", "bass"]
    assert meta["dropped"][-1]["reason"].startswith("unnamed 'kicker'")
    assert sorted(p.name for p in song.glob("*.flac")) == [t["file"] for t in meta["tracks"]]
    meta["tracks"][1]["name"] = "Pad"  # no bass any more
    (song / "tracks.json").write_text(json.dumps(meta))
    assert relabel_song(song).reason.startswith("no bass track")


def test_dj_training_scores_the_held_out_lmms_songs_as_their_own_column(
        real_root: Path, lmms_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_live_config) -> None:
    from dataclasses import replace
    from functools import partial

    from stemstream.export.train import loop
    from stemstream.export.train.configs import TrainConfig
    from stemstream.realtime.models.hybrid import HybridSeparator
    from stemstream.realtime.stems import DJ_STEMS

    monkeypatch.setattr(dj_data, "DEFAULT_LMMS_ROOT", lmms_root)
    monkeypatch.setattr(loop, "validation_batch", partial(dj_data.validation_batch, seconds=0.5))  # 6 s: minutes
    cfg = TrainConfig(name="tiny-dj", model=replace(tiny_live_config, stems=DJ_STEMS), steps=2, time_budget_s=0.0,
                      batch=2, excerpt_seconds=0.25, valid_every=2, data="dj", real_data=str(real_root),
                      electronic=False, init_from="a starting point")
    torch.manual_seed(0)
    record = loop.train(cfg, HybridSeparator(cfg.model), _synth(), _synth(), tmp_path / "run", progress=False)
    columns = [*DJ_STEMS, "mean"]
    assert set(record["train"]["init_valid"]) == {*columns, *(f"lmms_{k}" for k in columns)}
    last = record["valid_history"][-1]
    assert np.isfinite(last["mean"]) and np.isfinite(last["lmms_mean"])
    assert "lmms_vocals" in (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0]
    assert "lmms_songs" not in record["data"]["dj_sources"]  # validated on, not trained on


def test_weight_files_are_scored_on_every_validation_column(
        real_root: Path, lmms_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_live_config) -> None:
    from dataclasses import replace
    from functools import partial

    from stemstream.export.train import loop, score_validation
    from stemstream.realtime.models.hybrid import ARCHITECTURE, HybridSeparator
    from stemstream.realtime.models.weights import save_weights
    from stemstream.realtime.stems import DJ_STEMS, STEMS

    monkeypatch.setattr(dj_data, "DEFAULT_LMMS_ROOT", lmms_root)
    monkeypatch.setattr(loop, "validation_batch", partial(dj_data.validation_batch, seconds=0.5))
    song = tmp_path / "synth" / "valid" / "s0"
    song.mkdir(parents=True)
    for k, stem in enumerate(STEMS):
        sf.write(song / f"{stem}.wav", _synth().audio[0][k].T, SR)
    config = replace(tiny_live_config, stems=DJ_STEMS)
    torch.manual_seed(1)
    weights = tmp_path / "w.safetensors"
    save_weights(weights, HybridSeparator(config).eval(), ARCHITECTURE, config.to_json(), {})
    scores = score_validation.score_files("dj-live", [weights], tmp_path / "synth", real_data=real_root)
    assert set(scores[str(weights)]) == {*DJ_STEMS, "mean", *(f"lmms_{s}" for s in (*DJ_STEMS, "mean"))}
    # the same file followed by the +wiener stage, streamed as the engine runs it: every column, other figures
    filtered = score_validation.score_files("dj-live", [weights], tmp_path / "synth", real_data=real_root,
                                            post_filter=PostFilter("+wiener", 1024))[str(weights)]
    assert set(filtered) == set(scores[str(weights)]) and np.isfinite(filtered["mean"])
    assert filtered != scores[str(weights)]
    assert score_validation.main(["--config", "no-such-config", str(weights)]) == 2  # one line, no traceback
