"""Training excerpts for the diffusion models: the synthetic set through ``RemixDataset``, or a
procedural toy set when the synthetic set is not rendered yet.

Every excerpt is mono at the model rate, ``(stems, 1, segment_samples)`` float32, scaled so
the mixture RMS is :data:`TARGET_RMS` (the separators apply the same normalisation at
inference, see ``stemstream.realtime.diffusion.segments.normalise``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from stemstream.realtime.diffusion.segments import TARGET_RMS

STEM_COUNT = 4


def _env(n: int, sr: int, decay_s: float) -> np.ndarray:
    return np.exp(-np.arange(n) / (decay_s * sr)).astype(np.float32)


def _additive(n: int, sr: int, f0: float, partials: int, decay_s: float, tilt: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / sr
    out = np.zeros(n, np.float32)
    for k in range(1, partials + 1):
        fk = f0 * k * (1 + 0.0005 * k * k)
        if fk >= sr / 2 - 100:
            break
        out += (k**-tilt) * np.sin(2 * np.pi * fk * t + rng.uniform(0, 2 * np.pi)) * np.exp(-t * k / (decay_s * 4))
    return out * _env(n, sr, decay_s)


def toy_excerpt(rng: np.random.Generator, samples: int, sample_rate: int) -> np.ndarray:
    """One procedural 4-stem excerpt (bass, drums, guitar, piano) on a shared beat grid.

    Returns ``(4, 1, samples)`` float32 (not yet normalised).
    """
    sr = sample_rate
    bpm = rng.uniform(90, 150)
    step = int(sr * 60 / bpm / 4)  # sixteenth note, samples
    offset = int(rng.integers(0, step))
    stems = np.zeros((STEM_COUNT, samples + 4 * sr), np.float32)
    root = 40 * 2 ** (rng.integers(0, 12) / 12)
    scale = np.array([0, 2, 3, 5, 7, 8, 10])
    pos = offset
    idx = 0
    while pos < samples:
        beat16 = idx % 16
        if beat16 % 2 == 0 and rng.random() < 0.7:  # bass on eighths
            f = root * 2 ** (rng.choice(scale[:5]) / 12)
            stems[0, pos : pos + 2 * step] += _additive(2 * step, sr, f, 8, 0.25, 1.0, rng)
        if beat16 in (0, 8) or (beat16 == 10 and rng.random() < 0.3):  # kick
            n = int(0.25 * sr)
            t = np.arange(n) / sr
            freq = 45 + 110 * np.exp(-t * 30)
            stems[1, pos : pos + n] += 0.9 * np.sin(2 * np.pi * np.cumsum(freq) / sr) * _env(n, sr, 0.08)
        if beat16 in (4, 12):  # snare
            n = int(0.2 * sr)
            stems[1, pos : pos + n] += (0.5 * rng.standard_normal(n) * _env(n, sr, 0.05)).astype(np.float32)
        if beat16 % 2 == 0:  # hat
            n = int(0.05 * sr)
            noise = np.diff(rng.standard_normal(n + 1)).astype(np.float32)
            stems[1, pos : pos + n] += 0.12 * noise * _env(n, sr, 0.012)
        if beat16 % 4 == 0 and rng.random() < 0.6:  # guitar strum
            f = 2 * root * 2 ** (rng.choice(scale) / 12) * 2
            for j, interval in enumerate((0, 4, 7)):
                start = pos + j * int(0.012 * sr)
                stems[2, start : start + 3 * step] += 0.5 * _additive(3 * step, sr, f * 2 ** (interval / 12), 10, 0.12, 0.7, rng)
        if beat16 % 8 == 4 and rng.random() < 0.6:  # piano chord
            f = 4 * root * 2 ** (rng.choice(scale) / 12)
            for interval in (0, 3, 7):
                stems[3, pos : pos + 8 * step] += 0.4 * _additive(8 * step, sr, f * 2 ** (interval / 12), 6, 0.5, 2.0, rng)
        pos += step
        idx += 1
    stems = stems[:, :samples]
    gains = rng.uniform(0.5, 1.5, STEM_COUNT) * (rng.random(STEM_COUNT) > 0.1)
    return (stems * gains[:, None].astype(np.float32))[:, None, :].astype(np.float32)


def normalise_excerpt(stems: np.ndarray) -> np.ndarray:
    """Scale ``(S, 1, T)`` stems so their mixture has RMS :data:`TARGET_RMS`."""
    rms = float(np.sqrt(np.mean(stems.sum(axis=0) ** 2)))
    return (stems * (TARGET_RMS / max(rms, 1e-5))).astype(np.float32)


def synth_ready(root: str | Path) -> bool:
    """Whether ``root`` holds a rendered synthetic set: ``train/`` and ``valid/`` each with the
    ``dataset.json`` that ``stemstream data synth`` writes when a split is complete."""
    root = Path(root)
    return all((root / split / "dataset.json").is_file() for split in ("train", "valid"))


#: what :func:`training_data` calls the procedural fallback
TOY_DATA = "toy (procedural; no rendered set at --data)"


def training_data(root: str | Path | None) -> str:
    """``"synthetic"`` when ``root`` is a rendered set (:func:`synth_ready`), :data:`TOY_DATA` when
    ``root`` is None or does not exist (``--data data/none`` asks for the toy signals). A folder
    that exists but is not a complete set is an error, not a silent fall-back to toy signals."""
    if root is None or not Path(root).exists():
        return TOY_DATA
    if not synth_ready(root):
        from stemstream.realtime.errors import bad_value

        raise bad_value("data", str(root), "a rendered set with train/dataset.json and valid/dataset.json "
                        "(stemstream data synth --out DIR/train ...; see the README), or a path that does not exist "
                        "for the procedural toy signals")
    return "synthetic"


def excerpt_stream(
    data_root: str | Path | None,
    split: str,
    segment_samples: int,
    sample_rate: int,
    seed: int,
) -> Iterator[np.ndarray]:
    """Endless normalised excerpts ``(4, 1, segment_samples)``.

    Uses ``stemstream.export.data.remix.RemixDataset`` over ``data_root/split`` (downmixed to mono,
    resampled to ``sample_rate``) when the synthetic set is ready, else :func:`toy_excerpt`.
    """
    rng = np.random.default_rng(seed)
    if data_root is not None and synth_ready(data_root):
        import soxr

        from stemstream.export.data.remix import RemixDataset

        host_rate = 44100
        need = int(math.ceil(segment_samples * host_rate / sample_rate)) + 64
        dataset = RemixDataset(str(Path(data_root) / split), excerpt_samples=need, seed=seed, channels=1)
        epoch = 0
        while True:
            dataset.set_epoch(epoch)
            for index in range(len(dataset)):
                _mixture, stems = dataset[index]
                mono = np.asarray(stems, np.float32)[:, 0]  # (S, T)
                res = soxr.resample(mono.T, host_rate, sample_rate).T[:, :segment_samples]
                if res.shape[-1] < segment_samples or not np.any(res):
                    continue
                yield normalise_excerpt(np.ascontiguousarray(res, dtype=np.float32)[:, None, :])
            epoch += 1
    while True:
        stems = toy_excerpt(rng, segment_samples, sample_rate)
        if np.any(stems):
            yield normalise_excerpt(stems)


def batches(stream: Iterator[np.ndarray], batch: int) -> Iterator[torch.Tensor]:
    """Stack ``batch`` excerpts: ``(batch, 4, 1, T)`` tensors."""
    while True:
        yield torch.from_numpy(np.stack([next(stream) for _ in range(batch)]))
