"""Talking to a JACK server quietly: opening clients, probing for a server, what it runs at, and
the connections of our ports.

libjack prints its own lines on stderr (``Cannot connect to server socket err = No such file or
directory``, ``jack server is not running or cannot be started``, ``JackShmReadWritePtr::...``)
whenever a client cannot open, and more when a server goes away. :func:`quiet_libjack` routes
libjack's error and info messages into :data:`JACK_MESSAGES` (the last 64, for diagnostics)
instead, so what the user reads is stemstream's one line. It is process-wide (libjack has one
error function) and idempotent; every function here calls it first.

:func:`server_format` probes a server: its sample rate and period, or ``None`` when none runs
under that name. :class:`ConnectionLog` follows the connections of our ports as JACK reports
them, so that after a server restart they can be made again (``stemstream.bridge.hosts.supervisor``).
"""

from __future__ import annotations

import collections
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from stemstream.realtime.errors import StemstreamError, require

#: libjack's latest error and info lines (what it would have printed).
JACK_MESSAGES: collections.deque[str] = collections.deque(maxlen=64)
_QUIET = {"done": False}
_LOCK = threading.Lock()


def quiet_libjack() -> Any:
    """Route libjack's messages into :data:`JACK_MESSAGES` (once per process); returns the
    ``jack`` module (JACK-Client)."""
    jack = require("jack", "live")
    with _LOCK:
        if not _QUIET["done"]:
            jack.set_error_function(JACK_MESSAGES.append)
            jack.set_info_function(JACK_MESSAGES.append)
            _QUIET["done"] = True
    return jack


def server_label(server_name: str | None) -> str:
    """How a server is named in messages (``None``: ``$JACK_DEFAULT_SERVER``, else ``'default'``)."""
    return repr(server_name or os.environ.get("JACK_DEFAULT_SERVER") or "default")


def try_open_client(client_name: str, server_name: str | None) -> Any:
    """A ``jack.Client`` on ``server_name`` (``None``: ``$JACK_DEFAULT_SERVER`` or the default),
    never starting a server; ``None`` when no server runs under that name. Quiet."""
    jack = quiet_libjack()
    try:
        return jack.Client(client_name, servername=server_name, no_start_server=True)
    except jack.JackOpenError:
        return None


def open_client(client_name: str, server_name: str | None) -> Any:
    """Like :func:`try_open_client`, but a server that is not running is a ``StemstreamError``."""
    JACK_MESSAGES.clear()
    client = try_open_client(client_name, server_name)
    if client is None:
        said = f"; libjack: {JACK_MESSAGES[0]}" if JACK_MESSAGES else ""
        raise StemstreamError(f"JACK server {server_label(server_name)} is not running (start it, e.g. with "
                              f"qjackctl, or run without --jack for PortAudio{said})")
    return client


@dataclass(frozen=True)
class JackFormat:
    """What a JACK server runs at: ``sample_rate`` (Hz) and ``period`` (frames per cycle)."""

    sample_rate: int
    period: int


def client_format(client: Any) -> JackFormat:
    """The format of the server ``client`` (open) is connected to."""
    return JackFormat(int(client.samplerate), int(client.blocksize))


def server_format(server_name: str | None = None) -> JackFormat | None:
    """The rate and period of the JACK server ``server_name`` (``None``: the default one), or
    ``None`` when no such server runs. Opens and closes a client called ``stemstream-probe``."""
    client = try_open_client("stemstream-probe", server_name)
    if client is None:
        return None
    try:
        return client_format(client)
    finally:
        client.close()


class ConnectionLog:
    """The connections between our ports and others, as JACK reports them (its notification
    thread calls :meth:`on_connect`). Ours are kept by their short name (``mix_L``), so they
    survive a client renamed by the server (``stemstream-01``).

    A server shutting down reports its connections as gone just after it said it stops; so a
    connection that went away less than :attr:`grace_s` before :meth:`snapshot`'s ``before``, or
    after it, still counts as there.
    """

    grace_s = 0.5

    def __init__(self, our_prefix: str) -> None:
        self.our_prefix = our_prefix
        #: ``(source, destination) -> None`` while connected, or the monotonic time it went away
        self._pairs: dict[tuple[str, str], float | None] = {}
        self._lock = threading.Lock()

    def _key(self, port: str) -> str:
        return port[len(self.our_prefix):] if port.startswith(self.our_prefix) else port

    def on_connect(self, a: Any, b: Any, connected: bool) -> None:
        """JACK-Client's port-connect callback: ``a`` -> ``b`` (connected or not)."""
        try:
            names = (a.name, b.name)
        except Exception:  # a port already gone: nothing to keep
            return
        if not any(n.startswith(self.our_prefix) for n in names):
            return
        source, destination = (names if a.is_output else names[::-1])
        pair = (self._key(source), self._key(destination))
        with self._lock:
            self._pairs[pair] = None if connected else time.monotonic()

    def snapshot(self, before: float | None = None) -> list[tuple[str, str]]:
        """The connections to make again: ``(source, destination)`` with our ports by short
        name prefixed ``":"`` (e.g. ``(":mix_L", "system:playback_1")``), connected at
        ``before`` (monotonic; default now) as far as :attr:`grace_s` tells."""
        before = time.monotonic() if before is None else before
        with self._lock:
            pairs = [p for p, gone in self._pairs.items() if gone is None or gone > before - self.grace_s]
        return [tuple(":" + n if not n.count(":") else n for n in pair) for pair in pairs]  # type: ignore[misc]


class JackLink:
    """What ``stemstream.bridge.hosts.supervisor.HostSupervisor`` asks while a JACK server is away:
    :meth:`find` opens a client on a server of that name (``None`` while none runs).

    Args:
        server_name: the server to look for (``None``: ``$JACK_DEFAULT_SERVER`` or the default).
        client_name: the name to open the client with.
    """

    #: a server back at another rate or with a longer period ends the session
    refusal_ends = True

    def __init__(self, server_name: str | None, client_name: str) -> None:
        self.server_name = server_name
        self.client_name = client_name

    def blocker(self, lost: Any) -> str:
        """A JACK server can always be looked for."""
        return ""

    def find(self, lost: Any) -> Any:
        """An open ``jack.Client`` on the server once it is back, else ``None``."""
        return try_open_client(self.client_name, self.server_name)

    def describe(self, client: Any) -> str:
        """``48000 Hz, period 256``."""
        fmt = client_format(client)
        return f"{fmt.sample_rate} Hz, period {fmt.period}"

    def discard(self, client: Any) -> None:
        """Close the client :meth:`find` opened."""
        client.close()


def full_name(port: str, client_name: str) -> str:
    """``":mix_L"`` -> ``"<client_name>:mix_L"``; other names unchanged."""
    return f"{client_name}{port}" if port.startswith(":") else port


__all__ = ["ConnectionLog", "JACK_MESSAGES", "JackFormat", "JackLink", "client_format", "full_name", "open_client",
           "quiet_libjack", "server_format", "server_label", "try_open_client"]
