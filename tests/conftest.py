"""Fixtures shared by the test files: one tiny, seeded, untrained instance of the real
``live`` architecture, as a module and as a weight file.

Tests that need a ``live`` weight file (the CLI, the registry, the benchmarks, the bridge)
take ``tiny_live_weights`` (one file per session) or call ``write_tiny_live_weights`` where
they need another seed, a run record or a file in a particular folder. Tests of the model
itself (``test_model_*.py``) build their own configurations on purpose.

The ``timing`` marker (registered in ``pyproject.toml``, deselected by default) holds the
assertions that depend on how busy the machine is: zero xruns, zero deadline misses,
wake-up counts. Run them with ``pytest -m timing`` on a quiet machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest
import torch

from stemstream.realtime.models.hybrid import ARCHITECTURE, HybridConfig, HybridSeparator
from stemstream.realtime.models.weights import save_weights

#: The one tiny ``live`` configuration the tests share: 128-sample hops, latency
#: ``synthesis_samples - hop`` = 128 samples, a few thousand parameters.
TINY_LIVE = HybridConfig(analysis_samples=512, synthesis_samples=256, hop=128, width=16, lstm_layers=1,
                       encoder_channels=16, encoder_kernel=128)


def _tiny_live_model(seed: int = 0) -> HybridSeparator:
    """A fresh :data:`TINY_LIVE` module (eval mode) whose weights depend only on ``seed``; the
    global torch RNG is left as it was (the fixtures run in whichever test asks first)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return HybridSeparator(TINY_LIVE).eval()


def _write_tiny_live_weights(path: str | Path, seed: int = 0, run_record: dict[str, Any] | None = None) -> Path:
    """Write :func:`_tiny_live_model` (``seed``) to ``path`` as a ``live`` weight file with
    ``run_record`` in its metadata; returns ``path``."""
    path = Path(path)
    save_weights(path, _tiny_live_model(seed), ARCHITECTURE, TINY_LIVE.to_json(), run_record)
    return path


@pytest.fixture(scope="session")
def tiny_live_config() -> HybridConfig:
    """The configuration of every tiny ``live`` model the fixtures make."""
    return TINY_LIVE


@pytest.fixture(scope="session")
def tiny_live_model() -> Callable[..., HybridSeparator]:
    """``make(seed=0) -> HybridSeparator``: a fresh tiny module; the same seed gives the same
    weights as ``write_tiny_live_weights``."""
    return _tiny_live_model


@pytest.fixture(scope="session")
def write_tiny_live_weights() -> Callable[..., Path]:
    """``write(path, seed=0, run_record=None) -> Path``: a tiny ``live`` weight file at ``path``."""
    return _write_tiny_live_weights


@pytest.fixture(scope="session")
def tiny_live_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny ``live`` weight file (seed 0) for the whole session, named
    ``tiny-live.safetensors`` (the model name the CLI derives from it: ``tiny-live``).
    Read it, never write to it."""
    folder = tmp_path_factory.mktemp("tiny-live")
    return _write_tiny_live_weights(folder / "tiny-live.safetensors", run_record={"note": "tests/conftest.py"})
