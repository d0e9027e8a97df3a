"""The JACK process callback as native code: no Python, no GIL, on JACK's real-time thread.

The period function is a numba ``cfunc`` registered with ``jack_set_process_callback``
(through ctypes, on the client JACK-Client opened). For stemstream's own client
(:class:`NativeProcess`) it copies the input ports into the live table's scratch buffers, runs
:func:`stemstream.bridge.live.table.live_piece` (the live path: session, switch crossfade, dry delay,
mixer) and copies the outputs to the ports; JACK's buffers come from ``jack_port_get_buffer``,
called from compiled code (libjack is loaded globally so the compiled code, cached on disk by
numba, links to it). The same module gives the test/benchmark player a native period
(:func:`play_period`), so a player in stemstream's process behaves like one in another process.

Table entries after :data:`stemstream.bridge.live.table.LIVE_TABLE_SIZE`: ``HAS_MIX``, ``HAS_STEMS``,
``N_OUT``, ``IN_PORTS`` (int64 (channels,) of ``jack_port_t *``), ``OUT_PORTS`` (mix ports first,
then stems x channels), ``FIRST_FRAME`` (int64 (1,): JACK frame time of the first period, -1
before), ``CLIENT`` (``jack_client_t *``), and the MIDI input (``MIDI_PORT``: ``jack_port_t *``,
0 without one; ``MIDI_SCRATCH`` int64 (3,), ``MIDI_EVENTS``, ``MIDI_INDEX``, ``MIDI_ONE``,
``MIDI_CAPACITY``: the :class:`stemstream.bridge.live.events.EventRing` its events are copied
into at the start of each period, :mod:`stemstream.bridge.hosts.jack_midi`).
"""

from __future__ import annotations

import ctypes
from typing import Any, Sequence

import numba
import numpy as np
from llvmlite import binding as llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from stemstream.bridge.hosts.jack_latency import libjack, raw_pointer
from stemstream.bridge.hosts.jack_midi import read_midi_buffer
from stemstream.bridge.live.kernels import count_callback
from stemstream.bridge.live.table import (
    BLOCK, CHANNELS, COUNTERS, LIVE_TABLE_SIZE, MIX_OUT, SAMPLE_RATE, SCRATCH_IN, SCRATCH_T, STEM_OUT, STEMS,
    HostTable, f32_entry, f64_entry, i64_entry, live_piece, native_supported,
)
from stemstream.realtime.engine.native import void_pointer
from stemstream.realtime.errors import StemstreamError

(HAS_MIX, HAS_STEMS, N_OUT, IN_PORTS, OUT_PORTS, FIRST_FRAME, CLIENT,
 MIDI_PORT, MIDI_SCRATCH, MIDI_EVENTS, MIDI_INDEX, MIDI_ONE, MIDI_CAPACITY) = range(LIVE_TABLE_SIZE, LIVE_TABLE_SIZE + 13)
TABLE_SIZE = LIVE_TABLE_SIZE + 13

_LIBJACK = libjack()  # loaded with RTLD_GLOBAL below, so compiled code can link to it
llvm.load_library_permanently(_LIBJACK._name)
_set_process = _LIBJACK.jack_set_process_callback
_set_process.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
_set_process.restype = ctypes.c_int

_I8P = ir.IntType(8).as_pointer()


def _int_arg(builder: Any, value: Any, bits: int) -> Any:
    width = value.type.width
    if width > bits:
        return builder.trunc(value, ir.IntType(bits))
    return builder.zext(value, ir.IntType(bits)) if width < bits else value


@intrinsic
def _get_buffer(typingctx: Any, port: Any, nframes: Any) -> Any:
    """``jack_port_get_buffer((jack_port_t *) port, nframes)`` as an integer address."""
    if not isinstance(port, types.Integer) or not isinstance(nframes, types.Integer):
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_I8P, [_I8P, ir.IntType(32)]),
                                            "jack_port_get_buffer")
        result = builder.call(fn, [builder.inttoptr(args[0], _I8P), _int_arg(builder, args[1], 32)])
        return builder.ptrtoint(result, ir.IntType(64))

    return types.int64(port, nframes), codegen


@intrinsic
def _get_time(typingctx: Any) -> Any:
    """``jack_get_time()``: JACK's clock, microseconds."""

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(64), []), "jack_get_time")
        return builder.call(fn, [])

    return types.int64(), codegen


@intrinsic
def _last_frame_time(typingctx: Any, client: Any) -> Any:
    """``jack_last_frame_time((jack_client_t *) client)``: frame time of this period's start."""
    if not isinstance(client, types.Integer):
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(32), [_I8P]),
                                            "jack_last_frame_time")
        return builder.zext(builder.call(fn, [builder.inttoptr(args[0], _I8P)]), ir.IntType(64))

    return types.int64(client), codegen


@numba.njit(cache=True)
def run_period(table: np.ndarray, nframes: int) -> None:
    """One JACK period of ``nframes`` (in pieces of at most ``table[BLOCK]``)."""
    t0 = _get_time()
    m, n_stems, channels = table[BLOCK], table[STEMS], table[CHANNELS]
    first = i64_entry(table, FIRST_FRAME, 1)
    if first[0] < 0:
        first[0] = _last_frame_time(table[CLIENT])
    if table[MIDI_PORT] != 0:  # controller events to the control thread, before any audio work
        read_midi_buffer(_get_buffer(table[MIDI_PORT], nframes), _last_frame_time(table[CLIENT]),
                         i64_entry(table, MIDI_SCRATCH, 3), i64_2d(table, MIDI_EVENTS, table[MIDI_CAPACITY]),
                         i64_entry(table, MIDI_INDEX, 4), i64_entry(table, MIDI_ONE, 1))
    in_ports = i64_entry(table, IN_PORTS, channels)
    out_ports = i64_entry(table, OUT_PORTS, table[N_OUT])
    scratch = f32_entry(table, SCRATCH_IN, (m, channels))
    planar = f32_entry(table, SCRATCH_T, (channels, m))
    stem_out = f32_entry(table, STEM_OUT, (n_stems, channels, m))
    mix_out = f32_entry(table, MIX_OUT, (channels, m))
    start = 0
    while start < nframes:
        n = min(m, nframes - start)
        for c in range(channels):
            buf = numba.carray(void_pointer(_get_buffer(in_ports[c], nframes)), (nframes,), np.float32)
            for t in range(n):
                v = buf[start + t]
                scratch[t, c] = v
                planar[c, t] = v
        live_piece(table, n)
        k = 0
        if table[HAS_MIX] != 0:
            for c in range(channels):
                buf = numba.carray(void_pointer(_get_buffer(out_ports[k], nframes)), (nframes,), np.float32)
                for t in range(n):
                    buf[start + t] = mix_out[c, t]
                k += 1
        if table[HAS_STEMS] != 0:
            for s in range(n_stems):
                for c in range(channels):
                    buf = numba.carray(void_pointer(_get_buffer(out_ports[k], nframes)), (nframes,), np.float32)
                    for t in range(n):
                        buf[start + t] = stem_out[s, c, t]
                    k += 1
        start += n
    elapsed_us = _get_time() - t0
    count_callback(f64_entry(table, COUNTERS, 4), nframes, elapsed_us * 1e-6 * table[SAMPLE_RATE] / max(1, nframes))


@numba.njit(cache=True)
def i64_2d(table: np.ndarray, entry: int, rows: int) -> np.ndarray:
    """The int64 ``(rows, 4)`` array at ``table[entry]`` (an event ring's rows)."""
    return numba.carray(void_pointer(table[entry]), (rows, 4), np.int64)


@numba.cfunc(types.int32(types.uint32, types.voidptr), cache=True)
def _process(nframes: int, arg: Any) -> int:
    run_period(numba.carray(arg, (TABLE_SIZE,), np.int64), nframes)
    return 0


# Player table entries (int64): the looping test-signal source (stemstream.benchmarks.rig.jack_player).
(P_CHANNELS, P_PORTS, P_AUDIO, P_SAMPLES, P_POSITION, P_GO, P_LOOP, P_START_FRAME, P_CLIENT) = range(9)
PLAYER_TABLE_SIZE = 9


@numba.njit(cache=True)
def play_period(table: np.ndarray, nframes: int) -> None:
    """One period of the player: silence until ``go``, then the audio (looped or once)."""
    channels, total = table[P_CHANNELS], table[P_SAMPLES]
    ports = i64_entry(table, P_PORTS, channels)
    audio = f32_entry(table, P_AUDIO, (channels, total))
    position = i64_entry(table, P_POSITION, 1)
    go = i64_entry(table, P_GO, 1)[0] != 0
    start_frame = i64_entry(table, P_START_FRAME, 1)
    if go and start_frame[0] < 0:
        start_frame[0] = _last_frame_time(table[P_CLIENT])
    pos = position[0]
    for c in range(channels):
        buf = numba.carray(void_pointer(_get_buffer(ports[c], nframes)), (nframes,), np.float32)
        pos = position[0]
        for t in range(nframes):
            if go and pos >= total and table[P_LOOP] != 0:
                pos = 0
            if go and pos < total:
                buf[t] = audio[c, pos]
                pos += 1
            else:
                buf[t] = 0.0
    if go:
        position[0] = pos


@numba.cfunc(types.int32(types.uint32, types.voidptr), cache=True)
def _play(nframes: int, arg: Any) -> int:
    play_period(numba.carray(arg, (PLAYER_TABLE_SIZE,), np.int64), nframes)
    return 0


def set_process(client: Any, table: np.ndarray, player: bool = False) -> None:
    """Register the native period function (``player``: :func:`play_period`, else
    :func:`run_period`) with ``table`` as ``client``'s process callback (before activate)."""
    callback = _play if player else _process
    rc = _set_process(raw_pointer(client), callback.address, table.ctypes.data)
    if rc != 0:
        raise StemstreamError(f"jack_set_process_callback failed (code {rc}); call it before activate()")


class NativeProcess(HostTable):
    """Registers :func:`run_period` as ``client``'s process callback for ``processor``.

    Args:
        processor: a :class:`stemstream.bridge.live.processor.LiveProcessor` whose sessions are engine
            ``RealtimeSession`` objects (:func:`stemstream.bridge.live.table.native_supported`).
        client: the JACK-Client ``Client`` (not yet activated).
        inports / outports: its ports, outputs in table order (mix, then stems x channels).
        has_mix / has_stems: which outputs exist (the routing).
        midi_port / midi_ring: a MIDI input port and the ``EventRing`` its events go to, or None.
    """

    def __init__(self, processor: Any, client: Any, inports: Sequence[Any], outports: Sequence[Any],
                 has_mix: bool, has_stems: bool, midi_port: Any = None, midi_ring: Any = None) -> None:
        super().__init__(processor, extra=TABLE_SIZE - LIVE_TABLE_SIZE)
        t = self.table
        t[HAS_MIX], t[HAS_STEMS], t[N_OUT] = int(has_mix), int(has_stems), len(outports)
        self.put(IN_PORTS, np.array([raw_pointer(p) for p in inports], np.int64))
        self.put(OUT_PORTS, np.array([raw_pointer(p) for p in outports] or [0], np.int64))
        self.first_frame = np.full(1, -1, np.int64)
        self.put(FIRST_FRAME, self.first_frame)
        t[CLIENT] = raw_pointer(client)
        if midi_port is not None and midi_ring is not None:
            self.put(MIDI_SCRATCH, np.zeros(3, np.int64))
            self.put(MIDI_EVENTS, midi_ring.events)
            self.put(MIDI_INDEX, midi_ring.index)
            self.put(MIDI_ONE, midi_ring.one)
            t[MIDI_CAPACITY] = midi_ring.events.shape[0]
            t[MIDI_PORT] = raw_pointer(midi_port)
        set_process(client, t)

    @property
    def first_frame_time(self) -> int | None:
        """JACK frame time of the first period (``None`` before it ran)."""
        value = int(self.first_frame[0])
        return None if value < 0 else value


__all__ = [
    "NativeProcess", "PLAYER_TABLE_SIZE", "TABLE_SIZE", "native_supported", "play_period", "run_period",
    "set_process",
]
