"""PyTorch backend: adapts torch modules to the numpy ``stemstream.realtime.protocol`` contract.

* :class:`TorchHopModel` wraps a ``stemstream.realtime.models.base.TorchHopModule`` (``forward(audio
  (B, C, n*H), state) -> (stems (B, S, C, n*H), state)``) as a ``HopModel``. The state
  stays explicit: a ``dict[str, np.ndarray]`` that shares memory with the module's tensors
  (``torch.from_numpy`` / ``Tensor.numpy`` are zero-copy on CPU), so nothing is hidden in
  the adapter and a state can be saved, copied or handed to another backend.
* :class:`TorchSegmentModel` wraps a segment module (convention below) as a ``SegmentModel``.

Segment-module convention (what the diffusion models follow)::

    module.config.segment_samples, module.config.context_samples, module.config.stems,
    module.config.sample_rate, module.config.channels[, module.config.latency_samples]
    stems = module(audio, context)   # audio (B, C, segment_samples)
                                     # context None or (B, S, C, context_samples)
                                     # stems (B, S, C, segment_samples)
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch

from stemstream.realtime.errors import AudioInputError, bad_value
from stemstream.realtime.protocol import ModelInfo, State

#: Largest number of hops one call takes (bounds the size of one forward pass).
DEFAULT_MAX_HOPS = 1 << 12


def _device_of(module: torch.nn.Module) -> torch.device:
    for p in module.parameters():
        return p.device
    return torch.device("cpu")


def module_info(module: Any, name: str | None, kind: str, required: tuple[str, ...]) -> ModelInfo:
    """``ModelInfo`` of a torch hop or segment module, checking its config has ``required``.

    ``kind`` (``hop`` / ``segment``) only words the error; a config without
    ``latency_samples`` reports 0.
    """
    cfg = getattr(module, "config", None)
    for attr in ("stems", "sample_rate", "channels", *required):
        if not hasattr(cfg, attr):
            raise bad_value("module", type(module).__name__, f"a {kind} module whose config has {attr!r}")
    return ModelInfo(
        name or type(module).__name__,
        tuple(cfg.stems),
        int(cfg.sample_rate),
        int(cfg.channels),
        int(getattr(cfg, "latency_samples", 0)),
    )


class TorchHopModel:
    """A ``HopModel`` running a torch hop module in ``torch.inference_mode``.

    Args:
        module: a hop module (``stemstream.realtime.models.base.TorchHopModule``); put in eval mode.
        name: model name for ``info`` (default: the module's class name).
        max_hops_per_call: most hops one :meth:`process_hops` call accepts.

    ``process_hops(audio (channels, n * hop_samples), state)`` returns ``(stems (stems,
    channels, n * hop_samples), state)``; output sample ``t`` is the separation of input
    sample ``t - info.latency_samples``.
    """

    kind: Literal["hop"] = "hop"

    def __init__(self, module: Any, name: str | None = None, max_hops_per_call: int = DEFAULT_MAX_HOPS) -> None:
        self.info = module_info(module, name, "hop", ("hop_samples", "latency_samples"))
        if not isinstance(max_hops_per_call, int) or max_hops_per_call < 1:
            raise bad_value("max_hops_per_call", max_hops_per_call, "an integer >= 1")
        self.module = module.eval()
        self.device = _device_of(module)
        self.hop_samples: int = int(module.config.hop_samples)
        self.max_hops_per_call: int = max_hops_per_call

    def init_state(self) -> State:
        """Fresh state (batch 1) as float32 numpy arrays, names as the module's."""
        with torch.inference_mode():
            return {k: v.detach().cpu().numpy().astype(np.float32, copy=True) for k, v in self.module.init_state(1).items()}

    def process_hops(self, audio: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """Separate ``audio`` ``(channels, n * hop_samples)`` -> ``(stems, channels, n * hop_samples)``."""
        ch, hop = self.info.channels, self.hop_samples
        if audio.ndim != 2 or audio.shape[0] != ch or audio.shape[1] % hop:
            raise AudioInputError(f"audio.shape={audio.shape!r}: expected ({ch}, n * {hop})")
        n = audio.shape[1] // hop
        if n > self.max_hops_per_call:
            raise bad_value("hops", n, f"at most max_hops_per_call={self.max_hops_per_call}")
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None].to(self.device)
            tstate = {k: torch.from_numpy(np.asarray(v, dtype=np.float32)).to(self.device) for k, v in state.items()}
            stems, new = self.module(x, tstate)
            out = stems[0].cpu().numpy()
            return out, {k: v.cpu().numpy() for k, v in new.items()}


class TorchSegmentModel:
    """A ``SegmentModel`` running a torch segment module (convention in the module docstring).

    ``separate_segment(audio (channels, segment_samples), context None | (stems, channels,
    context_samples)) -> (stems, channels, segment_samples)``.
    """

    kind: Literal["segment"] = "segment"

    def __init__(self, module: Any, name: str | None = None) -> None:
        self.info = module_info(module, name, "segment", ("segment_samples", "context_samples"))
        cfg = module.config
        self.module = module.eval()
        self.device = _device_of(module)
        self.segment_samples: int = int(cfg.segment_samples)
        self.context_samples: int = int(cfg.context_samples)

    def separate_segment(self, audio: np.ndarray, context: np.ndarray | None) -> np.ndarray:
        """Separate one segment; see the class docstring for shapes."""
        ch, seg = self.info.channels, self.segment_samples
        if audio.shape != (ch, seg):
            raise AudioInputError(f"audio.shape={audio.shape!r}: expected ({ch}, {seg})")
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None].to(self.device)
            ctx = None
            if context is not None:
                ctx = torch.from_numpy(np.ascontiguousarray(context, dtype=np.float32))[None].to(self.device)
            return self.module(x, ctx)[0].cpu().numpy()


def is_segment_module(module: Any) -> bool:
    """Whether ``module`` follows the segment-module convention (else: hop module)."""
    return hasattr(getattr(module, "config", None), "segment_samples")


def open_torch(module: Any, model_name: str) -> TorchHopModel | TorchSegmentModel:
    """``module`` as a ``StreamModel`` on the PyTorch backend (hop or segment, by its config)."""
    if is_segment_module(module):
        return TorchSegmentModel(module, model_name)
    return TorchHopModel(module, model_name)
