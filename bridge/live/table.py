"""The one live path: a table of the live arrays and :func:`live_piece`, which every audio callback
runs, Python (``LiveProcessor.process``) and native alike (``stemstream.bridge.hosts.jack_native``,
``stemstream.bridge.hosts.portaudio_native``).

Why native code: with a Python audio callback the audio thread must take the GIL each period, so
any other thread holding it (the inference worker between ONNX Runtime calls, OSC, telemetry, the
garbage collector) can hold the audio up; a 10-minute JACK soak showed bursts of xruns where the
callback waited up to 16 ms while inference itself was fast. Why one function for every host: a
change to the live path is made once, and the Python and native callbacks cannot drift apart.

How: a :class:`LiveTable` (built by the ``LiveProcessor``) writes the address and size of every
array the live path uses into a *table* (an int64 array, layout below), each array obtained from
its owner's public API (the session's ``describe_slot``, the delay line's ``ring`` and
``position``, the mixer's ``gain_arrays``, the controls' arrays, the switcher's ``state``);
:func:`live_piece` (numba, no Python objects, no allocation, no lock) rebuilds views from the
table and runs the kernels: the session's copy-only callback (``stemstream.realtime.engine.native.run_slot``),
the model-switch crossfade, the dry delay and the mixer (``stemstream.bridge.live.kernels``).
Python keeps the control side: OSC and the CLI write mixer targets into the controls' arrays, a
model switch publishes the new session's slot (:meth:`LiveTable.publish`) before flagging the
fade, and counters and meters are arrays Python reads. A host front-end with entries of its own
(ports, clients) copies the table into a longer one (:class:`HostTable`).

Keep-alive: the :class:`LiveTable` owns the table and every array it points to for as long as the
processor lives; sessions are kept alive by the switcher until the audio side has moved off them.
Stores are published in program order (x86-64 keeps them in order, and a Python callback runs
under the GIL; a native callback on a weakly ordered CPU could see a flag before the data it
guards, so :func:`native_supported` refuses them there).
"""

from __future__ import annotations

import platform
from typing import Any

import numba
import numpy as np

from stemstream.bridge.live.kernels import FADING, PHASE, crossfade_kernel, delay_kernel, mix_kernel
from stemstream.realtime.engine.denormals import restore_flush, scoped_flush
from stemstream.realtime.engine.native import run_slot, void_pointer
from stemstream.realtime.engine.slot import SLOT_SIZE
from stemstream.realtime.errors import StemstreamError

# Table entries (int64): sizes, then addresses of arrays (shapes in the comments).
(BLOCK, STEMS, CHANNELS, SAMPLE_RATE,
 SCRATCH_IN,      # float32 (block, channels): input, interleaved as the session wants it
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
 COUNTERS,                                     # float64 (4,): stemstream.bridge.live.kernels CALLBACKS...
 HOST_COUNTERS,                                # int64 (2,): host status flags, host xruns
 ) = range(30)
LIVE_TABLE_SIZE = 30
#: Entries of the host counters array.
STATUS_FLAGS, HOST_XRUNS = range(2)


@numba.njit(cache=True)
def f32_entry(table: np.ndarray, entry: int, shape: Any) -> np.ndarray:
    """The float32 array of ``shape`` at ``table[entry]``."""
    return numba.carray(void_pointer(table[entry]), shape, np.float32)


@numba.njit(cache=True)
def f64_entry(table: np.ndarray, entry: int, n: int) -> np.ndarray:
    """The float64 array of ``n`` at ``table[entry]``."""
    return numba.carray(void_pointer(table[entry]), (n,), np.float64)


@numba.njit(cache=True)
def i64_entry(table: np.ndarray, entry: int, n: int) -> np.ndarray:
    """The int64 array of ``n`` at ``table[entry]``."""
    return numba.carray(void_pointer(table[entry]), (n,), np.int64)


@numba.njit(cache=True)
def live_piece(table: np.ndarray, n: int) -> None:
    """One piece of ``n <= table[BLOCK]`` samples: the input is in ``SCRATCH_IN[:n]`` and
    ``SCRATCH_T[:, :n]`` (filled by the host front-end); the stems land in
    ``STEM_OUT[:, :, :n]`` and the mix in ``MIX_OUT[:, :n]``. Denormals are flushed to zero while
    it runs (the host thread's mode is restored at the end: ``stemstream.realtime.engine.denormals``),
    so a decaying gain ramp or a host's 1e-40 input never reaches slow arithmetic on the audio thread."""
    fp_mode = scoped_flush()
    m, n_stems, channels = table[BLOCK], table[STEMS], table[CHANNELS]
    x = f32_entry(table, SCRATCH_IN, (m, channels))[:n]
    planar = f32_entry(table, SCRATCH_T, (channels, m))[:, :n]
    stems = f32_entry(table, STEM_BUF, (n_stems, channels, m))[:, :, :n]
    slot_a, slot_b = i64_entry(table, SLOT_A, SLOT_SIZE), i64_entry(table, SLOT_B, SLOT_SIZE)
    switch = i64_entry(table, SWITCH_STATE, 4)
    run_slot(slot_a, x, stems)
    if switch[PHASE] == FADING:
        incoming = f32_entry(table, INCOMING_BUF, (n_stems, channels, m))[:, :, :n]
        run_slot(slot_b, x, incoming)
        if crossfade_kernel(stems, incoming, switch):
            for i in range(SLOT_SIZE):  # the audio side moves to the new session here
                slot_a[i] = slot_b[i]
    dry = f32_entry(table, DRY_OUT, (channels, m))[:, :n]
    delay_kernel(planar, f32_entry(table, DELAY_RING, (channels, table[DELAY_COLUMNS])), table[DELAY],
                 i64_entry(table, DELAY_POS, 1), dry)
    mix_kernel(stems, dry, f32_entry(table, STEM_OUT, (n_stems, channels, m))[:, :, :n],
               f32_entry(table, MIX_OUT, (channels, m))[:, :n], True,
               f64_entry(table, GAIN, n_stems), f64_entry(table, MUTE, n_stems), f64_entry(table, SOLO, n_stems),
               f64_entry(table, BYPASS, 1), f64_entry(table, CURRENT, n_stems + 1),
               f64_entry(table, TARGET, n_stems + 1), f64_entry(table, POWERS, table[N_POWERS]),
               f32_entry(table, RMS, (n_stems,)), f32_entry(table, PEAK, (n_stems,)))
    restore_flush(fp_mode)


def native_supported(processor: Any) -> str:
    """Why a native audio callback cannot run ``processor``'s live path here ("" when it can)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return f"the native audio callback relies on x86-64 store ordering (this is {platform.machine()})"
    return ""


def _put(table: np.ndarray, keep: list[np.ndarray], entry: int, array: np.ndarray) -> np.ndarray:
    """``table[entry]`` = the address of ``array``, kept alive in ``keep``; returns ``array``."""
    if not array.flags.c_contiguous:
        raise StemstreamError(f"table entry {entry}: array is not C-contiguous")
    keep.append(array)
    table[entry] = array.ctypes.data
    return array


class LiveTable:
    """The table of ``processor``'s live arrays (see the module docstring).

    Args:
        processor: a :class:`stemstream.bridge.live.processor.LiveProcessor` whose sessions describe
            their callback arrays (``describe_slot``, as ``RealtimeSession`` does).

    Attributes:
        table: the int64 table :func:`live_piece` runs on.
        scratch_in / scratch_t / stem_out / mix_out: the piece's input (interleaved and planar)
            and outputs, for a Python callback to fill and read.
    """

    def __init__(self, processor: Any) -> None:
        cfg = processor.config
        switcher, mixer, dry, controls = processor.switcher, processor.mixer, processor.dry, processor.controls
        if not callable(getattr(switcher.active, "describe_slot", None)):
            raise StemstreamError(f"the live path runs engine sessions; {type(switcher.active).__name__} does not "
                                  "describe its callback arrays (describe_slot)")
        s, c, m = len(processor.stems), cfg.channels, cfg.block_size
        self.keep: list[np.ndarray] = []
        self.table = np.zeros(LIVE_TABLE_SIZE, np.int64)
        t = self.table
        t[BLOCK], t[STEMS], t[CHANNELS], t[SAMPLE_RATE] = m, s, c, cfg.sample_rate
        self.scratch_in = self.put(SCRATCH_IN, np.zeros((m, c), np.float32))
        self.scratch_t = self.put(SCRATCH_T, np.zeros((c, m), np.float32))
        self.put(STEM_BUF, np.zeros((s, c, m), np.float32))
        self.put(INCOMING_BUF, np.zeros((s, c, m), np.float32))
        self.put(DRY_OUT, np.zeros((c, m), np.float32))
        self.stem_out = self.put(STEM_OUT, np.zeros((s, c, m), np.float32))
        self.mix_out = self.put(MIX_OUT, np.zeros((c, m), np.float32))
        self.put(DELAY_RING, dry.ring)
        t[DELAY_COLUMNS], t[DELAY] = dry.ring.shape[1], dry.delay_samples
        self.put(DELAY_POS, dry.position)
        for entry, array in ((GAIN, controls.gain), (MUTE, controls.mute), (SOLO, controls.solo),
                             (BYPASS, controls.bypass)):
            self.put(entry, array)
        current, target, powers = mixer.gain_arrays()
        self.put(CURRENT, current)
        self.put(TARGET, target)
        self.put(POWERS, powers)
        t[N_POWERS] = powers.shape[0]
        self.put(RMS, mixer.rms)
        self.put(PEAK, mixer.peak_hold)
        self.put(SWITCH_STATE, switcher.state)
        self.slot_a = self.put(SLOT_A, switcher.active.describe_slot())
        self.slot_b = self.put(SLOT_B, np.zeros(SLOT_SIZE, np.int64))
        self.put(COUNTERS, processor.counters)
        self.put(HOST_COUNTERS, processor.host_counters)
        switcher.incoming_hooks.append(self.publish)

    def put(self, entry: int, array: np.ndarray) -> np.ndarray:
        """Point ``table[entry]`` at ``array`` (C-contiguous; kept alive with the table); returns it."""
        return _put(self.table, self.keep, entry, array)

    def publish(self, session: Any) -> None:
        """Loader thread: describe the incoming session in slot B (before the fade is flagged)."""
        session.describe_slot(self.slot_b)


class HostTable:
    """A host front-end's table: the processor's :class:`LiveTable` entries, then ``extra`` of its own.

    Args:
        processor: the :class:`stemstream.bridge.live.processor.LiveProcessor` to run
            (:func:`native_supported`).
        extra: number of host-specific entries after :data:`LIVE_TABLE_SIZE`.
    """

    def __init__(self, processor: Any, extra: int = 0) -> None:
        reason = native_supported(processor)
        if reason:
            raise StemstreamError(reason)
        self.processor = processor
        self.keep: list[np.ndarray] = []
        self.table = np.zeros(LIVE_TABLE_SIZE + extra, np.int64)
        self.table[:LIVE_TABLE_SIZE] = processor.live.table  # the same arrays, kept by the processor

    def put(self, entry: int, array: np.ndarray) -> np.ndarray:
        """Point host entry ``table[entry]`` at ``array`` (C-contiguous; kept alive with the table)."""
        return _put(self.table, self.keep, entry, array)


__all__ = [
    "HOST_XRUNS", "HostTable", "LIVE_TABLE_SIZE", "LiveTable", "STATUS_FLAGS", "f32_entry", "f64_entry",
    "i64_entry", "live_piece", "native_supported",
]
