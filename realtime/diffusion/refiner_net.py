"""The refiner's score network: a conditional multi-source denoiser of the *residual* of a
base separator, full band, stereo, over STFT frames.

The refiner diffuses ``delta = stems - base`` (the true stems minus a discriminative base
model's estimate), conditioned on the mixture, the base's stems and (autoregressive segments)
the previous segment's refined residual over this segment's first ``context_samples``. Its
denoiser follows the EDM preconditioning (Karras et al. 2022, Table 1), as
:class:`stemstream.realtime.diffusion.unet.ScoreUNet` does::

    D(x, sigma, cond) = c_skip(sigma) x + c_out(sigma) iSTFT(F(STFT(c_in(sigma) x), STFT(cond), c_noise(sigma)))

Layout: ``x`` is ``(batch, stems, channels, samples)`` (a residual), ``mixture`` ``(batch,
channels, samples)``, ``base`` ``(batch, stems, channels, samples)``, ``context`` ``(batch,
stems, channels, samples)`` (zero after the first ``context_samples``) with ``context_mask``
``(batch,)`` (1 where a context is given).

Representation (:class:`Spectra`): a periodic Hann STFT of ``n_fft`` samples (hop ``n_fft / 2``
by default), scaled so unit white noise has unit-variance real and imaginary parts; its
inverse is exact. The FFTs run in PyTorch around the network, never inside it:
:class:`RefinerCore`, the part exported to ONNX, takes spectral features and returns a
spectrum, so the exported graph holds no DFT matrices (as convolutions they would cost
``n_fft^2 / hop`` multiply-accumulates per sample for each of the ~30 channels analysed,
about twice the network).

:class:`RefinerCore` is a small 2-D U-Net over (bands, frames): the bins below Nyquist are
split into equal bands of ``band_bins`` bins (:func:`band_layout`: the bins of a band become
channels), each band projected to ``widths[0]`` features by one 1x1 convolution (every bin of a
band keeps its own weights; the same projection for every band), plus a learned embedding per band. Its head gives, for every stem channel and bin, three complex gains (on the
mixture's spectrum, on that stem's base spectrum, on the noisy input's own spectrum) and a
complex residual: what a complex ratio mask on the mixture, a correction of the base and a
Wiener-like denoiser each need as one number per bin. Everything is ``Conv2d`` /
``ConvTranspose2d`` / ``GroupNorm`` / elementwise, so it exports to ONNX (opset 17).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from stemstream.realtime.diffusion.trunk import UNetTrunk, noise_embedding
from stemstream.realtime.errors import bad_value
from stemstream.realtime.stems import MODEL_SAMPLE_RATE, STEMS

#: Architecture identifier of a refiner teacher's weight file.
REFINER_ARCHITECTURE = "msdm-refiner-v1"

#: Mixture RMS every segment is normalised to (the same as the unconditional models').
TARGET_RMS = 0.2

#: Outputs of the head per stem channel and bin: complex gains on mixture, base, own input; a complex residual.
HEAD_OUTPUTS = 8


@dataclass(frozen=True)
class RefinerConfig:
    """Configuration of the refiner network (sizes in samples, rates in Hz).

    Attributes:
        stems: stem names in order (the last one is the Dirac-constrained stem).
        channels: audio channels per stem (2: stereo).
        sample_rate: the rate the model runs at.
        segment_samples: samples per segment at inference (the streaming engine's window).
        context_samples: the first samples of a segment conditioned on the previous segment.
        train_samples: training crop length (the network is convolutional; shorter crops train faster).
        n_fft: STFT frame length.
        hop: STFT hop (``n_fft / 2``: half the input volume and half the network's positions of
            ``n_fft / 4``, at 11.6 ms frames; the inverse is exact at either).
        band_bins: bins per band of the band split (the ``n_fft / 2`` bins below Nyquist).
        widths: features per U-Net level (level 0: every band and frame).
        blocks: residual blocks per level in the encoder (the decoder has ``max(1, b)``).
        embed_dim: width of the noise-level embedding.
        sigma_data: standard deviation of the residual (EDM ``sigma_data``), at the normalised scale.
        sigma_min: lowest noise level of the samplers.
        sigma_max: highest noise level (where sampling starts): 200 ``sigma_data``. At 0.5 (10
            ``sigma_data``) the residual still stood out of the noise in the bins where it is
            strong, so the network learnt to read it there and did worse from pure noise (a
            first teacher, 1000 steps: one evaluation on the true residual plus noise at 0.5,
            +1.6 dB over the base on validation excerpts; from pure noise, -1.8 dB).
        base: the registry name of the base model whose residual this refines.
    """

    stems: tuple[str, ...] = STEMS
    channels: int = 2
    sample_rate: int = MODEL_SAMPLE_RATE
    segment_samples: int = 65536
    context_samples: int = 16384
    train_samples: int = 32768
    n_fft: int = 1024
    hop: int = 512
    band_bins: int = 8
    widths: tuple[int, ...] = (32, 64, 128)
    blocks: tuple[int, ...] = (1, 1, 2)
    embed_dim: int = 64
    sigma_data: float = 0.05
    sigma_min: float = 1e-4
    sigma_max: float = 10.0
    base: str = "quality"

    def __post_init__(self) -> None:
        object.__setattr__(self, "stems", tuple(self.stems))
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        object.__setattr__(self, "blocks", tuple(int(b) for b in self.blocks))
        if len(self.stems) < 2:
            raise bad_value("stems", self.stems, "at least two stem names")
        if self.channels < 1:
            raise bad_value("channels", self.channels, "an integer >= 1")
        if self.n_fft < 16 or self.n_fft % 4:
            raise bad_value("n_fft", self.n_fft, "a multiple of 4 >= 16")
        if self.hop not in (self.n_fft // 2, self.n_fft // 4):
            raise bad_value("hop", self.hop, f"n_fft / 2 ({self.n_fft // 2}) or n_fft / 4 ({self.n_fft // 4})")
        if self.band_bins < 1 or (self.n_fft // 2) % self.band_bins:
            raise bad_value("band_bins", self.band_bins, f"a divisor of n_fft / 2 = {self.n_fft // 2}")
        bands = self.n_fft // 2 // self.band_bins
        if bands % (2 ** (len(self.widths) - 1)):
            raise bad_value("widths", self.widths, f"at most as many levels as halvings of {bands} bands")
        if not self.widths or any(w < 8 or w % 8 for w in self.widths):
            raise bad_value("widths", self.widths, "positive multiples of 8 (GroupNorm groups)")
        if len(self.blocks) != len(self.widths) or any(b < 0 for b in self.blocks):
            raise bad_value("blocks", self.blocks, f"{len(self.widths)} non-negative counts")
        for name in ("segment_samples", "train_samples"):
            value = getattr(self, name)
            if value <= 0 or value % self.valid_multiple:
                raise bad_value(name, value, f"a positive multiple of {self.valid_multiple} (hop x 2^(levels-1))")
        if not 0 < self.context_samples < self.segment_samples or self.context_samples % self.hop:
            raise bad_value("context_samples", self.context_samples,
                            f"a multiple of {self.hop} in (0, segment_samples={self.segment_samples})")
        if self.context_samples >= self.train_samples:
            raise bad_value("train_samples", self.train_samples, f"longer than context_samples={self.context_samples}")
        if not 0 < self.sigma_min < self.sigma_max or self.sigma_data <= 0:
            raise bad_value("sigma_min, sigma_max, sigma_data", (self.sigma_min, self.sigma_max, self.sigma_data),
                            "0 < sigma_min < sigma_max and sigma_data > 0")

    @property
    def valid_multiple(self) -> int:
        """Segment lengths must be a multiple of this: the hop times the U-Net's time down-sampling."""
        return self.hop * 2 ** (len(self.widths) - 1)

    @property
    def bands(self) -> int:
        """Bands of the band split."""
        return self.n_fft // 2 // self.band_bins

    @property
    def stem_channels(self) -> int:
        """``len(stems) * channels``."""
        return len(self.stems) * self.channels

    @property
    def feature_channels(self) -> int:
        """Input feature maps of :class:`RefinerCore`: real and imaginary parts of the noisy input,
        the base, the context (one per stem channel) and the mixture (one per channel); the log
        magnitudes of base and mixture; the context mask."""
        sc, c = self.stem_channels, self.channels
        return 2 * (3 * sc + c) + sc + c + 1

    def to_json(self) -> str:
        """JSON for weight-file metadata."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "RefinerConfig":
        """Inverse of :meth:`to_json`."""
        d = json.loads(text)
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


class Spectra:
    """The refiner's STFT over frames of whole hops: ``analyse(x (N, T)) -> (N, F, frames)``
    complex and its exact inverse ``synthesise(spec (N, F, frames), T) -> (N, T)`` (windowed
    overlap-add divided by the summed squared window); ``F = n_fft / 2 + 1``, ``frames = T /
    hop`` (``T`` a multiple of the hop; ``(n_fft - hop) / 2`` zeros padded on each side, as
    :class:`stemstream.realtime.diffusion.unet.FrameTransform` does). Periodic Hann window, scaled
    so unit white noise gives unit-variance real and imaginary parts. FFTs, not DFT matrices."""

    def __init__(self, n_fft: int, hop: int) -> None:
        self.n_fft, self.hop, self.pad = n_fft, hop, (n_fft - hop) // 2
        window = torch.hann_window(n_fft, periodic=True)
        scale = float(torch.sqrt((window**2).sum() / 2))
        self.analysis_window = window / scale  # the scale folded into the windows: no pass over the spectra
        self.synthesis_window = window * scale
        self.window_sq = window**2

    def analyse(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        spec = torch.stft(F.pad(x.reshape(-1, x.shape[-1]), (self.pad, self.pad)), self.n_fft, self.hop,
                          window=self.analysis_window.to(x.dtype), center=False, return_complex=True)
        return spec.reshape(*lead, *spec.shape[-2:])

    def synthesise(self, spec: torch.Tensor, samples: int) -> torch.Tensor:
        frames = torch.fft.irfft(spec, n=self.n_fft, dim=-2) * self.synthesis_window.to(spec.real.dtype)[:, None]
        count = frames.shape[-1]
        length = (count - 1) * self.hop + self.n_fft

        def fold(z: torch.Tensor) -> torch.Tensor:
            return F.fold(z, output_size=(1, length), kernel_size=(1, self.n_fft), stride=(1, self.hop)).reshape(-1, length)

        norm = fold(self.window_sq.to(frames.dtype)[None, :, None].expand(1, self.n_fft, count))
        keep = slice(self.pad, self.pad + samples)  # the padded edges' envelope reaches 0: crop first
        return fold(frames)[:, keep] / norm[:, keep]


def band_layout(spec: torch.Tensor, band_bins: int) -> torch.Tensor:
    """Complex spectra ``(B, K, F, frames)`` as the core's real feature layout ``(B, 2K, band_bins,
    bands, frames)``: channel ``2k`` is the real part of spectrum ``k``, ``2k + 1`` its imaginary
    part; bin ``band * band_bins + j`` sits at ``[..., j, band, :]``; the Nyquist bin is dropped."""
    b, k, bins, frames = spec.shape
    z = torch.view_as_real(spec[:, :, : bins - 1])  # (B, K, F-1, frames, 2)
    z = z.reshape(b, k, (bins - 1) // band_bins, band_bins, frames, 2)
    return z.permute(0, 1, 5, 3, 2, 4).reshape(b, 2 * k, band_bins, (bins - 1) // band_bins, frames)


def _groups(channels: int) -> int:
    return 8 if channels % 8 == 0 else 1


class _Block(nn.Module):
    """GroupNorm-SiLU-Conv2d(3x3) twice with a FiLM (scale, shift) from the noise embedding."""

    def __init__(self, c_in: int, c_out: int, embed_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(c_in), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.film = nn.Linear(embed_dim, 2 * c_out)
        self.norm2 = nn.GroupNorm(_groups(c_out), c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.film(emb)[:, :, None, None].chunk(2, dim=1)
        h = F.silu(self.norm2(h) * (1 + scale) + shift)
        return self.skip(x) + self.conv2(h)


class RefinerCore(UNetTrunk, nn.Module):
    """The exported graph: ``forward(features (B, feature_channels, F, frames), c_noise (B,)) ->
    spectrum (B, stem_channels, 2, F, frames)``, the network output ``F`` of the preconditioned
    denoiser in the STFT domain (Nyquist bin zero). ``frames`` may be any count (padded inside
    to the U-Net's multiple and cropped back)."""

    def __init__(self, config: RefinerConfig) -> None:
        super().__init__()
        self.config = c = config
        self.freqs, self.embed = noise_embedding(c.embed_dim)
        w0 = c.widths[0]
        self.split = nn.Conv2d(c.feature_channels * c.band_bins, w0, 1)
        self.band_embedding = nn.Parameter(torch.zeros(1, w0, c.bands, 1))
        self.enc = nn.ModuleList()
        self.dec = nn.ModuleList()
        self.down = nn.ModuleList()
        self.up = nn.ModuleList()
        for level, width in enumerate(c.widths):
            self.enc.append(nn.ModuleList(_Block(width, width, c.embed_dim) for _ in range(c.blocks[level])))
            self.dec.append(nn.ModuleList(_Block(2 * width if i == 0 else width, width, c.embed_dim)
                                          for i in range(max(c.blocks[level], 1))))
            if level + 1 < len(c.widths):
                self.down.append(nn.Conv2d(width, c.widths[level + 1], 2, stride=2))
                self.up.append(nn.ConvTranspose2d(c.widths[level + 1], width, 2, stride=2))
        self.mid = _Block(c.widths[-1], c.widths[-1], c.embed_dim)
        self.norm_out = nn.GroupNorm(_groups(w0), w0)
        self.head = nn.Conv2d(w0, c.stem_channels * HEAD_OUTPUTS * c.band_bins, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        #: head spectra are the feature spectra at the scale of ``sigma_data`` (see ``features``)
        self.cond_to_head = TARGET_RMS / c.sigma_data

    def forward(self, features: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        c = self.config
        b, _, bands, frames = features.shape
        emb = self._embed(c_noise)
        h = self.split(features) + self.band_embedding
        h = self._trunk(h, emb)
        out = self.head(F.silu(self.norm_out(h)))  # (B, sc * 8 * bb, bands, frames)
        return self._gains(out.reshape(b, c.stem_channels, HEAD_OUTPUTS, c.band_bins, bands, frames), features)

    def _gains(self, out: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """``G_mix * mixture + G_base * base + G_own * input + residual`` per stem channel (complex
        products), from the head ``out (B, sc, 8, bb, bands, frames)`` and the input features;
        returns ``(B, sc, 2, bb, bands, frames)``."""
        c = self.config
        b, sc, _, bb, bands, frames = out.shape
        ch, s = c.channels, len(c.stems)
        spectra = features.reshape(b, -1, bb, bands, frames)
        own = spectra[:, : 2 * sc].reshape(b, sc, 2, bb, bands, frames)
        base = spectra[:, 2 * sc : 4 * sc].reshape(b, sc, 2, bb, bands, frames) * self.cond_to_head
        mix = spectra[:, 6 * sc : 6 * sc + 2 * ch].reshape(b, 1, ch, 2, bb, bands, frames) * self.cond_to_head
        mix = mix.expand(b, s, ch, 2, bb, bands, frames).reshape(b, sc, 2, bb, bands, frames)

        def times(gain: torch.Tensor, spec: torch.Tensor) -> torch.Tensor:
            re = gain[:, :, 0] * spec[:, :, 0] - gain[:, :, 1] * spec[:, :, 1]
            im = gain[:, :, 0] * spec[:, :, 1] + gain[:, :, 1] * spec[:, :, 0]
            return torch.stack([re, im], dim=2)

        return times(out[:, :, 0:2], mix) + times(out[:, :, 2:4], base) + times(out[:, :, 4:6], own) + out[:, :, 6:8]


def from_band_layout(out: torch.Tensor) -> torch.Tensor:
    """The core's output ``(B, K, 2, bb, bands, frames)`` as complex spectra ``(B, K, F, frames)``
    (Nyquist bin zero): the inverse of :func:`band_layout`."""
    b, k, _, bb, bands, frames = out.shape
    z = out.permute(0, 1, 4, 3, 5, 2).reshape(b, k, bands * bb, frames, 2)
    return F.pad(torch.view_as_complex(z.contiguous()), (0, 0, 0, 1))


def context_frames(config: RefinerConfig, frames: int, context_mask: torch.Tensor) -> torch.Tensor:
    """Per-frame context indicator ``(B, 1, 1, 1, frames)``: 1 for the frames centred inside the
    first ``context_samples`` of a segment that has a context (``context_mask`` 1), else 0."""
    centres = (torch.arange(frames, dtype=context_mask.dtype) + 0.5) * config.hop
    inside = (centres < config.context_samples).to(context_mask.dtype)
    return context_mask.reshape(-1, 1, 1, 1, 1) * inside.reshape(1, 1, 1, 1, frames)


class RefinerDenoiser(nn.Module):
    """The EDM-preconditioned denoiser of the residual.

    ``forward(x (B,S,C,T), sigma (B,), mixture (B,C,T), base (B,S,C,T), context (B,S,C,T),
    context_mask (B,)) -> (B,S,C,T)``: the estimate of the clean residual. ``context`` is the
    context residual (the previous segment's refined stems minus this segment's base) over the
    first ``context_samples``, zero after; ``T`` a multiple of :attr:`RefinerConfig.valid_multiple`.
    The network runs through :attr:`run_core` when set (a callable with :class:`RefinerCore`'s
    signature, e.g. an ONNX Runtime session: :mod:`stemstream.realtime.diffusion.refiner_onnx`),
    else through :attr:`core`.
    """

    def __init__(self, config: RefinerConfig) -> None:
        super().__init__()
        self.config = config
        self.core = RefinerCore(config)
        self.spectra = Spectra(config.n_fft, config.hop)
        self.run_core: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None

    def features(self, x_in: torch.Tensor, mixture: torch.Tensor, base: torch.Tensor, context: torch.Tensor,
                 context_mask: torch.Tensor) -> torch.Tensor:
        """The core's input ``(B, feature_channels * band_bins, bands, frames)`` from the scaled
        noisy input ``x_in = c_in x`` and the conditioning (:attr:`RefinerConfig.feature_channels`)."""
        c = self.config
        b, s, ch, t = base.shape
        if t % c.valid_multiple:
            raise bad_value("samples", t, f"a multiple of {c.valid_multiple}")
        spec = self.spectra.analyse
        signals = torch.cat([x_in.reshape(b, s * ch, t), base.reshape(b, s * ch, t) / TARGET_RMS,
                             context.reshape(b, s * ch, t) / c.sigma_data, mixture / TARGET_RMS], dim=1)
        specs = spec(signals)  # (B, 3sc + c, F, frames)
        frames = specs.shape[-1]
        layout = band_layout(specs, c.band_bins)  # (B, 2 (3sc + c), bb, bands, frames)
        cond = torch.cat([specs[:, s * ch : 2 * s * ch], specs[:, 3 * s * ch :]], dim=1)[:, :, :-1]
        mags = torch.log1p(cond.abs()).reshape(b, (s + 1) * ch, c.bands, c.band_bins, frames).transpose(2, 3)
        mask = context_frames(c, frames, context_mask).expand(b, 1, c.band_bins, c.bands, frames)
        return torch.cat([layout, mags, mask], dim=1).reshape(b, c.feature_channels * c.band_bins, c.bands, frames)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, mixture: torch.Tensor, base: torch.Tensor,
                context: torch.Tensor, context_mask: torch.Tensor) -> torch.Tensor:
        b, s, ch, t = x.shape
        sd = self.config.sigma_data
        sigma = sigma.to(x.dtype).reshape(-1).expand(b)
        sig = sigma.reshape(b, 1, 1, 1)
        c_skip = sd**2 / (sig**2 + sd**2)
        c_out = sig * sd / torch.sqrt(sig**2 + sd**2)
        c_in = 1.0 / torch.sqrt(sig**2 + sd**2)
        c_noise = torch.log(sigma.clamp_min(1e-12)) / 4.0
        feats = self.features(c_in * x, mixture, base, context, context_mask)
        core = self.run_core if self.run_core is not None else self.core
        spec = from_band_layout(core(feats, c_noise))  # (B, S*C, F, frames)
        f = self.spectra.synthesise(spec.reshape(b * s * ch, *spec.shape[2:]), t).reshape(b, s, ch, t)
        return c_skip * x + c_out * f


def count_parameters(module: nn.Module) -> int:
    """Parameters (the fixed Fourier frequencies of the noise embedding excluded)."""
    return sum(p.numel() for n, p in module.named_parameters() if not n.endswith("freqs"))


def macs_per_second(config: RefinerConfig) -> int:
    """Multiply-accumulates of one network evaluation per second of segment audio (the core's
    convolutions and linear layers, measured by hooks on a one-second input; the FFTs excluded)."""
    core = RefinerCore(config)
    total = 0

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
            total += k * output.numel() // output.shape[0]
        elif isinstance(module, nn.ConvTranspose2d):
            total += inputs[0].numel() // inputs[0].shape[0] * module.out_channels * module.kernel_size[0] * module.kernel_size[1]
        elif isinstance(module, nn.Linear):
            total += module.in_features * module.out_features

    handles = [m.register_forward_hook(hook) for m in core.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    frames = config.sample_rate // config.valid_multiple * config.valid_multiple // config.hop
    try:
        with torch.no_grad():
            core(torch.zeros((1, config.feature_channels * config.band_bins, config.bands, frames)), torch.zeros(1))
    finally:
        for h in handles:
            h.remove()
    return int(total * config.sample_rate / (frames * config.hop))
