"""Pitched parts of a generated song: bass lines, guitar and piano comping, arpeggios,
melodies and an optional ``other`` part (pads, brass stabs, leads).

Every generator takes a section of a ``SongPlan`` and returns notes
``(step, duration_steps, pitch, velocity, offset_seconds)`` on the song's step grid
(``offset_seconds`` carries strum spreads), plus controller events ``(step, cc, value)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from stemstream.export.data.theory import Chord, close_voicing, guitar_voicing, nearest_pitch, scale_pitches

if TYPE_CHECKING:  # pragma: no cover
    from stemstream.export.data.composer import Section, SongPlan

Note = tuple[float, float, int, int, float]
Control = tuple[float, int, int]

BASS_ROLES = ("roots", "root_fifth", "eighths", "walking", "syncopated", "sparse", "kick")
GUITAR_ROLES = ("strum", "arpeggio", "power", "skank", "lead", "sustain")
PIANO_ROLES = ("block", "arpeggio", "ballad", "melody", "pad")
OTHER_ROLES = ("pad", "stabs", "lead")


def _vel(rng: np.random.Generator, base: float, intensity: float, spread: float = 7.0) -> int:
    return int(np.clip(base * (0.6 + 0.4 * intensity) + rng.normal(0, spread), 15, 127))


def _chord_spans(plan: "SongPlan", section: "Section") -> list[tuple[int, int, Chord]]:
    return section.chords


def bass_part(plan: "SongPlan", section: "Section", role: str, rng: np.random.Generator,
              kicks: list[int]) -> list[Note]:
    """A bass line following the section's chords: ``role`` in ``BASS_ROLES``; ``kicks``
    are the drum groove's kick steps within a bar (for ``role="kick"``)."""
    notes: list[Note] = []
    spb, spbar = plan.steps_per_beat, plan.steps_per_bar
    eighth = spb // 2 if spb == 4 else 2
    lo, hi = 28, 50
    spans = _chord_spans(plan, section)
    prev = 36.0
    for i, (start, length, chord) in enumerate(spans):
        root = nearest_pitch(chord.root, prev if rng.random() < 0.7 else 36, lo, hi)
        fifth = root + 7 if root + 7 <= hi else root - 5
        nxt = spans[i + 1][2] if i + 1 < len(spans) else chord
        nxt_root = nearest_pitch(nxt.root, root, lo, hi)
        prev = root
        onsets: list[tuple[int, float, int]] = []  # (relative step, duration steps, pitch)
        if role == "roots":
            for s in range(0, length, spb):
                onsets.append((s, spb * 0.9, root))
        elif role == "root_fifth":
            for k, s in enumerate(range(0, length, spb * 2)):
                onsets.append((s, spb * 1.8, root if k % 2 == 0 else fifth))
        elif role == "eighths":
            for s in range(0, length, eighth):
                onsets.append((s, eighth * 0.7, root + (12 if rng.random() < 0.08 else 0)))
        elif role == "walking":
            tones = [root, nearest_pitch(chord.tones[1], root + 4, lo, hi + 5),
                     nearest_pitch(chord.tones[2], root + 7, lo, hi + 5)]
            beats = list(range(0, length, spb))
            for k, s in enumerate(beats):
                if k == 0:
                    p = root
                elif k == len(beats) - 1:
                    p = nxt_root + int(rng.choice([-1, 1, -2, 2]))
                else:
                    p = int(rng.choice(tones))
                onsets.append((s, spb * 0.95, p))
        elif role == "syncopated":
            pool = [root, root, root + 12, fifth, root + 10 if chord.name.endswith("7") else fifth]
            for s in range(0, length):
                if s == 0 or (rng.random() < 0.33 and s % 2 == (1 if rng.random() < 0.4 else 0)):
                    dur = float(rng.choice([0.5, 1.0, 2.0]))
                    onsets.append((s, dur, root if s == 0 else int(rng.choice(pool))))
        elif role == "sparse":
            onsets.append((0, length * 0.95, root))
            if length >= spbar and rng.random() < 0.5:
                onsets.append((spbar // 2, spbar * 0.45, fifth))
        else:  # kick-locked
            for bar0 in range(0, length, spbar):
                ks = [k for k in kicks if bar0 + k < length]
                for j, k in enumerate(ks):
                    end = ks[j + 1] if j + 1 < len(ks) else spbar
                    onsets.append((bar0 + k, max(1.0, (end - k) * 0.8), root))
        if role not in ("walking",) and length >= spb and rng.random() < 0.3 and nxt is not chord:
            # Approach note into the next chord.
            s = length - eighth
            onsets = [o for o in onsets if o[0] < s]
            onsets.append((s, eighth * 0.9, nxt_root + int(rng.choice([-1, 1, -2, 2]))))
        for s, dur, p in onsets:
            accent = s % spb == 0
            notes.append((start + s, dur, int(np.clip(p, lo - 4, hi + 7)),
                          _vel(rng, 92 if accent else 80, section.intensity), 0.0))
    return notes


def _strum(voicing: list[int], step: float, dur: float, vel: int, down: bool,
           spread_s: float, rng: np.random.Generator) -> list[Note]:
    order = voicing if down else voicing[::-1]
    out = []
    for k, p in enumerate(order):
        v = int(np.clip(vel - (k * 2 if down else 0) + rng.normal(0, 4), 15, 127))
        out.append((step, dur, p, v, k * spread_s))
    return out


def guitar_part(plan: "SongPlan", section: "Section", role: str, rng: np.random.Generator,
                program: int) -> list[Note]:
    """Guitar: strummed or picked chords, power chords, off-beat skanks, sustained
    chords or a lead melody (``role`` in ``GUITAR_ROLES``)."""
    if role == "lead":
        return melody_part(plan, section, rng, 55, 84, density=0.55)
    notes: list[Note] = []
    spb = plan.steps_per_beat
    eighth = spb // 2 if spb == 4 else 2
    inten = section.intensity
    strum_s = float(rng.uniform(0.006, 0.022))
    pattern = rng.random(64) < 0.6  # which eighths are strummed
    pick = rng.permutation(6)
    for start, length, chord in section.chords:
        voicing = guitar_voicing(chord, rng, power=(role == "power"))
        if role == "strum":
            for s in range(0, length, eighth):
                idx = (s // eighth) % 8
                if s % spb == 0 or pattern[idx]:
                    down = (s // eighth) % 2 == 0
                    nxt = s + eighth
                    while nxt < length and not ((nxt % spb == 0) or pattern[(nxt // eighth) % 8]):
                        nxt += eighth
                    notes += _strum(voicing, start + s, (nxt - s) * 0.95,
                                    _vel(rng, 85 if down else 70, inten), down, strum_s, rng)
        elif role == "arpeggio":
            grid = eighth if rng.random() < 0.7 else max(1, eighth // 2)
            for k, s in enumerate(range(0, length, grid)):
                p = voicing[pick[k % len(pick)] % len(voicing)]
                notes.append((start + s, grid * 2.5, p, _vel(rng, 75, inten), 0.0))
        elif role == "power":
            palm = program in (28,) or rng.random() < 0.5
            grid = eighth if palm else spb * 2
            for s in range(0, length, grid):
                notes += _strum(voicing, start + s, grid * (0.45 if palm else 0.95),
                                _vel(rng, 95, inten), True, 0.004, rng)
        elif role == "skank":
            top = sorted(voicing)[-3:]
            for s in range(0, length, spb):
                for off in ((eighth,) if rng.random() < 0.7 else (eighth, eighth + max(1, eighth // 2))):
                    if s + off < length:
                        notes += _strum(top, start + s + off, max(0.5, eighth * 0.4),
                                        _vel(rng, 80, inten), True, 0.004, rng)
        else:  # sustain
            notes += _strum(voicing, start, length * 0.98, _vel(rng, 78, inten), True,
                            strum_s * 2, rng)
    return notes


def piano_part(plan: "SongPlan", section: "Section", role: str,
               rng: np.random.Generator) -> tuple[list[Note], list[Control]]:
    """Piano: block-chord comping, broken chords, ballad (left-hand bass + right-hand
    chords with sustain pedal), melody over chords or pads (``role`` in ``PIANO_ROLES``)."""
    notes: list[Note] = []
    controls: list[Control] = []
    spb = plan.steps_per_beat
    eighth = spb // 2 if spb == 4 else 2
    inten = section.intensity
    if role == "melody":
        notes += melody_part(plan, section, rng, 64, 88, density=0.6)
    rhythm = [s for s in range(0, plan.steps_per_bar, eighth) if s == 0 or rng.random() < 0.35]
    centre = float(rng.uniform(60, 70))
    for start, length, chord in section.chords:
        rh = close_voicing(chord, centre, 52, 84, notes=int(rng.integers(3, 5)))
        lh = nearest_pitch(chord.root, 40, 33, 52)
        pedal = role in ("ballad", "arpeggio", "pad") and rng.random() < 0.7
        if pedal:
            controls.append((start, 64, 0))
            controls.append((start + 0.3, 64, 127))
        if role == "block":
            onsets = [s for s in range(0, length) if s % plan.steps_per_bar in rhythm]
            for j, s in enumerate(onsets):
                end = onsets[j + 1] if j + 1 < len(onsets) else length
                v = _vel(rng, 80 if s % spb == 0 else 70, inten)
                for p in rh:
                    notes.append((start + s, (end - s) * 0.85, p, v + int(rng.integers(-4, 5)),
                                  float(rng.uniform(0, 0.008))))
            notes.append((start, length * 0.9, lh, _vel(rng, 78, inten), 0.0))
        elif role == "arpeggio":
            grid = eighth if rng.random() < 0.6 else max(1, eighth // 2)
            seq = [lh, lh + 7] + rh + rh[-2:0:-1]
            for k, s in enumerate(range(0, length, grid)):
                notes.append((start + s, grid * 1.5, seq[k % len(seq)], _vel(rng, 72, inten), 0.0))
        elif role == "ballad" or role == "melody":
            notes.append((start, length * 0.95, lh, _vel(rng, 75, inten), 0.0))
            if role == "ballad" or rng.random() < 0.7:
                notes.append((start, length * 0.95, lh + 12 if lh + 12 < rh[0] else lh + 7,
                              _vel(rng, 65, inten), 0.0))
            half = max(spb, length // 2)
            for s in range(0, length, half):
                v = _vel(rng, 70, inten)
                for p in (rh if role == "ballad" else rh[:2]):
                    notes.append((start + s, half * 0.9, p, v, float(rng.uniform(0, 0.01))))
        else:  # pad
            for p in [lh] + rh:
                notes.append((start, length * 0.98, p, _vel(rng, 62, inten), 0.0))
        if pedal:
            controls.append((start + length - 0.2, 64, 0))
    return notes, controls


def other_part(plan: "SongPlan", section: "Section", role: str,
               rng: np.random.Generator) -> list[Note]:
    """An extra instrument for the ``other`` stem: sustained pads, short brass-like stabs,
    or a lead melody (``role`` in ``OTHER_ROLES``)."""
    if role == "lead":
        return melody_part(plan, section, rng, 62, 90, density=0.45)
    notes: list[Note] = []
    spb = plan.steps_per_beat
    eighth = spb // 2 if spb == 4 else 2
    hits = [s for s in range(0, plan.steps_per_bar, eighth) if rng.random() < 0.3] or [0]
    for start, length, chord in section.chords:
        voicing = close_voicing(chord, float(rng.uniform(62, 74)), 50, 86, notes=3)
        if role == "pad":
            for p in voicing:
                notes.append((start, length * 0.99, p, _vel(rng, 70, section.intensity), 0.0))
        else:
            for s in range(0, length):
                if s % plan.steps_per_bar in hits:
                    v = _vel(rng, 90, section.intensity)
                    for p in voicing:
                        notes.append((start + s, eighth * 0.6, p, v, 0.0))
    return notes


def melody_part(plan: "SongPlan", section: "Section", rng: np.random.Generator,
                low: int, high: int, density: float) -> list[Note]:
    """A melody over the section's chords: a one-bar rhythmic motif repeated with
    variation, mostly stepwise motion in the scale, chord tones on strong beats."""
    spb, spbar = plan.steps_per_beat, plan.steps_per_bar
    eighth = spb // 2 if spb == 4 else 2
    scale = scale_pitches(plan.tonic, plan.mode, low, high)
    grid = eighth if rng.random() < 0.6 else max(1, eighth // 2)

    def motif() -> list[int]:
        on = [s for s in range(0, spbar, grid) if rng.random() < density * (1.4 if s % spb == 0 else 0.8)]
        return on or [0]

    rhythm = motif()
    idx = int(np.argmin(np.abs(scale - (low + high) / 2)))
    notes: list[Note] = []
    for bar in range(section.bars):
        if rng.random() < 0.35:
            rhythm = motif()
        if rng.random() < 0.12 and bar % 2 == 1:
            continue  # a breath: a bar of rest
        bar_start = section.start_step + bar * spbar
        for j, s in enumerate(rhythm):
            step = bar_start + s
            end = rhythm[j + 1] if j + 1 < len(rhythm) else spbar
            move = int(rng.choice([-2, -1, -1, 0, 1, 1, 2, 3, -3], p=None))
            idx = int(np.clip(idx + move, 0, len(scale) - 1))
            pitch = int(scale[idx])
            if s % spb == 0:
                chord = plan.chord_at(step)
                pitch = nearest_pitch(min(chord.tones, key=lambda pc: min((pitch - pc) % 12, (pc - pitch) % 12)),
                                      pitch, low, high)
                idx = int(np.argmin(np.abs(scale - pitch)))
            dur = (end - s) * float(rng.uniform(0.6, 0.95))
            notes.append((step, dur, pitch, _vel(rng, 88 if s % spb == 0 else 76, section.intensity), 0.0))
    return notes
