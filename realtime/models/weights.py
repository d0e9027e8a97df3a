"""Weight files: safetensors with the JSON config, architecture, run record and a checksum.

Metadata keys: ``architecture``, ``config`` (JSON of the frozen config), ``run_record``
(JSON: data, steps, wall time, machine, scores), ``checksum`` (SHA-256 over the tensors in
name order, so a corrupted or hand-edited file is detected at load time).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from realtime.errors import StemstreamError


class WeightFileError(StemstreamError):
    """A weight file is missing, corrupted, or does not match the code's architecture."""


def tensors_checksum(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 (hex) over tensor names, shapes and float32 bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(np.ascontiguousarray(t.numpy()).tobytes())
    return h.hexdigest()


def save_weights(
    path: str | Path,
    model: torch.nn.Module,
    architecture: str,
    config_json: str,
    run_record: dict[str, Any] | None = None,
) -> str:
    """Write ``model``'s parameters to ``path``; returns the checksum."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    checksum = tensors_checksum(tensors)
    meta = {
        "architecture": architecture,
        "config": config_json,
        "run_record": json.dumps(run_record or {}, sort_keys=True),
        "checksum": checksum,
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=meta)
    return checksum


def read_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of ``path``, checksum verified."""
    from safetensors import safe_open

    path = Path(path)
    if not path.exists():
        raise WeightFileError(f"weights={str(path)!r}: file not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises several types for bad files
        raise WeightFileError(f"weights={str(path)!r}: unreadable safetensors file ({exc})") from None
    for key in ("architecture", "config", "checksum"):
        if key not in meta:
            raise WeightFileError(f"weights={str(path)!r}: metadata lacks {key!r}")
    actual = tensors_checksum(tensors)
    if actual != meta["checksum"]:
        raise WeightFileError(
            f"weights={str(path)!r}: checksum {actual[:12]}... != stored {meta['checksum'][:12]}..."
        )
    return tensors, meta
