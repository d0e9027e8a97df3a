"""The refined model in the streaming engine: the base runs once over the stream, each segment's
context is the previous segment's output over the overlap, and with an oracle refiner the refined
model is exactly its base."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from stemstream.realtime.backends import open_backend
from stemstream.realtime.diffusion.refined_model import RefinedSegmentModel
from stemstream.realtime.engine.offline import separate_array
from stemstream.realtime.errors import StemstreamError
from tests.test_refiner_fixtures import ZeroResidual, music_like, tiny_refiner_student

torch.set_num_threads(1)


class Spy:
    """A segment model passed through, recording every segment's input, context and output."""

    def __init__(self, model: Any) -> None:
        self.model, self.kind, self.info = model, model.kind, model.info
        self.segment_samples, self.context_samples = model.segment_samples, model.context_samples
        self.calls: list[tuple[np.ndarray, np.ndarray | None, np.ndarray]] = []

    def separate_segment(self, audio: np.ndarray, context: np.ndarray | None) -> np.ndarray:
        out = self.model.separate_segment(audio, context)
        self.calls.append((audio.copy(), None if context is None else context.copy(), out.copy()))
        return out


@pytest.fixture()
def base(tiny_live_model: Any) -> Any:
    return open_backend("torch", tiny_live_model(3), "tiny-live")


def _mixture(samples: int = 5000) -> np.ndarray:
    return music_like(samples, 11).sum(axis=0)


def test_autoregressive_hand_off_between_segments(base: Any) -> None:
    model = Spy(RefinedSegmentModel(base, tiny_refiner_student(), steps=2, name="tiny-refined"))
    mix = _mixture()
    out = separate_array(model, mix, 44100)
    assert out.shape == (4, 2, mix.shape[1]) and np.all(np.isfinite(out))
    w, o = model.segment_samples, model.context_samples
    assert len(model.calls) >= 5 and model.calls[0][1] is None
    for (audio_prev, _, out_prev), (audio, context, seg_out) in zip(model.calls, model.calls[1:]):
        np.testing.assert_array_equal(audio[:, :o], audio_prev[:, w - o :])  # segments overlap by the context
        np.testing.assert_array_equal(context, out_prev[:, :, w - o :])  # the context is the previous output there
        np.testing.assert_allclose(seg_out[:, :, :o], context, atol=1e-5)  # and the new segment keeps it exactly
    # the refined stems sum to the (delayed) mixture, the base's consistency kept
    lat = model.info.latency_samples
    np.testing.assert_allclose(out.sum(axis=0)[:, : mix.shape[1]], mix, atol=1e-4)
    assert lat == base.info.latency_samples


def test_independent_segments_ignore_the_context(base: Any) -> None:
    model = Spy(RefinedSegmentModel(base, tiny_refiner_student(), steps=1, autoregressive=False))
    separate_array(model, _mixture(), 44100)
    o = model.context_samples
    _, context, seg_out = model.calls[2]
    assert context is not None and np.max(np.abs(seg_out[:, :, :o] - context)) > 1e-5


def test_an_oracle_refiner_gives_exactly_the_base(base: Any) -> None:
    step = tiny_refiner_student()
    step.denoiser = ZeroResidual()
    mix = _mixture()
    refined = separate_array(RefinedSegmentModel(base, step, steps=2), mix, 44100)
    alone = separate_array(base, mix, 44100)
    # the segment runner only sees whole segments: compare where both are final
    np.testing.assert_allclose(refined, alone, atol=1e-5)


def test_a_segment_that_does_not_continue_the_stream_is_refused(base: Any) -> None:
    model = RefinedSegmentModel(base, tiny_refiner_student())
    w, o = model.segment_samples, model.context_samples
    audio = _mixture(w)
    first = model.separate_segment(audio, None)
    with pytest.raises(StemstreamError, match="does not continue"):
        model.separate_segment(audio, first[:, :, w - o :])  # the same segment again, as if continuing
    shifted = np.concatenate([audio[:, w - o :], _mixture(w - o)], axis=1)
    assert model.separate_segment(shifted, first[:, :, w - o :]).shape == (4, 2, w)
