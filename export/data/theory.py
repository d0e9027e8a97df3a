"""Music theory for the song composer: scales, diatonic chords, progressions, voicings.

Pitches are MIDI note numbers (60 = middle C); pitch classes are 0..11 (0 = C).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NOTE_NAMES: tuple[str, ...] = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")

#: Scale intervals (semitones above the tonic) of the modes the composer uses.
MODES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
}

#: Common progressions as 0-based scale degrees (0 = I/i, 4 = V/v ...), per mode family.
PROGRESSIONS: dict[str, tuple[tuple[int, ...], ...]] = {
    "major": (
        (0, 4, 5, 3), (0, 3, 4, 3), (1, 4, 0, 0), (0, 5, 3, 4), (5, 3, 0, 4),
        (0, 3, 0, 4), (0, 0, 3, 4), (0, 2, 3, 4), (3, 4, 0, 5), (0, 5, 1, 4),
        (0, 3, 5, 4), (3, 0, 4, 5),
    ),
    "minor": (
        (0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 6), (0, 3, 6, 2), (0, 5, 3, 4),
        (0, 3, 0, 6), (0, 0, 5, 6), (0, 5, 6, 0), (5, 6, 0, 0), (0, 2, 3, 5),
    ),
    "dorian": ((0, 3, 0, 3), (0, 6, 3, 0), (0, 1, 0, 6), (0, 3, 6, 0)),
    "mixolydian": ((0, 6, 3, 0), (0, 3, 6, 3), (0, 6, 0, 3), (0, 4, 6, 3)),
}


@dataclass(frozen=True)
class Chord:
    """A diatonic chord.

    Attributes:
        root: pitch class of the root, 0..11.
        tones: pitch classes, root first (3 for a triad, 4 with a seventh).
        name: e.g. ``"Am7"``.
    """

    root: int
    tones: tuple[int, ...]
    name: str


def diatonic_chord(tonic: int, mode: str, degree: int, seventh: bool = False) -> Chord:
    """The chord built in thirds on ``degree`` (0-based) of ``mode`` on ``tonic``."""
    scale = MODES[mode]
    idx = [degree, degree + 2, degree + 4] + ([degree + 6] if seventh else [])
    tones = tuple((tonic + scale[i % 7]) % 12 for i in idx)
    third = (tones[1] - tones[0]) % 12
    fifth = (tones[2] - tones[0]) % 12
    quality = "m" if third == 3 else ""
    if fifth == 6:
        quality = "dim"
    suffix = ""
    if seventh:
        sev = (tones[3] - tones[0]) % 12
        suffix = "maj7" if sev == 11 else "7"
        if quality == "dim":
            quality, suffix = "m7b5", ""
    return Chord(tones[0], tones, NOTE_NAMES[tones[0]] + quality + suffix)


def scale_pitches(tonic: int, mode: str, low: int, high: int) -> np.ndarray:
    """All MIDI pitches of the scale within ``[low, high]``, ascending."""
    pcs = {(tonic + i) % 12 for i in MODES[mode]}
    return np.array([p for p in range(low, high + 1) if p % 12 in pcs], dtype=np.int64)


def nearest_pitch(pitch_class: int, target: float, low: int, high: int) -> int:
    """The pitch of ``pitch_class`` within ``[low, high]`` closest to ``target``."""
    candidates = [p for p in range(low, high + 1) if p % 12 == pitch_class % 12]
    if not candidates:
        return int(np.clip(target, low, high))
    return min(candidates, key=lambda p: abs(p - target))


def close_voicing(chord: Chord, centre: float, low: int, high: int, notes: int = 3) -> list[int]:
    """A close-position voicing of ``chord`` (``notes`` pitches) near ``centre``, ascending."""
    tones = list(chord.tones)
    while len(tones) < notes:
        tones.append(tones[len(tones) % len(chord.tones)])
    best: list[int] | None = None
    best_cost = float("inf")
    for inversion in range(len(chord.tones)):
        order = tones[inversion:] + tones[:inversion]
        for base_octave in range(2, 8):
            pitches = []
            prev = base_octave * 12 + order[0] - 1
            for pc in order[:notes]:
                p = prev + 1 + ((pc - prev - 1) % 12)
                pitches.append(p)
                prev = p
            if pitches[0] < low or pitches[-1] > high:
                continue
            cost = abs(float(np.mean(pitches)) - centre)
            if cost < best_cost:
                best, best_cost = pitches, cost
    if best is None:
        return [nearest_pitch(pc, centre, low, high) for pc in tones[:notes]]
    return best


def guitar_voicing(chord: Chord, rng: np.random.Generator, power: bool = False) -> list[int]:
    """A guitar-like open voicing: root on a low string (E2..D3), chord tones stacked
    upward at least a minor third apart, 4-6 notes (3 for a power chord)."""
    root = nearest_pitch(chord.root, float(rng.uniform(40, 50)), 40, 52)
    if power:
        return [root, root + 7, root + 12]
    pitches = [root]
    target = int(rng.integers(4, 7))
    p = root
    while len(pitches) < target:
        p += 1
        while p % 12 not in chord.tones:
            p += 1
        if p - pitches[-1] >= 3 and p <= 76:
            pitches.append(p)
        if p > 76:
            break
    return pitches
