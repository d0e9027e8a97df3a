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

* ``oracle-mask`` with ``windows="live"`` (``stemstream eval --model oracle-mask
  --oracle-windows live``): the same ideal ratio masks, but through the live model's own
  low-delay STFT (``stemstream.realtime.models.dsp.StreamingSTFT``: analysis window 1024, synthesis 256,
  hop 128 samples, from ``stemstream.realtime.models.hybrid.HybridConfig``), run causally with its latency
  trimmed. This is the ceiling of a magnitude-ratio mask computed on exactly the
  time-frequency grid the live model masks (before its learned-encoder branch).

All are ``separator(track) -> (len(stems), C, T)`` callables for
``stemstream.export.evaluation.protocol.evaluate_tracks``; a requested stem the track lacks comes out silent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from stemstream.realtime.errors import bad_value

#: Names accepted by :func:`reference_separator` (and ``stemstream eval --model``).
REFERENCE_SEPARATORS: tuple[str, ...] = ("mixture", "oracle-mask")

#: ``windows`` accepted by :func:`reference_separator` for ``oracle-mask``.
ORACLE_WINDOWS: tuple[str, ...] = ("hann", "live")


def _prepare(track: Any, stems: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, list[str], list[tuple[int, list[int]]]]:
    """``(mixture (C, T) float32, silent output (len(stems), C, T), the track's stem names,
    [(output index, [track stem indices])] for the requested stems the track can give)``: a
    group such as ``instrumental`` is the sum of its members (``stemstream.export.evaluation.protocol.reference_members``)."""
    from stemstream.export.evaluation.protocol import reference_members

    mixture = np.asarray(track.mixture, dtype=np.float32)
    out = np.zeros((len(stems), *mixture.shape), dtype=np.float32)
    names = list(track.stems)
    wanted = []
    for i, s in enumerate(stems):
        members = reference_members(names, s)
        if members is not None:
            wanted.append((i, [names.index(m) for m in members]))
    return mixture, out, names, wanted


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

        mixture, out, names, wanted = _prepare(track, self.stems)
        channels, length = mixture.shape
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
                for i, ks in wanted:
                    part = torch.stack([mags[k] for k in ks]).sum(0)
                    mask = torch.where(total > 0, part / total.clamp_min(1e-30), torch.zeros_like(total))
                    y = torch.istft(
                        mix_spec * mask, self.stft_size, self.hop_samples, window=window,
                        center=True, length=length,
                    )
                    out[i, ch] = y.numpy()
        return out


class LowDelayOracleMaskSeparator:
    """Ideal ratio masks through a low-delay (asymmetric-window) streaming STFT.

    Per channel and frame, ``M_s = |S_s|^p / sum_k |S_k|^p`` over every stem the track holds
    is applied to the mixture's spectrum and resynthesised with
    ``stemstream.realtime.models.dsp.StreamingSTFT`` (state carried across blocks of ``block_hops``
    hops, so memory stays bounded on long tracks); the output is shifted back by the STFT's
    ``latency_samples`` so it is aligned with the input and of the same length.

    Args:
        stems: output stem names.
        analysis_samples, synthesis_samples, hop_samples: the STFT windows in samples;
            ``None`` takes each from the live model's ``HybridConfig`` defaults (1024, 256, 128).
        mask_power: exponent ``p`` (1: magnitude ratio).
        block_hops: hops per STFT call (memory/speed only; the output does not depend on it
            beyond float32 rounding).
    """

    def __init__(
        self,
        stems: Sequence[str],
        analysis_samples: int | None = None,
        synthesis_samples: int | None = None,
        hop_samples: int | None = None,
        mask_power: float = 1.0,
        block_hops: int = 512,
    ) -> None:
        from stemstream.realtime.models.dsp import StreamingSTFT
        from stemstream.realtime.models.hybrid import HybridConfig

        live = HybridConfig()
        if not mask_power > 0:
            raise bad_value("mask_power", mask_power, "a positive exponent")
        if not isinstance(block_hops, int) or block_hops < 1:
            raise bad_value("block_hops", block_hops, "a positive integer")
        self.stems = tuple(stems)
        self.analysis_samples = live.analysis_samples if analysis_samples is None else analysis_samples
        self.synthesis_samples = live.synthesis_samples if synthesis_samples is None else synthesis_samples
        self.hop_samples = live.hop if hop_samples is None else hop_samples
        self.mask_power = float(mask_power)
        self.block_hops = block_hops
        self.stft = StreamingSTFT(self.analysis_samples, self.synthesis_samples, self.hop_samples)

    @property
    def latency_samples(self) -> int:
        """Delay of the STFT (trimmed from the output), in samples."""
        return int(self.stft.latency_samples)

    def __call__(self, track: Any) -> np.ndarray:
        import torch

        mixture, out, names, wanted = _prepare(track, self.stems)
        channels, length = mixture.shape
        if not wanted or length == 0:
            return out
        hop, lat, stft = self.hop_samples, self.latency_samples, self.stft
        total = -(-(length + lat) // hop) * hop  # whole hops covering the input plus the latency
        sources = np.zeros((len(names) + 1, channels, total), dtype=np.float32)  # stems, then mixture
        for k, n in enumerate(names):
            sources[k, :, :length] = track.stems[n]
        sources[-1, :, :length] = mixture
        signal = torch.from_numpy(sources.reshape(-1, total))
        members = torch.zeros(len(wanted), len(names))  # output j sums the masks of its members
        for j, (_, ks) in enumerate(wanted):
            members[j, ks] = 1.0
        rows = len(wanted) * channels
        history = torch.zeros(signal.shape[0], stft.history_samples)
        tail = torch.zeros(rows, stft.tail_samples)
        pieces = []
        with torch.inference_mode():
            for start in range(0, total, self.block_hops * hop):
                spec, history = stft.analyse(signal[:, start : start + self.block_hops * hop], history)
                frames, bins = spec.shape[-1], spec.shape[1] // 2
                spec = spec.reshape(len(names) + 1, channels, 2, bins, frames)
                mags = (spec[:-1, :, 0] ** 2 + spec[:-1, :, 1] ** 2).sqrt().pow_(self.mask_power)
                norm = mags.sum(0)
                part = torch.einsum("js,scbf->jcbf", members, mags)
                masks = torch.where(norm > 0, part / norm.clamp_min(1e-30), torch.zeros_like(norm))
                est = (masks.unsqueeze(2) * spec[-1:]).reshape(rows, 2 * bins, frames)
                y, tail = stft.synthesise(est, tail)
                pieces.append(y)
        y = torch.cat(pieces, -1).reshape(len(wanted), channels, total)[..., lat : lat + length].numpy()
        for j, (i, _) in enumerate(wanted):
            out[i] = y[j]
        return out


def reference_separator(
    name: str, stems: Sequence[str], stft_size: int = 2048, mask_power: float = 1.0,
    windows: str = "hann",
) -> MixtureSeparator | OracleMaskSeparator | LowDelayOracleMaskSeparator:
    """The reference separator ``name`` (one of :data:`REFERENCE_SEPARATORS`) for ``stems``.

    ``windows`` (``oracle-mask`` only): ``"hann"`` (:class:`OracleMaskSeparator` at
    ``stft_size``) or ``"live"`` (:class:`LowDelayOracleMaskSeparator` with the live model's
    windows; ``stft_size`` is then unused).
    """
    if windows not in ORACLE_WINDOWS:
        raise bad_value("oracle windows", windows, f"one of {ORACLE_WINDOWS}")
    if name == "mixture":
        return MixtureSeparator(stems)
    if name == "oracle-mask" and windows == "live":
        return LowDelayOracleMaskSeparator(stems, mask_power=mask_power)
    if name == "oracle-mask":
        return OracleMaskSeparator(stems, stft_size=stft_size, mask_power=mask_power)
    raise bad_value("model", name, f"one of {REFERENCE_SEPARATORS}")
