"""The score network's STFT-frame front end: exact inverse, unit-variance features, shapes."""

from __future__ import annotations

import pytest
import torch

from stemstream.realtime.diffusion.student import init_student_from_teacher
from stemstream.realtime.diffusion.unet import FrameTransform, ScoreUNet, UNetConfig
from stemstream.realtime.errors import ConfigError
from tests.test_diffusion_fixtures import TINY_FRAMES, tiny_student, tiny_teacher

torch.set_num_threads(1)


@pytest.mark.parametrize("samples", [64, 200, 8192])
def test_frame_synthesis_inverts_analysis_edges_included(samples: int) -> None:
    frames = FrameTransform(256) if samples % 64 == 0 else FrameTransform(32)
    x = torch.randn(2, 3, samples, generator=torch.Generator().manual_seed(0))
    features = frames.analyse(x)
    assert features.shape == (2, 3 * frames.size, samples // frames.hop)
    torch.testing.assert_close(frames.synthesise(features), x, atol=1e-5, rtol=0)


def test_white_noise_gives_unit_variance_features() -> None:
    frames = FrameTransform(256)
    features = frames.analyse(torch.randn(4, 1, 65536, generator=torch.Generator().manual_seed(1)))
    interior = features[..., 4:-4]
    assert abs(float(interior.std()) - 1.0) < 0.05
    # bin 1's real part is a feature; its variance is one like the others
    assert abs(float(interior[:, 1].std()) - 1.0) < 0.1


def test_frame_network_shapes_and_valid_length() -> None:
    net = ScoreUNet(TINY_FRAMES).eval()
    assert TINY_FRAMES.valid_multiple == 16 and TINY_FRAMES.features == 32
    x = torch.randn(2, 4, 1, 256)
    with torch.no_grad():
        out = net(x, torch.tensor([0.5, 0.05]))
    assert out.shape == x.shape and torch.isfinite(out).all()
    # the output layer starts at zero: D(x, sigma) = c_skip x
    sd = TINY_FRAMES.sigma_data
    torch.testing.assert_close(out[1], x[1] * sd**2 / (0.05**2 + sd**2))


def test_student_from_a_frame_teacher_starts_as_the_teacher() -> None:
    teacher = tiny_teacher(net=TINY_FRAMES)
    student = tiny_student(net=TINY_FRAMES)
    init_student_from_teacher(student, teacher)
    x = torch.randn(1, 4, 1, 256)
    sigma = torch.tensor([0.3])
    cond = torch.randn(1, student.config.net.cond_channels, 256)
    with torch.no_grad():
        torch.testing.assert_close(student.net(x, sigma, cond), teacher(x, sigma), atol=1e-6, rtol=0)


@pytest.mark.parametrize("size", [8, 30])
def test_bad_frame_size_is_named(size: int) -> None:
    with pytest.raises(ConfigError, match="frame_size"):
        UNetConfig(frame_size=size)


def test_older_configs_without_frame_size_load_as_raw_samples() -> None:
    cfg = UNetConfig.from_json('{"widths": [8, 16], "factors": [4], "blocks": [0, 1], "embed_dim": 16, '
                               '"segment_samples": 256}')
    assert cfg.frame_size == 0 and cfg.valid_multiple == 4


def test_mixture_gains_need_frames_and_a_mixture_channel() -> None:
    with pytest.raises(ConfigError, match="mixture_gains"):
        UNetConfig(mixture_gains=True, cond_channels=6)
    with pytest.raises(ConfigError, match="mixture_gains"):
        UNetConfig(frame_size=32, factors=(2, 2, 2), mixture_gains=True)


def test_mixture_gain_of_one_returns_the_mixture() -> None:
    """With the student's mixture gains at one (and nothing else), F is the mixture in every stem."""
    student = tiny_student(net=TINY_FRAMES)
    net = student.net
    c = net.config
    bins = c.frame_size // 2 + 1
    with torch.no_grad():
        net.conv_out.weight.zero_()
        net.conv_out.bias.zero_()
        net.conv_out.bias[c.stem_channels * (bins + c.frame_size):] = 1.0
        x = torch.randn(1, 4, 1, 256)
        mixture = torch.randn(1, 1, 256)
        cond = torch.cat([mixture, torch.zeros(1, c.cond_channels - 1, 256)], dim=1)
        raw = net.raw(x.reshape(1, 4, 256), torch.zeros(1), cond)
    torch.testing.assert_close(raw, mixture.expand(1, 4, 256), atol=1e-5, rtol=0)
