"""Strided convolutions rewritten as MatMuls (ONNX Runtime CPU backend) give the graph's results."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from stemstream.realtime.backends.onnx_backend import OnnxRuntimeOptions, open_onnx
from stemstream.realtime.backends.onnx_conv_rewrite import rewrite_strided_convs

TOL = 1e-5
torch.set_num_threads(1)


def _graph(op: str, weight: np.ndarray, stride: int, bias: np.ndarray | None = None, **attrs: object) -> onnx.ModelProto:
    """One ``op`` node, ``x (B, C, L)`` with symbolic B and L, weight (and bias) as initializers."""
    inits = [numpy_helper.from_array(weight, "w")]
    inputs = ["x", "w"]
    if bias is not None:
        inits.append(numpy_helper.from_array(bias, "b"))
        inputs.append("b")
    in_ch = weight.shape[0] if op == "ConvTranspose" else weight.shape[1]
    node = helper.make_node(op, inputs, ["y"], strides=[stride], kernel_shape=[weight.shape[2]], **attrs)
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", in_ch, "length"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def _check(model: onnx.ModelProto, lengths: list[int], in_ch: int, expect_rewrites: int = 1) -> None:
    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(model)
    assert rewrite_strided_convs(rewritten) == expect_rewrites
    if expect_rewrites:
        assert not any(n.op_type in ("Conv", "ConvTranspose") for n in rewritten.graph.node)
    rng = np.random.default_rng(sum(lengths))
    for length in lengths:
        x = rng.standard_normal((3, in_ch, length)).astype(np.float32)
        want, got = _run(model, x), _run(rewritten, x)
        assert got.shape == want.shape, (length, got.shape, want.shape)
        err = np.abs(got - want).max()
        assert err < TOL * max(1.0, np.abs(want).max()), (length, err)


@pytest.mark.parametrize("stride,kernel,in_ch,with_bias", [(16, 128, 1, False), (16, 64, 2, True), (8, 8, 3, False)])
def test_conv_rewrite_matches(stride: int, kernel: int, in_ch: int, with_bias: bool) -> None:
    """Any frame count, lengths that are not whole rows (trimmed), several input channels, bias."""
    rng = np.random.default_rng(kernel)
    w = rng.standard_normal((10, in_ch, kernel)).astype(np.float32)
    b = rng.standard_normal(10).astype(np.float32) if with_bias else None
    lengths = [kernel, kernel + stride, kernel + 5 * stride, kernel + 5 * stride + stride // 2, kernel + 1]
    _check(_graph("Conv", w, stride, b), lengths, in_ch)


@pytest.mark.parametrize("stride,kernel,out_ch,with_bias", [(16, 32, 1, False), (16, 64, 2, True), (8, 8, 1, True)])
def test_conv_transpose_rewrite_matches(stride: int, kernel: int, out_ch: int, with_bias: bool) -> None:
    """Overlap-add of any number of frames, several output channels, bias."""
    rng = np.random.default_rng(kernel + 1)
    w = rng.standard_normal((12, out_ch, kernel)).astype(np.float32)
    b = rng.standard_normal(out_ch).astype(np.float32) if with_bias else None
    _check(_graph("ConvTranspose", w, stride, b), [1, 2, 5, 9], 12)


def test_unsupported_convs_left_alone() -> None:
    """Padding, dilation, groups, a kernel that is not a multiple of the stride, fp16: unchanged."""
    rng = np.random.default_rng(3)
    w = rng.standard_normal((4, 2, 32)).astype(np.float32)
    for model in (
        _graph("Conv", w, 16, pads=[4, 4]),
        _graph("Conv", w, 16, dilations=[2]),
        _graph("Conv", rng.standard_normal((4, 1, 32)).astype(np.float32), 16, group=2),
        _graph("Conv", w, 12),
        _graph("Conv", w.astype(np.float16), 16),
    ):
        before = model.SerializeToString()
        assert rewrite_strided_convs(model) == 0
        assert model.SerializeToString() == before


@pytest.fixture(scope="module")
def tiny_live(tmp_path_factory):
    """A small live-architecture module (seeded) and its ONNX backend, exported once."""
    from stemstream.realtime.models.hybrid import HybridConfig, HybridSeparator

    torch.manual_seed(0)
    cfg = HybridConfig(width=32, encoder_channels=16, analysis_samples=256, synthesis_samples=128, hop=32, encoder_kernel=64)
    module = HybridSeparator(cfg).eval()
    return module, open_onnx(module, "tiny-live", cache_dir=tmp_path_factory.mktemp("onnx"))


def test_live_architecture_rewritten_equals_exported(tiny_live) -> None:
    """A small live-architecture model: the rewritten session (all hops in one call) equals the
    graph as exported (hop by hop), output and state, over calls of 1, 2, 3 and 5 hops."""
    module, fast = tiny_live
    cfg = module.config
    plain = type(fast)(fast.path, OnnxRuntimeOptions(conv_as_matmul=False), name="tiny-live")
    assert fast.rewritten_convs >= 3 and fast.batch_all_hops
    assert plain.rewritten_convs == 0 and not plain.batch_all_hops
    rng = np.random.default_rng(0)
    s_fast, s_plain = fast.init_state(), plain.init_state()
    for hops in (1, 2, 3, 5, 2):
        x = (0.3 * rng.standard_normal((2, hops * cfg.hop))).astype(np.float32)
        y_fast, s_fast = fast.process_hops(x, s_fast)
        y_plain, s_plain = plain.process_hops(x, s_plain)
        assert np.abs(y_fast - y_plain).max() < TOL, hops
        for k in s_plain:
            assert np.abs(s_fast[k] - s_plain[k]).max() < TOL, (hops, k)


def test_streaming_onnx_equals_one_shot_and_torch(tiny_live) -> None:
    """Through the engine, the rewritten ONNX backend streams any block sizes (1, 63, 64, 65,
    4097...) to the one-shot output, and matches the torch backend (< 1e-5)."""
    from stemstream.realtime.backends.torch_backend import open_torch
    from stemstream.realtime.engine.streamer import StreamingSeparator

    module, model = tiny_live
    cfg = module.config
    x = (0.3 * np.random.default_rng(2).standard_normal((2, 9000))).astype(np.float32)

    def stream(m, blocks):
        sep = StreamingSeparator(m, 44100, 2)
        out, pos, i = [], 0, 0
        while pos < x.shape[1]:
            out.append(sep.process(x[:, pos : pos + blocks[i % len(blocks)]]))
            pos, i = pos + blocks[i % len(blocks)], i + 1
        out.append(sep.flush())
        return np.concatenate(out, axis=2)

    one_shot = stream(model, [x.shape[1]])
    assert one_shot.shape == (4, 2, x.shape[1] + cfg.latency_samples)
    np.testing.assert_allclose(stream(model, [1, 63, 64, 65, 4097, 256, 7]), one_shot, rtol=0, atol=1e-5)
    np.testing.assert_allclose(stream(open_torch(module, "tiny-live"), [x.shape[1]]), one_shot, rtol=0, atol=1e-5)
