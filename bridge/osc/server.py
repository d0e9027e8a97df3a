"""The OSC control server: one UDP socket, one receiving thread, one telemetry thread.

Defaults: bind ``127.0.0.1`` (loopback only; pass ``host="0.0.0.0"`` to accept a
controller on the network), port :data:`DEFAULT_PORT` (9000, TouchOSC's habit; pass 0 for
any free port). Replies to queries go back to the sender's address and port from the same
socket. Telemetry goes to subscribers (at most :data:`MAX_SUBSCRIBERS`, always on the
sender's own host) as one OSC bundle per frame at ``telemetry_hz``.

Subscriptions are leases: ``/stemstream/subscribe`` leases telemetry for ``lease_s`` seconds
(:data:`LEASE_S` by default) and is answered with ``port i, lease_s f``; sending it again renews
the lease from then on. A controller that stops renewing (crashed, unplugged) stops receiving
telemetry when its lease ends and frees its slot, so dead subscribers cannot lock a live one out.

Nothing that arrives can crash the server: every datagram is decoded, validated and
dispatched inside one ``try``; failures are counted by reason (``routes.counters``) and answered
to the sender on ``/stemstream/error`` (``address s, reason s, message s``; at most
``error_replies_per_s`` a second, the rest counted as ``unanswered``). Nothing is logged per
datagram. Only validated values reach :class:`~stemstream.bridge.live.controls.StemControls`,
whose arrays the audio side reads.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any, Callable

from stemstream.bridge.osc.codec import MalformedDatagram, decode, encode_bundle, encode_message
from stemstream.bridge.osc.routes import PREFIX, ControlTarget, OscRoutes, Outcome, Refusal
from stemstream.realtime.errors import bad_value

#: Default UDP port stemstream listens on.
DEFAULT_PORT: int = 9000
#: Default bind address (loopback only).
DEFAULT_HOST: str = "127.0.0.1"
#: Telemetry rate in frames per second.
DEFAULT_TELEMETRY_HZ: float = 30.0
#: Most telemetry subscribers at once.
MAX_SUBSCRIBERS: int = 8
#: How long a subscription lasts unless renewed, seconds.
LEASE_S: float = 60.0
#: Most ``/stemstream/error`` replies a second (a burst of as many is allowed).
ERROR_REPLIES_PER_S: float = 200.0

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
        lease_s: how long a subscription lasts unless renewed, seconds.
        error_replies_per_s: most ``/stemstream/error`` replies a second (0: none).
        routes: the session's control layer, shared with its other surfaces (default: a table
            of its own for ``target``).
    """

    def __init__(
        self,
        target: ControlTarget,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        telemetry_hz: float = DEFAULT_TELEMETRY_HZ,
        meters: Callable[[], tuple[Any, Any]] | None = None,
        lease_s: float = LEASE_S,
        error_replies_per_s: float = ERROR_REPLIES_PER_S,
        routes: OscRoutes | None = None,
    ) -> None:
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise bad_value("osc_port", port, "an int in [0, 65535] (0: any free port)")
        if not isinstance(telemetry_hz, (int, float)) or not 1.0 <= telemetry_hz <= 200.0:
            raise bad_value("telemetry_hz", telemetry_hz, "a number in [1, 200]")
        if not isinstance(lease_s, (int, float)) or not 0.05 <= lease_s <= 86400.0:
            raise bad_value("lease_s", lease_s, "a number of seconds in [0.05, 86400]")
        if not isinstance(error_replies_per_s, (int, float)) or not 0.0 <= error_replies_per_s <= 1e6:
            raise bad_value("error_replies_per_s", error_replies_per_s, "a number in [0, 1e6]")
        self.target = target
        self.routes = routes if routes is not None else OscRoutes(target)
        self.telemetry_hz = float(telemetry_hz)
        self.meters = meters
        self.lease_s = float(lease_s)
        self.error_replies_per_s = float(error_replies_per_s)
        self._error_tokens = self.error_replies_per_s
        self._error_clock = time.monotonic()
        self._leases: dict[Address, float] = {}  # subscriber -> monotonic time its lease ends
        self._lease_lock = threading.Lock()
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

    @property
    def subscribers(self) -> list[Address]:
        """The subscribers whose lease has not ended, ``(host, port)``."""
        now = time.monotonic()
        with self._lease_lock:
            return [dest for dest, end in self._leases.items() if end > now]

    def lease_left(self, dest: Address) -> float:
        """Seconds left on ``dest``'s lease (0 when it has none)."""
        with self._lease_lock:
            return max(0.0, self._leases.get(dest, 0.0) - time.monotonic())

    def handle_datagram(self, datagram: bytes, sender: Address) -> list[bytes]:
        """Process one datagram from ``sender``; returns the encoded replies (also sent):
        answers to queries, and an ``/stemstream/error`` for each refusal."""
        try:
            messages = decode(datagram)
        except MalformedDatagram as exc:
            messages = []
            replies = self._answer([self.counters.refuse("", "malformed", str(exc))])
        else:
            replies = []
        refusals: list[Refusal] = []
        for address, args in messages:
            outcome = self.routes.dispatch(address, args)
            if outcome.refusal is None and outcome.server_args is not None:
                outcome = self._subscription(address, outcome.server_args, sender, outcome)
            if outcome.refusal is not None:
                refusals.append(outcome.refusal)
            replies.extend(encode_message(a, v) for a, v in outcome.replies)
        replies.extend(self._answer(refusals))
        for dgram in replies:
            self._send(dgram, sender)
        return replies

    def _answer(self, refusals: list[Refusal]) -> list[bytes]:
        """The ``/stemstream/error`` replies for ``refusals`` that the reply rate allows."""
        if not refusals:
            return []
        now = time.monotonic()
        rate = self.error_replies_per_s
        self._error_tokens = min(rate, self._error_tokens + (now - self._error_clock) * rate)
        self._error_clock = now
        out = []
        for refusal in refusals:
            if self._error_tokens >= 1.0:
                self._error_tokens -= 1.0
                address, args = refusal.reply
                out.append(encode_message(address, args))
            else:
                self.counters.unanswered += 1
        return out

    def _subscription(self, address: str, args: list[Any], sender: Address, outcome: Outcome) -> Outcome:
        """Lease, renew or end a subscription; the outcome with its reply or refusal."""
        dest = (sender[0], args[0] if args else sender[1])
        now = time.monotonic()
        with self._lease_lock:
            for other, end in list(self._leases.items()):
                if end <= now:
                    del self._leases[other]
            if address.endswith("/unsubscribe"):
                self._leases.pop(dest, None)
                return outcome
            if dest not in self._leases and len(self._leases) >= MAX_SUBSCRIBERS:
                self.counters.accepted -= 1
                osc = self.counters.surfaces.setdefault("osc", [0, 0])
                osc[0], osc[1] = osc[0] - 1, osc[1] + 1
                refusal = self.counters.refuse(address, "subscribers_full", f"port={dest[1]!r}: expected a free "
                                               f"subscriber slot (all {MAX_SUBSCRIBERS} leased; leases end after "
                                               f"{self.lease_s:g} s unless renewed)")
                return Outcome([], refusal=refusal)
            self._leases[dest] = now + self.lease_s
        self.counters.replies += 1
        return Outcome([(f"{PREFIX}/subscribe", (int(dest[1]), self.lease_s))])

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
                self.counters.refuse("", "handler_errors", f"{type(exc).__name__}: {exc}")

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
            subscribers = self.subscribers  # leases still running
            if not subscribers:
                continue
            try:
                dgram = encode_bundle(telemetry_messages(self.target, self.meters))
            except Exception as exc:  # pragma: no cover - defensive
                self.counters.last_error = f"telemetry: {type(exc).__name__}: {exc}"
                continue
            for dest in subscribers:
                self._send(dgram, dest)
            self.telemetry_frames += 1
