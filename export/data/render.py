"""Render a ``StemScore`` to audio with FluidSynth, sample-accurately driven from Python.

Each stem gets its own synthesiser (so reverb and chorus belong to that stem) that shares
the process-wide SoundFont sample cache; events are applied between ``fluid_synth_write_float``
calls (FluidSynth quantises them to its 64-sample block, 1.45 ms at 44.1 kHz).
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np

from stemstream.realtime.errors import AudioInputError, require

DEFAULT_SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"

_HOLDER: dict[str, object] = {}


def _fluidsynth():
    return require("fluidsynth", "data")


def _write_float():
    fs = _fluidsynth()
    fn = fs._fl.fluid_synth_write_float
    fn.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                   ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


def fluidsynth_version() -> str:
    """The FluidSynth library version, e.g. ``"2.3.1"``."""
    fs = _fluidsynth()
    major, minor, micro = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
    fn = fs._fl.fluid_version
    fn.argtypes = [ctypes.POINTER(ctypes.c_int)] * 3
    fn(ctypes.byref(major), ctypes.byref(minor), ctypes.byref(micro))
    return f"{major.value}.{minor.value}.{micro.value}"


def check_soundfont_file(soundfont: str) -> None:
    """Raise ``AudioInputError`` unless ``soundfont`` looks like a readable SoundFont."""
    path = Path(soundfont)
    if not path.is_file() or path.stat().st_size < 1024:
        raise AudioInputError(f"soundfont={soundfont!r}: expected a readable SoundFont file (.sf2 or .sf3) "
                              "(Debian: apt install fluid-soundfont-gm)")


def _check_soundfont(soundfont: str) -> None:
    check_soundfont_file(soundfont)
    if soundfont not in _HOLDER:
        # Keeps the SoundFont's samples in FluidSynth's cache so later synths load it instantly.
        fs = _fluidsynth()
        holder = fs.Synth(gain=0.2, samplerate=44100.0)
        if holder.sfload(soundfont) < 0:
            raise AudioInputError(f"soundfont={soundfont!r}: FluidSynth could not load it")
        _HOLDER[soundfont] = holder


def preset_name(bank: int, program: int, soundfont: str = DEFAULT_SOUNDFONT) -> str:
    """The SoundFont's name for a bank/program, e.g. ``"Fingered Bass"`` ("" if absent)."""
    _check_soundfont(soundfont)
    holder = _HOLDER[soundfont]
    name = holder.sfpreset_name(1, bank, program)  # the holder's only SoundFont has id 1
    return name or ""


def available_preset(bank: int, program: int, soundfont: str = DEFAULT_SOUNDFONT) -> tuple[int, int]:
    """``(bank, program)`` if the SoundFont has that preset, else the nearest General MIDI one it
    has: the standard kit ``(128, 0)`` for a missing drum kit, bank 0 of the same program for a
    missing variation, else ``(bank, 0)``. (Small GM fonts such as TimGM6mb have one drum kit;
    FluidSynth would otherwise play nothing.)"""
    if preset_name(bank, program, soundfont):
        return bank, program
    for candidate in ((128, 0),) if bank == 128 else ((0, program), (0, 0)):
        if preset_name(*candidate, soundfont):
            return candidate
    return bank, program


_DEFAULT_REVERB = (0.2, 0.0, 0.5, 0.9)
_DEFAULT_CHORUS = (3, 2.0, 0.3, 8.0, 0)
_FLUSH_BLOCK = 4096
_FLUSH_MAX_SECONDS = 20.0


class SongSynth:
    """One synthesiser for the stems of one song, rendered one after another.

    A fresh synthesiser per song keeps songs independent of each other (so they render
    identically in any order or process); loading the cached SoundFont once per song
    instead of once per stem saves ~70 ms a stem. Between stems the synthesiser is reset
    and its reverb/chorus tails are rendered out to silence, so no stem bleeds into the next.
    """

    def __init__(self, sample_rate: int = 44100, gain: float = 0.4,
                 soundfont: str = DEFAULT_SOUNDFONT) -> None:
        _check_soundfont(soundfont)
        fs = _fluidsynth()
        self.soundfont = soundfont
        self.sample_rate = int(sample_rate)
        self.synth = fs.Synth(gain=gain, samplerate=float(sample_rate), **{"synth.polyphony": 96})
        self.sfid = self.synth.sfload(soundfont)
        if self.sfid < 0:
            self.synth.delete()
            raise AudioInputError(f"soundfont={soundfont!r}: FluidSynth could not load it")
        self._write = _write_float()
        self._scratch = np.zeros((_FLUSH_BLOCK, 2), dtype=np.float32)

    def close(self) -> None:
        self.synth.delete()

    def __enter__(self) -> "SongSynth":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _render_into(self, out: np.ndarray) -> None:
        ptr = out.ctypes.data
        self._write(self.synth.synth, out.shape[0], ptr, 0, 2, ptr, 1, 2)

    def _flush(self, rendered: int) -> None:
        fs = _fluidsynth()
        align = (-rendered) % 64  # start the next stem on FluidSynth's 64-sample block boundary
        if align:
            self._render_into(self._scratch[:align])
        fs._fl.fluid_synth_system_reset.argtypes = [ctypes.c_void_p]
        fs._fl.fluid_synth_system_reset(self.synth.synth)
        self.synth.set_reverb(*_DEFAULT_REVERB)
        for _ in range(int(_FLUSH_MAX_SECONDS * self.sample_rate / _FLUSH_BLOCK)):
            self._render_into(self._scratch)
            if float(np.abs(self._scratch).max()) < 1e-7:  # -140 dB: silent
                break

    def render(self, score, seconds: float, reverb: dict | None = None,
               chorus: dict | None = None) -> np.ndarray:
        """Render one stem.

        Args:
            score: an ``stemstream.export.data.composer.StemScore`` (times in seconds, MIDI pitches).
            seconds: output length in seconds.
            reverb, chorus: FluidSynth reverb (roomsize, damping, width, level) and chorus
                (nr, level, speed, depth) parameters.

        Returns:
            ``(2, round(seconds * sample_rate))`` float32 audio.
        """
        synth, sr = self.synth, self.sample_rate
        chan = 9 if score.bank == 128 else 0
        synth.program_select(chan, self.sfid, *available_preset(score.bank, score.program, self.soundfont))
        synth.set_reverb(*(reverb[k] for k in ("roomsize", "damping", "width", "level")) if reverb
                         else _DEFAULT_REVERB)
        if chorus:
            synth.set_chorus(chorus["nr"], chorus["level"], chorus["speed"], chorus["depth"], 0)
        else:
            synth.set_chorus(*_DEFAULT_CHORUS)
        synth.cc(chan, 7, 100)
        synth.cc(chan, 10, int(score.pan))
        synth.cc(chan, 91, int(score.reverb_send))
        synth.cc(chan, 93, int(score.chorus_send))
        total = int(round(seconds * sr))
        events: list[tuple[int, int, int, int]] = []  # (sample, kind, a, b); kind 0=off, 1=cc, 2=on
        for on, off, pitch, vel in score.notes:
            events.append((int(on * sr), 2, pitch, vel))
            events.append((int(off * sr), 0, pitch, 0))
        for t, cc, val in score.controls:
            events.append((int(t * sr), 1, cc, val))
        events.sort()
        out = np.zeros((total, 2), dtype=np.float32)
        pos = 0
        try:
            for sample, kind, a, b in events:
                sample = min(sample, total)
                if sample > pos:
                    self._render_into(out[pos:sample])
                    pos = sample
                if kind == 2:
                    synth.noteon(chan, a, b)
                elif kind == 0:
                    synth.noteoff(chan, a)
                else:
                    synth.cc(chan, a, b)
            if pos < total:
                self._render_into(out[pos:total])
        finally:
            self._flush(pos)
        return np.ascontiguousarray(out.T)


def render_score(score, seconds: float, sample_rate: int = 44100, reverb: dict | None = None,
                 chorus: dict | None = None, soundfont: str = DEFAULT_SOUNDFONT,
                 gain: float = 0.4) -> np.ndarray:
    """Render one stem on a fresh synthesiser; ``(2, samples)`` float32 (see ``SongSynth``)."""
    with SongSynth(sample_rate, gain, soundfont) as synth:
        return synth.render(score, seconds, reverb, chorus)
