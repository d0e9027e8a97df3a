"""ONNX export and the ONNX Runtime backend: parity with PyTorch through the streaming engine,
metadata round trip and mismatch errors, no complex ops, caching."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from stemstream.export.onnx_export import ExportError, check_no_complex_ops, export_onnx, op_counts, read_metadata
from stemstream.export.parity import separate, synthetic_music
from stemstream.realtime.backends.onnx_backend import OnnxHopModel, open_onnx, open_onnx_file
from stemstream.realtime.backends.onnx_graph import graph_metadata
from stemstream.realtime.backends.torch_backend import TorchHopModel
from stemstream.realtime.errors import AudioInputError, ConfigError
from test_export_toy import make_toy

torch.set_num_threads(1)
TOL = 1e-4


def torch_reference(module, name):
    """The PyTorch HopModel the engine uses."""
    return TorchHopModel(module, name)


def live_module():
    """The shipped ``live`` model if its weights exist, else a seeded random-init one."""
    from stemstream.realtime.models.registry import available_models, load_torch_model

    if "live" in available_models():
        return load_torch_model("live")
    from stemstream.realtime.models.hybrid import HybridConfig, HybridSeparator

    torch.manual_seed(0)
    return HybridSeparator(HybridConfig()).eval()


def signals(sr: int, ch: int, seconds: float = 1.5):
    rng = np.random.default_rng(7)
    n = int(seconds * sr) + 37  # not a whole number of hops or blocks
    return {
        "random": (0.3 * rng.standard_normal((ch, n))).astype(np.float32),
        "music": synthetic_music(n / sr, sr, ch, seed=3)[:, :n],
    }


@pytest.fixture(scope="module")
def live():
    return live_module()


@pytest.mark.parametrize("dynamic_hops", [True, False], ids=["dynamic-hops", "one-hop"])
@pytest.mark.parametrize("which", ["toy", "live"])
def test_onnxruntime_matches_torch_through_engine(tmp_path, live, which, dynamic_hops) -> None:
    module = make_toy() if which == "toy" else live
    onnx_model = open_onnx(module, which, cache_dir=tmp_path, dynamic_hops=dynamic_hops)
    assert onnx_model.dynamic_hops is dynamic_hops
    reference = torch_reference(module, which)
    for name, audio in signals(module.config.sample_rate, module.config.channels).items():
        ref = separate(reference, audio)
        out = separate(onnx_model, audio)
        assert out.shape == ref.shape == (len(module.config.stems),) + audio.shape
        diff = np.abs(out - ref)
        worst = np.unravel_index(diff.argmax(), diff.shape)
        assert diff.max() <= TOL, f"{which}/{name}: max abs diff {diff.max():.3e} at {worst}"


def test_chunked_calls_equal_one_call(tmp_path) -> None:
    model = open_onnx(make_toy(), "toy", cache_dir=tmp_path)
    audio = synthetic_music(0.2, 44100, 2, seed=1)[:, : 64 * 100]
    whole, _ = model.process_hops(audio, model.init_state())
    state, parts = model.init_state(), []
    for size in (1, 7, 64, 28):  # hops per call
        part, state = model.process_hops(audio[:, : size * 64], state)
        parts.append(part)
        audio = audio[:, size * 64 :]
    np.testing.assert_allclose(np.concatenate(parts, -1), whole, atol=1e-6)


def test_metadata_round_trip(tmp_path, live) -> None:
    path = tmp_path / "live.onnx"
    result = export_onnx(live, path, "live", dynamic_hops=False)
    meta = read_metadata(path)
    assert meta == result.metadata == graph_metadata(live, "live", dynamic_hops=False)
    cfg = live.config
    assert meta["stems"] == list(cfg.stems) and meta["sample_rate"] == cfg.sample_rate
    assert meta["hop_samples"] == cfg.hop_samples and meta["latency_samples"] == cfg.latency_samples
    assert meta["window"] == {"analysis_samples": cfg.analysis_samples, "synthesis_samples": cfg.synthesis_samples}
    assert meta["state"] == {k: list(v.shape) for k, v in live.init_state(1).items()}
    assert meta["architecture"] == "hybrid-mask-tasnet-v1"
    assert meta["config"] == json.loads(cfg.to_json())
    runtime = open_onnx_file(path)
    assert runtime.metadata == meta
    assert runtime.info.latency_samples == cfg.latency_samples and runtime.max_hops_per_call == 1
    assert set(runtime.init_state()) == set(live.init_state(1))


def test_metadata_mismatch_is_an_error_showing_both_values(tmp_path) -> None:
    toy = make_toy()
    path = tmp_path / "toy.onnx"
    export_onnx(toy, path, "toy")
    expected = graph_metadata(toy, "toy") | {"hop_samples": 128}
    with pytest.raises(ConfigError, match=r"hop_samples=64.*expects hop_samples=128"):
        OnnxHopModel(path, expected=expected)
    with pytest.raises(ConfigError, match=r"stems=\['bass'"):
        OnnxHopModel(path, expected={"stems": ["a", "b"]})


def test_graph_without_metadata_is_rejected(tmp_path) -> None:
    import onnx

    path = tmp_path / "toy.onnx"
    export_onnx(make_toy(), path, "toy")
    model = onnx.load(str(path))
    del model.metadata_props[:]
    onnx.save(model, str(path))
    with pytest.raises(ConfigError, match="metadata lacks 'stemstream'"):
        OnnxHopModel(path)


def test_no_complex_or_stft_ops(tmp_path, live) -> None:
    path = tmp_path / "live.onnx"
    result = export_onnx(live, path, "live")
    check_no_complex_ops(path)
    assert "Conv" in result.op_counts and "ConvTranspose" in result.op_counts and "LSTM" in result.op_counts
    assert not {"STFT", "DFT"} & set(op_counts(path))


def test_complex_op_check_catches_dft() -> None:
    from onnx import TensorProto, helper

    node = helper.make_node("DFT", ["x"], ["y"])
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 2])],
    )
    with pytest.raises(ExportError, match="DFT"):
        check_no_complex_ops(helper.make_model(graph))


def test_open_onnx_caches_by_weights(tmp_path) -> None:
    first = open_onnx(make_toy(0), "toy", cache_dir=tmp_path)
    mtime = first.path.stat().st_mtime_ns
    again = open_onnx(make_toy(0), "toy", cache_dir=tmp_path)
    assert again.path == first.path and again.path.stat().st_mtime_ns == mtime
    other = open_onnx(make_toy(1), "toy", cache_dir=tmp_path)
    assert other.path != first.path
    assert sorted(p.name for p in Path(tmp_path).iterdir()) == sorted([first.path.name, other.path.name])


def test_bad_audio_shape_and_threads(tmp_path) -> None:
    model = open_onnx(make_toy(), "toy", cache_dir=tmp_path)
    assert model.session.get_session_options().intra_op_num_threads == 1
    with pytest.raises(AudioInputError, match=r"audio.shape=\(2, 100\)"):
        model.process_hops(np.zeros((2, 100), np.float32), model.init_state())
    with pytest.raises(AudioInputError, match=r"expected \(2, n \* 64\)"):
        model.process_hops(np.zeros((1, 64), np.float32), model.init_state())
    state = model.init_state()
    state["h"] = np.zeros((1, 1, 5), np.float32)
    with pytest.raises(ConfigError, match=r"state\['h'\].shape=\(1, 1, 5\)"):
        model.process_hops(np.zeros((2, 64), np.float32), state)
    with pytest.raises(ConfigError, match="intra_op_threads=0"):
        open_onnx(make_toy(), "toy", cache_dir=tmp_path, intra_op_threads=0)
    with pytest.raises(ConfigError, match="path="):
        open_onnx_file(tmp_path / "missing.onnx")


@pytest.mark.parametrize("host_rate,channels", [(44100, 2), (48000, 2), (44100, 1)])
def test_streaming_separator_odd_blocks_onnx_equals_torch(tmp_path, live, host_rate, channels) -> None:
    from stemstream.realtime.engine.streamer import StreamingSeparator

    onnx_model = open_onnx(live, "live", cache_dir=tmp_path)
    reference = torch_reference(live, "live")
    audio = synthetic_music(0.4, host_rate, 2, seed=5)[:channels]

    def stream(model) -> np.ndarray:
        sep = StreamingSeparator(model, host_rate, channels)
        out, pos = [], 0
        for size in (1, 65, 8193, 64, 4097) * 40:
            if pos >= audio.shape[1]:
                break
            out.append(sep.process(audio[:, pos : pos + size]))
            pos += size
        out.append(sep.flush())
        return np.concatenate(out, axis=-1)

    ref, got = stream(reference), stream(onnx_model)
    assert got.shape == ref.shape and got.shape[-1] >= audio.shape[1]
    diff = np.abs(got - ref)
    assert diff.max() <= TOL, f"max abs diff {diff.max():.3e} at {np.unravel_index(diff.argmax(), diff.shape)}"


def test_fft_training_path_is_not_exported(tmp_path) -> None:
    from stemstream.realtime.models.hybrid import HybridConfig, HybridSeparator

    torch.manual_seed(0)
    module = HybridSeparator(HybridConfig(width=32, encoder_channels=16)).eval()
    module.fast_dsp = True
    result = export_onnx(module, tmp_path / "m.onnx", "m")
    assert module.fast_dsp is True
    assert "Conv" in result.op_counts and not {"DFT", "STFT"} & set(result.op_counts)
