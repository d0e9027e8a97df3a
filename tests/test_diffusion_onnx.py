"""The student through ONNX Runtime matches PyTorch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from stemstream.export.diffusion_onnx import parity
from stemstream.realtime.diffusion.student import STUDENT_ARCHITECTURE
from stemstream.realtime.diffusion.student_loader import load_student
from stemstream.realtime.diffusion.student_onnx import export_student
from stemstream.realtime.models.weights import save_weights
import pytest

from tests.test_diffusion_fixtures import TINY, TINY_FRAMES, tiny_student

torch.set_num_threads(1)


@pytest.mark.parametrize("net", [TINY, TINY_FRAMES], ids=["samples", "frames"])
def test_student_onnx_parity(tmp_path: Path, net) -> None:
    step = tiny_student(context_samples=64, net=net)
    onnx_path = export_student(step, tmp_path / "student.onnx")
    assert parity(step, onnx_path) < 1e-4


def test_segment_model_onnx_backend_matches_torch(tmp_path: Path) -> None:
    step = tiny_student(context_samples=64)
    weights = tmp_path / "student.safetensors"
    save_weights(weights, step.net, STUDENT_ARCHITECTURE, step.config.to_json(), {"test": True})
    export_student(step, tmp_path / "student.onnx")
    rng = np.random.default_rng(0)
    audio = (0.2 * rng.standard_normal((2, 256))).astype(np.float32)
    context = (0.05 * rng.standard_normal((4, 2, 64))).astype(np.float32)
    for steps in (1, 2):
        torch_model = load_student(weights, steps=steps)
        onnx_model = load_student(weights, steps=steps, backend="onnx")
        assert torch_model.info.name == f"diffusion-{steps}step"
        for ctx in (None, context):
            np.testing.assert_allclose(onnx_model.separate_segment(audio, ctx), torch_model.separate_segment(audio, ctx),
                                       atol=1e-4)


def test_describe_student_card_fields(tmp_path: Path) -> None:
    from stemstream.realtime.diffusion.student import describe_student

    step = tiny_student(context_samples=64)
    weights = tmp_path / "student.safetensors"
    save_weights(weights, step.net, STUDENT_ARCHITECTURE, step.config.to_json(), {"steps": 3})
    card = describe_student(weights, steps=2)
    # no delay inside a window (as its ModelInfo says), one whole window of buffering (a5396a4)
    assert card["hop_samples"] == 192 and card["latency_samples"] == 0 and card["buffer_samples"] == 256
    assert card["sample_rate"] == 8000
    assert card["params"] > 0 and card["macs_per_second"] > 0 and card["run_record"] == {"steps": 3}
