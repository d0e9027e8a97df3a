"""The PortAudio stream callback as native code (no Python, no GIL on the audio thread).

python-sounddevice opens the duplex stream (device lookup, parameters, errors as usual), but
instead of a Python callback it is given a C function pointer: a numba ``cfunc`` with
PortAudio's ``PaStreamCallback`` signature, and the live table as ``userData``
(``sounddevice._StreamBase`` documents this use: ``callback`` may be a CFFI function pointer
when ``wrap_callback`` is None). Each call copies the interleaved input into the table's scratch
buffers, runs :func:`stemstream.bridge.live.table.live_piece` and writes the interleaved output in the
routing's layout (mix channels first, then each stem's channels; ``stemstream.bridge.live.processor``). PortAudio's
status flags are counted (input overflow / output underflow as xruns) in the processor's host
counters. Only where ``unsigned long`` is 64-bit (Linux, macOS on x86-64); elsewhere the Python
callback runs.

Table entries after :data:`stemstream.bridge.live.table.LIVE_TABLE_SIZE`: ``OUT_CHANNELS``, ``HAS_MIX``,
``HAS_STEMS``, ``STREAM`` (``PaStream *``, for ``Pa_GetStreamTime``).
"""

from __future__ import annotations

import platform
from typing import Any

import numba
import numpy as np
from llvmlite import binding as llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from stemstream.bridge.live.kernels import count_callback
from stemstream.bridge.live.table import (
    BLOCK, CHANNELS, COUNTERS, HOST_COUNTERS, HOST_XRUNS, LIVE_TABLE_SIZE, MIX_OUT, SAMPLE_RATE, SCRATCH_IN,
    SCRATCH_T, STATUS_FLAGS, STEM_OUT, STEMS, HostTable, f32_entry, f64_entry, i64_entry, live_piece,
    native_supported,
)
from stemstream.realtime.engine.native import void_pointer
from stemstream.realtime.errors import require

OUT_CHANNELS, HAS_MIX, HAS_STEMS, STREAM = range(LIVE_TABLE_SIZE, LIVE_TABLE_SIZE + 4)
TABLE_SIZE = LIVE_TABLE_SIZE + 4
#: PortAudio status flags counted as xruns (paInputOverflow | paOutputUnderflow).
XRUN_FLAGS = 0x2 | 0x4

_sd = require("sounddevice", "live")
llvm.load_library_permanently(_sd._libname)  # so compiled code links to Pa_GetStreamTime


@intrinsic
def _stream_time(typingctx: Any, stream: Any) -> Any:
    """``Pa_GetStreamTime((PaStream *) stream)``: the stream's clock, seconds."""
    if not isinstance(stream, types.Integer):
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        i8p = ir.IntType(8).as_pointer()
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.DoubleType(), [i8p]),
                                            "Pa_GetStreamTime")
        return builder.call(fn, [builder.inttoptr(args[0], i8p)])

    return types.float64(stream), codegen


@intrinsic
def _address(typingctx: Any, pointer: Any) -> Any:
    """A ``void *`` as an integer (0 for NULL)."""
    if pointer != types.voidptr:
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.ptrtoint(args[0], ir.IntType(64))

    return types.int64(pointer), codegen


@numba.njit(cache=True)
def pa_period(table: np.ndarray, input_address: int, output_address: int, frames: int, status: int) -> None:
    """One PortAudio callback: interleaved ``(frames, channels)`` in, ``(frames, OUT_CHANNELS)`` out."""
    clocked = table[STREAM] != 0
    t0 = _stream_time(table[STREAM]) if clocked else 0.0
    m, n_stems, channels, n_out = table[BLOCK], table[STEMS], table[CHANNELS], table[OUT_CHANNELS]
    if status != 0:
        host = i64_entry(table, HOST_COUNTERS, 2)
        host[STATUS_FLAGS] += 1
        if status & XRUN_FLAGS:
            host[HOST_XRUNS] += 1
    out = numba.carray(void_pointer(output_address), (frames, n_out), np.float32)
    scratch = f32_entry(table, SCRATCH_IN, (m, channels))
    planar = f32_entry(table, SCRATCH_T, (channels, m))
    stem_out = f32_entry(table, STEM_OUT, (n_stems, channels, m))
    mix_out = f32_entry(table, MIX_OUT, (channels, m))
    start = 0
    while start < frames:
        n = min(m, frames - start)
        if input_address != 0:
            x = numba.carray(void_pointer(input_address), (frames, channels), np.float32)
            for t in range(n):
                for c in range(channels):
                    v = x[start + t, c]
                    scratch[t, c] = v
                    planar[c, t] = v
        else:  # no input this time (e.g. output priming): silence
            scratch[:n] = 0.0
            planar[:, :n] = 0.0
        live_piece(table, n)
        col = 0
        if table[HAS_MIX] != 0:
            for c in range(channels):
                for t in range(n):
                    out[start + t, col] = mix_out[c, t]
                col += 1
        if table[HAS_STEMS] != 0:
            for s in range(n_stems):
                for c in range(channels):
                    for t in range(n):
                        out[start + t, col] = stem_out[s, c, t]
                    col += 1
        start += n
    elapsed = _stream_time(table[STREAM]) - t0 if clocked else 0.0
    count_callback(f64_entry(table, COUNTERS, 4), frames, elapsed * table[SAMPLE_RATE] / max(1, frames))


@numba.cfunc(types.int32(types.voidptr, types.voidptr, types.uint64, types.voidptr, types.uint64, types.voidptr),
             cache=True)
def _callback(input_ptr: Any, output_ptr: Any, frames: int, time_info: Any, status: int, user: Any) -> int:
    table = numba.carray(user, (TABLE_SIZE,), np.int64)
    pa_period(table, _address(input_ptr), _address(output_ptr), frames, status)
    return 0  # paContinue


def portaudio_native_supported(processor: Any) -> str:
    """Why the PortAudio callback cannot be native here ("" when it can)."""
    if platform.system() == "Windows":
        return "PortAudio's callback takes 32-bit 'unsigned long' on Windows; the Python callback runs"
    return native_supported(processor)


#: The callback's C address (``PaStreamCallback``), e.g. for calling it through ctypes in tests.
CALLBACK_ADDRESS = _callback.address


class NativeCallback(HostTable):
    """The table :func:`pa_period` needs for ``processor`` with ``output_channels`` outputs
    (no stream: ``STREAM`` is 0, so no CPU load is measured until a stream sets it)."""

    def __init__(self, processor: Any, output_channels: int) -> None:
        super().__init__(processor, extra=TABLE_SIZE - LIVE_TABLE_SIZE)
        routing = processor.config.routing
        t = self.table
        t[OUT_CHANNELS], t[HAS_MIX], t[HAS_STEMS] = output_channels, int(routing != "stems"), int(routing != "mix")


class NativeStream(NativeCallback):
    """A duplex ``sounddevice`` stream whose callback is :func:`pa_period` for ``processor``.

    Args:
        processor: the live path (engine sessions: :func:`portaudio_native_supported`).
        device: ``(input, output)`` PortAudio devices as sounddevice takes them.
        output_channels: output channel count of the routing.
        stream_kwargs: further ``sounddevice`` stream arguments (rate, block size, latency...).
    """

    def __init__(self, processor: Any, device: Any, output_channels: int, **stream_kwargs: Any) -> None:
        super().__init__(processor, output_channels)
        t = self.table
        callback = _sd._ffi.cast("PaStreamCallback *", _callback.address)
        userdata = _sd._ffi.cast("void *", t.ctypes.data)
        self.stream = _sd._StreamBase(kind="duplex", device=device, channels=(processor.config.channels,
                                      output_channels), dtype="float32", callback=callback, userdata=userdata,
                                      wrap_callback=None, **stream_kwargs)
        t[STREAM] = int(_sd._ffi.cast("uintptr_t", self.stream._ptr))


__all__ = ["CALLBACK_ADDRESS", "NativeCallback", "NativeStream", "TABLE_SIZE", "pa_period", "portaudio_native_supported"]
