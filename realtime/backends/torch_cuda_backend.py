"""PyTorch on a CUDA GPU, one hop per call replayed from a captured CUDA graph.

The hop size is fixed, so the whole forward pass of one hop (with its explicit state) is
captured once into a ``torch.cuda.CUDAGraph`` over static input/state/output buffers; each
call copies the hop and the state in, replays the graph, and copies stems and next state out.
That removes the per-kernel launch overhead that dominates a small model at a 128-sample hop.

Not verified on a GPU yet (none was available to the project); without CUDA it raises a
``MissingDependencyError`` and ``--backend auto`` skips it.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch

from stemstream.realtime.errors import AudioInputError, MissingDependencyError
from stemstream.realtime.backends.torch_backend import module_info
from stemstream.realtime.protocol import State


def cuda_available() -> bool:
    """True when this torch build sees a CUDA device."""
    return bool(torch.cuda.is_available())


class TorchCudaHopModel:
    """A ``HopModel`` replaying a CUDA graph of one hop of a torch hop module.

    Args:
        module: a hop module (``stemstream.realtime.models.base.TorchHopModule``); moved to the GPU.
        name: model name for ``info``.
        warmup_calls: eager calls before capture (lets cuDNN/cuBLAS pick their kernels).
    """

    kind: Literal["hop"] = "hop"

    def __init__(self, module: Any, name: str, warmup_calls: int = 3) -> None:
        if not cuda_available():
            raise MissingDependencyError(
                "backend 'torch-cuda' needs a CUDA GPU and a CUDA build of torch; none is visible here"
            )
        self.info = module_info(module, name, "hop", ("hop_samples", "latency_samples"))
        self.hop_samples: int = int(module.config.hop_samples)
        self.max_hops_per_call: int = 1 << 16
        device = torch.device("cuda")
        self.module = module.to(device).eval()
        template = self.module.init_state(1)
        self._state_names = tuple(template)
        self._audio = torch.zeros(1, self.info.channels, self.hop_samples, device=device)
        self._state = {k: v.detach().to(device).clone() for k, v in template.items()}
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), torch.inference_mode():
            for _ in range(warmup_calls):
                self.module(self._audio, self._state)
        torch.cuda.current_stream().wait_stream(side)
        self._graph = torch.cuda.CUDAGraph()
        with torch.inference_mode(), torch.cuda.graph(self._graph):
            self._stems, self._next_state = self.module(self._audio, self._state)

    def init_state(self) -> State:
        """Fresh state (batch 1) as float32 numpy arrays, names as the module's."""
        with torch.inference_mode():
            return {k: v.detach().cpu().numpy().astype(np.float32) for k, v in self.module.init_state(1).items()}

    def process_hops(self, audio: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """Separate ``audio`` ``(channels, n * hop_samples)`` -> ``(stems, channels, n * hop_samples)``."""
        ch, hop = self.info.channels, self.hop_samples
        if audio.ndim != 2 or audio.shape[0] != ch or audio.shape[1] % hop:
            raise AudioInputError(f"audio.shape={audio.shape!r}: expected ({ch}, n * {hop})")
        pieces = []
        with torch.inference_mode():
            for name in self._state_names:
                self._state[name].copy_(torch.from_numpy(np.asarray(state[name], np.float32)))
            for j in range(audio.shape[1] // hop):
                self._audio.copy_(torch.from_numpy(np.ascontiguousarray(audio[:, j * hop : (j + 1) * hop], np.float32))[None])
                self._graph.replay()
                pieces.append(self._stems[0].cpu().numpy())
                for name in self._state_names:  # the next hop starts from this hop's state
                    self._state[name].copy_(self._next_state[name])
            next_state = {k: v.cpu().numpy() for k, v in self._state.items()}
        stems = pieces[0] if len(pieces) == 1 else np.concatenate(pieces, axis=-1)
        return stems, next_state


def open_torch_cuda(module: Any, model_name: str) -> TorchCudaHopModel:
    """``module`` on the GPU through a captured CUDA graph of one hop."""
    return TorchCudaHopModel(module, model_name)
