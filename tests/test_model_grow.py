"""Growing a trained separator: wider and deeper, separating exactly as before, then trainable."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from stemstream.export.grow import can_grow, grow
from stemstream.export.train.run import transfer
from stemstream.realtime.errors import ConfigError
from stemstream.realtime.models.hybrid import HybridConfig, HybridSeparator
from stemstream.realtime.stems import DJ_STEMS

TINY = HybridConfig(stems=DJ_STEMS, width=16, encoder_channels=8, analysis_samples=256, synthesis_samples=128,
                    hop=32, encoder_kernel=64)


def _trained(config: HybridConfig, seed: int = 3) -> HybridSeparator:
    """A model whose weights are all non-zero and not at their initial draw (as after training)."""
    torch.manual_seed(seed)
    model = HybridSeparator(config)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def _separate(model: HybridSeparator, audio: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out, _ = model(audio, model.init_state(audio.shape[0]))
    return out


@pytest.mark.parametrize("lookahead", [0, 3])
@pytest.mark.parametrize(("width", "layers"), [(24, 2), (16, 3), (24, 4)])
def test_a_grown_model_separates_exactly_as_before(lookahead: int, width: int, layers: int) -> None:
    source = _trained(replace(TINY, lookahead_frames=lookahead))
    torch.manual_seed(0)
    audio = 0.3 * torch.randn(2, 2, 32 * 40)
    grown = grow(source, replace(source.config, width=width, lstm_layers=layers))
    assert grown.config.width == width and len(grown.lstms) == layers
    assert torch.allclose(_separate(grown, audio), _separate(source, audio), atol=1e-6)


def test_transfer_grows_when_only_width_and_depth_differ() -> None:
    source = _trained(TINY)
    audio = 0.3 * torch.randn(1, 2, 32 * 20)
    target = transfer(source, replace(TINY, width=32, lstm_layers=3))
    assert torch.allclose(_separate(target, audio), _separate(source, audio), atol=1e-6)


def test_the_new_capacity_learns() -> None:
    """One gradient step moves the new units' outgoing weights and the new layer's cell candidate
    off zero, and the grown model's output away from the source's."""
    source = _trained(TINY)
    grown = grow(source, replace(TINY, width=24, lstm_layers=3))
    torch.manual_seed(1)
    audio = 0.3 * torch.randn(2, 2, 32 * 30)
    out, _ = grown(audio, grown.init_state(2))
    out[:, 0].pow(2).mean().backward()  # any loss that depends on the stems
    d = TINY.width
    assert grown.spec_head.weight.grad[:, d:].abs().sum() > 0
    new_layer = grown.lstms[2]
    g_rows = slice(2 * 24, 3 * 24)
    assert new_layer.weight_ih_l0.grad[g_rows].abs().sum() > 0
    with torch.no_grad():
        for p in grown.parameters():
            p.sub_(0.1 * p.grad)
    assert not torch.allclose(_separate(grown, audio), _separate(source, audio), atol=1e-4)


def test_growth_refuses_a_smaller_or_different_model() -> None:
    assert not can_grow(TINY, TINY)
    assert not can_grow(TINY, replace(TINY, width=8))
    assert not can_grow(TINY, replace(TINY, width=24, hop=64))
    assert can_grow(TINY, replace(TINY, lstm_layers=3))
    with pytest.raises(ConfigError, match="larger width"):
        grow(_trained(TINY), replace(TINY, width=8, lstm_layers=3))


def test_transfer_seeds_new_stems_then_grows() -> None:
    """dj-live from the instrument model: the DJ heads seeded from the instrument heads at the
    source's size, then grown; it separates as the seeded model of the source's size does."""
    source = _trained(replace(TINY, stems=("bass", "drums", "guitar", "piano")))
    audio = 0.3 * torch.randn(1, 2, 32 * 20)
    seeded = transfer(source, TINY)
    grown = transfer(source, replace(TINY, width=24, lstm_layers=3))
    assert grown.config.stems == DJ_STEMS and grown.config.width == 24
    assert torch.allclose(_separate(grown, audio), _separate(seeded, audio), atol=1e-6)
