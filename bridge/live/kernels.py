"""The live path's per-block DSP as numba kernels: dry delay, model-switch crossfade, mixer.

One implementation for every audio host: the Python callback (PortAudio through sounddevice,
:class:`stemstream.bridge.live.processor.LiveProcessor`) calls these through :class:`stemstream.bridge.live.delay_line.DelayLine`,
:class:`stemstream.bridge.live.switcher.SessionSwitcher` and :class:`stemstream.bridge.live.mixer.StemMixer`, and the JACK
process callback compiled to native code (:mod:`stemstream.bridge.hosts.jack_native`) calls them directly,
without the GIL. Every kernel works in place on preallocated arrays: no allocation, no Python
object. Shapes: stems ``(stems, channels, n)``, audio ``(channels, n)``, float32; gains float64.
"""

from __future__ import annotations

import math

import numba
import numpy as np

#: Entries of a switch-state array (int64): phase, samples of warm-up left, fade position, fade length.
PHASE, WARMUP_LEFT, FADE_POS, FADE_SAMPLES = range(4)
#: Phases: no switch, new session warming up / fading in, fade finished (the host swaps sessions).
IDLE, FADING, DONE = 0, 1, 2

#: Entries of a live processor's counters array (float64).
CALLBACKS, FRAMES, CPU_LOAD, CPU_LOAD_MAX = range(4)

#: Targets closer than this to the current gain are snapped (ends a ramp exactly).
SNAP = 1e-7


@numba.njit(cache=True)
def count_callback(counters: np.ndarray, frames: int, load: float) -> None:
    """Count one callback of ``frames`` that took ``load`` block periods (smoothed load: a
    one-pole average with weight 0.05, and the maximum)."""
    counters[CALLBACKS] += 1.0
    counters[FRAMES] += frames
    counters[CPU_LOAD] += 0.05 * (load - counters[CPU_LOAD])
    if load > counters[CPU_LOAD_MAX]:
        counters[CPU_LOAD_MAX] = load


@numba.njit(cache=True)
def delay_kernel(block: np.ndarray, ring: np.ndarray, delay: int, pos: np.ndarray, out: np.ndarray) -> None:
    """``out[:, t] = block[:, t - delay]`` across calls; ``ring`` ``(channels, >= delay)``
    holds the last ``delay`` samples, ``pos[0]`` the ring position. ``block`` and ``out``
    ``(channels, n)``, distinct."""
    channels, n = block.shape
    if delay == 0:
        for c in range(channels):
            for t in range(n):
                out[c, t] = block[c, t]
        return
    p = pos[0]
    for t in range(n):
        for c in range(channels):
            v = ring[c, p]
            ring[c, p] = block[c, t]
            out[c, t] = v
        p += 1
        if p == delay:
            p = 0
    pos[0] = p


@numba.njit(cache=True)
def crossfade_kernel(out: np.ndarray, incoming: np.ndarray, state: np.ndarray) -> bool:
    """One block of a model switch: ``out`` (old session's stems) moves toward ``incoming``
    (new session's) linearly over ``state[FADE_SAMPLES]`` samples, after
    ``state[WARMUP_LEFT]`` samples of warm-up in which the new session is not heard.
    Returns True (and sets ``state[PHASE] = DONE``) on the block that completes the fade."""
    n = out.shape[2]
    if state[WARMUP_LEFT] > 0:
        state[WARMUP_LEFT] -= n
        return False
    fade = state[FADE_SAMPLES]
    start = state[FADE_POS]
    inv = np.float32(1.0 / fade)
    for t in range(n):
        w = np.float32(t + 1 + start) * inv
        if w > 1.0:
            w = np.float32(1.0)
        for s in range(out.shape[0]):
            for c in range(out.shape[1]):
                out[s, c, t] = out[s, c, t] + (incoming[s, c, t] - out[s, c, t]) * w
    state[FADE_POS] = start + n
    if start + n >= fade:
        state[PHASE] = DONE
        return True
    return False


@numba.njit(cache=True)
def targets_kernel(gain: np.ndarray, mute: np.ndarray, solo: np.ndarray, bypass: np.ndarray,
                   target: np.ndarray) -> None:
    """Mixer targets ``(stems + 1,)``: ``gain * audible * (1 - bypass)`` per stem, where
    audible = not muted and (soloed, if any stem is), then the dry (bypass) gain."""
    stems = gain.shape[0]
    any_solo = False
    for k in range(stems):
        if solo[k] != 0.0:
            any_solo = True
    wet = 1.0 - bypass[0]
    for k in range(stems):
        audible = 1.0 - mute[k]
        if any_solo:
            audible *= solo[k]
        target[k] = gain[k] * audible * wet
    target[stems] = 1.0 - wet


@numba.njit(cache=True)
def mix_kernel(stems: np.ndarray, dry: np.ndarray, out: np.ndarray, mix_out: np.ndarray, write_mix: bool,
               gain: np.ndarray, mute: np.ndarray, solo: np.ndarray, bypass: np.ndarray,
               current: np.ndarray, target: np.ndarray, powers: np.ndarray,
               rms: np.ndarray, peak: np.ndarray) -> None:
    """Mix one block (``n <= powers.shape[0]``).

    Gains ramp toward their targets (:func:`targets_kernel`) as a one-pole filter,
    ``g[t] = target + (g0 - target) * powers[t]`` with ``powers[t] = a**(t + 1)``;
    ``current`` ``(stems + 1,)`` holds the gains reached (the last is the dry gain). Stem
    ``k`` out = ``stems[k] * g_k + dry * g_dry / stems`` (non-finite dry samples count as 0).
    ``mix_out`` (``(channels, n)``, when ``write_mix``) = sum of the stem outputs. Meters:
    ``rms`` of this block and the running ``peak`` of ``|out|`` per stem.
    """
    n_stems, channels, n = stems.shape
    targets_kernel(gain, mute, solo, bypass, target)
    dry_g0 = current[n_stems] - target[n_stems]
    with_dry = current[n_stems] != 0.0 or target[n_stems] != 0.0
    share = 1.0 / n_stems
    for k in range(n_stems):
        d0 = current[k] - target[k]
        tk = target[k]
        for c in range(channels):
            for t in range(n):
                g = np.float32(tk + d0 * powers[t])
                out[k, c, t] = stems[k, c, t] * g
        if with_dry:
            for c in range(channels):
                for t in range(n):
                    v = dry[c, t]
                    if not math.isfinite(v):
                        v = np.float32(0.0)
                    gd = np.float32((target[n_stems] + dry_g0 * powers[t]) * share)
                    out[k, c, t] += v * gd
    for k in range(n_stems + 1):
        value = target[k] + (current[k] - target[k]) * powers[n - 1] if n > 0 else current[k]
        if abs(value - target[k]) < SNAP:
            value = target[k]
        current[k] = value
    if write_mix:
        for c in range(channels):
            for t in range(n):
                acc = np.float32(0.0)
                for k in range(n_stems):
                    acc += out[k, c, t]
                mix_out[c, t] = acc
    for k in range(n_stems):
        sq = 0.0
        pk = peak[k]
        for c in range(channels):
            for t in range(n):
                v = out[k, c, t]
                sq += v * v
                if abs(v) > pk:
                    pk = abs(v)
        rms[k] = math.sqrt(sq / max(1, channels * n))
        peak[k] = pk


__all__ = [
    "CALLBACKS", "CPU_LOAD", "CPU_LOAD_MAX", "FRAMES", "count_callback", "DONE", "FADE_POS", "FADE_SAMPLES", "FADING", "IDLE", "PHASE", "WARMUP_LEFT",
    "crossfade_kernel", "delay_kernel", "mix_kernel", "targets_kernel",
]
