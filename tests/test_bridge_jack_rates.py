"""`live` adopts what a JACK server runs at (any rate, any period), and picks JACK by itself when a
server runs: real dummy JACK servers, a player client feeding stemstream, the engine's sessions.

Before: the rate was read after closing the probe client (``0 Hz``), so every server not at
44.1 kHz was refused ("expected the JACK server's rate 0 Hz"), a period above 256 too
("expected >= the JACK buffer size 0"), and ``live`` with no flags tried PortAudio's default
device whatever ran."""

from __future__ import annotations

import time

import pytest

from stemstream.benchmarks.rig.jack_player import JackPlayer
from stemstream.benchmarks.rig.jack_server import DummyJackServer, jackd_available
from stemstream.bridge.hosts.choice import choose_host
from stemstream.bridge.live.processor import LiveConfig, LiveProcessor
from stemstream.realtime.errors import ConfigError, StemstreamError
from stemstream.realtime.stems import STEMS
from tests.bridge_support import TinyHopModel, music_like

pytestmark = pytest.mark.skipif(not jackd_available(), reason="jackd is not installed (apt-get install jackd2)")


def host_rate_factory(sample_rate: int, block_size: int):
    """Model name -> a started engine session of the tiny model (44.1 kHz) at the host's rate:
    the engine resamples, as for the shipped models."""
    from stemstream.realtime.engine.session import RealtimeSession
    from stemstream.realtime.engine.streamer import StreamingSeparator

    def make(name: str) -> RealtimeSession:
        session = RealtimeSession(StreamingSeparator(TinyHopModel(name=name), sample_rate, 2), block_size,
                                  queue_blocks=4)
        session.start()
        return session

    return make


def _until(condition, timeout_s: float) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.02)
    return bool(condition())


@pytest.mark.parametrize("rate,period", [(48000, 256), (96000, 1024), (22050, 64), (192000, 4096), (32000, 32)])
def test_live_adopts_the_servers_rate_and_period(rate: int, period: int) -> None:
    """With nothing asked for, the host is JACK (a server runs) at its rate and period, and the
    session runs there: callbacks at that period, every stem carrying the player's signal."""
    from stemstream.bridge.live.runner import HostOptions, LiveRun

    with DummyJackServer(rate, period, realtime=True) as server:
        choice = choose_host(jack_server=server.name)  # "auto": a JACK server runs
        assert (choice.audio, choice.sample_rate, choice.block_size, choice.routing) == ("jack", rate, period, "both")
        assert f"{rate} Hz, period {period}" in choice.detail
        player = JackPlayer(music_like(0.5, rate, seed=4), "player", server.name, loop=True).activate()
        config = LiveConfig(model="tiny", sample_rate=choice.sample_rate, block_size=choice.block_size,
                            routing="stems")
        options = HostOptions(audio="jack", jack_server=server.name, jack_inputs=tuple(player.port_names),
                              osc_port=None)
        run = LiveRun(config, options, factory=host_rate_factory(rate, period), stems=STEMS)
        try:
            player.play()
            wanted = max(8, int(0.4 * rate / period))  # 0.4 s of audio (at least 8 periods)
            assert _until(lambda: run.processor.callbacks >= wanted, 20.0), run.processor.callbacks
            latency = run.processor.latency_samples
            assert _until(lambda: run.processor.frames > latency + 4 * period, 20.0)
            time.sleep(0.1)
            summary = run.summary()
            rms = run.processor.mixer.rms.copy()
        finally:
            run.close()
            player.close()
    assert (summary["sample_rate"], summary["block_size"], summary["audio"]) == (rate, period, "jack")
    assert summary["host_latency_samples"] == 2 * period and summary["callback_errors"] == 0
    assert summary["frames"] % period == 0  # whole periods: JACK called us with its own period
    assert (rms > 0).all(), rms  # every stem port carried signal


def test_a_rate_or_period_asked_for_must_fit_the_server() -> None:
    """An explicit rate that is not the server's, or a block shorter than its period, is refused
    naming both; a longer block is fine. JackStemClient itself reads the rate before closing."""
    from stemstream.bridge.hosts.jack_client import JackStemClient
    from tests.bridge_support import stand_in_factory

    with DummyJackServer(48000, 512) as server:
        assert choose_host("jack", jack_server=server.name, block_size=1024).block_size == 1024
        with pytest.raises(ConfigError, match=r"samplerate=44100: expected the rate of JACK server .*, 48000 Hz"):
            choose_host("jack", jack_server=server.name, sample_rate=44100)
        with pytest.raises(ConfigError, match=r"block_size=256: expected >= the period of JACK server .*, 512"):
            choose_host("jack", jack_server=server.name, block_size=256)
        proc = LiveProcessor(LiveConfig(model="tiny", sample_rate=44100, block_size=512), stand_in_factory(512),
                             STEMS)
        try:
            with pytest.raises(ConfigError, match=r"48000 Hz"):  # was "0 Hz"
                JackStemClient(proc, "stemstream", server.name)
        finally:
            proc.close()
    with pytest.raises(StemstreamError, match=r"JACK server 'stemstream-nowhere' is not running"):
        choose_host("jack", jack_server="stemstream-nowhere")


def test_probing_for_a_server_prints_nothing(capfd) -> None:
    """No server: the probe says so, and libjack's own lines ("Cannot connect to server socket",
    "jack server is not running...") stay off the console."""
    from stemstream.bridge.hosts.jack_link import JACK_MESSAGES, server_format

    assert server_format("stemstream-nowhere") is None
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == "", captured
    assert any("server" in line for line in JACK_MESSAGES)  # kept for diagnostics instead


def test_no_flags_picks_portaudio_when_no_server_runs_and_names_what_it_found(monkeypatch) -> None:
    """Without a JACK server (and with a named PortAudio device), the host is PortAudio."""
    monkeypatch.setenv("JACK_DEFAULT_SERVER", "stemstream-nowhere")
    try:
        choice = choose_host()
    except ConfigError as exc:  # no sound card on this machine: PortAudio was asked, and says why
        assert "PortAudio" in str(exc) and "no JACK server 'stemstream-nowhere' runs either" in str(exc)
    else:
        assert choice.audio == "portaudio"
    with DummyJackServer(44100, 256) as server:
        monkeypatch.setenv("JACK_DEFAULT_SERVER", server.name)
        assert choose_host().audio == "jack"
        with pytest.raises(ConfigError):  # a named PortAudio device means PortAudio, even with JACK up
            choose_host(input_device="stemstream-no-such-device")
