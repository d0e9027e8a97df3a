"""Training data of the diffusion refiner: the synthetic songs with a base model's estimates.

The refiner learns the residual ``stems - base`` of a base separator (``quality``) on the
mixture ``sum(stems)``. Running the base for every training excerpt would cost more than the
refiner's own step (the base over 8 s of audio: ~2.7 s on one core), so its estimates are
computed once per song and cached (:func:`build_base_cache`, float16) under
``<data parent>/base-estimates/<data name>/<base>-<checksum8>/<split>/<song>.npy``, e.g.
``data/base-estimates/synth/quality-1a2b3c4d/train/song00000.npy``: the whole song through the
base from a fresh state, as the streaming engine runs it, shifted by the base's latency so that
sample ``t`` is the estimate of mixture sample ``t``. A new base (another checksum) gets a new
folder; a song already cached is not recomputed, so an interrupted build resumes.

Excerpts (:class:`RefinerExcerpts`) are drawn from one song (no remixing: the base estimates
belong to that song's mixture), left and right swapped at random for all of mixture, stems and
base alike, and normalised to a mixture RMS of ``TARGET_RMS``. The base is better on the songs
it was trained on than on new ones (``quality`` on 3 training songs: ~11.5 dB SI-SDRi; on 3
validation songs: ~6.5 dB; the residual's RMS ~0.035 against ~0.06), so a share of the excerpts
gets a *leaky* base (:func:`leak`): every stem's estimate mixed with a little of the others',
which keeps the sum exact and makes the residual look more like one on unseen songs.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from stemstream.export.train.data import SongSet, load_songs
from stemstream.realtime.diffusion.refiner_net import TARGET_RMS
from stemstream.realtime.errors import bad_value

LOG = logging.getLogger("stemstream.diffusion")

#: Hops per call when the base runs over a cached song (bounds memory: ~3 s of audio per call).
CHUNK_HOPS = 1024


def cache_root(data_root: str | Path, base_name: str, base_checksum: str) -> Path:
    """Where the base estimates of ``data_root`` by the base with ``base_checksum`` are cached."""
    data = Path(data_root)
    return data.parent / "base-estimates" / data.name / f"{base_name}-{base_checksum[:8]}"


def run_base(base: torch.nn.Module, mixtures: np.ndarray) -> np.ndarray:
    """The base's stems ``(B, S, C, T)`` of ``mixtures (B, C, T)``, aligned with them (the base's
    latency removed), from a fresh state, in calls of :data:`CHUNK_HOPS` hops (a hybrid model's
    FFT path, ``fast_dsp``: the exported path's DFTs to float rounding)."""
    cfg = base.config
    b, c, t = mixtures.shape
    lat, hop = cfg.latency_samples, cfg.hop_samples
    total = -(-(t + lat) // hop) * hop
    x = np.zeros((b, c, total), np.float32)
    x[:, :, :t] = mixtures
    state = base.init_state(b)
    outs = []
    fast, base.fast_dsp = getattr(base, "fast_dsp", False), True  # the same DFTs through FFTs: ~1.5x faster
    try:
        with torch.inference_mode():
            for start in range(0, total, CHUNK_HOPS * hop):
                y, state = base(torch.from_numpy(x[:, :, start : start + CHUNK_HOPS * hop]), state)
                outs.append(y.numpy())
    finally:
        base.fast_dsp = fast
    return np.concatenate(outs, axis=-1)[..., lat : lat + t]


def build_base_cache(data_root: str | Path, split: str, base: torch.nn.Module, folder: Path,
                     limit: int | None = None, songs_per_call: int = 4,
                     log: Callable[[str], None] = LOG.info) -> tuple[SongSet, list[np.ndarray]]:
    """The songs of ``data_root/split`` (at most ``limit``) and their base estimates, computing
    the missing ones into ``folder/split`` (``songs_per_call`` songs per base batch). Returns the
    songs and one memory-mapped ``(S, C, T)`` float16 array per song."""
    songs = load_songs(Path(data_root) / split, limit=limit)
    out = folder / split
    out.mkdir(parents=True, exist_ok=True)
    missing = [i for i, name in enumerate(songs.names) if not (out / f"{name}.npy").is_file()]
    if missing:
        log(f"base estimates: {len(missing)} of {len(songs.names)} {split} songs to compute into {out}")
    import time

    start = time.monotonic()
    for k in range(0, len(missing), songs_per_call):
        group = missing[k : k + songs_per_call]
        length = max(songs.audio[i].shape[-1] for i in group)
        mixtures = np.zeros((len(group), songs.audio[group[0]].shape[1], length), np.float32)
        for j, i in enumerate(group):
            mix = np.asarray(songs.audio[i], np.float32).sum(axis=0)
            mixtures[j, :, : mix.shape[-1]] = mix
        estimates = run_base(base, mixtures)
        for j, i in enumerate(group):
            target = out / f"{songs.names[i]}.npy"
            tmp = target.with_name(f"{target.name}.{os.getpid()}.part")
            with open(tmp, "wb") as fh:
                np.save(fh, estimates[j, :, :, : songs.audio[i].shape[-1]].astype(np.float16))
            tmp.replace(target)
        log(f"base estimates: {min(k + songs_per_call, len(missing))}/{len(missing)} {split} songs "
            f"({time.monotonic() - start:.0f} s)")
    return songs, [np.load(out / f"{name}.npy", mmap_mode="r") for name in songs.names]


def base_checksum(path: str | Path) -> str:
    """The checksum a weight file's metadata records (its tensors' SHA-256), else the file's own hash."""
    from stemstream.realtime.models.weights import read_metadata

    found = read_metadata(path).get("checksum")
    return found or hashlib.sha256(Path(path).read_bytes()).hexdigest()


def leak(base: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    """``base (S, C, T)`` with each stem's estimate mixed with ``amount`` (at most) of the other
    stems': ``base' = M base`` for a random column-stochastic ``M = (1 - a) I + a P`` (``P`` random
    non-negative columns summing to one, ``a`` uniform in ``[0, amount]`` per column), so
    ``sum_s base'_s = sum_s base_s`` exactly (up to float rounding)."""
    s = base.shape[0]
    mix = rng.dirichlet(np.ones(s), size=s).T  # columns sum to one
    a = rng.uniform(0.0, amount, size=s)
    m = (1 - a)[None, :] * np.eye(s) + a[None, :] * mix
    return np.einsum("sk,kct->sct", m.astype(np.float32), base).astype(np.float32)


class RefinerExcerpts:
    """Seeded batches ``(mixture (B, C, W), stems (B, S, C, W), base (B, S, C, W))`` float32
    tensors, each excerpt normalised to mixture RMS ``TARGET_RMS`` (silent ones redrawn).

    Args:
        songs: the songs (``(S, C, T)`` each) and ``estimates``, their cached base stems.
        samples: excerpt length ``W``.
        seed: the draws' seed.
        leak_amount, leak_share: a ``leak_share`` of the excerpts gets :func:`leak` with ``leak_amount``.
    """

    def __init__(self, songs: SongSet, estimates: list[np.ndarray], samples: int, seed: int,
                 leak_amount: float = 0.0, leak_share: float = 0.0) -> None:
        if len(songs.audio) != len(estimates):
            raise bad_value("estimates", len(estimates), f"one per song ({len(songs.audio)})")
        self.songs, self.estimates, self.samples = songs, estimates, int(samples)
        self.pool = [i for i, a in enumerate(songs.audio) if a.shape[-1] > self.samples]
        if not self.pool:
            raise bad_value("samples", samples, "shorter than the longest song")
        self.rng = np.random.default_rng(seed)
        self.leak_amount, self.leak_share = float(leak_amount), float(leak_share)

    def excerpt(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One normalised ``(mixture, stems, base)``."""
        while True:
            i = int(self.rng.choice(self.pool))
            start = int(self.rng.integers(0, self.songs.audio[i].shape[-1] - self.samples))
            stems = np.asarray(self.songs.audio[i][..., start : start + self.samples], np.float32)
            base = np.asarray(self.estimates[i][..., start : start + self.samples], np.float32)
            if self.rng.random() < 0.5:
                stems, base = stems[:, ::-1], base[:, ::-1]
            if self.leak_share and self.rng.random() < self.leak_share:
                base = leak(base, self.leak_amount, self.rng)
            mixture = stems.sum(axis=0)
            rms = float(np.sqrt(np.mean(mixture**2)))
            if rms >= 1e-4:
                gain = TARGET_RMS / rms
                base = base + (mixture - base.sum(axis=0)) / base.shape[0]  # float16 rounding of the cache
                return mixture * gain, stems * gain, base * gain

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``size`` excerpts stacked."""
        parts = [self.excerpt() for _ in range(size)]
        return tuple(torch.from_numpy(np.ascontiguousarray(np.stack(p))) for p in zip(*parts))  # type: ignore[return-value]


def fixed_excerpts(songs: SongSet, estimates: list[np.ndarray], samples: int, count: int,
                   seed: int = 10_000) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``count`` seeded excerpts (validation), no leak: ``(mixture, stems, base)`` batches."""
    return RefinerExcerpts(songs, estimates, samples, seed).batch(count)
