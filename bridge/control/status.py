"""One snapshot of a live session for the surfaces that show it (the browser page, the terminal):
per-stem meters, gains, mutes, solos, and latency, CPU, deadline misses, xruns.

Meters: ``LiveProcessor.read_meters`` hands out the peak held since its last call and resets it,
so two readers would steal each other's peaks; :class:`MeterTap` gives each reader (OSC
telemetry, the web page, the terminal) a hold of its own.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Any, Callable

import numpy as np

Meters = Callable[[], tuple[np.ndarray, np.ndarray]]

#: Notification lines a snapshot keeps (newest last).
MESSAGES_KEPT: int = 4


class MeterTap:
    """Per-reader peak holds over one ``read() -> (rms, peak)`` source (see the module docstring)."""

    def __init__(self, read: Meters) -> None:
        self._read = read
        self._holds: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def reader(self, name: str) -> Meters:
        """A ``() -> (rms, peak)`` for reader ``name``: the peak held since that reader's last call."""
        with self._lock:
            self._holds.setdefault(name, np.zeros(0, np.float32))
        return lambda: self.read(name)

    def read(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            rms, peak = self._read()
            for key, hold in self._holds.items():
                self._holds[key] = peak.copy() if hold.shape != peak.shape else np.maximum(hold, peak)
            held = self._holds.get(name, peak)
            self._holds[name] = np.zeros_like(peak)
            return rms, held


class SessionStatus:
    """Builds :meth:`snapshot` from a live session's parts.

    Args:
        processor: the ``LiveProcessor`` (controls, stats, latency).
        routes: the control layer (its counters), or None.
        meters: ``() -> (rms, peak)`` for this reader (``MeterTap.reader``).
        host_latency: ``() -> samples`` of the host's own buffering (0: not known).
        midi: the ``MidiControl`` (its learn prompt and counts), or None.
        messages: the session's one-line messages, shared with its other surfaces (default: its own).
    """

    def __init__(self, processor: Any, routes: Any = None, meters: Meters | None = None,
                 host_latency: Callable[[], int] | None = None, midi: Any = None,
                 messages: collections.deque[str] | None = None) -> None:
        self.processor = processor
        self.routes = routes
        self.meters = meters
        self.host_latency = host_latency or (lambda: 0)
        self.midi = midi
        self.messages = messages if messages is not None else collections.deque(maxlen=MESSAGES_KEPT)
        self._t0 = time.monotonic()
        self._cpu = (time.monotonic(), time.process_time(), 0.0)

    def note(self, line: str) -> None:
        """Keep a notification line (host lost and back, MIDI learn, refusals) for the surfaces."""
        self.messages.append(line)

    def _process_cpu(self) -> float:
        """Percent of one core the process used since the previous snapshot (at most every 0.5 s)."""
        wall0, cpu0, last = self._cpu
        wall, cpu = time.monotonic(), time.process_time()
        if wall - wall0 >= 0.5:
            last = 100.0 * (cpu - cpu0) / (wall - wall0)
            self._cpu = (wall, cpu, last)
        return last

    def snapshot(self) -> dict[str, Any]:
        """The session now, as plain values (JSON-ready): stems, controls, meters (linear), figures."""
        p = self.processor
        ctl = p.controls
        stats = p.stats()
        rms, peak = self.meters() if self.meters is not None else (np.zeros(len(p.stems)), np.zeros(len(p.stems)))
        engine = int(stats["latency_samples"])
        host = int(self.host_latency())
        out: dict[str, Any] = {
            "seconds": round(time.monotonic() - self._t0, 2),
            "model": p.model_name,
            "sample_rate": int(p.sample_rate),
            "stems": list(p.stems),
            "gain": [float(g) for g in ctl.gain],
            "mute": [bool(m) for m in ctl.mute],
            "solo": [bool(s) for s in ctl.solo],
            "bypass": bool(ctl.bypass[0]),
            "has_vocals": "vocals" in p.stems,
            "acapella": bool(ctl.acapella),
            "instrumental": bool(ctl.instrumental),
            "rms": [float(v) for v in rms],
            "peak": [float(v) for v in peak],
            "latency_ms": 1000.0 * (engine + host) / p.sample_rate,
            "engine_latency_ms": 1000.0 * engine / p.sample_rate,
            "cpu_load": float(stats["cpu_load"]),
            "process_cpu_percent": self._process_cpu(),
            "deadline_misses": int(stats["deadline_misses"]),
            "xruns": int(stats["xruns"]),
            "messages": list(self.messages),
        }
        if self.routes is not None:
            c = self.routes.counters
            out["control_accepted"], out["control_refused"] = int(c.accepted), int(c.rejected)
            out["last_error"] = c.last_error
        if self.midi is not None:
            out["midi"] = self.midi.status_line
        return out


def level_db(value: float, floor_db: float = -60.0) -> float:
    """A linear level in dBFS, no lower than ``floor_db``."""
    return max(floor_db, 20.0 * float(np.log10(max(value, 1e-12))))
