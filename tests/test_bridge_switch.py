"""Model switch over OSC on the real engine path (registry weights, RealtimeSession, JACK):
the new model takes over after a crossfade, without a dropout."""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest

from bridge.jack_player import JackPlayer
from bridge.jack_server import DummyJackServer, jackd_available
from bridge.live import LiveConfig
from bridge.osc_codec import decode, encode_message
from tests.bridge_support import music_like

pytestmark = pytest.mark.skipif(not jackd_available(), reason="jackd is not installed (apt-get install jackd2)")

SR = 44100
PERIOD = 1024


def _weights(path, seed: int) -> str:
    import torch

    from realtime.models.live import ARCHITECTURE, LiveConfig as ModelConfig, LiveSeparator
    from realtime.models.weights import save_weights

    torch.manual_seed(seed)
    cfg = ModelConfig(analysis_samples=512, synthesis_samples=256, hop=128, width=16, lstm_layers=1,
                      encoder_channels=16, encoder_kernel=128)
    save_weights(path, LiveSeparator(cfg).eval(), ARCHITECTURE, cfg.to_json(), {"seed": seed})
    return str(path)


def test_osc_model_switch_on_the_live_engine_path(tmp_path):
    pytest.importorskip("jack")
    from bridge.live_runner import HostOptions, LiveRun

    first, second = _weights(tmp_path / "a.safetensors", 1), _weights(tmp_path / "b.safetensors", 2)
    with DummyJackServer(SR, PERIOD, realtime=True) as server:
        player = JackPlayer(music_like(1.0, SR, seed=3), "player", server.name, loop=True).activate()
        options = HostOptions(audio="jack", jack_server=server.name, jack_inputs=tuple(player.port_names),
                              osc_port=0)
        run = LiveRun(LiveConfig(model=first, backend="torch", sample_rate=SR, block_size=PERIOD,
                                 routing="mix", queue_blocks=2), options)
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.settimeout(5.0)
        try:
            player.play()
            time.sleep(0.5)
            address = (run.osc.host, run.osc.port)
            client.sendto(encode_message("/stemstream/model", ("no-such-model",)), address)
            client.sendto(encode_message("/stemstream/model", (second,)), address)
            deadline = time.monotonic() + 30.0
            while run.processor.switcher.switches == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert run.processor.switcher.wait(10.0)
            client.sendto(encode_message("/stemstream/get/model"), address)
            reply = decode(client.recvfrom(4096)[0])[0]
            time.sleep(0.3)
            summary = run.summary()
        finally:
            client.close()
            run.close()
            player.close()
    assert reply == ("/stemstream/get/model", (second,))
    assert summary["model_switches"] == 1 and summary["model_switch_errors"] == 0
    assert summary["osc_rejected"] == 1 and summary["callback_errors"] == 0  # the unknown model
    assert summary["deadline_misses"] == 0, summary
    assert np.all(run.processor.mixer.rms >= 0)
