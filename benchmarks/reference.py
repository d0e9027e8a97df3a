"""Reference separators that need no trained model: the floor and a masking ceiling.

* ``mixture``: every output stem is the mixture itself. Its SI-SDRi is exactly 0 dB by
  definition, which checks the evaluation pipeline end to end.
* ``oracle-mask``: ideal ratio masks from the true stems. For each channel, STFT with a
  periodic Hann window of ``stft_size`` samples and hop ``stft_size // 4`` (centered frames),
  ``M_s = |S_s|^p / sum_k |S_k|^p`` over **all** stems the track holds (``p = mask_power``,
  1 by default: magnitude ratio), applied to the mixture STFT and inverted (``torch.istft``,
  same length). The masks sum to 1 over the track's stems, so the estimates sum back to the
  mixture when the mixture is the sum of the stems, and a stem whose mask is 1 everywhere is
  reconstructed exactly (to float32 rounding). It is the ceiling of a real-valued [0, 1]
  masking model with that window size (the best *magnitude-ratio* mask; the phase is the
  mixture's).

Both are ``separator(track) -> (len(stems), C, T)`` callables for
``benchmarks.evaluate.evaluate_tracks``; a requested stem the track lacks comes out silent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from realtime.errors import bad_value

#: Names accepted by :func:`reference_separator` (and ``stemstream eval --model``).
REFERENCE_SEPARATORS: tuple[str, ...] = ("mixture", "oracle-mask")


class MixtureSeparator:
    """Outputs the mixture as every stem: ``(len(stems), C, T)``."""

    def __init__(self, stems: Sequence[str]) -> None:
        self.stems = tuple(stems)

    def __call__(self, track: Any) -> np.ndarray:
        mix = np.asarray(track.mixture, dtype=np.float32)
        return np.broadcast_to(mix, (len(self.stems), *mix.shape)).copy()


class OracleMaskSeparator:
    """Ideal ratio masks from the true stems (see the module docstring).

    Args:
        stems: output stem names.
        stft_size: STFT window in samples (a power of two >= 16 is typical; any even size
            >= 4 works); hop is ``stft_size // 4``.
        mask_power: exponent ``p`` of the magnitudes in the ratio (1: magnitude ratio,
            2: power ratio / Wiener-like).
    """

    def __init__(self, stems: Sequence[str], stft_size: int = 2048, mask_power: float = 1.0) -> None:
        if not isinstance(stft_size, int) or stft_size < 4 or stft_size % 4:
            raise bad_value("stft_size", stft_size, "an integer >= 4 divisible by 4 (hop = size/4)")
        if not mask_power > 0:
            raise bad_value("mask_power", mask_power, "a positive exponent")
        self.stems = tuple(stems)
        self.stft_size = stft_size
        self.hop_samples = stft_size // 4
        self.mask_power = float(mask_power)

    def __call__(self, track: Any) -> np.ndarray:
        import torch

        mixture = np.asarray(track.mixture, dtype=np.float32)
        channels, length = mixture.shape
        out = np.zeros((len(self.stems), channels, length), dtype=np.float32)
        names = list(track.stems)
        wanted = [(i, names.index(s)) for i, s in enumerate(self.stems) if s in track.stems]
        if not wanted or length == 0:
            return out
        window = torch.hann_window(self.stft_size, dtype=torch.float32)
        pad_mode = "reflect" if length > self.stft_size // 2 else "constant"

        def stft(x: np.ndarray) -> torch.Tensor:
            return torch.stft(
                torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), self.stft_size,
                self.hop_samples, window=window, center=True, pad_mode=pad_mode,
                return_complex=True,
            )

        with torch.inference_mode():
            for ch in range(channels):  # one channel at a time keeps memory to a few spectrograms
                mags = [stft(track.stems[n][ch]).abs().pow_(self.mask_power) for n in names]
                total = torch.stack(mags).sum(0)
                mix_spec = stft(mixture[ch])
                for i, k in wanted:
                    mask = torch.where(total > 0, mags[k] / total.clamp_min(1e-30), torch.zeros_like(total))
                    y = torch.istft(
                        mix_spec * mask, self.stft_size, self.hop_samples, window=window,
                        center=True, length=length,
                    )
                    out[i, ch] = y.numpy()
        return out


def reference_separator(
    name: str, stems: Sequence[str], stft_size: int = 2048, mask_power: float = 1.0
) -> MixtureSeparator | OracleMaskSeparator:
    """The reference separator ``name`` (one of :data:`REFERENCE_SEPARATORS`) for ``stems``."""
    if name == "mixture":
        return MixtureSeparator(stems)
    if name == "oracle-mask":
        return OracleMaskSeparator(stems, stft_size=stft_size, mask_power=mask_power)
    raise bad_value("model", name, f"one of {REFERENCE_SEPARATORS}")
