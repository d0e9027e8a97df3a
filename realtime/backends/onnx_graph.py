"""Build ONNX graphs of hop models with explicit state, and the metadata that describes them.

Graph contract (what ``stemstream.realtime.backends.onnx_backend`` and ``export`` rely on)::

    inputs:  audio              float32 (1, channels, hops * hop_samples)
             state.<name>       float32, the shape of ``module.init_state(1)[name]``
    outputs: stems              float32 (1, stems, channels, hops * hop_samples)
             next_state.<name>  float32, same shape as ``state.<name>``

``hops`` is fixed to 1 (``dynamic_hops=False``: the shape TensorRT and the TensorRT
execution provider want) or a symbolic ``samples`` axis (``dynamic_hops=True``). The model's
configuration travels in the graph's ``metadata_props`` under :data:`METADATA_KEY` as JSON
(see :func:`graph_metadata`), so a runtime can check that the graph is the model it expects.

The graph is saved as the exporter wrote it, before any runtime-specific optimisation
(fully optimised graphs can contain fused ops other builds cannot load).

Exporting uses ``torch.onnx`` (TorchScript exporter), which needs the ``onnx`` package at
export time only; loading an exported graph needs just ``onnxruntime``.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stemstream.realtime.errors import bad_value, require
from stemstream.realtime.models.base import TorchHopModule

#: Input / output names of every stemstream hop graph.
AUDIO_INPUT = "audio"
STEMS_OUTPUT = "stems"
STATE_PREFIX = "state."
NEXT_STATE_PREFIX = "next_state."

#: ``metadata_props`` key holding the JSON model description.
METADATA_KEY = "stemstream"

#: Bumped whenever the graph contract or the exporter's output changes (invalidates caches).
GRAPH_FORMAT_VERSION = 1

#: Default ONNX opset.
DEFAULT_OPSET = 17


class _GraphWrapper(torch.nn.Module):
    """Flattens ``forward(audio, state_dict)`` to positional tensors for the exporter."""

    def __init__(self, module: torch.nn.Module, state_names: list[str]) -> None:
        super().__init__()
        self.module = module
        self.state_names = state_names

    def forward(self, audio: torch.Tensor, *states: torch.Tensor) -> tuple[torch.Tensor, ...]:
        stems, new = self.module(audio, dict(zip(self.state_names, states)))
        return (stems, *[new[name] for name in self.state_names])


def _config_dict(config: Any) -> dict[str, Any]:
    """The module config as a JSON-able dict (frozen dataclass or object with ``to_json``)."""
    if hasattr(config, "to_json"):
        return json.loads(config.to_json())
    if dataclasses.is_dataclass(config):
        return json.loads(json.dumps(dataclasses.asdict(config), default=list))
    return {}


def graph_metadata(
    module: TorchHopModule,
    model_name: str,
    *,
    architecture: str | None = None,
    dynamic_hops: bool = False,
    precision: str = "fp32",
) -> dict[str, Any]:
    """The model description stored in (and checked against) a graph's metadata.

    Keys: ``format_version``, ``model_name``, ``architecture``, ``stems``, ``sample_rate``
    (Hz), ``channels``, ``hop_samples``, ``latency_samples``, ``window`` (analysis /
    synthesis window lengths in samples where the config has them), ``state`` (name ->
    shape at batch 1), ``dynamic_hops``, ``precision`` and ``config`` (the full config).
    """
    cfg = module.config
    if architecture is None:
        defining = sys.modules.get(type(module).__module__)
        architecture = str(getattr(defining, "ARCHITECTURE", type(module).__name__))
    state = module.init_state(1)
    window = {
        key: int(getattr(cfg, key))
        for key in ("analysis_samples", "synthesis_samples")
        if hasattr(cfg, key)
    }
    return {
        "format_version": GRAPH_FORMAT_VERSION,
        "model_name": model_name,
        "architecture": architecture,
        "stems": list(cfg.stems),
        "sample_rate": int(cfg.sample_rate),
        "channels": int(cfg.channels),
        "hop_samples": int(cfg.hop_samples),
        "latency_samples": int(cfg.latency_samples),
        "window": window,
        "state": {name: list(t.shape) for name, t in state.items()},
        "dynamic_hops": bool(dynamic_hops),
        "precision": precision,
        "config": _config_dict(cfg),
    }


def module_fingerprint(module: torch.nn.Module, *, dynamic_hops: bool, opset: int) -> str:
    """SHA-256 (hex) of everything that determines the exported graph.

    Covers the config, every parameter and buffer (name, shape, float32 bytes), the graph
    format version, the opset, ``dynamic_hops`` and the torch version.
    """
    h = hashlib.sha256()
    h.update(json.dumps(_config_dict(getattr(module, "config", None)), sort_keys=True).encode())
    h.update(f"{type(module).__qualname__}|{GRAPH_FORMAT_VERSION}|{opset}|{dynamic_hops}|{torch.__version__}".encode())
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(np.ascontiguousarray(t.float().numpy()).tobytes())
    return h.hexdigest()


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _length_delimited(field: int, payload: bytes) -> bytes:
    return _varint((field << 3) | 2) + _varint(len(payload)) + payload


def append_metadata(path: str | Path, props: dict[str, str]) -> None:
    """Append ``metadata_props`` entries to the ONNX file at ``path``.

    Writes the protobuf wire format directly (``ModelProto.metadata_props`` is field 14,
    ``StringStringEntryProto`` has ``key`` = 1 and ``value`` = 2), so no ``onnx`` package is
    needed: protobuf parsers concatenate repeated fields however they are split.
    The graph must not already carry any of these keys.
    """
    blob = b"".join(
        _length_delimited(14, _length_delimited(1, key.encode()) + _length_delimited(2, value.encode()))
        for key, value in props.items()
    )
    with open(path, "ab") as f:
        f.write(blob)


def export_hop_module(
    module: TorchHopModule,
    path: str | Path,
    model_name: str,
    *,
    architecture: str | None = None,
    dynamic_hops: bool = False,
    opset: int = DEFAULT_OPSET,
) -> dict[str, Any]:
    """Export ``module`` to an ONNX file at ``path`` with explicit state; returns its metadata.

    Args:
        module: a hop module (``stemstream.realtime.models.base``), exported in eval mode on CPU.
        path: output ``.onnx`` file (parent folders are created).
        model_name: registry name stored in the metadata.
        architecture: architecture id for the metadata (default: the module's module-level
            ``ARCHITECTURE`` or its class name).
        dynamic_hops: ``False``: audio is exactly one hop ``(1, channels, hop_samples)``;
            ``True``: any whole number of hops (axis ``samples``).
        opset: ONNX opset (17 or later).

    The file is written unoptimised, with the metadata of :func:`graph_metadata`. A module
    with a ``fast_dsp`` flag (the live model's complex-FFT training path) is exported with
    it off: the graph must contain only real convolutions.
    """
    if opset < 17:
        raise bad_value("opset", opset, "17 or later")
    require("onnx", "data")  # torch.onnx needs it to serialise the graph
    if any(t.device.type != "cpu" for t in module.state_dict().values()):
        module = copy.deepcopy(module).cpu()  # export on the CPU; leave the caller's module alone
    cfg = module.config
    was_training = module.training
    fast_dsp = getattr(module, "fast_dsp", None)  # live model's FFT training path: export the conv path
    module.eval()
    if fast_dsp:
        module.fast_dsp = False
    try:
        meta = graph_metadata(module, model_name, architecture=architecture, dynamic_hops=dynamic_hops)
        state = {k: v.detach().cpu().float() for k, v in module.init_state(1).items()}
        names = list(state)
        hops = 2 if dynamic_hops else 1  # 2 hops: keep the exporter off size-1 special cases
        audio = torch.zeros(1, cfg.channels, hops * cfg.hop_samples)
        dynamic_axes = (
            {AUDIO_INPUT: {2: "samples"}, STEMS_OUTPUT: {3: "samples"}} if dynamic_hops else None
        )
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.partial")  # concurrent exports do not clash
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    _GraphWrapper(module, names),
                    (audio, *state.values()),
                    str(tmp),
                    input_names=[AUDIO_INPUT] + [STATE_PREFIX + n for n in names],
                    output_names=[STEMS_OUTPUT] + [NEXT_STATE_PREFIX + n for n in names],
                    dynamic_axes=dynamic_axes,
                    opset_version=opset,
                    do_constant_folding=True,
                    dynamo=False,
                )
            append_metadata(tmp, {METADATA_KEY: json.dumps(meta, sort_keys=True)})
            tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)
    finally:
        module.train(was_training)
        if fast_dsp:
            module.fast_dsp = fast_dsp
    return meta


def parse_metadata(custom_metadata_map: dict[str, str], source: str) -> dict[str, Any]:
    """Decode the :data:`METADATA_KEY` entry of a graph's metadata map.

    ``source`` names the file in error messages.
    """
    from stemstream.realtime.errors import ConfigError

    raw = custom_metadata_map.get(METADATA_KEY)
    if raw is None:
        raise ConfigError(
            f"onnx graph {source!r}: metadata lacks {METADATA_KEY!r} "
            "(not exported by stemstream; re-export with 'stemstream export')"
        )
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"onnx graph {source!r}: metadata {METADATA_KEY!r} is not JSON ({exc})") from None
    if meta.get("format_version") != GRAPH_FORMAT_VERSION:
        raise ConfigError(
            f"onnx graph {source!r}: format_version={meta.get('format_version')!r}, "
            f"this code reads {GRAPH_FORMAT_VERSION!r}; re-export the graph"
        )
    return meta
