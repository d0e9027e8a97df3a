"""Training data for the live separator: in-memory synthetic songs, remixed excerpts.

Reads the synthetic folder layout ``DIR/<song>/{bass,drums,guitar,piano}.wav`` (44.1 kHz,
stereo) into memory once, then draws seeded random excerpts: with probability ``remix``
each stem comes from a different random song (the usual remixing augmentation), with a
random gain and a random left/right swap; the mixture is the sum of the stems.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from stemstream.export.data.npy_cache import CACHE_NAME, read_cache, write_cache
from stemstream.realtime.errors import AudioInputError, bad_value
from stemstream.realtime.stems import MODEL_SAMPLE_RATE, STEMS


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


def _read_song(files: list[Path]) -> np.ndarray:
    """Stems ``(S, 2, T)`` float32 from one WAV per stem (mono duplicated, trimmed to the shortest).

    The first read writes ``<song>/.stems-cache.npy`` beside the WAVs; later reads memory-map
    it, so parallel training runs share one copy in the page cache instead of one each.
    """
    cache = files[0].parent / CACHE_NAME
    newest = max(f.stat().st_mtime for f in files)
    cached = read_cache(cache, newest, lambda a: a.ndim == 3 and a.shape[0] == len(files) and a.dtype == np.float32)
    return cached if cached is not None else write_cache(cache, _decode_song(files))


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

    def plan(self, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Draw one batch's excerpts: ``(song, start, gain, swap)``, each ``(size, stems)``.

        Excerpt ``[b, s]`` is stem ``s`` of song ``song[b, s]`` from sample ``start[b, s]``, times
        ``gain[b, s]``, with left and right swapped where ``swap[b, s]``. The random draws come in
        one fixed order, so a seed gives the same batches on every device.
        """
        n_stems = self.songs.audio[0].shape[0]
        song = np.empty((size, n_stems), dtype=np.int64)
        start = np.empty((size, n_stems), dtype=np.int64)
        gain = np.empty((size, n_stems), dtype=np.float64)
        swap = np.empty((size, n_stems), dtype=bool)
        for b in range(size):
            base = int(self.rng.choice(self.pool))
            base_start = int(self.rng.integers(0, self.songs.audio[base].shape[-1] - self.excerpt))
            remix = self.rng.random() < self.remix
            for s in range(n_stems):
                if remix:
                    song[b, s] = int(self.rng.choice(self.pool))
                    start[b, s] = int(self.rng.integers(0, self.songs.audio[song[b, s]].shape[-1] - self.excerpt))
                else:
                    song[b, s], start[b, s] = base, base_start
                gain[b, s] = 10 ** (self.rng.uniform(-self.gain_db, self.gain_db) / 20)
                swap[b, s] = self.rng.random() < 0.5
        return song, start, gain, swap

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One batch of ``size`` excerpts."""
        song, start, gain, swap = self.plan(size)
        out = np.empty((*song.shape, 2, self.excerpt), dtype=np.float32)
        for b, s in np.ndindex(song.shape):
            x = self.songs.audio[song[b, s]][s, :, start[b, s] : start[b, s] + self.excerpt]
            if swap[b, s]:
                x = x[::-1]
            out[b, s] = float(gain[b, s]) * x
        stems = torch.from_numpy(out)
        return stems.sum(dim=1), stems


class DeviceRemixSampler(RemixSampler):
    """:class:`RemixSampler` whose songs live on ``device`` (a GPU): batches are gathered there.

    Same draws as the host sampler for the same seed (equal batches up to float rounding), without
    copying every excerpt through host memory, which would leave a GPU waiting. Every song is held on
    the device in float32: the 240-song training set takes about 8 GB there.
    """

    def __init__(self, songs: SongSet, excerpt_samples: int, seed: int, device: torch.device | str,
                 remix: float = 0.5, gain_db: float = 6.0) -> None:
        self.device = torch.device(device)
        super().__init__(songs, excerpt_samples, seed, remix=remix, gain_db=gain_db)

    def update_pool(self) -> None:
        super().update_pool()
        lengths = [a.shape[-1] for a in self.songs.audio]
        self.offsets = torch.tensor(np.concatenate([[0], np.cumsum(lengths)[:-1]]), dtype=torch.long,
                                    device=self.device)
        joined = np.concatenate([np.asarray(a, dtype=np.float32) for a in self.songs.audio], axis=-1)
        n_stems, channels = joined.shape[:2]
        self.rows = torch.from_numpy(joined).reshape(n_stems * channels, -1).to(self.device)
        self.steps = torch.arange(self.excerpt, device=self.device)

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        song, start, gain, swap = (torch.from_numpy(a).to(self.device) for a in self.plan(size))
        n_stems = song.shape[1]
        first = self.offsets[song] + start  # (B, S) index of each excerpt's first sample
        channel = torch.arange(2, device=self.device).view(1, 1, 2) ^ swap.long().unsqueeze(-1)
        row = torch.arange(n_stems, device=self.device).view(1, -1, 1) * 2 + channel  # (B, S, 2)
        where = first.unsqueeze(-1) + self.steps  # (B, S, T)
        stems = self.rows[row.unsqueeze(-1), where.unsqueeze(2)] * gain.float().view(size, n_stems, 1, 1)
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
