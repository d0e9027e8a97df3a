"""Weight files: safetensors with the JSON config, architecture, run record and a checksum.

Metadata keys: ``architecture``, ``config`` (JSON of the frozen config), ``run_record``
(JSON: data, steps, wall time, machine, scores), ``checksum`` (SHA-256 over the tensors in
name order, so a corrupted or hand-edited file is detected at load time), and ``storage``
(``float32`` or ``float16``: shipped weights may be stored in half precision to halve the
file; they are always returned as float32, and inference runs in float32).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stemstream.realtime.errors import StemstreamError
from stemstream.realtime.files import give_default_mode


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
    half: bool = False,
) -> str:
    """Write ``model``'s parameters to ``path``; returns the checksum.

    ``half``: store floating-point tensors as float16 (the caller should have evaluated the
    model with its weights rounded the same way, see :func:`round_to_half`).
    """
    return save_tensors(path, model.state_dict(), architecture, config_json, run_record, half)


def save_tensors(
    path: str | Path,
    tensors: dict[str, torch.Tensor],
    architecture: str,
    config_json: str,
    run_record: dict[str, Any] | None = None,
    half: bool = False,
) -> str:
    """Write ``tensors`` (a state dict) to ``path`` with the metadata; returns the checksum
    (``half`` as in :func:`save_weights`)."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    if half:
        tensors = {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}
    checksum = tensors_checksum(tensors)
    meta = {
        "architecture": architecture,
        "config": config_json,
        "run_record": json.dumps(run_record or {}, sort_keys=True),
        "checksum": checksum,
        "storage": "float16" if half else "float32",
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=meta)
    give_default_mode(path)  # safetensors creates files 0600
    return checksum


def read_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of weight file ``path`` (its header only; no tensors read, no checksum)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as exc:  # safetensors raises several types for bad files
        raise WeightFileError(f"weights={str(path)!r}: unreadable safetensors file ({exc})") from None


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
    tensors = {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}
    return tensors, meta


@torch.no_grad()
def round_to_half(model: torch.nn.Module) -> torch.nn.Module:
    """Round ``model``'s floating-point parameters and buffers to float16 values, in place
    (they stay float32 tensors): the model then computes exactly what a half-stored file gives."""
    for t in list(model.parameters()) + list(model.buffers()):
        if t.is_floating_point():
            t.copy_(t.half().float())
    return model
