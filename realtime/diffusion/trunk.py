"""What the two diffusion U-Nets share: the Fourier embedding of the noise level and the pass down
the encoder, through the middle and up the decoder with skip connections (1-D blocks in the
MSDM's :class:`~stemstream.realtime.diffusion.unet.ScoreUNet`, 2-D in the refiner's
:class:`~stemstream.realtime.diffusion.refiner_net.RefinerCore`)."""

from __future__ import annotations

import math

import torch
from torch import nn


def noise_embedding(dim: int) -> tuple[nn.Parameter, nn.Sequential]:
    """Fixed random Fourier frequencies (``dim // 2``) and the MLP after them, in that draw order."""
    freqs = nn.Parameter(torch.randn(dim // 2) * 4.0, requires_grad=False)
    return freqs, nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))


class UNetTrunk:
    """Mixin for a module with ``freqs``, ``embed`` (from :func:`noise_embedding`) and the level
    lists ``enc``, ``down``, ``mid``, ``up``, ``dec``; each block is called as ``block(h, emb)``."""

    freqs: nn.Parameter
    embed: nn.Module
    enc: nn.ModuleList
    down: nn.ModuleList
    mid: nn.Module
    up: nn.ModuleList
    dec: nn.ModuleList

    def _embed(self, c_noise: torch.Tensor) -> torch.Tensor:
        angles = c_noise[:, None] * self.freqs[None, :] * (2 * math.pi)
        return self.embed(torch.cat([angles.cos(), angles.sin()], dim=1))

    def _trunk(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        skips = []
        for level, blocks in enumerate(self.enc):
            for block in blocks:
                h = block(h, emb)
            skips.append(h)
            if level < len(self.down):
                h = self.down[level](h)
        h = self.mid(h, emb)
        for level in reversed(range(len(self.dec))):
            if level < len(self.up):
                h = self.up[level](h)
            h = torch.cat([h, skips[level]], dim=1)
            for block in self.dec[level]:
                h = block(h, emb)
        return h
