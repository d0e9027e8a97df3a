"""Per-stem effects on real audio: pedalboard built-ins change the signal, configs validate,
OSC-style changes reach the worker, latency is reported."""

from __future__ import annotations

import json

import numpy as np
import pytest

from stemstream.bridge.effects.rack import EffectsRack, EffectsSeparator
from stemstream.bridge.effects.spec import find_plugins, load_effects_config, validate_chain
from stemstream.realtime.errors import ConfigError
from stemstream.realtime.stems import STEMS
from tests.bridge_support import IdentityStems as _Identity
from tests.bridge_support import music_like

SR = 44100


def _run(sep, audio, block=256):
    return np.concatenate([sep.process(audio[:, i : i + block]) for i in range(0, audio.shape[1], block)], axis=-1)


def _band_energy(x, lo, hi):
    spec = np.abs(np.fft.rfft(x[0])) ** 2
    f = np.fft.rfftfreq(x.shape[-1], 1 / SR)
    return spec[(f >= lo) & (f < hi)].sum()


def test_filters_and_reverb_change_only_their_stem(tmp_path):
    cfg = tmp_path / "fx.json"
    cfg.write_text(json.dumps({"stems": {
        "bass": [{"type": "LowpassFilter", "cutoff_frequency_hz": 150.0}],
        "drums": [{"type": "HighpassFilter", "cutoff_frequency_hz": 2000.0}],
        "guitar": [{"type": "Reverb", "room_size": 0.8, "wet_level": 0.5, "dry_level": 0.5}],
    }}))
    rack = EffectsRack(STEMS, SR, load_effects_config(cfg, STEMS))
    sep = EffectsSeparator(_Identity(), rack, 2)
    audio = music_like(1.0, SR, seed=3)
    out = _run(sep, audio)
    assert out.shape == (4, 2, audio.shape[1]) and np.isfinite(out).all()
    np.testing.assert_array_equal(out[3], audio)  # piano: no chain
    assert _band_energy(out[0], 1500, 6000) < 0.05 * _band_energy(audio, 1500, 6000)  # lowpassed (6 dB/oct)
    assert _band_energy(out[1], 20, 300) < 0.05 * _band_energy(audio, 20, 300)  # highpassed
    assert np.abs(out[2] - audio).max() > 0.05  # reverb changes the guitar
    tail = _run(sep, np.zeros((2, SR // 2), np.float32))
    assert np.abs(tail[2]).max() > 1e-3 and np.abs(tail[3]).max() == 0.0  # reverb tail rings on
    assert sep.latency_samples == 32 + rack.latency_samples and rack.latency_samples == 0


def test_changes_from_the_control_side_reach_the_worker():
    rack = EffectsRack(STEMS, SR, {"drums": [{"type": "Gain", "gain_db": 0.0}]})
    sep = EffectsSeparator(_Identity(), rack, 2)
    audio = music_like(0.2, SR, seed=4)
    np.testing.assert_allclose(_run(sep, audio)[1], audio, atol=1e-6)
    rack.set_param("drums", 0, "gain_db", -6.0)
    np.testing.assert_allclose(_run(sep, audio)[1], audio * 10 ** (-6 / 20), rtol=1e-4, atol=1e-6)
    rack.set_chain("piano", '[{"type": "Gain", "gain_db": -60}]')
    assert np.abs(_run(sep, audio)[3]).max() < 2e-3 * np.abs(audio).max()
    assert json.loads(rack.chain_json("piano")) == [{"type": "Gain", "gain_db": -60.0}]
    rack.set_chain("piano", "[]")
    np.testing.assert_array_equal(_run(sep, audio)[3], audio)


@pytest.mark.parametrize("spec", [
    "not json", '{"type": "Reverb"}', '[{"type": "Fuzz"}]', '[{"type": "Reverb", "room_size": 3}]',
    '[{"type": "Reverb", "size": 0.5}]', '[{"type": "plugin", "path": "/nope/x.dll"}]',
    '[{"type": "plugin", "path": "/nope/missing.vst3"}]',
])
def test_bad_chains_are_refused(spec):
    rack = EffectsRack(STEMS, SR)
    with pytest.raises(ConfigError):
        rack.set_chain("bass", spec)
    assert rack.chains["bass"] == []


def test_param_validation_and_plugin_listing(tmp_path):
    rack = EffectsRack(STEMS, SR, {"bass": [{"type": "Compressor", "threshold_db": -20}]})
    for stem, idx, param, value in [("bass", 1, "ratio", 2.0), ("bass", 0, "room_size", 0.5),
                                    ("bass", 0, "ratio", 100.0), ("vocals", 0, "ratio", 2.0)]:
        with pytest.raises(ConfigError):
            rack.set_param(stem, idx, param, value)
    toml = tmp_path / "fx.toml"
    toml.write_text('[[stems.drums]]\ntype = "Delay"\ndelay_seconds = 0.25\nmix = 0.3\n')
    assert load_effects_config(toml, STEMS)["drums"][0]["delay_seconds"] == 0.25
    assert validate_chain([]) == []
    assert find_plugins([str(tmp_path)]) == []  # fx.toml is not a plugin
    (tmp_path / "Fake.vst3").mkdir()
    assert str(tmp_path / "Fake.vst3") in find_plugins([str(tmp_path)])


def test_pedalboard_chains_do_not_reset_when_a_longer_block_arrives():
    """pedalboard re-prepares (resets) plugins on a block longer than any before; the rack
    primes its boards so a worker catching up (one long block) causes no click."""
    chains = {"guitar": [{"type": "HighpassFilter", "cutoff_frequency_hz": 200.0},
                         {"type": "Reverb", "room_size": 0.6}]}
    audio = music_like(0.2, SR, seed=6)

    def run(sizes):
        sep = EffectsSeparator(_Identity(), EffectsRack(STEMS, SR, chains), 2)
        out, i = [], 0
        for n in sizes:
            out.append(sep.process(audio[:, i : i + n]))
            i += n
        return np.concatenate(out, axis=-1)

    steady = run([64] * 100)
    catch_up = run([64] * 40 + [1024] + [64] * 44)
    n = min(steady.shape[-1], catch_up.shape[-1])
    np.testing.assert_allclose(catch_up[..., :n], steady[..., :n], atol=1e-6)
