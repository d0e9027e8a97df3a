"""Watching the audio host of a live session: a server or device that goes away, and a JACK
server that comes back.

A :class:`HostSupervisor` runs one thread beside the session. It waits on the host's ``lost``
event (set from JACK's shutdown callback, or by the supervisor itself when a PortAudio stream
stops being active without being stopped), waking every ``poll_s`` to see whether it should stop:
a few microseconds of Python four times a second. When
the host is lost it reports one line through ``notify`` at once (JACK tells us within
milliseconds; a PortAudio stream is looked at every ``poll_s``), and then:

* JACK with ``reconnect``: closes the dead client and, every ``poll_s``, tries to open a client
  on a server of the same name. When one answers at the session's sample rate (and a period no
  longer than the session's block), a new client runs the same live processor - the model, its
  state, gains, mutes, solos, effects and OSC are the session's own and never stopped - with the
  same ports; the connections our ports had (followed as JACK reported them, and those asked for
  with ``--jack-connect``) are made again, and those whose other side has not come back yet are
  made as soon as its ports appear. A server back at another rate or with a longer period ends the
  session (the engine was built for the old ones), with a line saying so.
* otherwise (``--no-reconnect``, or PortAudio, which cannot reopen a device it lost): the
  session ends; :attr:`HostSupervisor.failure` says why and the command exits non-zero.

Every outage is counted: :attr:`HostSupervisor.outages` (start and end, monotonic seconds) and
:meth:`HostSupervisor.outage_seconds`.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Sequence

from stemstream.bridge.hosts.jack_link import client_format, server_label, try_open_client
from stemstream.realtime.errors import StemstreamError

#: How often a lost JACK server is looked for, and a PortAudio stream checked, seconds.
POLL_S: float = 0.25


class HostSupervisor:
    """Watches ``host`` for the session; see the module docstring.

    Args:
        host: the running host (``JackStemClient`` or ``PortAudioHost``): it has a ``lost``
            event, ``lost_reason``, ``lost_at`` and ``stop()``; a PortAudio host also ``active``.
        reopen: builds and starts a new host on the same JACK server (``client`` an open
            ``jack.Client``), or ``None`` where the host cannot be reopened (PortAudio).
        describe: names the host in messages (``"JACK server 'default'"``).
        notify: gets each one-line message (the CLI prints it on stderr).
        on_end: called when the session must end (host lost for good).
        reconnect: wait for a lost JACK server to come back (False: end the session).
        poll_s: see :data:`POLL_S`.
        server_name / client_name: the JACK server to look for and the name to open with.
        wanted: connections asked for at start, ``(source, destination)`` (ours as ``":in_L"``).
    """

    def __init__(self, host: Any, reopen: Callable[[Any], Any] | None, describe: str,
                 notify: Callable[[str], None], on_end: Callable[[], None], reconnect: bool = True,
                 poll_s: float = POLL_S, server_name: str | None = None, client_name: str = "stemstream",
                 wanted: Sequence[tuple[str, str]] = ()) -> None:
        self.host = host
        self.reopen = reopen
        self.describe = describe
        self.notify = notify
        self.on_end = on_end
        self.reconnect = reconnect and reopen is not None
        self.poll_s = poll_s
        self.server_name = server_name
        self.client_name = client_name
        self.wanted = list(wanted)
        #: ``[start, end]`` of each outage (monotonic seconds; end None while it lasts)
        self.outages: list[list[float | None]] = []
        #: why the session ended ("" while it runs or after a clean stop)
        self.failure = ""
        self._pending: list[tuple[str, str]] = []
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="stemstream-host-watch", daemon=True)

    def start(self) -> "HostSupervisor":
        self._thread.start()
        return self

    def close(self) -> Any:
        """Stop watching (within ``poll_s``); returns the current host, for the caller to stop."""
        self._closed.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)
        with self._lock:
            return self.host

    @property
    def host_ok(self) -> bool:
        """Whether the host is running (not lost, or reconnected)."""
        return not self.host.lost.is_set() or self._closed.is_set()

    def outage_seconds(self) -> float:
        """Total time without the host so far, seconds (a running outage counts up to now)."""
        now = time.monotonic()
        return sum((end if end is not None else now) - start for start, end in self.outages)  # type: ignore[operator]

    # -- the watching thread -------------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._closed.is_set():
                if not self._wait_for_loss():
                    continue
                if self._closed.is_set():
                    return
                if not self._handle_loss():
                    return
        except Exception as exc:  # the watcher must never leave the session unwatched silently
            self.failure = f"{self.describe}: supervisor failed ({type(exc).__name__}: {exc})"
            self.notify(f"stemstream live: {self.failure}")
            self.on_end()

    def _wait_for_loss(self) -> bool:
        """Sleep until the host is lost (True), retrying pending connections as ports appear."""
        host = self.host
        if hasattr(host, "active"):  # PortAudio: look at the stream now and then
            if host.lost.wait(self.poll_s):
                return True
            if not host.active and not host.stopping:
                host.lost_reason = host.lost_reason or "its stream ended: device gone or failed"
                host.lost_at = time.monotonic()
                host.lost.set()
                return True
            return False
        if self._pending:
            changed = getattr(host, "ports_changed", None)
            if changed is not None and changed.wait(self.poll_s):
                changed.clear()
                self._pending = host.restore(self._pending)
            return host.lost.is_set()
        return host.lost.wait(self.poll_s)

    def _handle_loss(self) -> bool:
        """One outage; False when the session must end."""
        host = self.host
        start = host.lost_at or time.monotonic()
        self.outages.append([start, None])
        before = start
        reason = host.lost_reason or "lost"
        if not self.reconnect:
            how = "exiting (--no-reconnect)" if self.reopen is not None else "exiting"
            self.failure = f"{self.describe} stopped ({reason})"
            self.notify(f"stemstream live: {self.failure}; {how}")
            self.on_end()
            return False
        self.notify(f"stemstream live: {self.describe} stopped ({reason}); waiting for it to come back (Ctrl-C stops)")
        pairs = self._pairs(host, before)
        try:
            host.stop()
        except Exception:  # a dead server: nothing left to close cleanly
            pass
        while not self._closed.wait(self.poll_s):
            client = try_open_client(self.client_name, self.server_name)
            if client is None:
                continue
            return self._resume(client, pairs)
        return False

    def _pairs(self, host: Any, before: float) -> list[tuple[str, str]]:
        log = getattr(host, "connections", None)
        pairs = list(self.wanted)
        for pair in log.snapshot(before) if log is not None else []:
            if pair not in pairs:
                pairs.append(pair)
        return pairs

    def _resume(self, client: Any, pairs: list[tuple[str, str]]) -> bool:
        fmt = client_format(client)
        try:
            new = self.reopen(client)  # type: ignore[misc]
        except StemstreamError as exc:
            try:
                client.close()
            except Exception:
                pass
            self.failure = f"{self.describe} came back at {fmt.sample_rate} Hz, period {fmt.period}: {exc}"
            self.notify(f"stemstream live: {self.failure}; restart stemstream live to adopt it")
            self.on_end()
            return False
        with self._lock:
            self.host = new
        self._pending = new.restore(pairs)
        self.outages[-1][1] = time.monotonic()
        seconds = self.outages[-1][1] - self.outages[-1][0]  # type: ignore[operator]
        made = len(pairs) - len(self._pending)
        later = f"; the other {len(self._pending)} when their ports appear" if self._pending else ""
        self.notify(f"stemstream live: {self.describe} is back ({fmt.sample_rate} Hz, period {fmt.period}): "
                    f"reconnected after {seconds:.1f} s, {made} of {len(pairs)} connections restored{later}")
        return True


def jack_description(server_name: str | None) -> str:
    """``"JACK server 'default'"``."""
    return f"JACK server {server_label(server_name)}"


__all__ = ["HostSupervisor", "POLL_S", "jack_description"]
