"""JACK MIDI input read from native code: a period's events copied into an event ring.

:func:`read_midi_port` runs at the start of stemstream's native JACK period
(``stemstream.bridge.hosts.jack_native.run_period``): ``jack_midi_get_event_count`` and
``jack_midi_event_get`` on the MIDI port's buffer, each short channel message copied into a
preallocated :class:`stemstream.bridge.live.events.EventRing` with its frame time (the period's
``jack_last_frame_time`` plus the event's offset), then one wake-up of the control thread that
applies them. No allocation, no lock, no Python: the ``jack_midi_event_t`` is filled into a
preallocated int64 scratch array (``time`` uint32 at byte 0, ``size`` size_t at byte 8,
``buffer`` pointer at byte 16 on x86-64, the only CPU the native callback runs on).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from llvmlite import binding as llvm
from numba.extending import intrinsic

from stemstream.bridge.hosts.jack_latency import libjack
from stemstream.bridge.live.events import push_event, wake_reader
from stemstream.realtime.engine.native import void_pointer

llvm.load_library_permanently(libjack()._name)  # compiled code links to libjack's MIDI functions

_I8P = ir.IntType(8).as_pointer()

#: int64 entries of the ``jack_midi_event_t`` scratch array: time (low 32 bits), size, buffer.
EVENT_TIME, EVENT_SIZE, EVENT_BUFFER = range(3)


@intrinsic
def _midi_event_count(typingctx: Any, buffer: Any) -> Any:
    """``jack_midi_get_event_count((void *) buffer)``."""
    if not isinstance(buffer, types.Integer):
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(32), [_I8P]),
                                            "jack_midi_get_event_count")
        return builder.zext(builder.call(fn, [builder.inttoptr(args[0], _I8P)]), ir.IntType(64))

    return types.int64(buffer), codegen


@intrinsic
def _midi_event_get(typingctx: Any, event: Any, buffer: Any, index: Any) -> Any:
    """``jack_midi_event_get((jack_midi_event_t *) event, (void *) buffer, index)``: 0 on success."""
    if not all(isinstance(a, types.Integer) for a in (event, buffer, index)):
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.IntType(32), [_I8P, _I8P, ir.IntType(32)]), "jack_midi_event_get")
        idx = args[2]
        idx = builder.trunc(idx, ir.IntType(32)) if idx.type.width > 32 else builder.zext(idx, ir.IntType(32)) \
            if idx.type.width < 32 else idx
        result = builder.call(fn, [builder.inttoptr(args[0], _I8P), builder.inttoptr(args[1], _I8P), idx])
        return builder.sext(result, ir.IntType(64))

    return types.int64(event, buffer, index), codegen


@numba.njit(cache=True)
def read_midi_buffer(buffer: int, frame0: int, scratch: np.ndarray, events: np.ndarray, index: np.ndarray,
                     one: np.ndarray) -> int:
    """Copy the channel messages of a JACK MIDI port ``buffer`` (its address) into the ring
    ``events``/``index`` with frame times ``frame0 + offset``; wake the reader if any was kept.
    Returns how many were kept."""
    count = _midi_event_count(buffer)
    kept = 0
    for i in range(count):
        if _midi_event_get(scratch.ctypes.data, buffer, i) != 0:
            continue
        size = scratch[EVENT_SIZE]
        if size < 1 or size > 3:  # SysEx and empty events: not ours
            continue
        data = numba.carray(void_pointer(scratch[EVENT_BUFFER]), (size,), np.uint8)
        d1 = np.int64(data[1]) if size > 1 else np.int64(0)
        d2 = np.int64(data[2]) if size > 2 else np.int64(0)
        if push_event(events, index, frame0 + (scratch[EVENT_TIME] & 0xFFFFFFFF), np.int64(data[0]), d1, d2):
            kept += 1
    if kept > 0:
        wake_reader(index, one)
    return kept


__all__ = ["EVENT_BUFFER", "EVENT_SIZE", "EVENT_TIME", "read_midi_buffer"]
