"""The refiner's network in ONNX: export, the on-disk cache and an ONNX Runtime runner.

What is exported is :class:`stemstream.realtime.diffusion.refiner_net.RefinerCore` (opset 17,
batch 1, any frame count that is a multiple of the U-Net's): inputs ``features (1, K * bb, bands,
frames)`` and ``c_noise (1,)``, output ``spectrum (1, S * C, 2, bb, bands, frames)``. The STFTs,
the EDM preconditioning, the Dirac projection and the context overwrite stay in PyTorch around
it (:class:`stemstream.realtime.diffusion.refiner_net.RefinerDenoiser`): they are FFTs and a few
elementwise operations, while the graph holds every weight. :class:`OnnxCore` plugs a session in
as the denoiser's ``run_core``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from stemstream.realtime.backends.onnx_cache import default_cache_dir
from stemstream.realtime.backends.onnx_graph import module_fingerprint
from stemstream.realtime.diffusion.refiner_net import RefinerConfig, RefinerCore

#: ONNX opset of the exported graph.
OPSET = 17
#: Graph input and output names.
INPUT_NAMES: tuple[str, ...] = ("features", "c_noise")
OUTPUT_NAME = "spectrum"


def example_inputs(config: RefinerConfig, samples: int | None = None, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random core inputs for a segment of ``samples`` (default ``segment_samples``)."""
    frames = (samples or config.segment_samples) // config.hop
    gen = torch.Generator().manual_seed(seed)
    features = torch.randn((1, config.feature_channels * config.band_bins, config.bands, frames), generator=gen)
    return features, torch.tensor([-0.5])


def export_core(core: RefinerCore, out: str | Path) -> Path:
    """Write ``core`` to ``out`` as ONNX (frames a dynamic axis); returns ``out``. Written to a
    temporary name first, so an interrupted export leaves no graph behind."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    core = core.eval()
    try:
        with torch.no_grad():
            torch.onnx.export(core, example_inputs(core.config), str(tmp), input_names=list(INPUT_NAMES),
                              output_names=[OUTPUT_NAME], opset_version=OPSET, dynamo=False, do_constant_folding=True,
                              dynamic_axes={"features": {3: "frames"}, OUTPUT_NAME: {5: "frames"}})
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def cached_core_graph(core: RefinerCore, name: str = "refiner", cache_dir: str | Path | None = None) -> Path:
    """The graph of ``core`` in the cache (``<cache>/onnx/<name>-<hash16>.onnx``), exported on first use."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "onnx"
    path = root / f"{name}-{module_fingerprint(core, dynamic_hops=True, opset=OPSET)[:16]}.onnx"
    return path if path.exists() else export_core(core, path)


class OnnxCore:
    """An ONNX Runtime session of an exported core, called like the core: ``(features, c_noise)
    -> spectrum`` (torch tensors in and out, batch 1 per run; larger batches run item by item).
    ``threads``: ONNX Runtime intra-op threads (1: the real-time budget of one core)."""

    def __init__(self, graph: str | Path, threads: int = 1) -> None:
        from stemstream.realtime.errors import require

        ort = require("onnxruntime", "onnx")
        from stemstream.realtime.backends.onnx_backend import DENORMAL_AS_ZERO_KEY

        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads)
        options.add_session_config_entry(DENORMAL_AS_ZERO_KEY, "1")
        self.session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])

    def __call__(self, features: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        outs = []
        for i in range(features.shape[0]):
            feeds = {"features": np.ascontiguousarray(features[i : i + 1].detach().numpy(), np.float32),
                     "c_noise": np.ascontiguousarray(c_noise[i : i + 1].detach().numpy(), np.float32)}
            outs.append(torch.from_numpy(self.session.run([OUTPUT_NAME], feeds)[0]))
        return outs[0] if len(outs) == 1 else torch.cat(outs)


def core_parity(core: RefinerCore, graph: str | Path, samples: int | None = None, seed: int = 1) -> float:
    """Largest absolute difference between the core in PyTorch and its graph in ONNX Runtime."""
    features, c_noise = example_inputs(core.config, samples, seed)
    with torch.no_grad():
        expected = core(features, c_noise)
    return float((OnnxCore(graph)(features, c_noise) - expected).abs().max())


__all__ = ["INPUT_NAMES", "OPSET", "OUTPUT_NAME", "OnnxCore", "cached_core_graph", "core_parity", "example_inputs",
           "export_core"]
