"""Watching the audio host of a live session: a server or device that goes away, and comes back.

A :class:`HostSupervisor` runs one thread beside the session. It waits on the host's ``lost``
event (set from JACK's shutdown callback, or by a PortAudio host's ``check()``, called every
``check_s``, 0.1 s: its stream ended, or its callbacks stopped), waking every ``poll_s`` to see
whether it should stop: a few microseconds of Python a few times a second. When the host is lost it
reports one line through ``notify`` at once (JACK tells us within milliseconds; a PortAudio stream
that ends is seen within 0.1 s, one whose callbacks stop within 0.4 s), and then, with
``reconnect``, every ``poll_s`` asks the host's link (``jack_link.JackLink``,
``portaudio_link.PortAudioLink``) whether it is back:

* JACK: a client opens on a server of the same name. When one answers at the session's sample rate
  (and a period no longer than the session's block), a new client runs the same live processor -
  the model, its state, gains, mutes, solos, effects and OSC are the session's own and never
  stopped - with the same ports; the connections our ports had (followed as JACK reported them,
  and those asked for with ``--jack-connect``) are made again, and those whose other side has not
  come back yet are made as soon as its ports appear. A server back at another rate or with a
  longer period ends the session (the engine was built for the old ones), with a line saying so.
* PortAudio: PortAudio is re-initialised (its device list is made once, at start; where that is
  safe: ``portaudio_link.rescan_blocker``) and devices of the same names with enough channels at
  the session's rate are looked for; when they are there a new stream runs the same live processor
  with the same settings. A device on PortAudio's JACK host API cannot be reopened: the session
  ends with a line saying why.

Without ``reconnect`` (``--no-reconnect``) the session ends; :attr:`HostSupervisor.failure` says
why and the command exits non-zero. Every outage is counted: :attr:`HostSupervisor.outages`
(start and end, monotonic seconds) and :meth:`HostSupervisor.outage_seconds`.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Protocol, Sequence

from stemstream.bridge.hosts.jack_link import server_label
from stemstream.realtime.errors import StemstreamError

#: How often a lost host is looked for, and a PortAudio stream checked, seconds.
POLL_S: float = 0.25


class HostLink(Protocol):
    """How a lost host is looked for (``jack_link.JackLink``, ``portaudio_link.PortAudioLink``)."""

    #: whether a host found again but refused by ``reopen`` ends the session (JACK: a server at
    #: another rate) rather than being looked for again (PortAudio: a device still settling)
    refusal_ends: bool

    def blocker(self, lost: Any) -> str: ...  # why it cannot be looked for ("" when it can)

    def find(self, lost: Any) -> Any: ...  # what ``reopen`` takes once the host is back, else None

    def describe(self, found: Any) -> str: ...  # how it came back ("48000 Hz, period 256")

    def discard(self, found: Any) -> None: ...  # release what ``find`` opened


class HostSupervisor:
    """Watches ``host`` for the session; see the module docstring.

    Args:
        host: the running host (``JackStemClient`` or ``PortAudioHost``): it has a ``lost``
            event, ``lost_reason``, ``lost_at`` and ``stop()``; a PortAudio host also ``check()``.
        link: looks for the lost host (:class:`HostLink`).
        reopen: builds and starts a new host on what ``link.find()`` returned (JACK: an open
            ``jack.Client``; PortAudio: the devices' indices), running the same processor.
        describe: names the host in messages (``"JACK server 'default'"``).
        notify: gets each one-line message (the CLI prints it on stderr).
        on_end: called when the session must end (host lost for good).
        reconnect: wait for a lost host to come back (False: end the session).
        poll_s: see :data:`POLL_S`.
        wanted: JACK connections asked for at start, ``(source, destination)`` (ours as ``":in_L"``).
    """

    def __init__(self, host: Any, link: HostLink, reopen: Callable[[Any], Any], describe: str,
                 notify: Callable[[str], None], on_end: Callable[[], None], reconnect: bool = True,
                 poll_s: float = POLL_S, wanted: Sequence[tuple[str, str]] = ()) -> None:
        self.host = host
        self.link = link
        self.reopen = reopen
        self.describe = describe
        self.notify = notify
        self.on_end = on_end
        self.reconnect = reconnect
        self.poll_s = poll_s
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
        if hasattr(host, "check"):  # PortAudio: look at the stream every host.check_s
            return host.lost.wait(host.check_s) or host.check()
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
            return self._end(f"{self.describe} stopped ({reason})", "exiting (--no-reconnect)")
        blocker = self.link.blocker(host)
        if blocker:
            return self._end(f"{self.describe} stopped ({reason}); {blocker}", "exiting")
        self.notify(f"stemstream live: {self.describe} stopped ({reason}); waiting for it to come back (Ctrl-C stops)")
        pairs = self._pairs(host, before)
        try:
            host.stop()
        except Exception:  # a dead server: nothing left to close cleanly
            pass
        while not self._closed.wait(self.poll_s):
            blocker = self.link.blocker(host)
            if blocker:
                return self._end(f"{self.describe} stopped ({reason}); {blocker}", "exiting")
            found = self.link.find(host)
            if found is None:
                continue
            resumed = self._resume(found, pairs)
            if resumed is not None:
                return resumed
        return False

    def _end(self, failure: str, how: str) -> bool:
        self.failure = failure
        self.notify(f"stemstream live: {failure}; {how}")
        self.on_end()
        return False

    def _pairs(self, host: Any, before: float) -> list[tuple[str, str]]:
        log = getattr(host, "connections", None)
        pairs = list(self.wanted)
        for pair in log.snapshot(before) if log is not None else []:
            if pair not in pairs:
                pairs.append(pair)
        return pairs

    def _resume(self, found: Any, pairs: list[tuple[str, str]]) -> bool | None:
        """Run a new host on ``found``: True when it runs, False when the session must end, None
        to go on looking (a refusal the link does not take as final)."""
        what = self.link.describe(found)
        try:
            new = self.reopen(found)
        except StemstreamError as exc:
            try:
                self.link.discard(found)
            except Exception:
                pass
            if not self.link.refusal_ends:
                return None
            return self._end(f"{self.describe} came back ({what}): {exc}", "restart stemstream live to adopt it")
        with self._lock:
            self.host = new
        restore = getattr(new, "restore", None)
        self._pending = restore(pairs) if restore is not None else []
        self.outages[-1][1] = time.monotonic()
        seconds = self.outages[-1][1] - self.outages[-1][0]  # type: ignore[operator]
        line = f"stemstream live: {self.describe} is back ({what}): reconnected after {seconds:.1f} s"
        if restore is not None:
            made = len(pairs) - len(self._pending)
            line += f", {made} of {len(pairs)} connections restored"
            line += f"; the other {len(self._pending)} when their ports appear" if self._pending else ""
        self.notify(line)
        return True


def jack_description(server_name: str | None) -> str:
    """``"JACK server 'default'"``."""
    return f"JACK server {server_label(server_name)}"


__all__ = ["HostLink", "HostSupervisor", "POLL_S", "jack_description"]
