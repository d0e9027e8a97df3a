"""Long-file separation: naive / independent / autoregressive, and the context hand-off."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stemstream.realtime.diffusion.segments import MODES, separate_long
from stemstream.realtime.diffusion.student import DiffusionSegmentModel, sample_student
from stemstream.realtime.errors import ConfigError
from stemstream.realtime.protocol import SegmentModel
from tests.test_diffusion_fixtures import tiny_student, tiny_teacher

torch.set_num_threads(1)
W = 256


def _long_mixture(samples: int = 700) -> torch.Tensor:
    return 0.3 * torch.randn((1, 1, samples), generator=torch.Generator().manual_seed(21))


@pytest.mark.parametrize("mode", MODES)
def test_modes_shape_and_mixture_consistency(mode: str) -> None:
    mixture = _long_mixture()
    with torch.no_grad():
        out = separate_long(tiny_teacher(), mixture, stems=4, segment_samples=W, mode=mode, steps=3, s_churn=10.0,
                            valid_multiple=4, generator=torch.Generator().manual_seed(0))
    assert out.shape == (1, 4, 1, 700)
    torch.testing.assert_close(out.sum(dim=1), mixture, atol=1e-5, rtol=0)


@pytest.mark.parametrize("overlap", [64, 128, 192])
def test_autoregressive_context_hand_off(overlap: int) -> None:
    windows: list[tuple[torch.Tensor, torch.Tensor | None]] = []
    with torch.no_grad():
        separate_long(tiny_teacher(), _long_mixture(), stems=4, segment_samples=W, mode="autoregressive",
                      overlap_samples=overlap, steps=3, s_churn=20.0, corrections=1,
                      generator=torch.Generator().manual_seed(1), on_window=lambda k, sep, ctx: windows.append((sep, ctx)))
    hop = W - overlap
    assert len(windows) == int(np.ceil(700 / hop))
    assert torch.equal(windows[0][1], torch.zeros((1, 4, 1, overlap)))  # the first window is conditioned on zeros
    for (prev, _), (nxt, ctx) in zip(windows[:-1], windows[1:]):
        assert torch.equal(ctx, prev[..., hop:])  # the context passed is the previous output over the overlap
        torch.testing.assert_close(nxt[..., :overlap], prev[..., hop:], atol=1e-6, rtol=0)


def test_bad_mode_is_named() -> None:
    with pytest.raises(ConfigError, match="mode='sliding'"):
        separate_long(tiny_teacher(), _long_mixture(), stems=4, segment_samples=W, mode="sliding")  # type: ignore[arg-type]


def test_student_segment_model_contract_and_hand_off() -> None:
    step = tiny_student(context_samples=64)
    model = DiffusionSegmentModel(step, steps=2, channels=2)
    assert isinstance(model, SegmentModel) and model.kind == "segment"
    assert model.segment_samples == W and model.context_samples == 64
    rng = np.random.default_rng(3)
    audio = (0.2 * rng.standard_normal((2, W))).astype(np.float32)
    first = model.separate_segment(audio, None)
    assert first.shape == (4, 2, W) and first.dtype == np.float32
    np.testing.assert_allclose(first.sum(axis=0), np.repeat(audio.mean(axis=0, keepdims=True), 2, 0), atol=1e-5)
    audio2 = np.concatenate([audio[:, W - 64 :], (0.2 * rng.standard_normal((2, W - 64))).astype(np.float32)], axis=1)
    context = first[..., W - 64 :]
    second = model.separate_segment(audio2, context)
    np.testing.assert_allclose(second[..., :64], context, atol=1e-5)
    np.testing.assert_array_equal(second, model.separate_segment(audio2, context))  # deterministic
    assert np.all(model.separate_segment(np.zeros((2, W), np.float32), None) == 0)
    with pytest.raises(ConfigError, match="audio.shape"):
        model.separate_segment(audio[:, :100], None)


def test_student_steps_use_that_many_evaluations() -> None:
    step, calls = tiny_student(), []
    step.register_forward_hook(lambda *a: calls.append(1))
    mixture = 0.2 * torch.randn((1, 1, W), generator=torch.Generator().manual_seed(2))
    noise = torch.randn((3, 1, 4, 1, W), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        out = sample_student(step, mixture, None, 3, noise)
    assert len(calls) == 3
    torch.testing.assert_close(out.sum(dim=1), mixture, atol=1e-5, rtol=0)


def test_student_runs_in_the_streaming_engine_at_host_rate() -> None:
    from stemstream.realtime.engine.offline import separate_array

    model = DiffusionSegmentModel(tiny_student(context_samples=64), steps=1, channels=2)
    rng = np.random.default_rng(4)
    audio = (0.1 * rng.standard_normal((2, 3000))).astype(np.float32)  # 44.1 kHz host audio
    out = separate_array(model, audio, 44100, block_size=1000)
    assert out.shape == (4, 2, 3000) and np.all(np.isfinite(out))
    assert np.abs(out).max() > 0
