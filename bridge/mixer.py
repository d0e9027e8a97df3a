"""Per-stem mixing for the live path: gain / mute / solo / bypass with click-free ramps,
routing to per-stem outputs and/or a mixed output, and cheap meters.

Everything is preallocated at construction; :meth:`StemMixer.process` only runs numpy
ufuncs with ``out=`` into those buffers (no array allocation per block), so it is safe to
call from an audio callback.

Smoothing: each gain moves toward its target with a one-pole filter of time constant
``ramp_ms``. Within a block the target is constant, so the filter has the closed form
``g[n] = target + (g0 - target) * a**(n + 1)``; the powers ``a**1 .. a**max_block`` are
precomputed, which makes the per-sample ramp a single vectorised multiply-add. The largest
step of a gain between two samples is ``(1 - a) * |g0 - target|``, so a full-scale change
(0 -> 1) moves at most ``1 - a`` (about 1/480 at 48 kHz, 10 ms) per sample.

Bypass: the dry input mix, delayed by the engine's latency so it lines up with the stems,
fades in while the stems fade out. On the per-stem outputs each stem carries ``1/stems`` of
the dry mix during bypass, so a downstream mixer summing the stem outputs still hears the
full mix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bridge.controls import StemControls
from realtime.errors import bad_value

#: Targets closer than this to the current gain are snapped (ends a ramp exactly).
_SNAP = 1e-7


@dataclass(frozen=True)
class MixerConfig:
    """Fixed configuration of a :class:`StemMixer`.

    Attributes:
        stems: stem names in the engine's output order.
        channels: audio channels per stem (2: stereo).
        sample_rate: host sample rate in Hz (sets the ramp length in samples).
        max_block: largest block processed in one piece (larger blocks are split), samples.
        ramp_ms: time constant of the gain smoothing, ms.
    """

    stems: tuple[str, ...]
    channels: int = 2
    sample_rate: int = 48000
    max_block: int = 4096
    ramp_ms: float = 10.0

    def __post_init__(self) -> None:
        if not self.stems:
            raise bad_value("stems", self.stems, "at least one stem name")
        if not isinstance(self.channels, int) or self.channels < 1:
            raise bad_value("channels", self.channels, "an int >= 1")
        if not isinstance(self.sample_rate, int) or not 8000 <= self.sample_rate <= 384000:
            raise bad_value("sample_rate", self.sample_rate, "an int in [8000, 384000] Hz")
        if not isinstance(self.max_block, int) or not 1 <= self.max_block <= 1 << 16:
            raise bad_value("max_block", self.max_block, "an int in [1, 65536] samples")
        if not isinstance(self.ramp_ms, (int, float)) or not 0.0 < self.ramp_ms <= 1000.0:
            raise bad_value("ramp_ms", self.ramp_ms, "a number in (0, 1000] ms")

    @property
    def ramp_coefficient(self) -> float:
        """One-pole coefficient ``a`` per sample (``exp(-1 / (ramp_ms * sr / 1000))``)."""
        return math.exp(-1.0 / (self.ramp_ms * 1e-3 * self.sample_rate))


class StemMixer:
    """Applies :class:`~bridge.controls.StemControls` to separated stems, block by block.

    Meters (post-gain, per stem): :attr:`rms` of the latest block and :attr:`peak_hold`,
    the running maximum of ``|sample|`` since the last :meth:`read_meters`.
    """

    def __init__(self, config: MixerConfig, controls: StemControls | None = None) -> None:
        self.config = config
        self.controls = controls if controls is not None else StemControls(config.stems)
        if self.controls.stems != config.stems:
            raise bad_value("controls.stems", self.controls.stems, f"{config.stems!r} (the mixer's stems)")
        s, c, m = len(config.stems), config.channels, config.max_block
        a = config.ramp_coefficient
        self._powers = a ** np.arange(1, m + 1, dtype=np.float64)
        # Gains: stems 0..S-1, then the dry (bypass) gain at index S.
        self._current = np.zeros(s + 1, dtype=np.float64)
        self._target = np.zeros(s + 1, dtype=np.float64)
        self._audible = np.zeros(s, dtype=np.float64)
        self._diff = np.zeros(s + 1, dtype=np.float64)
        self._snap = np.zeros(s + 1, dtype=bool)
        self._curves64 = np.zeros((s + 1, m), dtype=np.float64)
        self._curves = np.zeros((s + 1, m), dtype=np.float32)
        self._dry_share = np.zeros(m, dtype=np.float32)
        self._work = np.zeros((s, c, m), dtype=np.float32)
        self._tmp = np.zeros((c, m), dtype=np.float32)
        self._sq = np.zeros((s, c, m), dtype=np.float32)
        self._ms = np.zeros(s, dtype=np.float32)
        self._pk = np.zeros(s, dtype=np.float32)
        self.rms = np.zeros(s, dtype=np.float32)
        self.peak_hold = np.zeros(s, dtype=np.float32)
        self.reset()

    def reset(self) -> None:
        """Jump every gain to its current target (no ramp) and clear the meters."""
        self._compute_targets()
        self._current[:] = self._target
        self.rms[:] = 0.0
        self.peak_hold[:] = 0.0

    @property
    def current_gains(self) -> np.ndarray:
        """Smoothed gains now applied: ``(stems + 1,)``, the last one is the dry (bypass) gain."""
        return self._current

    def _compute_targets(self) -> None:
        ctl = self.controls
        s = len(self.config.stems)
        # audible = (1 - mute) * (solo if any solo else 1)
        np.subtract(1.0, ctl.mute, out=self._audible)
        if ctl.solo.any():
            np.multiply(self._audible, ctl.solo, out=self._audible)
        wet = 1.0 - float(ctl.bypass[0])
        np.multiply(ctl.gain, self._audible, out=self._target[:s])
        np.multiply(self._target[:s], wet, out=self._target[:s])
        self._target[s] = 1.0 - wet

    def process(
        self,
        stems: np.ndarray,
        dry: np.ndarray,
        stem_out: np.ndarray | None = None,
        mix_out: np.ndarray | None = None,
    ) -> None:
        """Mix one block.

        Args:
            stems: separated stems ``(stems, channels, n)`` float32, aligned with ``dry``.
            dry: the input mix delayed by the engine latency, ``(channels, n)`` float32.
            stem_out: where per-stem outputs go, ``(stems, channels, n)``, or ``None``.
            mix_out: where the mixed output goes, ``(channels, n)``, or ``None``.
        """
        n = stems.shape[-1]
        start = 0
        while start < n:
            stop = min(n, start + self.config.max_block)
            self._process_piece(
                stems[..., start:stop],
                dry[..., start:stop],
                None if stem_out is None else stem_out[..., start:stop],
                None if mix_out is None else mix_out[..., start:stop],
            )
            start = stop

    def _process_piece(
        self,
        stems: np.ndarray,
        dry: np.ndarray,
        stem_out: np.ndarray | None,
        mix_out: np.ndarray | None,
    ) -> None:
        n = stems.shape[-1]
        if n == 0:
            return
        s = len(self.config.stems)
        self._compute_targets()
        cur, tgt, c64 = self._current, self._target, self._curves64[:, :n]
        # curves = target + (current - target) * a**(1..n)
        np.subtract(cur, tgt, out=self._diff)
        powers = self._powers[:n]
        for k in range(s + 1):
            np.multiply(powers, float(self._diff[k]), out=c64[k])
            np.add(c64[k], float(tgt[k]), out=c64[k])
        np.copyto(cur, c64[:, n - 1])
        np.subtract(cur, tgt, out=self._diff)
        np.abs(self._diff, out=self._diff)
        np.less(self._diff, _SNAP, out=self._snap)
        np.copyto(cur, tgt, where=self._snap)
        curves = self._curves[:, :n]
        np.copyto(curves, c64, casting="same_kind")
        out = self._work[:, :, :n] if stem_out is None else stem_out
        channels = self.config.channels
        # 1-D ufuncs per (stem, channel): broadcasting 3-D operands makes numpy buffer
        # (allocate) internally, 1-D contiguous operands do not.
        for k in range(s):
            for ch in range(channels):
                np.multiply(stems[k, ch], curves[k], out=out[k, ch])
        if cur[s] != 0.0 or curves[s, 0] != 0.0:
            share = self._dry_share[:n]
            np.multiply(curves[s], 1.0 / s, out=share)
            for ch in range(channels):
                np.multiply(dry[ch], share, out=self._tmp[ch, :n])
                for k in range(s):
                    np.add(out[k, ch], self._tmp[ch, :n], out=out[k, ch])
        if mix_out is not None:
            np.sum(out, axis=0, out=mix_out)
        self._meter(out)

    def _meter(self, out: np.ndarray) -> None:
        n = out.shape[-1]
        sq = self._sq[:, :, :n]
        np.multiply(out, out, out=sq)
        np.mean(sq, axis=(1, 2), out=self._ms)
        np.sqrt(self._ms, out=self.rms)
        np.abs(out, out=sq)
        np.max(sq, axis=(1, 2), out=self._pk)
        np.maximum(self.peak_hold, self._pk, out=self.peak_hold)

    def read_meters(self) -> tuple[np.ndarray, np.ndarray]:
        """Copies of ``(rms, peak_hold)`` per stem (linear, full scale 1.0); resets the hold.

        Called from the telemetry thread; a block finishing concurrently may lose its
        peak to the reset, which only affects one meter frame.
        """
        rms, peak = self.rms.copy(), self.peak_hold.copy()
        self.peak_hold[:] = 0.0
        return rms, peak
