"""Native TensorRT backend: a ``HopModel`` over a serialized engine built for one hop.

The engine is built from a fixed-shape, one-hop stemstream graph
(``stemstream.realtime.backends.onnx_graph``, ``dynamic_hops=False``) with the ``tensorrt`` Python API
and cached on disk under a hash of graph bytes, precision, TensorRT version and GPU, so a
second start loads it in milliseconds. Precision lives in the graph (TensorRT 11 builds
strongly typed networks only): an fp32 graph gives an fp32 engine, an fp16 graph
(``stemstream export --format tensorrt --precision fp16`` converts it) an fp16 engine, a
Q/DQ int8 graph an int8 engine. On TensorRT 10 the ``fp16`` precision may also be asked of
an fp32 graph through the (deprecated) builder flag.

Device buffers are PyTorch CUDA tensors (no pycuda needed). ``tensorrt`` and a CUDA build of
PyTorch are optional: a missing one raises ``MissingDependencyError`` naming the ``gpu`` extra.

GPU status: written against the TensorRT 10/11 Python API documentation; not run in this
project's CI (no GPU there).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal

import numpy as np

from stemstream.realtime.backends.onnx_graph import (
    AUDIO_INPUT,
    METADATA_KEY,
    NEXT_STATE_PREFIX,
    STATE_PREFIX,
    STEMS_OUTPUT,
    export_hop_module,
    graph_metadata,
)
from stemstream.realtime.errors import AudioInputError, ConfigError, MissingDependencyError, bad_value, require
from stemstream.realtime.models.base import TorchHopModule
from stemstream.realtime.protocol import ModelInfo, State

PRECISIONS = ("fp32", "fp16", "int8")


def _tensorrt() -> Any:
    return require("tensorrt", "gpu")


def _cuda_torch() -> Any:
    import torch

    if not torch.cuda.is_available():
        raise MissingDependencyError(
            "backend='tensorrt' needs a CUDA GPU visible to a CUDA build of PyTorch "
            f"(torch {torch.__version__}, cuda available: False); install with: pip install 'stemstream[gpu]'"
        )
    return torch


def tensorrt_available() -> bool:
    """True when ``tensorrt`` imports and PyTorch sees a CUDA GPU."""
    try:
        _tensorrt()
        _cuda_torch()
    except MissingDependencyError:
        return False
    return True


def _gpu_key() -> str:
    torch = _cuda_torch()
    props = torch.cuda.get_device_properties(torch.cuda.current_device())
    return f"{props.name}|sm{props.major}{props.minor}"


def engine_cache_key(graph_bytes: bytes, precision: str) -> str:
    """SHA-256 (hex) of graph bytes, precision, TensorRT version and GPU model."""
    trt = _tensorrt()
    h = hashlib.sha256(graph_bytes)
    h.update(f"|{precision}|trt{trt.__version__}|{_gpu_key()}".encode())
    return h.hexdigest()


def _graph_metadata_from_bytes(graph_bytes: bytes, source: str) -> dict[str, Any]:
    """The stemstream metadata of a graph, read with onnxruntime (no onnx package)."""
    import onnxruntime as ort

    from stemstream.realtime.backends.onnx_graph import parse_metadata

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(graph_bytes, so, providers=["CPUExecutionProvider"])
    return parse_metadata(sess.get_modelmeta().custom_metadata_map, source)


def build_engine(
    onnx_path: str | Path,
    cache_dir: str | Path,
    precision: str | None = None,
    workspace_bytes: int = 1 << 30,
) -> Path:
    """Build (or find in ``cache_dir``) the TensorRT engine of a one-hop graph.

    Args:
        onnx_path: graph exported with ``dynamic_hops=False``.
        cache_dir: engine cache folder; the engine is ``<cache>/<name>-<key16>.plan`` with a
            ``.json`` sidecar holding the graph metadata.
        precision: ``fp32``/``fp16``/``int8``; default: the graph's own precision. Asking
            ``fp16`` of an fp32 graph needs TensorRT 10's ``BuilderFlag.FP16``.
        workspace_bytes: builder workspace limit.

    Returns the engine path.
    """
    trt = _tensorrt()
    onnx_path = Path(onnx_path)
    graph_bytes = onnx_path.read_bytes()
    meta = _graph_metadata_from_bytes(graph_bytes, str(onnx_path))
    if meta["dynamic_hops"]:
        raise bad_value("onnx_path", str(onnx_path), "a one-hop graph (exported with dynamic_hops=False)")
    precision = precision or meta.get("precision", "fp32")
    if precision not in PRECISIONS:
        raise bad_value("precision", precision, f"one of {PRECISIONS}")
    key = engine_cache_key(graph_bytes, precision)
    cache_dir = Path(cache_dir)
    engine_path = cache_dir / f"{meta['model_name']}-{key[:16]}.plan"
    if engine_path.exists() and engine_path.with_suffix(".json").exists():
        return engine_path
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    strongly = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    weak_fp16 = precision == "fp16" and meta.get("precision") == "fp32"
    if strongly is not None and not weak_fp16:
        flags |= 1 << int(strongly)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(graph_bytes):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ConfigError(f"onnx_path={str(onnx_path)!r}: TensorRT cannot parse the graph ({errors})")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    if weak_fp16:
        if not hasattr(trt.BuilderFlag, "FP16"):
            raise ConfigError(
                f"precision='fp16': TensorRT {trt.__version__} builds strongly typed networks only; "
                "export an fp16 graph first (stemstream export --format tensorrt --precision fp16)"
            )
        config.set_flag(trt.BuilderFlag.FP16)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ConfigError(f"onnx_path={str(onnx_path)!r}: TensorRT engine build failed (see log above)")
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = engine_path.with_name(f"{engine_path.name}.{os.getpid()}.partial")
    tmp.write_bytes(bytes(serialized))
    meta = dict(meta, precision=precision)
    engine_path.with_suffix(".json").write_text(json.dumps({METADATA_KEY: meta}, sort_keys=True))
    tmp.replace(engine_path)
    return engine_path


class TensorRTHopModel:
    """A ``stemstream.realtime.protocol.HopModel`` running a one-hop TensorRT engine on the GPU.

    Args:
        engine_path: ``.plan`` file from :func:`build_engine` (its ``.json`` sidecar holds
            the graph metadata).
        expected: metadata the engine must match (see ``onnx_backend.check_metadata``).
        name: model name for ``info`` (default: from the metadata).

    Audio ``(channels, n * hop_samples)`` runs as ``n`` engine calls; state stays in numpy
    at the boundary (a few kB per hop).
    """

    kind: Literal["hop"] = "hop"
    max_hops_per_call: int = 1

    def __init__(self, engine_path: str | Path, expected: dict[str, Any] | None = None, name: str | None = None) -> None:
        from stemstream.realtime.backends.onnx_backend import check_metadata

        trt = _tensorrt()
        torch = _cuda_torch()
        self.path = Path(engine_path)
        sidecar = self.path.with_suffix(".json")
        if not self.path.is_file() or not sidecar.is_file():
            raise bad_value("engine_path", str(engine_path), "a TensorRT .plan file with its .json sidecar")
        self.metadata: dict[str, Any] = json.loads(sidecar.read_text())[METADATA_KEY]
        if expected is not None:
            check_metadata(self.metadata, expected, str(self.path))
        m = self.metadata
        self.info = ModelInfo(
            name or m["model_name"], tuple(m["stems"]), int(m["sample_rate"]), int(m["channels"]),
            int(m["latency_samples"]),
        )
        self.hop_samples: int = int(m["hop_samples"])
        self.state_names: tuple[str, ...] = tuple(m["state"])
        self._state_shapes = {k: tuple(v) for k, v in m["state"].items()}
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self._engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self._engine is None:
            raise ConfigError(f"engine_path={str(self.path)!r}: TensorRT cannot load the engine (other version/GPU?)")
        self._context = self._engine.create_execution_context()
        self._stream = torch.cuda.Stream()
        self._torch = torch
        self._device: dict[str, Any] = {}
        self._host: dict[str, Any] = {}
        for i in range(self._engine.num_io_tensors):
            tname = self._engine.get_tensor_name(i)
            shape = tuple(self._engine.get_tensor_shape(tname))
            dev = torch.empty(shape, dtype=torch.float32, device="cuda")
            self._device[tname] = dev
            self._host[tname] = torch.empty(shape, dtype=torch.float32).pin_memory()
            self._context.set_tensor_address(tname, dev.data_ptr())
        self._outputs = [STEMS_OUTPUT] + [NEXT_STATE_PREFIX + n for n in self.state_names]

    def init_state(self) -> State:
        """Zero state (batch 1) with the engine's state names and shapes."""
        return {k: np.zeros(s, dtype=np.float32) for k, s in self._state_shapes.items()}

    def _run_hop(self, audio: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        torch = self._torch
        with torch.cuda.stream(self._stream):
            inputs = {AUDIO_INPUT: audio[None]} | {STATE_PREFIX + k: state[k] for k in self.state_names}
            for tname, arr in inputs.items():
                host = self._host[tname]
                host.numpy()[...] = arr
                self._device[tname].copy_(host, non_blocking=True)
            if not self._context.execute_async_v3(self._stream.cuda_stream):
                raise ConfigError(f"engine_path={str(self.path)!r}: TensorRT execution failed")
            for tname in self._outputs:
                self._host[tname].copy_(self._device[tname], non_blocking=True)
        self._stream.synchronize()
        stems = self._host[STEMS_OUTPUT].numpy()[0].copy()
        new = {k: self._host[NEXT_STATE_PREFIX + k].numpy().copy() for k in self.state_names}
        return stems, new

    def process_hops(self, audio: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """Separate ``audio`` ``(channels, n * hop_samples)`` -> ``(stems, channels, n * hop_samples)``."""
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        ch, hop = self.info.channels, self.hop_samples
        if audio.ndim != 2 or audio.shape[0] != ch or audio.shape[1] % hop:
            raise AudioInputError(f"audio.shape={audio.shape!r}: expected ({ch}, n * {hop})")
        n = audio.shape[1] // hop
        if n == 0:
            return np.zeros((len(self.info.stems), ch, 0), np.float32), state
        pieces = []
        for j in range(n):
            out, state = self._run_hop(audio[:, j * hop : (j + 1) * hop], state)
            pieces.append(out)
        return np.concatenate(pieces, axis=-1), state


def open_tensorrt(
    module: TorchHopModule,
    model_name: str,
    *,
    cache_dir: str | Path | None = None,
    precision: str = "fp32",
) -> TensorRTHopModel:
    """``module`` as a native TensorRT ``HopModel``: exports the one-hop graph and builds the
    engine on first use (both cached under ``cache_dir``, default ``~/.cache/stemstream``).

    ``precision``: ``fp32`` (any TensorRT), or ``fp16`` via TensorRT 10's builder flag; for
    fp16 on TensorRT 11 and int8, export with ``stemstream export --format tensorrt``.
    """
    from stemstream.realtime.backends.onnx_cache import cached_graph_path, default_cache_dir

    _tensorrt()
    _cuda_torch()
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    graph = cached_graph_path(module, model_name, dynamic_hops=False, cache_dir=root / "onnx")
    if not graph.exists():
        export_hop_module(module, graph, model_name, dynamic_hops=False)
    engine = build_engine(graph, root / "tensorrt", precision=precision)
    expected = graph_metadata(module, model_name, dynamic_hops=False)
    return TensorRTHopModel(engine, expected=expected, name=model_name)


__all__ = [
    "PRECISIONS",
    "TensorRTHopModel",
    "build_engine",
    "engine_cache_key",
    "open_tensorrt",
    "tensorrt_available",
]
