"""The consistency student's step graph in ONNX: export and the on-disk cache.

One :class:`stemstream.realtime.diffusion.student.StudentStep` evaluation is exported (opset 17,
fixed segment shape, batch 1). Inputs: ``noise (1,S,C,W)``, ``sigma (1,)``, ``mixture
(1,C,W)``, ``context (1,S,C,O)``, ``context_mask (1,)``, ``previous (1,S,C,W)``; output
``stems (1,S,C,W)``. ``load_student(..., backend="onnx")`` uses a graph next to the weight
file if there is one, else exports one into the cache (:func:`cached_student_graph`), as the
ONNX backend does for the hop models. ``stemstream.export.diffusion_onnx`` checks parity.
"""

from __future__ import annotations

from pathlib import Path

import torch

from stemstream.realtime.backends.onnx_cache import default_cache_dir
from stemstream.realtime.backends.onnx_graph import module_fingerprint
from stemstream.realtime.diffusion.student import StudentStep

#: Graph input names, in the order of :meth:`StudentStep.forward`.
INPUT_NAMES: tuple[str, ...] = ("noise", "sigma", "mixture", "context", "context_mask", "previous")
#: ONNX opset of the exported graph.
OPSET = 17


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
    """Write ``step`` to ``out`` as ONNX (opset :data:`OPSET`, TorchScript exporter); returns ``out``.

    Written to a temporary name first, so an interrupted export leaves no graph behind.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    step = step.eval()
    try:
        with torch.no_grad():
            torch.onnx.export(step, example_inputs(step), str(tmp), input_names=list(INPUT_NAMES),
                              output_names=["stems"], opset_version=OPSET, dynamo=False, do_constant_folding=True)
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def cached_student_graph(step: StudentStep, name: str = "diffusion-student", cache_dir: str | Path | None = None) -> Path:
    """The graph of ``step`` in the cache (``<cache>/onnx/<name>-<hash16>.onnx``), exported on first use."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "onnx"
    path = root / f"{name}-{module_fingerprint(step, dynamic_hops=False, opset=OPSET)[:16]}.onnx"
    return path if path.exists() else export_student(step, path)


__all__ = ["INPUT_NAMES", "OPSET", "cached_student_graph", "example_inputs", "export_student"]
