"""Samplers on a tiny untrained model: Dirac constraint, partial generation, determinism."""

from __future__ import annotations

import pytest
import torch

from stemstream.realtime.diffusion.samplers import (
    Conditioning,
    karras_sigmas,
    network_evaluations,
    sample_dirac,
    sample_gaussian,
    sample_generate,
    sample_partial,
)
from stemstream.realtime.errors import ConfigError
from tests.test_diffusion_fixtures import tiny_teacher

torch.set_num_threads(1)
T = 256


def _mixture(seed: int = 3, batch: int = 2) -> torch.Tensor:
    return 0.2 * torch.randn((batch, 1, T), generator=torch.Generator().manual_seed(seed))


def _noise(seed: int, sigma: float, batch: int = 2) -> torch.Tensor:
    return sigma * torch.randn((batch, 4, 1, T), generator=torch.Generator().manual_seed(seed))


def test_karras_schedule_matches_thesis() -> None:
    sig = karras_sigmas(10)
    assert sig.shape == (11,)
    assert sig[0] == pytest.approx(1.0) and sig[-2] == pytest.approx(1e-4, rel=1e-4) and sig[-1] == 0
    assert torch.all(sig[:-1] > sig[1:])
    with pytest.raises(ConfigError, match="steps=0"):
        karras_sigmas(0)


@pytest.mark.parametrize("steps", [1, 3, 8])
@pytest.mark.parametrize("s_churn,corrections", [(0.0, 0), (20.0, 0), (0.0, 1), (40.0, 2)])
def test_dirac_stems_sum_to_mixture(steps: int, s_churn: float, corrections: int) -> None:
    model, mixture = tiny_teacher(), _mixture()
    sigmas = karras_sigmas(steps)
    with torch.no_grad():
        out = sample_dirac(model, _noise(1, 1.0), sigmas, Conditioning(mixture=mixture), s_churn=s_churn,
                           corrections=corrections, generator=torch.Generator().manual_seed(5))
    assert out.shape == (2, 4, 1, T)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.sum(dim=1), mixture, atol=1e-5, rtol=0)
    # the stems are not trivially the mixture on one stem and zero elsewhere
    assert out[:, :3].abs().max() > 1e-3


def test_dirac_constrained_stem_is_selectable() -> None:
    model, mixture = tiny_teacher(), _mixture()
    with torch.no_grad():
        out = sample_dirac(model, _noise(1, 1.0), karras_sigmas(4), Conditioning(mixture=mixture, constrained=0),
                           generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(out.sum(dim=1), mixture, atol=1e-5, rtol=0)


def test_network_evaluations_counted_by_callback() -> None:
    model, calls = tiny_teacher(), []
    with torch.no_grad():
        sample_dirac(model, _noise(1, 1.0), karras_sigmas(5), Conditioning(mixture=_mixture()), corrections=2,
                     generator=torch.Generator().manual_seed(0), callback=calls.append)
    assert len(calls) == network_evaluations(5, 2) == 15


@pytest.mark.parametrize("sampler", [sample_dirac, sample_gaussian, sample_generate])
def test_samplers_deterministic_given_generator(sampler) -> None:
    model, cond = tiny_teacher(), Conditioning(mixture=_mixture())
    runs = []
    for seed in (11, 11, 12):
        with torch.no_grad():
            runs.append(sampler(model, _noise(1, 1.0), karras_sigmas(4), cond, s_churn=20.0, corrections=1,
                                generator=torch.Generator().manual_seed(seed)))
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])


def test_partial_generation_keeps_given_stems_exactly() -> None:
    model = tiny_teacher()
    given = 0.1 * torch.randn((2, 4, 1, T), generator=torch.Generator().manual_seed(8))
    mask = torch.tensor([True, False, True, False])
    with torch.no_grad():
        out = sample_partial(model, _noise(2, 1.0), karras_sigmas(6), Conditioning(given=given, given_mask=mask),
                             s_churn=20.0, corrections=1, generator=torch.Generator().manual_seed(4))
    assert torch.equal(out[:, mask], given[:, mask])
    assert not torch.allclose(out[:, ~mask], given[:, ~mask])
    assert torch.isfinite(out).all()


def test_context_overlap_equals_context_at_the_end() -> None:
    model, mixture = tiny_teacher(), _mixture()
    with torch.no_grad():
        first = sample_dirac(model, _noise(1, 1.0), karras_sigmas(4), Conditioning(mixture=mixture),
                             generator=torch.Generator().manual_seed(1))
        context = first[..., -64:]
        mixture2 = torch.cat([mixture[..., -64:], _mixture(9)[..., : T - 64]], dim=-1)
        second = sample_dirac(model, _noise(2, 1.0), karras_sigmas(4), Conditioning(mixture=mixture2, context=context),
                              s_churn=20.0, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(second[..., :64], context, atol=1e-6, rtol=0)
    torch.testing.assert_close(second.sum(dim=1), mixture2, atol=1e-5, rtol=0)


def test_bad_parameters_name_themselves() -> None:
    model = tiny_teacher()
    with pytest.raises(ConfigError, match="cond.mixture"):
        sample_dirac(model, _noise(1, 1.0), karras_sigmas(2), Conditioning())
    with pytest.raises(ConfigError, match="s_churn"):
        sample_dirac(model, _noise(1, 1.0), karras_sigmas(2), Conditioning(mixture=_mixture()), s_churn=-1.0)


def test_oracle_denoiser_projected_dirac_is_exact_and_thesis_update_is_stiff() -> None:
    from stemstream.realtime.diffusion.samplers import sample_dirac_projected

    clean = 0.1 * torch.randn((2, 4, 1, T), generator=torch.Generator().manual_seed(30))
    mixture = clean.sum(dim=1)

    def oracle(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return clean

    cond = Conditioning(mixture=mixture)
    for steps in (4, 16):
        out = sample_dirac_projected(oracle, _noise(1, 1.0), karras_sigmas(steps), cond, s_churn=20.0,
                                     generator=torch.Generator().manual_seed(1))
        torch.testing.assert_close(out, clean, atol=1e-5, rtol=0)
    # Algorithm 2's update amplifies the sum-direction error by |1 - N (1 - r)| > 1 when r < 0.5
    thesis = sample_dirac(oracle, _noise(1, 1.0), karras_sigmas(16), cond, s_churn=20.0,
                          generator=torch.Generator().manual_seed(1))
    assert (thesis - clean).abs().max() > 1e-2
