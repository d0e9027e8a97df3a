"""Training data for the live separator: in-memory synthetic songs, remixed excerpts.

Reads the synthetic folder layout ``DIR/<song>/{bass,drums,guitar,piano}.wav`` (44.1 kHz,
stereo) into memory once, then draws seeded random excerpts: with probability ``remix``
each stem comes from a different random song (the usual remixing augmentation), with a
random gain and a random left/right swap; the mixture is the sum of the stems.
"""

from __future__ import annotations

import hashlib
import os
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from realtime.errors import AudioInputError, bad_value
from realtime.stems import MODEL_SAMPLE_RATE, STEMS


@dataclass
class SongSet:
    """Songs, memory-mapped from a per-song cache: ``audio[i]`` is ``(stems, channels, samples)`` float32."""

    names: list[str]
    audio: list[np.ndarray]
    root: str

    def fingerprint(self) -> str:
        """Short hash of the song names and lengths (goes in the run record)."""
        h = hashlib.sha256()
        for name, a in zip(self.names, self.audio):
            h.update(f"{name}:{a.shape[-1]};".encode())
        return h.hexdigest()[:16]

    @property
    def seconds(self) -> float:
        return sum(a.shape[-1] for a in self.audio) / MODEL_SAMPLE_RATE

    def refresh(self, stems: tuple[str, ...] = STEMS, settle_s: float = 20.0) -> int:
        """Load song folders that appeared since loading (a data set still being rendered).

        Only folders untouched for ``settle_s`` seconds are read. Returns how many were added.
        """
        import time

        known = set(self.names)
        added = 0
        for song in sorted(p for p in Path(self.root).iterdir() if p.is_dir() and p.name not in known):
            files = [song / f"{s}.wav" for s in stems]
            if not all(f.exists() for f in files):
                continue
            if time.time() - max(f.stat().st_mtime for f in files) < settle_s:
                continue
            try:
                self.audio.append(_read_song(files))
            except Exception:  # half-written file: try again next time
                continue
            self.names.append(song.name)
            added += 1
        return added


def load_songs(root: str | Path, stems: tuple[str, ...] = STEMS, limit: int | None = None) -> SongSet:
    """Load every song folder under ``root`` that has all ``stems`` as WAV files."""
    root = Path(root)
    if not root.is_dir():
        raise bad_value("data root", str(root), "an existing folder of song folders")
    names, audio = [], []
    for song in sorted(p for p in root.iterdir() if p.is_dir()):
        files = [song / f"{s}.wav" for s in stems]
        if not all(f.exists() for f in files):
            continue
        try:
            audio.append(_read_song(files))
        except AudioInputError:
            raise
        except Exception:  # a song still being written by the renderer
            continue
        names.append(song.name)
        if limit is not None and len(names) >= limit:
            break
    if not names:
        raise bad_value("data root", str(root), f"song folders containing {', '.join(stems)} .wav files")
    return SongSet(names, audio, str(root))


CACHE_NAME = ".stems-cache.npy"


def _read_song(files: list[Path]) -> np.ndarray:
    """Stems ``(S, 2, T)`` float32 from one WAV per stem (mono duplicated, trimmed to the shortest).

    The first read writes ``<song>/.stems-cache.npy`` beside the WAVs; later reads memory-map
    it, so parallel training runs share one copy in the page cache instead of one each.
    """
    cache = files[0].parent / CACHE_NAME
    newest = max(f.stat().st_mtime for f in files)
    if cache.exists() and cache.stat().st_mtime >= newest:
        try:
            arr = np.load(cache, mmap_mode="r")
            if arr.ndim == 3 and arr.shape[0] == len(files) and arr.dtype == np.float32:
                return arr
        except (OSError, ValueError):
            pass
    stems = _decode_song(files)
    tmp = cache.with_name(f"{cache.name}.{os.getpid()}.part")
    try:
        with open(tmp, "wb") as fh:
            np.save(fh, stems)
        tmp.replace(cache)
    except OSError:  # read-only data: keep it in memory
        tmp.unlink(missing_ok=True)
        return stems
    return np.load(cache, mmap_mode="r")


def _decode_song(files: list[Path]) -> np.ndarray:
    """Decode the stem WAVs of one song into ``(S, 2, T)`` float32."""
    import soundfile as sf

    parts = []
    for f in files:
        data, sr = sf.read(str(f), dtype="float32", always_2d=True)
        if sr != MODEL_SAMPLE_RATE:
            raise AudioInputError(f"{f}: sample rate {sr}, expected {MODEL_SAMPLE_RATE}")
        if data.shape[1] == 1:
            data = np.repeat(data, 2, axis=1)
        parts.append(data.T[:2])
    n = min(p.shape[-1] for p in parts)
    return np.stack([p[:, :n] for p in parts])


class RemixSampler:
    """Seeded batches of remixed excerpts: ``(mixture (B, C, T), stems (B, S, C, T))``."""

    def __init__(
        self,
        songs: SongSet,
        excerpt_samples: int,
        seed: int,
        remix: float = 0.5,
        gain_db: float = 6.0,
    ) -> None:
        self.songs = songs
        self.excerpt = excerpt_samples
        self.rng = np.random.default_rng(seed)
        self.remix = remix
        self.gain_db = gain_db
        self.update_pool()

    def update_pool(self) -> None:
        """Recompute the usable songs (after ``SongSet.refresh``)."""
        long_enough = [i for i, a in enumerate(self.songs.audio) if a.shape[-1] > self.excerpt]
        if not long_enough:
            longest = max((a.shape[-1] for a in self.songs.audio), default=0) / MODEL_SAMPLE_RATE
            raise bad_value("excerpt_seconds", round(self.excerpt / MODEL_SAMPLE_RATE, 3),
                            f"shorter than the longest training song ({longest:.1f} s)")
        self.pool = long_enough

    def _excerpt(self, song: int, stem: int) -> np.ndarray:
        a = self.songs.audio[song]
        start = int(self.rng.integers(0, a.shape[-1] - self.excerpt))
        return a[stem, :, start : start + self.excerpt]

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One batch of ``size`` excerpts."""
        n_stems = self.songs.audio[0].shape[0]
        out = np.empty((size, n_stems, 2, self.excerpt), dtype=np.float32)
        for b in range(size):
            base = int(self.rng.choice(self.pool))
            a = self.songs.audio[base]
            start = int(self.rng.integers(0, a.shape[-1] - self.excerpt))
            remix = self.rng.random() < self.remix
            for s in range(n_stems):
                if remix:
                    x = self._excerpt(int(self.rng.choice(self.pool)), s)
                else:
                    x = a[s, :, start : start + self.excerpt]
                gain = 10 ** (self.rng.uniform(-self.gain_db, self.gain_db) / 20)
                if self.rng.random() < 0.5:
                    x = x[::-1]
                out[b, s] = gain * x
        stems = torch.from_numpy(out)
        return stems.sum(dim=1), stems


def valid_excerpts(
    songs: SongSet, seconds: float, count: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed validation excerpts: the first ``seconds`` after 1 s of up to ``count`` songs."""
    n = int(seconds * MODEL_SAMPLE_RATE)
    start = MODEL_SAMPLE_RATE
    mixes, stems = [], []
    for a in songs.audio[:count]:
        if a.shape[-1] < start + n:
            continue
        s = torch.from_numpy(np.ascontiguousarray(a[..., start : start + n]))
        stems.append(s)
        mixes.append(s.sum(0))
    if not mixes:
        raise bad_value("valid seconds", seconds, "shorter than the validation songs")
    return torch.stack(mixes), torch.stack(stems)


def dataset_info(root: str | Path) -> dict:
    """``DIR/dataset.json`` if the data set has one, else ``{}``."""
    p = Path(root) / "dataset.json"
    if p.exists():
        try:
            return json.loads(p.read_text())
        except json.JSONDecodeError:
            return {}
    return {}
