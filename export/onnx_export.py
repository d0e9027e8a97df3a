"""Export hop models to ONNX with explicit state, and inspect / validate the graphs.

The graph contract (input/output names, metadata) is defined in
``stemstream.realtime.backends.onnx_graph``, which the runtime uses to export on the fly; this module
adds what only export tooling needs: ``onnx`` checker, complex-op check, metadata editing,
and exporting shipped models by name.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stemstream.realtime.backends.onnx_graph import DEFAULT_OPSET, METADATA_KEY, export_hop_module
from stemstream.realtime.errors import StemstreamError, require
from stemstream.realtime.models.base import TorchHopModule

#: ONNX ops that mean the graph computes a spectrogram natively or handles complex numbers.
FORBIDDEN_OPS: frozenset[str] = frozenset(
    {"STFT", "DFT", "MelWeightMatrix", "HannWindow", "HammingWindow", "BlackmanWindow"}
)


class ExportError(StemstreamError):
    """An exported graph fails a check (complex ops, bad metadata, checker errors)."""


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_onnx` produced.

    Attributes:
        path: the ``.onnx`` file (unoptimised graph).
        metadata: the model description stored in the graph.
        op_counts: ONNX op type -> number of nodes (including subgraphs).
        size_bytes: file size.
    """

    path: Path
    metadata: dict[str, Any]
    op_counts: dict[str, int]
    size_bytes: int


def _onnx() -> Any:
    return require("onnx", "data")


def _load(model_or_path: Any) -> Any:
    onnx = _onnx()
    if isinstance(model_or_path, (str, Path)):
        return onnx.load(str(model_or_path))
    return model_or_path


def _walk_graphs(graph: Any) -> Any:
    """Yield ``graph`` and every subgraph (If / Loop / Scan bodies), depth first."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.g is not None and len(attr.g.node):
                yield from _walk_graphs(attr.g)
            for sub in attr.graphs:
                yield from _walk_graphs(sub)


def op_counts(model_or_path: Any) -> dict[str, int]:
    """ONNX op type -> node count over the graph and all its subgraphs."""
    model = _load(model_or_path)
    counts: Counter[str] = Counter()
    for g in _walk_graphs(model.graph):
        counts.update(n.op_type for n in g.node)
    return dict(sorted(counts.items()))


def check_no_complex_ops(model_or_path: Any) -> None:
    """Raise :class:`ExportError` if the graph has spectral / complex ops or complex tensors.

    Walks every node (subgraphs included) for :data:`FORBIDDEN_OPS`, and every input, output,
    value_info and initializer for complex element types.
    """
    onnx = _onnx()
    model = _load(model_or_path)
    complex_types = {onnx.TensorProto.COMPLEX64, onnx.TensorProto.COMPLEX128}
    bad: list[str] = []
    for g in _walk_graphs(model.graph):
        bad += [f"node {n.name or '?'} ({n.op_type})" for n in g.node if n.op_type in FORBIDDEN_OPS]
        for vi in list(g.input) + list(g.output) + list(g.value_info):
            if vi.type.tensor_type.elem_type in complex_types:
                bad.append(f"tensor {vi.name} (complex)")
        bad += [f"initializer {t.name} (complex)" for t in g.initializer if t.data_type in complex_types]
    if bad:
        raise ExportError(f"graph has complex or spectral ops: {bad[:10]!r}" + (" ..." if len(bad) > 10 else ""))


def read_metadata(model_or_path: Any) -> dict[str, Any]:
    """The stemstream metadata (JSON-decoded) of a graph file or ``ModelProto``."""
    model = _load(model_or_path)
    for prop in model.metadata_props:
        if prop.key == METADATA_KEY:
            return json.loads(prop.value)
    raise ExportError(f"graph lacks the {METADATA_KEY!r} metadata entry")


def set_metadata(model: Any, metadata: dict[str, Any]) -> None:
    """Replace (or add) the stemstream metadata entry of ``model`` (a ``ModelProto``) in place."""
    keep = [p for p in model.metadata_props if p.key != METADATA_KEY]
    del model.metadata_props[:]
    for p in keep:
        model.metadata_props.add(key=p.key, value=p.value)
    model.metadata_props.add(key=METADATA_KEY, value=json.dumps(metadata, sort_keys=True))


def export_onnx(
    module: TorchHopModule,
    out: str | Path,
    model_name: str,
    *,
    dynamic_hops: bool = True,
    architecture: str | None = None,
    opset: int = DEFAULT_OPSET,
) -> ExportResult:
    """Export ``module`` to ``out`` (unoptimised), run the ONNX checker and the complex-op check.

    Args:
        module: hop module (``stemstream.realtime.models.base``).
        out: ``.onnx`` path.
        model_name: name stored in the metadata.
        dynamic_hops: any number of hops per call (``True``) or exactly one (``False``,
            the shape TensorRT wants).
        architecture: architecture id for the metadata (default from the module).
        opset: ONNX opset (>= 17).
    """
    onnx = _onnx()
    out = Path(out)
    meta = export_hop_module(
        module, out, model_name, architecture=architecture, dynamic_hops=dynamic_hops, opset=opset
    )
    model = onnx.load(str(out))
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"out={str(out)!r}: ONNX checker rejects the graph ({exc})") from None
    check_no_complex_ops(model)
    if read_metadata(model) != meta:
        raise ExportError(f"out={str(out)!r}: metadata did not survive the round trip")
    return ExportResult(out, meta, op_counts(model), out.stat().st_size)


__all__ = [
    "ExportError",
    "ExportResult",
    "FORBIDDEN_OPS",
    "check_no_complex_ops",
    "export_onnx",
    "op_counts",
    "read_metadata",
    "set_metadata",
]
