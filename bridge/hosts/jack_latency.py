"""Publish stemstream's latency to the JACK graph (other clients see it in their port latencies).

JACK-Client (the ``jack`` module) has no latency API, so this module calls libjack through
ctypes on the raw ``jack_client_t *`` / ``jack_port_t *`` behind JACK-Client's cffi objects:

* ``jack_set_latency_callback``: JACK asks us, whenever the graph's latencies are
  recomputed, to set our ports' latency ranges. Capture mode: each output port gets the
  smallest / largest capture latency of our input ports, plus the engine latency. Playback
  mode: each input port gets the smallest / largest playback latency of our output ports,
  plus the engine latency. Only connected ports count (an unconnected one reports 0). So a recorder downstream reads (upstream capture latency +
  stemstream's latency) on what it records, and a player upstream reads how late its
  signal reaches the speakers through stemstream.
* ``jack_recompute_total_latencies``: called when stemstream's latency changes (model
  switch, effects), so JACK runs the callbacks again and everyone sees the new figure.
* ``jack_port_get_latency_range``: reads a port's range (used by the callback and by tests
  or tools that inspect any port, e.g. ``port_latency(client, "stemstream:bass_L")``).

The ctypes callback object is kept on the :class:`LatencyPublisher` for as long as the JACK
client lives (JACK calls into it from its notification thread, not the process thread).
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any, Callable, Sequence

from stemstream.realtime.errors import StemstreamError

#: ``jack_latency_callback_mode_t`` values.
CAPTURE = 0
PLAYBACK = 1


class LatencyRange(ctypes.Structure):
    """``jack_latency_range_t``: ``min`` and ``max`` in frames."""

    _fields_ = [("min", ctypes.c_uint32), ("max", ctypes.c_uint32)]


_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_void_p)
_LIB: Any = None


def libjack() -> Any:
    """libjack through ctypes, with the latency functions' signatures set."""
    global _LIB
    if _LIB is None:
        name = ctypes.util.find_library("jack") or "libjack.so.0"
        try:
            lib = ctypes.CDLL(name)
        except OSError as exc:
            raise StemstreamError(f"libjack could not be loaded ({exc}); install JACK (apt-get install jackd2)") from None
        lib.jack_set_latency_callback.argtypes = [ctypes.c_void_p, _CALLBACK, ctypes.c_void_p]
        lib.jack_set_latency_callback.restype = ctypes.c_int
        for fn in (lib.jack_port_get_latency_range, lib.jack_port_set_latency_range):
            fn.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(LatencyRange)]
            fn.restype = None
        lib.jack_recompute_total_latencies.argtypes = [ctypes.c_void_p]
        lib.jack_recompute_total_latencies.restype = ctypes.c_int
        _LIB = lib
    return _LIB


def raw_pointer(obj: Any) -> int:
    """The C pointer behind a JACK-Client ``Client`` or ``Port`` (its cffi ``_ptr``)."""
    import jack

    return int(jack._ffi.cast("uintptr_t", obj._ptr))


def get_range(port: Any, mode: int) -> tuple[int, int]:
    """``(min, max)`` latency of a JACK-Client port in ``mode`` (:data:`CAPTURE` / :data:`PLAYBACK`)."""
    r = LatencyRange()
    libjack().jack_port_get_latency_range(raw_pointer(port), mode, ctypes.byref(r))
    return int(r.min), int(r.max)


def set_range(port: Any, mode: int, low: int, high: int) -> None:
    """Set a port's latency range (only meaningful inside a latency callback, or for a
    port of a client without one)."""
    r = LatencyRange(max(0, int(low)), max(0, int(high)))
    libjack().jack_port_set_latency_range(raw_pointer(port), mode, ctypes.byref(r))


def port_latency(client: Any, port_name: str, mode: int = CAPTURE) -> tuple[int, int]:
    """``(min, max)`` latency of any port in the graph, by name, seen from ``client``."""
    return get_range(client.get_port_by_name(port_name), mode)


class LatencyPublisher:
    """Sets a client's latency callback: outputs = inputs + ``latency()`` frames (and back).

    Args:
        client: a ``jack.Client``, not yet activated.
        inputs / outputs: its ports (JACK-Client ``Port`` objects).
        latency: returns the client's own input-to-output latency, frames.

    Attributes:
        callbacks: times JACK asked; ``errors``: callbacks that failed (the range is then
        left as it was); ``published``: the latency used last, frames.
    """

    def __init__(self, client: Any, inputs: Sequence[Any], outputs: Sequence[Any],
                 latency: Callable[[], int]) -> None:
        self.client = client
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.latency = latency
        self.callbacks = 0
        self.errors = 0
        self.last_error = ""
        self.published = 0
        self._callback = _CALLBACK(self._on_latency)  # referenced for the client's lifetime
        rc = libjack().jack_set_latency_callback(raw_pointer(client), self._callback, None)
        if rc != 0:
            raise StemstreamError(f"jack_set_latency_callback failed (code {rc}); set it before activate()")

    def _on_latency(self, mode: int, _arg: Any) -> None:
        try:
            own = max(0, int(self.latency()))
            sources, targets = (self.inputs, self.outputs) if mode == CAPTURE else (self.outputs, self.inputs)
            # unconnected ports say 0 and would pull the minimum down: only connected ones count
            ranges = [get_range(p, mode) for p in sources if p.number_of_connections] or [(0, 0)]
            low, high = min(r[0] for r in ranges), max(r[1] for r in ranges)
            for port in targets:
                set_range(port, mode, low + own, high + own)
            self.published = own
            self.callbacks += 1
        except Exception as exc:  # JACK's thread must never see a Python exception
            self.errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"

    def recompute(self) -> None:
        """Ask JACK to recompute every latency in the graph (after our latency changed)."""
        libjack().jack_recompute_total_latencies(raw_pointer(self.client))
