"""The real-time session's audio-callback kernel: copy-only, allocation-free, one numba function.

``RealtimeSession.callback`` runs it from Python; ``stemstream.realtime.engine.native.run_slot``
runs it from a slot (native audio threads and the one live path). It copies the block into the
input ring, wakes the worker, and copies separated stems out of the output ring, falling back to the
mix with short fades when the worker is late (see ``stemstream.realtime.engine.session``).
"""

from __future__ import annotations

import numba
import numpy as np

from stemstream.realtime.engine.denormals import restore_flush, scoped_flush
from stemstream.realtime.engine.ringbuffer import copy_in
from stemstream.realtime.engine.wakeup import signal_eventfd

# Slots of the shared int64 position/counter array (_WAKE holds the constant 1 the callback
# writes to the worker's eventfd).
_FRAMES, _OUT_START, _OUT_END, _MODE, _MISSES, _NONFINITE, _BLOCKS, _WAKE = range(8)


@numba.njit(cache=True)
def _callback_kernel(
    indata: np.ndarray,
    out: np.ndarray,
    in_ring: np.ndarray,
    out_ring: np.ndarray,
    idx: np.ndarray,
    mix_gain: np.ndarray,
    delay: int,
    fade: int,
    wake_fd: int,
) -> None:
    fp_mode = scoped_flush()
    frames = indata.shape[0]
    pos = idx[_FRAMES]
    idx[_NONFINITE] += copy_in(indata, in_ring, pos)
    idx[_FRAMES] = pos + frames
    end = pos + frames
    avail_end = idx[_OUT_END]  # read the end first: the worker moves the start first
    avail_start = idx[_OUT_START]
    ready = avail_start <= pos and avail_end >= end + fade
    mode = idx[_MODE]
    # weight of the separated signal: 1 before `cut`, ramp down over [cut - fade, cut), 0 after;
    # or ramp up over [0, fade) when fading in.
    fade_in = False
    cut = frames + fade  # no fade-out inside this block
    if mode == 1:
        if not ready:
            cut = min(avail_end, end) - pos  # >= fade: the previous block checked it
            if cut < fade:
                cut = fade
            idx[_MODE] = 0
            idx[_MISSES] += 1
    else:
        if ready:
            fade_in = True
            idx[_MODE] = 1
        else:
            cut = 0
            idx[_MISSES] += 1
    imask = in_ring.shape[1] - 1
    omask = out_ring.shape[2] - 1
    stems = out.shape[0]
    channels = out.shape[1]
    for t in range(frames):
        if fade_in:
            w = (t + 1.0) / (fade + 1.0) if t < fade else 1.0
        elif t >= cut:
            w = 0.0
        elif t >= cut - fade:
            w = (cut - t) / (fade + 1.0)
        else:
            w = 1.0
        islot = (pos + t - delay) & imask
        oslot = (pos + t) & omask
        for c in range(channels):
            mix = in_ring[c, islot] if pos + t >= delay else 0.0
            for s in range(stems):
                if w == 1.0:
                    out[s, c, t] = out_ring[s, c, oslot]
                elif w == 0.0:
                    out[s, c, t] = mix_gain[s] * mix
                else:
                    out[s, c, t] = w * out_ring[s, c, oslot] + (1.0 - w) * mix_gain[s] * mix
    idx[_BLOCKS] += 1
    restore_flush(fp_mode)
    if wake_fd >= 0:  # wake the worker: one write(2), no Python object, the GIL stays held
        signal_eventfd(wake_fd, idx[_WAKE:].ctypes.data)
