"""LV2 plugins (swh-lv2) hosted through liblilv on real audio: discovery, a lowpass keeps a low
sine and attenuates a high one, output does not depend on the block size, the latency port is
reported and compensated, bad parameters are one-line errors, OSC parameter changes arrive."""

from __future__ import annotations

import json

import numpy as np
import pytest

from stemstream.bridge.effects import lv2_host, lv2_world
from stemstream.bridge.effects.rack import EffectsRack, EffectsSeparator
from stemstream.bridge.effects.boards import build_board
from stemstream.bridge.effects.spec import validate_chain
from stemstream.realtime.errors import ConfigError, MissingDependencyError
from stemstream.realtime.stems import STEMS
from tests.bridge_support import IdentityStems as _Identity
from tests.bridge_support import level_db as _level_db
from tests.bridge_support import music_like, sines
from tests.bridge_support import stream_blocks as _stream
from tests.bridge_support import wait_for_osc

SR = 44100
SWH = "http://plugin.org.uk/swh-plugins/"
LOWPASS, HIGHPASS, DELAY, LIMITER, PLATE = (SWH + n for n in ("lowpass_iir", "highpass_iir", "delay_l",
                                                               "fastLookaheadLimiter", "plate"))

try:
    _URIS = {p.uri for p in lv2_world.list_plugins()}
except MissingDependencyError as exc:
    pytest.skip(f"liblilv is not installed (apt-get install {lv2_world.APT_PACKAGE}): {exc}", allow_module_level=True)
if LOWPASS not in _URIS:
    pytest.skip("the swh LV2 plugins are not installed (apt-get install swh-lv2)", allow_module_level=True)


def _sines(freqs, seconds=0.3):
    return sines(freqs, seconds, SR)


def test_discovery_finds_the_swh_plugins_and_their_ports():
    plugins = {p.uri: p for p in lv2_world.list_plugins()}
    assert {LOWPASS, HIGHPASS, DELAY, LIMITER} <= set(plugins)
    lp = plugins[LOWPASS]
    assert lp.name == "Glame Lowpass Filter" and not lp.problem
    assert len(lp.audio_inputs) == 1 and len(lp.audio_outputs) == 1 and lp.latency_port is None
    cutoff = lp.control("cutoff")
    assert cutoff is not None and cutoff.per_sample_rate  # bounds are multiples of the rate
    lo, hi, default = cutoff.bounds(SR)
    assert lo == pytest.approx(0.0001 * SR) and hi == pytest.approx(0.45 * SR) and lo < default < hi
    assert plugins[LIMITER].latency_port is not None  # lv2:reportsLatency
    assert "needs both" in plugins[SWH + "sinCos"].problem  # an oscillator: no audio input


def test_lowpass_keeps_a_low_sine_and_attenuates_a_high_one():
    chains = {"bass": [{"type": "lv2", "uri": LOWPASS, "params": {"cutoff": 500.0, "stages": 2}}],
              "drums": [{"type": "lv2", "uri": HIGHPASS, "params": {"cutoff": 2000.0, "stages": 2}}]}
    audio = _sines([100.0, 8000.0])
    out = _stream(EffectsSeparator(_Identity(), EffectsRack(STEMS, SR, chains), 2), audio, 256)
    assert out.shape == (4, 2, audio.shape[1])
    low_in, high_in = _level_db(audio, 100.0), _level_db(audio, 8000.0)
    assert abs(_level_db(out[0], 100.0) - low_in) < 0.5
    assert _level_db(out[0], 8000.0) < high_in - 60.0  # 4 poles, 4 octaves above the cutoff
    assert _level_db(out[1], 100.0) < low_in - 60.0
    assert abs(_level_db(out[1], 8000.0) - high_in) < 0.5
    np.testing.assert_allclose(out[0, 0], out[0, 1], atol=1e-6)  # two mono instances, same input
    np.testing.assert_array_equal(out[2], audio)  # no chain


def test_output_does_not_depend_on_the_block_size_and_latency_is_compensated():
    chains = {"bass": [{"type": "lv2", "uri": LOWPASS, "params": {"cutoff": 300.0}},
                       {"type": "Gain", "gain_db": -3.0}],
              "drums": [{"type": "lv2", "uri": DELAY, "params": {"delay_time": 0.01}}],
              "guitar": [{"type": "lv2", "uri": LIMITER, "params": {"limit": -6.0}}]}
    audio = music_like(0.3, SR, seed=11)
    outs = {}
    for block in (64, 512, 8193):
        rack = EffectsRack(STEMS, SR, chains)
        outs[block] = _stream(EffectsSeparator(_Identity(), rack, 2), audio, block)
    for block, out in outs.items():
        err = np.abs(out - outs[64])
        assert err.max() < 1e-6, (block, float(err.max()), np.unravel_index(err.argmax(), err.shape))
    latency = rack.latency_samples
    assert latency > 0 and EffectsSeparator(_Identity(), rack, 2).latency_samples == 32 + latency
    out = outs[64]
    np.testing.assert_array_equal(out[3, :, latency:], audio[:, :-latency])  # piano padded to the budget
    assert np.abs(out[2]).max() <= 10 ** (-6 / 20) + 1e-3  # the limiter limits
    assert np.abs(out[2]).max() > 0.1 and np.isfinite(out).all()
    shifted = [np.abs(out[1, :, latency + d :] - audio[:, : -(latency + d)]).max() for d in (441, 442)]
    assert min(shifted) == 0.0, shifted  # a pure 10 ms delay (swh's delay_l reads one sample behind)


def test_mixed_chain_on_real_audio_equals_the_steps_one_after_another():
    """pedalboard HighpassFilter -> LV2 lowpass -> LV2 plate (mono in, stereo out) through a
    streaming separator of a hop model, as ``stemstream live`` runs it."""
    from stemstream.realtime.engine.streamer import StreamingSeparator
    from tests.bridge_support import TinyHopModel

    chain = [{"type": "HighpassFilter", "cutoff_frequency_hz": 150.0},
             {"type": "lv2", "uri": LOWPASS, "params": {"cutoff": 4000.0}},
             {"type": "lv2", "uri": PLATE, "params": {"wet": 0.3}}]
    sep = EffectsSeparator(StreamingSeparator(TinyHopModel(hop=128), SR, 2),
                           EffectsRack(STEMS, SR, {"piano": chain}), 2)
    audio = music_like(0.3, SR, seed=12)
    out = _stream(sep, audio, 256)
    plain = _stream(StreamingSeparator(TinyHopModel(hop=128), SR, 2), audio, 256)
    assert out.shape == plain.shape and np.isfinite(out).all()
    np.testing.assert_array_equal(out[:3], plain[:3])
    board = build_board(validate_chain(chain), SR, 2)
    assert isinstance(board, lv2_host.SerialBoard) and len(board) == 3
    np.testing.assert_allclose(out[3], board.process(plain[3], SR), atol=1e-6)
    assert np.abs(out[3] - plain[3]).max() > 0.01


@pytest.mark.parametrize("spec, names", [
    ([{"type": "lv2", "uri": LOWPASS, "params": {"cutoff": 30000.0}}], ["cutoff=30000.0", "19845"]),
    ([{"type": "lv2", "uri": LOWPASS, "params": {"stages": 11}}], ["stages=11", "[1, 10]"]),
    ([{"type": "lv2", "uri": LOWPASS, "params": {"stages": "two"}}], ["stages='two'"]),
    ([{"type": "lv2", "uri": LOWPASS, "params": {"q": 1.0}}], ["q=1.0", "cutoff"]),
    ([{"type": "lv2", "uri": SWH + "nothing_here"}], ["nothing_here", "installed LV2 plugin"]),
    ([{"type": "lv2", "uri": SWH + "sinCos"}], ["sinCos", "0 audio inputs"]),
    ([{"type": "lv2", "path": LOWPASS}], ["path"]),
])
def test_bad_lv2_entries_are_one_line_errors(spec, names):
    rack = EffectsRack(STEMS, SR)
    with pytest.raises(ConfigError) as info:
        rack.set_chain("bass", json.dumps(spec))
    message = str(info.value)
    assert "\n" not in message and all(n in message for n in names), message
    assert rack.chains["bass"] == []


def test_parameters_over_osc_reach_the_plugin():
    """Real UDP on loopback: move the lowpass cutoff of the bass; an out-of-range value and an
    unknown symbol are counted as rejected and change nothing."""
    import socket

    from stemstream.bridge.live.processor import LiveConfig, LiveProcessor
    from stemstream.bridge.osc.codec import encode_message
    from stemstream.bridge.osc.server import OscServer
    from tests.bridge_support import stand_in_factory

    rack = EffectsRack(STEMS, SR, {"bass": [{"type": "lv2", "uri": LOWPASS, "params": {"cutoff": 200.0}}]})
    inst = rack.instance(2)  # stands for a running separator's effects
    audio = np.repeat(_sines([3000.0])[None], 4, axis=0)
    assert _level_db(inst.process(audio)[0], 3000.0) < _level_db(audio[0], 3000.0) - 40
    proc = LiveProcessor(LiveConfig(model="tiny", sample_rate=SR, block_size=128), stand_in_factory(128), STEMS,
                         rack=rack)
    server = OscServer(proc, port=0)
    proc.osc_counters = server.counters
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        with server:
            for value, symbol in ((15000.0, "cutoff"), (90000.0, "cutoff"), (1.0, "resonance")):
                client.sendto(encode_message(f"/stemstream/stem/bass/fx/0/{symbol}", (value,)),
                              (server.host, server.port))
            wait_for_osc(server, 3)
    finally:
        client.close()
        proc.close()
    assert server.counters.accepted == 1 and server.counters.out_of_range == 2
    assert rack.chains["bass"][0]["params"] == {"cutoff": 15000.0}
    out = inst.process(audio)
    assert abs(_level_db(out[0], 3000.0) - _level_db(audio[0], 3000.0)) < 0.5  # the new cutoff arrived
    with pytest.raises(ConfigError, match=r"cutoff=-1\.0: expected a number in \[4\.41, 19845\]"):
        rack.set_param("bass", 0, "cutoff", -1.0)


@pytest.mark.parametrize("uri", [PLATE, "urn:dragonfly:early"])
def test_reset_clears_the_tail(uri):
    """``reset`` gives the output of a fresh instance (the dragonfly reverb, an optional
    package, also takes the urid:map and options:options features this host provides)."""
    if uri not in _URIS:
        pytest.skip(f"{uri} is not installed (apt-get install dragonfly-reverb-lv2)")
    audio = music_like(0.2, SR, seed=13)
    effect = lv2_host.Lv2Effect(uri, {}, SR, 2)
    fresh = effect.process(audio)
    assert np.isfinite(fresh).all() and np.abs(fresh - audio).max() > 0.01
    effect.process(audio)
    effect.reset()
    np.testing.assert_array_equal(effect.process(audio), fresh)
    effect.close()


def test_non_finite_input_is_fed_as_silence_and_toml_configs_load(tmp_path):
    from stemstream.bridge.effects.spec import load_effects_config

    toml = tmp_path / "fx.toml"
    toml.write_text(f'[[stems.bass]]\ntype = "lv2"\nuri = "{LOWPASS}"\nparams = {{cutoff = 800.0}}\n')
    chain = load_effects_config(toml, STEMS)["bass"]
    assert chain == [{"type": "lv2", "uri": LOWPASS, "params": {"cutoff": 800.0}}]
    audio = music_like(0.1, SR, seed=14)
    broken = audio.copy()
    broken[0, 100:110] = np.nan
    broken[1, 200] = np.inf
    cleaned = np.nan_to_num(broken, nan=0.0, posinf=0.0)
    effect = lv2_host.Lv2Effect(LOWPASS, chain[0]["params"], SR, 2)
    out = effect.process(broken)
    assert np.isfinite(out).all() and effect.restarts == 0
    np.testing.assert_array_equal(out, lv2_host.Lv2Effect(LOWPASS, {"cutoff": 800.0}, SR, 2).process(cleaned))


def test_plugins_needing_features_we_lack_are_refused_naming_them():
    hall = "https://github.com/michaelwillis/dragonfly-reverb"
    if hall not in _URIS:
        pytest.skip("dragonfly-reverb-lv2 is not installed (its hall reverb requires worker:schedule)")
    with pytest.raises(ConfigError, match="worker#schedule") as info:
        validate_chain([{"type": "lv2", "uri": hall}])
    assert "\n" not in str(info.value)


def test_a_parameter_that_changes_the_latency_rebuilds_the_chain_within_the_budget():
    lookahead = SWH + "lookaheadLimiter"
    rack = EffectsRack(STEMS, SR, {"guitar": [{"type": "lv2", "uri": lookahead, "params": {"delay_s": 0.05}}]})
    sep = EffectsSeparator(_Identity(), rack, 2)
    assert rack.latency_samples == 2205 and sep.latency_samples == 32 + 2205
    audio = 0.1 * music_like(0.2, SR, seed=15)  # below the limit: the limiter only delays
    rack.set_param("guitar", 0, "delay_s", 0.01)  # 441 samples: rebuilt, padded to the budget
    rack.set_param("guitar", 0, "limit", -1.0)  # latency unchanged: a plain parameter change
    with pytest.raises(ConfigError, match="effects latency=4410"):
        rack.set_param("guitar", 0, "delay_s", 0.1)  # over the budget fixed at start
    assert rack.chains["guitar"][0]["params"] == {"delay_s": 0.01, "limit": -1.0}
    out = _stream(sep, audio, 256)
    assert sep.effects.chains[2].latency_samples == 441 and sep.latency_samples == 32 + 2205
    np.testing.assert_allclose(out[2, :, 2205:], audio[:, :-2205], atol=1e-3)
    np.testing.assert_array_equal(out[3, :, 2205:], audio[:, :-2205])


def test_listing_command(capsys):
    from stemstream.bridge.cli.main import main

    assert main(["effects", "--lv2"]) == 0
    listing = capsys.readouterr().out
    assert LOWPASS in listing and SWH + "sinCos " not in listing
    assert main(["effects", "--lv2", LOWPASS]) == 0
    assert "cutoff" in capsys.readouterr().out
    assert main(["effects", "--lv2", SWH + "nothing_here"]) == 2
    assert "nothing_here" in capsys.readouterr().err


def test_missing_liblilv_is_one_line_naming_the_package(monkeypatch):
    import ctypes

    def no_library(name, *args, **kwargs):
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(lv2_world, "_STATE", {})
    monkeypatch.setattr(ctypes, "CDLL", no_library)
    with pytest.raises(MissingDependencyError, match="apt-get install liblilv-0-0") as info:
        lv2_world.list_plugins()
    assert "\n" not in str(info.value)
