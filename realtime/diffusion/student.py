"""The consistency-distilled student: separation in 1 or 2 network evaluations, as a
``stemstream.realtime.protocol.SegmentModel`` the streaming engine runs window by window.

The student ``f(x_sigma, sigma, y, context, mask)`` maps a noisy, Dirac-constrained state at
noise level ``sigma`` straight to the clean stems (a consistency function, Song et al. 2023;
thesis Sec. 6.1), distilled from the teacher's Dirac separation sampler (``stemstream.export.distill``).
Its network is the teacher's U-Net with extra input channels: the mixture, the
autoregressive context (previous window's stems over the first ``O`` samples, zero after)
and a context mask channel.

Both the input state and the output obey the teacher's rules: the overlap region is the
context (plus noise at ``sigma`` on the input, exact on the output) and the last stem is
``mixture - sum(others)`` (Eq. 4.10), so the stems sum to the mixture.

Mono models: ``separate_segment`` downmixes its ``(channels, W)`` input, separates the mono
mix and returns every stem duplicated on all channels (the stems then sum to the downmix on
each channel, not to each original channel). The noise of each evaluation is drawn once at
construction (seeded), so the model is deterministic and stateless across segments.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from stemstream.realtime.diffusion.samplers import dirac_project
from stemstream.realtime.diffusion.segments import TARGET_RMS
from stemstream.realtime.diffusion.unet import ScoreUNet, UNetConfig
from stemstream.realtime.errors import bad_value
from stemstream.realtime.protocol import ModelInfo

#: Architecture identifier stored in student weight files.
STUDENT_ARCHITECTURE = "msdm-consistency-student-v1"


def student_cond_channels(stems: int, channels: int) -> int:
    """Conditioning channels of a student: mixture (C) + context (S*C) + mask (1)."""
    return channels + stems * channels + 1


@dataclass(frozen=True)
class StudentConfig:
    """A student's network and sampling set-up.

    Attributes:
        net: the U-Net (``cond_channels`` must equal :func:`student_cond_channels`).
        context_samples: overlap ``O`` conditioned on the previous window, samples.
        sigmas: noise levels of the consistency steps (first = sigma_max); 1 step uses the
            first, ``k`` steps the first ``k``.
    """

    net: UNetConfig
    context_samples: int
    sigmas: tuple[float, ...] = (1.0, 0.25, 0.06, 0.015)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sigmas", tuple(float(s) for s in self.sigmas))
        want = student_cond_channels(len(self.net.stems), self.net.channels)
        if self.net.cond_channels != want:
            raise bad_value("net.cond_channels", self.net.cond_channels, f"{want} (mixture + context + mask)")
        if not 0 <= self.context_samples < self.net.segment_samples:
            raise bad_value("context_samples", self.context_samples, f"an integer in [0, {self.net.segment_samples})")
        if not self.sigmas or any(a <= b for a, b in zip(self.sigmas[:-1], self.sigmas[1:])) or self.sigmas[-1] <= 0:
            raise bad_value("sigmas", self.sigmas, "a strictly decreasing sequence of positive floats")

    def to_json(self) -> str:
        """JSON for weight-file metadata."""
        return json.dumps({"net": json.loads(self.net.to_json()), "context_samples": self.context_samples,
                           "sigmas": list(self.sigmas)}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "StudentConfig":
        """Inverse of :meth:`to_json`."""
        d = json.loads(text)
        return cls(net=UNetConfig.from_json(json.dumps(d["net"])), context_samples=int(d["context_samples"]),
                   sigmas=tuple(d["sigmas"]))


class StudentStep(nn.Module):
    """One consistency evaluation, the graph exported to ONNX.

    ``forward(noise (B,S,C,T), sigma (B,), mixture (B,C,T), context (B,S,C,O),
    context_mask (B,)) -> (B,S,C,T)``: ``noise`` is unit Gaussian; the state is
    ``x0_prev + sigma * noise`` with ``x0_prev = 0`` on the first step (pass the previous
    estimate through ``previous``). Output: clean stems, context over the first ``O``
    samples where ``context_mask`` is 1, Dirac-constrained last stem.
    """

    def __init__(self, config: StudentConfig) -> None:
        super().__init__()
        self.config = config
        self.net = ScoreUNet(config.net)

    def _overwrite(self, x: torch.Tensor, context: torch.Tensor, mask: torch.Tensor, noise: torch.Tensor | None,
                   sigma: torch.Tensor) -> torch.Tensor:
        o = self.config.context_samples
        if o == 0:
            return x
        m = mask.reshape(-1, 1, 1, 1).to(x.dtype)
        head = context if noise is None else context + sigma.reshape(-1, 1, 1, 1) * noise[..., :o]
        return torch.cat([m * head + (1 - m) * x[..., :o], x[..., o:]], dim=-1)

    def forward(self, noise: torch.Tensor, sigma: torch.Tensor, mixture: torch.Tensor, context: torch.Tensor,
                context_mask: torch.Tensor, previous: torch.Tensor | None = None) -> torch.Tensor:
        b, s, c, t = noise.shape
        o = self.config.context_samples
        base = previous if previous is not None else torch.zeros_like(noise)
        x = base + sigma.reshape(-1, 1, 1, 1) * noise
        x = dirac_project(self._overwrite(x, context, context_mask, noise, sigma), mixture)
        ctx_full = torch.cat([context.reshape(b, s * c, o), torch.zeros((b, s * c, t - o), dtype=x.dtype)], dim=-1)
        mask_row = torch.cat([torch.ones((b, 1, o), dtype=x.dtype), torch.zeros((b, 1, t - o), dtype=x.dtype)], dim=-1)
        mask_row = mask_row * context_mask.reshape(-1, 1, 1).to(x.dtype)
        cond = torch.cat([mixture, ctx_full * mask_row, mask_row], dim=1)
        denoised = self.net(x, sigma, cond)
        return dirac_project(self._overwrite(denoised, context, context_mask, None, sigma), mixture)


def init_student_from_teacher(student: StudentStep, teacher: ScoreUNet) -> None:
    """Copy the teacher's weights into the student; the extra conditioning input channels of
    the first convolution and the extra outputs of the last (mixture gains) start at zero, so
    the initial student equals the teacher's denoiser."""
    own = student.net.state_dict()
    for name, tensor in teacher.state_dict().items():
        if name == "conv_in.weight":
            own[name].zero_()
            own[name][:, : tensor.shape[1]] = tensor
        elif name.startswith("conv_out."):
            own[name].zero_()
            own[name][: tensor.shape[0]] = tensor
        else:
            own[name].copy_(tensor)
    student.net.load_state_dict(own)


def sample_student(
    step: StudentStep,
    mixture: torch.Tensor,
    context: torch.Tensor | None,
    steps: int,
    noise: torch.Tensor,
) -> torch.Tensor:
    """Multistep consistency sampling (Song et al. 2023, Alg. 1) with ``steps`` evaluations.

    ``mixture (B, C, T)`` (normalised), ``context (B, S, C, O)`` or None, ``noise
    (steps, B, S, C, T)`` unit Gaussian. Returns ``(B, S, C, T)`` summing to ``mixture``.
    """
    cfg = step.config
    if not 1 <= steps <= len(cfg.sigmas):
        raise bad_value("steps", steps, f"an integer in [1, {len(cfg.sigmas)}]")
    b, c, t = mixture.shape
    s = len(cfg.net.stems)
    o = cfg.context_samples
    mask = torch.ones(b) if context is not None else torch.zeros(b)
    ctx = context if context is not None else torch.zeros((b, s, c, o), dtype=mixture.dtype)
    estimate = None
    for k in range(steps):
        sigma = torch.full((b,), cfg.sigmas[k], dtype=mixture.dtype)
        estimate = step(noise[k], sigma, mixture, ctx, mask, estimate)
    return estimate


class DiffusionSegmentModel:
    """The student as a :class:`stemstream.realtime.protocol.SegmentModel` (numpy in, numpy out).

    ``separate_segment(audio (channels, W), context (S, channels, O) | None) -> (S, channels, W)``
    at ``info.sample_rate`` (the engine resamples host <-> model rate). Each segment is
    normalised to the training mixture RMS (the context with the same gain) and scaled back.
    ``backend`` ``"torch"`` runs the module; ``"onnx"`` an ONNX Runtime session of the
    exported :class:`StudentStep` (``stemstream.realtime.diffusion.student_onnx``).
    """

    kind: Literal["segment"] = "segment"

    def __init__(self, step: StudentStep, name: str = "diffusion-1step", steps: int = 1, channels: int = 2,
                 seed: int = 0, onnx_session: object | None = None) -> None:
        cfg = step.config
        if not 1 <= steps <= len(cfg.sigmas):
            raise bad_value("steps", steps, f"an integer in [1, {len(cfg.sigmas)}]")
        if channels < 1:
            raise bad_value("channels", channels, "an integer >= 1")
        self.step = step.eval()
        self.steps = steps
        self.segment_samples = cfg.net.segment_samples
        self.context_samples = cfg.context_samples
        self.info = ModelInfo(name=name, stems=cfg.net.stems, sample_rate=cfg.net.sample_rate, channels=channels,
                              latency_samples=0)
        s, mc = len(cfg.net.stems), cfg.net.channels
        gen = torch.Generator().manual_seed(seed)
        self._noise = torch.randn((steps, 1, s, mc, self.segment_samples), generator=gen)
        self._session = onnx_session

    def _run(self, mixture: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        if self._session is None:
            with torch.inference_mode():
                return sample_student(self.step, mixture, context, self.steps, self._noise)
        cfg = self.step.config
        s, mc, o = len(cfg.net.stems), cfg.net.channels, cfg.context_samples
        ctx = context if context is not None else torch.zeros((1, s, mc, o))
        mask = np.array([1.0 if context is not None else 0.0], np.float32)
        previous = np.zeros((1, s, mc, self.segment_samples), np.float32)
        for k in range(self.steps):
            feeds = {"noise": self._noise[k].numpy(), "sigma": np.array([cfg.sigmas[k]], np.float32),
                     "mixture": mixture.numpy(), "context": ctx.numpy().astype(np.float32), "context_mask": mask,
                     "previous": previous}
            previous = self._session.run(["stems"], feeds)[0]
        return torch.from_numpy(previous)

    def separate_segment(self, audio: np.ndarray, context: np.ndarray | None) -> np.ndarray:
        """Separate ``audio (channels, segment_samples)``; see the class docstring."""
        audio = np.asarray(audio, np.float32)
        if audio.ndim != 2 or audio.shape[1] != self.segment_samples:
            raise bad_value("audio.shape", audio.shape, f"(channels, {self.segment_samples})")
        channels = audio.shape[0]
        mono = audio.mean(axis=0, keepdims=True)
        rms = float(np.sqrt(np.mean(mono**2)))
        stems = len(self.info.stems)
        if rms < 1e-6:
            return np.zeros((stems, channels, self.segment_samples), np.float32)
        gain = TARGET_RMS / rms
        ctx = None
        if context is not None and self.context_samples:
            context = np.asarray(context, np.float32)
            if context.shape != (stems, channels, self.context_samples):
                raise bad_value("context.shape", context.shape, f"({stems}, {channels}, {self.context_samples})")
            ctx = torch.from_numpy(context.mean(axis=1, keepdims=True) * gain)[None]
        out = self._run(torch.from_numpy(mono * gain)[None], ctx)[0] / gain  # (S, 1, W)
        return np.ascontiguousarray(np.repeat(out.numpy(), channels, axis=1), dtype=np.float32)


def load_student_step(path: str | Path) -> tuple[StudentStep, dict[str, str]]:
    """Read a student weight file (checksum verified); returns the module and metadata."""
    from stemstream.realtime.models.weights import WeightFileError, read_weights

    tensors, meta = read_weights(path)
    if meta["architecture"] != STUDENT_ARCHITECTURE:
        raise WeightFileError(f"weights={str(path)!r}: architecture {meta['architecture']!r} != {STUDENT_ARCHITECTURE!r}")
    step = StudentStep(StudentConfig.from_json(meta["config"]))
    step.net.load_state_dict(tensors)
    return step.eval(), meta


def macs_per_evaluation(step: StudentStep) -> int:
    """Multiply-accumulates of one network evaluation on one segment (conv and linear layers)."""
    total = 0

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, (nn.Conv1d, nn.ConvTranspose1d)):
            c_in = module.in_channels // module.groups
            length = output.shape[-1] if isinstance(module, nn.Conv1d) else inputs[0].shape[-1]
            total += c_in * module.out_channels * module.kernel_size[0] * length
        elif isinstance(module, nn.Linear):
            total += module.in_features * module.out_features

    handles = [m.register_forward_hook(hook) for m in step.modules() if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d, nn.Linear))]
    cfg = step.config
    s, c, w, o = len(cfg.net.stems), cfg.net.channels, cfg.net.segment_samples, cfg.context_samples
    try:
        with torch.no_grad():
            step(torch.zeros((1, s, c, w)), torch.ones(1), torch.zeros((1, c, w)), torch.zeros((1, s, c, o)), torch.zeros(1))
    finally:
        for h in handles:
            h.remove()
    frames = step.net.frames
    if frames is not None:  # the fixed STFT analysis and synthesis (functional convolutions)
        net = cfg.net
        total += (2 * net.stem_channels + net.cond_channels) * frames.size * frames.size * (w // frames.hop)
    return int(total)


def describe_student(path: str | Path, steps: int = 1) -> dict[str, object]:
    """Fields for a registry model card of a student weight file.

    ``hop_samples`` is the new audio per segment (``W - O``); ``latency_samples`` is 0, as in
    the model's ``ModelInfo`` (it separates a window in place, adding no delay); ``buffer_samples``
    is the whole window a streaming engine gathers before the window's output is final.
    """
    step, meta = load_student_step(path)
    cfg = step.config
    hop = cfg.net.segment_samples - cfg.context_samples
    return {
        "stems": cfg.net.stems,
        "sample_rate": cfg.net.sample_rate,
        "channels": 2,
        "hop_samples": hop,
        "latency_samples": 0,
        "buffer_samples": cfg.net.segment_samples,
        "params": int(sum(p.numel() for n, p in step.net.named_parameters() if not n.endswith("freqs"))),
        "macs_per_second": int(round(steps * macs_per_evaluation(step) * cfg.net.sample_rate / hop)),
        "architecture": meta["architecture"],
        "path": str(path),
        "run_record": json.loads(meta.get("run_record", "{}") or "{}"),
    }
