"""Samplers of the multi-source diffusion model: flat functions with one shared signature.

Every sampler is ``sample_x(denoiser, x, sigmas, cond, *, s_churn=0.0, corrections=0,
generator=None, callback=None) -> x0`` (the k-diffusion convention):

* ``denoiser(x (B, S, C, T), sigma (B,)) -> (B, S, C, T)``: the network's estimate of the
  clean stems (``ScoreUNet``; score = ``(D - x) / sigma**2``).
* ``x``: the starting noise at ``sigmas[0]`` (``randn * sigmas[0]``), ``(B, S, C, T)``.
* ``sigmas``: decreasing noise levels ending in 0 (:func:`karras_sigmas`), ``I + 1`` values
  for ``I`` steps. sigma(t) = t, so the probability-flow ODE is ``dx/dsigma = (x - D) / sigma``.
* ``cond``: :class:`Conditioning` - the mixture (separation), the given stems (partial
  generation) and the autoregressive context (segment sampling).
* ``s_churn``: stochasticity of Karras et al. (2022, Alg. 2), used as in the thesis'
  Algorithm 2 line 2 (``alpha = min(S_churn / I, sqrt(2) - 1)``, applied at every step).
* ``corrections``: ``R`` correction steps per step (Algorithm 2 lines 4 and 15-17): after a
  step the sample is re-noised back to ``sigma_i`` and denoised again.
* ``generator``: a ``torch.Generator`` for every random draw, so a run is reproducible.
* ``callback(info: dict)`` after every network evaluation with ``i``, ``sigma``, ``x``,
  ``denoised``.

Network evaluations per run: ``I * (R + 1)``.

The autoregressive context (thesis Sec. 4.6, Fig. 4.4) is applied inside every step: the
first ``overlap`` samples of every stem are overwritten with the previous window's separated
output plus fresh noise at the current sigma, before the constraint and the network call.
At sigma = 0 (the end) the overlap equals the context exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from realtime.errors import bad_value

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Callback = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Conditioning:
    """What a sampler is conditioned on (all tensors on the sampler's device and dtype).

    Attributes:
        mixture: ``(B, C, T)`` mixture to separate (Dirac and Gaussian separators).
        given: ``(B, S, C, T)`` known stems for partial generation (entries of stems not in
            ``given_mask`` are ignored).
        given_mask: ``(S,)`` bool, which stems are given.
        context: ``(B, S, C, O)`` previous window's separated output over this window's first
            ``O`` samples (autoregressive segment sampling), or None.
        constrained: index of the Dirac-constrained stem (the thesis' ``N``; default last).
        gamma_scale: Gaussian likelihood standard deviation ``gamma(t) = gamma_scale * sigma``.
    """

    mixture: torch.Tensor | None = None
    given: torch.Tensor | None = None
    given_mask: torch.Tensor | None = None
    context: torch.Tensor | None = None
    constrained: int = -1
    gamma_scale: float = 0.75

    def __post_init__(self) -> None:
        if (self.given is None) != (self.given_mask is None):
            raise bad_value("given_mask", self.given_mask, "given together with 'given'")
        if self.gamma_scale <= 0:
            raise bad_value("gamma_scale", self.gamma_scale, "a positive float")


def karras_sigmas(steps: int, sigma_min: float = 1e-4, sigma_max: float = 1.0, rho: float = 7.0) -> torch.Tensor:
    """The thesis' schedule (Sec. 4.3.4, from Karras et al. 2022 Eq. 5) with a final 0.

    ``sigma_i = (sigma_max^(1/rho) + i/(I-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho``
    for ``0 <= i < I``, then 0. Returns ``(steps + 1,)`` float32.
    """
    if steps < 1:
        raise bad_value("steps", steps, "an integer >= 1")
    if not 0 < sigma_min <= sigma_max:
        raise bad_value("sigma_min", sigma_min, f"a float in (0, sigma_max={sigma_max}]")
    if steps == 1:
        return torch.tensor([sigma_max, 0.0], dtype=torch.float32)
    ramp = torch.linspace(0, 1, steps, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    sig = (hi + ramp * (lo - hi)) ** rho
    return torch.cat([sig, torch.zeros(1, dtype=torch.float64)]).float()


def _randn(like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(like.shape, generator=generator, dtype=like.dtype, device=like.device)


def dirac_project(x: torch.Tensor, mixture: torch.Tensor, constrained: int = -1) -> torch.Tensor:
    """Set the constrained stem to ``mixture - sum(others)`` (Algorithm 2, lines 8 and 14).

    ``x (B, S, C, T)``, ``mixture (B, C, T)``; returns a new tensor whose stems sum to
    ``mixture`` (exactly, up to float rounding).
    """
    n = constrained % x.shape[1]
    others = torch.cat([x[:, :n], x[:, n + 1 :]], dim=1).sum(dim=1)
    out = x.clone()
    out[:, n] = mixture - others
    return out


def _apply_context(x: torch.Tensor, cond: Conditioning, sigma: float, generator: torch.Generator | None) -> torch.Tensor:
    """Overwrite the first ``O`` samples of every stem with context + noise at ``sigma``."""
    if cond.context is None or cond.context.shape[-1] == 0:
        return x
    o = cond.context.shape[-1]
    x = x.clone()
    x[..., :o] = cond.context + sigma * _randn(cond.context, generator) if sigma > 0 else cond.context
    return x


def _apply_given(x: torch.Tensor, cond: Conditioning, sigma: float, generator: torch.Generator | None) -> torch.Tensor:
    """Replace the given stems by a forward-process sample ``x_I(0) + sigma * eps`` (Sec. 4.3.2)."""
    if cond.given is None:
        return x
    mask = cond.given_mask.to(torch.bool).reshape(1, -1, 1, 1)
    noisy = cond.given + sigma * _randn(cond.given, generator) if sigma > 0 else cond.given
    return torch.where(mask, noisy, x)


def _euler_loop(
    derivative: Callable[[torch.Tensor, float], tuple[torch.Tensor, torch.Tensor]],
    project: Callable[[torch.Tensor, float], torch.Tensor],
    x: torch.Tensor,
    sigmas: torch.Tensor,
    s_churn: float,
    corrections: int,
    generator: torch.Generator | None,
    callback: Callback | None,
) -> torch.Tensor:
    """Euler steps with churn and correction, the skeleton of the thesis' Algorithm 2.

    ``derivative(x, sigma) -> (dx/dsigma, denoised)`` on a projected ``x``;
    ``project(x, sigma)`` imposes the conditioning (context, given stems, Dirac constraint).
    """
    if s_churn < 0:
        raise bad_value("s_churn", s_churn, "a float >= 0")
    if corrections < 0:
        raise bad_value("corrections", corrections, "an integer >= 0")
    sig = [float(s) for s in sigmas]
    steps = len(sig) - 1
    if steps < 1 or any(a <= b for a, b in zip(sig[:-1], sig[1:])):
        raise bad_value("sigmas", sigmas, "a strictly decreasing sequence of >= 2 values")
    alpha = min(s_churn / steps, math.sqrt(2.0) - 1.0)
    x = project(x, sig[0])
    for i in range(steps):
        s_cur, s_next = sig[i], sig[i + 1]
        for r in range(corrections, -1, -1):
            s_hat = s_cur * (alpha + 1.0)
            if s_hat > s_cur:
                x = x + math.sqrt(s_hat**2 - s_cur**2) * _randn(x, generator)
            x = project(x, s_hat)
            d, denoised = derivative(x, s_hat)
            x = project(x + (s_next - s_hat) * d, s_next)
            if callback is not None:
                callback({"i": i, "r": r, "sigma": s_hat, "x": x, "denoised": denoised})
            if r > 0:
                x = x + math.sqrt(s_cur**2 - s_next**2) * _randn(x, generator)
    return project(x, 0.0)


def _sigma_batch(x: torch.Tensor, sigma: float) -> torch.Tensor:
    return torch.full((x.shape[0],), sigma, dtype=x.dtype, device=x.device)


def sample_generate(
    denoiser: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    cond: Conditioning | None = None,
    *,
    s_churn: float = 0.0,
    corrections: int = 0,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> torch.Tensor:
    """Total generation (thesis Sec. 4.3.1): sample all stems from the prior ``S_theta`` (Eq. 4.5).

    The mixture is the sum of the returned stems ``(B, S, C, T)``. A ``cond.context`` makes
    it an autoregressive continuation of the previous window.
    """
    cond = cond or Conditioning()

    def project(z: torch.Tensor, sigma: float) -> torch.Tensor:
        return _apply_context(z, cond, sigma, generator)

    def derivative(z: torch.Tensor, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
        denoised = denoiser(z, _sigma_batch(z, sigma))
        return (z - denoised) / sigma, denoised

    return _euler_loop(derivative, project, x, sigmas, s_churn, corrections, generator, callback)


def sample_partial(
    denoiser: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    cond: Conditioning,
    *,
    s_churn: float = 0.0,
    corrections: int = 0,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> torch.Tensor:
    """Partial generation / source imputation (thesis Sec. 4.3.2, Eq. 4.6).

    The given stems ``x_I`` are replaced at every step by a forward-process sample
    ``x_I(0) + sigma * eps``; the missing stems follow ``S_theta,Ibar([x_Ibar(t), x_I(t)])``.
    The returned given stems equal ``cond.given`` exactly.
    """
    if cond.given is None:
        raise bad_value("cond.given", None, "the known stems (B, S, C, T) with given_mask")

    def project(z: torch.Tensor, sigma: float) -> torch.Tensor:
        return _apply_given(_apply_context(z, cond, sigma, generator), cond, sigma, generator)

    def derivative(z: torch.Tensor, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
        denoised = denoiser(z, _sigma_batch(z, sigma))
        return (z - denoised) / sigma, denoised

    return _euler_loop(derivative, project, x, sigmas, s_churn, corrections, generator, callback)


def sample_dirac(
    denoiser: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    cond: Conditioning,
    *,
    s_churn: float = 0.0,
    corrections: int = 0,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> torch.Tensor:
    """The "MSDM Dirac" separator (thesis Sec. 4.3.3, Eq. 4.10, Algorithm 2).

    The constrained stem ``N`` is set to ``y - sum_{n != N} x_n`` before every network call
    (lines 8, 14); the others move along ``g_m = S_m(z) - S_N(z)`` (lines 9-13), written
    here with the ODE derivative ``(x - D) / sigma = -sigma * score`` so that line 13 reads
    ``x <- x + (sigma_{i-1} - sigma_hat) g``. The returned stems sum to ``cond.mixture``.
    """
    if cond.mixture is None:
        raise bad_value("cond.mixture", None, "the mixture (B, C, T) to separate")
    n = cond.constrained % x.shape[1]

    def project(z: torch.Tensor, sigma: float) -> torch.Tensor:
        return dirac_project(_apply_context(z, cond, sigma, generator), cond.mixture, n)

    def derivative(z: torch.Tensor, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
        denoised = denoiser(z, _sigma_batch(z, sigma))
        d = (z - denoised) / sigma
        g = d - d[:, n : n + 1]
        return g, denoised

    return _euler_loop(derivative, project, x, sigmas, s_churn, corrections, generator, callback)


def sample_dirac_projected(
    denoiser: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    cond: Conditioning,
    *,
    s_churn: float = 0.0,
    corrections: int = 0,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> torch.Tensor:
    """Dirac separator with an orthogonally projected update (our variant, not the thesis').

    Same constraint as :func:`sample_dirac` (the stems sum to ``y`` at every step), but every
    stem moves along ``d_n - mean_k(d_k)``, the ODE derivative projected onto the constraint
    plane ``sum_n x_n = y``, instead of Algorithm 2's ``d_m - d_N`` on the free stems. Why:
    with Algorithm 2 the error along the sum direction is multiplied by ``1 - N (1 - r)`` per
    Euler step of ratio ``r = sigma_next / sigma_hat``, which is unstable (``|.| > 1``) once
    ``r < 1 - 2/N`` (0.5 for four stems) - harmless at the thesis' 150 steps, not at 8-32
    steps with churn. The projected step has no such mode: with an exact denoiser it returns
    the true stems for any schedule.
    """
    if cond.mixture is None:
        raise bad_value("cond.mixture", None, "the mixture (B, C, T) to separate")
    n = cond.constrained % x.shape[1]

    def project(z: torch.Tensor, sigma: float) -> torch.Tensor:
        return dirac_project(_apply_context(z, cond, sigma, generator), cond.mixture, n)

    def derivative(z: torch.Tensor, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
        denoised = denoiser(z, _sigma_batch(z, sigma))
        d = (z - denoised) / sigma
        return d - d.mean(dim=1, keepdim=True), denoised

    return _euler_loop(derivative, project, x, sigmas, s_churn, corrections, generator, callback)


def sample_gaussian(
    denoiser: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    cond: Conditioning,
    *,
    s_churn: float = 0.0,
    corrections: int = 0,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> torch.Tensor:
    """The "MSDM Gaussian" separator baseline (thesis Eq. 4.8, Appendix B.2 Eq. B.19; [118]).

    Posterior score ``S_m(x) + (y - sum_n x_n) / gamma(t)^2`` with ``gamma = gamma_scale *
    sigma`` (the thesis' Table 4.4 best for MSDM: 0.75 sigma). B.19 prints the likelihood
    term with a minus sign; the gradient of ``log N(y; sum x, gamma^2)`` is ``+(y - sum x) /
    gamma^2``, used here. The stems need not sum to the mixture exactly.
    """
    if cond.mixture is None:
        raise bad_value("cond.mixture", None, "the mixture (B, C, T) to separate")

    def project(z: torch.Tensor, sigma: float) -> torch.Tensor:
        return _apply_context(z, cond, sigma, generator)

    def derivative(z: torch.Tensor, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
        denoised = denoiser(z, _sigma_batch(z, sigma))
        gamma = cond.gamma_scale * sigma
        residual = (cond.mixture - z.sum(dim=1)).unsqueeze(1)
        d = (z - denoised) / sigma - sigma * residual / gamma**2
        return d, denoised

    return _euler_loop(derivative, project, x, sigmas, s_churn, corrections, generator, callback)


SAMPLERS: dict[str, Callable[..., torch.Tensor]] = {
    "dirac": sample_dirac,
    "dirac-projected": sample_dirac_projected,
    "gaussian": sample_gaussian,
    "generate": sample_generate,
    "partial": sample_partial,
}


def network_evaluations(steps: int, corrections: int = 0) -> int:
    """Network evaluations of one sampler run: ``steps * (corrections + 1)``."""
    return steps * (corrections + 1)
