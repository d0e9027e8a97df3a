"""Render LMMS' demo projects one track per file and write them as labelled multitracks.

``stemstream data lmms --out data/lmms`` (``bridge/cli/data.py``) calls :func:`build_lmms_set`:
for each project of ``lmms-common`` (``/usr/share/lmms/projects``, templates left out) it renders
each track alone, ``lmms render`` of the project with every other instrument and sample track removed
(:func:`stemstream.export.data.lmms.solo_project`; the same audio as ``lmms rendertracks``, which
only mutes them and still runs their synths, so a song of many tracks renders several times faster),
headless (``QT_QPA_PLATFORM=offscreen``; ``--allowroot`` when run as root) at 44.1 kHz, 32-bit
float, oversampling 1 (LMMS 1.2.2's 2x oversampling wrote some tracks as 1e34-sized garbage); it
reads each track, drops silent ones and any with non-finite or absurd samples,
labels the rest (:func:`stemstream.export.data.lmms.label_track`, the spectrum for tracks no rule
names) and writes

* ``OUT/<song>/NN_<name>.flac``: each track, stereo 24-bit, every track of a song scaled by one
  gain (recorded) so that none clips;
* ``OUT/<song>/tracks.json``: per track its file, name, plugin, preset or sample, ``stem``, the
  rule that gave it, peak, level and the share of energy below 250 Hz; per song the project, its
  licence and copyright holders (``debian/copyright``), the tempo and where the song is not silent;
* ``OUT/dataset.json``: the songs, the split (:data:`LMMS_VALID` held out), what was skipped and
  why, label counts and minutes, the LMMS version and the wall time.

A song needs a ``drums`` and a ``bass`` track to be kept. A song folder that already has its
``tracks.json`` is not rendered again but labelled again with the current rules
(:func:`relabel_song`), and a song ``dataset.json`` skipped for want of drums or bass is skipped
again (``force`` renders both anyway), so an interrupted build resumes, a change of the rules needs
no rendering, and a second run takes seconds.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from stemstream.export.data.lmms import (
    BASS_BAND_HZ, LMMS_COPYRIGHT, LMMS_PROJECTS, UNDECIDED, LmmsProject, LmmsTrack, label_by_spectrum,
    label_track, project_licence, read_project, solo_project,
)
from stemstream.realtime.errors import AudioInputError, StemstreamError, bad_value
from stemstream.realtime.stems import MODEL_SAMPLE_RATE

#: Songs held out for validation (whole songs, about 15 % of the minutes).
LMMS_VALID: tuple[str, ...] = ("CapDan-ZeroSumGame-OriginalByZakarra", "Oglsdl-PpTrip", "Skiessi-222")

SILENT_PEAK = 1e-4     # a track that never reaches this is silent (-80 dBFS)
ABSURD_PEAK = 64.0     # a float render above this is broken, not loud
ACTIVE_BLOCK_S = 1.0   # activity is recorded per block of this length
ACTIVE_BELOW_DB = 40.0  # a block more than this below the song's RMS counts as silent
RENDER_TRIES = 3       # attempts per track


@dataclass(frozen=True)
class SongResult:
    """What became of one project: ``kept`` with its folder, or the reason it was skipped."""

    name: str
    kept: bool
    reason: str
    seconds: float = 0.0
    stems: tuple[str, ...] = ()


def song_name(project: Path) -> str:
    """A folder name for a project: its file name without suffix, odd characters as ``-``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", project.stem).strip("-")


def find_projects(root: str | Path = LMMS_PROJECTS) -> list[Path]:
    """Every ``.mmp``/``.mmpz`` project under ``root`` except LMMS' empty templates, sorted."""
    base = Path(root)
    if not base.is_dir():
        raise bad_value("projects", str(base), "LMMS' project folder (apt-get install lmms lmms-common)")
    return sorted(p for p in base.rglob("*") if p.suffix in (".mmp", ".mmpz") and "templates" not in p.parts)


def lmms_version() -> str:
    """``lmms-common``'s Debian version, or ``unknown``."""
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "lmms-common"],
                             capture_output=True, text=True, timeout=30)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def render_tracks(project: Path, tracks: tuple[LmmsTrack, ...], out_dir: Path, timeout_s: float,
                  workers: int = 1) -> tuple[dict[int, Path], dict[int, str]]:
    """Each track rendered alone (``lmms render`` of its :func:`solo_project`) into ``out_dir``,
    ``workers`` LMMS processes at a time: ``(track number -> its WAV file, track number -> why it
    failed)``. ``timeout_s`` is for the whole project. A track LMMS fails on :data:`RENDER_TRIES`
    times is left out (the song is written without it); if it fails on every track, that is the error."""
    from concurrent.futures import ThreadPoolExecutor

    exe = shutil.which("lmms")
    if exe is None:
        raise StemstreamError("lmms is not installed: apt-get install -y lmms lmms-common")
    out_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    deadline = time.monotonic() + timeout_s

    def render(track: LmmsTrack) -> tuple[int, Path | None, str]:
        solo, wav = out_dir / f"{track.number}.mmp", out_dir / f"{track.number}.wav"
        solo.write_bytes(solo_project(project, track.number))
        cmd = [exe] + (["--allowroot"] if os.geteuid() == 0 else []) + [
            "render", str(solo), "-o", str(wav), "-f", "wav", "-a", "-x", "1", "-s", str(MODEL_SAMPLE_RATE)]
        why = ""
        for _ in range(RENDER_TRIES):  # LMMS now and then exits non-zero on a track it renders the next time
            try:
                done = subprocess.run(cmd, capture_output=True, text=True, env=env,
                                      timeout=max(deadline - time.monotonic(), 1.0))
            except subprocess.TimeoutExpired:
                return track.number, None, f"lmms did not finish within {timeout_s:g} s"
            if done.returncode == 0 and wav.is_file():
                solo.unlink()
                return track.number, wav, ""
            if "is empty" in done.stdout + done.stderr:  # LMMS refuses a song in which nothing plays
                return track.number, None, "silent (LMMS: nothing to render)"
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            why = f"lmms exited with {done.returncode} on track {track.number} ({last[:200]})"
            wav.unlink(missing_ok=True)
        return track.number, None, why

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = list(pool.map(render, tracks))
    timeouts = [why for _, wav, why in results if wav is None and "did not finish" in why]
    if timeouts:
        raise AudioInputError(f"{project.name}: {timeouts[0]}")
    files = {number: wav for number, wav, _ in results if wav is not None}
    if tracks and not files:
        raise AudioInputError(f"{project.name}: {results[-1][2]}")
    return files, {number: why for number, wav, why in results if wav is None}


def low_band_fraction(x: np.ndarray, sample_rate: int = MODEL_SAMPLE_RATE) -> float:
    """Share of the energy of ``x`` ``(channels, samples)`` below :data:`BASS_BAND_HZ` (Welch)."""
    from scipy.signal import welch

    mono = x.mean(axis=0) if x.ndim == 2 else x
    freqs, power = welch(mono, fs=sample_rate, nperseg=8192)
    total = float(power[freqs >= 20].sum())
    if total <= 0:
        return 0.0
    return float(power[(freqs >= 20) & (freqs < BASS_BAND_HZ)].sum()) / total


def active_ranges(mix: np.ndarray, sample_rate: int = MODEL_SAMPLE_RATE) -> list[list[float]]:
    """``[[start_s, end_s], ...]``: where ``mix`` is within :data:`ACTIVE_BELOW_DB` of its RMS."""
    block = int(ACTIVE_BLOCK_S * sample_rate)
    n = mix.shape[-1] // block
    if n == 0:
        return []
    energy = np.square(mix[..., : n * block].reshape(-1, n, block), dtype=np.float64).mean(axis=(0, 2))
    active = energy > energy.mean() * 10 ** (-ACTIVE_BELOW_DB / 10)
    ranges: list[list[float]] = []
    for i, on in enumerate(active):
        if on and ranges and ranges[-1][1] == i * ACTIVE_BLOCK_S:
            ranges[-1][1] = (i + 1) * ACTIVE_BLOCK_S
        elif on:
            ranges.append([i * ACTIVE_BLOCK_S, (i + 1) * ACTIVE_BLOCK_S])
    return ranges


def _describe(track: LmmsTrack) -> str:
    return track.preset or track.sample or track.plugin


def _read_track(path: Path) -> np.ndarray:
    """A rendered track as ``(2, samples)`` float32."""
    import soundfile as sf

    x, rate = sf.read(str(path), dtype="float32", always_2d=True)
    if rate != MODEL_SAMPLE_RATE:
        raise AudioInputError(f"{str(path)!r}: {rate} Hz, expected {MODEL_SAMPLE_RATE}")
    return np.ascontiguousarray(x.T[:2] if x.shape[1] >= 2 else np.repeat(x.T, 2, axis=0))


def write_song(project: LmmsProject, rendered: dict[int, Path], song_dir: Path, relative: str,
               copyright_text: str, copyright_path: str | Path = LMMS_COPYRIGHT,
               failures: dict[int, str] | None = None) -> SongResult:
    """Read the rendered tracks, label them and write the song folder; the result says why not.

    Two passes with one track in memory at a time (a song can have 55 tracks of 4 minutes):
    the first labels and measures, the second writes the kept tracks with one gain."""
    import soundfile as sf

    name = song_dir.name
    kept: list[tuple[LmmsTrack, Path, str, str, float, float]] = []  # track, file, stem, rule, low, peak
    dropped: list[dict] = []
    mix: np.ndarray | None = None
    for track in project.tracks:
        path = rendered.get(track.number)
        if path is None:
            dropped.append({"name": track.name, "reason": (failures or {}).get(track.number, "no file rendered")})
            continue
        x = _read_track(path)
        peak = float(np.max(np.abs(x))) if np.all(np.isfinite(x)) else float("inf")
        if not peak < ABSURD_PEAK:
            dropped.append({"name": track.name, "reason": f"broken render (peak {peak:.3g})"})
            continue
        if peak < SILENT_PEAK:
            dropped.append({"name": track.name, "reason": "silent"})
            continue
        stem, rule = label_track(track)
        low = low_band_fraction(x)
        if stem == UNDECIDED:
            stem, rule = label_by_spectrum(low, track.plugin)
        if stem is None:
            dropped.append({"name": track.name, "reason": rule})
            continue
        kept.append((track, path, stem, rule, low, peak))
        if mix is None:
            mix = x.astype(np.float64)
        else:
            n = min(mix.shape[-1], x.shape[-1])
            mix = mix[:, :n] + x[:, :n]
    stems = tuple(sorted({k[2] for k in kept}))
    if mix is None:
        return SongResult(name, False, "no audible track")
    loud = np.flatnonzero(np.max(np.abs(mix), axis=0) > SILENT_PEAK)
    n = min(mix.shape[-1], int(loud[-1]) + 1 + MODEL_SAMPLE_RATE // 10) if loud.size else mix.shape[-1]
    seconds = n / MODEL_SAMPLE_RATE
    if "drums" not in stems or "bass" not in stems:
        return SongResult(name, False, f"no {'drums' if 'drums' not in stems else 'bass'} track", seconds, stems)
    gain = min(1.0, 0.99 / max(k[5] for k in kept))
    licence = project_licence(copyright_text, relative)
    tmp = song_dir.with_name(f".{name}.part")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    entries = []
    for i, (track, path, stem, rule, low, _) in enumerate(kept):
        y = _read_track(path)[:, :n] * np.float32(gain)
        file = f"{i + 1:02d}_{re.sub(r'[^A-Za-z0-9_.-]+', '-', track.name).strip('-') or 'track'}.flac"
        sf.write(str(tmp / file), y.T, MODEL_SAMPLE_RATE, subtype="PCM_24")
        rms = float(np.sqrt(np.mean(np.square(y, dtype=np.float64))))
        entries.append({
            "file": file, "name": track.name, "instrument": _describe(track), "plugin": track.plugin,
            "preset": track.preset, "sample": track.sample, "beat_editor": track.beat_editor,
            "stem": stem, "rule": rule, "seconds": round(seconds, 2),
            "peak_dbfs": round(20 * np.log10(float(np.max(np.abs(y))) + 1e-12), 1),
            "rms_dbfs": round(20 * np.log10(rms + 1e-12), 1), "low_band_fraction": round(low, 3),
        })
    meta = {
        "song": name, "genre": "electronic (LMMS demo)", "sample_rate": MODEL_SAMPLE_RATE,
        "project": relative, "licence": licence.licence, "copyright": list(licence.copyright),
        "licence_source": str(copyright_path), "bpm": project.bpm, "gain_db": round(20 * np.log10(gain), 2),
        "active": active_ranges(mix[:, :n] * gain), "tracks": entries, "dropped": dropped,
    }
    (tmp / "tracks.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n")
    shutil.rmtree(song_dir, ignore_errors=True)
    tmp.replace(song_dir)
    return SongResult(name, True, "kept", seconds, stems)


def relabel_song(song_dir: Path) -> SongResult:
    """Label a rendered song's tracks again with today's rules, from what ``tracks.json`` recorded
    (name, plugin, preset, sample, low-band share): no rendering. A track the rules now leave out
    is deleted; the song is kept only if it still has drums and bass."""
    meta = json.loads((song_dir / "tracks.json").read_text())
    entries = []
    for t in meta["tracks"]:
        track = LmmsTrack(0, t["name"], t["plugin"], t.get("preset", ""), t.get("sample", ""),
                          bool(t.get("beat_editor", False)))
        stem, rule = label_track(track)
        if stem == UNDECIDED:
            stem, rule = label_by_spectrum(float(t["low_band_fraction"]), track.plugin)
        if stem is None:
            meta["dropped"].append({"name": t["name"], "reason": rule})
            (song_dir / t["file"]).unlink(missing_ok=True)
            continue
        entries.append({**t, "stem": stem, "rule": rule})
    if entries != meta["tracks"]:
        meta["tracks"] = entries
        tmp = song_dir / "tracks.json.part"
        tmp.write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n")
        tmp.replace(song_dir / "tracks.json")
    stems = tuple(sorted({t["stem"] for t in entries}))
    seconds = float(entries[0]["seconds"]) if entries else 0.0
    if "drums" not in stems or "bass" not in stems:
        return SongResult(song_dir.name, False, f"no {'drums' if 'drums' not in stems else 'bass'} track "
                          "after labelling again", seconds, stems)
    return SongResult(song_dir.name, True, "kept (rendered before, labelled again)", seconds, stems)


def _relative(project: Path, root: Path) -> str:
    """The project's path as ``debian/copyright`` names it (under ``data/projects/``)."""
    try:
        return str(project.resolve().relative_to(LMMS_PROJECTS.resolve()))
    except ValueError:
        return str(project.relative_to(root))


def build_lmms_set(out: str | Path, projects_root: str | Path = LMMS_PROJECTS,
                   copyright_path: str | Path = LMMS_COPYRIGHT, timeout_s: float = 3600.0,
                   force: bool = False, progress: Callable[[SongResult], None] | None = None,
                   workers: int = 1) -> dict:
    """Render every project under ``projects_root`` into ``out`` (module docstring), ``workers``
    LMMS processes at a time; returns and writes ``out/dataset.json``."""
    from stemstream.export.data.electronic import stem_cache

    out = Path(out)
    projects = find_projects(projects_root)
    copyright_text = Path(copyright_path).read_text(encoding="utf-8")
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    results: list[SongResult] = []
    before = {}  # what the last run skipped
    if (out / "dataset.json").is_file():
        before = json.loads((out / "dataset.json").read_text()).get("skipped", {})
    for project_path in projects:
        name = song_name(project_path)
        song_dir = out / name
        relative = _relative(project_path, Path(projects_root))
        if (song_dir / "tracks.json").is_file() and not force:
            result = relabel_song(song_dir)
        elif re.match(r"no (drums|bass|audible) track$", before.get(name, "")) and not force:
            result = SongResult(name, False, before[name])  # its tracks were heard before: none is drums or bass
        else:
            render_dir = out / f".render-{name}"
            shutil.rmtree(render_dir, ignore_errors=True)
            try:
                project = read_project(project_path)
                rendered, failures = render_tracks(project_path, project.tracks, render_dir, timeout_s, workers)
                result = write_song(project, rendered, song_dir, relative, copyright_text, copyright_path, failures)
            except AudioInputError as exc:
                result = SongResult(name, False, str(exc))
            finally:
                shutil.rmtree(render_dir, ignore_errors=True)
        if result.kept:
            stem_cache(song_dir)
        results.append(result)
        if progress is not None:
            progress(result)
    summary = summarise(out, results, time.perf_counter() - start)
    tmp = out / "dataset.json.part"
    tmp.write_text(json.dumps(summary, indent=1) + "\n")
    tmp.replace(out / "dataset.json")
    return summary


def summarise(out: Path, results: list[SongResult], wall_s: float) -> dict:
    """``dataset.json``: songs with split, minutes and label counts per split, what was skipped."""
    songs: dict[str, dict] = {}
    counts = {"train": {}, "valid": {}}
    minutes = {"train": 0.0, "valid": 0.0}
    for r in results:
        if not r.kept:
            continue
        meta = json.loads((out / r.name / "tracks.json").read_text())
        split = "valid" if r.name in LMMS_VALID else "train"
        songs[r.name] = {"split": split, "seconds": r.seconds, "project": meta["project"],
                         "licence": meta["licence"], "bpm": meta["bpm"]}
        minutes[split] += r.seconds / 60
        for t in meta["tracks"]:
            counts[split][t["stem"]] = counts[split].get(t["stem"], 0) + 1
    return {
        "generator": "stemstream data lmms", "lmms_common": lmms_version(), "sample_rate": MODEL_SAMPLE_RATE,
        "render": "lmms render -f wav -a -x 1 of each track alone (headless, QT_QPA_PLATFORM=offscreen)",
        "songs": songs, "skipped": {r.name: r.reason for r in results if not r.kept},
        "minutes": {k: round(v, 1) for k, v in minutes.items()}, "tracks_per_stem": counts,
        "wall_seconds": round(wall_s, 1),
    }
