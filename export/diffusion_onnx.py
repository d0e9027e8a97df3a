"""Export the consistency student's step graph to ONNX and check ONNX Runtime parity.

:func:`export_student` writes the graph (opset 17, fixed segment shape, batch 1);
``export.distill`` calls it after distillation, next to the student weights.
Inputs: ``noise (1,S,C,W)``, ``sigma (1,)``, ``mixture (1,C,W)``, ``context (1,S,C,O)``,
``context_mask (1,)``, ``previous (1,S,C,W)``; output ``stems (1,S,C,W)``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from realtime.diffusion.student import StudentStep

INPUT_NAMES = ["noise", "sigma", "mixture", "context", "context_mask", "previous"]


def example_inputs(step: StudentStep, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Random inputs with the exported shapes, in :data:`INPUT_NAMES` order."""
    cfg = step.config
    s, c, w, o = len(cfg.net.stems), cfg.net.channels, cfg.net.segment_samples, cfg.context_samples
    gen = torch.Generator().manual_seed(seed)
    mixture = 0.2 * torch.randn((1, c, w), generator=gen)
    return (
        torch.randn((1, s, c, w), generator=gen),
        torch.tensor([cfg.sigmas[0]]),
        mixture,
        0.1 * torch.randn((1, s, c, o), generator=gen),
        torch.ones(1),
        0.05 * torch.randn((1, s, c, w), generator=gen),
    )


def export_student(step: StudentStep, out: str | Path) -> Path:
    """Write ``step`` to ``out`` as ONNX (opset 17, TorchScript exporter)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    step = step.eval()
    with torch.no_grad():
        torch.onnx.export(step, example_inputs(step), str(out), input_names=INPUT_NAMES, output_names=["stems"],
                          opset_version=17, dynamo=False, do_constant_folding=True)
    return out


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
