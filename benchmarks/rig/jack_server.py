"""Start and stop a private JACK server on the dummy driver (no sound card): for tests and
benchmarks. ``jackd -n NAME --no-realtime -d dummy -r RATE -p PERIOD``, or with ``-R``
(``realtime=True``) where the system allows SCHED_FIFO: JACK's process threads (server and
clients) then preempt ordinary processes, as on a tuned audio machine, so a busy shared
machine does not cause xruns. Where real-time scheduling is refused jackd runs without it;
:attr:`DummyJackServer.realtime` says what it got."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid

from stemstream.realtime.errors import StemstreamError


def jackd_available() -> bool:
    """Whether a ``jackd`` executable is on ``PATH``."""
    return shutil.which("jackd") is not None


class DummyJackServer:
    """A ``jackd`` subprocess with a unique name; ``with DummyJackServer() as s: s.name``.

    Args:
        sample_rate: Hz.
        period: buffer size in samples.
        name: server name (default: unique ``stemstream-<hex>``).
        timeout_s: how long to wait for it to accept clients.
        realtime: ask for real-time scheduling (``-R``) instead of ``--no-realtime``.
        capture_channels / playback_channels: ``system:capture_*`` / ``system:playback_*``
            ports of the dummy driver (what PortAudio's JACK host API shows as channels).
    """

    def __init__(self, sample_rate: int = 44100, period: int = 256, name: str | None = None,
                 timeout_s: float = 10.0, realtime: bool = False, capture_channels: int = 2,
                 playback_channels: int = 2) -> None:
        self.sample_rate = sample_rate
        self.period = period
        self.name = name or f"stemstream-{uuid.uuid4().hex[:8]}"
        self.timeout_s = timeout_s
        self.request_realtime = realtime
        self.capture_channels = capture_channels
        self.playback_channels = playback_channels
        #: whether the server's clients run with real-time scheduling (known after start)
        self.realtime = False
        self.process: subprocess.Popen[bytes] | None = None
        self.log = b""

    def start(self) -> "DummyJackServer":
        """Launch ``jackd`` and wait until a client can connect."""
        jackd = shutil.which("jackd")
        if jackd is None:
            raise StemstreamError("jackd is not installed (apt-get install jackd2)")
        from stemstream.bridge.hosts.jack_link import quiet_libjack

        jack = quiet_libjack()  # the probes below would otherwise print libjack's "cannot connect" lines
        env = dict(os.environ, JACK_NO_AUDIO_RESERVATION="1", JACK_NO_START_SERVER="1")
        mode = "-R" if self.request_realtime else "--no-realtime"
        cmd = [jackd, "-n", self.name, mode, "-d", "dummy", "-r", str(self.sample_rate), "-p", str(self.period),
               "-C", str(self.capture_channels), "-P", str(self.playback_channels)]
        # A file, not a pipe: a chatty jackd must never block on a full pipe.
        self._logfile = tempfile.TemporaryFile()
        self.process = subprocess.Popen(cmd, stdout=self._logfile, stderr=subprocess.STDOUT, env=env)
        end = time.monotonic() + self.timeout_s
        while time.monotonic() < end:
            if self.process.poll() is not None:
                self.stop()
                raise StemstreamError(f"jackd exited early: {self.log.decode(errors='replace')[-500:]}")
            try:
                probe = jack.Client("probe", servername=self.name, no_start_server=True)
            except jack.JackOpenError:
                time.sleep(0.05)
                continue
            self.realtime = bool(probe.realtime)
            probe.close()
            return self
        self.stop()
        raise StemstreamError(f"jackd {self.name!r} did not accept clients within {self.timeout_s} s")

    def stop(self) -> None:
        """Terminate the server (kill after 3 s)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=3.0)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=3.0)
        self._logfile.seek(0)
        self.log = self._logfile.read()
        self._logfile.close()
        self.process = None

    def __enter__(self) -> "DummyJackServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
