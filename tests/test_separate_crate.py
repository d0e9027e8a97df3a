"""Crates: files and folders in, OUT/<song>/<stem>.<ext> out, the same layout for one song or many;
names that never overwrite another song's; done songs skipped, interrupted crates resumed; one bad
file skipped with a non-zero exit; stems, formats and bit depths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from stemstream.bridge.files import sinks
from stemstream.bridge.files.crate import MANIFEST_DIR, assign_names, read_manifest, scan
from stemstream.realtime.stems import DJ_STEMS, STEMS
from tests.separate_support import files_under, separate, song, tiny_dj_weights  # noqa: F401 - a fixture

WAVS = sorted(f"{s}.wav" for s in STEMS)


def test_a_crate_of_folders_and_files(tmp_path: Path, tiny_live_weights: Path, capsys) -> None:
    crate = tmp_path / "crate"
    song(crate / "a" / "intro.wav")
    song(crate / "b" / "intro.flac", rate=48000, channels=1, subtype="PCM_24")
    song(crate / "b" / "deep" / "Outro.WAV", seed=2)
    song(crate / "b" / ".hidden.wav")
    (crate / "b" / "notes.txt").write_text("not audio")
    (crate / "b" / "set.stem.mp4").write_bytes(b"not a song")
    single = song(tmp_path / "single.wav", seed=3)
    out = crate / "out"  # inside the crate: never read back as songs
    code, lines, err = separate(capsys, crate, single, "-o", out, "--model", tiny_live_weights)
    assert code == 0 and err == [], err
    assert files_under(out) == sorted([MANIFEST_DIR, *(f"{MANIFEST_DIR}/{n}.json" for n in
                                                      ("Outro", "intro", "intro (b)", "single"))]
                                      + [d for n in ("Outro", "intro", "intro (b)", "single")
                                         for d in [n] + [f"{n}/{w}" for w in WAVS]])
    assert lines[0].startswith("4 songs -> ") and "[4/4] separated" in "\n".join(lines)
    assert sf.info(str(out / "intro (b)" / "bass.wav")).samplerate == 48000
    assert sf.info(str(out / "intro (b)" / "bass.wav")).channels == 1
    manifest = read_manifest(out, "intro (b)")
    assert manifest["complete"] and manifest["input"]["path"] == str(crate / "b" / "intro.flac")
    weights = manifest["settings"].pop("weights")
    assert manifest["settings"] == {"model": "tiny-live", "stems": list(STEMS), "format": "wav", "bit_depth": "32f",
                                    "codec": None}
    assert len(weights) == 64  # the weight file's SHA-256: other weights of the same name are not "done"

    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.wav")}
    code, lines, _ = separate(capsys, crate, single, "-o", out, "--model", tiny_live_weights)
    assert code == 0 and sum(line.split()[1] == "skipped" for line in lines if line.startswith("[")) == 4
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.wav")} == before  # nothing rewritten
    code, lines, _ = separate(capsys, single, "-o", out, "--model", tiny_live_weights, "--force")
    assert code == 0 and any("separated" in line for line in lines)
    song(single, seed=4)  # the input changed: no longer done
    code, lines, _ = separate(capsys, single, "-o", out, "--model", tiny_live_weights)
    assert code == 0 and "[1/1] separated" in lines[-3]


def test_names_stay_with_their_songs(tmp_path: Path) -> None:
    a, b = song(tmp_path / "a" / "intro.wav"), song(tmp_path / "b" / "intro.wav")
    out = tmp_path / "out"
    assert [s.name for s in assign_names([a, b], out)] == ["intro", "intro (b)"]
    (out / MANIFEST_DIR).mkdir(parents=True)  # an earlier run gave "intro" to b's song
    (out / MANIFEST_DIR / "intro.json").write_text(f'{{"input": {{"path": "{b}"}}}}')
    assert [s.name for s in assign_names([a, b], out)] == ["intro (a)", "intro"]
    (out / "intro (a)").mkdir()  # something of someone else's, without a manifest
    assert [s.name for s in assign_names([a, b], out)] == ["intro (2)", "intro"]
    assert [s.name for s in assign_names([song(tmp_path / "x" / (".." + "y" * 240 + ".wav"))], out)] == ["y" * 200]
    songs, missing = scan([tmp_path / "a", a, tmp_path / "nope.wav"], out)
    assert songs == [a] and missing == [tmp_path / "nope.wav"]


def test_one_bad_song_is_skipped_and_the_exit_code_says_so(tmp_path: Path, tiny_live_weights: Path, capsys) -> None:
    good = song(tmp_path / "crate" / "good.wav")
    (tmp_path / "crate" / "bad.mp3").write_bytes(b"ID3" + bytes(500))
    out = tmp_path / "out"
    code, lines, err = separate(capsys, tmp_path / "crate", tmp_path / "missing.wav", "-o", out,
                                "--model", tiny_live_weights)
    assert code == 1, (lines, err)  # some failed, the rest are done
    assert len(err) == 2 and "missing.wav" in err[0] and "not found" in err[0]
    assert "bad.mp3" in err[1] and "cannot read audio" in err[1]
    assert files_under(out / "good") == WAVS and not (out / "bad").exists()
    assert lines[-2] == "crate: 1 separated, 0 skipped (done), 2 failed"
    code, _, err = separate(capsys, tmp_path / "crate" / "bad.mp3", "-o", tmp_path / "o2", "--model", tiny_live_weights)
    assert code == 2 and len(err) == 1 and not (tmp_path / "o2").exists()  # nothing done: 2, no folder left
    assert good.exists()


def test_an_interrupted_crate_resumes(tmp_path: Path, tiny_live_weights: Path, capsys, monkeypatch) -> None:
    crate = tmp_path / "crate"
    for k in range(3):
        song(crate / f"song{k}.wav", seconds=1.0, seed=k)  # 11 blocks of 4096 each
    out = tmp_path / "out"
    real_write = sinks.SoundFileSink.write
    calls = []

    def interrupted(self, stems, mix=None):  # Ctrl-C in the middle of the second song
        calls.append(1)
        if len(calls) == 15:
            raise KeyboardInterrupt
        return real_write(self, stems, mix)

    monkeypatch.setattr(sinks.SoundFileSink, "write", interrupted)
    code, lines, err = separate(capsys, crate, "-o", out, "--model", tiny_live_weights, "--block-size", "4096")
    assert code == 130 and "run the same command again to resume" in lines[-1]
    assert files_under(out) == sorted([MANIFEST_DIR, f"{MANIFEST_DIR}/song0.json", "song0"]
                                      + [f"song0/{w}" for w in WAVS])  # no half song, no temporaries
    monkeypatch.undo()

    # a killed run leaves its temporaries and its first manifest: the next run cleans them up
    (out / "song1").mkdir()
    (out / "song1" / ".bass.k1ll3d00.part.wav").write_bytes(b"half a file")
    (out / MANIFEST_DIR / "song1.json").write_text(f'{{"input": {{"path": "{crate / "song1.wav"}"}}, "complete": false}}')
    code, lines, _ = separate(capsys, crate, "-o", out, "--model", tiny_live_weights)
    assert code == 0 and [line.split()[1] for line in lines if line.startswith("[")] == ["skipped", "separated",
                                                                                           "separated"]
    assert files_under(out / "song1") == WAVS


def test_stems_and_formats(tmp_path: Path, tiny_dj_weights: Path, capsys) -> None:
    src = song(tmp_path / "quiet.wav", level=0.05)
    out = tmp_path / "out"
    code, _, err = separate(capsys, src, "-o", out, "--model", tiny_dj_weights, "--stems", "acapella")
    assert code == 0 and files_under(out / "quiet") == ["vocals.wav"], err  # only what was asked for
    code, _, _ = separate(capsys, src, "-o", out, "--model", tiny_dj_weights, "--stems", "vocals", "--format", "flac")
    assert code == 0 and files_under(out / "quiet") == ["instrumental.flac", "vocals.flac", "vocals.wav"]
    assert sf.info(str(out / "quiet" / "vocals.flac")).subtype == "PCM_24"
    vocals, _ = sf.read(out / "quiet" / "vocals.flac", dtype="float32")
    instrumental, _ = sf.read(out / "quiet" / "instrumental.flac", dtype="float32")
    np.testing.assert_allclose(vocals + instrumental, sf.read(src, dtype="float32")[0], atol=1e-4)

    src = song(tmp_path / "loud.wav", level=0.9)
    code, lines, _ = separate(capsys, src, "-o", out, "--model", tiny_dj_weights, "--bit-depth", "16")
    assert code == 0 and {sf.info(str(out / "loud" / f"{s}.wav")).subtype for s in DJ_STEMS} == {"PCM_16"}
    clipped = [line for line in lines if "clipped" in line]
    assert len(clipped) == 1 and int(clipped[0].split()[2]) > 0  # 0.9 * noise goes above full scale
    assert np.abs(sf.read(out / "loud" / "drums.wav")[0]).max() <= 1.0

    for argv, needle in ((["--format", "flac", "--bit-depth", "32f"], "bit_depth='32f'"),
                         (["--codec", "alac"], "codec='alac'"), (["--format", "mp3"], "format='mp3'"),
                         (["--stems", "piano"], "--stems='piano'")):
        code, _, err = separate(capsys, src, "-o", tmp_path / "o2", "--model", tiny_dj_weights, *argv)
        assert code == 2 and len(err) == 1 and needle in err[0], err
    assert not (tmp_path / "o2").exists()


def test_wav_stems_too_long_for_wav_are_rf64(tmp_path: Path, tiny_live_weights: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(sinks, "WAV_MAX_BYTES", 100_000)  # as a 3.4-hour song would at 32-bit float
    src = song(tmp_path / "mix.wav", seconds=0.5)
    code, _, _ = separate(capsys, src, "-o", tmp_path / "out", "--model", tiny_live_weights)
    info = sf.info(str(tmp_path / "out" / "mix" / "bass.wav"))
    assert code == 0 and info.format == "RF64" and info.frames == 22050 and info.subtype == "FLOAT"
