"""Shared pieces of the bridge tests: a tiny numpy hop model, a synchronous stand-in
session (used only where the engine's RealtimeSession is not available) and the test signal
(``music_like``, from ``bridge.jack_player``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from bridge.jack_player import music_like
from realtime.protocol import ModelInfo, State
from realtime.stems import STEMS

__all__ = ["StandInSession", "TinyHopModel", "music_like", "stand_in_factory"]


class TinyHopModel:
    """A cheap deterministic ``HopModel``: stem ``k`` is the input delayed by ``latency``
    samples, FIR-filtered (16 taps, kernel ``k``) and scaled; the FIR tail is the state."""

    kind = "hop"
    taps = 16

    def __init__(self, name: str = "tiny", hop: int = 64, latency: int = 64, sample_rate: int = 44100,
                 scale: float = 1.0) -> None:
        self.info = ModelInfo(name, STEMS, sample_rate, 2, latency)
        self.hop_samples = hop
        self.max_hops_per_call = 64
        self.latency = latency
        rng = np.random.default_rng(7)
        kernels = rng.uniform(0.0, 1.0, size=(4, self.taps))
        kernels /= kernels.sum(axis=1, keepdims=True)  # DC gain 1 per kernel
        self.kernels = (kernels * (np.array([0.4, 0.3, 0.2, 0.1]) * scale)[:, None]).astype(np.float32)

    def init_state(self) -> State:
        return {"history": np.zeros((2, self.latency + self.taps - 1), np.float32)}

    def process_hops(self, audio: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        assert audio.ndim == 2 and audio.shape[1] % self.hop_samples == 0
        n = audio.shape[1]
        joined = np.concatenate([state["history"], audio.astype(np.float32)], axis=1)
        # output t uses input t - latency - j for taps j = 0..taps-1
        span = joined[:, : n + self.taps - 1]
        out = np.empty((4, 2, n), np.float32)
        for k in range(4):
            for c in range(2):
                out[k, c] = np.convolve(span[c], self.kernels[k], mode="valid")
        return out, {"history": joined[:, n:].copy()}


class StandInSession:
    """Synchronous stand-in for ``RealtimeSession`` (inference inside the callback)."""

    def __init__(self, model: TinyHopModel, block_size: int) -> None:
        assert block_size % model.hop_samples == 0
        self.model = model
        self.state = model.init_state()
        self.latency_samples = model.latency
        self.deadline_misses = 0
        self.nonfinite_samples = 0
        self.closed = False

    def callback(self, indata: np.ndarray, out_stems: np.ndarray) -> None:
        out, self.state = self.model.process_hops(np.ascontiguousarray(indata.T), self.state)
        out_stems[:] = out

    def close(self) -> None:
        self.closed = True


def stand_in_factory(block_size: int, **kwargs: Any):
    def make(name: str) -> StandInSession:
        scale = 2.0 if name == "tiny-loud" else 1.0
        return StandInSession(TinyHopModel(name=name, scale=scale, **kwargs), block_size)

    return make
