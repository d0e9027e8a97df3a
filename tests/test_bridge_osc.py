"""OSC server against real UDP sockets on loopback: control, rejections, queries, telemetry."""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest

from stemstream.bridge.live.processor import LiveConfig, LiveProcessor
from stemstream.bridge.osc.codec import decode, encode_message
from stemstream.bridge.osc.server import OscServer
from stemstream.realtime.errors import ConfigError
from stemstream.realtime.stems import STEMS
from tests.bridge_support import pump_sessions, stand_in_factory

BLOCK = 128


def _validate(name: str) -> None:
    if name not in ("tiny", "tiny-loud"):
        raise ConfigError(f"model={name!r}: unknown")


@pytest.fixture()
def rig():
    cfg = LiveConfig(model="tiny", sample_rate=44100, block_size=BLOCK, routing="both")
    proc = LiveProcessor(cfg, stand_in_factory(BLOCK, started=False), STEMS, validate_model=_validate)
    server = OscServer(proc, port=0, meters=proc.read_meters, telemetry_hz=30.0)
    proc.osc_counters = server.counters
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    client.settimeout(2.0)
    with server:
        yield proc, server, client
    client.close()
    proc.close()


def _send(client, server, address, *args, raw=None):
    client.sendto(raw if raw is not None else encode_message(address, args), (server.host, server.port))


def _wait(cond, timeout=2.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.005)
    return False


def test_binds_loopback_by_default():
    from stemstream.bridge.osc.server import DEFAULT_HOST, DEFAULT_PORT

    assert DEFAULT_HOST == "127.0.0.1" and DEFAULT_PORT == 9000


def test_valid_controls_change_state(rig):
    proc, server, client = rig
    ctl = proc.controls
    _send(client, server, "/stemstream/stem/drums/gain", 0.25)
    _send(client, server, "/stemstream/stem/bass/mute", 1)
    _send(client, server, "/stemstream/stem/guitar/solo", True)
    _send(client, server, "/stemstream/stem/piano/gain_db", -6.0)
    _send(client, server, "/stemstream/bypass", 1)
    assert _wait(lambda: server.counters.accepted == 5)
    assert ctl.gain[1] == 0.25 and ctl.mute[0] == 1.0 and ctl.solo[2] == 1.0 and ctl.bypass[0] == 1.0
    assert abs(ctl.gain[3] - 10 ** (-6 / 20)) < 1e-6
    _send(client, server, "/stemstream/stem/*/mute", 1)  # OSC pattern: every stem
    assert _wait(lambda: ctl.mute.sum() == 4)
    assert server.counters.rejected == 0


def test_rejections_are_counted_and_never_reach_the_controls(rig):
    proc, server, client = rig
    ctl = proc.controls
    before = (ctl.gain.copy(), ctl.mute.copy(), ctl.bypass.copy())
    bad = [
        ("/stemstream/stem/drums/gain", ("loud",)),  # wrong type
        ("/stemstream/stem/drums/mute", (0.5,)),  # float for a flag
        ("/stemstream/stem/drums/gain", ()),  # missing argument
        ("/stemstream/stem/drums/gain", (9.0,)),  # out of range
        ("/stemstream/stem/drums/gain", (float("inf"),)),  # not finite
        ("/stemstream/stem/drums/mute", (3,)),  # out of range flag
        ("/stemstream/stem/vocals/gain", (1.0,)),  # unknown stem = unknown address
        ("/nothing/here", (1,)),
        ("/stemstream/model", ("no-such-model",)),
        ("/stemstream/subscribe", (80,)),  # privileged port
    ]
    for address, args in bad:
        _send(client, server, address, *args)
    garbage = [b"\x00\x01\x02", b"", b"/stemstream/bypass\x00\x00,i\x00\x00", b"#bundle\x00" + b"\xff" * 12,
               bytes(np.random.default_rng(1).integers(0, 256, 200, dtype=np.uint8))]
    for raw in garbage:
        _send(client, server, "", raw=raw)
    c = server.counters
    assert _wait(lambda: c.rejected == len(bad) + len(garbage)), vars(c)
    assert c.wrong_type == 4 and c.out_of_range == 4 and c.unknown_address == 2 and c.malformed == 5
    assert c.accepted == 0
    np.testing.assert_array_equal(ctl.gain, before[0])
    np.testing.assert_array_equal(ctl.mute, before[1])
    np.testing.assert_array_equal(ctl.bypass, before[2])
    # still alive and answering
    _send(client, server, "/stemstream/get/model")
    address, args = decode(client.recvfrom(65536)[0])[0]
    assert address == "/stemstream/get/model" and args == ("tiny",)
    assert proc.stats()["osc_rejected"] == c.rejected


def test_queries_reply_to_the_sender(rig):
    proc, server, client = rig
    _send(client, server, "/stemstream/get/latency")
    address, args = decode(client.recvfrom(65536)[0])[0]
    assert address == "/stemstream/get/latency"
    lat = proc.latency_samples  # the tiny model's 64 samples and the engine's worker queue
    assert args[0] == lat >= 64 and abs(args[1] - lat / 44.1) < 1e-3
    _send(client, server, "/stemstream/get/stems")
    assert decode(client.recvfrom(65536)[0])[0][1] == STEMS
    _send(client, server, "/stemstream/get/stats")
    address, args = decode(client.recvfrom(65536)[0])[0]
    assert address == "/stemstream/get/stats" and len(args) == 4
    _send(client, server, "/stemstream/get/fx", "drums")
    assert decode(client.recvfrom(65536)[0])[0][1] == ("drums", "[]")


def test_telemetry_subscription_at_steady_rate(rig):
    proc, server, client = rig
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(2.0)
    port = listener.getsockname()[1]
    # some audio through the processor so the meters move
    block = np.full((BLOCK, 2), 0.5, np.float32)
    mix = np.zeros((2, BLOCK), np.float32)
    for _ in range(20):
        proc.process(block, None, mix)
        pump_sessions(proc)
    _send(client, server, "/stemstream/subscribe", port)
    frames = []
    t0 = time.monotonic()
    while len(frames) < 10:
        frames.append((time.monotonic(), listener.recvfrom(65536)[0]))
    messages = dict(decode(frames[-1][1]))
    assert set(messages) >= {f"/stemstream/meter/{s}" for s in STEMS} | {
        "/stemstream/latency", "/stemstream/cpu", "/stemstream/deadline_misses", "/stemstream/xruns"}
    assert messages["/stemstream/latency"][0] == proc.latency_samples
    rate = (len(frames) - 1) / (frames[-1][0] - frames[0][0])
    assert 15.0 < rate < 60.0, rate  # nominal 30 Hz on a loaded machine
    assert time.monotonic() - t0 < 2.0
    _send(client, server, "/stemstream/unsubscribe", port)
    assert _wait(lambda: not server.subscribers)
    listener.close()


def test_model_switch_crossfades_without_dropout(rig):
    proc, server, client = rig
    x = np.full((BLOCK, 2), 0.5, np.float32)
    mix = np.zeros((2, BLOCK), np.float32)
    for _ in range(50):
        proc.process(x, None, mix)
        pump_sessions(proc)
    _send(client, server, "/stemstream/model", "tiny-loud")
    assert _wait(lambda: proc.switcher.incoming is not None or proc.model_name == "tiny-loud")
    levels = []
    for _ in range(400):
        proc.process(x, None, mix)
        pump_sessions(proc)
        levels.append(mix[0].copy())
    signal = np.concatenate(levels)
    assert proc.switcher.wait(5.0)
    assert proc.model_name == "tiny-loud" and proc.switcher.switches == 1
    # the level moves from the old model's to the new one's without a gap or a step
    assert signal.min() > 0.49 and abs(signal[-1] - 1.0) < 1e-3
    assert np.abs(np.diff(signal)).max() < 2.0 / proc.switcher.fade_samples


def test_bundles_apply_every_message(rig):
    from stemstream.bridge.osc.codec import encode_bundle

    proc, server, client = rig
    dgram = encode_bundle([("/stemstream/stem/bass/gain", (0.5,)), ("/stemstream/stem/piano/solo", (1,)),
                           ("/stemstream/nope", ())])
    _send(client, server, "", raw=dgram)
    assert _wait(lambda: server.counters.accepted == 2 and server.counters.unknown_address == 1)
    assert proc.controls.gain[0] == 0.5 and proc.controls.solo[3] == 1.0
