"""ONNX Runtime backend: a ``HopModel`` over an exported stemstream graph.

Execution providers, by short name:

* ``cpu`` - ``CPUExecutionProvider`` (in every onnxruntime build). One intra-op thread and
  sequential execution by default: in live use the audio thread and the inference worker
  share a few cores, and one thread has the steadiest per-hop time. The graph is loaded with
  its strided convolutions as MatMuls (``stemstream.realtime.backends.onnx_conv_rewrite``, in memory),
  and then all hops of a call run in one ONNX Runtime call.
* ``cuda`` - ``CUDAExecutionProvider`` (``onnxruntime-gpu``), CPU after it.
* ``tensorrt`` - ``TensorrtExecutionProvider`` with CUDA registered after it so nodes
  TensorRT cannot run fall back, then CPU; engines cached on disk. Wants fixed input
  shapes: :func:`open_onnx` exports a one-hop graph for it.

Graphs follow ``stemstream.realtime.backends.onnx_graph``; the metadata is checked against what the
caller expects, and a mismatch is an error showing both values.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np

from stemstream.realtime.backends.onnx_cache import cached_graph_path, default_cache_dir
from stemstream.realtime.backends.onnx_graph import (
    AUDIO_INPUT,
    NEXT_STATE_PREFIX,
    STATE_PREFIX,
    STEMS_OUTPUT,
    export_hop_module,
    graph_metadata,
    parse_metadata,
)
from stemstream.realtime.errors import AudioInputError, ConfigError, MissingDependencyError, bad_value
from stemstream.realtime.models.base import TorchHopModule
from stemstream.realtime.protocol import ModelInfo, State

#: Short provider names and the onnxruntime execution providers they stand for.
PROVIDERS: dict[str, str] = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}

#: Metadata keys compared between a graph and the model the caller expects.
CHECKED_KEYS: tuple[str, ...] = (
    "architecture",
    "stems",
    "sample_rate",
    "channels",
    "hop_samples",
    "latency_samples",
    "window",
    "state",
    "config",
)

_OPT_LEVELS = ("disabled", "basic", "extended", "all")


@dataclass(frozen=True)
class OnnxRuntimeOptions:
    """How an ONNX Runtime session is built.

    Attributes:
        providers: short provider names in priority order (``cpu``, ``cuda``, ``tensorrt``);
            ``cpu`` is always appended last as the fallback.
        intra_op_threads: threads inside one op (1 for live use).
        inter_op_threads: threads across ops (execution is sequential; kept at 1).
        graph_optimization: ``disabled``, ``basic``, ``extended`` or ``all`` (in memory only;
            the file on disk stays unoptimised).
        engine_cache_dir: TensorRT execution provider engine cache (default under
            :func:`default_cache_dir`).
        trt_fp16: let the TensorRT execution provider build fp16 engines.
        conv_as_matmul: on the CPU provider alone, load the graph with its strided 1-D
            convolutions rewritten as MatMuls (``stemstream.realtime.backends.onnx_conv_rewrite``; in
            memory, needs the ``onnx`` package, skipped without it): same results up to float32
            rounding, and multi-hop calls cost little more than one hop.
        flush_denormals: ONNX Runtime's ``session.set_denormal_as_zero``: its intra-op threads
            (and the thread that builds the process' first session) flush denormals to zero
            (``stemstream.realtime.engine.denormals``); the thread that calls ``run`` keeps its own mode.
    """

    providers: tuple[str, ...] = ("cpu",)
    intra_op_threads: int = 1
    inter_op_threads: int = 1
    graph_optimization: str = "all"
    engine_cache_dir: str | None = None
    trt_fp16: bool = False
    conv_as_matmul: bool = True
    flush_denormals: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.providers, str) or not self.providers:
            raise bad_value("providers", self.providers, f"a non-empty tuple of {sorted(PROVIDERS)}")
        for p in self.providers:
            if p not in PROVIDERS:
                raise bad_value("providers", p, f"one of {sorted(PROVIDERS)}")
        for name in ("intra_op_threads", "inter_op_threads"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise bad_value(name, getattr(self, name), "an integer >= 1")
        if self.graph_optimization not in _OPT_LEVELS:
            raise bad_value("graph_optimization", self.graph_optimization, f"one of {_OPT_LEVELS}")


def _ort() -> Any:
    try:
        import onnxruntime
    except ImportError:  # pragma: no cover - onnxruntime is a core dependency
        raise MissingDependencyError(
            "optional package 'onnxruntime' is not installed; install it with: pip install onnxruntime"
        ) from None
    return onnxruntime


def available_providers() -> tuple[str, ...]:
    """Short names of the execution providers this onnxruntime build offers."""
    have = set(_ort().get_available_providers())
    return tuple(short for short, full in PROVIDERS.items() if full in have)


#: ONNX Runtime's session config key that makes its threads flush denormals to zero.
DENORMAL_AS_ZERO_KEY = "session.set_denormal_as_zero"


def session_options(options: OnnxRuntimeOptions) -> Any:
    """The ``onnxruntime.SessionOptions`` for ``options`` (threads, sequential execution,
    optimisation level, quiet logging, denormals flushed where asked)."""
    ort = _ort()
    so = ort.SessionOptions()
    so.intra_op_num_threads = options.intra_op_threads
    so.inter_op_num_threads = options.inter_op_threads
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = {
        "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[options.graph_optimization]
    so.log_severity_level = 3
    if options.flush_denormals:
        so.add_session_config_entry(DENORMAL_AS_ZERO_KEY, "1")
    return so


def _provider_list(options: OnnxRuntimeOptions) -> list[tuple[str, dict[str, str]]]:
    """``(provider, provider_options)`` in priority order, CUDA after TensorRT, CPU last."""
    order: list[str] = []
    for p in options.providers:
        chain = {"tensorrt": ["tensorrt", "cuda"], "cuda": ["cuda"], "cpu": ["cpu"]}[p]
        order += [c for c in chain if c not in order]
    order = [p for p in order if p != "cpu"] + ["cpu"]
    have = set(_ort().get_available_providers())
    missing = [p for p in order if PROVIDERS[p] not in have]
    if missing:
        raise MissingDependencyError(
            f"providers={list(options.providers)!r}: onnxruntime lacks {[PROVIDERS[p] for p in missing]!r} "
            f"(this build has {sorted(have)!r}); install the GPU build with: "
            "pip uninstall onnxruntime && pip install 'stemstream[gpu]'"
        )
    result: list[tuple[str, dict[str, str]]] = []
    for p in order:
        opts: dict[str, str] = {}
        if p == "tensorrt":
            cache = options.engine_cache_dir or str(default_cache_dir() / "trt-ep")
            Path(cache).mkdir(parents=True, exist_ok=True)
            opts = {
                "trt_engine_cache_enable": "True",
                "trt_engine_cache_path": cache,
                "trt_timing_cache_enable": "True",
                "trt_timing_cache_path": cache,
                "trt_fp16_enable": "True" if options.trt_fp16 else "False",
            }
        result.append((PROVIDERS[p], opts))
    return result


def _rewritten_graph(path: Path) -> tuple[str | bytes, int, bool]:
    """The graph at ``path`` with strided convolutions as MatMuls (serialised), how many were
    rewritten, and whether no convolution is left; ``(str(path), 0, False)`` when nothing
    changes or ``onnx`` is missing."""
    try:
        import onnx
    except ImportError:  # pragma: no cover - onnx is a core dependency
        return str(path), 0, False
    from stemstream.realtime.backends.onnx_conv_rewrite import rewrite_strided_convs

    try:
        model = onnx.load(str(path))
    except Exception:  # unreadable here: let onnxruntime report it
        return str(path), 0, False
    count = rewrite_strided_convs(model)
    if not count:
        return str(path), 0, False
    left = any("Conv" in node.op_type for node in model.graph.node)  # Conv, ConvInteger, QLinearConv...
    return model.SerializeToString(), count, not left


def check_metadata(meta: dict[str, Any], expected: dict[str, Any], source: str) -> None:
    """Raise ``ConfigError`` naming both values if ``meta`` and ``expected`` disagree on
    any of :data:`CHECKED_KEYS` present in ``expected``."""
    for key in CHECKED_KEYS:
        if key in expected and meta.get(key) != expected[key]:
            raise ConfigError(
                f"onnx graph {source!r}: metadata {key}={meta.get(key)!r}, "
                f"but the model expects {key}={expected[key]!r}"
            )


class OnnxHopModel:
    """A ``stemstream.realtime.protocol.HopModel`` running an exported graph in ONNX Runtime.

    Args:
        path: ``.onnx`` file exported by ``stemstream.realtime.backends.onnx_graph``.
        options: session options (providers, threads); default one CPU thread.
        expected: metadata the graph must match (e.g. ``graph_metadata(module, name)``);
            only :data:`CHECKED_KEYS` are compared. ``None``: trust the graph.
        name: model name for ``info`` (default: the name stored in the graph).

    Audio is ``(channels, n * hop_samples)`` float32; stems ``(stems, channels,
    n * hop_samples)`` delayed by ``info.latency_samples``. A one-hop graph runs ``n`` times.
    """

    kind: Literal["hop"] = "hop"

    def __init__(
        self,
        path: str | Path,
        options: OnnxRuntimeOptions | None = None,
        expected: dict[str, Any] | None = None,
        name: str | None = None,
    ) -> None:
        ort = _ort()
        self.path = Path(path)
        if not self.path.is_file():
            raise bad_value("path", str(path), "an existing .onnx file")
        self.options = options or OnnxRuntimeOptions()
        so = session_options(self.options)
        providers = _provider_list(self.options)
        #: Convolutions rewritten as MatMuls at load (0: the graph runs as exported).
        self.rewritten_convs = 0
        #: All hops of a call in one run (no convolution left that is slow for few frames).
        self.batch_all_hops = False
        graph: str | bytes = str(self.path)
        if self.options.conv_as_matmul and [p for p, _ in providers] == [PROVIDERS["cpu"]]:
            graph, self.rewritten_convs, self.batch_all_hops = _rewritten_graph(self.path)
        try:
            self.session = ort.InferenceSession(
                graph,
                so,
                providers=[p for p, _ in providers],
                provider_options=[o for _, o in providers],
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ConfigError(f"path={str(path)!r}: onnxruntime cannot load the graph ({exc})") from None
        wanted = providers[0][0]
        if wanted not in self.session.get_providers():
            raise MissingDependencyError(
                f"providers={list(self.options.providers)!r}: {wanted} did not start (no usable GPU?); "
                f"session runs on {self.session.get_providers()!r}"
            )
        src = str(self.path)
        self.metadata = parse_metadata(self.session.get_modelmeta().custom_metadata_map, src)
        if expected is not None:
            check_metadata(self.metadata, expected, src)
        m = self.metadata
        self.state_names: tuple[str, ...] = tuple(m["state"])
        self._state_shapes = {k: tuple(v) for k, v in m["state"].items()}
        inputs = {i.name for i in self.session.get_inputs()}
        wanted_inputs = {AUDIO_INPUT} | {STATE_PREFIX + n for n in self.state_names}
        if inputs != wanted_inputs:
            raise ConfigError(f"onnx graph {src!r}: inputs {sorted(inputs)!r}, expected {sorted(wanted_inputs)!r}")
        self._output_names = [STEMS_OUTPUT] + [NEXT_STATE_PREFIX + n for n in self.state_names]
        self.info = ModelInfo(
            name or m["model_name"], tuple(m["stems"]), int(m["sample_rate"]), int(m["channels"]),
            int(m["latency_samples"]),
        )
        self.hop_samples: int = int(m["hop_samples"])
        self.dynamic_hops: bool = bool(m["dynamic_hops"])
        self.max_hops_per_call: int = (1 << 16) if self.dynamic_hops else 1
        self.precision: str = str(m.get("precision", "fp32"))

    @property
    def providers(self) -> list[str]:
        """Execution providers of the session, in priority order."""
        return list(self.session.get_providers())

    def init_state(self) -> State:
        """Zero state (batch 1) with the graph's state names and shapes."""
        return {k: np.zeros(s, dtype=np.float32) for k, s in self._state_shapes.items()}

    def _run(self, audio: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        feeds = {AUDIO_INPUT: audio[None]}
        for k in self.state_names:
            feeds[STATE_PREFIX + k] = np.ascontiguousarray(state[k], dtype=np.float32)
        try:
            outs = self.session.run(self._output_names, feeds)
        except Exception as exc:  # onnxruntime's own types; name the culprit if it is ours
            for k in self.state_names:
                if feeds[STATE_PREFIX + k].shape != self._state_shapes[k]:
                    raise bad_value(f"state[{k!r}].shape", feeds[STATE_PREFIX + k].shape, f"{self._state_shapes[k]}") from None
            raise ConfigError(f"onnx graph {str(self.path)!r}: onnxruntime failed ({exc})") from None
        return outs[0][0], dict(zip(self.state_names, outs[1:]))

    def process_hops(self, audio: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """Separate ``audio`` ``(channels, n * hop_samples)`` -> ``(stems, channels, n * hop_samples)``."""
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        ch, hop = self.info.channels, self.hop_samples
        if audio.ndim != 2 or audio.shape[0] != ch or audio.shape[1] % hop:
            raise AudioInputError(f"audio.shape={audio.shape!r}: expected ({ch}, n * {hop})")
        missing = [k for k in self.state_names if k not in state]
        if missing:
            raise bad_value("state", sorted(state), f"keys {list(self.state_names)!r}")
        n = audio.shape[1] // hop
        if n == 0:
            return np.zeros((len(self.info.stems), ch, 0), np.float32), state
        if self.dynamic_hops and (n >= MIN_BATCHED_HOPS or self.batch_all_hops):
            return self._run(audio, state)
        pieces = []
        for j in range(n):
            out, state = self._run(audio[:, j * hop : (j + 1) * hop], state)
            pieces.append(out)
        return (pieces[0] if n == 1 else np.concatenate(pieces, axis=-1)), state


#: Fewest hops worth one multi-hop call of a dynamic-hops graph *as exported* (ONNX Runtime's
#: ``Conv`` is slow for a few output frames). Below it, hop-by-hop calls are faster: for ``live``
#: on the 2-core CPU box, one 2-hop call took 2.03 ms (p50) against 1.31 ms for two 1-hop calls,
#: while one 4-hop call took 2.09 ms against ~2.7 ms for four 1-hop calls. A graph loaded with
#: all its convolutions rewritten (``OnnxRuntimeOptions.conv_as_matmul``) always runs all hops in
#: one call (``batch_all_hops``): ``live``, 2 hops: 0.65 ms in one call against 1.23 ms as two.
MIN_BATCHED_HOPS = 4


def open_onnx(
    module: TorchHopModule,
    model_name: str,
    providers: Sequence[str] = ("cpu",),
    *,
    cache_dir: str | Path | None = None,
    dynamic_hops: bool | None = None,
    intra_op_threads: int = 1,
    engine_cache_dir: str | None = None,
    trt_fp16: bool = False,
) -> OnnxHopModel:
    """``module`` as an ONNX Runtime ``HopModel``, exporting it to the cache on first use.

    Args:
        module: a hop module (``stemstream.realtime.models.base``).
        model_name: registry name (names the cached file and ``info.name``).
        providers: short provider names, e.g. ``("cpu",)``, ``("cuda",)``, ``("tensorrt",)``.
        cache_dir: folder for graphs (default ``default_cache_dir() / "onnx"``); the file
            name carries a hash of config, weights, exporter version and shape mode.
        dynamic_hops: export any-number-of-hops graphs (default: ``True`` except for the
            TensorRT provider, which wants the fixed one-hop shape).
        intra_op_threads: ONNX Runtime intra-op threads (1 for live use).
        engine_cache_dir, trt_fp16: TensorRT execution provider settings.
    """
    options = OnnxRuntimeOptions(
        providers=tuple(providers),
        intra_op_threads=intra_op_threads,
        engine_cache_dir=engine_cache_dir,
        trt_fp16=trt_fp16,
    )
    _provider_list(options)  # fail on missing GPU packages before exporting anything
    if dynamic_hops is None:
        dynamic_hops = "tensorrt" not in options.providers
    path = cached_graph_path(module, model_name, dynamic_hops=dynamic_hops, cache_dir=cache_dir)
    if not path.exists():
        export_hop_module(module, path, model_name, dynamic_hops=dynamic_hops)
    expected = graph_metadata(module, model_name, dynamic_hops=dynamic_hops)
    return OnnxHopModel(path, options, expected=expected, name=model_name)


def open_onnx_file(
    path: str | Path,
    providers: Sequence[str] = ("cpu",),
    *,
    expected: dict[str, Any] | None = None,
    intra_op_threads: int = 1,
    engine_cache_dir: str | None = None,
    trt_fp16: bool = False,
) -> OnnxHopModel:
    """An already-exported graph (fp32, fp16 or int8) as an ONNX Runtime ``HopModel``.

    ``expected``: metadata to check the graph against (see :class:`OnnxHopModel`).
    """
    options = OnnxRuntimeOptions(
        providers=tuple(providers),
        intra_op_threads=intra_op_threads,
        engine_cache_dir=engine_cache_dir,
        trt_fp16=trt_fp16,
    )
    return OnnxHopModel(path, options, expected=expected)


__all__ = [
    "OnnxHopModel",
    "OnnxRuntimeOptions",
    "PROVIDERS",
    "available_providers",
    "cached_graph_path",
    "check_metadata",
    "default_cache_dir",
    "open_onnx",
    "open_onnx_file",
    "session_options",
]
