"""Per-stem mixing for the live path: gain / mute / solo / bypass with click-free ramps,
routing to per-stem outputs and/or a mixed output, and cheap meters.

Everything is preallocated at construction; :meth:`StemMixer.process` runs one numba kernel
(:func:`stemstream.bridge.live.kernels.mix_kernel`, the same one the native JACK callback runs) into
those buffers: no allocation per block, safe to call from an audio callback.

Smoothing: each gain moves toward its target with a one-pole filter of time constant
``ramp_ms``. Within a block the target is constant, so the filter has the closed form
``g[n] = target + (g0 - target) * a**(n + 1)``; the powers ``a**1 .. a**block_size`` are
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

from stemstream.bridge.live.controls import StemControls
from stemstream.bridge.live.kernels import mix_kernel, targets_kernel
from stemstream.realtime.errors import bad_value


@dataclass(frozen=True)
class MixerConfig:
    """Fixed configuration of a :class:`StemMixer`.

    Attributes:
        stems: stem names in the engine's output order.
        channels: audio channels per stem (2: stereo).
        sample_rate: host sample rate in Hz (sets the ramp length in samples).
        block_size: largest block processed in one piece (larger blocks are split), samples.
        ramp_ms: time constant of the gain smoothing, ms.
    """

    stems: tuple[str, ...]
    channels: int = 2
    sample_rate: int = 48000
    block_size: int = 4096
    ramp_ms: float = 10.0

    def __post_init__(self) -> None:
        if not self.stems:
            raise bad_value("stems", self.stems, "at least one stem name")
        if not isinstance(self.channels, int) or self.channels < 1:
            raise bad_value("channels", self.channels, "an int >= 1")
        if not isinstance(self.sample_rate, int) or not 8000 <= self.sample_rate <= 384000:
            raise bad_value("sample_rate", self.sample_rate, "an int in [8000, 384000] Hz")
        if not isinstance(self.block_size, int) or not 1 <= self.block_size <= 1 << 16:
            raise bad_value("block_size", self.block_size, "an int in [1, 65536] samples")
        if not isinstance(self.ramp_ms, (int, float)) or not 0.0 < self.ramp_ms <= 1000.0:
            raise bad_value("ramp_ms", self.ramp_ms, "a number in (0, 1000] ms")

    @property
    def ramp_coefficient(self) -> float:
        """One-pole coefficient ``a`` per sample (``exp(-1 / (ramp_ms * sr / 1000))``)."""
        return math.exp(-1.0 / (self.ramp_ms * 1e-3 * self.sample_rate))


class StemMixer:
    """Applies :class:`~stemstream.bridge.live.controls.StemControls` to separated stems, block by block.

    Meters (post-gain, per stem): :attr:`rms` of the latest block and :attr:`peak_hold`,
    the running maximum of ``|sample|`` since the last :meth:`read_meters`.
    """

    def __init__(self, config: MixerConfig, controls: StemControls | None = None) -> None:
        self.config = config
        self.controls = controls if controls is not None else StemControls(config.stems)
        if self.controls.stems != config.stems:
            raise bad_value("controls.stems", self.controls.stems, f"{config.stems!r} (the mixer's stems)")
        s, c, m = len(config.stems), config.channels, config.block_size
        a = config.ramp_coefficient
        self._powers = a ** np.arange(1, m + 1, dtype=np.float64)
        # Gains: stems 0..S-1, then the dry (bypass) gain at index S.
        self._current = np.zeros(s + 1, dtype=np.float64)
        self._target = np.zeros(s + 1, dtype=np.float64)
        self._work = np.zeros((s, c, m), dtype=np.float32)
        self._no_mix = np.zeros((c, m), dtype=np.float32)
        self.rms = np.zeros(s, dtype=np.float32)
        self.peak_hold = np.zeros(s, dtype=np.float32)
        self.reset()

    def reset(self) -> None:
        """Jump every gain to its current target (no ramp) and clear the meters."""
        self._compute_targets()
        self._current[:] = self._target
        self.rms[:] = 0.0
        self.peak_hold[:] = 0.0

    def gain_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(current, target, powers)``: the arrays :func:`stemstream.bridge.live.kernels.mix_kernel`
        keeps its ramps in (for native hosts that call it themselves)."""
        return self._current, self._target, self._powers

    @property
    def current_gains(self) -> np.ndarray:
        """Smoothed gains now applied: ``(stems + 1,)``, the last one is the dry (bypass) gain."""
        return self._current

    def _compute_targets(self) -> None:
        ctl = self.controls
        targets_kernel(ctl.gain, ctl.mute, ctl.solo, ctl.bypass, self._target)

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
            stop = min(n, start + self.config.block_size)
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
        ctl = self.controls
        out = self._work[:, :, :n] if stem_out is None else stem_out
        mix = self._no_mix[:, :n] if mix_out is None else mix_out
        mix_kernel(stems, dry, out, mix, mix_out is not None, ctl.gain, ctl.mute, ctl.solo, ctl.bypass,
                   self._current, self._target, self._powers, self.rms, self.peak_hold)

    def read_meters(self) -> tuple[np.ndarray, np.ndarray]:
        """Copies of ``(rms, peak_hold)`` per stem (linear, full scale 1.0); resets the hold.

        Called from the telemetry thread; a block finishing concurrently may lose its
        peak to the reset, which only affects one meter frame.
        """
        rms, peak = self.rms.copy(), self.peak_hold.copy()
        self.peak_hold[:] = 0.0
        return rms, peak
