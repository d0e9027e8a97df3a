"""Control surfaces of a live session besides OSC: MIDI (``midi``, ``mapping``, ``alsa``), the
browser page (``web``) and the terminal status (``terminal``), over one status snapshot
(``status``); all apply changes through the control layer, ``stemstream.bridge.osc.routes``."""
