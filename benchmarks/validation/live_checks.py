"""The live-path checks of ``stemstream validate``, and the full list of checks.

Both run the real thing: ``stemstream live`` as its own process, a JACK client of a dummy JACK
server started here (``jackd -d dummy``, no sound card needed; the check is skipped where
``jackd`` is not installed), driven from outside as a user's controller and stage would:

* ``osc``: 2000+ fuzzed datagrams (random bytes, truncated and mistyped OSC, unknown addresses,
  nested bundles, out-of-range values) at the session's OSC port; afterwards the session still
  answers ``/stemstream/get/stats`` with the refusals counted, and ends cleanly.
* ``jack``: the JACK server is killed mid-run and started again with the same name: the session
  says so in one line within a second, reconnects, keeps running and counts the outage.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Callable

import numpy as np

from stemstream.benchmarks.rig.jack_server import DummyJackServer, jackd_available
from stemstream.benchmarks.validation.checks import ENGINE_CHECKS, Context, Result, _timed

#: Datagrams the OSC check sends (the issue asks for 2000 or more).
FUZZ_DATAGRAMS = 2400
QUICK_FUZZ_DATAGRAMS = 2000
#: How long a session may take to start (loading the model; a loaded machine is slow), seconds.
START_TIMEOUT_S = 120.0


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveProcess:
    """``stemstream live`` on a JACK server as a child process; its output lines are timestamped."""

    def __init__(self, ctx: Context, server: str, duration_s: float, osc_port: int | None = None,
                 extra: tuple[str, ...] = ()) -> None:
        cmd = [sys.executable, "-m", "stemstream.bridge.cli.main", "live", "--jack-server", server,
               "--model", ctx.model_name, "--duration", f"{duration_s:g}", "--json", "--no-realtime-worker", *extra]
        cmd += ["--osc-port", str(osc_port)] if osc_port else ["--no-osc"]
        self.stdout: list[tuple[float, str]] = []
        self.stderr: list[tuple[float, str]] = []
        self.process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self._readers = [threading.Thread(target=self._read, args=(stream, into), daemon=True)
                         for stream, into in ((self.process.stdout, self.stdout), (self.process.stderr, self.stderr))]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream, into: list[tuple[float, str]]) -> None:  # noqa: ANN001 - a text pipe
        for line in stream:
            into.append((time.monotonic(), line.rstrip("\n")))

    def wait_for(self, needle: str, timeout_s: float) -> float | None:
        """Monotonic time of the first output line containing ``needle`` (None on timeout)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for t, line in list(self.stdout) + list(self.stderr):
                if needle in line:
                    return t
            if self.process.poll() is not None and not any(r.is_alive() for r in self._readers):
                break
            time.sleep(0.02)
        return None

    def finish(self, timeout_s: float) -> tuple[int, dict | None, str]:
        """Exit code, the JSON summary (None if unreadable) and stderr, after the run ends."""
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGINT)
            self.process.wait(timeout=10)
        for reader in self._readers:
            reader.join(timeout=2)
        text = "\n".join(line for _, line in self.stdout)
        summary = None
        start = text.find("{")
        if start >= 0:
            try:
                summary = json.loads(text[start:])
            except json.JSONDecodeError:
                summary = None
        return self.process.returncode, summary, "\n".join(line for _, line in self.stderr)


def _fuzz(rng: np.random.Generator, count: int) -> list[bytes]:
    """Hostile datagrams: random bytes, damaged OSC, wrong types, unknown addresses, bundles."""
    from stemstream.bridge.osc.codec import encode_bundle, encode_message

    addresses = ["/stemstream/stem/vocals/gain", "/stemstream/stem/drums/mute", "/stemstream/model",
                 "/stemstream/get/latency", "/stemstream/nope", "/x", "/stemstream/stem/ghost/gain",
                 "/stemstream/stem/bass/fx", "/stemstream/subscribe"]
    values = [0.5, -3.0, 1e30, float("nan"), float("inf"), 7, -1, "loud", "", True]
    out = []
    for k in range(count):
        kind = k % 5
        if kind == 0:
            out.append(rng.bytes(int(rng.integers(0, 200))))
        elif kind == 1:
            msg = encode_message(addresses[int(rng.integers(len(addresses)))],
                                 [values[int(rng.integers(len(values)))] for _ in range(int(rng.integers(0, 3)))])
            out.append(msg[: int(rng.integers(1, len(msg) + 1))])  # truncated
        elif kind == 2:
            args = [values[int(rng.integers(len(values)))] for _ in range(int(rng.integers(0, 4)))]
            out.append(encode_message(addresses[int(rng.integers(len(addresses)))], args))
        elif kind == 3:
            inner = [(addresses[int(rng.integers(len(addresses)))], [0.1]) for _ in range(int(rng.integers(1, 4)))]
            bundle = encode_bundle(inner)
            out.append(bundle if rng.random() < 0.5 else bundle[:-int(rng.integers(1, 9))])
        else:
            msg = bytearray(encode_message("/stemstream/stem/vocals/gain", [0.5]))
            for _ in range(int(rng.integers(1, 4))):  # flipped bytes in a valid message
                msg[int(rng.integers(len(msg)))] = int(rng.integers(256))
            out.append(bytes(msg))
    return out


def _ask_stats(sock: socket.socket, port: int, timeout_s: float = 3.0) -> tuple | None:
    from stemstream.bridge.osc.codec import decode, encode_message

    sock.settimeout(0.2)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        sock.sendto(encode_message("/stemstream/get/stats"), ("127.0.0.1", port))
        try:
            while True:
                data, _ = sock.recvfrom(65536)
                for address, args in decode(data):
                    if address == "/stemstream/get/stats":
                        return args
        except (socket.timeout, Exception):  # noqa: BLE001 - late error replies, then retry
            continue
    return None


def check_osc(ctx: Context) -> list[Result]:
    """Fuzzed datagrams at a live session's OSC port: it survives, counts, and still answers."""
    if not jackd_available():
        return [Result("osc", "fuzzed datagrams", True, "skipped: jackd is not installed", 0.0)]
    count = QUICK_FUZZ_DATAGRAMS if ctx.quick else FUZZ_DATAGRAMS

    def run() -> tuple[bool, str]:
        port = _free_udp_port()
        with DummyJackServer(sample_rate=44100, period=256) as server:
            live = LiveProcess(ctx, server.name, duration_s=20.0, osc_port=port)
            try:
                if live.wait_for("stemstream live: model", timeout_s=START_TIMEOUT_S) is None:
                    return False, "the session did not start"
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                    sock.bind(("127.0.0.1", 0))
                    if _ask_stats(sock, port, timeout_s=10.0) is None:
                        return False, "the session never answered /stemstream/get/stats"
                    for datagram in _fuzz(ctx.rng, count):
                        sock.sendto(datagram, ("127.0.0.1", port))
                        time.sleep(0.0005)
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as asker:
                    # a fresh socket: the fuzzing one's buffer is full of error replies and telemetry
                    asker.bind(("127.0.0.1", 0))
                    stats = _ask_stats(asker, port, timeout_s=10.0)
            finally:
                code, summary, err = live.finish(timeout_s=40.0)
        if stats is None:
            return False, f"no answer to /stemstream/get/stats after {count} datagrams (exit {code})"
        refused = int(stats[3])
        warnings = err.count("WARNING")
        ok = code == 0 and refused > 0 and warnings == 0
        return ok, (f"{count} datagrams: still answering, {refused} refusals counted, {warnings} log lines, "
                    f"exit {code}")

    return [_timed(run, "osc", "fuzzed datagrams")]


def check_jack_restart(ctx: Context) -> list[Result]:
    """Kill the JACK server mid-run, start it again: one line within a second, reconnect, go on."""
    if not jackd_available():
        return [Result("jack", "server killed", True, "skipped: jackd is not installed", 0.0)]

    def run() -> tuple[bool, str]:
        server = DummyJackServer(sample_rate=44100, period=256).start()
        name = server.name
        try:
            live = LiveProcess(ctx, name, duration_s=16.0)
            if live.wait_for("stemstream live: model", timeout_s=START_TIMEOUT_S) is None:
                code, _, err = live.finish(timeout_s=5.0)
                return False, f"the session did not start (exit {code}): {err.splitlines()[-1] if err else ''}"
            time.sleep(2.0)  # running
            assert server.process is not None
            killed = time.monotonic()
            server.process.send_signal(signal.SIGKILL)
            server.stop()
            noticed = live.wait_for("stopped (", timeout_s=3.0)
            time.sleep(1.0)
            server = DummyJackServer(sample_rate=44100, period=256, name=name).start()
            back = live.wait_for("is back", timeout_s=8.0)
            code, summary, err = live.finish(timeout_s=40.0)
        finally:
            server.stop()
        if summary is None:
            return False, f"exit {code}, no summary; stderr: {err.splitlines()[-1] if err else ''}"
        outages = summary.get("host_outages")
        delay = None if noticed is None else noticed - killed
        ok = code == 0 and delay is not None and delay <= 1.0 and back is not None and outages == 1
        return ok, (f"loss reported after {'-' if delay is None else f'{delay:.2f}'} s, "
                    f"{'reconnected' if back is not None else 'never reconnected'}, outages counted {outages}, "
                    f"{summary.get('host_outage_seconds', 0):.1f} s without audio, exit {code}")

    return [_timed(run, "jack", "server killed, restarted")]


#: Every check, in the order the table shows them.
ALL_CHECKS: dict[str, Callable[[Context], list[Result]]] = {
    **ENGINE_CHECKS,
    "osc": check_osc,
    "jack": check_jack_restart,
}
CHECK_NAMES: tuple[str, ...] = tuple(ALL_CHECKS)
