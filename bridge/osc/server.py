"""The OSC control server: one UDP socket, one receiving thread, one telemetry thread.

Defaults: bind ``127.0.0.1`` (loopback only; pass ``host="0.0.0.0"`` to accept a
controller on the network), port :data:`DEFAULT_PORT` (9000, TouchOSC's habit; pass 0 for
any free port). Replies to queries go back to the sender's address and port from the same
socket. Telemetry goes to subscribers (at most :data:`MAX_SUBSCRIBERS`, always on the
sender's own host) as one OSC bundle per frame at ``telemetry_hz``.

Nothing that arrives can crash the server: every datagram is decoded, validated and
dispatched inside one ``try``; failures are counted (``routes.counters``). Only validated
values reach :class:`~stemstream.bridge.live.controls.StemControls`, whose arrays the audio side reads.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any, Callable

from stemstream.bridge.osc.codec import MalformedDatagram, decode, encode_bundle, encode_message
from stemstream.bridge.osc.routes import PREFIX, ControlTarget, OscRoutes
from stemstream.realtime.errors import bad_value

#: Default UDP port stemstream listens on.
DEFAULT_PORT: int = 9000
#: Default bind address (loopback only).
DEFAULT_HOST: str = "127.0.0.1"
#: Telemetry rate in frames per second.
DEFAULT_TELEMETRY_HZ: float = 30.0
#: Most telemetry subscribers at once.
MAX_SUBSCRIBERS: int = 8

Address = tuple[str, int]


def telemetry_messages(target: Any, meters: Callable[[], tuple[Any, Any]] | None) -> list[tuple[str, tuple]]:
    """One telemetry frame: per-stem meters, latency, CPU load, deadline misses, xruns."""
    messages: list[tuple[str, tuple]] = []
    if meters is not None:
        rms, peak = meters()
        for stem, r, p in zip(target.stems, rms, peak):
            messages.append((f"{PREFIX}/meter/{stem}", (float(r), float(p))))
    stats = target.stats()
    samples = int(target.latency_samples)
    messages.append((f"{PREFIX}/latency", (samples, 1000.0 * samples / target.sample_rate)))
    messages.append((f"{PREFIX}/cpu", (float(stats.get("cpu_load", 0.0)),)))
    messages.append((f"{PREFIX}/deadline_misses", (int(stats.get("deadline_misses", 0)),)))
    messages.append((f"{PREFIX}/xruns", (int(stats.get("xruns", 0)),)))
    return messages


class OscServer:
    """Receives control messages for ``target`` and sends telemetry to subscribers.

    Args:
        target: what is controlled (``stemstream.bridge.live.processor.LiveProcessor`` or anything following
            :class:`~stemstream.bridge.osc.routes.ControlTarget`).
        host: bind address.
        port: UDP port (0: pick a free one; see :attr:`port`).
        telemetry_hz: telemetry frames per second (1..200).
        meters: callable returning per-stem ``(rms, peak)`` arrays, or ``None``.
    """

    def __init__(
        self,
        target: ControlTarget,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        telemetry_hz: float = DEFAULT_TELEMETRY_HZ,
        meters: Callable[[], tuple[Any, Any]] | None = None,
    ) -> None:
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise bad_value("osc_port", port, "an int in [0, 65535] (0: any free port)")
        if not isinstance(telemetry_hz, (int, float)) or not 1.0 <= telemetry_hz <= 200.0:
            raise bad_value("telemetry_hz", telemetry_hz, "a number in [1, 200]")
        self.target = target
        self.routes = OscRoutes(target)
        self.telemetry_hz = float(telemetry_hz)
        self.meters = meters
        self.subscribers: list[Address] = []
        self.telemetry_frames = 0
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self._sock.bind((host, port))
        except OSError as exc:
            self._sock.close()
            raise bad_value("osc_port", port, f"a free UDP port on {host} ({exc.strerror})") from None
        self._sock.settimeout(0.1)
        self.host, self.port = self._sock.getsockname()[:2]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def counters(self):  # noqa: ANN201 - stemstream.bridge.osc.routes.Counters
        """Accepted / rejected message counts."""
        return self.routes.counters

    def start(self) -> "OscServer":
        """Start the receiving and telemetry threads (daemons)."""
        for name, fn in (("stemstream-osc", self._serve), ("stemstream-telemetry", self._telemetry)):
            thread = threading.Thread(target=fn, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop both threads and close the socket."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2.0)
        self._sock.close()

    def __enter__(self) -> "OscServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def handle_datagram(self, datagram: bytes, sender: Address) -> list[bytes]:
        """Process one datagram from ``sender``; returns the encoded replies (also sent)."""
        try:
            messages = decode(datagram)
        except MalformedDatagram as exc:
            self.counters.malformed += 1
            self.counters.last_error = str(exc)
            return []
        out: list[bytes] = []
        for address, args in messages:
            replies, server_args = self.routes.dispatch(address, args)
            if server_args is not None:
                self._subscription(address, server_args, sender)
            out.extend(encode_message(a, v) for a, v in replies)
        for dgram in out:
            self._send(dgram, sender)
        return out

    def _subscription(self, address: str, args: list[Any], sender: Address) -> None:
        dest = (sender[0], args[0] if args else sender[1])
        if address.endswith("/unsubscribe"):
            if dest in self.subscribers:
                self.subscribers.remove(dest)
        elif dest not in self.subscribers:
            if len(self.subscribers) >= MAX_SUBSCRIBERS:
                self.counters.out_of_range += 1
                self.counters.accepted -= 1
                self.counters.last_error = f"subscribe: already {MAX_SUBSCRIBERS} subscribers"
                return
            self.subscribers.append(dest)

    def _send(self, dgram: bytes, dest: Address) -> None:
        try:
            self._sock.sendto(dgram, dest)
        except OSError:
            pass  # an unreachable subscriber must not stop anything

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                datagram, sender = self._sock.recvfrom(65536)
            except (socket.timeout, BlockingIOError):
                continue
            except OSError:
                if self._stop.is_set():
                    return
                continue
            try:
                self.handle_datagram(datagram, sender)
            except Exception as exc:  # pragma: no cover - defensive: never die
                self.counters.handler_errors += 1
                self.counters.last_error = f"{type(exc).__name__}: {exc}"

    def _telemetry(self) -> None:
        period = 1.0 / self.telemetry_hz
        due = time.monotonic()
        while True:
            due += period
            now = time.monotonic()
            if due < now - period:  # fell far behind (suspended): do not burst to catch up
                due = now
            if self._stop.wait(max(0.0, due - now)):
                return
            if not self.subscribers:
                continue
            try:
                dgram = encode_bundle(telemetry_messages(self.target, self.meters))
            except Exception as exc:  # pragma: no cover - defensive
                self.counters.last_error = f"telemetry: {type(exc).__name__}: {exc}"
                continue
            for dest in list(self.subscribers):
                self._send(dgram, dest)
            self.telemetry_frames += 1
