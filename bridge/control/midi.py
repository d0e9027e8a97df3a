"""MIDI control: controller messages applied through the session's control layer, and MIDI learn.

Where the messages come from: the JACK MIDI input port ``stemstream:midi_in`` (the live session's
own JACK client; its process callback copies each channel message into a preallocated
:class:`stemstream.bridge.live.events.EventRing` and wakes the control thread, without
allocating: ``stemstream.bridge.hosts.jack_midi``), and the ALSA sequencer where python-rtmidi and
``/dev/snd/seq`` are present (``stemstream.bridge.control.alsa``, a ring of its own). The
control thread of :class:`MidiControl` drains the rings and turns each message into an address and
arguments of the control layer (:meth:`stemstream.bridge.osc.routes.OscRoutes.dispatch`, surface
``"midi"``) through the mapping (``stemstream.bridge.control.mapping``): the same validation, the
same refusals, counted with OSC's. A refused message is reported in one line (at most one a
second) and counted.

MIDI learn (:class:`MidiLearn`): the session prompts for one control after another (each stem's
gain, then each stem's mute and solo, then acapella and instrumental); the next control moved or
pressed that is not mapped yet is mapped to it and the file is written at once, so stopping at
any time leaves a valid mapping. Touching a control that is already mapped (after a pause of
:data:`FRESH_TOUCH_S`) skips the prompt.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable

from stemstream.bridge.control.mapping import PRESS_THRESHOLD, Binding, MidiMap, empty_map, load_map, parse_map
from stemstream.bridge.live.controls import VOCALS
from stemstream.bridge.live.events import DATA1, DATA2, FRAME, STATUS, EventRing
from stemstream.bridge.osc.routes import OscRoutes, Refusal

#: Seconds between two events of a mapped control that make the second a new touch (MIDI learn skips).
FRESH_TOUCH_S: float = 0.75
#: Most refusal lines a second.
REFUSAL_LINES_PER_S: float = 1.0


def message_kind(status: int, data1: int, data2: int) -> tuple[str, int, int, bool | None] | None:
    """``(kind, channel 1-16, number, pressed)`` of a channel message: ``("cc", ch, cc, value >= 64)``
    or ``("note", ch, note, True/False)`` (note-on with velocity 0 is a release); None for others."""
    kind, channel = status & 0xF0, (status & 0x0F) + 1
    if kind == 0xB0:
        return ("cc", channel, data1, data2 >= PRESS_THRESHOLD)
    if kind == 0x90:
        return ("note", channel, data1, data2 > 0)
    if kind == 0x80:
        return ("note", channel, data1, False)
    return None


class MidiLearn:
    """Builds a mapping file by moving controls (see the module docstring).

    Args:
        path: the file written after every learned control (read first if it exists: learning
            goes on where it stopped).
        stems: the session's stems.
    """

    def __init__(self, path: str | Path, stems: tuple[str, ...]) -> None:
        self.path = Path(path)
        self.stems = tuple(stems)
        self.map = load_map(self.path, self.stems) if self.path.is_file() else empty_map("learned")
        targets: list[tuple[str, str | None]] = [("gain", s) for s in stems]
        targets += [(c, s) for c in ("mute", "solo") for s in stems]
        if VOCALS in stems:
            targets += [("acapella", None), ("instrumental", None)]
        done = {(b.control, b.stem) for b in self.map.bindings}
        self.targets = [t for t in targets if t not in done]
        self._last_seen: dict[tuple[str, int | None, int], float] = {}

    @property
    def done(self) -> bool:
        return not self.targets

    def prompt(self) -> str:
        """What to do next, one line."""
        if self.done:
            return f"MIDI learn: done, {len(self.map.bindings)} controls in {self.path}"
        control, stem = self.targets[0]
        what = f"{stem} {control}" if stem else control
        kind = "move the fader or knob" if control == "gain" else "press the button"
        return (f"MIDI learn: {kind} for {what} ({len(self.targets)} to go; touch a learned control to skip; "
                f"written to {self.path})")

    def offer(self, kind: str, channel: int, number: int, pressed: bool | None, now: float) -> str | None:
        """One message seen; returns a line to show when it learned or skipped something."""
        key = (kind, channel, number)
        last = self._last_seen.get(key)
        self._last_seen[key] = now
        if self.done:
            return None
        mapped = any(b.kind == kind and b.number == number and b.channel in (None, channel) for b in self.map.bindings)
        control, stem = self.targets[0]
        if mapped:
            if (last is None or now - last > FRESH_TOUCH_S) and (kind == "cc" or pressed):
                self.targets.pop(0)
                return f"MIDI learn: skipped {stem + ' ' if stem else ''}{control}. {self.prompt()}"
            return None
        if control == "gain" and kind != "cc":
            return None  # a button cannot be a fader: wait for a CC
        if kind == "note" and not pressed:
            return None
        binding = Binding(kind, number, control, channel, stem)
        self.map = parse_map({"name": self.map.name, "controls": [b.to_json() for b in self.map.bindings]
                              + [binding.to_json()]}, self.stems, where=str(self.path))
        self.map.save(self.path)
        self.targets.pop(0)
        return f"MIDI learn: {kind} {number} (channel {channel}) -> {stem + ' ' if stem else ''}{control}. {self.prompt()}"


class MidiControl:
    """Applies MIDI messages from event rings through the control layer, on a thread of its own.

    Args:
        routes: the session's control layer (shared with OSC and the web page).
        midi_map: the mapping; ignored with ``learn`` (the learned mapping is used).
        learn: a :class:`MidiLearn` to build the mapping, or None.
        notify: gets one-line messages (learn prompts, refusals at most once a second).
        rings: the event rings to read (more can be added before :meth:`start`).

    Attributes:
        applied: messages that drove a control (accepted by the control layer).
        unmapped: channel messages no binding took.
        last_refusal: the latest refusal (None: none yet).
        last_event_frame: the host frame time of the latest message applied (-1: none or no clock).
    """

    def __init__(self, routes: OscRoutes, midi_map: MidiMap | None = None, learn: MidiLearn | None = None,
                 notify: Callable[[str], None] | None = None, rings: list[EventRing] | None = None) -> None:
        self.routes = routes
        self.learn = learn
        self.map = learn.map if learn is not None else (midi_map or empty_map("none"))
        self.notify = notify or (lambda line: None)
        self.rings: list[EventRing] = list(rings or [])
        self.applied = 0
        self.unmapped = 0
        self.last_refusal: Refusal | None = None
        self.last_event_frame = -1
        self.status_line = learn.prompt() if learn is not None else ""
        self._held: dict[tuple[str, int | None, int], bool] = {}
        self._refusal_clock = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add_ring(self, ring: EventRing) -> EventRing:
        self.rings.append(ring)
        return ring

    def start(self) -> "MidiControl":
        if self.learn is not None:
            self.notify(self.learn.prompt())
        self._thread = threading.Thread(target=self._run, name="stemstream-midi", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for ring in self.rings:
            ring.wakeup.signal()
        if self._thread is not None:
            self._thread.join(timeout=2.0)

    def _run(self) -> None:
        while not self._stop.is_set():
            if len(self.rings) == 1:
                self.rings[0].wait(0.1)  # woken by the audio callback as events arrive
            else:
                time.sleep(0.002)
            for ring in self.rings:
                for event in ring.drain():
                    try:
                        self.handle(int(event[STATUS]), int(event[DATA1]), int(event[DATA2]), int(event[FRAME]))
                    except Exception as exc:  # pragma: no cover - defensive: never die
                        self.notify(f"stemstream live: MIDI: {type(exc).__name__}: {exc}")

    def handle(self, status: int, data1: int, data2: int, frame: int = -1) -> list[Refusal]:
        """Apply one channel message; returns the refusals it met (also counted and reported)."""
        message = message_kind(status, data1, data2)
        if message is None:
            return []
        kind, channel, number, pressed = message
        if self.learn is not None:
            line = self.learn.offer(kind, channel, number, pressed, time.monotonic())
            if line:
                self.map = self.learn.map
                self.status_line = self.learn.prompt()
                self.notify(line)
        bindings = self.map.lookup(kind, channel, number)
        if not bindings:
            self.unmapped += 1
            return []
        refusals = []
        for binding in bindings:
            request = self._request(binding, kind, data2, pressed)
            if request is None:
                continue
            outcome = self.routes.dispatch(request[0], request[1], surface="midi")
            if outcome.refusal is not None:
                refusals.append(outcome.refusal)
                self._refused(outcome.refusal)
            else:
                self.applied += 1
                self.last_event_frame = frame
        return refusals

    def _request(self, b: Binding, kind: str, value: int, pressed: bool | None) -> tuple[str, tuple[Any, ...]] | None:
        """The control layer's ``(address, args)`` for binding ``b`` and this message (None: nothing to do)."""
        if b.continuous:
            return (b.address(), (b.value(value),))
        was = self._held.get(b.key, False)
        self._held[b.key] = bool(pressed)
        if b.control == "model":
            return (b.address(), (b.model,)) if pressed and not was else None
        if b.mode == "momentary":
            return (b.address(), (1 if pressed else 0,)) if bool(pressed) != was else None
        if not pressed or (kind == "cc" and was):  # toggle on the press only (a CC switch: its rising edge)
            return None
        return (b.address(), (0 if self._is_on(b) else 1,))

    def _is_on(self, b: Binding) -> bool:
        ctl = self.routes.target.controls
        if b.control in ("mute", "solo"):
            return bool(getattr(ctl, b.control)[ctl.index(b.stem)] != 0.0)
        if b.control == "bypass":
            return bool(ctl.bypass[0] != 0.0)
        return bool(getattr(ctl, b.control))  # acapella / instrumental

    def _refused(self, refusal: Refusal) -> None:
        self.last_refusal = refusal
        now = time.monotonic()
        if now - self._refusal_clock >= 1.0 / REFUSAL_LINES_PER_S:
            self._refusal_clock = now
            self.notify(f"stemstream live: MIDI refused: {refusal.address}: {refusal.reason}: {refusal.message}")


__all__ = ["FRESH_TOUCH_S", "MidiControl", "MidiLearn", "message_kind"]
