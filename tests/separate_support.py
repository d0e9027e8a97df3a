"""Shared by the `stemstream separate` tests: a tiny DJ-set weight file, songs on disk, and a run of
the command that returns its exit code, stdout and stderr lines."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from stemstream.bridge.cli.main import main
from stemstream.realtime.models.hybrid import ARCHITECTURE, HybridConfig, HybridSeparator
from stemstream.realtime.models.weights import save_weights
from stemstream.realtime.stems import DJ_STEMS

#: The tiny ``live`` shape of ``tests/conftest.py`` with the DJ stems (vocals, drums, bass, other).
TINY_DJ = HybridConfig(analysis_samples=512, synthesis_samples=256, hop=128, width=16, lstm_layers=1,
                       encoder_channels=16, encoder_kernel=128, stems=DJ_STEMS)


def write_tiny_dj_weights(path: Path, seed: int = 0) -> Path:
    """A tiny, untrained DJ-set model at ``path`` (the global torch RNG left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = HybridSeparator(replace(TINY_DJ)).eval()
    save_weights(path, module, ARCHITECTURE, TINY_DJ.to_json(), {"note": "tests/separate_support.py"})
    return path


@pytest.fixture(scope="session")
def tiny_dj_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny DJ-set weight file for the session (model name ``tiny-dj``)."""
    return write_tiny_dj_weights(tmp_path_factory.mktemp("tiny-dj") / "tiny-dj.safetensors")


def song(path: Path, seconds: float = 0.3, rate: int = 44100, channels: int = 2, seed: int = 0,
         level: float = 0.2, subtype: str = "FLOAT", tonal: bool = False) -> Path:
    """Write seeded noise (or, ``tonal``, a few seeded partials with a little noise: what a lossy
    codec keeps well) as a song at ``path``, its folder created; returns ``path``."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    audio = level * rng.standard_normal((n, channels))
    if tonal:
        t = np.arange(n)[:, None] / rate
        partials = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6.3, channels)) / (k + 1)
                       for k, f in enumerate(rng.uniform(80, 3000, 5)))
        audio = level * partials + 0.02 * audio
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio.astype(np.float32), rate, subtype=subtype)
    return path


def separate(capsys: pytest.CaptureFixture, *argv: str | Path) -> tuple[int, list[str], list[str]]:
    """Run ``stemstream separate ARGV --quiet``: ``(exit code, stdout lines, stderr lines)``."""
    code = main(["separate", *map(str, argv), "--quiet"])
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err.splitlines()


def files_under(folder: Path) -> list[str]:
    """Every file and folder under ``folder``, relative, sorted (hidden ones included)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []
