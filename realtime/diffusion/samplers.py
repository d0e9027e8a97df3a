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

The samplers differ only in what they impose on ``x`` (:func:`conditioning_projection`) and in
the update direction (:func:`dirac_direction`, :func:`projected_direction`,
:func:`gaussian_direction`, :func:`prior_direction`); :func:`algorithm2` is the one loop, built
from the steps :func:`churn_alpha`, :func:`churn`, :func:`ode_derivative`, :func:`euler_step`
and :func:`renoise`, each named after its lines of Algorithm 2.

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

from stemstream.realtime.errors import bad_value

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


Project = Callable[[torch.Tensor, float], torch.Tensor]
Direction = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]


def _apply_context(x: torch.Tensor, cond: Conditioning, sigma: float, generator: torch.Generator | None) -> torch.Tensor:
    """Overwrite the first ``O`` samples of every stem with context + noise at ``sigma`` (Sec. 4.6)."""
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


def conditioning_projection(
    cond: Conditioning, generator: torch.Generator | None, *, given: bool = False, dirac_stem: int | None = None
) -> Project:
    """``project(x, sigma)``: what a sampler imposes on ``x (B, S, C, T)`` at noise level ``sigma``
    before every network call and after every step, in this order: the autoregressive context
    (Sec. 4.6), the given stems if ``given`` (Sec. 4.3.2, Eq. 4.6), the Dirac constraint on
    stem ``dirac_stem`` if not None (Algorithm 2, lines 8 and 14)."""

    def project(x: torch.Tensor, sigma: float) -> torch.Tensor:
        x = _apply_context(x, cond, sigma, generator)
        if given:
            x = _apply_given(x, cond, sigma, generator)
        if dirac_stem is not None:
            x = dirac_project(x, cond.mixture, dirac_stem)
        return x

    return project


def _sigma_batch(x: torch.Tensor, sigma: float) -> torch.Tensor:
    return torch.full((x.shape[0],), sigma, dtype=x.dtype, device=x.device)


def churn_alpha(s_churn: float, steps: int) -> float:
    """Algorithm 2, line 2: ``alpha = min(S_churn / I, sqrt(2) - 1)``."""
    if s_churn < 0:
        raise bad_value("s_churn", s_churn, "a float >= 0")
    return min(s_churn / steps, math.sqrt(2.0) - 1.0)


def churn(x: torch.Tensor, sigma: float, alpha: float, generator: torch.Generator | None) -> tuple[torch.Tensor, float]:
    """Algorithm 2, lines 5-7: raise the noise level to ``sigma_hat = sigma (alpha + 1)`` by adding
    ``sqrt(sigma_hat^2 - sigma^2) eps``; returns ``(x, sigma_hat)`` (``x`` unchanged when ``alpha = 0``)."""
    sigma_hat = sigma * (alpha + 1.0)
    if sigma_hat > sigma:
        x = x + math.sqrt(sigma_hat**2 - sigma**2) * _randn(x, generator)
    return x, sigma_hat


def ode_derivative(denoiser: Denoiser, x: torch.Tensor, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The probability-flow ODE derivative with sigma(t) = t, ``dx/dsigma = (x - D(x, sigma)) / sigma
    = -sigma S_theta(x, sigma)`` (Sec. 4.3.4); returns ``(derivative, denoised)``, both ``(B, S, C, T)``."""
    denoised = denoiser(x, _sigma_batch(x, sigma))
    return (x - denoised) / sigma, denoised


def euler_step(x: torch.Tensor, direction: torch.Tensor, sigma_hat: float, sigma_next: float) -> torch.Tensor:
    """Algorithm 2, line 13: ``x <- x + (sigma_{i-1} - sigma_hat) g``."""
    return x + (sigma_next - sigma_hat) * direction


def renoise(x: torch.Tensor, sigma: float, sigma_next: float, generator: torch.Generator | None) -> torch.Tensor:
    """Algorithm 2, lines 15-17 (a correction step follows): back from ``sigma_{i-1}`` to ``sigma_i``
    by adding ``sqrt(sigma_i^2 - sigma_{i-1}^2) eps``."""
    return x + math.sqrt(sigma**2 - sigma_next**2) * _randn(x, generator)


def _decreasing(sigmas: torch.Tensor) -> list[float]:
    sig = [float(s) for s in sigmas]
    if len(sig) < 2 or any(a <= b for a, b in zip(sig[:-1], sig[1:])):
        raise bad_value("sigmas", sigmas, "a strictly decreasing sequence of >= 2 values")
    return sig


def algorithm2(
    denoiser: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    project: Project,
    direction: Direction,
    s_churn: float = 0.0,
    corrections: int = 0,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> torch.Tensor:
    """The thesis' Algorithm 2 with the conditioning and the update direction as arguments.

    ``project(x, sigma)`` (:func:`conditioning_projection`) is lines 8 and 14 (the Dirac
    constraint; for the other samplers the context and the given stems);
    ``direction(d, x, sigma) -> g`` turns the ODE derivative ``d`` of :func:`ode_derivative`
    into the update direction (lines 9-12). Network evaluations: ``I * (R + 1)``.
    """
    if corrections < 0:
        raise bad_value("corrections", corrections, "an integer >= 0")
    sig = _decreasing(sigmas)
    alpha = churn_alpha(s_churn, len(sig) - 1)  # line 2
    x = project(x, sig[0])  # line 1: x ~ N(0, sigma_I^2) is the caller's noise
    for i, (s_cur, s_next) in enumerate(zip(sig[:-1], sig[1:])):  # line 3
        for r in range(corrections, -1, -1):  # line 4
            x, s_hat = churn(x, s_cur, alpha, generator)  # lines 5-7
            x = project(x, s_hat)  # line 8
            d, denoised = ode_derivative(denoiser, x, s_hat)  # the network call of line 10
            g = direction(d, x, s_hat)  # lines 9-12
            x = project(euler_step(x, g, s_hat, s_next), s_next)  # lines 13-14
            if callback is not None:
                callback({"i": i, "r": r, "sigma": s_hat, "x": x, "denoised": denoised})
            if r > 0:
                x = renoise(x, s_cur, s_next, generator)  # lines 15-17
    return project(x, 0.0)


def prior_direction(d: torch.Tensor, x: torch.Tensor, sigma: float) -> torch.Tensor:
    """The prior's own derivative (Eq. 4.5), unconstrained: generation and imputation."""
    return d


def dirac_direction(d: torch.Tensor, constrained: int) -> torch.Tensor:
    """Eq. 4.10 / Algorithm 2 lines 9-12: ``g_m = S_m(z) - S_N(z)`` in derivative form
    ``d_m - d_N`` (``d = -sigma S``); ``g_N = 0``, the constrained stem follows by projection."""
    n = constrained % d.shape[1]
    return d - d[:, n : n + 1]


def projected_direction(d: torch.Tensor) -> torch.Tensor:
    """``d`` projected orthogonally onto the constraint plane ``sum_n x_n = y``: ``d_n - mean_k d_k``."""
    return d - d.mean(dim=1, keepdim=True)


def gaussian_direction(d: torch.Tensor, x: torch.Tensor, sigma: float, mixture: torch.Tensor, gamma_scale: float) -> torch.Tensor:
    """Eq. 4.8 / B.19: the derivative of the posterior score ``S_m(x) + (y - sum_n x_n) / gamma^2``,
    ``gamma = gamma_scale * sigma``, i.e. ``d - sigma (y - sum_n x_n) / gamma^2``."""
    gamma = gamma_scale * sigma
    residual = (mixture - x.sum(dim=1)).unsqueeze(1)
    return d - sigma * residual / gamma**2


def _require_mixture(cond: Conditioning, x: torch.Tensor) -> int:
    """The constrained stem's index; raises unless ``cond`` carries a mixture."""
    if cond.mixture is None:
        raise bad_value("cond.mixture", None, "the mixture (B, C, T) to separate")
    return cond.constrained % x.shape[1]


def sample_generate(denoiser: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, cond: Conditioning | None = None, *,
                    s_churn: float = 0.0, corrections: int = 0, generator: torch.Generator | None = None,
                    callback: Callback | None = None) -> torch.Tensor:
    """Total generation (thesis Sec. 4.3.1): sample all stems from the prior ``S_theta`` (Eq. 4.5).

    The mixture is the sum of the returned stems ``(B, S, C, T)``. A ``cond.context`` makes
    it an autoregressive continuation of the previous window.
    """
    project = conditioning_projection(cond or Conditioning(), generator)
    return algorithm2(denoiser, x, sigmas, project, prior_direction, s_churn, corrections, generator, callback)


def sample_partial(denoiser: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, cond: Conditioning, *,
                   s_churn: float = 0.0, corrections: int = 0, generator: torch.Generator | None = None,
                   callback: Callback | None = None) -> torch.Tensor:
    """Partial generation / source imputation (thesis Sec. 4.3.2, Eq. 4.6).

    The given stems ``x_I`` are replaced at every step by a forward-process sample
    ``x_I(0) + sigma * eps``; the missing stems follow ``S_theta,Ibar([x_Ibar(t), x_I(t)])``.
    The returned given stems equal ``cond.given`` exactly.
    """
    if cond.given is None:
        raise bad_value("cond.given", None, "the known stems (B, S, C, T) with given_mask")
    project = conditioning_projection(cond, generator, given=True)
    return algorithm2(denoiser, x, sigmas, project, prior_direction, s_churn, corrections, generator, callback)


def sample_dirac(denoiser: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, cond: Conditioning, *,
                 s_churn: float = 0.0, corrections: int = 0, generator: torch.Generator | None = None,
                 callback: Callback | None = None) -> torch.Tensor:
    """The "MSDM Dirac" separator (thesis Sec. 4.3.3, Eq. 4.10, Algorithm 2).

    The constrained stem ``N`` is set to ``y - sum_{n != N} x_n`` before every network call
    (lines 8, 14); the others move along ``g_m = S_m(z) - S_N(z)`` (lines 9-13), written
    here with the ODE derivative ``(x - D) / sigma = -sigma * score`` so that line 13 reads
    ``x <- x + (sigma_{i-1} - sigma_hat) g``. The returned stems sum to ``cond.mixture``.
    """
    n = _require_mixture(cond, x)
    project = conditioning_projection(cond, generator, dirac_stem=n)
    return algorithm2(denoiser, x, sigmas, project, lambda d, z, sigma: dirac_direction(d, n),
                      s_churn, corrections, generator, callback)


def sample_dirac_projected(denoiser: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, cond: Conditioning, *,
                           s_churn: float = 0.0, corrections: int = 0, generator: torch.Generator | None = None,
                           callback: Callback | None = None) -> torch.Tensor:
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
    project = conditioning_projection(cond, generator, dirac_stem=_require_mixture(cond, x))
    return algorithm2(denoiser, x, sigmas, project, lambda d, z, sigma: projected_direction(d),
                      s_churn, corrections, generator, callback)


def sample_gaussian(denoiser: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, cond: Conditioning, *,
                    s_churn: float = 0.0, corrections: int = 0, generator: torch.Generator | None = None,
                    callback: Callback | None = None) -> torch.Tensor:
    """The "MSDM Gaussian" separator baseline (thesis Eq. 4.8, Appendix B.2 Eq. B.19; [118]).

    Posterior score ``S_m(x) + (y - sum_n x_n) / gamma(t)^2`` with ``gamma = gamma_scale *
    sigma`` (the thesis' Table 4.4 best for MSDM: 0.75 sigma). B.19 prints the likelihood
    term with a minus sign; the gradient of ``log N(y; sum x, gamma^2)`` is ``+(y - sum x) /
    gamma^2``, used here. The stems need not sum to the mixture exactly.
    """
    _require_mixture(cond, x)
    project = conditioning_projection(cond, generator)
    return algorithm2(denoiser, x, sigmas, project,
                      lambda d, z, sigma: gaussian_direction(d, z, sigma, cond.mixture, cond.gamma_scale),
                      s_churn, corrections, generator, callback)


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
