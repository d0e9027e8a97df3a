"""Running a real-time session's audio-callback kernel without Python: for audio threads that
are native code (a numba ``cfunc`` registered with JACK or PortAudio) and for the one live path
(``stemstream.bridge.live.table``) that both they and the Python callbacks run.

:func:`run_slot` rebuilds the session's arrays from its slot (``stemstream.realtime.engine.slot``,
written by ``RealtimeSession.describe_slot``) inside numba code and runs the same kernel as
``RealtimeSession.callback``.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from stemstream.realtime.engine.callback_kernel import _callback_kernel
from stemstream.realtime.engine.slot import (
    DELAY, FADE, IN_CAPACITY, IN_CHANNELS, IN_RING, MIX_GAIN, OUT_CAPACITY, OUT_RING, OUT_STEMS, POSITIONS,
    SLOT_SIZE, WAKE_FD,
)

@intrinsic
def void_pointer(typingctx: Any, address: Any) -> Any:
    """An integer address as a ``void *`` inside numba code (for ``numba.carray``)."""
    if not isinstance(address, types.Integer):
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.inttoptr(args[0], cgutils.voidptr_t)

    return types.voidptr(address), codegen


def session_slot(session: Any, slot: np.ndarray | None = None) -> np.ndarray:
    """``session.describe_slot(slot)``: where its callback arrays live (a new slot if None)."""
    return session.describe_slot(slot)


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
