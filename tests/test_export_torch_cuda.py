"""PyTorch CUDA-graph backend: parity with eager PyTorch where a GPU exists; a clean error and
an ``auto`` fallback where not."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stemstream.realtime.backends import open_backend
from stemstream.realtime.backends.torch_backend import TorchHopModel
from stemstream.realtime.backends.torch_cuda_backend import cuda_available
from stemstream.realtime.errors import MissingDependencyError
from test_export_toy import make_toy

torch.set_num_threads(1)


@pytest.mark.skipif(cuda_available(), reason="a CUDA GPU is present: the error path does not apply")
def test_torch_cuda_without_gpu_is_a_clear_error_and_auto_skips_it() -> None:
    module = make_toy()
    with pytest.raises(MissingDependencyError, match="CUDA"):
        open_backend("torch-cuda", module, "toy")
    assert type(open_backend("auto", make_toy(), "toy")).__name__ != "TorchCudaHopModel"


@pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible to torch")
def test_torch_cuda_graph_matches_eager_and_carries_state() -> None:
    reference = TorchHopModel(make_toy(), "toy")
    graph = open_backend("torch-cuda", make_toy(), "toy")
    hop = graph.hop_samples
    audio = np.random.default_rng(0).standard_normal((graph.info.channels, 8 * hop)).astype(np.float32) * 0.1
    expected, _ = reference.process_hops(audio, reference.init_state())
    state, pieces = graph.init_state(), []
    for start, stop in ((0, 3), (3, 8)):  # odd call sizes: 3 hops, then 5
        out, state = graph.process_hops(audio[:, start * hop : stop * hop], state)
        pieces.append(out)
    np.testing.assert_allclose(np.concatenate(pieces, axis=-1), expected, atol=1e-4)
