"""Mixer: click-free ramps, mute/solo/bypass semantics, routing sums, meters, no allocation."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from stemstream.bridge.live.controls import StemControls
from stemstream.bridge.live.delay_line import DelayLine
from stemstream.bridge.live.processor import LiveConfig, LiveProcessor
from stemstream.bridge.live.mixer import MixerConfig, StemMixer
from stemstream.realtime.engine.session import RealtimeSession
from stemstream.realtime.engine.streamer import StreamingSeparator
from stemstream.realtime.errors import ConfigError
from stemstream.realtime.stems import STEMS
from tests.bridge_support import TinyHopModel

SR = 48000
BLOCK = 256


def _run(mixer: StemMixer, stems: np.ndarray, dry: np.ndarray, block: int = BLOCK):
    s, c, n = stems.shape
    stem_out = np.zeros_like(stems)
    mix_out = np.zeros((c, n), np.float32)
    for i in range(0, n, block):
        j = min(n, i + block)
        mixer.process(stems[..., i:j], dry[:, i:j], stem_out[..., i:j], mix_out[:, i:j])
    return stem_out, mix_out


def test_gain_step_is_a_bounded_ramp():
    cfg = MixerConfig(STEMS, 2, SR, block_size=BLOCK, ramp_ms=10.0)
    mixer = StemMixer(cfg)
    mixer.controls.set_gain("bass", 0.0)
    mixer.reset()
    n = SR // 2
    stems = np.ones((4, 2, n), np.float32)  # DC at full scale: output == gain curve
    dry = np.zeros((2, n), np.float32)
    half = n // 2
    out1, _ = _run(mixer, stems[..., :half], dry[:, :half])
    mixer.controls.set_gain("bass", 1.0)
    out2, _ = _run(mixer, stems[..., half:], dry[:, half:], block=BLOCK - 1)
    bass = np.concatenate([out1[0, 0], out2[0, 0]])
    jumps = np.abs(np.diff(bass))
    bound = 1.0 - cfg.ramp_coefficient
    assert jumps.max() <= bound * 1.0001, (jumps.max(), bound)
    assert bass[half - 1] == 0.0 and abs(bass[-1] - 1.0) < 1e-6  # ramp completes
    # the ramp takes time: 10 ms after the step it is ~63 % of the way
    assert 0.55 < bass[half + int(0.010 * SR)] < 0.70


def test_mute_solo_bypass_targets_and_mix_sums():
    mixer = StemMixer(MixerConfig(STEMS, 2, SR, block_size=BLOCK, ramp_ms=1.0))
    rng = np.random.default_rng(0)
    n = SR // 4
    stems = rng.standard_normal((4, 2, n)).astype(np.float32)
    dry = rng.standard_normal((2, n)).astype(np.float32)
    ctl = mixer.controls
    ctl.set_mute("drums", True)
    ctl.set_gain("piano", 0.5)
    stem_out, mix_out = _run(mixer, stems, dry)
    tail = slice(n - 1000, n)
    np.testing.assert_allclose(stem_out[1, :, tail], 0.0, atol=1e-6)
    np.testing.assert_allclose(stem_out[3, :, tail], 0.5 * stems[3, :, tail], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mix_out, stem_out.sum(axis=0), rtol=1e-5, atol=1e-5)
    ctl.set_solo("guitar", True)
    stem_out, mix_out = _run(mixer, stems, dry)
    np.testing.assert_allclose(mix_out[:, tail], stems[2, :, tail], rtol=1e-5, atol=1e-5)
    ctl.set_bypass(True)
    stem_out, mix_out = _run(mixer, stems, dry)
    np.testing.assert_allclose(mix_out[:, tail], dry[:, tail], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(stem_out[0, :, tail], dry[:, tail] / 4, rtol=1e-5, atol=1e-5)


def test_meters_and_validation():
    mixer = StemMixer(MixerConfig(STEMS, 2, SR, block_size=BLOCK))
    n = BLOCK
    t = np.arange(n) / SR
    stems = np.zeros((4, 2, n), np.float32)
    stems[2] = 0.5 * np.sin(2 * np.pi * 1500.0 * t)  # 8 periods in 256 samples
    mixer.process(stems, np.zeros((2, n), np.float32))
    rms, peak = mixer.read_meters()
    assert abs(rms[2] - 0.5 / np.sqrt(2)) < 1e-3 and 0.49 < peak[2] <= 0.5
    assert rms[0] == 0.0 and mixer.read_meters()[1][2] == 0.0  # hold reset
    ctl = StemControls(STEMS)
    for bad in (-0.1, 4.5, float("nan"), "1"):
        with pytest.raises(ConfigError):
            ctl.set_gain("bass", bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        ctl.set_mute("bass", 2)
    with pytest.raises(ConfigError):
        ctl.set_gain("vocals", 1.0)
    with pytest.raises(ConfigError):
        MixerConfig(STEMS, ramp_ms=0.0)


def test_process_does_not_allocate_per_block():
    mixer = StemMixer(MixerConfig(STEMS, 2, SR, block_size=BLOCK))
    stems = np.ones((4, 2, BLOCK), np.float32)
    dry = np.ones((2, BLOCK), np.float32)
    so, mo = np.zeros_like(stems), np.zeros((2, BLOCK), np.float32)
    mixer.controls.set_bypass(True)
    for _ in range(5):
        mixer.process(stems, dry, so, mo)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    for i in range(200):
        mixer.controls.gain[i % 4] = (i % 3) / 2
        mixer.process(stems, dry, so, mo)
    peak = tracemalloc.get_traced_memory()[1] - before
    tracemalloc.stop()
    # one numpy temporary of a block would be >= 8 KiB (256 samples x 4 stems x 2 ch x 4 B)
    assert peak < 4096, peak


@pytest.mark.parametrize("delay", [0, 1, 100, 256, 300])
def test_delay_line_any_block_sizes(delay):
    rng = np.random.default_rng(delay)
    x = rng.standard_normal((2, 3000)).astype(np.float32)
    line = DelayLine(2, delay)
    out = np.zeros_like(x)
    i = 0
    for n in [1, 64, 65, 255, 301, 1024] * 10:
        if i >= x.shape[1]:
            break
        j = min(x.shape[1], i + n)
        line.process(x[:, i:j], out[:, i:j])
        i = j
    expected = np.concatenate([np.zeros((2, delay), np.float32), x], axis=1)[:, : x.shape[1]]
    np.testing.assert_array_equal(out, expected)


def test_live_callback_path_does_not_allocate_per_block():
    """Session callback (engine, worker not started: fallback path) + dry delay + mixer."""
    cfg = LiveConfig(model="tiny", sample_rate=44100, block_size=BLOCK, routing="both")
    proc = LiveProcessor(cfg, lambda name: RealtimeSession(StreamingSeparator(TinyHopModel(), 44100, 2), BLOCK),
                         STEMS)
    x = np.random.default_rng(0).standard_normal((BLOCK, 2)).astype(np.float32)
    so, mo = np.zeros((4, 2, BLOCK), np.float32), np.zeros((2, BLOCK), np.float32)
    for _ in range(5):
        proc.process(x, so, mo)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    for _ in range(200):
        proc.process(x, so, mo)
    peak = tracemalloc.get_traced_memory()[1] - before
    tracemalloc.stop()
    proc.close()
    assert peak < 8192, peak  # one (4, 2, 256) float32 temporary would be 8 KiB
    assert np.abs(mo).max() > 0  # the fallback mix is heard, not silence
