"""Shared tiny, seeded diffusion models for the tests/test_diffusion_*.py files."""

from __future__ import annotations

import torch

from stemstream.realtime.diffusion.student import StudentConfig, StudentStep, student_cond_channels
from stemstream.realtime.diffusion.unet import ScoreUNet, UNetConfig

TINY = UNetConfig(widths=(8, 16), factors=(4,), blocks=(0, 1), embed_dim=16, segment_samples=256)
#: the same over STFT frames (32-sample frames, hop 8), as the shipped teacher runs
TINY_FRAMES = UNetConfig(widths=(8, 16), factors=(2,), blocks=(0, 1), embed_dim=16, segment_samples=256, frame_size=32)


def tiny_teacher(seed: int = 0, net: UNetConfig = TINY) -> ScoreUNet:
    """A tiny untrained score network whose output layer is random (not zero), so the
    samplers see a non-trivial denoiser."""
    torch.manual_seed(seed)
    model = ScoreUNet(net)
    with torch.no_grad():
        model.conv_out.weight.normal_(0, 0.05)
        model.conv_out.bias.normal_(0, 0.01)
    return model.eval()


def tiny_student(seed: int = 0, context_samples: int = 64, net: UNetConfig = TINY) -> StudentStep:
    """A tiny untrained student (random output layer)."""
    torch.manual_seed(seed)
    net = UNetConfig(**{**net.__dict__, "cond_channels": student_cond_channels(4, 1), "mixture_gains": bool(net.frame_size)})
    step = StudentStep(StudentConfig(net=net, context_samples=context_samples))
    with torch.no_grad():
        step.net.conv_out.weight.normal_(0, 0.05)
    return step.eval()
