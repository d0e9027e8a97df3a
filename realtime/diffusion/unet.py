"""The score network of the multi-source diffusion model (MSDM): a small 1D U-Net over all
stems jointly, with EDM preconditioning (Karras et al. 2022, Table 1) and sigma(t) = t.

The thesis (Sec. 4.3, Eq. 4.5) models the joint prior ``p(x_1, ..., x_N)`` of the ``N``
stems with one score network ``S_theta(x(t), sigma(t))``. We parameterise it through a
denoiser ``D(x, sigma)`` (the network's estimate of the clean stems), which gives the score
as ``(D(x, sigma) - x) / sigma**2`` and the probability-flow ODE derivative as
``dx/dsigma = (x - D(x, sigma)) / sigma``::

    D(x, sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x, c_noise(sigma), cond)

Layout: ``x`` is ``(batch, stems, channels, samples)``; the network sees the stems and
channels stacked as ``stems * channels`` input channels. ``cond`` (optional, the student's
extra inputs: mixture, autoregressive context, context mask) is ``(batch, cond_channels,
samples)``. The network is fully convolutional; ``samples`` must be a multiple of
``UNetConfig.valid_multiple``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from realtime.errors import bad_value
from realtime.stems import STEMS

#: Architecture identifier stored in weight files.
ARCHITECTURE = "msdm-unet1d-v1"


@dataclass(frozen=True)
class UNetConfig:
    """Configuration of :class:`ScoreUNet` (sizes in samples, rates in Hz).

    Attributes:
        stems: stem names, in order (the last one is the Dirac-constrained stem).
        channels: audio channels per stem (1: mono, as in the thesis).
        cond_channels: extra conditioning input channels (0 for the teacher).
        widths: feature channels per U-Net level (level 0 runs at full rate).
        factors: down-sampling factor between consecutive levels.
        blocks: residual blocks per level (encoder and decoder each).
        kernel_size: convolution kernel of the residual blocks (odd).
        embed_dim: width of the noise-level embedding.
        sigma_data: standard deviation of the training stems (EDM ``sigma_data``).
        sample_rate: rate the model runs at, Hz.
        segment_samples: training window length, samples.
    """

    stems: tuple[str, ...] = STEMS
    channels: int = 1
    cond_channels: int = 0
    widths: tuple[int, ...] = (32, 64, 96, 128)
    factors: tuple[int, ...] = (4, 4, 4)
    blocks: tuple[int, ...] = (0, 1, 1, 2)
    kernel_size: int = 5
    embed_dim: int = 64
    sigma_data: float = 0.1
    sample_rate: int = 8000
    segment_samples: int = 8192

    def __post_init__(self) -> None:
        object.__setattr__(self, "stems", tuple(self.stems))
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        object.__setattr__(self, "factors", tuple(int(f) for f in self.factors))
        object.__setattr__(self, "blocks", tuple(int(b) for b in self.blocks))
        if len(self.stems) < 2:
            raise bad_value("stems", self.stems, "at least two stem names")
        if self.channels < 1:
            raise bad_value("channels", self.channels, "an integer >= 1")
        if self.cond_channels < 0:
            raise bad_value("cond_channels", self.cond_channels, "an integer >= 0")
        if not self.widths or any(w < 8 or w % 8 for w in self.widths):
            raise bad_value("widths", self.widths, "positive multiples of 8 (GroupNorm groups)")
        if len(self.factors) != len(self.widths) - 1 or any(f < 2 or f % 2 for f in self.factors):
            raise bad_value("factors", self.factors, f"{len(self.widths) - 1} even factors >= 2")
        if len(self.blocks) != len(self.widths) or any(b < 0 for b in self.blocks):
            raise bad_value("blocks", self.blocks, f"{len(self.widths)} non-negative counts")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise bad_value("kernel_size", self.kernel_size, "an odd integer >= 1")
        if self.sigma_data <= 0:
            raise bad_value("sigma_data", self.sigma_data, "a positive float")
        if self.sample_rate <= 0:
            raise bad_value("sample_rate", self.sample_rate, "a positive integer (Hz)")
        if self.segment_samples <= 0 or self.segment_samples % self.valid_multiple:
            raise bad_value(
                "segment_samples", self.segment_samples, f"a positive multiple of {self.valid_multiple}"
            )

    @property
    def valid_multiple(self) -> int:
        """Input lengths must be a multiple of this (product of the down-sampling factors)."""
        return int(math.prod(self.factors))

    @property
    def stem_channels(self) -> int:
        """Network input/output channels: ``len(stems) * channels``."""
        return len(self.stems) * self.channels

    def to_json(self) -> str:
        """JSON for weight-file metadata."""
        d = asdict(self)
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "UNetConfig":
        """Inverse of :meth:`to_json`."""
        d = json.loads(text)
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def _groups(channels: int) -> int:
    return 8 if channels % 8 == 0 else 1


class _ResBlock(nn.Module):
    """GroupNorm-SiLU-Conv twice, with a FiLM (scale, shift) from the noise embedding."""

    def __init__(self, c_in: int, c_out: int, embed_dim: int, kernel_size: int) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.norm1 = nn.GroupNorm(_groups(c_in), c_in)
        self.conv1 = nn.Conv1d(c_in, c_out, kernel_size, padding=pad)
        self.film = nn.Linear(embed_dim, 2 * c_out)
        self.norm2 = nn.GroupNorm(_groups(c_out), c_out)
        self.conv2 = nn.Conv1d(c_out, c_out, kernel_size, padding=pad)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.film(emb).unsqueeze(-1).chunk(2, dim=1)
        h = F.silu(self.norm2(h) * (1 + scale) + shift)
        return self.skip(x) + self.conv2(h)


class ScoreUNet(nn.Module):
    """EDM-preconditioned denoiser ``D(x, sigma, cond)`` over all stems jointly.

    ``forward(x (B, S, C, T), sigma (B,), cond (B, cond_channels, T) | None) -> (B, S, C, T)``:
    the estimate of the clean stems. ``T`` must be a multiple of ``config.valid_multiple``.
    """

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.freqs = nn.Parameter(torch.randn(c.embed_dim // 2) * 4.0, requires_grad=False)
        self.embed = nn.Sequential(nn.Linear(c.embed_dim, c.embed_dim), nn.SiLU(), nn.Linear(c.embed_dim, c.embed_dim))
        self.conv_in = nn.Conv1d(c.stem_channels + c.cond_channels, c.widths[0], 7, padding=3)
        self.enc = nn.ModuleList()
        self.down = nn.ModuleList()
        self.dec = nn.ModuleList()
        self.up = nn.ModuleList()
        for level, width in enumerate(c.widths):
            self.enc.append(nn.ModuleList(_ResBlock(width, width, c.embed_dim, c.kernel_size) for _ in range(c.blocks[level])))
            self.dec.append(
                nn.ModuleList(
                    _ResBlock(2 * width if i == 0 else width, width, c.embed_dim, c.kernel_size)
                    for i in range(max(c.blocks[level], 1))
                )
            )
            if level < len(c.factors):
                f, nxt = c.factors[level], c.widths[level + 1]
                self.down.append(nn.Conv1d(width, nxt, 2 * f, stride=f, padding=f // 2))
                self.up.append(nn.ConvTranspose1d(nxt, width, 2 * f, stride=f, padding=f // 2))
        self.mid = _ResBlock(c.widths[-1], c.widths[-1], c.embed_dim, c.kernel_size)
        self.norm_out = nn.GroupNorm(_groups(c.widths[0]), c.widths[0])
        self.conv_out = nn.Conv1d(c.widths[0], c.stem_channels, 7, padding=3)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def _embed(self, c_noise: torch.Tensor) -> torch.Tensor:
        angles = c_noise[:, None] * self.freqs[None, :] * (2 * math.pi)
        return self.embed(torch.cat([angles.cos(), angles.sin()], dim=1))

    def raw(self, x: torch.Tensor, c_noise: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        """The bare network ``F``: ``x (B, S*C, T)``, ``c_noise (B,)`` -> ``(B, S*C, T)``."""
        emb = self._embed(c_noise)
        if self.config.cond_channels:
            if cond is None:
                raise bad_value("cond", None, f"a (batch, {self.config.cond_channels}, samples) tensor")
            x = torch.cat([x, cond], dim=1)
        h = self.conv_in(x)
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
        return self.conv_out(F.silu(self.norm_out(h)))

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        b, s, ch, t = x.shape
        sd = self.config.sigma_data
        sigma = sigma.to(x.dtype).reshape(-1).expand(b)
        sig = sigma.reshape(b, 1, 1, 1)
        c_skip = sd**2 / (sig**2 + sd**2)
        c_out = sig * sd / torch.sqrt(sig**2 + sd**2)
        c_in = 1.0 / torch.sqrt(sig**2 + sd**2)
        c_noise = torch.log(sigma.clamp_min(1e-12)) / 4.0
        f = self.raw((c_in * x).reshape(b, s * ch, t), c_noise, cond).reshape(b, s, ch, t)
        return c_skip * x + c_out * f


def count_parameters(module: nn.Module) -> int:
    """Number of parameters (trainable or frozen; the fixed Fourier frequencies excluded)."""
    return sum(p.numel() for n, p in module.named_parameters() if not n.endswith("freqs"))
