"""Where exported graphs live on disk: the cache folder and a module's graph path in it."""

from __future__ import annotations

import os
import re
from pathlib import Path

from stemstream.realtime.backends.onnx_graph import DEFAULT_OPSET, module_fingerprint
from stemstream.realtime.models.base import TorchHopModule


def default_cache_dir() -> Path:
    """Where exported graphs and engines are cached: ``$STEMSTREAM_CACHE`` or
    ``$XDG_CACHE_HOME/stemstream`` (``~/.cache/stemstream``)."""
    root = os.environ.get("STEMSTREAM_CACHE")
    if root:
        return Path(root)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "stemstream"


def _safe_name(model_name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", model_name) or "model"


def cached_graph_path(
    module: TorchHopModule,
    model_name: str,
    *,
    dynamic_hops: bool,
    cache_dir: str | Path | None = None,
    opset: int = DEFAULT_OPSET,
) -> Path:
    """Cache path of ``module``'s graph: ``<cache>/onnx/<name>-<hash16>[-1hop].onnx``."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "onnx"
    digest = module_fingerprint(module, dynamic_hops=dynamic_hops, opset=opset)[:16]  # type: ignore[arg-type]
    suffix = "" if dynamic_hops else "-1hop"
    return root / f"{_safe_name(model_name)}-{digest}{suffix}.onnx"
