"""On-the-fly training excerpts that remix stems across songs.

``RemixDataset(root, excerpt_samples, seed)`` is a map-style ``torch.utils.data.Dataset``:
item ``i`` is drawn from a generator seeded by ``(seed, epoch, i)``, so it is the same in any
``DataLoader`` worker and run, and ``set_epoch`` gives fresh draws. Each item:

1. picks a base song and an offset;
2. for each stem, with probability ``remix_prob`` takes it instead from another random song
   at its own random offset (stem shuffling across songs);
3. scales each stem by a random gain in ``gain_db`` and swaps its left/right channels with
   probability ``swap_prob``;
4. returns ``(mixture (channels, excerpt_samples), stems (S, channels, excerpt_samples))``
   float32 tensors, stems ordered as ``stems`` (default ``stemstream.realtime.stems.STEMS``), the
   mixture exactly their float32 sum.

Synthetic folders are memory-mapped (nothing is read until an excerpt needs it; the OS page
cache keeps hot songs in memory); other layouts go through ``stemstream.export.data.loaders`` into memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

import torch

from stemstream.realtime.errors import AudioInputError, bad_value
from stemstream.realtime.stems import MODEL_SAMPLE_RATE, STEMS



class _Song:
    """One song's stems as ``(samples, channels)`` arrays (memmaps or in memory); a stem the
    song lacks is ``None``. Pickling (``DataLoader`` workers started with spawn) sends the
    file paths of memory-mapped stems, not their samples, and maps them again on arrival."""

    def __init__(self, name: str, stems: list[np.ndarray | None], num_samples: int, channels: int):
        self.name = name
        self.stems = stems
        self.num_samples = num_samples
        self.channels = channels

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["stems"] = [str(a.filename) if isinstance(a, np.memmap) and a.filename else a
                          for a in self.stems]
        return state

    def __setstate__(self, state: dict) -> None:
        from stemstream.export.data.wavio import open_wav

        state["stems"] = [open_wav(a)[0] if isinstance(a, str) else a for a in state["stems"]]
        self.__dict__.update(state)


def _open_synth_folder(root: Path, stems: Sequence[str]) -> list[_Song]:
    from stemstream.export.data.wavio import open_wav

    songs = []
    for d in sorted(p for p in root.iterdir() if (p / "song.json").is_file()):
        arrays: list[np.ndarray | None] = []
        length = None
        for stem in stems:
            f = d / f"{stem}.wav"
            if not f.is_file():
                arrays.append(None)
                continue
            mm, rate = open_wav(f)
            if rate != MODEL_SAMPLE_RATE:
                raise AudioInputError(f"{str(f)!r}: {rate} Hz, expected {MODEL_SAMPLE_RATE} Hz")
            length = mm.shape[0] if length is None else min(length, mm.shape[0])
            arrays.append(mm)
        if length is not None:
            channels = max(a.shape[1] for a in arrays if a is not None)
            songs.append(_Song(d.name, arrays, length, channels))
    return songs


def _songs_from_tracks(tracks: Iterable, stems: Sequence[str]) -> list[_Song]:
    songs = []
    for t in tracks:
        if t.sample_rate != MODEL_SAMPLE_RATE:
            raise AudioInputError(f"track {t.name!r}: {t.sample_rate} Hz, expected {MODEL_SAMPLE_RATE} Hz")
        arrays = [np.ascontiguousarray(t.stems[s].T) if s in t.stems else None for s in stems]
        songs.append(_Song(t.name, arrays, t.num_samples, t.mixture.shape[0]))
    return songs


class RemixDataset(torch.utils.data.Dataset):
    """Seeded random excerpts with stems remixed across songs (see the module docstring).

    Args:
        root: a synthetic folder, any folder ``stemstream.export.data.loaders.load_tracks`` reads, or a
            list of such folders.
        excerpt_samples: excerpt length in samples (at 44.1 kHz).
        seed: base seed; item ``i`` of epoch ``e`` uses ``(seed, e, i)``.
        stems: stem order of the output (default ``STEMS``); a stem a song lacks is silence.
        length: items per epoch (``len(dataset)``).
        remix_prob: per stem, probability of taking it from another random song.
        gain_db: ``(low, high)`` range of each stem's random gain in dB.
        swap_prob: per stem, probability of swapping left and right.
        channels: output channels (1 or 2); mono sources are duplicated, stereo averaged for 1.
        min_rms: redraw (up to 8 times) excerpts whose mixture RMS is below this.
        tracks: extra ``Track`` objects (e.g. from a loader) added to the song pool.
    """

    def __init__(self, root: str | Path | Sequence[str | Path] | None, excerpt_samples: int, seed: int,
                 stems: Sequence[str] = STEMS, length: int = 10_000, remix_prob: float = 0.5,
                 gain_db: tuple[float, float] = (-6.0, 3.0), swap_prob: float = 0.5,
                 channels: int = 2, min_rms: float = 1e-3, tracks: Iterable | None = None) -> None:
        if not isinstance(excerpt_samples, int) or excerpt_samples < 1:
            raise bad_value("excerpt_samples", excerpt_samples, "a positive integer")
        if not 0.0 <= remix_prob <= 1.0:
            raise bad_value("remix_prob", remix_prob, "a probability in [0, 1]")
        if not 0.0 <= swap_prob <= 1.0:
            raise bad_value("swap_prob", swap_prob, "a probability in [0, 1]")
        if len(gain_db) != 2 or gain_db[0] > gain_db[1]:
            raise bad_value("gain_db", gain_db, "(low, high) in dB with low <= high")
        if channels not in (1, 2):
            raise bad_value("channels", channels, "1 or 2")
        if not isinstance(length, int) or length < 1:
            raise bad_value("length", length, "a positive integer")
        self.excerpt_samples = excerpt_samples
        self.seed = int(seed)
        self.stems = tuple(stems)
        self.length = length
        self.remix_prob = float(remix_prob)
        self.gain_db = (float(gain_db[0]), float(gain_db[1]))
        self.swap_prob = float(swap_prob)
        self.channels = channels
        self.min_rms = float(min_rms)
        self.epoch = 0
        roots: list[str | Path] = [] if root is None else (
            [root] if isinstance(root, (str, Path)) else list(root))
        self.songs: list[_Song] = []
        for r in roots:
            p = Path(r)
            if (p / "dataset.json").is_file() or any((c / "song.json").is_file() for c in _children(p)):
                self.songs += _open_synth_folder(p, self.stems)
            else:
                from stemstream.export.data.loaders import load_tracks

                self.songs += _songs_from_tracks(load_tracks(p), self.stems)
        if tracks is not None:
            self.songs += _songs_from_tracks(tracks, self.stems)
        if not self.songs:
            raise AudioInputError(f"root={root!r}: no songs found for RemixDataset")

    def __len__(self) -> int:
        return self.length

    def set_epoch(self, epoch: int) -> None:
        """Draw different excerpts for each epoch (same ``(seed, epoch)`` -> same items)."""
        self.epoch = int(epoch)

    def _excerpt_into(self, dest: np.ndarray, song: _Song, k: int, offset: int, gain: float,
                      swap: bool) -> None:
        """Write ``gain`` x stem ``k`` of ``song`` from ``offset`` into ``dest``
        ``(channels, excerpt_samples)``, channels swapped if ``swap``; zeros past the end."""
        src = song.stems[k]
        n = 0 if src is None else max(0, min(self.excerpt_samples, song.num_samples - offset))
        dest[:, n:] = 0.0
        if n == 0:
            return
        block = np.asarray(src[offset:offset + n], dtype=np.float32)  # (n, C_src)
        g = np.float32(gain)
        if self.channels == 1:
            np.multiply(block.mean(axis=1), g, out=dest[0, :n])
        elif block.shape[1] == 1:
            np.multiply(block[:, 0], g, out=dest[0, :n])
            dest[1, :n] = dest[0, :n]
        else:
            order = (1, 0) if swap else (0, 1)
            for c_out, c_in in enumerate(order):
                np.multiply(block[:, c_in], g, out=dest[c_out, :n])

    def _offset(self, song: _Song, rng: np.random.Generator) -> int:
        return int(rng.integers(0, max(1, song.num_samples - self.excerpt_samples + 1)))

    def __getitem__(self, index: int) -> tuple["torch.Tensor", "torch.Tensor"]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        for _ in range(8):
            stems = self._draw(rng)
            mixture = stems[0].copy()
            for x in stems[1:]:
                mixture += x
            if float(np.sqrt(np.mean(mixture ** 2))) >= self.min_rms:
                break
        return torch.from_numpy(mixture), torch.from_numpy(stems)

    def _draw(self, rng: np.random.Generator) -> np.ndarray:
        base = self.songs[int(rng.integers(0, len(self.songs)))]
        base_offset = self._offset(base, rng)
        out = np.empty((len(self.stems), self.channels, self.excerpt_samples), dtype=np.float32)
        for k in range(len(self.stems)):
            song, offset = base, base_offset
            if len(self.songs) > 1 and rng.random() < self.remix_prob:
                song = self.songs[int(rng.integers(0, len(self.songs)))]
                offset = self._offset(song, rng)
            gain = 10.0 ** (rng.uniform(*self.gain_db) / 20.0)
            swap = self.channels == 2 and rng.random() < self.swap_prob
            self._excerpt_into(out[k], song, k, offset, gain, swap)
        return out


def _children(p: Path) -> list[Path]:
    try:
        return [c for c in p.iterdir() if c.is_dir()][:50]
    except OSError:
        raise AudioInputError(f"root={str(p)!r}: cannot list the folder") from None
