"""Training a model at another rate than the data's: every batch resampled onto the model's rate.

The training and validation data are made at ``MODEL_SAMPLE_RATE`` (44.1 kHz). A model whose
``config.sample_rate`` differs (``dj-live-48k``) trains on the same batches resampled with one
linear polyphase filter (``scipy.signal.resample_poly``, Kaiser window): the stems are resampled
and the mixture is their sum again, so the mixture is still exactly the sum of the stems. The
data are drawn a little longer than needed and the filter's edges cut off (:data:`EDGE_SAMPLES`),
so no excerpt starts with the filter's ramp from the zeros it pads with. Lengths come out as
whole hops of the model.

Losses band-limited in Hz (MIR-1K's 8 kHz) read the model's rate (``export/train/losses.py``), so
``band_hz`` carries over unchanged.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np
import torch

from stemstream.export.train.dj_data import TrainBatch
from stemstream.realtime.errors import bad_value
from stemstream.realtime.stems import MODEL_SAMPLE_RATE

#: Samples of the data's rate drawn beyond each end of an excerpt and cut off after resampling:
#: more than ``resample_poly``'s filter half-length (10 zero crossings of the slower rate).
EDGE_SAMPLES = 32


def source_samples(samples: int, to_rate: int, from_rate: int = MODEL_SAMPLE_RATE) -> int:
    """Samples at ``from_rate`` to draw for ``samples`` at ``to_rate``, edges included."""
    return math.ceil(samples * from_rate / to_rate) + 2 * EDGE_SAMPLES


def resample_time(x: np.ndarray | torch.Tensor, to_rate: int, from_rate: int = MODEL_SAMPLE_RATE
                  ) -> np.ndarray:
    """``x`` ``(..., T)`` at ``from_rate`` resampled along its last axis to ``to_rate`` (float32)."""
    from scipy.signal import resample_poly

    ratio = Fraction(int(to_rate), int(from_rate))
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if ratio == 1:
        return a.astype(np.float32, copy=False)
    return resample_poly(a, ratio.numerator, ratio.denominator, axis=-1).astype(np.float32, copy=False)


def _crop(x: np.ndarray, samples: int, to_rate: int, from_rate: int, edges: bool) -> torch.Tensor:
    start = math.ceil(EDGE_SAMPLES * to_rate / from_rate) if edges else 0
    if x.shape[-1] < start + samples:
        raise bad_value("samples", samples, f"at most {x.shape[-1] - start} after resampling")
    return torch.from_numpy(np.ascontiguousarray(x[..., start : start + samples]))


def resample_batch(batch: TrainBatch | tuple[torch.Tensor, torch.Tensor], to_rate: int, samples: int,
                   from_rate: int = MODEL_SAMPLE_RATE, edges: bool = True
                   ) -> TrainBatch | tuple[torch.Tensor, torch.Tensor]:
    """``batch`` (a :class:`TrainBatch` or ``(mix (B, C, T), stems (B, S, C, T))``) at ``to_rate``,
    ``samples`` long (at ``to_rate``; pass a whole number of hops).

    The stems (targets) are resampled and the mixture recomputed as their sum. With ``edges``
    the batch was drawn :func:`source_samples` long and :data:`EDGE_SAMPLES` at each end are cut
    off; without, it starts at its first sample (fixed validation excerpts)."""
    targets = batch.targets if isinstance(batch, TrainBatch) else batch[1]
    device = targets.device
    stems = _crop(resample_time(targets, to_rate, from_rate), samples, to_rate, from_rate, edges).to(device)
    mix = stems.sum(dim=1)
    if isinstance(batch, TrainBatch):
        return TrainBatch(mix, stems, batch.groups, batch.valid, batch.band_hz)
    return mix, stems


class ResampledSampler:
    """A sampler (``batch(size)``) whose batches are resampled to ``to_rate``: it draws from
    ``inner``, built for :func:`source_samples` ``(samples, to_rate)`` samples at the data's rate.
    ``rng`` (checkpointed) and every other attribute are ``inner``'s."""

    def __init__(self, inner: Any, to_rate: int, samples: int, from_rate: int = MODEL_SAMPLE_RATE) -> None:
        self.inner = inner
        self.to_rate, self.from_rate, self.samples = int(to_rate), int(from_rate), int(samples)

    def batch(self, size: int) -> TrainBatch | tuple[torch.Tensor, torch.Tensor]:
        return resample_batch(self.inner.batch(size), self.to_rate, self.samples, self.from_rate)

    def __getattr__(self, name: str) -> Any:  # rng, update_pool, ...
        return getattr(self.inner, name)


def whole_hops(samples: int, hop: int) -> int:
    """``samples`` rounded down to a whole number of ``hop``-sample hops."""
    return (samples // hop) * hop
