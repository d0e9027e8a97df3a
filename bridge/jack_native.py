"""The JACK process callback as native code: no Python, no GIL, on JACK's real-time thread.

With JACK-Client's callback, every period runs Python on JACK's thread, so the thread must
take the GIL: any other thread holding it (the inference worker between ONNX Runtime calls,
OSC, telemetry, the garbage collector) can hold the audio up, and a 10-minute soak showed
bursts of xruns where the callback waited up to 16 ms while inference itself was fast.

Here the whole period is one numba ``cfunc`` registered with ``jack_set_process_callback``
(through ctypes, on the client JACK-Client opened). It reads every array it needs from a
*table* (an int64 array of addresses and sizes, below) and runs the same kernels as the
Python path: the session's copy-only callback (``realtime.engine.native.run_slot``), the
model-switch crossfade, the dry delay and the mixer (``bridge.live_kernels``). It takes no
lock, allocates nothing and never touches a Python object; JACK's buffers are read and written
through ``jack_port_get_buffer``. Python keeps the control side: OSC and the CLI write mixer
targets into the controls' arrays, a model switch publishes the new session's slot before
flagging the fade, and the counters/meters are arrays Python reads.

Keep-alive: :class:`NativeProcess` owns the table and every array it points to for as long
as the client lives; sessions are kept alive by the switcher until the audio side has moved
off them. Stores are published in program order (x86-64 keeps them in order; on weakly
ordered CPUs a flag could be seen before the data it guards: use the Python callback there).
"""

from __future__ import annotations

import ctypes
import platform
from typing import Any, Sequence

import numba
import numpy as np
from llvmlite import binding as llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from bridge.jack_latency import libjack, raw_pointer
from bridge.live_kernels import FADING, PHASE, count_callback, crossfade_kernel, delay_kernel, mix_kernel
from realtime.engine.native import SLOT_SIZE, run_slot, session_slot, void_pointer
from realtime.errors import StemstreamError

# Table entries (int64): sizes, then addresses of arrays (shapes in the comments).
(BLOCK, STEMS, CHANNELS, HAS_MIX, HAS_STEMS, N_OUT, SAMPLE_RATE,
 IN_PORTS,        # int64 (channels,): jack_port_t *
 OUT_PORTS,       # int64 (n_out,): mix ports first (channels), then stem ports (stems * channels)
 SCRATCH_IN,      # float32 (block, channels): the period's input, interleaved as the session wants
 SCRATCH_T,       # float32 (channels, block): the same, planar, for the dry delay
 STEM_BUF,        # float32 (stems, channels, block): the active session's stems
 INCOMING_BUF,    # float32 (stems, channels, block): the incoming session's stems (switches)
 DRY_OUT,         # float32 (channels, block)
 STEM_OUT,        # float32 (stems, channels, block): mixer output per stem
 MIX_OUT,         # float32 (channels, block)
 DELAY_RING, DELAY_COLUMNS, DELAY, DELAY_POS,  # float32 (channels, columns), int64 (1,)
 GAIN, MUTE, SOLO, BYPASS,                     # float64 (stems,), bypass (1,)
 CURRENT, TARGET, POWERS, N_POWERS,            # float64 (stems + 1,), (stems + 1,), (n_powers,)
 RMS, PEAK,                                    # float32 (stems,)
 SWITCH_STATE, SLOT_A, SLOT_B,                 # int64 (4,), (SLOT_SIZE,), (SLOT_SIZE,)
 COUNTERS,                                     # float64 (4,): bridge.live_kernels CALLBACKS...
 FIRST_FRAME,                                  # int64 (1,): JACK frame time of the first period, -1
 CLIENT) = range(36)                           # jack_client_t *
TABLE_SIZE = 36

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
def _f32(table: np.ndarray, entry: int, shape: Any) -> np.ndarray:
    return numba.carray(void_pointer(table[entry]), shape, np.float32)


@numba.njit(cache=True)
def _f64(table: np.ndarray, entry: int, n: int) -> np.ndarray:
    return numba.carray(void_pointer(table[entry]), (n,), np.float64)


@numba.njit(cache=True)
def _i64(table: np.ndarray, entry: int, n: int) -> np.ndarray:
    return numba.carray(void_pointer(table[entry]), (n,), np.int64)


@numba.njit(cache=True)
def run_period(table: np.ndarray, nframes: int) -> None:
    """One JACK period of ``nframes`` (in pieces of at most ``table[BLOCK]``)."""
    t0 = _get_time()
    m, n_stems, channels = table[BLOCK], table[STEMS], table[CHANNELS]
    first = _i64(table, FIRST_FRAME, 1)
    if first[0] < 0:
        first[0] = _last_frame_time(table[CLIENT])
    in_ports = _i64(table, IN_PORTS, channels)
    out_ports = _i64(table, OUT_PORTS, table[N_OUT])
    scratch = _f32(table, SCRATCH_IN, (m, channels))
    planar = _f32(table, SCRATCH_T, (channels, m))
    stem_buf = _f32(table, STEM_BUF, (n_stems, channels, m))
    incoming = _f32(table, INCOMING_BUF, (n_stems, channels, m))
    dry = _f32(table, DRY_OUT, (channels, m))
    stem_out = _f32(table, STEM_OUT, (n_stems, channels, m))
    mix_out = _f32(table, MIX_OUT, (channels, m))
    ring = _f32(table, DELAY_RING, (channels, table[DELAY_COLUMNS]))
    delay_pos = _i64(table, DELAY_POS, 1)
    gain, mute, solo = _f64(table, GAIN, n_stems), _f64(table, MUTE, n_stems), _f64(table, SOLO, n_stems)
    bypass = _f64(table, BYPASS, 1)
    current, target = _f64(table, CURRENT, n_stems + 1), _f64(table, TARGET, n_stems + 1)
    powers = _f64(table, POWERS, table[N_POWERS])
    rms = _f32(table, RMS, (n_stems,))
    peak = _f32(table, PEAK, (n_stems,))
    switch = _i64(table, SWITCH_STATE, 4)
    slot_a, slot_b = _i64(table, SLOT_A, SLOT_SIZE), _i64(table, SLOT_B, SLOT_SIZE)
    has_mix = table[HAS_MIX] != 0
    has_stems = table[HAS_STEMS] != 0
    start = 0
    while start < nframes:
        n = min(m, nframes - start)
        for c in range(channels):
            buf = numba.carray(void_pointer(_get_buffer(in_ports[c], nframes)), (nframes,), np.float32)
            for t in range(n):
                v = buf[start + t]
                scratch[t, c] = v
                planar[c, t] = v
        x = scratch[:n]
        stems = stem_buf[:, :, :n]
        run_slot(slot_a, x, stems)
        if switch[PHASE] == FADING:
            inc = incoming[:, :, :n]
            run_slot(slot_b, x, inc)
            if crossfade_kernel(stems, inc, switch):
                for i in range(SLOT_SIZE):
                    slot_a[i] = slot_b[i]
        delay_kernel(planar[:, :n], ring, table[DELAY], delay_pos, dry[:, :n])
        so, mo = stem_out[:, :, :n], mix_out[:, :n]
        mix_kernel(stems, dry[:, :n], so, mo, has_mix, gain, mute, solo, bypass, current, target, powers, rms, peak)
        k = 0
        if has_mix:
            for c in range(channels):
                buf = numba.carray(void_pointer(_get_buffer(out_ports[k], nframes)), (nframes,), np.float32)
                for t in range(n):
                    buf[start + t] = mo[c, t]
                k += 1
        if has_stems:
            for s in range(n_stems):
                for c in range(channels):
                    buf = numba.carray(void_pointer(_get_buffer(out_ports[k], nframes)), (nframes,), np.float32)
                    for t in range(n):
                        buf[start + t] = so[s, c, t]
                    k += 1
        start += n
    elapsed_us = _get_time() - t0
    count_callback(_f64(table, COUNTERS, 4), nframes, elapsed_us * 1e-6 * table[SAMPLE_RATE] / max(1, nframes))


@numba.cfunc(types.int32(types.uint32, types.voidptr), cache=True)
def _process(nframes: int, arg: Any) -> int:
    run_period(numba.carray(arg, (TABLE_SIZE,), np.int64), nframes)
    return 0


# Player table entries (int64): the looping test-signal source (bridge.jack_player).
(P_CHANNELS, P_PORTS, P_AUDIO, P_SAMPLES, P_POSITION, P_GO, P_LOOP, P_START_FRAME, P_CLIENT) = range(9)
PLAYER_TABLE_SIZE = 9


@numba.njit(cache=True)
def play_period(table: np.ndarray, nframes: int) -> None:
    """One period of the player: silence until ``go``, then the audio (looped or once)."""
    channels, total = table[P_CHANNELS], table[P_SAMPLES]
    ports = _i64(table, P_PORTS, channels)
    audio = _f32(table, P_AUDIO, (channels, total))
    position = _i64(table, P_POSITION, 1)
    go = _i64(table, P_GO, 1)[0] != 0
    start_frame = _i64(table, P_START_FRAME, 1)
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


def native_supported(processor: Any) -> str:
    """Why the native callback cannot run ``processor`` ("" when it can)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return f"the native JACK callback relies on x86-64 store ordering (this is {platform.machine()})"
    session = processor.switcher.active
    if not all(hasattr(session, a) for a in ("_in_ring", "_out_ring", "_idx", "_mix_gain", "_wakeup")):
        return f"the active session ({type(session).__name__}) is not an engine RealtimeSession"
    return ""


class NativeProcess:
    """Registers :func:`run_period` as ``client``'s process callback for ``processor``.

    Args:
        processor: a :class:`bridge.live.LiveProcessor` whose sessions are engine
            ``RealtimeSession`` objects (:func:`native_supported`).
        client: the JACK-Client ``Client`` (not yet activated).
        inports / outports: its ports, outputs in table order (mix, then stems x channels).
        has_mix / has_stems: which outputs exist (the routing).
    """

    def __init__(self, processor: Any, client: Any, inports: Sequence[Any], outports: Sequence[Any],
                 has_mix: bool, has_stems: bool) -> None:
        reason = native_supported(processor)
        if reason:
            raise StemstreamError(reason)
        cfg = processor.config
        switcher, mixer, dry, controls = processor.switcher, processor.mixer, processor.dry, processor.controls
        s, c, m = len(processor.stems), cfg.channels, cfg.block_size
        self.keep: list[np.ndarray] = []
        table = np.zeros(TABLE_SIZE, np.int64)

        def put(entry: int, array: np.ndarray) -> None:
            if not array.flags.c_contiguous:
                raise StemstreamError(f"native JACK table entry {entry}: array is not C-contiguous")
            self.keep.append(array)
            table[entry] = array.ctypes.data

        table[BLOCK], table[STEMS], table[CHANNELS] = m, s, c
        table[HAS_MIX], table[HAS_STEMS], table[N_OUT] = int(has_mix), int(has_stems), len(outports)
        table[SAMPLE_RATE] = cfg.sample_rate
        put(IN_PORTS, np.array([raw_pointer(p) for p in inports], np.int64))
        put(OUT_PORTS, np.array([raw_pointer(p) for p in outports] or [0], np.int64))
        for entry, shape in ((SCRATCH_IN, (m, c)), (SCRATCH_T, (c, m)), (STEM_BUF, (s, c, m)),
                             (INCOMING_BUF, (s, c, m)), (DRY_OUT, (c, m)), (STEM_OUT, (s, c, m)),
                             (MIX_OUT, (c, m))):
            put(entry, np.zeros(shape, np.float32))
        put(DELAY_RING, dry.ring)
        table[DELAY_COLUMNS], table[DELAY] = dry.ring.shape[1], dry.delay_samples
        put(DELAY_POS, dry.position)
        put(GAIN, controls.gain)
        put(MUTE, controls.mute)
        put(SOLO, controls.solo)
        put(BYPASS, controls.bypass)
        current, target, powers = mixer.gain_arrays()
        put(CURRENT, current)
        put(TARGET, target)
        put(POWERS, powers)
        table[N_POWERS] = powers.shape[0]
        put(RMS, mixer.rms)
        put(PEAK, mixer.peak_hold)
        put(SWITCH_STATE, switcher.state)
        self.slot_a = session_slot(switcher.active)
        self.slot_b = np.zeros(SLOT_SIZE, np.int64)
        put(SLOT_A, self.slot_a)
        put(SLOT_B, self.slot_b)
        put(COUNTERS, processor.counters)
        self.first_frame = np.full(1, -1, np.int64)
        put(FIRST_FRAME, self.first_frame)
        table[CLIENT] = raw_pointer(client)
        self.table = table
        switcher.incoming_hooks.append(self._publish)
        switcher.native = True
        self.processor = processor
        set_process(client, table)

    def _publish(self, session: Any) -> None:
        """Loader thread: describe the incoming session in slot B (before the fade is flagged)."""
        session_slot(session, self.slot_b)

    @property
    def first_frame_time(self) -> int | None:
        """JACK frame time of the first period (``None`` before it ran)."""
        value = int(self.first_frame[0])
        return None if value < 0 else value

    def detach(self) -> None:
        """Stop publishing switches (after the client is deactivated)."""
        if self._publish in self.processor.switcher.incoming_hooks:
            self.processor.switcher.incoming_hooks.remove(self._publish)
        self.processor.switcher.native = False


__all__ = ["NativeProcess", "PLAYER_TABLE_SIZE", "TABLE_SIZE", "native_supported", "play_period", "run_period", "set_process"]
