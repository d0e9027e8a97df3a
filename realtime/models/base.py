"""What a PyTorch hop model looks like to the backends (``stemstream.realtime.backends.torch_backend``)
and to the exporters (``export``).

A hop model is an ``nn.Module`` with a frozen config dataclass and explicit state::

    model.config.hop_samples, model.config.latency_samples, model.config.stems,
    model.config.sample_rate, model.config.channels
    state = model.init_state(batch)                  # dict[str, Tensor], fixed names/shapes
    stems, state = model(audio, state)               # audio (batch, channels, n * hop)
                                                     # stems (batch, stems, channels, n * hop)

State tensors have fixed shapes that do not depend on ``n``, so an exported graph can take
them as explicit inputs/outputs. ``forward`` on ``n`` hops at once equals ``n`` calls of one
hop, and output sample ``t`` corresponds to input sample ``t - latency_samples``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

TorchState = dict[str, torch.Tensor]


@runtime_checkable
class HopModelConfig(Protocol):
    """Fields every hop model's frozen config dataclass provides."""

    stems: tuple[str, ...]
    sample_rate: int
    channels: int

    @property
    def hop_samples(self) -> int: ...

    @property
    def latency_samples(self) -> int: ...


@runtime_checkable
class TorchHopModule(Protocol):
    """An ``nn.Module`` following the hop-model convention above."""

    config: HopModelConfig

    def init_state(self, batch: int = 1) -> TorchState: ...

    def __call__(self, audio: torch.Tensor, state: TorchState) -> tuple[torch.Tensor, TorchState]: ...
