"""The conditional multi-source diffusion refiner: the residual Dirac sampler (teacher) and the
consistency-distilled step (student).

What is diffused is the residual ``delta = stems - base`` of a discriminative base model's
estimate ``base (B, S, C, T)`` of the stems of ``mixture (B, C, T)``. The thesis' Dirac
constraint (Eq. 4.10, Algorithm 2) carries over: the refined stems ``base + delta`` must sum
to the mixture, so ``sum_s delta_s = r`` with ``r = mixture - sum_s base_s``, zero for a
mixture-consistent base (ours are: ``stemstream.realtime.models.hybrid.mixture_consistency``).
The samplers of :mod:`stemstream.realtime.diffusion.samplers` run unchanged on ``delta`` with
``Conditioning(mixture=r)``: the last stem's residual is ``r - sum(others)``. An oracle
denoiser that knows ``delta`` returns it at every noise level, so a perfect base (``delta =
0``) comes back unchanged; ``tests/test_refiner_sampling.py`` shows it.

Autoregressive segments (thesis Sec. 4.6): the previous segment's refined stems over this
segment's first ``O = context_samples`` samples become a context *residual* (``context -
base[..., :O]``); the samplers overwrite the state's overlap with it (plus noise at the
current sigma), and the network also reads it, noise-free, with a mask channel, as the
unconditional student does (:mod:`stemstream.realtime.diffusion.student`).

The student (:class:`RefinerStep`) maps a Dirac-constrained noisy residual at level ``sigma``
straight to the clean residual (a consistency function, Song et al. 2023), 1 or 2 evaluations.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from stemstream.realtime.diffusion.refiner_net import REFINER_ARCHITECTURE, RefinerConfig, RefinerDenoiser
from stemstream.realtime.diffusion.samplers import SAMPLERS, Conditioning, Denoiser, dirac_project, karras_sigmas
from stemstream.realtime.errors import bad_value

#: Architecture identifier of a refiner student's weight file.
REFINER_STUDENT_ARCHITECTURE = "msdm-refiner-student-v1"

#: Teacher samplers a refiner runs (``SAMPLERS`` keys).
REFINER_SAMPLERS: tuple[str, ...] = ("dirac", "dirac-projected")


def residual_sum(mixture: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
    """``r = mixture - sum_s base_s`` ``(B, C, T)``: what the residuals of all stems must sum to."""
    return mixture - base.sum(dim=1)


def context_channels(context: torch.Tensor | None, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The network's context inputs for a context residual ``(B, S, C, O)`` or None: the residual
    zero-padded to ``like``'s length ``(B, S, C, T)`` and the mask ``(B,)`` (1: context given)."""
    b = like.shape[0]
    if context is None:
        return torch.zeros_like(like), torch.zeros(b, dtype=like.dtype)
    pad = like.shape[-1] - context.shape[-1]
    return torch.nn.functional.pad(context, (0, pad)), torch.ones(b, dtype=like.dtype)


def bind(denoiser: RefinerDenoiser, mixture: torch.Tensor, base: torch.Tensor,
         context: torch.Tensor | None = None) -> Denoiser:
    """``denoiser`` with its conditioning fixed: the ``D(x, sigma)`` the samplers call."""
    ctx, mask = context_channels(context, base)
    return lambda x, sigma: denoiser(x, sigma, mixture, base, ctx, mask)


def refine(denoiser: RefinerDenoiser | Denoiser, mixture: torch.Tensor, base: torch.Tensor, *, steps: int,
           sampler: str = "dirac", context: torch.Tensor | None = None, s_churn: float = 0.0, corrections: int = 0,
           constrained: int = -1, generator: torch.Generator | None = None) -> torch.Tensor:
    """The teacher's refinement: a Dirac separator (Algorithm 2, or its projected variant) on the
    residual. ``mixture (B, C, T)``, ``base (B, S, C, T)`` at the normalised scale; ``context``:
    the context *residual* ``(B, S, C, O)`` or None. ``denoiser``: a :class:`RefinerDenoiser`, or
    any ``D(x, sigma)`` (an oracle, in the tests). Returns the refined stems ``(B, S, C, T)``,
    summing to ``mixture``. Network evaluations: ``steps * (corrections + 1)``."""
    if sampler not in REFINER_SAMPLERS:
        raise bad_value("sampler", sampler, f"one of {REFINER_SAMPLERS}")
    if isinstance(denoiser, RefinerDenoiser):
        cfg = denoiser.config
        sigmas = karras_sigmas(steps, cfg.sigma_min, cfg.sigma_max)
        fn = bind(denoiser, mixture, base, context)
    else:
        sigmas, fn = karras_sigmas(steps, 1e-4, 0.5), denoiser  # an oracle: any range will do
    noise = torch.randn(base.shape, generator=generator, dtype=base.dtype) * float(sigmas[0])
    cond = Conditioning(mixture=residual_sum(mixture, base), context=context, constrained=constrained)
    delta = SAMPLERS[sampler](fn, noise, sigmas, cond, s_churn=s_churn, corrections=corrections, generator=generator)
    return base + delta


@dataclass(frozen=True)
class RefinerStudentConfig:
    """A refiner student: its network and the noise levels of its consistency steps.

    Attributes:
        net: the network (the teacher's configuration).
        sigmas: noise levels of the consistency evaluations, decreasing; 1 step uses the first,
            ``k`` steps the first ``k``. The first is ``net.sigma_max``; the second is where a
            residual of RMS ``sigma_data`` starts to stand out of the noise (1.6 ``sigma_data``).
    """

    net: RefinerConfig
    sigmas: tuple[float, ...] = (10.0, 0.08, 0.02, 0.005)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sigmas", tuple(float(s) for s in self.sigmas))
        if not self.sigmas or any(a <= b for a, b in zip(self.sigmas[:-1], self.sigmas[1:])) or self.sigmas[-1] <= 0:
            raise bad_value("sigmas", self.sigmas, "a strictly decreasing sequence of positive floats")

    def to_json(self) -> str:
        """JSON for weight-file metadata."""
        return json.dumps({"net": json.loads(self.net.to_json()), "sigmas": list(self.sigmas)}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "RefinerStudentConfig":
        """Inverse of :meth:`to_json`."""
        d = json.loads(text)
        return cls(net=RefinerConfig.from_json(json.dumps(d["net"])), sigmas=tuple(d["sigmas"]))


def overwrite_context(x: torch.Tensor, context: torch.Tensor, mask: torch.Tensor, noise: torch.Tensor | None,
                      sigma: torch.Tensor) -> torch.Tensor:
    """The first ``O`` samples of ``x (B, S, C, T)`` replaced, where ``mask (B,)`` is 1, by the
    context residual ``(B, S, C, O)`` plus ``sigma * noise`` (``noise`` None: exactly the context)."""
    o = context.shape[-1]
    m = mask.reshape(-1, 1, 1, 1).to(x.dtype)
    head = context if noise is None else context + sigma.reshape(-1, 1, 1, 1) * noise[..., :o]
    return torch.cat([m * head + (1 - m) * x[..., :o], x[..., o:]], dim=-1)


class RefinerStep(nn.Module):
    """One consistency evaluation of the refiner student.

    ``forward(noise (B,S,C,T), sigma (B,), mixture (B,C,T), base (B,S,C,T), context (B,S,C,O),
    context_mask (B,), previous (B,S,C,T) | None) -> (B,S,C,T)``: the clean residual. The state
    is ``previous + sigma * noise`` (``previous`` 0 on the first step), its overlap overwritten
    by the context residual plus noise where ``context_mask`` is 1, Dirac-projected onto ``sum_s
    delta_s = mixture - sum_s base_s``; the output has the exact context over the overlap and
    the same constraint. ``O = net.context_samples``.
    """

    def __init__(self, config: RefinerStudentConfig) -> None:
        super().__init__()
        self.config = config
        self.denoiser = RefinerDenoiser(config.net)

    def forward(self, noise: torch.Tensor, sigma: torch.Tensor, mixture: torch.Tensor, base: torch.Tensor,
                context: torch.Tensor, context_mask: torch.Tensor, previous: torch.Tensor | None = None) -> torch.Tensor:
        r = residual_sum(mixture, base)
        start = previous if previous is not None else torch.zeros_like(noise)
        x = start + sigma.reshape(-1, 1, 1, 1) * noise
        x = dirac_project(overwrite_context(x, context, context_mask, noise, sigma), r)
        ctx = torch.nn.functional.pad(context, (0, noise.shape[-1] - context.shape[-1]))
        ctx = ctx * context_mask.reshape(-1, 1, 1, 1).to(ctx.dtype)
        denoised = self.denoiser(x, sigma, mixture, base, ctx, context_mask)
        return dirac_project(overwrite_context(denoised, context, context_mask, None, sigma), r)


def sample_refiner_student(step: RefinerStep, mixture: torch.Tensor, base: torch.Tensor, context: torch.Tensor | None,
                           steps: int, noise: torch.Tensor) -> torch.Tensor:
    """Multistep consistency sampling (Song et al. 2023, Alg. 1) with ``steps`` evaluations.

    ``mixture (B, C, T)`` and ``base (B, S, C, T)`` normalised, ``context`` a context residual
    ``(B, S, C, O)`` or None, ``noise (steps, B, S, C, T)`` unit Gaussian. Returns the refined
    stems ``(B, S, C, T)``, summing to ``mixture``.
    """
    cfg = step.config
    if not 1 <= steps <= len(cfg.sigmas):
        raise bad_value("steps", steps, f"an integer in [1, {len(cfg.sigmas)}]")
    b = mixture.shape[0]
    o = cfg.net.context_samples
    mask = torch.ones(b) if context is not None else torch.zeros(b)
    ctx = context if context is not None else torch.zeros((*base.shape[:3], o), dtype=base.dtype)
    estimate = None
    for k in range(steps):
        sigma = torch.full((b,), cfg.sigmas[k], dtype=mixture.dtype)
        estimate = step(noise[k], sigma, mixture, base, ctx, mask, estimate)
    return base + estimate


def init_student(teacher: RefinerDenoiser, sigmas: tuple[float, ...] | None = None) -> RefinerStep:
    """A student that starts as ``teacher`` (same network and weights); ``sigmas`` default to the
    teacher's ``sigma_max``, then 1.6, 0.4 and 0.1 times its ``sigma_data``."""
    net = teacher.config
    levels = sigmas or (net.sigma_max, *(net.sigma_data * f for f in (1.6, 0.4, 0.1)))
    step = RefinerStep(RefinerStudentConfig(net=net, sigmas=levels))
    step.denoiser.load_state_dict(teacher.state_dict())
    return step


def load_refiner_teacher(path: str | Path) -> RefinerDenoiser:
    """A refiner teacher from its weight file (checksum verified), eval mode."""
    from stemstream.realtime.models.weights import WeightFileError, read_weights

    tensors, meta = read_weights(path)
    if meta["architecture"] != REFINER_ARCHITECTURE:
        raise WeightFileError(f"weights={str(path)!r}: architecture {meta['architecture']!r} != {REFINER_ARCHITECTURE!r}")
    model = RefinerDenoiser(RefinerConfig.from_json(meta["config"]))
    model.load_state_dict(tensors)
    return model.eval().requires_grad_(False)


def load_refiner_student(path: str | Path) -> tuple[RefinerStep, dict[str, str]]:
    """A refiner student from its weight file (checksum verified) and its metadata."""
    from stemstream.realtime.models.weights import WeightFileError, read_weights

    tensors, meta = read_weights(path)
    if meta["architecture"] != REFINER_STUDENT_ARCHITECTURE:
        raise WeightFileError(f"weights={str(path)!r}: architecture {meta['architecture']!r} "
                              f"!= {REFINER_STUDENT_ARCHITECTURE!r}")
    step = RefinerStep(RefinerStudentConfig.from_json(meta["config"]))
    step.denoiser.load_state_dict(tensors)
    return step.eval().requires_grad_(False), meta
