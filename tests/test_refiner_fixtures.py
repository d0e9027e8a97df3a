"""Shared tiny, seeded refiner models and data for the tests/test_refiner_*.py files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from stemstream.realtime.diffusion.refiner import RefinerStep, RefinerStudentConfig
from stemstream.realtime.diffusion.refiner_net import RefinerConfig, RefinerDenoiser
from stemstream.realtime.stems import STEMS

#: A tiny refiner: 64-sample frames (hop 32), 8 bands, two levels; segments of 1024 samples with
#: 256 of context (whole hops of the tiny ``live`` base of ``tests/conftest.py``: 128 samples).
TINY_REFINER = RefinerConfig(segment_samples=1024, context_samples=256, train_samples=512, n_fft=64, hop=32,
                             band_bins=4, widths=(8, 16), blocks=(0, 1), embed_dim=16)


def tiny_refiner_teacher(seed: int = 0, net: RefinerConfig = TINY_REFINER) -> RefinerDenoiser:
    """A tiny untrained refiner denoiser whose head is random (not zero), so it changes its input."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = RefinerDenoiser(net)
        with torch.no_grad():
            model.core.head.weight.normal_(0, 0.05)
            model.core.head.bias.normal_(0, 0.01)
    return model.eval().requires_grad_(False)


def tiny_refiner_student(seed: int = 0, net: RefinerConfig = TINY_REFINER) -> RefinerStep:
    """A tiny untrained refiner student (random head)."""
    step = RefinerStep(RefinerStudentConfig(net=net))
    step.denoiser.load_state_dict(tiny_refiner_teacher(seed, net).state_dict())
    return step.eval().requires_grad_(False)


class ZeroResidual(torch.nn.Module):
    """An oracle denoiser for a perfect base: the clean residual is zero at every noise level."""

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, *cond: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


def music_like(samples: int, seed: int, channels: int = 2, stems: int = 4) -> np.ndarray:
    """Seeded stems ``(stems, channels, samples)``: a decaying tone per stem plus a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / 44100.0
    out = np.empty((stems, channels, samples), np.float32)
    for s in range(stems):
        f = 55.0 * 2 ** (s * 1.3 + rng.uniform(0, 1))
        tone = np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) * np.exp(-((t * 3) % 1.0) * 2)
        for c in range(channels):
            out[s, c] = 0.1 * tone * rng.uniform(0.5, 1.0) + 0.01 * rng.standard_normal(samples)
    return out


def write_songs(root: Path, count: int, seconds: float, seed: int = 0) -> Path:
    """A tiny synthetic set: ``root/<song>/{<stem>,mixture}.wav`` (44.1 kHz stereo) with a ``song.json``,
    and a ``dataset.json``."""
    import soundfile as sf

    root.mkdir(parents=True, exist_ok=True)
    for k in range(count):
        song = root / f"song{k:05d}"
        song.mkdir(exist_ok=True)
        stems = music_like(int(seconds * 44100), seed + k)
        for name, audio in zip((*STEMS, "mixture"), (*stems, stems.sum(axis=0))):
            sf.write(song / f"{name}.wav", audio.T, 44100, subtype="FLOAT")
        (song / "song.json").write_text("{}")
    (root / "dataset.json").write_text("{}")
    return root
