"""Streaming sample-rate conversion between the host and the model (``soxr``).

``soxr.ResampleStream`` compensates its filter delay: output sample ``k`` is the input
signal at time ``k / out_rate``; the filter's look-ahead shows up only as samples held back
(``process`` returns fewer samples at first). :class:`StreamResampler` keeps that property
and adds the house interface (``process``/``flush``/``reset``, ``(channels, samples)``).

:func:`alignment_padding` picks how many zero samples to put in front of the model-rate
stream so that a model delay becomes a whole number of samples at *both* rates: the
engine's latency is then exact, not rounded.
"""

from __future__ import annotations

import math

import numpy as np

from stemstream.realtime.errors import bad_value, require

#: Largest rate period (in model samples) for which the engine pads to an exact latency.
MAX_ALIGNMENT_PERIOD = 1024


class StreamResampler:
    """Resample a stream of ``(channels, n)`` float32 blocks from ``in_rate`` to ``out_rate``.

    Args:
        in_rate, out_rate: sample rates in Hz.
        channels: number of channels (rows) in every block.
        quality: soxr quality (``"HQ"``, ``"VHQ"``, ``"MQ"``, ``"LQ"``, ``"QQ"``).

    ``process(block)`` returns the output ready so far (may be shorter than the input times
    the rate ratio, even empty); ``flush()`` returns the rest and resets. Output sample ``k``
    corresponds to input time ``k * in_rate / out_rate`` (no added delay).
    """

    def __init__(self, in_rate: int, out_rate: int, channels: int, quality: str = "HQ") -> None:
        for name, v in (("in_rate", in_rate), ("out_rate", out_rate), ("channels", channels)):
            if not isinstance(v, int) or v < 1:
                raise bad_value(name, v, "a positive integer")
        if quality not in ("QQ", "LQ", "MQ", "HQ", "VHQ"):
            raise bad_value("quality", quality, "one of QQ, LQ, MQ, HQ, VHQ")
        self.in_rate, self.out_rate, self.channels, self.quality = in_rate, out_rate, channels, quality
        self._soxr = require("soxr", "core")
        self._stream = self._new_stream()

    def _new_stream(self):  # noqa: ANN202 - soxr type
        return self._soxr.ResampleStream(self.in_rate, self.out_rate, self.channels, dtype="float32", quality=self.quality)

    def process(self, block: np.ndarray) -> np.ndarray:
        """Resample ``block`` ``(channels, n)``; returns ``(channels, m)`` ready samples."""
        out = self._stream.resample_chunk(np.ascontiguousarray(block.T, dtype=np.float32))
        return np.ascontiguousarray(out.T)

    def flush(self) -> np.ndarray:
        """The samples still held back (end of stream); then :meth:`reset`."""
        out = self._stream.resample_chunk(np.zeros((0, self.channels), np.float32), last=True)
        self.reset()
        return np.ascontiguousarray(out.T)

    def reset(self) -> None:
        """Forget all history: the next block starts a new stream."""
        self._stream = self._new_stream()


def rate_periods(host_rate: int, model_rate: int) -> tuple[int, int]:
    """``(host_period, model_period)``: the smallest spans, in samples at each rate, that
    last exactly the same time (``48000, 44100 -> (160, 147)``)."""
    g = math.gcd(host_rate, model_rate)
    return host_rate // g, model_rate // g


def alignment_padding(model_latency: int, host_rate: int, model_rate: int) -> int:
    """Zero samples (at the model rate) to put in front of the model stream so that
    ``model_latency + padding`` is a whole number of rate periods, i.e. an exact number of
    host samples. 0 when the rates are equal or the period exceeds
    :data:`MAX_ALIGNMENT_PERIOD` (then the latency is rounded to the nearest host sample)."""
    if host_rate == model_rate:
        return 0
    _, model_period = rate_periods(host_rate, model_rate)
    if model_period > MAX_ALIGNMENT_PERIOD:
        return 0
    return (-model_latency) % model_period


def host_latency(model_latency: int, padding: int, host_rate: int, model_rate: int) -> int:
    """Latency in host samples of a model-rate delay of ``model_latency + padding`` samples
    (exact when :func:`alignment_padding` returned a non-zero period fit, else rounded)."""
    return int(round((model_latency + padding) * host_rate / model_rate))
