"""MIDI from the ALSA sequencer through python-rtmidi, where both are present (optional).

:func:`open_alsa_input` opens a virtual ALSA sequencer input port named ``stemstream`` (a
controller or ``aconnect`` connects to it) and copies each message into an
:class:`stemstream.bridge.live.events.EventRing` of its own from rtmidi's thread (frame -1: the
sequencer gives no sample time). Without python-rtmidi (``pip install 'stemstream[midi]'``) or
without a sequencer (no ``/dev/snd/seq``: containers, machines without ``snd-seq``) it returns
the reason instead; JACK MIDI works either way.
"""

from __future__ import annotations

import os
from typing import Any

from stemstream.bridge.live.events import EventRing

#: The ALSA sequencer device.
SEQUENCER = "/dev/snd/seq"


class AlsaInput:
    """An open virtual ALSA sequencer input feeding ``ring``; :meth:`close` at the end."""

    def __init__(self, midi_in: Any, ring: EventRing, port_name: str) -> None:
        self.midi_in = midi_in
        self.ring = ring
        self.port_name = port_name
        midi_in.ignore_types(sysex=True, timing=True, active_sense=True)
        midi_in.set_callback(self._on_message)

    def _on_message(self, event: tuple[list[int], float], data: Any = None) -> None:
        self.ring.push(-1, event[0])

    def close(self) -> None:
        try:
            self.midi_in.cancel_callback()
            self.midi_in.close_port()
        finally:
            self.midi_in.delete()


def open_alsa_input(ring: EventRing, client_name: str = "stemstream") -> tuple[AlsaInput | None, str]:
    """``(input, "")``, or ``(None, why not)`` where python-rtmidi or the ALSA sequencer is missing."""
    try:
        import rtmidi
    except ImportError:
        return None, "python-rtmidi is not installed (pip install 'stemstream[midi]')"
    if not os.path.exists(SEQUENCER):
        return None, f"no ALSA sequencer ({SEQUENCER} is missing)"
    try:
        midi_in = rtmidi.MidiIn(rtmidi.API_LINUX_ALSA, name=client_name)
    except Exception as exc:  # rtmidi raises its own SystemError where /dev/snd/seq is missing
        return None, f"no ALSA sequencer ({str(exc).split('.')[0]})"
    try:
        midi_in.open_virtual_port("midi_in")
    except Exception as exc:  # pragma: no cover - depends on the sequencer
        midi_in.delete()
        return None, f"no ALSA sequencer port ({exc})"
    return AlsaInput(midi_in, ring, f"{client_name}:midi_in"), ""
