"""The score network of the multi-source diffusion model (MSDM): a small 1D U-Net over all
stems jointly, with EDM preconditioning (Karras et al. 2022, Table 1) and sigma(t) = t.

The thesis (Sec. 4.3, Eq. 4.5) models the joint prior ``p(x_1, ..., x_N)`` of the ``N``
stems with one score network ``S_theta(x(t), sigma(t))``. We parameterise it through a
denoiser ``D(x, sigma)`` (the network's estimate of the clean stems), which gives the score
as ``(D(x, sigma) - x) / sigma**2`` and the probability-flow ODE derivative as
``dx/dsigma = (x - D(x, sigma)) / sigma``::

    D(x, sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x, c_noise(sigma), cond)

Layout: ``x`` is ``(batch, stems, channels, samples)``; the network sees the stems and
channels stacked as ``stems * channels`` input channels. With ``frame_size`` N > 0 the U-Net
runs over STFT frames instead of samples: a fixed analysis (:class:`FrameTransform`, Hann
window, hop N/4, as a strided convolution) turns every input channel into N real features per
frame, and the fixed synthesis turns the output features back into samples. Every frequency
of a frame is then one convolution away from every other, so the network sees at once which
register and which spectral shape a sound has: what tells a bass from a piano. The output
over frames is a gain per stem and frequency bin applied to that stem's own input spectrum,
plus a residual spectrum: a Wiener-like denoiser is then one gain per bin, and the network
does not have to rebuild every sample of the stems from its features (without the gains,
128 features per frame could not: the validation denoising loss was 0.67 after 2000 steps,
against the raw-sample U-Net's 0.17). On the procedural toy signals this network separates
within minutes of training; on the synthetic songs it learns the same prior as the raw-sample
U-Net in the same time (README, "Experiment (not shipped)"). ``cond`` (optional, the student's
extra inputs: mixture, autoregressive context, context mask) is ``(batch, cond_channels,
samples)``. The network is fully convolutional; ``samples`` must be a multiple of
``UNetConfig.valid_multiple``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from stemstream.realtime.diffusion.trunk import UNetTrunk, noise_embedding
from stemstream.realtime.errors import bad_value
from stemstream.realtime.stems import STEMS

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
        frame_size: STFT frame ``N`` the U-Net runs over (hop ``N / 4``); 0: raw samples.
        mixture_gains: over frames, the first ``channels`` conditioning channels are the mixture
            and every stem also gets a gain per bin on the mixture's spectrum (the student, which
            at its first step must build the stems from the mixture, not from its noisy input).
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
    frame_size: int = 0
    mixture_gains: bool = False

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
        if self.frame_size and (self.frame_size < 16 or self.frame_size % 4):
            raise bad_value("frame_size", self.frame_size, "0 (raw samples) or a multiple of 4 >= 16")
        if self.mixture_gains and (not self.frame_size or self.cond_channels < self.channels):
            raise bad_value("mixture_gains", self.mixture_gains,
                            f"False unless frame_size > 0 and cond_channels >= channels ({self.channels}: the mixture)")
        if self.sample_rate <= 0:
            raise bad_value("sample_rate", self.sample_rate, "a positive integer (Hz)")
        if self.segment_samples <= 0 or self.segment_samples % self.valid_multiple:
            raise bad_value(
                "segment_samples", self.segment_samples, f"a positive multiple of {self.valid_multiple}"
            )

    @property
    def valid_multiple(self) -> int:
        """Input lengths must be a multiple of this (product of the down-sampling factors,
        times the frame hop when the U-Net runs over frames)."""
        return int(math.prod(self.factors)) * (self.frame_size // 4 if self.frame_size else 1)

    @property
    def features(self) -> int:
        """Network features per input channel: ``frame_size`` per frame, or 1 per sample."""
        return self.frame_size or 1

    @property
    def head_channels(self) -> int:
        """Output features of the network's last convolution: per stem channel, one per sample;
        over frames ``N / 2 + 1`` bin gains and ``N`` residual features per frame, then (with
        ``mixture_gains``, after all stems' blocks) ``N / 2 + 1`` mixture gains per stem channel."""
        if not self.frame_size:
            return self.stem_channels
        bins = self.frame_size // 2 + 1
        return self.stem_channels * (self.frame_size + bins + (bins if self.mixture_gains else 0))

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


class FrameTransform(nn.Module):
    """Fixed STFT analysis and synthesis as strided convolutions (periodic Hann window of ``N``
    samples, hop ``N / 4``), exportable to ONNX as plain Conv / ConvTranspose.

    ``analyse(x (B, C, T)) -> (B, C * N, T / hop)``: per channel the real parts of bins
    ``0..N/2`` and the imaginary parts of bins ``1..N/2-1`` (N real numbers per frame), scaled
    by ``1 / sqrt(sum(w^2) / 2)`` so unit white noise gives unit-variance features.
    ``synthesise`` is its exact inverse (inverse DFT, windowed overlap-add divided by the
    summed squared window): ``synthesise(analyse(x)) == x`` for every ``T`` that is a multiple
    of the hop, edges included.
    """

    def __init__(self, size: int) -> None:
        super().__init__()
        n = int(size)
        self.size, self.hop, self.pad = n, n // 4, (n - n // 4) // 2
        w = torch.hann_window(n, periodic=True, dtype=torch.float64)
        t = torch.arange(n, dtype=torch.float64)
        k_re = torch.arange(n // 2 + 1, dtype=torch.float64)
        k_im = torch.arange(1, n // 2, dtype=torch.float64)
        cos = torch.cos(2 * math.pi * k_re[:, None] * t[None] / n)
        sin = torch.sin(2 * math.pi * k_im[:, None] * t[None] / n)
        gain = torch.sqrt((w**2).sum() / 2)
        analysis = torch.cat([cos, -sin]) * w / gain
        weight_re = torch.full((n // 2 + 1, 1), 2.0, dtype=torch.float64)
        weight_re[0], weight_re[-1] = 1.0, 1.0
        synthesis = torch.cat([weight_re * cos, -2.0 * sin]) * w * gain / n
        self.register_buffer("analysis", analysis.float().unsqueeze(1), persistent=False)
        self.register_buffer("synthesis", synthesis.float().unsqueeze(1), persistent=False)
        self.register_buffer("window_sq", (w**2).float().reshape(1, 1, n), persistent=False)

    def analyse(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t = x.shape
        frames = F.conv1d(F.pad(x.reshape(b * c, 1, t), (self.pad, self.pad)), self.analysis, stride=self.hop)
        return frames.reshape(b, c * self.size, -1)

    def synthesise(self, features: torch.Tensor) -> torch.Tensor:
        b, cn, f = features.shape
        c, t = cn // self.size, f * self.hop
        out = F.conv_transpose1d(features.reshape(b * c, self.size, f), self.synthesis, stride=self.hop)
        norm = F.conv_transpose1d(torch.ones((1, 1, f), dtype=features.dtype), self.window_sq, stride=self.hop)
        out = out[..., self.pad : self.pad + t] / norm[..., self.pad : self.pad + t]
        return out.reshape(b, c, t)


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


class ScoreUNet(UNetTrunk, nn.Module):
    """EDM-preconditioned denoiser ``D(x, sigma, cond)`` over all stems jointly.

    ``forward(x (B, S, C, T), sigma (B,), cond (B, cond_channels, T) | None) -> (B, S, C, T)``:
    the estimate of the clean stems. ``T`` must be a multiple of ``config.valid_multiple``.
    """

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.freqs, self.embed = noise_embedding(c.embed_dim)
        self.frames = FrameTransform(c.frame_size) if c.frame_size else None
        k_io = 3 if c.frame_size else 7
        self.conv_in = nn.Conv1d((c.stem_channels + c.cond_channels) * c.features, c.widths[0], k_io, padding=k_io // 2)
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
        self.conv_out = nn.Conv1d(c.widths[0], c.head_channels, k_io, padding=k_io // 2)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def raw(self, x: torch.Tensor, c_noise: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        """The bare network ``F``: ``x (B, S*C, T)``, ``c_noise (B,)`` -> ``(B, S*C, T)``."""
        emb = self._embed(c_noise)
        if self.config.cond_channels:
            if cond is None:
                raise bad_value("cond", None, f"a (batch, {self.config.cond_channels}, samples) tensor")
            x = torch.cat([x, cond], dim=1)
        if self.frames is not None:
            x = self.frames.analyse(x)
        inputs = x
        h = self.conv_in(x)
        h = self._trunk(h, emb)
        out = self.conv_out(F.silu(self.norm_out(h)))
        if self.frames is None:
            return out
        return self.frames.synthesise(self._gain_head(out, inputs))

    def _gain_head(self, out: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """Frame features of ``F``: ``gain * (the stem's input spectrum) + residual`` (+ ``mixture
        gain * the mixture's spectrum``), one gain per bin (shared by its real and imaginary part)."""
        b, _, frames = out.shape
        c = self.config
        sc, n, bins = c.stem_channels, c.frame_size, c.frame_size // 2 + 1

        def per_feature(gain: torch.Tensor) -> torch.Tensor:  # (b, sc, bins, f) -> (b, sc, n, f)
            return torch.cat([gain, gain[:, :, 1 : bins - 1]], dim=2)

        head = out[:, : sc * (bins + n)].reshape(b, sc, bins + n, frames)
        own = inputs[:, : sc * n].reshape(b, sc, n, frames)
        result = per_feature(head[:, :, :bins]) * own + head[:, :, bins:]
        if c.mixture_gains:
            mixture = inputs[:, sc * n : (sc + c.channels) * n].reshape(b, 1, c.channels, n, frames)
            mixture = mixture.expand(b, len(c.stems), c.channels, n, frames).reshape(b, sc, n, frames)
            result = result + per_feature(out[:, sc * (bins + n) :].reshape(b, sc, bins, frames)) * mixture
        return result.reshape(b, sc * n, frames)

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


def load_teacher(path: str | Path) -> ScoreUNet:
    """A ``ScoreUNet`` (the diffusion teacher) from a weight file (checksum verified)."""
    from stemstream.realtime.models.weights import WeightFileError, read_weights

    tensors, meta = read_weights(path)
    if meta["architecture"] != ARCHITECTURE:
        raise WeightFileError(f"weights={str(path)!r}: architecture {meta['architecture']!r} != {ARCHITECTURE!r}")
    model = ScoreUNet(UNetConfig.from_json(meta["config"]))
    model.load_state_dict(tensors)
    return model.eval().requires_grad_(False)
