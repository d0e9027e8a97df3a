"""The OSC address space of stemstream: one table, with argument validation.

Every route names its argument kinds; :meth:`OscRoutes.dispatch` checks count and types
before any handler runs, handlers validate ranges (raising ``ConfigError``), and only then
does a value reach :class:`~stemstream.bridge.live.controls.StemControls` (and from there the audio side).
Every outcome is counted in :attr:`OscRoutes.counters`; a refused message gives a :class:`Refusal`
(its address, one of the :data:`REFUSALS` reasons and a one-line message) that the server sends
back to the sender on :data:`ERROR_ADDRESS`.

Argument kinds:
    ``float``: an OSC ``f``/``d``/``i``/``h`` (int is a valid number; ``T``/``F`` are not), finite.
    ``flag``: an OSC ``i`` equal to 0 or 1, or ``T``/``F``. Floats are rejected.
    ``str``: an OSC ``s``.
    ``port``: an OSC ``i`` in 1024..65535.
A trailing ``?`` marks an optional argument.

Stem addresses accept OSC address patterns in the stem segment (``*``, ``?``, ``[abc]``),
e.g. ``/stemstream/stem/*/mute 1`` mutes every stem.

This table is the one control layer of a live session: every surface (OSC, MIDI, the browser
page, ``stemstream.bridge.control``) turns what it receives into an address and arguments and
calls :meth:`OscRoutes.dispatch`, which validates and applies it, counts it (per surface too)
and returns the refusal every surface reports the same way. Dispatch is serialised by a lock
(control threads only; the audio side never takes it).
"""

from __future__ import annotations

import fnmatch
import math
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from stemstream.bridge.live.controls import StemControls
from stemstream.bridge.live.processor import EffectsOff
from stemstream.bridge.live.switcher import SwitchInProgress
from stemstream.realtime.errors import ConfigError, StemstreamError

#: Prefix of every stemstream address.
PREFIX = "/stemstream"

#: The control surfaces that dispatch through the table (``surface=`` of :meth:`OscRoutes.dispatch`).
SURFACES: tuple[str, ...] = ("osc", "midi", "web")

#: Where refusals are answered: ``address s, reason s, message s`` (to the sender).
ERROR_ADDRESS = f"{PREFIX}/error"

#: Why a datagram or message is refused, in the order ``/stemstream/get/stats`` lists the counts.
REFUSALS: tuple[str, ...] = (
    "malformed",          # not an OSC 1.0 packet (the address is then "")
    "unknown_address",    # no such route (an unknown stem is an unknown address)
    "wrong_type",         # wrong number or types of arguments
    "out_of_range",       # a value outside its range
    "unknown_model",      # /stemstream/model: no such model here, or not of this session's stems
    "no_effects",         # effects asked of a session started without --effects
    "busy",               # /stemstream/model while a switch is still in progress
    "subscribers_full",   # /stemstream/subscribe with every subscriber slot leased
    "handler_errors",     # a fault of ours while applying a valid message
)

Reply = tuple[str, tuple[Any, ...]]


class ControlTarget(Protocol):
    """What the OSC side controls and asks about (``stemstream.bridge.live.processor.LiveProcessor`` implements it)."""

    controls: StemControls

    @property
    def stems(self) -> tuple[str, ...]: ...

    @property
    def model_name(self) -> str: ...

    @property
    def latency_samples(self) -> int: ...

    @property
    def sample_rate(self) -> int: ...

    def request_model(self, name: str) -> None: ...

    def set_effects(self, stem: str, spec_json: str) -> None: ...

    def set_effect_param(self, stem: str, index: int, param: str, value: float) -> None: ...

    def effects_json(self, stem: str) -> str: ...

    def stats(self) -> dict[str, float]: ...


class WrongType(StemstreamError):
    """An OSC message has the wrong number or types of arguments."""


class UnknownAddress(StemstreamError):
    """An address no route has (raised where a pattern-free match cannot tell, e.g. fx parameters)."""


@dataclass(frozen=True)
class Route:
    """One address: argument kinds, handler ``handler(target, *args) -> replies``, description,
    and the reason a ``ConfigError`` from the handler is refused with (:data:`REFUSALS`)."""

    address: str
    kinds: tuple[str, ...]
    handler: Callable[..., list[Reply] | None]
    doc: str
    refusal: str = "out_of_range"


@dataclass(frozen=True)
class Refusal:
    """A refused message: its ``address`` ("" for a malformed datagram), the ``reason`` (one of
    :data:`REFUSALS`) and a one-line ``message`` naming the value and what was expected."""

    address: str
    reason: str
    message: str

    @property
    def reply(self) -> Reply:
        """The ``/stemstream/error`` reply to the sender."""
        return (ERROR_ADDRESS, (self.address, self.reason, self.message))


@dataclass
class Counters:
    """What happened to incoming messages (read by telemetry and summaries): one count per
    refusal reason (:data:`REFUSALS`), accepted messages, replies sent, and refusals left
    unanswered because error replies were over their rate (``stemstream.bridge.osc.server``)."""

    accepted: int = 0
    replies: int = 0
    malformed: int = 0
    unknown_address: int = 0
    wrong_type: int = 0
    out_of_range: int = 0
    unknown_model: int = 0
    no_effects: int = 0
    busy: int = 0
    subscribers_full: int = 0
    handler_errors: int = 0
    unanswered: int = 0
    last_error: str = ""
    #: ``{surface: [accepted, refused]}`` for each of :data:`SURFACES` that dispatched anything
    surfaces: dict[str, list[int]] = field(default_factory=dict)

    @property
    def rejected(self) -> int:
        """Messages or datagrams refused for any reason."""
        return sum(getattr(self, reason) for reason in REFUSALS)

    def by_reason(self) -> dict[str, int]:
        """``{reason: count}`` for every reason of :data:`REFUSALS`, in that order."""
        return {reason: int(getattr(self, reason)) for reason in REFUSALS}

    def refuse(self, address: str, reason: str, message: str) -> Refusal:
        """Count a refusal and return it (the server answers it on :data:`ERROR_ADDRESS`)."""
        assert reason in REFUSALS, reason
        setattr(self, reason, getattr(self, reason) + 1)
        self.last_error = f"{address}: {message}" if address else message
        return Refusal(address, reason, message)


@dataclass(frozen=True)
class Outcome:
    """What :meth:`OscRoutes.dispatch` made of one message: the ``replies`` to send, the
    validated arguments of a server-handled route (``server_args``, else None) and the
    ``refusal`` (None when accepted)."""

    replies: list[Reply]
    server_args: list[Any] | None = None
    refusal: Refusal | None = None


def _check(kind: str, value: Any) -> Any:
    base = kind.rstrip("?")
    if base == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise WrongType(f"{value!r}: expected a finite number (OSC f/i)")
        return float(value)
    if base == "flag":
        if isinstance(value, bool):
            return value
        if isinstance(value, int):
            if value not in (0, 1):
                raise ConfigError(f"{value!r}: expected 0 or 1")
            return bool(value)
        raise WrongType(f"{value!r}: expected an int 0/1 or T/F")
    if base == "str":
        if not isinstance(value, str):
            raise WrongType(f"{value!r}: expected a string (OSC s)")
        return value
    if base == "port":
        if isinstance(value, bool) or not isinstance(value, int):
            raise WrongType(f"{value!r}: expected an int port (OSC i)")
        if not 1024 <= value <= 65535:
            raise ConfigError(f"port={value!r}: expected 1024..65535")
        return value
    raise AssertionError(f"unknown argument kind {kind!r}")


def _validate(route: Route, args: tuple[Any, ...]) -> list[Any]:
    required = sum(1 for k in route.kinds if not k.endswith("?"))
    if not required <= len(args) <= len(route.kinds):
        raise WrongType(f"{route.address}: {len(args)} arguments, expected {route.kinds}")
    return [_check(k, v) for k, v in zip(route.kinds, args)]


class OscRoutes:
    """The address table for one set of stems, and the dispatcher over it."""

    def __init__(self, target: ControlTarget) -> None:
        self.target = target
        self.counters = Counters()
        self.routes: dict[str, Route] = {}
        self._lock = threading.Lock()
        for stem in target.stems:
            base = f"{PREFIX}/stem/{stem}"
            self._add(f"{base}/gain", ("float",), lambda t, v, s=stem: t.controls.set_gain(s, v),
                      "linear gain 0..4 (ramped)")
            self._add(f"{base}/gain_db", ("float",), lambda t, v, s=stem: t.controls.set_gain_db(s, v),
                      "gain in dB, -120..+12.04 (ramped)")
            self._add(f"{base}/mute", ("flag",), lambda t, v, s=stem: t.controls.set_mute(s, v),
                      "1 mutes, 0 unmutes (ramped)")
            self._add(f"{base}/solo", ("flag",), lambda t, v, s=stem: t.controls.set_solo(s, v),
                      "1 solos; with any solo on only soloed stems are heard")
            self._add(f"{base}/fx", ("str",), lambda t, v, s=stem: t.set_effects(s, v),
                      "replace the stem's effect chain (JSON list, '[]' clears)")
        self._add(f"{PREFIX}/bypass", ("flag",), lambda t, v: t.controls.set_bypass(v),
                  "1: full input mix (latency-aligned) instead of stems, crossfaded")
        self._add(f"{PREFIX}/acapella", ("flag",), lambda t, v: t.controls.set_acapella(v),
                  "one touch: 1 mutes every stem but vocals (solos cleared), 0 unmutes every stem",
                  refusal="unknown_address")
        self._add(f"{PREFIX}/instrumental", ("flag",), lambda t, v: t.controls.set_instrumental(v),
                  "one touch: 1 mutes vocals only (solos cleared), 0 unmutes every stem", refusal="unknown_address")
        self._add(f"{PREFIX}/model", ("str",), lambda t, v: t.request_model(v),
                  "switch model; the new one warms up, then a crossfade (no dropout)", refusal="unknown_model")
        self._add(f"{PREFIX}/get/latency", (), _get_latency, "reply: samples i, ms f")
        self._add(f"{PREFIX}/get/stems", (), lambda t: [(f"{PREFIX}/get/stems", tuple(t.stems))],
                  "reply: one s per stem, in output order")
        self._add(f"{PREFIX}/get/model", (), lambda t: [(f"{PREFIX}/get/model", (t.model_name,))],
                  "reply: model name s")
        self._add(f"{PREFIX}/get/mixer", (), _get_mixer,
                  "reply: stem s, gain f, mute i, solo i for every stem in output order, then bypass i")
        self._add(f"{PREFIX}/get/stats", (), self._get_stats,
                  "reply: deadline_misses i, xruns i, cpu_load f, osc_rejected i, then reason s, count i "
                  "for every refusal reason")
        self._add(f"{PREFIX}/get/fx", ("str",), lambda t, s: [(f"{PREFIX}/get/fx", (s, t.effects_json(s)))],
                  "arg: stem s; reply: stem s, chain JSON s")
        # subscribe / unsubscribe are handled by the server (they need the sender address).
        self._add(f"{PREFIX}/subscribe", ("port?",), _server_only,
                  "lease telemetry at 30 Hz to the sender's host, at port (default: sender's port); "
                  "reply: port i, lease s f; send again to renew")
        self._add(f"{PREFIX}/unsubscribe", ("port?",), _server_only, "stop telemetry to that host/port")

    def _add(self, address: str, kinds: tuple[str, ...], handler: Callable[..., Any], doc: str,
             refusal: str = "out_of_range") -> None:
        self.routes[address] = Route(address, kinds, handler, doc, refusal)

    def match(self, address: str) -> list[Route]:
        """Routes matching ``address`` (exact, or an OSC pattern in the stem segment)."""
        route = self.routes.get(address)
        if route is not None:
            return [route]
        if any(ch in address for ch in "*?[") and address.startswith(f"{PREFIX}/stem/"):
            return [r for a, r in self.routes.items() if fnmatch.fnmatchcase(a, address)]
        return []

    def dispatch(self, address: str, args: tuple[Any, ...], surface: str = "osc") -> Outcome:
        """Validate and run one message from ``surface`` (one of :data:`SURFACES`); never raises
        for bad input (refusals are counted and returned in the :class:`Outcome`). The routes the
        OSC server handles itself (subscriptions) are unknown to the other surfaces."""
        assert surface in SURFACES, surface
        with self._lock:
            outcome = self._dispatch(address, args, surface)
            counts = self.counters.surfaces.setdefault(surface, [0, 0])
            counts[0 if outcome.refusal is None else 1] += 1
        return outcome

    def _dispatch(self, address: str, args: tuple[Any, ...], surface: str) -> Outcome:
        c = self.counters
        refusal = "out_of_range"
        try:
            if self._fx_param(address, args):
                c.accepted += 1
                return Outcome([])
            routes = self.match(address)
            if not routes:
                return Outcome([], refusal=c.refuse(address, "unknown_address", f"unknown address {address!r}"))
            replies: list[Reply] = []
            server_args: list[Any] | None = None
            for route in routes:
                if route.handler is _server_only and surface != "osc":
                    raise UnknownAddress(f"{address}: only over OSC (it needs the sender's address)")
                values = _validate(route, args)
                if route.handler is _server_only:
                    server_args = values
                    continue
                refusal = route.refusal
                replies.extend(route.handler(self.target, *values) or [])
            c.accepted += 1
            c.replies += len(replies)
            return Outcome(replies, server_args)
        except WrongType as exc:
            return Outcome([], refusal=c.refuse(address, "wrong_type", str(exc)))
        except UnknownAddress as exc:
            return Outcome([], refusal=c.refuse(address, "unknown_address", str(exc)))
        except EffectsOff as exc:
            return Outcome([], refusal=c.refuse(address, "no_effects", str(exc)))
        except SwitchInProgress as exc:
            return Outcome([], refusal=c.refuse(address, "busy", str(exc)))
        except ConfigError as exc:
            return Outcome([], refusal=c.refuse(address, refusal, str(exc)))
        except Exception as exc:  # a handler bug must not take the server down
            return Outcome([], refusal=c.refuse(address, "handler_errors", f"{type(exc).__name__}: {exc}"))

    def _get_stats(self, t: ControlTarget) -> list[Reply]:
        s = t.stats()
        head = (int(s.get("deadline_misses", 0)), int(s.get("xruns", 0)), float(s.get("cpu_load", 0.0)),
                int(self.counters.rejected))
        pairs = tuple(v for reason, n in self.counters.by_reason().items() for v in (reason, n))
        return [(f"{PREFIX}/get/stats", head + pairs)]

    def _fx_param(self, address: str, args: tuple[Any, ...]) -> bool:
        """``/stemstream/stem/<stem>/fx/<index>/<param> f``: True when applied, False if not such an address."""
        parts = address.split("/")
        # ['', 'stemstream', 'stem', <stem>, 'fx', <index>, <param>]
        if len(parts) != 7 or parts[1] != PREFIX[1:] or parts[2] != "stem" or parts[4] != "fx":
            return False
        stem, index, param = parts[3], parts[5], parts[6]
        if stem not in self.target.stems:
            raise UnknownAddress(f"stem={stem!r}: expected one of {list(self.target.stems)}")
        if not index.isdigit():
            raise ConfigError(f"index={index!r}: expected an effect position 0, 1, ...")
        if len(args) != 1:
            raise WrongType(f"{len(args)} arguments, expected one float")
        value = _check("float", args[0])
        self.target.set_effect_param(stem, int(index), param, value)
        return True

    def table(self) -> list[tuple[str, str, str]]:
        """``(address, argument kinds, description)`` rows, for documentation."""
        rows = [(r.address, " ".join(r.kinds) or "-", r.doc) for r in self.routes.values()]
        rows.append((f"{PREFIX}/stem/<stem>/fx/<index>/<param>", "float",
                     "set a parameter of effect <index> in the stem's chain"))
        return rows


def _server_only(target: ControlTarget, *args: Any) -> None:
    return None


def _get_mixer(t: ControlTarget) -> list[Reply]:
    ctl = t.controls
    values: tuple[Any, ...] = ()
    for i, stem in enumerate(t.stems):
        values += (stem, float(ctl.gain[i]), int(ctl.mute[i] != 0.0), int(ctl.solo[i] != 0.0))
    return [(f"{PREFIX}/get/mixer", values + (int(ctl.bypass[0] != 0.0),))]


def _get_latency(t: ControlTarget) -> list[Reply]:
    samples = int(t.latency_samples)
    return [(f"{PREFIX}/get/latency", (samples, 1000.0 * samples / t.sample_rate))]
