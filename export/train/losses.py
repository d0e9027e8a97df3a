"""Losses and metrics for training the live separator (time domain, latency-aligned)."""

from __future__ import annotations

import torch


def align(estimate: torch.Tensor, reference: torch.Tensor, latency: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop the model's ``latency`` samples: ``estimate[..., L:]`` pairs with ``reference[..., :-L]``."""
    if latency == 0:
        return estimate, reference
    return estimate[..., latency:], reference[..., : reference.shape[-1] - latency]


def thresholded_sdr_loss(
    estimate: torch.Tensor, reference: torch.Tensor, mixture: torch.Tensor, tau: float = 1e-3
) -> torch.Tensor:
    """Negative SDR with a soft threshold (Wisdom et al. 2020), mean over batch/stems.

    ``estimate``/``reference`` ``(B, S, C, T)``, ``mixture`` ``(B, C, T)``. The error term is
    floored at ``tau`` times the mixture power so silent targets do not dominate.
    """
    err = (estimate - reference).pow(2).sum(dim=(-2, -1))
    ref = reference.pow(2).sum(dim=(-2, -1))
    floor = tau * mixture.pow(2).sum(dim=(-2, -1)).unsqueeze(1)
    return (10 * torch.log10(err + floor + 1e-8) - 10 * torch.log10(ref + 1e-8)).mean()


def si_sdr(estimate: torch.Tensor, reference: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Scale-invariant SDR in dB over the last axis (channels flattened into time by caller)."""
    alpha = (estimate * reference).sum(-1, keepdim=True) / (reference.pow(2).sum(-1, keepdim=True) + eps)
    target = alpha * reference
    noise = estimate - target
    return 10 * torch.log10((target.pow(2).sum(-1) + eps) / (noise.pow(2).sum(-1) + eps))


def si_sdri_per_stem(
    estimate: torch.Tensor, reference: torch.Tensor, mixture: torch.Tensor, min_rms: float = 1e-3
) -> tuple[torch.Tensor, torch.Tensor]:
    """SI-SDR improvement per example and stem, channels concatenated.

    ``estimate``/``reference`` ``(B, S, C, T)``, ``mixture`` ``(B, C, T)``. Returns
    ``(improvement (B, S), valid (B, S) bool)``; stems quieter than ``min_rms`` are invalid.
    """
    b, s = reference.shape[:2]
    est = estimate.reshape(b, s, -1)
    ref = reference.reshape(b, s, -1)
    mix = mixture.reshape(b, 1, -1).expand_as(ref)
    imp = si_sdr(est, ref) - si_sdr(mix, ref)
    valid = ref.pow(2).mean(-1).sqrt() > min_rms
    return imp, valid


def band_limit(x: torch.Tensor, band_hz: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """``x`` ``(B, ..., T)`` with everything at or above ``band_hz[b]`` removed (a brick-wall mask
    on the excerpt's DFT); rows with ``band_hz[b] <= 0`` are returned unchanged."""
    rows = torch.nonzero(band_hz > 0).flatten()
    if rows.numel() == 0:
        return x
    n = x.shape[-1]
    freqs = torch.fft.rfftfreq(n, d=1.0 / sample_rate, device=x.device)
    keep = freqs.view(1, -1) < band_hz[rows].view(-1, 1)  # (limited rows, F)
    keep = keep.view(len(rows), *([1] * (x.dim() - 2)), -1)
    filtered = torch.fft.irfft(torch.fft.rfft(x[rows], dim=-1) * keep, n=n, dim=-1)
    return x.index_copy(0, rows, filtered.to(x.dtype))  # only the limited rows go through the DFT; others exactly as they were


def grouped_sdr_loss(
    estimate: torch.Tensor, targets: torch.Tensor, mixture: torch.Tensor, groups: torch.Tensor,
    valid: torch.Tensor, band_hz: torch.Tensor, sample_rate: int, tau: float = 1e-3,
) -> torch.Tensor:
    """Thresholded SDR of grouped, band-limited estimates (the DJ set's partial supervision).

    ``estimate`` ``(B, S, C, T)``, ``targets`` ``(B, K, C, T)``, ``mixture`` ``(B, C, T)``,
    ``groups`` ``(B, K, S)`` (target row ``k`` is compared with ``sum_s groups[b, k, s] *
    estimate[b, s]``), ``valid`` ``(B, K)`` (rows that count), ``band_hz`` ``(B,)`` (compare
    below this frequency only; 0: full band). Mean over the valid rows.
    """
    grouped = torch.einsum("bks,bsct->bkct", groups.to(estimate.dtype), estimate)
    grouped = band_limit(grouped, band_hz, sample_rate)
    targets = band_limit(targets, band_hz, sample_rate)
    mixture = band_limit(mixture, band_hz, sample_rate)
    err = (grouped - targets).pow(2).sum(dim=(-2, -1))
    ref = targets.pow(2).sum(dim=(-2, -1))
    floor = tau * mixture.pow(2).sum(dim=(-2, -1)).unsqueeze(1)
    per_row = 10 * torch.log10(err + floor + 1e-8) - 10 * torch.log10(ref + 1e-8)
    weight = valid.to(per_row.dtype)
    return (per_row * weight).sum() / weight.sum().clamp_min(1.0)
