"""The refiner's network through ONNX Runtime matches PyTorch, alone and inside the refined model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from stemstream.realtime.backends import open_backend
from stemstream.realtime.diffusion.refined_model import load_refined
from stemstream.realtime.diffusion.refiner import REFINER_STUDENT_ARCHITECTURE
from stemstream.realtime.diffusion.refiner_onnx import cached_core_graph, core_parity, export_core
from stemstream.realtime.models.weights import save_weights
from tests.test_refiner_fixtures import TINY_REFINER, music_like, tiny_refiner_student

torch.set_num_threads(1)


def test_core_onnx_parity_at_any_frame_count(tmp_path: Path) -> None:
    core = tiny_refiner_student().denoiser.core
    graph = export_core(core, tmp_path / "core.onnx")
    for samples in (TINY_REFINER.segment_samples, 2 * TINY_REFINER.valid_multiple):
        assert core_parity(core, graph, samples) < 1e-4


def test_refined_model_onnx_matches_torch(tmp_path: Path, tiny_live_model: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("STEMSTREAM_CACHE", str(tmp_path / "cache"))
    step = tiny_refiner_student(1)
    weights = tmp_path / "tiny-refiner.safetensors"
    save_weights(weights, step.denoiser, REFINER_STUDENT_ARCHITECTURE, step.config.to_json(), {"test": True})
    base = tiny_live_model(4)
    w, o = TINY_REFINER.segment_samples, TINY_REFINER.context_samples
    audio = music_like(2 * w, 5).sum(axis=0)
    first, second = audio[:, :w], audio[:, w - o : 2 * w - o]
    for steps in (1, 2):
        on_torch = load_refined(weights, open_backend("torch", base, "b"), steps=steps)
        on_onnx = load_refined(weights, open_backend("torch", base, "b"), steps=steps, backend="onnx")
        assert on_torch.info.name == ("quality-refined" if steps == 1 else "quality-refined-2step")
        a, b = on_torch.separate_segment(first, None), on_onnx.separate_segment(first, None)
        np.testing.assert_allclose(b, a, atol=1e-4)
        np.testing.assert_allclose(on_onnx.separate_segment(second, b[:, :, w - o :]),
                                   on_torch.separate_segment(second, a[:, :, w - o :]), atol=1e-4)
    assert len(list((tmp_path / "cache" / "onnx").glob("tiny-refiner-*.onnx"))) == 1  # exported once, then cached
    assert cached_core_graph(step.denoiser.core, "tiny-refiner").exists()
