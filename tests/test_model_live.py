"""Live separator: state carry, shapes, latency, mixture consistency, MAC counts."""

from __future__ import annotations

import pytest
import torch

from stemstream.realtime.errors import ConfigError
from stemstream.realtime.models.dsp import StreamingSTFT
from stemstream.realtime.models.hybrid import HybridConfig, HybridSeparator, macs_per_hop, mixture_consistency
from stemstream.realtime.models.macs import measured_macs_per_hop
from stemstream.realtime.stems import STEMS

torch.set_num_threads(1)

TINY = dict(width=32, encoder_channels=16, analysis_samples=256, synthesis_samples=128, hop=32, encoder_kernel=64)


def _model(**kw) -> HybridSeparator:
    torch.manual_seed(0)
    return HybridSeparator(HybridConfig(**{**TINY, **kw})).eval()


@pytest.mark.parametrize("kw", [{}, {"lookahead_frames": 3, "synthesis_samples": 256}, {"consistency": "energy"}])
def test_hops_equal_one_call(kw) -> None:
    model = _model(**kw)
    hop = model.config.hop_samples
    x = torch.randn(2, 2, hop * 37, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        whole, end_state = model(x, model.init_state(2))
        state, parts, pos = model.init_state(2), [], 0
        for n in (1, 5, 1, 7, 13, 10):  # odd call sizes, 37 hops in all
            y, state = model(x[..., pos : pos + n * hop], state)
            for k, v in state.items():
                assert v.shape == model.init_state(2)[k].shape, k
            parts.append(y)
            pos += n * hop
    pieces = torch.cat(parts, dim=-1)
    diff = (pieces - whole).abs()
    assert diff.max() < 1e-5, f"first mismatch at {torch.nonzero(diff >= 1e-5)[0].tolist()}"
    for k in end_state:
        assert torch.allclose(end_state[k], state[k], atol=1e-5), k


def test_shapes_and_stems() -> None:
    model = _model()
    assert model.config.stems == STEMS
    y, state = model(torch.zeros(3, 2, 4 * 32), model.init_state(3))
    assert y.shape == (3, 4, 2, 128) and y.dtype == torch.float32
    assert set(state) == set(model.init_state(3))


@pytest.mark.parametrize("mode", ["equal", "energy"])
def test_mixture_consistency(mode: str) -> None:
    model = _model(consistency=mode)
    lat = model.config.latency_samples
    x = torch.randn(1, 2, 32 * 40, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        y, _ = model(x, model.init_state(1))
    err = (y.sum(dim=1)[..., lat:] - x[..., : x.shape[-1] - lat]).abs().max()
    assert err < 1e-5
    stems = torch.randn(2, 4, 2, 50)
    mix = torch.randn(2, 2, 50)
    assert (mixture_consistency(stems, mix, "none") == stems).all()


def test_latency_matches_impulse() -> None:
    """With every mask at 1 and the encoder branch silenced, the model is a pure delay."""
    model = _model(consistency="none")
    with torch.no_grad():
        model.spec_head.bias.fill_(1e4)
        model.decoder.weight.zero_()
        x = torch.zeros(1, 2, 32 * 20)
        x[0, 0, 100] = 1.0
        y, _ = model(x, model.init_state(1))
    out = y[0, 0, 0]  # one stem, left channel: impulse at 100 + latency
    assert int(out.abs().argmax()) == 100 + model.config.latency_samples
    assert abs(float(out.max()) - 1.0) < 1e-4


def test_stft_perfect_reconstruction() -> None:
    stft = StreamingSTFT(512, 128, 32)
    x = torch.randn(2, 32 * 60, generator=torch.Generator().manual_seed(3))
    spec, _ = stft.analyse(x, torch.zeros(2, stft.history_samples))
    y, _ = stft.synthesise(spec, torch.zeros(2, stft.tail_samples))
    lat = stft.latency_samples
    assert (y[:, 512 + lat :] - x[:, 512 : x.shape[-1] - lat]).abs().max() < 1e-5


def test_macs_analytic_matches_measured() -> None:
    model = _model()
    measured = measured_macs_per_hop(model)
    analytic = macs_per_hop(model.config)
    assert abs(measured - analytic) / analytic < 0.02, (measured, analytic)


def test_config_validation_names_parameter() -> None:
    with pytest.raises(ConfigError, match="consistency='sum'"):
        HybridConfig(consistency="sum")
    with pytest.raises(ConfigError, match="encoder_kernel"):
        HybridConfig(encoder_kernel=8)
    assert HybridConfig.from_dict(__import__("json").loads(HybridConfig(**TINY).to_json())) == HybridConfig(**TINY)


@pytest.mark.parametrize("kw", [{}, {"lookahead_frames": 2, "synthesis_samples": 256}, {"kept_bins": tuple(range(0, 129, 3))}])
def test_training_fft_path_equals_export_path(kw) -> None:
    """The FFT path used for training computes the same function as the conv/matmul path."""
    model = _model(**kw)
    x = torch.randn(2, 2, 32 * 25, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        a, sa = model(x, model.init_state(2))
        model.fast_dsp = True
        b, sb = model(x, model.init_state(2))
    assert (a - b).abs().max() < 1e-4
    for k in sa:
        assert (sa[k] - sb[k]).abs().max() < 1e-4, k
