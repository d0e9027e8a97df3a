"""A preallocated multichannel delay line (aligns the dry input with the separated stems)."""

from __future__ import annotations

import numpy as np

from stemstream.bridge.live.kernels import delay_kernel
from stemstream.realtime.errors import bad_value


class DelayLine:
    """Delays ``(channels, n)`` blocks by a fixed number of samples; starts with silence.

    ``process`` writes into a caller-given buffer and allocates nothing (one numba kernel,
    :func:`stemstream.bridge.live.kernels.delay_kernel`), so it may run in an audio callback. Any block length works (blocks longer than the delay included).
    """

    def __init__(self, channels: int, delay_samples: int) -> None:
        if not isinstance(channels, int) or channels < 1:
            raise bad_value("channels", channels, "an int >= 1")
        if not isinstance(delay_samples, int) or delay_samples < 0:
            raise bad_value("delay_samples", delay_samples, "an int >= 0 (samples)")
        self.channels = channels
        self.delay_samples = delay_samples
        self._ring = np.zeros((channels, max(1, delay_samples)), dtype=np.float32)
        self._pos = np.zeros(1, dtype=np.int64)

    @property
    def latency_samples(self) -> int:
        """The delay, in samples."""
        return self.delay_samples

    @property
    def ring(self) -> np.ndarray:
        """The ring of past samples, ``(channels, max(1, delay))`` float32 (for native hosts)."""
        return self._ring

    @property
    def position(self) -> np.ndarray:
        """The ring position, an int64 array of one entry (for native hosts)."""
        return self._pos

    def reset(self) -> None:
        """Back to silence."""
        self._ring[:] = 0.0
        self._pos[0] = 0

    def process(self, block: np.ndarray, out: np.ndarray) -> None:
        """``out[:, t] = block[:, t - delay]`` (older samples from earlier blocks).

        Args:
            block: input ``(channels, n)`` float32.
            out: output ``(channels, n)`` float32, distinct from ``block``.
        """
        delay_kernel(block, self._ring, self.delay_samples, self._pos, out)
