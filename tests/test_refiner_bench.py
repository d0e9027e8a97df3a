"""``stemstream bench diffusion --rows refiner,refiner-segments`` on tiny models and songs: the rows
are there, scored, and the oracle-denoiser checks read the truth."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from stemstream.benchmarks import diffusion_refiner
from stemstream.benchmarks.diffusion_refiner import REFINER_GROUPS, add_arguments, markdown, refiner_results
from stemstream.realtime.diffusion.refiner import REFINER_STUDENT_ARCHITECTURE
from stemstream.realtime.diffusion.refiner_net import REFINER_ARCHITECTURE
from stemstream.realtime.models import registry
from stemstream.realtime.models.weights import save_weights
from tests.test_refiner_fixtures import tiny_refiner_student, tiny_refiner_teacher, write_songs

torch.set_num_threads(1)


def test_refiner_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write_tiny_live_weights: Any) -> None:
    data = tmp_path / "synth"
    write_songs(data / "test", 2, 1.3, seed=20)
    weights = tmp_path / "weights"
    weights.mkdir()
    write_tiny_live_weights(weights / "quality.safetensors", seed=6)
    step = tiny_refiner_student(3)
    save_weights(weights / "quality-refiner.safetensors", step.denoiser, REFINER_STUDENT_ARCHITECTURE,
                 step.config.to_json(), {})
    teacher = tmp_path / "teacher.safetensors"
    save_weights(teacher, tiny_refiner_teacher(4), REFINER_ARCHITECTURE, step.config.net.to_json(), {})
    monkeypatch.setattr(registry, "WEIGHTS_DIR", weights)
    monkeypatch.setattr(diffusion_refiner, "TEACHER_STEPS", {"dirac": (16,), "dirac-projected": (2,)})
    monkeypatch.setattr(diffusion_refiner, "SEGMENT_TEACHER_STEPS", 2)
    monkeypatch.setenv("STEMSTREAM_CACHE", str(tmp_path / "cache"))
    parser = argparse.ArgumentParser()
    parser.add_argument("--data")
    add_arguments(parser)
    args = parser.parse_args(["--data", str(data), "--refiner-teacher", str(teacher), "--refiner-excerpts", "2",
                              "--refiner-long-files", "1", "--refiner-long-seconds", "0.1"])
    result = refiner_results(args, REFINER_GROUPS)
    table = {r["model"]: r for r in result["refiner"]}
    assert table["base (quality) alone"]["network_evals"] == 0
    assert "teacher, Dirac (Algorithm 2), 16 steps" in table and "student, 4 steps" in table
    assert "teacher, Dirac, projected step, 2 steps" in table
    oracle = table["oracle denoiser (sampler check), Dirac, projected step, 16 steps"]
    assert oracle["all"] > 60  # the truth, up to float rounding
    assert table["oracle denoiser (sampler check), Dirac (Algorithm 2), 64 steps"]["all"] > 30
    segments = {r["model"]: r for r in result["refiner_segments"]}
    ar = segments["student 1 step, autoregressive, streaming engine (onnx)"]
    assert ar["network_evals"] >= 4 and np.isfinite(ar["all"]) and ar["rtf"] > 0
    assert "teacher, Dirac projected 2 steps, autoregressive, streaming engine (PyTorch)" in segments
    lines = markdown(result, lambda rows: [r["model"] for r in rows])
    assert "## Refiner (SI-SDRi dB, stereo, 44.1 kHz)" in lines and "student, 1 step" in lines
