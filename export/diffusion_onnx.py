"""ONNX Runtime parity of the consistency student's step graph.

The graph itself (inputs, outputs, export, cache) is ``stemstream.realtime.diffusion.student_onnx``;
``stemstream.export.distill`` writes it next to the student weights and checks :func:`parity`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from stemstream.realtime.diffusion.student import StudentStep
from stemstream.realtime.diffusion.student_onnx import INPUT_NAMES, example_inputs


def parity(step: StudentStep, onnx_path: str | Path, seed: int = 1) -> float:
    """Largest absolute difference between PyTorch and ONNX Runtime (CPU) on random inputs."""
    import onnxruntime as ort

    inputs = example_inputs(step, seed)
    with torch.no_grad():
        expected = step(*inputs).numpy()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    got = session.run(["stems"], {n: t.numpy().astype(np.float32) for n, t in zip(INPUT_NAMES, inputs)})[0]
    return float(np.max(np.abs(got - expected)))


__all__ = ["parity"]
