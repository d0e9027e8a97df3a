"""Where a real-time session's callback arrays live, as a small int64 array: the *slot*.

A :class:`~stemstream.realtime.engine.session.RealtimeSession` describes itself into a slot
(``RealtimeSession.describe_slot``); ``stemstream.realtime.engine.native.run_slot`` rebuilds the
arrays from it inside numba code and runs the session's callback kernel, so an audio thread can
run the session without a Python object, the GIL or an allocation. Whoever holds a slot keeps
the session alive while the audio thread may still read it.

Layout (int64 entries, :data:`SLOT_SIZE` of them)::

    IN_RING, IN_CHANNELS, IN_CAPACITY      input ring (channels, capacity) float32
    OUT_RING, OUT_STEMS, OUT_CAPACITY      output ring (stems, channels, capacity) float32
    POSITIONS                              the session's int64 position/counter array (8)
    MIX_GAIN                               fallback gain per stem, float32 (stems)
    DELAY, FADE, WAKE_FD                   latency, fade length (samples), eventfd (-1: none)
"""

from __future__ import annotations

(IN_RING, IN_CHANNELS, IN_CAPACITY, OUT_RING, OUT_STEMS, OUT_CAPACITY,
 POSITIONS, MIX_GAIN, DELAY, FADE, WAKE_FD) = range(11)
SLOT_SIZE = 11

__all__ = [
    "DELAY", "FADE", "IN_CAPACITY", "IN_CHANNELS", "IN_RING", "MIX_GAIN", "OUT_CAPACITY", "OUT_RING",
    "OUT_STEMS", "POSITIONS", "SLOT_SIZE", "WAKE_FD",
]
