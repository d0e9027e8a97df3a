"""The live path shared by every audio host (PortAudio via sounddevice, JACK).

:class:`LiveProcessor` = model session (with model switching) + dry delay line + mixer.
Its :meth:`LiveProcessor.process` is what an audio callback calls: the engine's
``RealtimeSession.callback`` (copy-only; inference runs on the session's worker), the
latency-aligned dry mix, and the mixer, all into preallocated buffers.

Routing (:data:`ROUTINGS`): ``stems`` puts each stem on its own output channels (stem ``k``,
channel ``c`` -> output ``k * channels + c``), ``mix`` gives one mixed output (channels
``0..channels-1``), ``both`` gives the mix first, then the stems.

Latency: :attr:`LiveProcessor.latency_samples` is the engine session's (model + worker queue
+ effects), at the host rate; JACK / PortAudio add their own buffers. The dry path used for
bypass is delayed by the latency of the model active at start; after switching to a model
with a different latency, bypass is off by the difference (the shipped live models share one
latency).
"""

from __future__ import annotations

import gc
import math
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from stemstream.bridge.live.controls import StemControls
from stemstream.bridge.live.delay_line import DelayLine
from stemstream.bridge.effects.rack import EffectsRack, EffectsSeparator
from stemstream.bridge.live.kernels import CALLBACKS, CPU_LOAD, CPU_LOAD_MAX, FRAMES, count_callback
from stemstream.bridge.live.mixer import MixerConfig, StemMixer
from stemstream.bridge.live.switcher import SessionFactory, SessionSwitcher
from stemstream.bridge.live.table import LiveTable, live_piece
from stemstream.realtime.errors import ConfigError, bad_value

#: Output routing modes.
ROUTINGS: tuple[str, ...] = ("stems", "mix", "both")

#: Worker slack the automatic queue gives, ms. On the 2-core dev VM, 10-minute soaks at 256
#: samples had 13-74 deadline misses with one block (5.8 ms) and 0-7 with two; the misses that
#: remain come with stalls of the virtual machine itself (``stemstream bench stalls``).
AUTO_QUEUE_MS: float = 10.0

#: GIL switch interval used while live audio runs, seconds (Python's default is 0.005).
LIVE_SWITCH_INTERVAL_S: float = 0.0005


class EffectsOff(ConfigError):
    """Effects were asked of a session started without an effects rack (``--effects``)."""


def tune_interpreter() -> None:
    """Shorten the GIL switch interval for live audio.

    The audio callback is Python, so it needs the GIL; a worker thread running Python code
    keeps it for up to the switch interval (5 ms by default, most of a 5.8 ms block). At
    0.5 ms the callback waits at most that long. Process-wide and harmless for throughput
    here (inference releases the GIL inside torch / ONNX Runtime). Also freezes the
    garbage collector's view of the objects alive at start (below).
    """
    if sys.getswitchinterval() > LIVE_SWITCH_INTERVAL_S:
        sys.setswitchinterval(LIVE_SWITCH_INTERVAL_S)
    # Everything alive now (modules, torch, the model) moves to the permanent generation, so
    # a cyclic-GC pass started by any thread's allocation walks only what came later and
    # cannot hold the GIL for tens of milliseconds.
    gc.collect()
    gc.freeze()


def restore_interpreter() -> None:
    """Undo :func:`tune_interpreter` at the end of a live session: the default switch interval,
    and the frozen objects back under the garbage collector. Objects left frozen are never
    collected, so extension objects in reference cycles outlive the interpreter's teardown (soxr's
    resamplers then made nanobind print a 19-line leak report at exit)."""
    if sys.getswitchinterval() == LIVE_SWITCH_INTERVAL_S:
        sys.setswitchinterval(0.005)
    gc.unfreeze()


@dataclass(frozen=True)
class LiveConfig:
    """Settings of one live session.

    Attributes:
        model: registry name of the first model.
        backend: engine backend (``torch``, ``onnx``, ``auto``...).
        sample_rate: host sample rate, Hz.
        block_size: host block (callback) size, samples.
        channels: input channels (2: stereo).
        routing: one of :data:`ROUTINGS`.
        ramp_ms: gain smoothing time constant, ms.
        fade_ms: model-switch crossfade, ms.
        queue_blocks: blocks the engine's worker has before a deadline miss (latency grows
            by ``queue_blocks * block_size``); None: enough blocks for :data:`AUTO_QUEUE_MS`
            (:attr:`worker_queue_blocks`: 2 at 256 samples and 44.1 or 48 kHz).
        realtime_worker: run the engine's inference worker with ``SCHED_FIFO`` at priority 1, below
            audio threads such as JACK's (``RealtimeSession(worker_priority=...)``; refused quietly
            without the permission, and dropped by the session after an overrun).
        stems: the stems to output, as groups of the model's (``stemstream.realtime.models.grouped``:
            e.g. ``("vocals", "instrumental")``); None: the model's own stems.
    """

    model: str = "live"
    backend: str = "torch"
    sample_rate: int = 44100
    block_size: int = 256
    channels: int = 2
    routing: str = "both"
    ramp_ms: float = 10.0
    fade_ms: float = 50.0
    queue_blocks: int | None = None
    realtime_worker: bool = True
    stems: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.sample_rate, int) or not 8000 <= self.sample_rate <= 192000:
            raise bad_value("samplerate", self.sample_rate, "an int in [8000, 192000] Hz")
        if not isinstance(self.block_size, int) or not 16 <= self.block_size <= 8192:
            raise bad_value("block_size", self.block_size, "an int in [16, 8192] samples")
        if not isinstance(self.channels, int) or not 1 <= self.channels <= 8:
            raise bad_value("channels", self.channels, "an int in [1, 8]")
        if self.queue_blocks is not None and (not isinstance(self.queue_blocks, int)
                                              or not 1 <= self.queue_blocks <= 64):
            raise bad_value("queue_blocks", self.queue_blocks, "None (automatic) or an int in [1, 64]")
        if self.routing not in ROUTINGS:
            raise bad_value("routing", self.routing, f"one of {list(ROUTINGS)}")

    @property
    def worker_queue_blocks(self) -> int:
        """``queue_blocks``, or the fewest blocks that give the worker :data:`AUTO_QUEUE_MS`."""
        if self.queue_blocks is not None:
            return self.queue_blocks
        return auto_queue_blocks(self.block_size, self.sample_rate)


def auto_queue_blocks(block_size: int, sample_rate: int) -> int:
    """The fewest blocks of ``block_size`` samples that give the worker :data:`AUTO_QUEUE_MS` (>= 1)."""
    return max(1, math.ceil(AUTO_QUEUE_MS * sample_rate / 1000.0 / block_size - 1e-9))


def output_channels(routing: str, stems: int, channels: int) -> int:
    """Output channel count for a routing mode."""
    return {"stems": stems * channels, "mix": channels, "both": (stems + 1) * channels}[routing]


def engine_factory(
    config: LiveConfig, rack: EffectsRack | None = None, **session_kwargs: Any
) -> SessionFactory:
    """A factory building started ``stemstream.realtime.engine.session.RealtimeSession`` objects for a
    model name, with the effects rack (if any) on the session's worker after inference."""

    def make(name: str) -> Any:
        from stemstream.realtime.engine.session import RealtimeSession
        from stemstream.realtime.engine.streamer import StreamingSeparator
        from stemstream.realtime.models.grouped import grouped
        from stemstream.realtime.models.registry import load_model, rate_variant

        # at a 48/96 kHz host, dj-live runs as its 48 kHz sibling when shipped (a switch to it too)
        model = grouped(load_model(rate_variant(name, config.sample_rate), config.backend), config.stems)
        separator: Any = StreamingSeparator(model, config.sample_rate, config.channels)
        if rack is not None and rack.active:
            separator = EffectsSeparator(separator, rack, config.channels)
        kwargs = {"queue_blocks": config.worker_queue_blocks, "worker_priority": 1 if config.realtime_worker else None,
                  **session_kwargs}
        session = RealtimeSession(separator, config.block_size, **kwargs)
        start = getattr(session, "start", None)
        if callable(start):
            start()
        return session

    return make


class LiveProcessor:
    """Sessions + mixer behind one audio-callback entry point; also the OSC control target.

    Args:
        config: live settings.
        factory: builds a started session for a model name (see :func:`engine_factory`).
        stems: stem names the models produce.
        rack: effects rack (its chains run on the sessions' workers), or ``None``.
        validate_model: raises for an unknown model name (control thread), or ``None``.
    """

    def __init__(
        self,
        config: LiveConfig,
        factory: SessionFactory,
        stems: tuple[str, ...],
        rack: EffectsRack | None = None,
        validate_model: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self.rack = rack
        s, c, m = len(stems), config.channels, config.block_size
        self._stems = tuple(stems)
        self.switcher = SessionSwitcher(
            factory, config.model, config.sample_rate, fade_ms=config.fade_ms, validate=validate_model
        )
        self.controls = StemControls(self._stems)
        self.mixer = StemMixer(
            MixerConfig(self._stems, c, config.sample_rate, block_size=m, ramp_ms=config.ramp_ms), self.controls
        )
        self.dry = DelayLine(c, self.switcher.latency_samples)
        self._stem_out = np.zeros((s, c, m), dtype=np.float32)
        self._mix_out = np.zeros((c, m), dtype=np.float32)
        #: callbacks, frames, smoothed CPU load, its maximum (written by whichever audio path runs)
        self.counters = np.zeros(4, dtype=np.float64)
        #: status flags and xruns counted by a native host callback (``stemstream.bridge.live.table``)
        self.host_counters = np.zeros(2, dtype=np.int64)
        self.xruns = 0
        self.status_flags = 0
        self.osc_counters: Any = None
        self._latency_listeners: list[Callable[[], None]] = []
        self.last_listener_error = ""
        #: the arrays of the live path, for :func:`stemstream.bridge.live.table.live_piece`
        self.live = LiveTable(self)

    # ---- audio side -------------------------------------------------------------------
    def process(
        self, indata: np.ndarray, stem_out: np.ndarray | None = None, mix_out: np.ndarray | None = None
    ) -> None:
        """One callback: ``indata`` ``(frames, channels)`` -> ``stem_out`` ``(stems, channels,
        frames)`` and/or ``mix_out`` ``(channels, frames)``. Blocks longer than
        ``block_size`` are processed in pieces."""
        t0 = time.perf_counter()
        self._pieces(indata, stem_out, mix_out)
        self._count(indata.shape[0], t0)

    def _count(self, frames: int, t0: float) -> None:
        load = (time.perf_counter() - t0) * self.config.sample_rate / max(1, frames)
        count_callback(self.counters, frames, load)

    def _pieces(self, indata: np.ndarray, stem_out: np.ndarray | None, mix_out: np.ndarray | None) -> None:
        frames = indata.shape[0]
        m = self.config.block_size
        for start in range(0, frames, m):
            stop = min(frames, start + m)
            self._process_piece(
                indata[start:stop],
                None if stem_out is None else stem_out[..., start:stop],
                None if mix_out is None else mix_out[..., start:stop],
            )

    def _process_piece(self, indata: np.ndarray, stem_out: np.ndarray | None, mix_out: np.ndarray | None) -> None:
        """One piece through the live path every host runs (``stemstream.bridge.live.table.live_piece``)."""
        n = indata.shape[0]
        live = self.live
        live.scratch_in[:n] = indata
        live.scratch_t[:, :n] = indata.T
        live_piece(live.table, n)
        if stem_out is not None:
            stem_out[...] = live.stem_out[:, :, :n]
        if mix_out is not None:
            mix_out[...] = live.mix_out[:, :n]

    def process_interleaved(self, indata: np.ndarray, outdata: np.ndarray) -> None:
        """For PortAudio: ``indata`` ``(frames, channels)``, ``outdata`` ``(frames,
        output_channels(routing))`` laid out as described in the module docstring."""
        t0 = time.perf_counter()
        n = indata.shape[0]
        c = self.config.channels
        routing = self.config.routing
        m = self.config.block_size
        for start in range(0, n, m):
            stop = min(n, start + m)
            k = stop - start
            stem_out = self._stem_out[:, :, :k] if routing != "mix" else None
            mix_out = self._mix_out[:, :k] if routing != "stems" else None
            self._pieces(indata[start:stop], stem_out, mix_out)
            col = 0
            if mix_out is not None:
                for ch in range(c):
                    outdata[start:stop, col] = mix_out[ch]
                    col += 1
            if stem_out is not None:
                for s in range(stem_out.shape[0]):
                    for ch in range(c):
                        outdata[start:stop, col] = stem_out[s, ch]
                        col += 1
        self._count(n, t0)

    @property
    def callbacks(self) -> int:
        """Audio callbacks run."""
        return int(self.counters[CALLBACKS])

    @property
    def frames(self) -> int:
        """Frames through the audio callbacks."""
        return int(self.counters[FRAMES])

    @property
    def cpu_load(self) -> float:
        """Smoothed callback time as a fraction of the block period."""
        return float(self.counters[CPU_LOAD])

    @property
    def cpu_load_max(self) -> float:
        """Largest callback time as a fraction of its block period."""
        return float(self.counters[CPU_LOAD_MAX])

    # ---- control side (stemstream.bridge.osc.routes.ControlTarget) ---------------------------------
    @property
    def stems(self) -> tuple[str, ...]:
        return self._stems

    @property
    def model_name(self) -> str:
        return self.switcher.active_name

    @property
    def latency_samples(self) -> int:
        """Engine (+ effects) latency at the host rate, samples; excludes the host's own
        buffering (JACK/PortAudio add their period(s) on input and output)."""
        return self.switcher.latency_samples

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    def add_latency_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` (off the audio thread) whenever :attr:`latency_samples` may
        have changed: after a model switch completes, after an effects change."""
        self._latency_listeners.append(listener)

    def remove_latency_listener(self, listener: Callable[[], None]) -> None:
        if listener in self._latency_listeners:
            self._latency_listeners.remove(listener)

    def _latency_changed(self) -> None:
        for listener in list(self._latency_listeners):
            try:
                listener()
            except Exception as exc:  # a host's hook must not break control
                self.last_listener_error = f"{type(exc).__name__}: {exc}"

    def request_model(self, name: str) -> None:
        self.switcher.request(name)
        if self._latency_listeners:
            # the switch completes in the audio callback; a short-lived thread waits for it
            def announce() -> None:
                self.switcher.wait(120.0)
                self._latency_changed()

            threading.Thread(target=announce, name="stemstream-latency", daemon=True).start()

    def set_effects(self, stem: str, spec_json: str) -> None:
        if self.rack is None:
            raise EffectsOff(f"effects={spec_json!r}: expected a session started with an effects rack (--effects)")
        self.rack.set_chain(stem, spec_json)
        self._latency_changed()

    def set_effect_param(self, stem: str, index: int, param: str, value: float) -> None:
        if self.rack is None:
            raise EffectsOff(f"effects={param!r}: expected a session started with an effects rack (--effects)")
        self.rack.set_param(stem, index, param, value)

    def effects_json(self, stem: str) -> str:
        self.controls.index(stem)
        return "[]" if self.rack is None else self.rack.chain_json(stem)

    def read_meters(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-stem ``(rms, peak)`` since the last call (linear)."""
        return self.mixer.read_meters()

    def stats(self) -> dict[str, Any]:
        """Counters for telemetry and the session summary."""
        session = self.switcher.active
        osc = self.osc_counters
        return {
            "deadline_misses": int(getattr(session, "deadline_misses", 0)) + self.switcher.retired_misses,
            "nonfinite_samples": int(getattr(session, "nonfinite_samples", 0)),
            "backend_errors": int(getattr(session, "backend_errors", 0)),
            "last_backend_error": str(getattr(session, "last_backend_error", "")),
            "xruns": int(self.xruns) + int(self.host_counters[1]),
            "status_flags": int(self.status_flags) + int(self.host_counters[0]),
            "cpu_load": float(self.cpu_load),
            "cpu_load_max": float(self.cpu_load_max),
            "callbacks": int(self.callbacks),
            "frames": int(self.frames),
            "latency_samples": int(self.latency_samples),
            "latency_ms": 1000.0 * self.latency_samples / self.sample_rate,
            "model_switches": int(self.switcher.switches),
            "model_switch_errors": int(self.switcher.switch_errors),
            "osc_accepted": int(osc.accepted) if osc is not None else 0,
            "osc_rejected": int(osc.rejected) if osc is not None else 0,
        }

    def close(self) -> None:
        """Stop every session's worker (after the audio stream has stopped)."""
        self.switcher.close()
