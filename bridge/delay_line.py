"""A preallocated multichannel delay line (aligns the dry input with the separated stems)."""

from __future__ import annotations

import numpy as np

from realtime.errors import bad_value


class DelayLine:
    """Delays ``(channels, n)`` blocks by a fixed number of samples; starts with silence.

    ``process`` writes into a caller-given buffer and allocates nothing, so it may run in an
    audio callback. Any block length works (blocks longer than the delay included).
    """

    def __init__(self, channels: int, delay_samples: int) -> None:
        if not isinstance(channels, int) or channels < 1:
            raise bad_value("channels", channels, "an int >= 1")
        if not isinstance(delay_samples, int) or delay_samples < 0:
            raise bad_value("delay_samples", delay_samples, "an int >= 0 (samples)")
        self.channels = channels
        self.delay_samples = delay_samples
        self._ring = np.zeros((channels, max(1, delay_samples)), dtype=np.float32)
        self._pos = 0

    @property
    def latency_samples(self) -> int:
        """The delay, in samples."""
        return self.delay_samples

    def reset(self) -> None:
        """Back to silence."""
        self._ring[:] = 0.0
        self._pos = 0

    def process(self, block: np.ndarray, out: np.ndarray) -> None:
        """``out[:, t] = block[:, t - delay]`` (older samples from earlier blocks).

        Args:
            block: input ``(channels, n)`` float32.
            out: output ``(channels, n)`` float32, distinct from ``block``.
        """
        d = self.delay_samples
        n = block.shape[-1]
        if d == 0:
            np.copyto(out, block)
            return
        if n >= d:
            # Whole ring goes out first, then the start of this block; ring keeps the tail.
            self._read(out[:, :d], d)
            np.copyto(out[:, d:], block[:, : n - d])
            self._ring[:, :] = block[:, n - d :]
            self._pos = 0
            return
        self._read(out, n)
        self._write(block)

    def _read(self, out: np.ndarray, n: int) -> None:
        d, p = self.delay_samples, self._pos
        first = min(n, d - p)
        np.copyto(out[:, :first], self._ring[:, p : p + first])
        if first < n:
            np.copyto(out[:, first:n], self._ring[:, : n - first])

    def _write(self, block: np.ndarray) -> None:
        d, p, n = self.delay_samples, self._pos, block.shape[-1]
        first = min(n, d - p)
        np.copyto(self._ring[:, p : p + first], block[:, :first])
        if first < n:
            np.copyto(self._ring[:, : n - first], block[:, first:])
        self._pos = (p + n) % d
