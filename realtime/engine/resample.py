"""Low-delay streaming sample-rate conversion between the host and the model.

A polyphase windowed-sinc interpolator (Kaiser window) whose kernel spans only a few
samples, so that a 48 kHz or 96 kHz host pays well under a millisecond for the two
conversions (host -> model -> host) instead of the ~19 ms per side of a high-quality
offline resampler. The filter is linear phase and its delay is *compensated*: output sample
``k`` is the input signal at input time ``(k * down + offset) / up`` samples, where
``up / down`` is the reduced rate ratio; the kernel's look-ahead shows up only as input
samples held back (:attr:`StreamResampler.holdback_samples`), so latency is counted exactly.

``offset`` (a whole number of ``1 / up`` input samples) shifts the output grid. The engine
uses it to make a model delay that is not a whole number of host samples land on a host
sample exactly, instead of padding the model stream by up to one rate period.

Quality is set by the kernel's half-width in samples of the *lower* rate: ``LD`` (16, the
default: 0.36 ms per conversion at 44.1 kHz) or ``HQ`` (64). The pass band ends at 85 % / 93 %
of the lower Nyquist frequency; ``bench hostrates`` measures what that costs in SI-SDR.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numba
import numpy as np

from stemstream.realtime.errors import bad_value


@dataclass(frozen=True)
class ResamplerQuality:
    """A kernel: ``half_width`` samples of the lower rate each side, the pass band's end as a
    fraction of the lower Nyquist frequency, and the Kaiser window's ``beta``."""

    half_width: int
    passband: float
    beta: float


QUALITIES: dict[str, ResamplerQuality] = {
    "LD": ResamplerQuality(half_width=16, passband=0.85, beta=7.0),
    "HQ": ResamplerQuality(half_width=64, passband=0.93, beta=9.0),
}

#: Rate periods (``up``) up to this many phases get a precomputed table; longer ones
#: (unusual rate pairs such as 44100 <-> 44099) compute their kernel rows per block.
MAX_TABLE_PHASES = 4096


class StreamResampler:
    """Resample a stream of ``(channels, n)`` float32 blocks from ``in_rate`` to ``out_rate``.

    Args:
        in_rate, out_rate: sample rates in Hz.
        channels: number of channels (rows) in every block.
        quality: ``LD`` (low delay, default) or ``HQ`` (see :data:`QUALITIES`).
        offset: shift of the output grid in input samples, a multiple of ``1 / up`` where
            ``up = out_rate / gcd(in_rate, out_rate)``; negative reads earlier input.

    ``process(block)`` returns the output ready so far (may be shorter than the input times the
    rate ratio, even empty); ``flush()`` returns the outputs up to the end of the input (the
    held-back tail, zero-padded) and resets. Chunked output equals one-shot output exactly.
    """

    def __init__(
        self, in_rate: int, out_rate: int, channels: int, quality: str = "LD", offset: Fraction | int = 0
    ) -> None:
        for name, v in (("in_rate", in_rate), ("out_rate", out_rate), ("channels", channels)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise bad_value(name, v, "a positive integer")
        if quality not in QUALITIES:
            raise bad_value("quality", quality, f"one of {', '.join(QUALITIES)}")
        g = math.gcd(in_rate, out_rate)
        self.in_rate, self.out_rate, self.channels, self.quality = in_rate, out_rate, channels, quality
        self.up, self.down = out_rate // g, in_rate // g
        offset_num = Fraction(offset) * self.up
        if offset_num.denominator != 1:
            raise bad_value("offset", offset, f"a multiple of 1/{self.up} input samples")
        self.offset = Fraction(offset)
        self._offset_num = int(offset_num)
        q = QUALITIES[quality]
        stretch = max(1.0, in_rate / out_rate)  # downsampling: the kernel widens in input samples
        self.holdback_samples = int(math.ceil(q.half_width * stretch))
        self._cutoff = q.passband * min(1.0, out_rate / in_rate)  # fraction of the input Nyquist
        self._beta = q.beta
        self._taps = np.arange(-self.holdback_samples + 1, self.holdback_samples + 1)
        self._table = self._kernel(np.arange(self.up)) if self.up <= MAX_TABLE_PHASES else None
        first = min(0, self._offset_num // self.up)  # earliest input index the first output reads
        self._zeros_before = self.holdback_samples - first
        self.reset()

    # -- kernel --------------------------------------------------------------------------
    def _kernel(self, phases: np.ndarray) -> np.ndarray:
        """Kernel rows ``(len(phases), taps)`` for output positions ``phase / up`` past an input
        sample; each row sums to 1 (DC passes exactly)."""
        tau = phases[:, None] / self.up - self._taps[None, :]  # distance from each tap, input samples
        half = float(self.holdback_samples)
        window = np.i0(self._beta * np.sqrt(np.clip(1.0 - (tau / half) ** 2, 0.0, None))) / np.i0(self._beta)
        rows = self._cutoff * np.sinc(self._cutoff * tau) * window
        rows /= rows.sum(axis=1, keepdims=True)
        return rows.astype(np.float32)

    @property
    def delay_ms(self) -> float:
        """Time the converter holds input back before its output is ready, in milliseconds."""
        return 1000.0 * self.holdback_samples / self.in_rate

    # -- streaming -----------------------------------------------------------------------
    def _ready_until(self, inputs: int) -> int:
        """Number of outputs (from the start) computable from ``inputs`` input samples."""
        # output k reads input up to floor((k*down + off) / up) + holdback, which must be < inputs
        last = ((inputs - self.holdback_samples) * self.up - 1 - self._offset_num) // self.down
        return max(0, last + 1)

    def process(self, block: np.ndarray) -> np.ndarray:
        """Resample ``block`` ``(channels, n)``; returns ``(channels, m)`` ready samples."""
        block = np.asarray(block, dtype=np.float32)
        if block.ndim != 2 or block.shape[0] != self.channels:
            raise bad_value("block.shape", block.shape, f"({self.channels}, samples)")
        self._buf = np.concatenate([self._buf, block], axis=1) if block.shape[1] else self._buf
        self._inputs += block.shape[1]
        end = self._ready_until(self._inputs)
        if end <= self._next:
            return np.zeros((self.channels, 0), np.float32)
        ks = np.arange(self._next, end, dtype=np.int64)
        nums = ks * self.down + self._offset_num
        base, phase = nums // self.up, nums % self.up
        starts = base - self._buf_start + int(self._taps[0])
        out = np.empty((self.channels, ks.size), np.float32)
        if self._table is not None:
            _interpolate(self._buf, starts, phase, self._table, out)
        else:
            _interpolate(self._buf, starts, np.arange(ks.size), self._kernel(phase), out)
        self._next = end
        # keep only what the next output can still read
        keep_from = (self._next * self.down + self._offset_num) // self.up - self.holdback_samples + 1
        drop = keep_from - self._buf_start
        if drop > 0:
            self._buf = self._buf[:, drop:]
            self._buf_start += drop
        return np.ascontiguousarray(out)

    def flush(self) -> np.ndarray:
        """The outputs up to the end of the input (times ``< inputs``), then :meth:`reset`."""
        total = -((self._offset_num - self._inputs * self.up) // self.down)  # ceil((inputs*up - off) / down)
        done = self._next
        tail = self.process(np.zeros((self.channels, self.holdback_samples), np.float32))
        out = tail[:, : max(0, total - done)]
        self.reset()
        return np.ascontiguousarray(out)

    def reset(self) -> None:
        """Forget all history: the next block starts a new stream."""
        self._buf = np.zeros((self.channels, self._zeros_before), np.float32)
        self._buf_start = -self._zeros_before
        self._inputs = 0
        self._next = 0


@numba.njit(cache=True, nogil=True)
def _interpolate(buf: np.ndarray, starts: np.ndarray, rows: np.ndarray, table: np.ndarray, out: np.ndarray) -> None:
    """``out[c, m] = sum_t buf[c, starts[m] + t] * table[rows[m], t]`` (float32, no allocation)."""
    taps = table.shape[1]
    for m in range(starts.size):
        s, r = starts[m], rows[m]
        for c in range(buf.shape[0]):
            acc = np.float32(0.0)
            for t in range(taps):
                acc += buf[c, s + t] * table[r, t]
            out[c, m] = acc


def rate_periods(host_rate: int, model_rate: int) -> tuple[int, int]:
    """``(host_period, model_period)``: the smallest spans, in samples at each rate, that
    last exactly the same time (``48000, 44100 -> (160, 147)``)."""
    g = math.gcd(host_rate, model_rate)
    return host_rate // g, model_rate // g


def host_latency(model_latency: int, host_rate: int, model_rate: int) -> int:
    """A model delay of ``model_latency`` model samples, in host samples, rounded up: the
    engine shifts the output converter's grid (:func:`output_offset`) so that it is exact."""
    host_period, model_period = rate_periods(host_rate, model_rate)
    return -((-model_latency * host_period) // model_period)


def output_offset(model_latency: int, host_rate: int, model_rate: int) -> Fraction:
    """Offset (in model samples) of the model -> host converter that makes the total delay
    exactly :func:`host_latency` host samples (between ``-1`` host sample and 0)."""
    host_period, model_period = rate_periods(host_rate, model_rate)
    n = host_latency(model_latency, host_rate, model_rate)
    return Fraction(host_period * model_latency - model_period * n, host_period)
