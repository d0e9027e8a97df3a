"""The live separator: a causal hybrid spectral-mask + learned-encoder model with explicit state.

Architecture (per hop of ``hop_samples`` input samples, stereo in, four stems out)::

    x (B, C, n*H) --+-- low-delay STFT (analysis N=1024, synthesis M=256, hop H=128) --+
                    |     |log1p|X||  -> Linear -> ReLU --------------------+            |
                    +-- Conv1d encoder (kernel K, stride H) -> ReLU --------+            |
                    |                   |                 -> Linear -> ReLU +-> z (D)    |
                    |                   |                                   |            |
                    |                   |              z + LSTM(z) (x layers, unidirectional)
                    |                   |                                   |            |
                    |                   |            spectral masks (S, C, bins) * X ----+-> iDFT/OLA
                    |                   +---- encoder masks (S, N_w) * enc -> ConvTranspose1d/OLA
                    |                                                       |
                    +-- delayed input --> mixture-consistency projection --> stems (B, S, C, n*H)

* The spectral branch uses the asymmetric window pair of ``stemstream.realtime.models.dsp`` (the
  StemgenRT trick): 23 ms of frequency resolution, latency set by the 5.8 ms synthesis window.
* The learned-encoder (TasNet) branch adds what masking the mixture phase cannot: transients
  and phase corrections, and (after pruning frequency bins) the high band.
* Both branches' frames cover the same ``M`` output samples, so they share one overlap-add
  tail and one latency: ``latency_samples = M - H + lookahead_frames * H``.
* ``lookahead_frames`` (quality mode) delays the masks' application by ``L`` frames so the
  mask for frame ``j`` sees the LSTM output of frame ``j + L`` as well.
* Everything is real-valued convolutions, matmuls and an LSTM: it exports to ONNX with the
  state as explicit inputs and outputs.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from stemstream.realtime.errors import bad_value
from stemstream.realtime.models.base import TorchState
from stemstream.realtime.models.dsp import StreamingSTFT, asymmetric_windows, overlap_add_tail
from stemstream.realtime.stems import MODEL_SAMPLE_RATE, STEMS

#: Architecture identifier stored in weight files.
ARCHITECTURE = "hybrid-mask-tasnet-v1"

CONSISTENCY_MODES = ("none", "equal", "energy")


@dataclass(frozen=True)
class HybridConfig:
    """Configuration of :class:`HybridSeparator` (all sizes in samples / units).

    Attributes:
        stems: output stem names, in order.
        sample_rate: model rate in Hz.
        channels: audio channels (2: stereo).
        analysis_samples: DFT / analysis window length ``N``.
        synthesis_samples: synthesis window length ``M`` (sets latency).
        hop: hop size ``H`` in samples.
        kept_bins: indices of the DFT bins kept (``None``: all ``N // 2 + 1``); pruning knob.
        width: model width ``D`` (fused features, LSTM hidden size).
        lstm_layers: number of unidirectional LSTM layers (residual).
        encoder_channels: learned encoder basis size ``N_w``.
        encoder_kernel: learned encoder kernel ``K`` (causal, ``H <= K <= N``).
        lookahead_frames: extra frames of look-ahead ``L`` (0 for live).
        consistency: mixture-consistency projection: ``none``, ``equal`` (residual split
            equally) or ``energy`` (split by each stem's share of output energy).
    """

    stems: tuple[str, ...] = STEMS
    sample_rate: int = MODEL_SAMPLE_RATE
    channels: int = 2
    analysis_samples: int = 1024
    synthesis_samples: int = 256
    hop: int = 128
    kept_bins: tuple[int, ...] | None = None
    width: int = 256
    lstm_layers: int = 2
    encoder_channels: int = 128
    encoder_kernel: int = 256
    lookahead_frames: int = 0
    consistency: str = "equal"

    def __post_init__(self) -> None:
        if not self.stems:
            raise bad_value("stems", self.stems, "at least one stem name")
        for name in ("sample_rate", "channels", "hop", "width", "lstm_layers", "encoder_channels"):
            if getattr(self, name) < 1:
                raise bad_value(name, getattr(self, name), "a positive integer")
        if self.analysis_samples % self.hop:
            raise bad_value("analysis_samples", self.analysis_samples, f"a multiple of hop={self.hop}")
        if not self.hop <= self.encoder_kernel <= self.analysis_samples:
            raise bad_value(
                "encoder_kernel", self.encoder_kernel, f"between hop={self.hop} and {self.analysis_samples}"
            )
        if self.lookahead_frames < 0:
            raise bad_value("lookahead_frames", self.lookahead_frames, "an integer >= 0")
        if self.consistency not in CONSISTENCY_MODES:
            raise bad_value("consistency", self.consistency, f"one of {CONSISTENCY_MODES}")
        full = self.analysis_samples // 2 + 1
        if self.kept_bins is not None:
            kb = self.kept_bins
            if not kb or any(not 0 <= b < full for b in kb) or list(kb) != sorted(set(kb)):
                raise bad_value("kept_bins", kb, f"sorted unique bin indices in 0..{full - 1}")
        # StreamingSTFT validates the window pair.
        if self.synthesis_samples % self.hop or self.synthesis_samples // self.hop < 2:
            raise bad_value(
                "synthesis_samples", self.synthesis_samples, f"a multiple (>= 2x) of hop={self.hop}"
            )

    @property
    def hop_samples(self) -> int:
        """Samples per hop."""
        return self.hop

    @property
    def bins(self) -> int:
        """Number of DFT bins the model uses."""
        return len(self.kept_bins) if self.kept_bins is not None else self.analysis_samples // 2 + 1

    @property
    def latency_samples(self) -> int:
        """Output sample ``t`` is the separation of input sample ``t - latency_samples``."""
        return self.synthesis_samples - self.hop + self.lookahead_frames * self.hop

    def to_json(self) -> str:
        """Serialise to JSON (stored in weight files)."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "HybridConfig":
        """Build from a JSON-decoded dict (lists become tuples)."""
        data = dict(data)
        data["stems"] = tuple(data["stems"])
        if data.get("kept_bins") is not None:
            data["kept_bins"] = tuple(int(b) for b in data["kept_bins"])
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise bad_value("config keys", sorted(unknown), f"only {sorted(known)}")
        return cls(**data)


class HybridSeparator(nn.Module):
    """Causal streaming separator following ``stemstream.realtime.models.base``.

    ``forward(audio (B, C, n*H), state) -> (stems (B, S, C, n*H), state)``; ``n`` hops in one
    call equal ``n`` calls of one hop; state tensors have fixed shapes.
    """

    def __init__(self, config: HybridConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.stft = StreamingSTFT(c.analysis_samples, c.synthesis_samples, c.hop)
        if c.kept_bins is not None:
            idx = torch.tensor(c.kept_bins, dtype=torch.long)
            full = c.analysis_samples // 2 + 1
            both = torch.cat([idx, idx + full])
            self.stft.analysis_basis = self.stft.analysis_basis[both].contiguous()
            self.stft.synthesis_basis = self.stft.synthesis_basis[both].contiguous()
        s, ch, b, d = len(c.stems), c.channels, c.bins, c.width
        self.spec_in = nn.Linear(ch * b, d)
        self.encoder = nn.Conv1d(ch, c.encoder_channels, c.encoder_kernel, stride=c.hop, bias=False)
        self.wave_in = nn.Linear(c.encoder_channels, d)
        self.lstms = nn.ModuleList(nn.LSTM(d, d, batch_first=True) for _ in range(c.lstm_layers))
        head_in = d * (2 if c.lookahead_frames else 1)
        self.spec_head = nn.Linear(head_in, s * ch * b)
        self.wave_head = nn.Linear(head_in, s * c.encoder_channels)
        self.decoder = nn.ConvTranspose1d(
            c.encoder_channels, ch, c.synthesis_samples, stride=c.hop, bias=False
        )
        #: Training switch: compute the same DFTs with FFTs (complex ops, not exportable).
        #: The default matmul/convolution path is the one that exports to ONNX.
        self.fast_dsp = False
        w_a, w_s = asymmetric_windows(c.analysis_samples, c.synthesis_samples, c.hop)
        self.register_buffer("window_a", w_a.float(), persistent=False)
        self.register_buffer("window_s", w_s[c.analysis_samples - c.synthesis_samples :].float(), persistent=False)
        kept = c.kept_bins if c.kept_bins is not None else range(c.analysis_samples // 2 + 1)
        self.register_buffer("bin_index", torch.tensor(list(kept), dtype=torch.long), persistent=False)

    def _fft_analysis(self, full: torch.Tensor) -> torch.Tensor:
        """The analysis via ``torch.fft.rfft``: ``full`` (B, C, T) -> complex (B, C, n, b)."""
        c = self.config
        frames = full.unfold(-1, c.analysis_samples, c.hop) * self.window_a  # (B, C, n, N)
        spec = torch.fft.rfft(frames, dim=-1)
        if c.kept_bins is not None:
            spec = spec.index_select(-1, self.bin_index)
        return spec

    def _fft_synthesis(self, spec: torch.Tensor) -> torch.Tensor:
        """The synthesis via ``irfft`` + fold: complex (B, S, C, n, b) -> (B*S*C, (n-1)H + M)."""
        c = self.config
        n = spec.shape[-2]
        if c.kept_bins is not None:
            zeros = spec.new_zeros(*spec.shape[:-1], c.analysis_samples // 2 + 1)
            spec = zeros.index_copy(-1, self.bin_index, spec)
        frames = torch.fft.irfft(spec, n=c.analysis_samples, dim=-1)
        frames = frames[..., c.analysis_samples - c.synthesis_samples :] * self.window_s
        frames = frames.reshape(-1, n, c.synthesis_samples)  # (B', n, M)
        length = (n - 1) * c.hop + c.synthesis_samples
        out = F.fold(frames.transpose(1, 2), output_size=(1, length), kernel_size=(1, c.synthesis_samples),
                     stride=(1, c.hop))
        return out.reshape(frames.shape[0], length)

    # -- state -------------------------------------------------------------------------
    def init_state(self, batch: int = 1) -> TorchState:
        """Zero state for the start of a stream (fixed names and shapes)."""
        c = self.config
        s, ch, d, lk = len(c.stems), c.channels, c.width, c.lookahead_frames
        dev = self.spec_in.weight.device
        z = lambda *shape: torch.zeros(*shape, device=dev)  # noqa: E731
        state = {
            "history": z(batch, ch, c.analysis_samples - c.hop),
            "tail": z(batch, s, ch, c.synthesis_samples - c.hop),
            "dry": z(batch, ch, c.latency_samples),
        }
        for i in range(c.lstm_layers):
            state[f"lstm{i}_h"] = z(1, batch, d)
            state[f"lstm{i}_c"] = z(1, batch, d)
        if lk:
            state["spec_buf"] = z(batch, ch * 2 * c.bins, lk)
            state["enc_buf"] = z(batch, c.encoder_channels, lk)
            state["hid_buf"] = z(batch, d, lk)
        return state

    # -- forward -----------------------------------------------------------------------
    def forward(self, audio: torch.Tensor, state: TorchState) -> tuple[torch.Tensor, TorchState]:
        """Separate ``audio`` ``(batch, channels, n * hop)`` -> ``(batch, stems, channels, n * hop)``."""
        c = self.config
        bsz, ch, length = audio.shape
        s, b, lk, hop = len(c.stems), c.bins, c.lookahead_frames, c.hop
        n = length // hop
        new: TorchState = {}
        full = torch.cat([state["history"], audio], dim=-1)  # (B, C, N - H + nH)
        new["history"] = full[..., full.shape[-1] - (c.analysis_samples - hop) :]
        if self.fast_dsp:  # training path: complex FFTs, spec (B, C, n, b) complex
            spec = self._fft_analysis(full)
            mag = spec.abs().clamp_min(1e-4)
            feat = torch.log1p(mag).transpose(1, 2).reshape(bsz, n, ch * b)
        else:  # export path: spec (B, C*2b, n) real, per channel [re; im]
            spec = F.conv1d(full.reshape(bsz * ch, 1, -1), self.stft.analysis_basis, stride=hop)
            spec = spec.reshape(bsz, ch * 2 * b, n)
            re_im = spec.reshape(bsz, ch, 2, b, n)
            mag = torch.sqrt(re_im[:, :, 0] ** 2 + re_im[:, :, 1] ** 2 + 1e-8)  # (B, C, b, n)
            feat = torch.log1p(mag).reshape(bsz, ch * b, n).transpose(1, 2)  # (B, n, C*b)
        enc_in = full[..., c.analysis_samples - c.encoder_kernel :]
        enc = torch.relu(self.encoder(enc_in))  # (B, N_w, n)
        z = torch.relu(self.spec_in(feat)) + torch.relu(self.wave_in(enc.transpose(1, 2)))
        for i, lstm in enumerate(self.lstms):
            out, (h, cc) = lstm(z, (state[f"lstm{i}_h"], state[f"lstm{i}_c"]))
            new[f"lstm{i}_h"], new[f"lstm{i}_c"] = h, cc
            z = z + out  # (B, n, D)

        if lk:
            hid = torch.cat([state["hid_buf"], z.transpose(1, 2)], dim=-1)  # (B, D, L + n)
            if self.fast_dsp:
                buf = state["spec_buf"].reshape(bsz, ch, 2, b, lk)
                buf = torch.complex(buf[:, :, 0], buf[:, :, 1]).transpose(-1, -2)  # (B, C, L, b)
                spec_all = torch.cat([buf, spec], dim=2)
                rest = spec_all[:, :, n:].transpose(-1, -2)  # (B, C, b, L)
                new["spec_buf"] = torch.stack([rest.real, rest.imag], 2).reshape(bsz, ch * 2 * b, lk)
                spec = spec_all[:, :, :n]
            else:
                spec_all = torch.cat([state["spec_buf"], spec], dim=-1)
                new["spec_buf"] = spec_all[..., n:]
                spec = spec_all[..., :n]
            enc_all = torch.cat([state["enc_buf"], enc], dim=-1)
            new["hid_buf"] = hid[..., n:]
            new["enc_buf"] = enc_all[..., n:]
            head_in = torch.cat([hid[..., :n], hid[..., lk:]], dim=1).transpose(1, 2)
            enc = enc_all[..., :n]
        else:
            head_in = z

        masks = torch.sigmoid(self.spec_head(head_in))  # (B, n, S*C*b)
        if self.fast_dsp:
            masks = masks.reshape(bsz, n, s, ch, b).permute(0, 2, 3, 1, 4)  # (B,S,C,n,b)
            spec_out = self._fft_synthesis(masks * spec.unsqueeze(1))
        else:
            masks = masks.reshape(bsz, n, s, ch, 1, b).permute(0, 2, 3, 4, 5, 1)  # (B,S,C,1,b,n)
            masked = masks * spec.reshape(bsz, 1, ch, 2, b, n)
            masked = masked.reshape(bsz * s * ch, 2 * b, n)
            spec_out = F.conv_transpose1d(masked, self.stft.synthesis_basis, stride=hop)
        spec_out = spec_out.reshape(bsz, s, ch, -1)

        wmask = torch.sigmoid(self.wave_head(head_in))  # (B, n, S*N_w)
        wmask = wmask.reshape(bsz, n, s, c.encoder_channels).permute(0, 2, 3, 1)  # (B,S,N_w,n)
        latent = (wmask * enc.unsqueeze(1)).reshape(bsz * s, c.encoder_channels, n)
        wave_out = self.decoder(latent).reshape(bsz, s, ch, -1)

        stems, new["tail"] = overlap_add_tail(spec_out + wave_out, state["tail"], n * hop)
        dry_all = torch.cat([state["dry"], audio], dim=-1)
        dry = dry_all[..., :length]
        new["dry"] = dry_all[..., length:]
        stems = mixture_consistency(stems, dry, c.consistency)
        return stems, new


def mixture_consistency(stems: torch.Tensor, mixture: torch.Tensor, mode: str) -> torch.Tensor:
    """Project ``stems`` ``(B, S, C, T)`` so they sum to ``mixture`` ``(B, C, T)``.

    ``equal`` adds ``residual / S`` to every stem; ``energy`` splits the residual in
    proportion to each stem's squared output at that sample (plus a small floor so silent
    outputs still sum exactly); ``none`` returns ``stems`` unchanged.
    """
    if mode == "none":
        return stems
    residual = mixture - stems.sum(dim=1)
    if mode == "equal":
        return stems + residual.unsqueeze(1) / stems.shape[1]
    power = stems.pow(2) + 1e-8
    weights = power / power.sum(dim=1, keepdim=True)
    return stems + weights * residual.unsqueeze(1)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters())


def macs_per_hop(config: HybridConfig) -> int:
    """Multiply-accumulates one hop costs (convolutions, linear layers, LSTM gates, masks)."""
    c = config
    s, ch, b, d, nw = len(c.stems), c.channels, c.bins, c.width, c.encoder_channels
    head_in = d * (2 if c.lookahead_frames else 1)
    macs = ch * 2 * b * c.analysis_samples  # DFT analysis
    macs += ch * b * 2  # magnitude
    macs += ch * b * d + nw * d  # feature projections
    macs += ch * nw * c.encoder_kernel  # learned encoder
    macs += c.lstm_layers * 4 * d * (2 * d)  # LSTM gates (input + recurrent)
    macs += head_in * (s * ch * b + s * nw)  # mask heads
    macs += s * ch * 2 * b  # applying spectral masks
    macs += s * ch * 2 * b * c.synthesis_samples  # inverse DFT / overlap-add
    macs += s * nw + s * nw * ch * c.synthesis_samples  # encoder masks + decoder
    return macs


def field_names() -> tuple[str, ...]:
    """Names of the config fields (for CLI overrides)."""
    return tuple(HybridConfig.__dataclass_fields__)


__all__ = [
    "ARCHITECTURE",
    "HybridConfig",
    "HybridSeparator",
    "count_parameters",
    "macs_per_hop",
    "mixture_consistency",
]
