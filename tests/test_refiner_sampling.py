"""The refiner's residual Dirac sampler and consistency step: an oracle denoiser leaves a perfect
base unchanged, the refined stems sum to the mixture, the context is handed over exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stemstream.realtime.diffusion.refiner import (
    RefinerStep, RefinerStudentConfig, refine, residual_sum, sample_refiner_student,
)
from stemstream.realtime.diffusion.refiner_net import Spectra
from tests.test_refiner_fixtures import TINY_REFINER, ZeroResidual, music_like, tiny_refiner_student, tiny_refiner_teacher

torch.set_num_threads(1)


def _batch(seed: int = 0, samples: int = 1024) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(mixture, stems, base)``: a base that is the truth with 30 % of each stem leaked to the next."""
    stems = torch.from_numpy(music_like(samples, seed))[None]
    base = 0.7 * stems + 0.3 * stems.roll(1, dims=1)  # sums to the mixture, but wrong stem by stem
    return stems.sum(dim=1), stems, base


@pytest.mark.parametrize("sampler,steps,tol", [("dirac-projected", 4, 1e-6), ("dirac-projected", 16, 1e-6),
                                               ("dirac", 64, 1e-3)])
def test_oracle_denoiser_leaves_a_perfect_base_unchanged(sampler: str, steps: int, tol: float) -> None:
    mixture, stems, _ = _batch()
    refined = refine(lambda x, sigma: torch.zeros_like(x), mixture, stems, steps=steps, sampler=sampler,
                     generator=torch.Generator().manual_seed(1))
    err = float((refined - stems).abs().max()) / float(stems.abs().max())
    assert err < tol, f"{sampler} {steps} steps: relative error {err:.2e}"


def test_oracle_denoiser_recovers_the_truth_from_a_wrong_base() -> None:
    mixture, stems, base = _batch(1)
    delta = stems - base
    refined = refine(lambda x, sigma: delta, mixture, base, steps=8, sampler="dirac-projected",
                     generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(refined, stems, atol=1e-5, rtol=0)
    assert float((base - stems).abs().max()) > 0.01  # the base was wrong


def test_student_with_an_oracle_leaves_a_perfect_base_unchanged() -> None:
    mixture, stems, _ = _batch(2)
    step = RefinerStep(RefinerStudentConfig(net=TINY_REFINER))
    step.denoiser = ZeroResidual()
    noise = torch.randn((2, *stems.shape), generator=torch.Generator().manual_seed(3))
    for k in (1, 2):
        torch.testing.assert_close(sample_refiner_student(step, mixture, stems, None, k, noise), stems, atol=1e-6, rtol=0)


@pytest.mark.parametrize("sampler", ["dirac", "dirac-projected"])
def test_teacher_refinement_sums_to_the_mixture(sampler: str) -> None:
    mixture, _, base = _batch(3)
    base = base * 0.9  # an inconsistent base: the residuals must then sum to mixture - sum(base), not 0
    assert float(residual_sum(mixture, base).abs().max()) > 1e-3
    refined = refine(tiny_refiner_teacher(), mixture, base, steps=4, sampler=sampler,
                     generator=torch.Generator().manual_seed(4))
    assert float((refined - base).abs().max()) > 1e-4  # the network changed something
    # exact up to float32 rounding of the stems (from sigma_max = 10, Algorithm 2 at 4 steps leaves
    # stems far larger than the mixture that cancel in the sum)
    scale = max(1.0, float(refined.abs().max()))
    torch.testing.assert_close(refined.sum(dim=1), mixture, atol=2e-6 * scale, rtol=0)


def test_student_refinement_sums_to_the_mixture_and_keeps_the_context() -> None:
    mixture, stems, base = _batch(4)
    step = tiny_refiner_student()
    o = TINY_REFINER.context_samples
    context = (stems - base)[..., :o] * 0.5  # a context residual (what the previous segment left)
    noise = torch.randn((2, *stems.shape), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        for k in (1, 2):
            out = sample_refiner_student(step, mixture, base, context, k, noise)
            torch.testing.assert_close(out.sum(dim=1), mixture, atol=1e-5, rtol=0)
            torch.testing.assert_close(out[..., :o] - base[..., :o], context, atol=1e-5, rtol=0)
            assert float((out[..., o:] - base[..., o:]).abs().max()) > 1e-4


def test_teacher_context_is_exact_over_the_overlap() -> None:
    mixture, stems, base = _batch(5)
    o = TINY_REFINER.context_samples
    context = (stems - base)[..., :o]
    refined = refine(tiny_refiner_teacher(), mixture, base, steps=4, sampler="dirac-projected", context=context,
                     generator=torch.Generator().manual_seed(6))
    # the free stems' overlap is the context; the constrained (last) stem follows from the sum
    torch.testing.assert_close(refined[:, :-1, :, :o], stems[:, :-1, :, :o], atol=1e-5, rtol=0)


def test_spectra_round_trip_and_scale() -> None:
    for hop in (32, 16):
        spectra = Spectra(64, hop)
        x = torch.randn((3, 2048), generator=torch.Generator().manual_seed(7))
        spec = spectra.analyse(x)
        assert spec.shape == (3, 33, 2048 // hop)
        torch.testing.assert_close(spectra.synthesise(spec, 2048), x, atol=1e-5, rtol=0)
        assert abs(float(spec[:, 1:-1, 2:-2].real.var()) - 1.0) < 0.1  # unit white noise -> unit variance
