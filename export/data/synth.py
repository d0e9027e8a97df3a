"""Synthetic multitrack songs: generated MIDI rendered per stem through a GM SoundFont.

Layout written by ``render_dataset``::

    DIR/dataset.json                      what was rendered (parameters, songs, speed)
    DIR/<song>/{bass,drums,guitar,piano[,other]}.wav   stems, float32 WAV, stereo, 44.1 kHz
    DIR/<song>/mixture.wav                exactly the float32 sum of the stems
    DIR/<song>/song.json                  tempo, meter, key, sections, chords, programs, mix

Determinism: song ``i`` of a dataset with seed ``K`` uses the seed
``SeedSequence([K, i])``, so songs render identically in any order and with any number of
workers. The mixture is ``((bass + drums) + guitar) + piano [+ other]`` in float32, in that
order, from the exact arrays written to the stem files.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np

from stemstream.export.data.composer import COMPOSER_VERSION, COMPOSER_VERSIONS
from stemstream.export.data.effects import apply_chain, draw_chain
from stemstream.export.data.wavio import write_wav
from stemstream.realtime.errors import bad_value
from stemstream.realtime.stems import MODEL_SAMPLE_RATE, STEMS

#: Default generator revision (see ``stemstream.export.data.composer.compose_song``).
GENERATOR_VERSION = COMPOSER_VERSION
MIN_SECONDS, MAX_SECONDS = 1.0, 600.0
MAX_SONGS = 100_000


def song_seed(dataset_seed: int, index: int) -> int:
    """The composition seed of song ``index`` in a dataset seeded ``dataset_seed``."""
    return int(np.random.SeedSequence([int(dataset_seed), int(index)]).generate_state(1)[0])


def song_name(index: int) -> str:
    return f"song{index:05d}"


def _gm_name(bank: int, program: int, soundfont: str) -> str:
    from stemstream.export.data.render import available_preset, preset_name

    return preset_name(*available_preset(bank, program, soundfont), soundfont)


def stem_soundfonts(soundfonts: tuple[str, ...], stems: list[str], seed: int) -> dict[str, str]:
    """The SoundFont each stem of a song renders with: the only one, or a seeded draw per stem
    (its own random stream, so the composition and the mix do not change with the list)."""
    if len(soundfonts) == 1:
        return {stem: soundfonts[0] for stem in stems}
    rng = np.random.default_rng([seed, 0x5F])
    return {stem: soundfonts[int(rng.integers(len(soundfonts)))] for stem in stems}


def render_song(out_dir: str | Path, index: int, seconds: float, dataset_seed: int,
                extra_other: bool = False, sample_rate: int = MODEL_SAMPLE_RATE,
                generator_version: int = GENERATOR_VERSION, soundfonts: tuple[str, ...] | None = None) -> dict:
    """Compose and render one song into ``out_dir/<song>/``; returns its ``song.json`` dict
    plus ``"cpu_seconds"`` (process time spent, not written to ``song.json``).

    ``soundfonts``: the GM SoundFonts to render with (default: FluidR3 GM only); with several,
    each stem draws one (:func:`stem_soundfonts`).
    """
    from stemstream.export.data.composer import compose_song, describe
    from stemstream.export.data.render import DEFAULT_SOUNDFONT, SongSynth, fluidsynth_version

    cpu0 = time.process_time()
    seed = song_seed(dataset_seed, index)
    song = compose_song(seed, seconds, extra_other, version=generator_version)
    rng = np.random.default_rng(seed ^ 0x5EED)
    stems_order = list(STEMS) + (["other"] if extra_other else [])
    total = int(round(seconds * sample_rate))
    audio: dict[str, np.ndarray] = {}
    stem_info: dict[str, dict] = {}
    fonts = stem_soundfonts(tuple(soundfonts or (DEFAULT_SOUNDFONT,)), stems_order, seed)
    rendered = {}
    for font in dict.fromkeys(fonts.values()):  # one synthesiser per SoundFont used, in stem order
        with SongSynth(sample_rate, soundfont=font) as synth:
            rendered.update({s: synth.render(song.stems[s], seconds, song.reverb, song.chorus)
                             for s in stems_order if fonts[s] == font})
    fx_rng = np.random.default_rng([seed, 0xFE])  # production effects: version 2 and later
    for stem in stems_order:
        score = song.stems[stem]
        x = rendered[stem]
        chain = draw_chain(stem, score.program, fx_rng) if generator_version >= 2 else []
        x = apply_chain(x, chain, sample_rate)
        # Level each stem by its loudness where it plays, then the song's random level.
        active = np.abs(x).max(axis=0) > 1e-4
        rms = float(np.sqrt(np.mean(x[:, active] ** 2))) if active.any() else 0.0
        gain = (10 ** (score.level_db / 20) * 0.1 / rms) if rms > 1e-6 else 1.0
        x *= np.float32(gain)
        audio[stem] = x
        stem_info[stem] = {
            "bank": score.bank,
            "program": score.program,
            "program_name": _gm_name(score.bank, score.program, fonts[stem]),
            "soundfont": os.path.basename(fonts[stem]),
            "pan": score.pan,
            "reverb_send": score.reverb_send,
            "chorus_send": score.chorus_send,
            "level_db": round(score.level_db, 3),
            "notes": len(score.notes),
            "roles": score.roles,
        }
        if generator_version >= 2:
            stem_info[stem]["effects"] = chain
    # Fade the last 20 ms (songs stop mid-note) and normalise to a random peak level.
    fade = min(total, int(0.02 * sample_rate))
    ramp = np.linspace(1.0, 0.0, fade, dtype=np.float32)
    mix64 = np.zeros((2, total), dtype=np.float64)
    for stem in stems_order:
        if fade:
            audio[stem][:, total - fade:] *= ramp
        mix64 += audio[stem]
    peak = max(float(np.abs(mix64).max()), max(float(np.abs(a).max()) for a in audio.values()), 1e-9)
    target = float(rng.uniform(0.5, 0.9))
    norm = np.float32(target / peak)
    song_dir = Path(out_dir) / song_name(index)
    song_dir.mkdir(parents=True, exist_ok=True)
    mixture = np.zeros((2, total), dtype=np.float32)
    for stem in stems_order:
        x = (audio[stem] * norm).astype(np.float32)
        mixture += x
        write_wav(song_dir / f"{stem}.wav", x, sample_rate)
        env = np.abs(x).max(axis=0)
        frames = env[: total // 4410 * 4410].reshape(-1, 4410).max(axis=1) if total >= 4410 else env[:1]
        stem_info[stem]["active_fraction"] = round(float(np.mean(frames > 1e-3)), 4)
        stem_info[stem]["peak"] = round(float(env.max()), 6)
    write_wav(song_dir / "mixture.wav", mixture, sample_rate)
    info = {
        "name": song_name(index),
        "index": index,
        "seed": seed,
        "dataset_seed": int(dataset_seed),
        "seconds": float(seconds),
        "sample_rate": sample_rate,
        "channels": 2,
        "num_samples": total,
        "stems": stems_order,
        **describe(song),
        "instruments": stem_info,
        "reverb": {k: round(v, 4) for k, v in song.reverb.items()},
        "chorus": {k: round(v, 4) if isinstance(v, float) else v for k, v in song.chorus.items()},
        "mixture_peak": round(float(np.abs(mixture).max()), 6),
        "normalisation_gain": float(norm),
        "mixture_is": "float32 sum of the stem files in the order of 'stems'",
        "renderer": {"fluidsynth": fluidsynth_version(),
                     "soundfont": ", ".join(os.path.basename(f) for f in dict.fromkeys(fonts.values()))},
        "generator_version": generator_version,
    }
    (song_dir / "song.json").write_text(json.dumps(info, indent=1) + "\n")
    info["cpu_seconds"] = time.process_time() - cpu0
    return info


def _render_job(job: tuple[str, int, float, int, bool, int, tuple[str, ...]]) -> dict:
    out_dir, index, seconds, seed, extra_other, version, soundfonts = job
    info = render_song(out_dir, index, seconds, seed, extra_other, generator_version=version, soundfonts=soundfonts)
    return {"name": info["name"], "cpu_seconds": info["cpu_seconds"], "style": info["style"],
            "active": {s: v["active_fraction"] for s, v in info["instruments"].items()}}


def validate_args(out_dir: str | Path, songs: int, seconds: float, seed: int, workers: int,
                  generator_version: int = GENERATOR_VERSION) -> Path:
    """Check ``render_dataset`` arguments and make ``out_dir``; raises ``ConfigError``."""
    if generator_version not in COMPOSER_VERSIONS:
        raise bad_value("generator_version", generator_version, f"one of {COMPOSER_VERSIONS}")
    if isinstance(songs, bool) or not isinstance(songs, (int, np.integer)) or not 1 <= songs <= MAX_SONGS:
        raise bad_value("songs", songs, f"an integer in [1, {MAX_SONGS}]")
    if not isinstance(seconds, (int, float)) or not MIN_SECONDS <= float(seconds) <= MAX_SECONDS:
        raise bad_value("seconds", seconds, f"a number of seconds in [{MIN_SECONDS}, {MAX_SECONDS}]")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise bad_value("seed", seed, "a non-negative integer")
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or not 1 <= workers <= 64:
        raise bad_value("workers", workers, "an integer in [1, 64]")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise bad_value("out", str(out_dir), "a directory (a file is in the way)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write_test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise bad_value("out", str(out_dir), f"a writable directory ({exc.strerror})") from None
    return out


def render_dataset(out_dir: str | Path, songs: int, seconds: float, seed: int, workers: int = 2,
                   extra_other: bool = False,
                   progress: Callable[[int, int, dict], None] | None = None,
                   generator_version: int = GENERATOR_VERSION, soundfonts: tuple[str, ...] | None = None) -> dict:
    """Render ``songs`` songs of ``seconds`` seconds into ``out_dir`` (layout in the module
    docstring) with ``workers`` processes; writes and returns ``dataset.json``'s dict.

    ``progress(done, total, song_summary)`` is called after each song. ``generator_version``
    reproduces data made by an older composer revision (``data/synth`` is version 1).
    ``soundfonts``: as in :func:`render_song` (default: FluidR3 GM). The returned dict's
    ``"speed"`` holds the wall time and the rendering speed in x real time per core
    (audio seconds rendered / CPU seconds spent by the workers).
    """
    out = validate_args(out_dir, songs, seconds, seed, workers, generator_version)
    from stemstream.export.data.render import DEFAULT_SOUNDFONT, check_soundfont_file, fluidsynth_version

    fonts = tuple(str(f) for f in (soundfonts or (DEFAULT_SOUNDFONT,)))
    for font in fonts:
        check_soundfont_file(font)
    jobs = [(str(out), i, float(seconds), int(seed), bool(extra_other), int(generator_version), fonts)
            for i in range(songs)]
    t0 = time.perf_counter()
    results: list[dict] = []
    if workers == 1 or songs == 1:
        for job in jobs:
            results.append(_render_job(job))
            if progress:
                progress(len(results), songs, results[-1])
    else:
        # "spawn": FluidSynth's and tqdm's threads make fork-after-use unsafe.
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(min(workers, songs)) as pool:
            for summary in pool.imap_unordered(_render_job, jobs):
                results.append(summary)
                if progress:
                    progress(len(results), songs, summary)
    wall = time.perf_counter() - t0
    cpu = sum(r["cpu_seconds"] for r in results)
    results.sort(key=lambda r: r["name"])
    audio_seconds = songs * float(seconds)
    dataset = {
        "format": "stemstream-synth",
        "generator_version": int(generator_version),
        "seed": int(seed),
        "songs": songs,
        "seconds": float(seconds),
        "sample_rate": MODEL_SAMPLE_RATE,
        "channels": 2,
        "stems": list(STEMS) + (["other"] if extra_other else []),
        "extra_other": bool(extra_other),
        "song_names": [r["name"] for r in results],
        "styles": {r["name"]: r["style"] for r in results},
        "renderer": {"fluidsynth": fluidsynth_version(), "soundfont": ", ".join(fonts)},
        "speed": {
            "workers": workers,
            "wall_seconds": round(wall, 3),
            "cpu_seconds": round(cpu, 3),
            "x_realtime_per_core": round(audio_seconds / cpu, 2) if cpu > 0 else None,
            "x_realtime_wall": round(audio_seconds / wall, 2) if wall > 0 else None,
        },
    }
    (out / "dataset.json").write_text(json.dumps(dataset, indent=1) + "\n")
    return dataset
