"""Small known models for the engine tests: exact gains and delays, explicit state."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from stemstream.realtime.protocol import ModelInfo, State
from stemstream.realtime.stems import STEMS

GAINS = (1.0, -0.5, 0.25, 0.125)


@dataclass(frozen=True)
class GainDelayConfig:
    """Config of :class:`GainDelayModule`: stem ``s`` = ``gains[s]`` * input delayed by
    ``latency_samples``, plus a one-pole low-pass of the input (``pole``) on the last stem
    so the output depends on long history."""

    hop: int = 64
    latency_samples: int = 100
    stems: tuple[str, ...] = STEMS
    sample_rate: int = 44100
    channels: int = 2
    pole: float = 0.0

    @property
    def hop_samples(self) -> int:
        return self.hop


class GainDelayModule(nn.Module):
    """A torch hop module (``stemstream.realtime.models.base``) with an exact, known response."""

    def __init__(self, config: GainDelayConfig) -> None:
        super().__init__()
        self.config = config
        self.gains = nn.Parameter(torch.tensor(GAINS[: len(config.stems)]), requires_grad=False)

    def init_state(self, batch: int = 1) -> dict[str, torch.Tensor]:
        c = self.config
        return {"line": torch.zeros(batch, c.channels, c.latency_samples), "lp": torch.zeros(batch, c.channels, 1)}

    def forward(self, audio: torch.Tensor, state: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        c = self.config
        length = audio.shape[-1]
        full = torch.cat([state["line"], audio], dim=-1)
        delayed = full[..., :length]
        stems = self.gains.view(1, -1, 1, 1) * delayed.unsqueeze(1)
        new = {"line": full[..., length:].clone(), "lp": state["lp"]}
        if c.pole:
            lp = state["lp"][..., 0].clone()
            outs = []
            for t in range(length):
                lp = c.pole * lp + (1 - c.pole) * delayed[..., t]
                outs.append(lp)
            stems = stems.clone()
            stems[:, -1] = torch.stack(outs, dim=-1)
            new["lp"] = lp.unsqueeze(-1)
        return stems, new


class SlowHopModel:
    """A numpy ``HopModel`` (gain per stem, delay ``latency``) that sleeps ``sleep_s`` on the
    calls whose index is in ``slow_calls`` (all calls when ``slow_calls`` is None)."""

    kind = "hop"

    def __init__(self, hop: int = 64, latency: int = 32, sleep_s: float = 0.0, slow_calls: set[int] | None = None,
                 sample_rate: int = 44100) -> None:
        self.info = ModelInfo("slow", STEMS, sample_rate, 2, latency)
        self.hop_samples = hop
        self.max_hops_per_call = 1 << 16
        self.sleep_s = sleep_s
        self.slow_calls = slow_calls
        self.calls = 0  # calls finished
        self.started = 0  # calls begun
        self.gains = np.asarray(GAINS, np.float32).reshape(-1, 1, 1)

    def init_state(self) -> State:
        return {"line": np.zeros((2, self.info.latency_samples), np.float32)}

    def process_hops(self, audio: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        self.started += 1
        if self.sleep_s and (self.slow_calls is None or self.calls in self.slow_calls):
            time.sleep(self.sleep_s)
        self.calls += 1
        full = np.concatenate([state["line"], audio], axis=1)
        n = audio.shape[1]
        return self.gains * full[None, :, :n], {"line": full[:, n:].copy()}


class ContextSegmentModel:
    """A numpy ``SegmentModel`` whose output depends on the autoregressive context:
    stem ``s`` = ``gains[s]`` * audio, plus ``0.5 * context`` over the first ``context_samples``."""

    kind = "segment"

    def __init__(self, segment: int = 256, context: int = 48, latency: int = 0) -> None:
        self.info = ModelInfo("ctx", STEMS, 44100, 2, latency)
        self.segment_samples = segment
        self.context_samples = context
        self.gains = np.asarray(GAINS, np.float32).reshape(-1, 1, 1)
        self.contexts_seen: list[bool] = []

    def separate_segment(self, audio: np.ndarray, context: np.ndarray | None) -> np.ndarray:
        assert audio.shape == (2, self.segment_samples)
        out = self.gains * audio[None]
        self.contexts_seen.append(context is not None)
        if context is not None:
            assert context.shape == (len(STEMS), 2, self.context_samples)
            out[:, :, : self.context_samples] += 0.5 * context
        return out.astype(np.float32)
