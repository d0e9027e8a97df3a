"""Shared pieces of the bridge tests: a tiny numpy hop model, a synchronous stand-in
session (inference inside the callback: no worker thread, so no deadline misses), an identity
separator and sine helpers for the effects tests, the test signal (``music_like``, from
``stemstream.benchmarks.rig.jack_player``) and a JACK client that records named input ports (``JackRecorder``).

The tiny ``live`` weight files are fixtures in ``tests/conftest.py``."""

from __future__ import annotations

from typing import Any

import numpy as np

from stemstream.benchmarks.rig.jack_player import music_like
from stemstream.realtime.protocol import ModelInfo, State
from stemstream.realtime.stems import STEMS

__all__ = [
    "IdentityStems", "pump_sessions", "JackRecorder", "TinyHopModel", "engine_session", "level_db", "music_like", "sines",
    "stand_in_factory", "stream_blocks", "wait_for_osc",
]


class IdentityStems:
    """A separator whose four stems are copies of the input (effects see real audio)."""

    latency_samples = 32

    def process(self, block):
        return np.repeat(np.asarray(block, np.float32)[None], 4, axis=0)

    def flush(self):
        return np.zeros((4, 2, 0), np.float32)

    def reset(self):
        pass


def stream_blocks(sep: Any, audio: np.ndarray, block: int) -> np.ndarray:
    """Feed ``audio`` (channels, n) to ``sep`` in blocks of ``block``, then flush: the whole output."""
    pieces = [sep.process(audio[:, i : i + block]) for i in range(0, audio.shape[1], block)]
    return np.concatenate(pieces + [sep.flush()], axis=-1)


def wait_for_osc(server: Any, count: int, timeout_s: float = 2.0) -> None:
    """Wait until ``server`` has accepted or rejected ``count`` messages (or ``timeout_s`` passed)."""
    import time

    end = time.monotonic() + timeout_s
    while server.counters.accepted + server.counters.rejected < count and time.monotonic() < end:
        time.sleep(0.01)


def sines(freqs: list[float], seconds: float, sample_rate: int = 44100) -> np.ndarray:
    """A stereo sum of sines at 0.3 amplitude each, ``(2, n)`` float32."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    x = sum(0.3 * np.sin(2 * np.pi * f * t) for f in freqs)
    return np.stack([x, x]).astype(np.float32)


def level_db(x: np.ndarray, f: float, sample_rate: int = 44100) -> float:
    """Level of the sinusoid at ``f`` Hz in ``x`` (channels, n), dB (second half: steady state)."""
    y = x[0, x.shape[-1] // 2 :]
    t = np.arange(y.size) / sample_rate
    return float(20 * np.log10(2 * np.abs(np.mean(y * np.exp(-2j * np.pi * f * t))) + 1e-12))


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


def engine_session(model: TinyHopModel, block_size: int, sample_rate: int = 44100, started: bool = True):
    """An engine ``RealtimeSession`` of ``model`` (one block of worker queue): what every live host
    runs, through the one live path (``stemstream.bridge.live.table``). ``started=False``: no worker
    thread; the test runs the worker's job with ``pump()`` after each block (deterministic)."""
    from stemstream.realtime.engine.session import RealtimeSession
    from stemstream.realtime.engine.streamer import StreamingSeparator

    session = RealtimeSession(StreamingSeparator(model, sample_rate, 2), block_size, queue_blocks=1)
    if started:
        session.start()
    return session


def stand_in_factory(block_size: int, started: bool = True, **kwargs: Any):
    """A session factory for ``LiveProcessor``: ``tiny`` models (``tiny-loud``: twice as loud)."""
    def make(name: str):
        scale = 2.0 if name == "tiny-loud" else 1.0
        return engine_session(TinyHopModel(name=name, scale=scale, **kwargs), block_size, started=started)

    return make


class JackRecorder:
    """A JACK client ``recorder`` with one input port per name in ``ports``; records them into
    ``audio (len(ports), total)`` aligned to the player's first sample (``player.start_frame``).

    Attributes:
        client: the ``jack.Client`` (the test activates, deactivates and closes it).
        audio: what was recorded, ``(ports, total)`` float32.
        filled: samples of ``audio`` written so far.
    """

    def __init__(self, jack: Any, server: str, player: Any, ports: list[str], total: int) -> None:
        self.client = jack.Client("recorder", servername=server, no_start_server=True)
        self.ports = [self.client.inports.register(name) for name in ports]
        self.player = player
        self.audio = np.zeros((len(ports), total), np.float32)
        self.filled = 0
        self.client.set_process_callback(self._process)

    def _process(self, frames: int) -> None:
        start = self.player.start_frame
        if start is None:
            return
        at = self.client.last_frame_time - start
        if 0 <= at < self.audio.shape[1]:
            n = min(frames, self.audio.shape[1] - at)
            for k, port in enumerate(self.ports):
                self.audio[k, at : at + n] = port.get_array()[:n]
            self.filled = at + n


def pump_sessions(processor: Any) -> None:
    """Run the worker's job of every session of ``processor`` (built with ``started=False``)."""
    for session in (processor.switcher.active, processor.switcher.incoming):
        if session is not None:
            session.pump()
