"""Metric values against hand-computed cases (SI-SDR with the seeds' eps, SI-SDRi, SDR)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stemstream.export.evaluation.metrics import (
    SI_SDR_EPS,
    sdr,
    si_sdr,
    si_sdr_improvement,
    si_sdr_improvement_stems,
    si_sdr_stems,
)
from stemstream.realtime.errors import ConfigError


def test_seeds_eps_is_1e_minus_8() -> None:
    assert SI_SDR_EPS == 1e-8


def test_scaled_copy_scores_huge() -> None:
    rng = np.random.default_rng(0)
    ref = rng.standard_normal(1000)
    for scale in (1.0, 3.0):
        assert si_sdr(scale * ref, ref) > 100.0
    # eps bounds a perfect score: 10 log10((||alpha x||^2 + eps) / eps) (here ~70 dB)
    ceiling = 10 * math.log10((np.sum((0.01 * ref) ** 2) + 1e-8) / 1e-8)
    assert si_sdr(0.01 * ref, ref) == pytest.approx(ceiling, abs=0.01)
    assert ceiling == pytest.approx(70.0, abs=0.5)


def test_orthogonal_noise_gives_exact_db_value() -> None:
    # <x, n> = 0 exactly, so alpha = 1 and SI-SDR = 10 log10((||x||^2 + eps) / (||n||^2 + eps)).
    ref = np.array([1.0, 1.0, 1.0, 1.0])
    noise = 0.5 * np.array([1.0, -1.0, 1.0, -1.0])
    expected = 10 * math.log10((4.0 + 1e-8) / (1.0 + 1e-8))
    assert si_sdr(ref + noise, ref) == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(6.0206, abs=1e-4)
    # scale invariance: 2x + n scores like x + n/2 (alpha = 2 absorbs the gain)
    assert si_sdr(2 * ref + noise, ref) == pytest.approx(si_sdr(ref + noise / 2, ref), abs=1e-6)
    assert si_sdr(2 * ref + noise, ref) == pytest.approx(10 * math.log10(16 / 1), abs=1e-6)


def test_orthogonal_noise_at_minus_10_db() -> None:
    t = np.arange(4000)
    ref = np.sin(2 * np.pi * t / 40)  # 100 whole periods
    noise = np.cos(2 * np.pi * t / 40) * math.sqrt(0.1)  # orthogonal, a tenth of the energy
    assert float(np.dot(ref, noise)) == pytest.approx(0.0, abs=1e-9)
    assert si_sdr(ref + noise, ref) == pytest.approx(10.0, abs=1e-6)
    assert si_sdr(noise + 0.0 * ref, ref) < -80  # nothing of the reference


def test_mixture_as_estimate_improves_exactly_zero() -> None:
    rng = np.random.default_rng(1)
    stems = rng.standard_normal((4, 2, 500))
    mix = stems.sum(0)
    est = np.broadcast_to(mix, stems.shape)
    assert np.all(si_sdr_improvement_stems(est, stems, mix) == 0.0)
    assert si_sdr_improvement(mix[0], stems[0, 0], mix[0]) == 0.0


def test_improvement_is_difference_of_si_sdrs() -> None:
    rng = np.random.default_rng(2)
    ref = rng.standard_normal((3, 800))
    mix = ref.sum(0)
    est = ref + 0.1 * rng.standard_normal(ref.shape)
    expected = si_sdr(est, ref) - si_sdr(np.broadcast_to(mix, ref.shape), ref)
    np.testing.assert_allclose(si_sdr_improvement(est, ref, mix), expected, rtol=0, atol=1e-12)


def test_eps_behaviour_on_silence() -> None:
    zeros = np.zeros(100)
    ones = np.ones(100)
    # silent reference, silent estimate: (0 + eps) / (0 + eps) -> exactly 0 dB
    assert si_sdr(zeros, zeros) == 0.0
    # silent reference, loud estimate: alpha = eps/eps = 1 -> 10 log10(eps / (||e||^2 + eps))
    assert si_sdr(ones, zeros) == pytest.approx(10 * math.log10(1e-8 / (100 + 1e-8)), abs=1e-9)
    # silent estimate of a loud reference: alpha ~ eps/||x||^2, both terms ~ eps -> 0 dB
    assert si_sdr(zeros, ones) == pytest.approx(0.0, abs=1e-9)
    # results stay finite with eps = 0 only where the reference is non-silent
    assert math.isfinite(float(si_sdr(ones + 0.1, ones, eps=0.0)))


def test_batched_shapes_reduce_over_last_axis_only() -> None:
    rng = np.random.default_rng(3)
    ref = rng.standard_normal((3, 2, 300))
    est = ref + 0.3 * rng.standard_normal(ref.shape)
    per_channel = si_sdr(est, ref)
    assert per_channel.shape == (3, 2)
    assert per_channel[1, 0] == pytest.approx(float(si_sdr(est[1, 0], ref[1, 0])), abs=1e-12)
    flat = si_sdr_stems(est, ref)  # channels flattened per stem: one value per stem
    assert flat.shape == (3,)
    assert flat[2] == pytest.approx(float(si_sdr(est[2].reshape(-1), ref[2].reshape(-1))), abs=1e-12)


def test_shape_errors_name_the_parameter() -> None:
    with pytest.raises(ConfigError, match="estimate.shape"):
        si_sdr(np.zeros(10), np.zeros(11))
    with pytest.raises(ConfigError, match="estimate.shape"):
        si_sdr_stems(np.zeros((2, 10)), np.zeros((2, 10)))
    with pytest.raises(ConfigError, match="mixture.shape"):
        si_sdr_improvement_stems(np.zeros((2, 1, 10)), np.zeros((2, 1, 10)), np.zeros(10))


def test_sdr_matches_snr_for_white_noise_and_forgives_short_filters() -> None:
    rng = np.random.default_rng(4)
    ref = rng.standard_normal((2, 2, 8000))
    noise = rng.standard_normal(ref.shape)
    noise *= np.sqrt(np.sum(ref**2, axis=(1, 2), keepdims=True) / np.sum(noise**2, axis=(1, 2), keepdims=True))
    values = sdr(ref + 0.1 * noise, ref)  # 20 dB SNR
    assert values.shape == (2,)
    np.testing.assert_allclose(values, 20.0, atol=0.3)  # the 512-tap filter absorbs ~512/16000 of the noise
    # a filtered reference (short FIR) is a perfect estimate for BSS Eval, not for SI-SDR
    fir = np.array([0.6, 0.3, -0.2, 0.1])
    filtered = np.stack([[np.convolve(ch, fir)[: ch.size] for ch in stem] for stem in ref])
    # (BSS Eval's Toeplitz approximation of the correlations leaves edge errors: ~40-55 dB)
    assert np.all(sdr(filtered, ref) > 35.0)
    assert np.all(si_sdr_stems(filtered, ref) < 5.0)
    assert np.all(sdr(ref, ref) == pytest.approx(100.0, abs=1e-3))  # clamped at +100 dB


def test_sdr_rejects_blocks_shorter_than_the_filter() -> None:
    with pytest.raises(ConfigError, match="samples"):
        sdr(np.ones((1, 1, 300)), np.ones((1, 1, 300)))
