"""Preallocated single-producer / single-consumer sample rings, addressed by absolute position.

A ring holds the last ``capacity`` (a power of two) samples of a stream whose samples are
numbered from 0; sample ``p`` lives in slot ``p & (capacity - 1)``. Positions, not read /
write pointers, are what producer and consumer exchange (as int64 entries of a shared array),
so the side that writes a position publishes it *after* the data and nobody ever waits on a
lock. Overwrite protection is the users' job: they size the ring and check positions.

Two kinds of access:

* ``write`` / ``read`` - numpy, used on the worker thread (may allocate).
* :func:`copy_in` / :func:`copy_out` - numba kernels used from the audio callback: no
  allocation, no Python objects, no locks.
"""

from __future__ import annotations

import numba
import numpy as np

from stemstream.realtime.errors import bad_value


def next_pow2(n: int) -> int:
    """Smallest power of two >= ``max(n, 1)``."""
    return 1 << max(0, int(n) - 1).bit_length()


class SampleRing:
    """A ``(*shape, capacity)`` float32 ring of the latest ``capacity`` samples of a stream.

    Args:
        shape: leading dimensions, e.g. ``(channels,)`` or ``(stems, channels)``.
        capacity: at least this many samples; rounded up to a power of two.
    """

    def __init__(self, shape: tuple[int, ...], capacity: int) -> None:
        if not isinstance(capacity, int) or capacity < 1:
            raise bad_value("capacity", capacity, "a positive integer")
        self.capacity = next_pow2(capacity)
        self.mask = self.capacity - 1
        self.data = np.zeros((*shape, self.capacity), np.float32)

    def write(self, position: int, block: np.ndarray) -> None:
        """Store ``block`` ``(*shape, n)`` (n <= capacity) as samples ``position .. position+n-1``."""
        n = block.shape[-1]
        if n > self.capacity:
            raise bad_value("block samples", n, f"at most capacity={self.capacity}")
        start = position & self.mask
        first = min(n, self.capacity - start)
        self.data[..., start : start + first] = block[..., :first]
        if first < n:
            self.data[..., : n - first] = block[..., first:]

    def read(self, position: int, n: int) -> np.ndarray:
        """Copy of samples ``position .. position+n-1``, ``(*shape, n)``."""
        if n > self.capacity:
            raise bad_value("n", n, f"at most capacity={self.capacity}")
        start = position & self.mask
        first = min(n, self.capacity - start)
        if first == n:
            return self.data[..., start : start + n].copy()
        return np.concatenate([self.data[..., start:], self.data[..., : n - first]], axis=-1)

    def clear(self) -> None:
        """Zero every slot."""
        self.data[...] = 0.0


@numba.njit(cache=True)
def copy_in(indata: np.ndarray, ring: np.ndarray, position: int) -> int:
    """Copy ``indata`` ``(frames, channels)`` into ``ring`` ``(channels, capacity)`` as samples
    ``position ..``; NaN/Inf become 0. Returns how many were replaced. No allocation."""
    mask = ring.shape[1] - 1
    replaced = 0
    for t in range(indata.shape[0]):
        slot = (position + t) & mask
        for c in range(indata.shape[1]):
            v = indata[t, c]
            if not np.isfinite(v):
                v = 0.0
                replaced += 1
            ring[c, slot] = v
    return replaced


@numba.njit(cache=True)
def copy_out(ring: np.ndarray, position: int, out: np.ndarray) -> None:
    """Copy samples ``position ..`` of ``ring`` ``(stems, channels, capacity)`` into ``out``
    ``(stems, channels, frames)``. No allocation."""
    mask = ring.shape[2] - 1
    for t in range(out.shape[2]):
        slot = (position + t) & mask
        for s in range(out.shape[0]):
            for c in range(out.shape[1]):
                out[s, c, t] = ring[s, c, slot]
