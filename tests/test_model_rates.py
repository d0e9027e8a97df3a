"""Models at another rate than the data's 44.1 kHz: resampled training batches, a tiny model trained
at 48 kHz, the rate sibling a 48/96 kHz host runs (``registry.rate_variant``) and its latency."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from stemstream.export.train.configs import TrainConfig, get_config
from stemstream.export.train.data import SongSet
from stemstream.export.train.dj_data import TrainBatch
from stemstream.export.train.rates import EDGE_SAMPLES, ResampledSampler, resample_batch, source_samples
from stemstream.realtime.backends import open_backend
from stemstream.realtime.engine.session import RealtimeSession
from stemstream.realtime.engine.streamer import StreamingSeparator
from stemstream.realtime.models import registry
from stemstream.realtime.models.hybrid import ARCHITECTURE, HybridSeparator
from stemstream.realtime.models.weights import save_weights
from stemstream.realtime.stems import DJ_STEMS

torch.set_num_threads(1)
HOP = 128


def _dirac_batch(n: int) -> TrainBatch:
    """Two examples, four stems: a Dirac per stem and channel at its own place; the mix their sum."""
    targets = torch.zeros(2, 4, 2, n)
    for b in range(2):
        for s in range(4):
            for c in range(2):
                targets[b, s, c, 200 + 300 * s + 50 * c + 7 * b] = 1.0 - 0.1 * s
    groups = torch.eye(4).expand(2, 4, 4).clone()
    return TrainBatch(targets.sum(1), targets, groups, torch.ones(2, 4, dtype=torch.bool), torch.tensor([0.0, 8000.0]))


def test_resampled_batch_keeps_the_sum_and_whole_hops() -> None:
    samples = 12 * HOP
    drawn = source_samples(samples, 48000)
    batch = _dirac_batch(drawn)
    out = resample_batch(batch, 48000, samples)
    assert isinstance(out, TrainBatch)
    assert out.mix.shape == (2, 2, samples) and out.targets.shape == (2, 4, 2, samples)
    assert out.mix.shape[-1] % HOP == 0
    assert torch.equal(out.mix, out.targets.sum(1))  # exactly: the mix is the sum of the stems
    # linear: the resampled mixture is the sum of the resampled stems up to float rounding
    mix_alone = resample_batch((batch.mix, batch.mix.unsqueeze(1)), 48000, samples)[0]
    torch.testing.assert_close(mix_alone, out.mix, atol=1e-6, rtol=0)
    # each Dirac lands where the rates put it (after the cut edge), its energy kept
    start = -(-EDGE_SAMPLES * 48000 // 44100)
    for s in range(4):
        at = 200 + 300 * s + 7 * 1
        row = out.targets[1, s, 0].numpy()
        assert abs(int(np.argmax(np.abs(row))) - (at * 48000 / 44100 - start)) <= 1
        assert abs(float(np.sum(row ** 2)) * 44100 / 48000 / (1.0 - 0.1 * s) ** 2 - 1) < 0.05  # ~4 % at the band edge
    assert torch.equal(out.band_hz, batch.band_hz) and torch.equal(out.groups, batch.groups)


def test_resampled_sampler_draws_from_the_inner_one() -> None:
    class Inner:
        def __init__(self) -> None:
            self.rng = np.random.default_rng(0)
            self.drawn: list[int] = []

        def batch(self, size: int) -> TrainBatch:
            self.drawn.append(size)
            return _dirac_batch(source_samples(12 * HOP, 48000))

    inner = Inner()
    sampler = ResampledSampler(inner, 48000, 12 * HOP)
    assert sampler.batch(2).mix.shape[-1] == 12 * HOP and inner.drawn == [2]
    assert sampler.rng is inner.rng  # checkpointed through the wrapper


def test_dj_live_48k_config_starts_from_the_44k_weights() -> None:
    from stemstream.export.train.run import transfer

    cfg = get_config("dj-live-48k")
    assert cfg.model.sample_rate == 48000 and replace(cfg.model, sample_rate=44100) == get_config("dj-live").model
    small = replace(cfg.model, analysis_samples=512, width=16, lstm_layers=1, encoder_channels=16, encoder_kernel=128)
    source = HybridSeparator(replace(small, sample_rate=44100))
    target = transfer(source, small)
    assert target.config.sample_rate == 48000
    assert all(torch.equal(a, b) for a, b in zip(source.state_dict().values(), target.state_dict().values()))


def test_tiny_model_trains_at_48k_and_runs_without_a_resampler(tmp_path: Path, tiny_live_config) -> None:
    from stemstream.export.train.loop import train

    rng = np.random.default_rng(2)
    songs = [(0.1 * rng.standard_normal((4, 2, 44100 * 8))).astype(np.float32) for _ in range(2)]
    cfg = TrainConfig(name="tiny-48k", model=replace(tiny_live_config, sample_rate=48000), steps=3,
                      time_budget_s=0.0, batch=2, excerpt_seconds=0.25, valid_every=3)
    torch.manual_seed(0)
    model = HybridSeparator(cfg.model)
    record = train(cfg, model, SongSet(["a", "b"], songs, "memory"), SongSet(["v"], songs[:1], "memory"),
                   tmp_path, progress=False)
    assert record["train"]["steps"] == 3 and np.isfinite(record["final_valid"]["mean"])
    weights = tmp_path / "tiny-48k.safetensors"
    assert registry.model_card(str(weights)).sample_rate == 48000
    sep = StreamingSeparator(registry.load_model(str(weights)), 48000, 2)
    assert not sep.resampling
    x = (0.1 * rng.standard_normal((2, 10 * HOP))).astype(np.float32)
    y = sep.process(x)
    assert y.shape[-1] > 0 and np.isfinite(y).all()


def _write(path: Path, config, seed: int = 0) -> Path:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        save_weights(path, HybridSeparator(config).eval(), ARCHITECTURE, config.to_json(), {})
    return path


@pytest.fixture()
def weights_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_live_config) -> Path:
    """A weights folder with a tiny ``dj-live`` (44.1 kHz), no ``dj-live-48k`` yet."""
    monkeypatch.setattr(registry, "WEIGHTS_DIR", tmp_path)
    _write(tmp_path / "dj-live.safetensors", replace(tiny_live_config, stems=DJ_STEMS))
    return tmp_path


def test_rate_variant_only_when_shipped_and_at_48k_family_rates(weights_dir: Path, tiny_live_config) -> None:
    rates = (22050, 32000, 44100, 48000, 88200, 96000, 192000)
    assert [registry.rate_variant("dj-live", r) for r in rates] == ["dj-live"] * len(rates)  # not shipped
    _write(weights_dir / "dj-live-48k.safetensors", replace(tiny_live_config, stems=DJ_STEMS, sample_rate=48000))
    picked = {r: registry.rate_variant("dj-live", r) for r in rates}
    assert picked == {22050: "dj-live", 32000: "dj-live", 44100: "dj-live", 48000: "dj-live-48k",
                      88200: "dj-live", 96000: "dj-live-48k", 192000: "dj-live-48k"}
    for other in ("live", "dj-quality", "dj-live-48k", str(weights_dir / "dj-live.safetensors")):
        assert registry.rate_variant(other, 48000) == other
    assert registry.model_label("dj-live", 96000) == "dj-live (48 kHz variant)"
    assert registry.model_label("dj-live", 44100) == "dj-live"
    assert "dj-live-48k" in registry.available_models() and registry.model_card("dj-live-48k").sample_rate == 48000


def test_live_factory_runs_the_sibling_at_48k(weights_dir: Path, tiny_live_config) -> None:
    from stemstream.bridge.live.processor import LiveConfig, engine_factory

    _write(weights_dir / "dj-live-48k.safetensors", replace(tiny_live_config, stems=DJ_STEMS, sample_rate=48000))
    for host, model_rate in ((44100, 44100), (48000, 48000), (96000, 48000)):
        cfg = LiveConfig(model="dj-live", backend="torch", sample_rate=host, realtime_worker=False)
        session = engine_factory(cfg)("dj-live")
        try:
            assert session.separator.model_sample_rate == model_rate
        finally:
            session.stop()


def test_session_latency_at_48k_has_no_hop_alignment_term(tiny_live_config) -> None:
    at = {rate: open_backend("torch", HybridSeparator(replace(tiny_live_config, sample_rate=rate)).eval(), f"t{rate}")
          for rate in (44100, 48000)}
    model_latency = tiny_live_config.latency_samples
    sep = StreamingSeparator(at[48000], 48000, 2)
    session = RealtimeSession(sep, 256, queue_blocks=2)
    assert sep.max_pending_samples(256) == 0 and session.pending_samples == 0
    assert session.latency_samples == model_latency + 2 * 256 + session.fade_samples
    # the 44.1 kHz model at a 48 kHz host: resampler delay and a hop-alignment wait on top
    old = RealtimeSession(StreamingSeparator(at[44100], 48000, 2), 256, queue_blocks=2)
    assert old.pending_samples > 0 and old.latency_samples > session.latency_samples
    # at 96 kHz the 48 kHz model (2:1) holds back less than the 44.1 kHz one
    assert (StreamingSeparator(at[48000], 96000, 2).max_pending_samples(256)
            < StreamingSeparator(at[44100], 96000, 2).max_pending_samples(256))
