"""Electronic songs for DJ training: the rendered LMMS demo songs (``stemstream data lmms``).

A song folder (``data/lmms/<song>/``, written by ``stemstream.export.data.lmms_render``) holds one
stereo file per track and ``tracks.json`` labelling each ``drums``, ``bass`` or ``other``;
``data/lmms/dataset.json`` says which songs are held out (``split``). For training, the tracks of
each stem are summed once into ``<song>/.stems-cache.npy`` (float16, ``(3, 2, samples)`` in the
order :data:`CACHED_STEMS`), which later loads memory-mapped, so parallel training runs share one
copy in the page cache (about 2 GB for the whole set).

Songs keep their authors' mix (levels, pans and LMMS effects per track); the DJ recipes put each
stem through a drawn channel strip and master on top. LMMS songs start on a beat at sample 0, so a
song's beat grid is known from its tempo: :func:`drums_in_tempo` resamples one song's drums to
another's tempo and starts both on a bar.

Licences: every song's licence and copyright holders are in its ``tracks.json`` as Debian's
``lmms-common`` states them (``/usr/share/doc/lmms-common/copyright``): GPL-2+, Artistic-2,
CC-BY-SA-3/4 and BSD-2-clause.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stemstream.export.data.npy_cache import CACHE_NAME, read_cache, write_cache
from stemstream.realtime.errors import AudioInputError, bad_value
from stemstream.realtime.stems import MODEL_SAMPLE_RATE

#: Where ``stemstream data lmms`` writes by default: ``data/lmms`` in the repository.
DEFAULT_LMMS_ROOT = Path(__file__).resolve().parents[2] / "data" / "lmms"

#: The stems an LMMS song has (LMMS ships no recorded voice), in the cache's order.
CACHED_STEMS: tuple[str, ...] = ("drums", "bass", "other")

#: Tempo ratios up to this far from 1 (after halving or doubling) are matched by resampling.
MAX_TEMPO_RATIO = 1.19  # three semitones of pitch at most
BEATS_PER_BAR = 4


@dataclass(frozen=True, eq=False)
class RenderedSong:
    """One electronic song: ``stems`` ``(3, 2, samples)`` float16 (drums, bass, other), possibly
    memory-mapped; ``bpm`` quarter notes per minute from sample 0; ``active`` ``(k, 2)`` sample
    ranges where the song is not silent."""

    name: str
    stems: np.ndarray
    bpm: float
    licence: str
    active: np.ndarray

    @property
    def num_samples(self) -> int:
        return int(self.stems.shape[-1])

    @property
    def beat_samples(self) -> float:
        """Samples per quarter note."""
        return 60.0 / self.bpm * MODEL_SAMPLE_RATE

    def draw_start(self, n: int, rng: np.random.Generator, on_bar: bool = False) -> int:
        """A start for an ``n``-sample excerpt inside a part where the song plays (weighted by
        length); ``on_bar`` moves it back to the bar it falls in."""
        lengths = (self.active[:, 1] - self.active[:, 0]).astype(np.float64)
        if lengths.sum() <= 0:
            start = int(rng.integers(0, max(self.num_samples - n, 0) + 1))
        else:
            a, b = self.active[int(rng.choice(len(lengths), p=lengths / lengths.sum()))]
            start = int(rng.integers(a, max(int(b) - n, int(a)) + 1))
        if on_bar:
            bar = BEATS_PER_BAR * self.beat_samples
            start = int(round(np.floor(start / bar) * bar))
        return start


def _tracks_meta(song_dir: Path) -> dict:
    path = song_dir / "tracks.json"
    try:
        meta = json.loads(path.read_text())
        for t in meta["tracks"]:
            str(t["file"]), str(t["stem"])
        return meta
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise AudioInputError(f"{str(path)!r}: expected {{'tracks': [{{'file', 'stem'}}, ...]}} "
                              f"({type(exc).__name__}: {exc})") from None


def _decode(song_dir: Path, meta: dict) -> np.ndarray:
    """The tracks of a song summed per stem: ``(3, 2, samples)`` float32."""
    from stemstream.export.data.loaders import read_audio

    parts: dict[str, list[np.ndarray]] = {}
    for t in meta["tracks"]:
        if t["stem"] not in CACHED_STEMS:
            raise AudioInputError(f"{str(song_dir / t['file'])!r}: stem {t['stem']!r}, expected one of {CACHED_STEMS}")
        x, rate = read_audio(song_dir / t["file"])
        if rate != MODEL_SAMPLE_RATE:
            raise AudioInputError(f"{str(song_dir / t['file'])!r}: {rate} Hz, expected {MODEL_SAMPLE_RATE}")
        parts.setdefault(t["stem"], []).append(x if x.shape[0] == 2 else np.repeat(x[:1], 2, axis=0))
    n = min(x.shape[-1] for xs in parts.values() for x in xs)
    out = np.zeros((len(CACHED_STEMS), 2, n), dtype=np.float32)
    for k, stem in enumerate(CACHED_STEMS):
        for x in parts.get(stem, []):
            out[k] += x[:, :n]
    return out


def stem_cache(song_dir: str | Path) -> np.ndarray:
    """The song's stems ``(3, 2, samples)`` float16, memory-mapped from ``.stems-cache.npy``
    (written from the track files the first time, and again when they are newer)."""
    d = Path(song_dir)
    meta = _tracks_meta(d)
    cache = d / CACHE_NAME
    newest = max([(d / "tracks.json").stat().st_mtime] + [(d / t["file"]).stat().st_mtime for t in meta["tracks"]
                                                          if (d / t["file"]).exists()])
    cached = read_cache(cache, newest, lambda a: a.ndim == 3 and a.shape[:2] == (len(CACHED_STEMS), 2)
                        and a.dtype == np.float16)
    return cached if cached is not None else write_cache(cache, _decode(d, meta).astype(np.float16))


def lmms_set_exists(root: str | Path) -> bool:
    """True when ``root`` holds a set written by ``stemstream data lmms`` (its ``dataset.json``)."""
    return (Path(root) / "dataset.json").is_file()


def load_lmms(root: str | Path, split: str) -> list[RenderedSong]:
    """The rendered LMMS songs of ``split`` (``train`` or ``valid``, as ``dataset.json`` says)."""
    if split not in ("train", "valid"):
        raise bad_value("split", split, "'train' or 'valid'")
    base = Path(root)
    if not lmms_set_exists(base):
        raise bad_value("lmms data", str(base), "a folder made by `stemstream data lmms` (with dataset.json)")
    try:
        songs = json.loads((base / "dataset.json").read_text())["songs"]
    except (OSError, ValueError, KeyError) as exc:
        raise AudioInputError(f"{str(base / 'dataset.json')!r}: cannot read its songs ({exc})") from None
    out = []
    for name in sorted(songs):
        if songs[name].get("split") != split:
            continue
        meta = _tracks_meta(base / name)
        active = np.array(meta.get("active") or [[0.0, 0.0]], dtype=np.float64).reshape(-1, 2)
        out.append(RenderedSong(name, stem_cache(base / name), float(meta.get("bpm", 120.0)),
                                str(meta.get("licence", "unknown")),
                                np.round(active * MODEL_SAMPLE_RATE).astype(np.int64)))
    if not out:
        raise bad_value("lmms data", str(base), f"songs of the {split} split in dataset.json")
    return out


def tempo_ratio(source_bpm: float, target_bpm: float) -> float:
    """``source / target`` tempo, halved or doubled into ``[1/sqrt(2), sqrt(2))``."""
    r = source_bpm / target_bpm
    while r >= np.sqrt(2):
        r /= 2
    while r < 1 / np.sqrt(2):
        r *= 2
    return float(r)


def tempo_partners(song: RenderedSong, songs: list[RenderedSong]) -> list[RenderedSong]:
    """Other songs with drums whose tempo is within :data:`MAX_TEMPO_RATIO` of ``song``'s."""
    return [s for s in songs if s is not song and s.name != song.name
            and 1 / MAX_TEMPO_RATIO <= tempo_ratio(s.bpm, song.bpm) <= MAX_TEMPO_RATIO]


def drums_in_tempo(source: RenderedSong, target_bpm: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples ``(2, n)`` float32 of ``source``'s drums from a bar, resampled so that its
    beats fall on a ``target_bpm`` grid starting at sample 0 (halved or doubled time allowed)."""
    import soxr

    ratio = tempo_ratio(source.bpm, target_bpm)  # > 1: the source is faster and is stretched
    need = int(np.ceil(n / ratio)) + 256

    start = source.draw_start(need, rng, on_bar=True)
    seg = np.zeros((2, need), dtype=np.float32)
    part = source.stems[0, :, start : start + need]
    seg[:, : part.shape[-1]] = part
    y = soxr.resample(seg.T, float(MODEL_SAMPLE_RATE), MODEL_SAMPLE_RATE * ratio, quality="HQ").T
    out = np.zeros((2, n), dtype=np.float32)
    out[:, : min(n, y.shape[-1])] = y[:, :n]
    return out
