"""Mixer parameters shared between the control side (OSC, CLI) and the audio side.

The handoff is lock-free: the control thread writes *validated* target values into
preallocated ``numpy.float64`` arrays and the audio callback reads them once per block.
A single-element store into a numpy array (``gain[i] = 0.5``) is one C-level write done
while holding the GIL, so the audio side sees either the old or the new value, never a
torn one. The audio side never writes here; it smooths toward the targets itself
(``stemstream.bridge.live.mixer.StemMixer``), so a change arrives as a click-free ramp.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from stemstream.realtime.errors import bad_value

#: Largest linear stem gain accepted (+12.04 dB).
MAX_GAIN: float = 4.0
#: Smallest gain in dB accepted by :meth:`StemControls.set_gain_db` (below: use mute).
MIN_GAIN_DB: float = -120.0
#: The stem that one-touch acapella keeps and one-touch instrumental mutes.
VOCALS: str = "vocals"


class StemControls:
    """Target values of the per-stem mixer controls.

    Attributes:
        stems: stem names, in the engine's output order.
        gain: linear gain per stem, ``(stems,)``, in ``[0, MAX_GAIN]``.
        mute: 1.0 where a stem is muted, ``(stems,)``.
        solo: 1.0 where a stem is soloed, ``(stems,)``; when any stem is soloed only
            soloed stems are heard.
        bypass: ``(1,)``; 1.0 sends the full (latency-aligned) input mix instead of stems.
    """

    def __init__(self, stems: tuple[str, ...]) -> None:
        if not stems or len(set(stems)) != len(stems):
            raise bad_value("stems", stems, "a non-empty tuple of distinct names")
        self.stems = tuple(stems)
        self.gain = np.ones(len(stems), dtype=np.float64)
        self.mute = np.zeros(len(stems), dtype=np.float64)
        self.solo = np.zeros(len(stems), dtype=np.float64)
        self.bypass = np.zeros(1, dtype=np.float64)

    def index(self, stem: str) -> int:
        """Position of ``stem`` in :attr:`stems`; raises ``ConfigError`` if unknown."""
        try:
            return self.stems.index(stem)
        except ValueError:
            raise bad_value("stem", stem, f"one of {list(self.stems)}") from None

    def set_gain(self, stem: str, gain: float) -> None:
        """Set the linear gain of ``stem`` (``0 <= gain <= MAX_GAIN``)."""
        i = self.index(stem)
        if not isinstance(gain, (int, float)) or not math.isfinite(gain) or not 0.0 <= gain <= MAX_GAIN:
            raise bad_value("gain", gain, f"a finite number in [0, {MAX_GAIN}]")
        self.gain[i] = float(gain)

    def set_gain_db(self, stem: str, gain_db: float) -> None:
        """Set the gain of ``stem`` in dB (``MIN_GAIN_DB <= gain_db <= 20*log10(MAX_GAIN)``)."""
        top = 20.0 * math.log10(MAX_GAIN)
        if not isinstance(gain_db, (int, float)) or not math.isfinite(gain_db) or not MIN_GAIN_DB <= gain_db <= top:
            raise bad_value("gain_db", gain_db, f"a finite number in [{MIN_GAIN_DB}, {top:.2f}]")
        self.set_gain(stem, min(MAX_GAIN, 10.0 ** (gain_db / 20.0)))

    def set_mute(self, stem: str, on: bool) -> None:
        """Mute (``True``) or unmute ``stem``."""
        self.mute[self.index(stem)] = 1.0 if _flag("mute", on) else 0.0

    def set_solo(self, stem: str, on: bool) -> None:
        """Solo (``True``) or unsolo ``stem``."""
        self.solo[self.index(stem)] = 1.0 if _flag("solo", on) else 0.0

    def set_bypass(self, on: bool) -> None:
        """Bypass separation (``True``: the full mix is heard)."""
        self.bypass[0] = 1.0 if _flag("bypass", on) else 0.0

    def set_acapella(self, on: bool) -> None:
        """One touch: ``True`` mutes every stem but :data:`VOCALS` (solos cleared); ``False``
        unmutes every stem. Refused (``ConfigError``) in a session without a vocals stem."""
        self._set_heard("acapella", on, lambda stem: stem == VOCALS)

    def set_instrumental(self, on: bool) -> None:
        """One touch: ``True`` mutes :data:`VOCALS` only (solos cleared); ``False`` unmutes every
        stem. Refused (``ConfigError``) in a session without a vocals stem."""
        self._set_heard("instrumental", on, lambda stem: stem != VOCALS)

    def _set_heard(self, name: str, on: bool, heard: Callable[[str], bool]) -> None:
        on = _flag(name, on)
        if VOCALS not in self.stems:
            raise bad_value(name, int(on), f"a session whose stems include {VOCALS!r} (this one: "
                            f"{', '.join(self.stems)})")
        self.solo[:] = 0.0
        for i, stem in enumerate(self.stems):
            self.mute[i] = 0.0 if (heard(stem) or not on) else 1.0

    @property
    def acapella(self) -> bool:
        """Whether exactly the vocals are heard through mutes (what :meth:`set_acapella` sets)."""
        return self._hears(lambda stem: stem == VOCALS)

    @property
    def instrumental(self) -> bool:
        """Whether every stem but the vocals is heard through mutes (what :meth:`set_instrumental` sets)."""
        return self._hears(lambda stem: stem != VOCALS)

    def _hears(self, heard: Callable[[str], bool]) -> bool:
        if VOCALS not in self.stems or self.solo.any():
            return False
        return all(bool(self.mute[i]) != heard(stem) for i, stem in enumerate(self.stems))

    def snapshot(self) -> dict[str, object]:
        """The current targets as plain Python values (for queries and summaries)."""
        return {
            "gain": {s: float(g) for s, g in zip(self.stems, self.gain)},
            "mute": {s: bool(m) for s, m in zip(self.stems, self.mute)},
            "solo": {s: bool(m) for s, m in zip(self.stems, self.solo)},
            "bypass": bool(self.bypass[0]),
            "acapella": self.acapella,
            "instrumental": self.instrumental,
        }


def _flag(name: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise bad_value(name, value, "0 or 1 (int) or a boolean")
