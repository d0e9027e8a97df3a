"""pyo effects on real audio: filters keep/attenuate what they should, a delay moves an
impulse by exactly its samples, output does not depend on the block size, bad parameters are
one-line errors, changes reach the worker, pending samples are reported."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

os.environ.setdefault("PYO_GUI_WX", "0")  # pyo prints a wxPython notice otherwise
pytest.importorskip("pyo", reason="pyo is optional: pip install stemstream[effects]")

from stemstream.bridge.effects.rack import EffectsRack, EffectsSeparator  # noqa: E402
from stemstream.bridge.effects.boards import build_board  # noqa: E402
from stemstream.bridge.effects.spec import validate_chain  # noqa: E402
from stemstream.realtime.errors import ConfigError  # noqa: E402
from stemstream.realtime.stems import STEMS  # noqa: E402
from tests.bridge_support import IdentityStems as _Identity  # noqa: E402
from tests.bridge_support import TinyHopModel, music_like, sines  # noqa: E402
from tests.bridge_support import level_db as _level_db  # noqa: E402
from tests.bridge_support import stream_blocks as _stream  # noqa: E402
from tests.bridge_support import wait_for_osc  # noqa: E402

SR = 44100


def _sines(freqs, seconds=0.5):
    return sines(freqs, seconds, SR)


def test_lowpass_keeps_a_low_sine_and_attenuates_a_high_one():
    rack = EffectsRack(STEMS, SR, {"bass": [{"type": "pyo.lowpass", "cutoff_frequency_hz": 500.0}],
                                   "drums": [{"type": "pyo.highpass", "cutoff_frequency_hz": 2000.0}]})
    audio = _sines([100.0, 8000.0])
    out = _stream(EffectsSeparator(_Identity(), rack, 2), audio, 256)
    assert out.shape == (4, 2, audio.shape[1])
    low_in, high_in = _level_db(audio, 100.0), _level_db(audio, 8000.0)
    assert abs(_level_db(out[0], 100.0) - low_in) < 0.1  # lowpass: 100 Hz untouched
    assert _level_db(out[0], 8000.0) < high_in - 40.0  # 4 octaves above 500 Hz, 12 dB/oct
    assert _level_db(out[1], 100.0) < low_in - 50.0  # highpass: the other way round
    assert abs(_level_db(out[1], 8000.0) - high_in) < 0.2
    np.testing.assert_array_equal(out[2], audio)  # no chain: bit-exact


@pytest.mark.parametrize("delay", [1, 37, 100, 4410])
def test_delay_moves_an_impulse_by_exactly_its_samples(delay):
    rack = EffectsRack(STEMS, SR, {"guitar": [{"type": "pyo.delay", "delay_seconds": delay / SR,
                                               "feedback": 0.0, "mix": 1.0}]})
    sep = EffectsSeparator(_Identity(), rack, 2)
    assert sep.latency_samples == 32 and rack.latency_samples == 0  # pyo adds no latency
    audio = np.zeros((2, 6000), np.float32)
    audio[0, 123] = 1.0
    audio[1, 500] = -0.5
    out = _stream(sep, audio, 100)
    expected = np.zeros_like(audio)
    expected[0, 123 + delay] = 1.0
    if 500 + delay < audio.shape[1]:
        expected[1, 500 + delay] = -0.5
    np.testing.assert_array_equal(out[2], expected)


def test_output_does_not_depend_on_the_block_size():
    chains = {"bass": [{"type": "pyo.lowpass", "cutoff_frequency_hz": 300.0, "q": 2.0},
                       {"type": "pyo.eq", "cutoff_frequency_hz": 120.0, "gain_db": 6.0, "q": 1.5}],
              "drums": [{"type": "pyo.delay", "delay_seconds": 0.0123, "feedback": 0.6, "mix": 0.4}],
              "guitar": [{"type": "HighpassFilter", "cutoff_frequency_hz": 200.0},
                         {"type": "pyo.reverb", "room_size": 0.7, "send_level": 0.5},
                         {"type": "Gain", "gain_db": -3.0}]}
    audio = music_like(0.4, SR, seed=8)
    outs = {}
    for block in (64, 512, 1, 65, 8193):
        outs[block] = _stream(EffectsSeparator(_Identity(), EffectsRack(STEMS, SR, chains), 2), audio, block)
    for block, out in outs.items():
        assert out.shape == (4, 2, audio.shape[1])
        err = np.abs(out - outs[64])
        assert err.max() < 1e-6, (block, float(err.max()), np.unravel_index(err.argmax(), err.shape))
    assert np.abs(outs[64][2] - audio).max() > 0.05  # the reverb did something
    np.testing.assert_array_equal(outs[64][3], audio)


def test_mixed_chain_runs_in_order():
    """pedalboard HighpassFilter -> pyo.delay (100 samples) -> pedalboard Gain equals the same
    steps done one after the other."""
    chain = [{"type": "HighpassFilter", "cutoff_frequency_hz": 300.0},
             {"type": "pyo.delay", "delay_seconds": 100 / SR, "mix": 1.0},
             {"type": "Gain", "gain_db": -6.0}]
    audio = music_like(0.3, SR, seed=9)
    out = _stream(EffectsSeparator(_Identity(), EffectsRack(STEMS, SR, {"piano": chain}), 2), audio, 256)
    hp = build_board(validate_chain(chain[:1])).process(audio, SR)
    shifted = np.concatenate([np.zeros((2, 100), np.float32), hp[:, :-100]], axis=1)
    expected = build_board(validate_chain(chain[2:])).process(shifted, SR)
    np.testing.assert_allclose(out[3], expected, atol=1e-6)


def test_changes_from_the_control_side_reach_pyo():
    rack = EffectsRack(STEMS, SR, {"bass": [{"type": "pyo.lowpass", "cutoff_frequency_hz": 200.0}]})
    sep = EffectsSeparator(_Identity(), rack, 2)
    audio = _sines([3000.0], 0.3)
    assert _level_db(_stream(sep, audio, 512)[0], 3000.0) < _level_db(audio, 3000.0) - 30
    rack.set_param("bass", 0, "cutoff_frequency_hz", 15000.0)
    assert abs(_level_db(_stream(sep, audio, 512)[0], 3000.0) - _level_db(audio, 3000.0)) < 0.5
    rack.set_chain("drums", json.dumps([{"type": "pyo.eq", "cutoff_frequency_hz": 3000.0, "gain_db": -24.0,
                                         "q": 1.0}]))
    assert _level_db(_stream(sep, audio, 512)[1], 3000.0) < _level_db(audio, 3000.0) - 20
    rack.set_chain("drums", "[]")
    np.testing.assert_array_equal(_stream(sep, audio, 512)[1], audio)


@pytest.mark.parametrize("spec", [
    '[{"type": "pyo.lowpass", "cutoff_frequency_hz": 30000}]',
    '[{"type": "pyo.lowpass", "cutoff_frequency_hz": "high"}]',
    '[{"type": "pyo.delay", "feedback": 1.5}]',
    '[{"type": "pyo.delay", "delay_seconds": 0}]',
    '[{"type": "pyo.reverb", "size": 0.5}]',
    '[{"type": "pyo.fuzz"}]',
    '[{"type": "pyo.eq"}, {"type": "Gain", "gain_db": 0}, {"type": "pyo.delay"}]',
])
def test_bad_pyo_chains_are_one_line_errors(spec):
    rack = EffectsRack(STEMS, SR, {"piano": [{"type": "pyo.eq"}]})
    with pytest.raises(ConfigError) as info:
        rack.set_chain("bass", spec)
    assert "\n" not in str(info.value) and rack.chains["bass"] == []


def test_param_and_rate_checks():
    rack = EffectsRack(STEMS, 22050, {"bass": [{"type": "pyo.highpass", "cutoff_frequency_hz": 100.0}]})
    for param, value in [("cutoff_frequency_hz", 11000.0), ("q", 0.0), ("gain_db", 3.0)]:
        with pytest.raises(ConfigError):
            rack.set_param("bass", 0, param, value)
    with pytest.raises(ConfigError):  # at or above Nyquist at this rate
        EffectsRack(STEMS, 22050, {"bass": [{"type": "pyo.lowpass", "cutoff_frequency_hz": 12000.0}]})
    plain = EffectsRack(STEMS, SR, {"bass": [{"type": "Gain", "gain_db": 0.0}]})
    with pytest.raises(ConfigError, match="pyo"):  # no pyo server in a rack started without pyo
        plain.set_chain("drums", '[{"type": "pyo.eq"}]')


def test_pending_samples_and_hop_alignment():
    """A hop model at the host rate whose hop is a multiple of the pyo block: nothing is
    ever held back. Otherwise ``block - 1`` more pending samples are reported."""
    from stemstream.realtime.engine.streamer import StreamingSeparator

    chains = {"bass": [{"type": "pyo.lowpass", "cutoff_frequency_hz": 1000.0}]}
    inner = StreamingSeparator(TinyHopModel(hop=128), SR, 2)
    base = inner.max_pending_samples(256)
    aligned = EffectsSeparator(inner, EffectsRack(STEMS, SR, chains, pyo_block=64), 2)
    assert aligned.max_pending_samples(256) == base and aligned.latency_samples == inner.latency_samples
    audio = music_like(0.1, SR, seed=1)
    for i in range(0, audio.shape[1], 256):
        aligned.process(audio[:, i : i + 256])
        assert aligned.effects.held_samples == 0
    odd = EffectsSeparator(StreamingSeparator(TinyHopModel(hop=64), SR, 2),
                           EffectsRack(STEMS, SR, chains, pyo_block=128), 2)
    assert odd.max_pending_samples(256) == base + 127


def test_pyo_chains_and_parameters_over_osc():
    """Real UDP on loopback: set a pyo chain, move a parameter, read the chain back; a bad
    value is counted as rejected and never reaches the rack."""
    import socket

    from stemstream.bridge.live.processor import LiveConfig, LiveProcessor
    from stemstream.bridge.osc.codec import decode, encode_message
    from stemstream.bridge.osc.server import OscServer
    from tests.bridge_support import stand_in_factory

    rack = EffectsRack(STEMS, SR, {"bass": [{"type": "pyo.lowpass", "cutoff_frequency_hz": 200.0}]})
    inst = rack.instance(2)  # stands for a running separator's effects
    proc = LiveProcessor(LiveConfig(model="tiny", sample_rate=SR, block_size=128), stand_in_factory(128), STEMS,
                         rack=rack)
    server = OscServer(proc, port=0)
    proc.osc_counters = server.counters
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.settimeout(2.0)
    try:
        with server:
            def send(address, *args):
                client.sendto(encode_message(address, args), (server.host, server.port))

            send("/stemstream/stem/drums/fx", '[{"type": "pyo.delay", "delay_seconds": 0.001, "mix": 1.0}]')
            send("/stemstream/stem/bass/fx/0/cutoff_frequency_hz", 8000.0)
            send("/stemstream/stem/bass/fx/0/cutoff_frequency_hz", 90000.0)  # out of range
            send("/stemstream/get/fx", "drums")
            reply = decode(client.recvfrom(4096)[0])[0]
            if reply[0] == "/stemstream/error":  # the out-of-range parameter is answered first
                assert reply[1][1] == "out_of_range", reply
                reply = decode(client.recvfrom(4096)[0])[0]
            wait_for_osc(server, 4)
    finally:
        client.close()
        proc.close()
    assert json.loads(reply[1][1])[0]["type"] == "pyo.delay"
    assert rack.chains["bass"][0]["cutoff_frequency_hz"] == 8000.0
    assert server.counters.out_of_range == 1 and server.counters.accepted == 3
    audio = np.zeros((2, 512), np.float32)
    audio[:, 10] = 1.0
    out = inst.process(np.repeat(audio[None], 4, axis=0))
    assert out[1, 0, 10 + round(0.001 * SR)] == 1.0 and out[1, 0, 10] == 0.0  # the delay reached the worker side
    assert inst.pyo is not None and inst.pyo.specs[0][0]["cutoff_frequency_hz"] == 8000.0
