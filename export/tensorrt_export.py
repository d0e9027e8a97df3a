"""Build a native TensorRT engine of a hop model for its fixed one-hop shape.

Steps: export the one-hop fp32 graph (``stemstream.realtime.backends.onnx_graph``), move precision into
the graph (fp16: ``stemstream.export.quantise.convert_fp16``; int8: static Q/DQ quantisation with
calibration on synthetic audio), then build with the ``tensorrt`` Python API
(``stemstream.realtime.backends.tensorrt_backend.build_engine``: strongly typed network, engine cached
under a hash of graph + precision + TensorRT version + GPU). The engine and its ``.json``
metadata sidecar are copied to ``out``.

Needs ``tensorrt`` and a CUDA GPU (``pip install 'stemstream[gpu]'``); without them a
``MissingDependencyError`` names the extra. Not verified on a GPU in this project's CI.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from stemstream.export.onnx_export import export_onnx
from stemstream.export.quantise import make_precision
from stemstream.realtime.backends.tensorrt_backend import PRECISIONS, _cuda_torch, _tensorrt, build_engine
from stemstream.realtime.errors import bad_value
from stemstream.realtime.models.base import TorchHopModule


def export_tensorrt(
    module: TorchHopModule,
    model_name: str,
    out: str | Path,
    precision: str = "fp16",
    *,
    cache_dir: str | Path | None = None,
) -> Path:
    """Build ``module``'s TensorRT engine at ``out`` (``.plan``, plus ``out.json`` metadata).

    Args:
        module: hop module.
        model_name: name stored in the metadata.
        out: engine path.
        precision: ``fp32``, ``fp16`` or ``int8``.
        cache_dir: engine cache (default ``~/.cache/stemstream/tensorrt``).
    """
    if precision not in PRECISIONS:
        raise bad_value("precision", precision, f"one of {PRECISIONS}")
    _tensorrt()
    _cuda_torch()
    from stemstream.realtime.backends.onnx_cache import default_cache_dir

    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "tensorrt"
    out = Path(out)
    with tempfile.TemporaryDirectory() as tmp:
        graph = Path(tmp) / f"{model_name}-1hop.onnx"
        export_onnx(module, graph, model_name, dynamic_hops=False)
        if precision != "fp32":
            reduced = Path(tmp) / f"{model_name}-1hop-{precision}.onnx"
            make_precision(graph, reduced, precision, int8_mode="static")
            graph = reduced
        engine = build_engine(graph, cache)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(engine, out)
    shutil.copyfile(engine.with_suffix(".json"), out.with_suffix(".json"))
    return out


__all__ = ["export_tensorrt"]
