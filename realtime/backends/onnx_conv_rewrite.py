"""Load-time graph rewrite for the ONNX Runtime CPU backend: strided 1-D convolutions as MatMuls.

Why: a hop model's DFT analysis (``Conv``, kernel ``N``, stride ``H``) and iDFT / decoder
overlap-add (``ConvTranspose``, kernel ``M``, stride ``H``) produce one frame per hop. ONNX
Runtime's CPU ``Conv`` runs them as im2col + a GEMM with the *weights* as the un-packed left
matrix and the few frames as the right one, which MLAS pads to 16 columns: a 2-hop call of
``live`` cost more than two 1-hop calls (``Conv`` 264 us for 1 hop, 1377 us for 2). As a
``MatMul`` against a constant right matrix the weights are pre-packed once at load and each
call streams them once for all its hops, so batching hops pays off.

The rewrite (weights ``W``, stride ``S``, kernel ``K = r * S``)::

    Conv(x (B, C, L), W (F, C, K))            ->  trim x to whole rows of S samples,
        rows (B, C, L // S, S); frames (B, n, C*K) = concat of r row-shifted slices;
        MatMul(frames, W.reshape(F, C*K).T) (+ bias) -> Transpose -> (B, F, n)
    ConvTranspose(x (B, C, n), W (C, O, K))   ->  MatMul(x^T, W.reshape(C, O*K))
        -> (B, n, O, r, S); overlap-add: sum over q of the q-th sub-frame padded by q rows
        -> (B, O, (n + r - 1) * S) (+ bias)

Only nodes it can rewrite exactly are touched: float32 constant weights, 1-D, ``group=1``,
no dilation or padding, ``K % S == 0``; others stay as they are. Results equal the original
graph's up to float32 summation order (about 1e-7 relative).
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Lowest opset the rewritten nodes need (Slice/Pad with tensor inputs, Reshape with 0).
MIN_OPSET = 13


def _attributes(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _constant(name: str, initializers: dict[str, Any], producers: dict[str, Any]) -> np.ndarray | None:
    """The value of ``name`` if it is an initializer or a ``Constant`` node's output."""
    from onnx import numpy_helper

    if name in initializers:
        return numpy_helper.to_array(initializers[name])
    node = producers.get(name)
    if node is not None and node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value":
        return numpy_helper.to_array(node.attribute[0].t)
    return None


def _rewritable(node: Any, weight: np.ndarray | None, bias: np.ndarray | None) -> bool:
    if weight is None or weight.dtype != np.float32 or weight.ndim != 3:
        return False
    a = _attributes(node)
    strides = list(a.get("strides", [1]))
    if len(strides) != 1 or a.get("group", 1) != 1 or any(d != 1 for d in a.get("dilations", [1])):
        return False
    if any(a.get("pads", [0, 0])) or a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        return False
    if any(a.get("output_padding", [])) or a.get("output_shape"):
        return False
    if list(a.get("kernel_shape", weight.shape[2:])) != [weight.shape[2]]:
        return False
    has_bias = len(node.input) > 2 and node.input[2]
    if has_bias and (bias is None or bias.dtype != np.float32):
        return False
    return weight.shape[2] % strides[0] == 0


class _Builder:
    """Collects the nodes and initializers replacing one convolution."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []

    def name(self, suffix: str) -> str:
        return f"{self.prefix}/{suffix}"

    def const(self, suffix: str, value: Any, dtype: Any = np.int64) -> str:
        from onnx import numpy_helper

        name = self.name(suffix)
        self.initializers.append(numpy_helper.from_array(np.array(value, dtype=dtype, order="C"), name))
        return name

    def node(self, op: str, inputs: list[str], output: str, **attrs: Any) -> str:
        from onnx import helper

        self.nodes.append(helper.make_node(op, inputs, [output], name=self.name(op + str(len(self.nodes))), **attrs))
        return output


def _conv(b: _Builder, x: str, y: str, w: np.ndarray, bias: np.ndarray | None, stride: int) -> None:
    f, c, k = w.shape
    r = k // stride
    # trim x (B, C, L) to whole rows: L // S * S samples (frames need only those)
    shape = b.node("Shape", [x], b.name("shape"))
    length = b.node("Gather", [shape, b.const("axis_len", 2)], b.name("len"), axis=0)
    rows = b.node("Div", [length, b.const("stride", stride)], b.name("rows"))
    usable = b.node("Mul", [rows, b.const("stride2", stride)], b.name("usable"))
    usable1 = b.node("Unsqueeze", [usable, b.const("ax0", [0])], b.name("usable1"))
    trimmed = b.node("Slice", [x, b.const("zero", [0]), usable1, b.const("ax2", [2])], b.name("trimmed"))
    grid = b.node("Reshape", [trimmed, b.const("grid_shape", [0, c, -1, stride])], b.name("grid"))  # (B, C, R, S)
    shifted = []
    for q in range(r):
        end = q - (r - 1) if q < r - 1 else np.iinfo(np.int64).max
        shifted.append(b.node("Slice", [grid, b.const(f"start{q}", [q]), b.const(f"end{q}", [end]), b.const(f"sax{q}", [2])],
                              b.name(f"shift{q}")))  # (B, C, n, S)
    frames = b.node("Concat", shifted, b.name("frames"), axis=3) if r > 1 else shifted[0]  # (B, C, n, K)
    frames = b.node("Transpose", [frames], b.name("frames_t"), perm=[0, 2, 1, 3])  # (B, n, C, K)
    flat = b.node("Reshape", [frames, b.const("flat_shape", [0, 0, c * k])], b.name("flat"))  # (B, n, C*K)
    out = b.node("MatMul", [flat, b.const("weight", w.reshape(f, c * k).T, np.float32)], b.name("product"))
    if bias is not None:
        out = b.node("Add", [out, b.const("bias", bias.reshape(f), np.float32)], b.name("biased"))
    b.node("Transpose", [out], y, perm=[0, 2, 1])  # (B, F, n)


def _conv_transpose(b: _Builder, x: str, y: str, w: np.ndarray, bias: np.ndarray | None, stride: int) -> None:
    c, o, k = w.shape
    r = k // stride
    xt = b.node("Transpose", [x], b.name("x_t"), perm=[0, 2, 1])  # (B, n, C)
    fr = b.node("MatMul", [xt, b.const("weight", w.reshape(c, o * k), np.float32)], b.name("frames"))  # (B, n, O*K)
    fr = b.node("Reshape", [fr, b.const("split_shape", [0, 0, o, r, stride])], b.name("split"))  # (B, n, O, r, S)
    fr = b.node("Transpose", [fr], b.name("split_t"), perm=[0, 2, 3, 1, 4])  # (B, O, r, n, S)
    parts = []
    for q in range(r):
        sub = b.node("Gather", [fr, b.const(f"q{q}", q)], b.name(f"sub{q}"), axis=2)  # (B, O, n, S)
        pads = b.const(f"pads{q}", [0, 0, q, 0, 0, 0, r - 1 - q, 0])
        parts.append(b.node("Pad", [sub, pads], b.name(f"padded{q}")))  # (B, O, n + r - 1, S)
    out = b.node("Sum", parts, b.name("ola")) if r > 1 else parts[0]
    if bias is not None:
        out = b.node("Add", [out, b.const("bias", bias.reshape(1, o, 1, 1), np.float32)], b.name("biased"))
    b.node("Reshape", [out, b.const("out_shape", [0, o, -1])], y)  # (B, O, (n + r - 1) * S)


def rewrite_strided_convs(model: Any) -> int:
    """Rewrite ``model`` (an ``onnx.ModelProto``) in place: every rewritable 1-D ``Conv`` /
    ``ConvTranspose`` becomes a ``MatMul`` against constant weights (module docstring).
    Returns how many nodes were rewritten (0: the model is unchanged)."""
    graph = model.graph
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if opset < MIN_OPSET:
        return 0
    initializers = {i.name: i for i in graph.initializer}
    producers = {o: n for n in graph.node for o in n.output}
    nodes: list[Any] = []
    added: list[Any] = []
    count = 0
    for node in graph.node:
        if node.op_type not in ("Conv", "ConvTranspose") or node.domain not in ("", "ai.onnx"):
            nodes.append(node)
            continue
        weight = _constant(node.input[1], initializers, producers)
        has_bias = len(node.input) > 2 and bool(node.input[2])
        bias = _constant(node.input[2], initializers, producers) if has_bias else None
        if not _rewritable(node, weight, bias):
            nodes.append(node)
            continue
        assert weight is not None
        stride = int(_attributes(node).get("strides", [1])[0])
        builder = _Builder(f"stemstream_conv_as_matmul{count}")
        build = _conv if node.op_type == "Conv" else _conv_transpose
        build(builder, node.input[0], node.output[0], weight, bias, stride)
        nodes += builder.nodes
        added += builder.initializers
        count += 1
    if count:
        used = {i for n in nodes for i in n.input} | {o.name for o in graph.output}
        nodes = [n for n in nodes if n.op_type != "Constant" or any(o in used for o in n.output)]
        kept = [i for i in graph.initializer if i.name in used]
        del graph.node[:]
        graph.node.extend(nodes)
        del graph.initializer[:]
        graph.initializer.extend(kept + added)
    return count


__all__ = ["MIN_OPSET", "rewrite_strided_convs"]
