"""A JACK server killed under a live session, then started again under the same name: one line at
once, the session's state kept (model, gains, mutes, OSC), ports and connections made again, the
outage counted; ``--no-reconnect`` ends the session with exit code 3. A PortAudio device lost the
same way (PortAudio's JACK host API) ends it too.

Before: the session ran on silently for ever (output dead, OSC answering), and the summary at
Ctrl-C said nothing went wrong, exit 0."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stemstream.benchmarks.rig.jack_player import JackPlayer
from stemstream.benchmarks.rig.jack_server import DummyJackServer, jackd_available
from stemstream.bridge.live.processor import LiveConfig
from stemstream.realtime.stems import STEMS
from tests.bridge_support import music_like
from tests.test_bridge_jack_rates import host_rate_factory

pytestmark = pytest.mark.skipif(not jackd_available(), reason="jackd is not installed (apt-get install jackd2)")

SR, PERIOD = 48000, 512


def _until(condition, timeout_s: float) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.01)
    return bool(condition())


def _reclaim(name: str) -> None:
    """Start and stop a server called ``name``: JACK frees the registry slot of a killed server
    only when a server of the same name starts (the registry has 8 slots for the whole machine)."""
    try:
        DummyJackServer(SR, PERIOD, name=name).start().stop()
    except Exception:  # a server of that name runs: its slot is in use, not leaked
        pass


def _connections(client, port: str) -> set[str]:
    try:
        return {p.name for p in client.get_all_connections(port)}
    except Exception:  # the port does not exist (yet)
        return set()


def test_server_killed_and_back_reconnects_with_the_sessions_state() -> None:
    import jack

    from stemstream.bridge.live.runner import HostOptions, LiveRun
    from stemstream.bridge.osc.codec import decode, encode_message

    server = DummyJackServer(SR, PERIOD, realtime=True).start()
    name = server.name
    player = JackPlayer(music_like(0.5, SR, seed=5), "player", name, loop=True).activate()
    lines: list[tuple[float, str]] = []
    options = HostOptions(audio="jack", jack_server=name, jack_inputs=tuple(player.port_names),
                          jack_outputs={"mix_L": ["system:playback_1"]}, osc_port=0)
    run = LiveRun(LiveConfig(model="tiny", sample_rate=SR, block_size=PERIOD, routing="both"), options,
                  factory=host_rate_factory(SR, PERIOD), stems=STEMS,
                  notify=lambda line: lines.append((time.monotonic(), line)))
    osc = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    osc.settimeout(5.0)
    server2 = None
    try:
        other = jack.Client("patchbay", servername=name, no_start_server=True)  # someone else's connection
        other.connect("stemstream:drums_R", "system:playback_2")
        other.close()
        player.play()
        controls = run.processor.controls
        controls.set_gain("drums", 0.5)
        controls.set_mute("bass", True)
        assert _until(lambda: run.processor.callbacks > 10, 10.0)
        killed = time.monotonic()
        server.process.kill()  # SIGKILL: no goodbye from the server
        assert _until(lambda: lines, 1.0), "no line within a second"
        at, line = lines[0]
        assert at - killed < 1.0 and "stopped" in line and "waiting for it to come back" in line, line
        callbacks = run.processor.callbacks
        osc.sendto(encode_message("/stemstream/get/model"), (run.osc.host, run.osc.port))  # control goes on
        assert decode(osc.recvfrom(4096)[0])[0] == ("/stemstream/get/model", ("tiny",))
        player.close()
        server.stop()
        server2 = DummyJackServer(SR, PERIOD, name=name, realtime=True).start()
        assert _until(lambda: len(lines) >= 2, 10.0), lines
        assert "is back" in lines[1][1] and "reconnected" in lines[1][1], lines[1][1]
        probe = jack.Client("probe", servername=name, no_start_server=True)
        try:
            assert _connections(probe, "stemstream:mix_L") == {"system:playback_1"}  # asked for at start
            assert _connections(probe, "stemstream:drums_R") == {"system:playback_2"}  # made by someone else
            player = JackPlayer(music_like(0.5, SR, seed=6), "player", name, loop=True).activate()  # back later
            assert _until(lambda: _connections(probe, "stemstream:in_R") == {"player:out_R"}, 5.0)
        finally:
            probe.close()
        player.play()
        assert _until(lambda: run.processor.callbacks > callbacks + 10, 10.0)
        assert _until(lambda: run.processor.mixer.rms[STEMS.index("drums")] > 0, 5.0)
        summary = run.summary()
        assert controls.gain[STEMS.index("drums")] == 0.5 and controls.mute[STEMS.index("bass")] == 1.0
        assert run.processor.model_name == "tiny"
    finally:
        osc.close()
        run.close()
        player.close()
        server.stop()
        if server2 is not None:
            server2.stop()
        else:
            _reclaim(name)
    assert summary["host_outages"] == 1 and summary["host_connected"] and summary["host_failure"] == ""
    assert 0.0 < summary["host_outage_seconds"] < 15.0 and summary["callback_errors"] == 0
    assert "jack_cpu_load_percent" in summary  # the new client answers


def test_server_back_at_another_rate_ends_the_session() -> None:
    """The engine was built for the old rate: a server back at another one ends the session with a
    line that says so (and wakes whoever waits on it), rather than running at the wrong rate."""
    import threading

    from stemstream.bridge.live.runner import HostOptions, LiveRun

    lines: list[str] = []
    with DummyJackServer(SR, PERIOD) as server:
        run = LiveRun(LiveConfig(model="tiny", sample_rate=SR, block_size=PERIOD, routing="mix"),
                      HostOptions(audio="jack", jack_server=server.name, osc_port=None),
                      factory=host_rate_factory(SR, PERIOD), stems=STEMS, notify=lines.append)
        try:
            server.process.kill()
            server.stop()
            assert _until(lambda: lines, 2.0)
            with DummyJackServer(44100, PERIOD, name=server.name):  # reclaims the killed one's slot too
                stop = threading.Event()
                started = time.monotonic()
                run.wait(30.0, stop)  # returns as soon as the supervisor ends the session
                assert time.monotonic() - started < 15.0 and run.failure
                summary = run.summary()
        finally:
            run.close()
    assert "44100 Hz" in run.failure and "48000" in run.failure, run.failure
    assert "restart stemstream live" in lines[-1], lines
    assert summary["host_outages"] == 1 and not summary["host_connected"]


def _ports_of(server_name: str, prefix: str) -> bool:
    import jack

    try:
        probe = jack.Client("probe", servername=server_name, no_start_server=True)
    except jack.JackOpenError:
        return False
    try:
        return bool(probe.get_ports(prefix))
    finally:
        probe.close()


def _run_cli_and_kill_server(args: list[str], server: DummyJackServer, ports: str) -> tuple[int, dict, list[str]]:
    """``stemstream live ARGS --json`` on ``server``; once it has said it runs and ``ports`` exist,
    stop the server (SIGTERM: a killed server's registry slot is only freed by a server of the same
    name); the exit code, the summary and the stderr lines."""
    import threading

    env = dict(os.environ, JACK_DEFAULT_SERVER=server.name, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "stemstream.bridge", "live", *args, "--duration", "120", "--json"]
    live = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    err: list[str] = []

    def read() -> None:
        for line in live.stderr:
            err.append(line.rstrip("\n"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        running = lambda: any("Ctrl-C stops" in line for line in err) and _ports_of(server.name, ports)  # noqa: E731
        assert _until(lambda: live.poll() is not None or running(), 90.0)
        assert live.poll() is None, (live.returncode, err)
        time.sleep(0.3)
        server.process.terminate()
        out = live.stdout.read()
        live.wait(timeout=30)
        reader.join(timeout=5)
    finally:
        if live.poll() is None:
            live.kill()
    assert out.strip(), (live.returncode, err)
    return live.returncode, json.loads(out), err


def test_no_reconnect_exits_3_with_one_line_and_adopts_48k(tiny_live_weights: Path) -> None:
    """`stemstream live` with no host, rate or block flags on a 48 kHz / 256 server: JACK at its
    rate and period; killed server: one line, the summary counts the outage, exit 3; and nothing
    but stemstream's own lines on stderr (no libjack lines, no nanobind leak report)."""
    with DummyJackServer(SR, 256, realtime=True) as server:
        code, summary, err = _run_cli_and_kill_server(
            ["--model", str(tiny_live_weights), "--backend", "torch", "--no-osc", "--no-reconnect"], server,
            "stemstream:")
    assert code == 3, err
    assert (summary["audio"], summary["sample_rate"], summary["block_size"]) == ("jack", SR, 256)
    assert summary["host_outages"] == 1 and "stopped" in summary["host_failure"]
    assert len(err) == 2 and all(line.startswith("stemstream live: ") for line in err), err
    assert "exiting (--no-reconnect)" in err[1], err


def test_portaudio_device_lost_exits_3_with_one_line(tiny_live_weights: Path) -> None:
    """PortAudio on a 2-channel device (PortAudio's JACK host API, named: with alsa-plugins installed
    ALSA's 'jack' PCM is PortAudio's default): the device's rate and a routing that fits its
    channels ('mix') are adopted (was: "Invalid number of channels"); the device going away ends
    the session with one line and exit 3, even without --no-reconnect (a device on PortAudio's
    JACK host API cannot be reopened once its server went away; other PortAudio devices are:
    tests/test_bridge_portaudio_reconnect.py)."""
    with DummyJackServer(SR, 512, realtime=True, playback_channels=2) as server:
        code, summary, err = _run_cli_and_kill_server(
            ["--portaudio", "--input", "system", "--output", "system", "--model", str(tiny_live_weights),
             "--backend", "torch", "--osc-port", "0"], server,
            "PortAudio")
    assert code == 3, err
    assert (summary["audio"], summary["sample_rate"], summary["routing"]) == ("portaudio", SR, "mix")
    assert summary["host_outages"] == 1 and summary["host_failure"].startswith("audio device 'system' stopped")
    assert "JACK host API" in err[1] and err[1].endswith("exiting"), err  # PortAudio cannot reopen it
    assert len(err) == 2 and all(line.startswith("stemstream live: ") for line in err), err
