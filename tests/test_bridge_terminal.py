"""The console status of ``live``: on a pseudo-terminal the one-screen status renders and updates in
place (alternate screen, redrawn from the top, left cleanly at the end); on a pipe, plain lines
without escape sequences. Both for the status classes on their own and for ``stemstream live``
itself on a dummy JACK server, its stdout a pty or a pipe."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from stemstream.bridge.control.status import SessionStatus
from stemstream.bridge.control.terminal import StatusLog, StatusScreen, meter_bar, render, status_line
from stemstream.bridge.live.processor import LiveConfig, LiveProcessor
from stemstream.bridge.osc.routes import OscRoutes
from tests.bridge_support import pump_sessions, stand_in_factory

DJ = ("vocals", "drums", "bass", "other")
BLOCK = 128
ESC = "\x1b["


def _read_for(fd: int, seconds: float) -> str:
    """What arrives on ``fd`` within ``seconds`` (a pty master)."""
    out = b""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        ready, _, _ = select.select([fd], [], [], 0.05)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the other side closed
                break
            if not chunk:
                break
            out += chunk
    return out.decode(errors="replace")


@pytest.fixture()
def session():
    cfg = LiveConfig(model="tiny", sample_rate=44100, block_size=BLOCK, routing="both")
    proc = LiveProcessor(cfg, stand_in_factory(BLOCK, started=False), DJ)
    routes = OscRoutes(proc)
    status = SessionStatus(proc, routes, proc.read_meters)

    def play(blocks: int, level: float = 0.5) -> None:
        block = np.full((BLOCK, 2), level, np.float32)
        for _ in range(blocks):
            proc.process(block, None, np.zeros((2, BLOCK), np.float32))
            pump_sessions(proc)

    yield proc, routes, status, play
    proc.close()


def test_the_screen_renders_and_updates_on_a_pty(session) -> None:
    proc, routes, status, play = session
    master, slave = pty.openpty()
    os.set_blocking(master, False)
    try:
        with os.fdopen(slave, "w", encoding="utf-8", closefd=False) as tty:
            assert tty.isatty()
            screen = StatusScreen(status, tty, header="JACK 'test', block 128", interval_s=0.1).start()
            play(20)
            first = _read_for(master, 0.35)
            routes.dispatch("/stemstream/stem/drums/mute", (1,))
            routes.dispatch("/stemstream/stem/bass/gain", (0.5,))
            routes.dispatch("/stemstream/stem/vocals/gain", (9.0,))  # refused: shown as such
            play(20)
            second = _read_for(master, 0.35)
            screen.stop()
            last = _read_for(master, 0.2)
    finally:
        os.close(master)
        os.close(slave)
    assert first.startswith(ESC + "?1049h") and ESC + "H" in first  # alternate screen, redrawn from the top
    assert screen.frames >= 4
    latest = [f for f in second.split(ESC + "H") if f.endswith(ESC + "J")][-1]  # the last whole frame
    plain = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", latest)
    for stem in DJ:
        assert re.search(rf"^{stem} +[#.|]+ +-?\d+ ", plain, re.M), plain
    assert re.search(r"^drums .*MUTE", plain, re.M) and re.search(r"^bass .* -6\.0 dB", plain, re.M)
    assert "last refused: /stemstream/stem/vocals/gain: gain=9.0" in plain
    assert "xruns 0" in plain and "deadline misses" in plain and "latency" in plain
    assert "MUTE" not in re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", first.split(ESC + "H")[-1])  # it updated
    assert last.endswith(ESC + "?1049l")  # the main screen back


def test_a_pipe_gets_plain_lines(session) -> None:
    proc, routes, status, play = session
    lines: list[str] = []
    play(20)
    log = StatusLog(status, lines.append, interval_s=0.1).start()
    time.sleep(0.45)
    log.stop()
    assert len(lines) >= 2 and not any("\x1b" in line for line in lines)
    assert re.match(r"stemstream live: \d+ s, latency [\d.]+ ms, CPU [\d.]+ % callback, deadline misses 0, "
                    r"xruns 0; vocals -?\d+ dBFS gain \+0\.0 dB; drums ", lines[-1]), lines[-1]


def test_meter_bars_and_the_render_fit_the_width() -> None:
    assert meter_bar(1.0, 1.0, 10) == "##########" and meter_bar(0.0, 0.0, 10) == ".........."
    assert meter_bar(10 ** (-30 / 20), 10 ** (-12 / 20), 10) == "#####...|."
    s = {"model": "m", "seconds": 1.0, "stems": list(DJ), "gain": [1.0, 0.0, 0.5, 2.0], "mute": [0, 0, 1, 0],
         "solo": [0, 1, 0, 0], "rms": [0.1] * 4, "peak": [0.2] * 4, "latency_ms": 15.2, "cpu_load": 0.03,
         "process_cpu_percent": 40.0, "deadline_misses": 2, "xruns": 1, "messages": ["hello"],
         "acapella": False, "instrumental": False, "bypass": True}
    lines = [re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", line) for line in render(s, 60)]
    assert max(len(line) for line in lines) <= 60 and "on: bypass" in lines and "hello" in lines
    assert "drums" in status_line(s) and "-inf dB" in status_line(s)


# ---- stemstream live itself -------------------------------------------------------------------------
def _live(tiny_live_weights: Path, server_name: str, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "stemstream.bridge", "live", "--jack", "--jack-server", server_name,
            "--model", str(tiny_live_weights), "--block-size", "1024", "--no-osc", "--backend", "torch",
            "--queue-blocks", "4", *extra]


def test_stemstream_live_shows_the_screen_on_a_terminal_and_lines_on_a_pipe(tiny_live_weights) -> None:
    from stemstream.benchmarks.rig.jack_server import DummyJackServer, jackd_available

    if not jackd_available():
        pytest.skip("jackd is not installed (apt-get install jackd2)")
    env = dict(os.environ, OMP_NUM_THREADS="1", COLUMNS="100", LINES="30")
    with DummyJackServer(44100, 1024, realtime=True) as server:
        env["JACK_DEFAULT_SERVER"] = server.name
        master, slave = pty.openpty()
        os.set_blocking(master, False)
        try:
            live = subprocess.Popen(_live(tiny_live_weights, server.name, ["--duration", "3"]), stdout=slave,
                                    stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env)
            os.close(slave)
            screen = _read_for(master, 60.0)
            live.wait(timeout=60)
        finally:
            os.close(master)
        stderr = live.stderr.read().decode()
        assert live.returncode == 0, stderr
        assert screen.count(ESC + "?1049h") == 1 and ESC + "?1049l" in screen
        frames = [re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", f) for f in screen.split(ESC + "H")[1:]]
        assert len(frames) >= 5, len(frames)  # a few a second for three seconds
        assert all(re.search(rf"^{stem} +[#.|]+", frames[-1], re.M) for stem in ("bass", "drums", "guitar", "piano"))
        assert "xruns" in frames[-1] and "Ctrl-C stops" in frames[-1]
        assert len(set(frames)) >= 3  # it updates (seconds, meters)
        assert "session:" in screen.split(ESC + "?1049l")[-1]  # the summary after the screen, on the main screen
        assert "stemstream live: model " in stderr and "\x1b" not in stderr  # the start line: not on the screen

        piped = subprocess.run(_live(tiny_live_weights, server.name, ["--duration", "2.5", "--status-interval", "0.5"]),
                               capture_output=True, text=True, env=env, timeout=120)
    assert piped.returncode == 0, piped.stderr
    lines = [line for line in piped.stderr.splitlines() if line.startswith("stemstream live: ") and " s, latency" in line]
    assert len(lines) >= 3 and "\x1b" not in piped.stderr + piped.stdout, piped.stderr
    assert all("bass" in line and "xruns" in line for line in lines)
