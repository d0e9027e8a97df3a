"""The refiner's mask prior: an untrained network starts from the base's own ratio mask."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from stemstream.realtime.diffusion.refiner_net import RefinerConfig, RefinerDenoiser, Spectra
from stemstream.realtime.diffusion.refiner_onnx import core_parity, export_core
from tests.test_refiner_fixtures import TINY_REFINER, music_like, tiny_refiner_teacher

torch.set_num_threads(1)
PRIOR = replace(TINY_REFINER, mask_prior=True)


def _batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A mixture ``(1, C, T)`` and a poor base ``(1, S, C, T)`` that sums to it (the stems half mixed)."""
    stems = torch.from_numpy(music_like(PRIOR.segment_samples, seed))[None]
    mixture = stems.sum(dim=1)
    base = 0.5 * stems + 0.5 * mixture[:, None] / stems.shape[1]
    return mixture, base


def _ratio_mask(mixture: torch.Tensor, base: torch.Tensor, config: RefinerConfig) -> torch.Tensor:
    """The mixture re-masked by each stem's share of the base's magnitudes at the refiner's
    window, per channel and bin (the Nyquist bin kept from the base, which the network never sees)."""
    spectra, t = Spectra(config.n_fft, config.hop), base.shape[-1]
    b_spec, m_spec = spectra.analyse(base), spectra.analyse(mixture)[:, None]
    share = b_spec.abs() / b_spec.abs().sum(dim=1, keepdim=True).clamp_min(1e-12)
    est = share * m_spec
    est[..., -1, :] = b_spec[..., -1, :]
    s, c = base.shape[1:3]
    return spectra.synthesise(est.reshape(s * c, *est.shape[-2:]), t).reshape(base.shape)


def _untrained(config: RefinerConfig) -> RefinerDenoiser:
    return RefinerDenoiser(config).eval().requires_grad_(False)  # the head starts at zero


def test_an_untrained_refiner_with_the_prior_returns_the_base_ratio_mask() -> None:
    mixture, base = _batch()
    model = _untrained(PRIOR)
    zeros, mask = torch.zeros_like(base), torch.zeros(1)
    delta = model(zeros, torch.tensor([PRIOR.sigma_max]), mixture, base, zeros, mask)
    expected = _ratio_mask(mixture, base, PRIOR)
    torch.testing.assert_close(base + delta, expected, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(delta.sum(dim=1), torch.zeros_like(mixture), atol=1e-5, rtol=0)  # Dirac: sums kept
    assert float((expected - base).abs().max()) > 1e-2  # the mask does change this base
    # without the prior the same untrained network leaves the base as it is
    plain = _untrained(TINY_REFINER)
    assert float(plain(zeros, torch.tensor([PRIOR.sigma_max]), mixture, base, zeros, mask).abs().max()) == 0.0


def test_the_prior_fades_at_low_noise_and_a_perfect_base_is_kept() -> None:
    mixture, base = _batch(1)
    model = _untrained(PRIOR)
    zeros, mask = torch.zeros_like(base), torch.zeros(1)
    x = 1e-3 * torch.randn(base.shape, generator=torch.Generator().manual_seed(0))
    low = model(x, torch.tensor([1e-4]), mixture, base, zeros, mask)  # sigma << sigma_data: D ~ x
    torch.testing.assert_close(low, x, atol=2e-5, rtol=0)
    # a base that is one stem alone (the others silent) is its own ratio mask: the prior is zero
    lone = torch.zeros_like(base)
    lone[:, 0] = mixture
    out = model(zeros, torch.tensor([PRIOR.sigma_max]), mixture, lone, zeros, mask)
    assert float(out.abs().max()) < 1e-5


def test_the_prior_exports_to_onnx(tmp_path: Path) -> None:
    core = tiny_refiner_teacher(3, PRIOR).core
    graph = export_core(core, tmp_path / "core.onnx")
    assert core_parity(core, graph, PRIOR.segment_samples) < 1e-4


def test_old_weight_configs_read_without_the_prior() -> None:
    text = TINY_REFINER.to_json().replace(', "mask_prior": false', "")
    assert "mask_prior" not in text and RefinerConfig.from_json(text) == TINY_REFINER
