"""GPU backends (ONNX Runtime CUDA / TensorRT EP, native TensorRT): parity where a GPU and the
packages exist, clean skips where not; without them, errors name the ``gpu`` extra and
``auto`` falls back."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stemstream.export.parity import separate, synthetic_music
from stemstream.realtime import backends
from stemstream.realtime.backends.onnx_backend import OnnxHopModel, available_providers, open_onnx
from stemstream.realtime.backends.tensorrt_backend import open_tensorrt, tensorrt_available
from stemstream.realtime.errors import MissingDependencyError
from test_export_onnx import torch_reference
from test_export_toy import make_toy

torch.set_num_threads(1)

needs_cuda_ep = pytest.mark.skipif(
    "cuda" not in available_providers(), reason="onnxruntime has no CUDAExecutionProvider (no onnxruntime-gpu / GPU)"
)
needs_trt_ep = pytest.mark.skipif(
    "tensorrt" not in available_providers(), reason="onnxruntime has no TensorrtExecutionProvider"
)
needs_tensorrt = pytest.mark.skipif(not tensorrt_available(), reason="no tensorrt package or no CUDA GPU")


def _max_diff(model, module) -> float:
    audio = synthetic_music(1.0, module.config.sample_rate, module.config.channels, seed=2)
    return float(np.abs(separate(model, audio) - separate(torch_reference(module, "toy"), audio)).max())


@needs_cuda_ep
def test_onnx_cuda_matches_torch(tmp_path) -> None:
    module = make_toy()
    model = open_onnx(module, "toy", ("cuda",), cache_dir=tmp_path)
    assert model.providers[0] == "CUDAExecutionProvider"
    assert _max_diff(model, module) <= 1e-3  # cuDNN LSTM / TF32 differ slightly from CPU


@needs_trt_ep
def test_onnx_tensorrt_ep_matches_torch(tmp_path) -> None:
    module = make_toy()
    model = open_onnx(module, "toy", ("tensorrt",), cache_dir=tmp_path, engine_cache_dir=str(tmp_path / "trt"))
    assert model.providers[:2] == ["TensorrtExecutionProvider", "CUDAExecutionProvider"]
    assert not model.dynamic_hops
    assert _max_diff(model, module) <= 1e-3


@needs_tensorrt
def test_native_tensorrt_matches_torch_and_caches(tmp_path) -> None:
    module = make_toy()
    model = open_tensorrt(module, "toy", cache_dir=tmp_path)
    assert _max_diff(model, module) <= 1e-3
    again = open_tensorrt(module, "toy", cache_dir=tmp_path)
    assert again.path == model.path


@pytest.mark.skipif("cuda" in available_providers(), reason="CUDA provider present: nothing missing")
def test_missing_cuda_provider_names_gpu_extra(tmp_path) -> None:
    with pytest.raises(MissingDependencyError, match=r"stemstream\[gpu\]"):
        open_onnx(make_toy(), "toy", ("cuda",), cache_dir=tmp_path)
    assert not list(tmp_path.iterdir()), "nothing is exported before the provider check"


@pytest.mark.skipif(tensorrt_available(), reason="tensorrt and a GPU present: nothing missing")
def test_missing_tensorrt_names_gpu_extra(tmp_path) -> None:
    with pytest.raises(MissingDependencyError, match=r"stemstream\[gpu\]"):
        open_tensorrt(make_toy(), "toy", cache_dir=tmp_path)


def test_open_backend_dispatch_and_auto_fallback(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("STEMSTREAM_CACHE", str(tmp_path))
    module = make_toy()
    onnx_model = backends.open_backend("onnx", module, "toy")
    assert isinstance(onnx_model, OnnxHopModel) and onnx_model.providers == ["CPUExecutionProvider"]
    if "cuda" not in available_providers():
        with pytest.raises(MissingDependencyError, match=r"gpu"):
            backends.open_backend("onnx-cuda", module, "toy")
    if not tensorrt_available():
        with pytest.raises(MissingDependencyError, match=r"gpu"):
            backends.open_backend("tensorrt", module, "toy")
        auto = backends.open_backend("auto", module, "toy")
        expected = "CUDAExecutionProvider" if "cuda" in available_providers() else "CPUExecutionProvider"
        assert isinstance(auto, OnnxHopModel) and auto.providers[0] == expected
