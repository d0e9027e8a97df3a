"""Structured pruning bookkeeping: sizes, MACs and parameters drop; the pruned model runs."""

from __future__ import annotations

import torch

from stemstream.export.prune import importance, plan, prune
from stemstream.realtime.models.hybrid import HybridConfig, HybridSeparator, count_parameters, macs_per_hop

torch.set_num_threads(1)

TINY = dict(width=32, encoder_channels=16, analysis_samples=256, synthesis_samples=128, hop=32, encoder_kernel=64)


def _model(**kw) -> HybridSeparator:
    torch.manual_seed(0)
    return HybridSeparator(HybridConfig(**{**TINY, **kw})).eval()


def _mix() -> torch.Tensor:
    return torch.randn(2, 2, 32 * 30, generator=torch.Generator().manual_seed(5))


def test_keep_everything_is_identity() -> None:
    model = _model(lookahead_frames=2)
    pruned = prune(model, _mix(), 0.0, width_keep=1.0, encoder_keep=1.0)
    assert pruned.config.bins == model.config.bins
    x = _mix()
    with torch.no_grad():
        a, _ = model(x, model.init_state(2))
        b, _ = pruned(x, pruned.init_state(2))
    assert (a - b).abs().max() < 1e-5


def test_pruning_reduces_macs_and_params_and_carries_state() -> None:
    model = _model()
    pruned = prune(model, _mix(), 0.45)
    c0, c1 = model.config, pruned.config
    assert macs_per_hop(c1) <= 0.55 * macs_per_hop(c0)
    assert count_parameters(pruned) < count_parameters(model)
    assert c1.width == 24 and c1.encoder_channels == 8 and c1.bins < c0.bins
    assert c1.latency_samples == c0.latency_samples
    x = _mix()
    with torch.no_grad():
        whole, _ = pruned(x, pruned.init_state(2))
        s, parts = pruned.init_state(2), []
        for i in range(0, x.shape[-1], 32 * 6):
            y, s = pruned(x[..., i : i + 32 * 6], s)
            parts.append(y)
    assert (torch.cat(parts, -1) - whole).abs().max() < 1e-5


def test_plan_hits_target_and_importance_shapes() -> None:
    cfg = HybridConfig(**TINY)
    bins, width, enc = plan(cfg, 0.4)
    from dataclasses import replace

    trial = replace(cfg, kept_bins=tuple(range(bins)), width=width, encoder_channels=enc)
    assert macs_per_hop(trial) <= 0.6 * macs_per_hop(cfg)
    scores = importance(_model(), _mix())
    assert scores["bins"].shape == (cfg.bins,) and scores["width"].shape == (32,)
    assert scores["encoder"].shape == (16,)


def test_pruning_twice_composes_bin_indices() -> None:
    once = prune(_model(), _mix(), 0.3)
    twice = prune(once, _mix(), 0.3)
    assert set(twice.config.kept_bins) <= set(once.config.kept_bins)


def test_transfer_to_quality_config() -> None:
    """Quality starts from live: same-shape tensors copied, the look-ahead half of the heads
    zeroed, the decoder taps placed at the end of the longer synthesis kernel."""
    from dataclasses import replace

    from stemstream.export.train.run import transfer

    live = _model()
    same = transfer(live, live.config)
    x = _mix()
    with torch.no_grad():
        a, _ = live(x, live.init_state(2))
        b, _ = same(x, same.init_state(2))
    assert (a - b).abs().max() < 1e-6
    q = transfer(live, replace(live.config, synthesis_samples=256, lookahead_frames=3))
    d = live.config.width
    assert torch.equal(q.spec_head.weight[:, :d], live.spec_head.weight)
    assert q.spec_head.weight[:, d:].abs().max() == 0
    assert torch.equal(q.decoder.weight[..., -128:], live.decoder.weight)
    with torch.no_grad():
        y, _ = q(x, q.init_state(2))
    assert y.shape == a.shape and torch.isfinite(y).all()


def test_build_model_prunes_once_then_fine_tunes_as_is(tmp_path) -> None:
    """``live-pruned --init-from`` a model already within the MAC budget continues it unpruned;
    a larger one is pruned to the budget."""
    from dataclasses import replace

    import numpy as np
    import soundfile as sf

    from stemstream.export.train.configs import TrainConfig
    from stemstream.export.train.run import build_model
    from stemstream.realtime.models.hybrid import ARCHITECTURE
    from stemstream.realtime.models.weights import save_weights

    def write_weights(path, model) -> None:
        save_weights(path, model, ARCHITECTURE, model.config.to_json())

    rng = np.random.default_rng(0)
    for i in range(2):
        song = tmp_path / "data" / "train" / f"song{i}"
        song.mkdir(parents=True)
        for s in ("bass", "drums", "guitar", "piano"):
            sf.write(song / f"{s}.wav", (0.1 * rng.standard_normal((44100 * 5, 2))).astype(np.float32), 44100)
    full = _model()
    cfg = TrainConfig(name="p", model=full.config, prune_macs=0.45, init_from=str(tmp_path / "full.safetensors"))
    write_weights(tmp_path / "full.safetensors", full)
    pruned = build_model(cfg, tmp_path / "runs", tmp_path / "data", log=lambda s: None)
    assert macs_per_hop(pruned.config) <= 0.55 * macs_per_hop(full.config)
    write_weights(tmp_path / "pruned.safetensors", pruned)
    again = build_model(replace(cfg, init_from=str(tmp_path / "pruned.safetensors")), tmp_path / "runs",
                        tmp_path / "data", log=lambda s: None)
    assert again.config == pruned.config
    for k, v in pruned.state_dict().items():
        assert torch.equal(again.state_dict()[k], v), k
