"""Separating audio longer than the training window: naive, independent and autoregressive.

The thesis (Sec. 4.6, Fig. 4.4, Table 4.7) compares three ways to run a separator trained
on short windows over a long file:

* ``naive``: one sampler run over the whole file (the network is convolutional, so it runs;
  it was never trained on that length).
* ``independent``: non-overlapping windows of the training length, each separated alone
  (the thesis' "Segmented").
* ``autoregressive``: windows of the training length with hop ``H = W - O``; inside every
  sampler step the first ``O`` samples of every stem are overwritten with the previous
  window's separated output plus noise at the current sigma, then the Dirac constraint and
  update follow. The file is padded with ``O`` zeros in front, so the first window is
  conditioned on zeros. The output is the concatenation of every window's last ``H``
  samples; the overlap of window ``k + 1`` equals window ``k``'s output exactly.

Inputs are normalised to a mixture RMS of :data:`TARGET_RMS` (the training scale) with one
gain per file, and the output is scaled back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F

from stemstream.realtime.diffusion.samplers import SAMPLERS, Conditioning, Denoiser, karras_sigmas
from stemstream.realtime.errors import bad_value

#: Mixture RMS the models were trained at.
TARGET_RMS = 0.2

SegmentMode = Literal["naive", "independent", "autoregressive"]
MODES: tuple[str, ...] = ("naive", "independent", "autoregressive")


def normalise(mixture: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``mixture (B, C, T)`` scaled to RMS :data:`TARGET_RMS` per item; returns ``(scaled, gain)``
    with ``gain (B, 1, 1)`` so that ``scaled = mixture * gain``."""
    rms = mixture.square().mean(dim=(1, 2), keepdim=True).sqrt()
    gain = TARGET_RMS / rms.clamp_min(1e-5)
    return mixture * gain, gain


def _run_window(
    denoiser: Denoiser,
    mixture: torch.Tensor,
    stems: int,
    sampler: str,
    sigmas: torch.Tensor,
    context: torch.Tensor | None,
    s_churn: float,
    corrections: int,
    gamma_scale: float,
    generator: torch.Generator | None,
) -> torch.Tensor:
    b, c, t = mixture.shape
    noise = torch.randn((b, stems, c, t), generator=generator, dtype=mixture.dtype) * float(sigmas[0])
    cond = Conditioning(mixture=mixture, context=context, gamma_scale=gamma_scale)
    fn = SAMPLERS[sampler]
    return fn(denoiser, noise, sigmas, cond, s_churn=s_churn, corrections=corrections, generator=generator)


def _pad_to(x: torch.Tensor, multiple: int) -> torch.Tensor:
    extra = (-x.shape[-1]) % multiple
    return F.pad(x, (0, extra)) if extra else x


def separate_long(
    denoiser: Denoiser,
    mixture: torch.Tensor,
    *,
    stems: int,
    segment_samples: int,
    mode: SegmentMode = "autoregressive",
    overlap_samples: int | None = None,
    sampler: str = "dirac",
    steps: int = 32,
    s_churn: float = 0.0,
    corrections: int = 0,
    gamma_scale: float = 0.75,
    sigma_min: float = 1e-4,
    sigma_max: float = 1.0,
    valid_multiple: int = 1,
    generator: torch.Generator | None = None,
    on_window: Callable[[int, torch.Tensor, torch.Tensor | None], None] | None = None,
) -> torch.Tensor:
    """Separate ``mixture (B, C, T)`` of any length into ``(B, stems, C, T)``.

    ``segment_samples`` is the window ``W``; ``overlap_samples`` ``O`` (default ``W // 2``,
    i.e. hop ``W / 2``) is used by ``autoregressive``. ``valid_multiple`` pads the naive
    whole-file run to a length the network accepts. Network evaluations:
    ``windows * steps * (corrections + 1)``. ``on_window(index, separated, context)`` sees
    every window's separated output ``(B, stems, C, W)`` (normalised scale) and the context
    it was conditioned on (None outside ``autoregressive``).
    """
    if mode not in MODES:
        raise bad_value("mode", mode, f"one of {MODES}")
    if sampler not in ("dirac", "dirac-projected", "gaussian"):
        raise bad_value("sampler", sampler, "'dirac', 'dirac-projected' or 'gaussian'")
    w = int(segment_samples)
    o = w // 2 if overlap_samples is None else int(overlap_samples)
    if not 0 <= o < w:
        raise bad_value("overlap_samples", overlap_samples, f"an integer in [0, {w})")
    sigmas = karras_sigmas(steps, sigma_min, sigma_max)
    scaled, gain = normalise(mixture)
    b, c, t = scaled.shape
    args = (stems, sampler, sigmas)
    kw = dict(s_churn=s_churn, corrections=corrections, gamma_scale=gamma_scale, generator=generator)
    if mode == "naive":
        padded = _pad_to(scaled, valid_multiple)
        out = _run_window(denoiser, padded, *args, None, **kw)
        if on_window is not None:
            on_window(0, out, None)
        out = out[..., :t]
    elif mode == "independent":
        padded = _pad_to(scaled, w)
        parts = []
        for k, s in enumerate(range(0, padded.shape[-1], w)):
            parts.append(_run_window(denoiser, padded[..., s : s + w], *args, None, **kw))
            if on_window is not None:
                on_window(k, parts[-1], None)
        out = torch.cat(parts, dim=-1)[..., :t]
    else:
        hop = w - o
        padded = F.pad(scaled, (o, 0))
        padded = F.pad(padded, (0, (-(padded.shape[-1] - o)) % hop + max(0, w - padded.shape[-1])))
        context = torch.zeros((b, stems, c, o), dtype=scaled.dtype)
        parts = []
        for k, s in enumerate(range(0, padded.shape[-1] - o, hop)):
            window = padded[..., s : s + w]
            sep = _run_window(denoiser, window, *args, context if o else None, **kw)
            if on_window is not None:
                on_window(k, sep, context if o else None)
            parts.append(sep[..., o:])
            context = sep[..., hop:] if o else context
        out = torch.cat(parts, dim=-1)[..., :t]
    return out / gain.unsqueeze(1)
