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
