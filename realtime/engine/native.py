"""Running the session's audio-callback kernel without Python: for hosts whose audio thread is
native code (a numba ``cfunc`` registered with JACK, ``stemstream.bridge.hosts.jack_native``).

A :class:`~stemstream.realtime.engine.session.RealtimeSession`'s callback is one numba kernel over a few
preallocated arrays. :func:`session_slot` writes where those arrays live (addresses and
sizes) into a small int64 array, the *slot*; :func:`run_slot` rebuilds array views from a slot
inside numba code and runs the same kernel, so a native audio thread can run the session
without the GIL, a Python object or an allocation. Whoever holds a slot must keep the
session alive while the audio thread may still read it.

Slot layout (int64 entries, :data:`SLOT_SIZE` of them)::

    IN_RING, IN_CHANNELS, IN_CAPACITY      input ring (channels, capacity) float32
    OUT_RING, OUT_STEMS, OUT_CAPACITY      output ring (stems, channels, capacity) float32
    POSITIONS                              the session's int64 position/counter array (8)
    MIX_GAIN                               fallback gain per stem, float32 (stems)
    DELAY, FADE, WAKE_FD                   latency, fade length (samples), eventfd (-1: none)
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from stemstream.realtime.engine.session import _callback_kernel

(IN_RING, IN_CHANNELS, IN_CAPACITY, OUT_RING, OUT_STEMS, OUT_CAPACITY,
 POSITIONS, MIX_GAIN, DELAY, FADE, WAKE_FD) = range(11)
SLOT_SIZE = 11


@intrinsic
def void_pointer(typingctx: Any, address: Any) -> Any:
    """An integer address as a ``void *`` inside numba code (for ``numba.carray``)."""
    if not isinstance(address, types.Integer):
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.inttoptr(args[0], cgutils.voidptr_t)

    return types.voidptr(address), codegen


def session_slot(session: Any, slot: np.ndarray | None = None) -> np.ndarray:
    """Describe ``session``'s callback arrays in ``slot`` (new int64 array if None).

    The kernel arrays are the session's own; nothing is copied. Returns the slot.
    """
    if slot is None:
        slot = np.zeros(SLOT_SIZE, np.int64)
    in_ring, out_ring = session._in_ring.data, session._out_ring.data
    slot[IN_RING] = in_ring.ctypes.data
    slot[IN_CHANNELS], slot[IN_CAPACITY] = in_ring.shape
    slot[OUT_RING] = out_ring.ctypes.data
    slot[OUT_STEMS], _, slot[OUT_CAPACITY] = out_ring.shape
    slot[POSITIONS] = session._idx.ctypes.data
    slot[MIX_GAIN] = session._mix_gain.ctypes.data
    slot[DELAY] = session.latency_samples
    slot[FADE] = session.fade_samples
    slot[WAKE_FD] = session._wakeup.fd
    return slot


@numba.njit(cache=True)
def run_slot(slot: np.ndarray, indata: np.ndarray, out: np.ndarray) -> None:
    """Run the session described by ``slot`` on ``indata`` ``(frames, channels)`` into ``out``
    ``(stems, channels, frames)``: exactly ``RealtimeSession.callback``."""
    channels = slot[IN_CHANNELS]
    in_ring = numba.carray(void_pointer(slot[IN_RING]), (channels, slot[IN_CAPACITY]), np.float32)
    out_ring = numba.carray(void_pointer(slot[OUT_RING]), (slot[OUT_STEMS], channels, slot[OUT_CAPACITY]),
                            np.float32)
    idx = numba.carray(void_pointer(slot[POSITIONS]), (8,), np.int64)
    gain = numba.carray(void_pointer(slot[MIX_GAIN]), (slot[OUT_STEMS],), np.float32)
    _callback_kernel(indata, out, in_ring, out_ring, idx, gain, slot[DELAY], slot[FADE], slot[WAKE_FD])


__all__ = ["SLOT_SIZE", "run_slot", "session_slot", "void_pointer"]
