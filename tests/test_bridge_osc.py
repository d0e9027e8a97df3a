"""OSC server against real UDP sockets on loopback: control, rejections, queries, telemetry."""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest

from stemstream.bridge.live.processor import LiveConfig, LiveProcessor
from stemstream.bridge.osc.codec import decode, encode_message
from stemstream.bridge.osc.routes import REFUSALS
from stemstream.bridge.osc.server import OscServer
from stemstream.realtime.errors import ConfigError
from stemstream.realtime.stems import STEMS
from tests.bridge_support import pump_sessions, stand_in_factory

BLOCK = 128


def _validate(name: str) -> None:
    if name not in ("tiny", "tiny-loud"):
        raise ConfigError(f"model={name!r}: unknown")


@pytest.fixture()
def rig(request):
    cfg = LiveConfig(model="tiny", sample_rate=44100, block_size=BLOCK, routing="both")
    proc = LiveProcessor(cfg, stand_in_factory(BLOCK, started=False), STEMS, validate_model=_validate)
    lease_s = getattr(request, "param", 60.0)
    server = OscServer(proc, port=0, meters=proc.read_meters, telemetry_hz=30.0, lease_s=lease_s)
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


def _replies(client, count: int) -> list[tuple[str, tuple]]:
    """The next ``count`` messages the server sent ``client``."""
    return [decode(client.recvfrom(65536)[0])[0] for _ in range(count)]


BAD = [  # (address, args, reason)
    ("/stemstream/stem/drums/gain", ("loud",), "wrong_type"),
    ("/stemstream/stem/drums/mute", (0.5,), "wrong_type"),  # float for a flag
    ("/stemstream/stem/drums/gain", (), "wrong_type"),  # missing argument
    ("/stemstream/stem/drums/gain", (9.0,), "out_of_range"),
    ("/stemstream/stem/drums/gain", (float("inf"),), "wrong_type"),  # not finite
    ("/stemstream/stem/drums/mute", (3,), "out_of_range"),
    ("/stemstream/stem/vocals/gain", (1.0,), "unknown_address"),  # unknown stem
    ("/nothing/here", (1,), "unknown_address"),
    ("/stemstream/model", ("no-such-model",), "unknown_model"),
    ("/stemstream/subscribe", (80,), "out_of_range"),  # privileged port
    ("/stemstream/stem/drums/fx", ("[]",), "no_effects"),  # a session started without --effects
    ("/stemstream/stem/drums/fx/0/cutoff_frequency_hz", (400.0,), "no_effects"),
    ("/stemstream/stem/vocals/fx/0/cutoff_frequency_hz", (400.0,), "unknown_address"),
]
GARBAGE = [b"\x00\x01\x02", b"", b"/stemstream/bypass\x00\x00,i\x00\x00", b"#bundle\x00" + b"\xff" * 12,
           bytes(np.random.default_rng(1).integers(0, 256, 200, dtype=np.uint8)),
           b"/stemstream/bypass\x00\x00,x\x00\x00",  # an unknown type tag (python-osc logged and skipped it)
           b"#bundle\x00" + bytes(8) + b"\x00\x00\x00\x04" + b"abc\x00"]  # an element neither message nor bundle


def test_every_refusal_is_answered_with_its_reason_and_counted(rig, caplog):
    """Each refused message gets an /stemstream/error reply (its address, the reason, a message
    naming the value) on the sender's socket, and get/stats counts refusals by reason; malformed
    datagrams too (address ""), and nothing is logged for them. Nothing refused reaches the controls."""
    proc, server, client = rig
    ctl = proc.controls
    before = (ctl.gain.copy(), ctl.mute.copy(), ctl.bypass.copy())
    with caplog.at_level("DEBUG"):
        for address, args, _ in BAD:
            _send(client, server, address, *args)
        errors = _replies(client, len(BAD))
        for raw in GARBAGE:
            _send(client, server, "", raw=raw)
        errors += _replies(client, len(GARBAGE))
    assert not caplog.records, [r.getMessage() for r in caplog.records]
    assert [e[0] for e in errors] == ["/stemstream/error"] * len(errors)
    got = [(args[0], args[1]) for _, args in errors]
    assert got == [(a, reason) for a, _, reason in BAD] + [("", "malformed")] * len(GARBAGE)
    assert "no-such-model" in errors[8][1][2] and "--effects" in errors[10][1][2] and "9.0" in errors[3][1][2]
    c = server.counters
    assert c.rejected == len(BAD) + len(GARBAGE) and c.accepted == 0 and c.unanswered == 0
    expected = {reason: 0 for reason in c.by_reason()}
    for _, _, reason in BAD:
        expected[reason] += 1
    expected["malformed"] = len(GARBAGE)
    assert c.by_reason() == expected
    np.testing.assert_array_equal(ctl.gain, before[0])
    np.testing.assert_array_equal(ctl.mute, before[1])
    np.testing.assert_array_equal(ctl.bypass, before[2])
    # still alive and answering; the stats reply names each reason with its count
    _send(client, server, "/stemstream/get/stats")
    address, args = _replies(client, 1)[0]
    assert address == "/stemstream/get/stats" and args[3] == c.rejected
    assert dict(zip(args[4::2], args[5::2])) == expected
    assert proc.stats()["osc_rejected"] == c.rejected


def test_error_replies_are_rate_limited_but_every_refusal_is_counted():
    cfg = LiveConfig(model="tiny", sample_rate=44100, block_size=BLOCK, routing="both")
    proc = LiveProcessor(cfg, stand_in_factory(BLOCK, started=False), STEMS, validate_model=_validate)
    server = OscServer(proc, port=0, error_replies_per_s=5.0)
    try:
        t0 = time.monotonic()
        replies = [server.handle_datagram(b"junk", ("127.0.0.1", 9)) for _ in range(50)]
        elapsed = time.monotonic() - t0  # under a millisecond, unless the (shared) machine stalls us
    finally:
        server.stop()
        proc.close()
    answered = sum(len(r) for r in replies)
    assert 5 <= answered <= 5 + int(elapsed * 5.0) and server.counters.unanswered == 50 - answered
    assert server.counters.malformed == 50


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
    assert address == "/stemstream/get/stats" and len(args) == 4 + 2 * len(REFUSALS)
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
    assert _replies(client, 1) == [("/stemstream/subscribe", (port, 60.0))]  # the lease, in seconds
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


@pytest.mark.parametrize("rig", [0.5], indirect=True)
def test_subscriptions_are_leases_that_end_unless_renewed(rig):
    """Eight subscribers that never renew fill every slot, and a ninth is refused
    (subscribers_full); once their leases end it gets in. A renewed lease keeps telemetry coming,
    one left alone stops."""
    from stemstream.bridge.osc.server import MAX_SUBSCRIBERS

    proc, server, client = rig
    dead = [50000 + k for k in range(MAX_SUBSCRIBERS)]  # nobody listens there
    for port in dead:
        _send(client, server, "/stemstream/subscribe", port)
    assert [args[0] for _, args in _replies(client, MAX_SUBSCRIBERS)] == dead
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(0.3)
    port = listener.getsockname()[1]
    _send(client, server, "/stemstream/subscribe", port)
    assert _replies(client, 1)[0][1][:2] == ("/stemstream/subscribe", "subscribers_full")
    assert _wait(lambda: not server.subscribers, timeout=3.0)  # the dead ones' leases ended
    _send(client, server, "/stemstream/subscribe", port)
    assert _replies(client, 1) == [("/stemstream/subscribe", (port, 0.5))]
    end = time.monotonic() + 1.5  # three lease lengths, renewed every 0.2 s: telemetry all along
    last = time.monotonic()
    while time.monotonic() < end:
        listener.recvfrom(65536)
        if time.monotonic() - last > 0.2:
            _send(client, server, "/stemstream/subscribe", port)
            last = time.monotonic()
    assert server.subscribers == [("127.0.0.1", port)]
    time.sleep(0.8)  # no renewal: the lease ends and telemetry stops
    while True:
        try:
            listener.recvfrom(65536)  # drain what was in flight
        except socket.timeout:
            break
    assert server.subscribers == [] and server.counters.subscribers_full == 1
    listener.close()


def test_one_touch_acapella_instrumental_and_the_mixer_query():
    """With a vocals stem: acapella and instrumental set the mutes in one message (solos cleared);
    ``/stemstream/get/mixer`` replies with every stem's gain, mute and solo, then bypass."""
    dj = ("vocals", "drums", "bass", "other")
    cfg = LiveConfig(model="tiny", sample_rate=44100, block_size=BLOCK, routing="both")
    proc = LiveProcessor(cfg, stand_in_factory(BLOCK, started=False), dj)
    server = OscServer(proc, port=0)
    try:
        ctl = proc.controls
        server.handle_datagram(encode_message("/stemstream/stem/bass/solo", (1,)), ("127.0.0.1", 9))
        server.handle_datagram(encode_message("/stemstream/acapella", (1,)), ("127.0.0.1", 9))
        assert ctl.mute.tolist() == [0, 1, 1, 1] and not ctl.solo.any() and ctl.acapella
        server.handle_datagram(encode_message("/stemstream/instrumental", (1,)), ("127.0.0.1", 9))
        assert ctl.mute.tolist() == [1, 0, 0, 0] and ctl.instrumental and not ctl.acapella
        server.handle_datagram(encode_message("/stemstream/stem/drums/gain", (0.5,)), ("127.0.0.1", 9))
        [reply] = server.handle_datagram(encode_message("/stemstream/get/mixer", ()), ("127.0.0.1", 9))
        assert decode(reply)[0] == ("/stemstream/get/mixer", ("vocals", 1.0, 1, 0, "drums", 0.5, 0, 0,
                                                              "bass", 1.0, 0, 0, "other", 1.0, 0, 0, 0))
        server.handle_datagram(encode_message("/stemstream/instrumental", (0,)), ("127.0.0.1", 9))
        assert not ctl.mute.any()
        # the other surfaces share the table but not the server's own routes
        outcome = server.routes.dispatch("/stemstream/subscribe", (), surface="web")
        assert outcome.refusal is not None and outcome.refusal.reason == "unknown_address"
        assert server.counters.surfaces == {"osc": [6, 0], "web": [0, 1]}
    finally:
        server.stop()
        proc.close()
