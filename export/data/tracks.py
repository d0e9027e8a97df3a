"""The one in-memory form of a multitrack song that every loader yields."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np


@dataclass
class Track:
    """A song with its true stems.

    Attributes:
        name: a human-readable identifier (folder name).
        sample_rate: in Hz.
        stems: stem name -> audio ``(channels, samples)`` float32; all the same shape.
        mixture: ``(channels, samples)``; the sum of ``stems`` unless the dataset says otherwise.
        meta: anything the dataset knows (programs, tempo, source path...).
    """

    name: str
    sample_rate: int
    stems: dict[str, np.ndarray]
    mixture: np.ndarray
    meta: dict = field(default_factory=dict)

    @property
    def num_samples(self) -> int:
        return int(self.mixture.shape[-1])

    def stack(self, names: tuple[str, ...]) -> np.ndarray:
        """Stems in the order ``names`` as ``(len(names), channels, samples)``; a stem the
        track lacks is silence."""
        zeros = np.zeros_like(self.mixture)
        return np.stack([self.stems.get(n, zeros) for n in names])


def track_at_rate(track: Track, rate: int) -> Track:
    """``track`` converted offline to ``rate`` Hz with soxr's very-high-quality resampler,
    mixture and stems alike (so the reference is as good as it gets); ``track`` itself when it
    is at that rate. How a model is scored at its own rate on songs stored at another
    (``dj-live-48k`` on 44.1 kHz files) and at a host rate (``stemstream bench hostrates``)."""
    import soxr

    if int(rate) == track.sample_rate:
        return track

    def conv(x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(soxr.resample(x.T, track.sample_rate, int(rate), quality="VHQ").T, dtype=np.float32)

    return replace(track, sample_rate=int(rate), mixture=conv(track.mixture),
                   stems={k: conv(v) for k, v in track.stems.items()})
