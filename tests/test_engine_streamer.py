"""Streaming separator: chunked == one-shot, exact latency, flush/reset, resampling, NaN, segments."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stemstream.realtime.backends import available_backends, open_backend
from stemstream.realtime.backends.torch_backend import TorchHopModel
from stemstream.realtime.engine.offline import separate_array
from stemstream.realtime.engine.overlap_add import segment_weight
from stemstream.realtime.engine.streamer import StreamingSeparator
from stemstream.realtime.errors import AudioInputError, ConfigError, StemstreamError
from stemstream.realtime.models.hybrid import HybridConfig, HybridSeparator
from tests.engine_support import GAINS, ContextSegmentModel, GainDelayConfig, GainDelayModule

torch.set_num_threads(1)

ODD_BLOCKS = (1, 63, 64, 65, 4097, 2, 127, 129, 1000, 31)


def _tiny_live() -> TorchHopModel:
    torch.manual_seed(0)
    cfg = HybridConfig(width=32, encoder_channels=16, analysis_samples=256, synthesis_samples=128, hop=32, encoder_kernel=64)
    return TorchHopModel(HybridSeparator(cfg), "tiny-live")


def _gain_delay(**kw) -> TorchHopModel:
    return TorchHopModel(GainDelayModule(GainDelayConfig(**kw)), "gain-delay")


def _signal(channels: int, samples: int, seed: int = 0) -> np.ndarray:
    return (0.3 * np.random.default_rng(seed).standard_normal((channels, samples))).astype(np.float32)


def _stream(sep: StreamingSeparator, x: np.ndarray, blocks, flush: bool = True) -> np.ndarray:
    """Feed ``x`` in the given block sizes (cycled); return all output concatenated."""
    out, pos, i = [], 0, 0
    while pos < x.shape[1]:
        n = blocks[i % len(blocks)]
        out.append(sep.process(x[:, pos : pos + n]))
        pos, i = pos + n, i + 1
    if flush:
        out.append(sep.flush())
    return np.concatenate(out, axis=2)


def _assert_close(a: np.ndarray, b: np.ndarray, tol: float = 1e-5) -> None:
    assert a.shape == b.shape, (a.shape, b.shape)
    diff = np.abs(a - b)
    if diff.max() >= tol:
        idx = tuple(int(i) for i in np.argwhere(diff >= tol)[0])
        raise AssertionError(f"first mismatch at {idx}: {a[idx]} vs {b[idx]} (max diff {diff.max()})")


@pytest.mark.parametrize("host_rate", [44100, 48000])
@pytest.mark.parametrize("factory", [_tiny_live, lambda: _gain_delay(pole=0.9, hop=32, latency_samples=45)])
def test_streaming_equals_one_shot(factory, host_rate: int) -> None:
    model = factory()
    x = _signal(2, 12000)
    whole = _stream(StreamingSeparator(model, host_rate, 2), x, [x.shape[1]])
    rng = np.random.default_rng(3)
    for trial in range(2):
        blocks = list(rng.permutation(ODD_BLOCKS)) if trial else list(ODD_BLOCKS)
        chunked = _stream(StreamingSeparator(model, host_rate, 2), x, blocks)
        _assert_close(chunked, whole)
    assert whole.shape[2] == x.shape[1] + StreamingSeparator(model, host_rate, 2).latency_samples


@pytest.mark.parametrize("hop,delay", [(64, 100), (32, 0), (128, 255)])
def test_latency_exact_impulse(hop: int, delay: int) -> None:
    model = _gain_delay(hop=hop, latency_samples=delay)
    sep = StreamingSeparator(model, 44100, 2)
    assert sep.latency_samples == delay
    x = np.zeros((2, 3000), np.float32)
    x[:, 777] = 1.0
    raw = _stream(sep, x, [65, 1, 300])
    for s, g in enumerate(GAINS):
        assert int(np.argmax(np.abs(raw[s, 0]))) == 777 + delay
        assert raw[s, 0, 777 + delay] == pytest.approx(g)
    aligned = separate_array(model, x, 44100, block_size=63)
    assert aligned.shape == (4, 2, 3000)
    _assert_close(aligned, np.asarray(GAINS, np.float32).reshape(-1, 1, 1) * x[None])


def test_resampled_latency_and_impulse() -> None:
    model = _gain_delay(hop=64, latency_samples=100)
    sep = StreamingSeparator(model, 48000, 2)
    # 100 model samples = 108.8 host samples: the output grid shifts so that it is exactly 109.
    assert sep.latency_samples == 109
    x = np.zeros((2, 9600), np.float32)
    for t0 in (1000, 4321):
        x[:, t0] = 1.0
    raw = _stream(sep, x, [63, 64, 65, 1])
    for t0 in (1000, 4321):
        window = raw[0, 0, t0 - 50 : t0 + sep.latency_samples + 51]
        assert int(np.argmax(window)) + t0 - 50 == t0 + sep.latency_samples  # exact, not rounded
    aligned = separate_array(model, x, 48000, block_size=4097)
    assert aligned.shape == (4, 2, 9600)
    for t0 in (1000, 4321):
        assert int(np.argmax(aligned[0, 0, t0 - 50 : t0 + 51])) == 50
    assert sep.max_pending_samples(256) > 0


def test_flush_and_reset_semantics() -> None:
    model = _tiny_live()
    x = _signal(2, 5000, seed=1)
    sep = StreamingSeparator(model, 44100, 2)
    first = _stream(sep, x, [100])
    assert first.shape[2] == 5000 + sep.latency_samples
    assert sep.samples_in == 0 and sep.samples_out == 0  # flush resets
    second = _stream(sep, x, [777])  # a new stream after flush starts fresh
    _assert_close(second, first)
    sep.process(_signal(2, 3333, seed=9))  # garbage, then reset
    sep.reset()
    _assert_close(_stream(sep, x, [4097]), first)
    assert sep.flush().shape == (4, 2, sep.latency_samples)  # an empty stream: latency only
    empty = StreamingSeparator(model, 44100, 2)
    empty.process(np.zeros((2, 0), np.float32))
    assert empty.flush().shape[2] == empty.latency_samples


def test_pending_never_exceeds_plan() -> None:
    cases = [(_tiny_live(), 44100, None), (_gain_delay(hop=64), 48000, None), (ContextSegmentModel(), 44100, 96)]
    for model, rate, overlap in cases:
        sep = StreamingSeparator(model, rate, 2, overlap_samples=overlap)
        for block in (64, 100, 256):
            plan = sep.max_pending_samples(block)
            sep.reset()
            worst = 0
            for _ in range(60):
                sep.process(np.zeros((2, block), np.float32))
                worst = max(worst, sep.pending_samples)
            assert worst <= plan, (type(model).__name__, rate, block, worst, plan)


def test_mono_in_mono_out() -> None:
    model = _gain_delay(hop=64, latency_samples=10)
    x = _signal(1, 3000, seed=2)
    y = separate_array(model, x, 44100, block_size=65)
    assert y.shape == (4, 1, 3000)
    _assert_close(y, np.asarray(GAINS, np.float32).reshape(-1, 1, 1) * x[None])


def test_bad_channels_and_blocks() -> None:
    model = _gain_delay()
    with pytest.raises(ConfigError, match="channels=3"):
        StreamingSeparator(model, 44100, 3)
    sep = StreamingSeparator(model, 44100, 2)
    with pytest.raises(AudioInputError, match=r"block.shape=\(3, 10\)"):
        sep.process(np.zeros((3, 10), np.float32))
    with pytest.raises(ConfigError, match="65537"):
        sep.process(np.zeros((2, 65537), np.float32))
    with pytest.raises(ConfigError, match="block_size=0"):
        separate_array(model, np.zeros((2, 10), np.float32), 44100, block_size=0)


def test_nonfinite_input_replaced_and_counted() -> None:
    model = _tiny_live()
    x = _signal(2, 4000, seed=4)
    bad = x.copy()
    bad[0, 100] = np.nan
    bad[1, 2000:2003] = np.inf
    bad[0, 3999] = -np.inf
    clean = x.copy()
    clean[0, 100] = 0
    clean[1, 2000:2003] = 0
    clean[0, 3999] = 0
    sep = StreamingSeparator(model, 48000, 2)
    y = _stream(sep, bad, [64, 1, 999])
    assert sep.nonfinite_samples == 5
    assert np.isnan(bad[0, 100]) and np.isinf(bad[1, 2000:2003]).all()  # the caller's blocks are untouched
    assert np.isfinite(y).all()
    _assert_close(y, _stream(StreamingSeparator(model, 48000, 2), clean, [4000]))


def _segment_reference(model: ContextSegmentModel, x: np.ndarray, overlap: int) -> np.ndarray:
    """Direct, non-streaming overlap-add with context, over the zero-padded input."""
    seg, ctx = model.segment_samples, model.context_samples
    stride = seg - overlap
    total = x.shape[1] + model.info.latency_samples
    count = -(-total // stride)  # every segment starting before the end covers some output
    padded = np.zeros((2, (count - 1) * stride + seg), np.float32)
    padded[:, : x.shape[1]] = x
    num = np.zeros((4, 2, padded.shape[1]), np.float32)
    den = np.zeros(padded.shape[1], np.float32)
    w = segment_weight(seg)
    previous = None
    for k in range(count):
        a = k * stride
        context = None if previous is None or ctx == 0 else previous[:, :, stride : stride + ctx]
        y = model.separate_segment(padded[:, a : a + seg], context)
        num[:, :, a : a + seg] += w * y
        den[a : a + seg] += w
        previous = y
    return (num / den)[:, :, :total]


@pytest.mark.parametrize("segment,context,overlap", [(256, 48, 96), (256, 0, 0), (200, 64, 199), (128, 32, 64)])
def test_segment_context_streaming_equals_offline(segment: int, context: int, overlap: int) -> None:
    x = _signal(2, 3000, seed=5)
    reference = _segment_reference(ContextSegmentModel(segment, context), x, overlap)
    model = ContextSegmentModel(segment, context)
    sep = StreamingSeparator(model, 44100, 2, overlap_samples=overlap)
    streamed = _stream(sep, x, list(ODD_BLOCKS))
    _assert_close(streamed, reference)
    assert model.contexts_seen[0] is False and all(model.contexts_seen[1:]) == (context > 0)
    # the context really matters: without it the result differs
    if context:
        plain = _segment_reference(ContextSegmentModel(segment, 0), x, overlap)
        assert np.abs(plain - reference).max() > 1e-3


@pytest.mark.parametrize("segment,overlap", [(64, 0), (64, 1), (64, 32), (64, 63), (100, 37)])
def test_segment_weights_sum_to_one(segment: int, overlap: int) -> None:
    class Ones(ContextSegmentModel):
        def separate_segment(self, audio, context):
            return np.ones((4, 2, self.segment_samples), np.float32)

    y = separate_array(Ones(segment, 0), np.zeros((2, 1000), np.float32), 44100, block_size=77) if overlap == 0 else \
        _stream(StreamingSeparator(Ones(segment, 0), 44100, 2, overlap_samples=overlap), np.zeros((2, 1000), np.float32), [77])
    _assert_close(y, np.ones_like(y), tol=1e-6)


def test_segment_overlap_must_cover_context() -> None:
    with pytest.raises(ConfigError, match="overlap_samples=10"):
        StreamingSeparator(ContextSegmentModel(256, 48), 44100, 2, overlap_samples=10)


def test_backend_dispatch() -> None:
    module = GainDelayModule(GainDelayConfig())
    assert "torch" in available_backends()
    assert open_backend("torch", module, "gd").info.name == "gd"
    assert open_backend("auto", module, "gd").kind == "hop"
    with pytest.raises(StemstreamError, match="backend='cuda-magic'"):
        open_backend("cuda-magic", module, "gd")
    for gpu in ("tensorrt", "onnx-cuda"):
        if gpu not in available_backends():  # a CPU box: a clear error naming the extra
            with pytest.raises(StemstreamError, match=r"stemstream\[gpu\]"):
                open_backend(gpu, module, "gd")


def test_shipped_models_stream_equal_one_call() -> None:
    """Every shipped model (skipped until weights exist): odd blocks == one call, sum == mix."""
    from stemstream.realtime.models.registry import available_models, load_model

    names = available_models()
    if not names:
        pytest.skip("no shipped weights in realtime/weights/ yet")
    x = _signal(2, 44100 // 2, seed=7)
    for name in names:
        model = load_model(name, "torch")
        whole = _stream(StreamingSeparator(model, 44100, 2), x, [x.shape[1]])
        chunked = _stream(StreamingSeparator(model, 44100, 2), x, list(ODD_BLOCKS))
        _assert_close(chunked, whole)
        assert np.isfinite(whole).all(), name
