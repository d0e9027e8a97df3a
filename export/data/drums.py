"""Drum grooves of several styles, with fills, on a 16th-note step grid (GM drum map).

A bar has ``steps_per_bar`` steps; a beat has ``steps_per_beat`` (4 in x/4 meters, 6 for
the dotted-quarter beat of 6/8). Every function returns hits ``(step, pitch, velocity)`` with
``step`` relative to the start of the bar.
"""

from __future__ import annotations

import numpy as np

KICK, SIDESTICK, SNARE, CLAP, SNARE2 = 36, 37, 38, 39, 40
CLOSED_HAT, PEDAL_HAT, OPEN_HAT = 42, 44, 46
CRASH, CRASH2, RIDE, RIDE_BELL = 49, 57, 51, 53
TAMBOURINE, COWBELL, SHAKER = 54, 56, 70
TOMS: tuple[int, ...] = (50, 48, 47, 45, 43, 41)  # high to low

#: Groove styles and the meters (beats per bar) they suit.
STYLES: tuple[str, ...] = (
    "rock", "pop", "dance", "funk", "shuffle", "jazz", "bossa", "halftime", "ballad",
)
#: Styles that swing their off-beat eighths.
SWING_STYLES: frozenset[str] = frozenset({"shuffle", "jazz"})

Hit = tuple[float, int, int]


def styles_for_meter(beats: int, steps_per_beat: int) -> tuple[str, ...]:
    """The styles that make sense for a meter."""
    if steps_per_beat == 6:
        return ("rock", "ballad", "pop")
    if beats == 3:
        return ("rock", "ballad", "jazz", "pop")
    if beats == 5:
        return ("rock", "funk", "ballad", "pop")
    return STYLES


class Groove:
    """A style's one-bar pattern, fixed per section, with seeded per-bar variation.

    Args:
        style: one of ``STYLES``.
        steps_per_bar, steps_per_beat: the meter on the step grid.
        intensity: 0 (sparse, soft) .. 1 (full, loud).
        rng: the song's generator (consumed here and in ``bar``).
    """

    def __init__(self, style: str, steps_per_bar: int, steps_per_beat: int, intensity: float,
                 rng: np.random.Generator) -> None:
        self.style = style
        self.spb = steps_per_beat
        self.steps = steps_per_bar
        self.beats = steps_per_bar // steps_per_beat
        self.intensity = intensity
        self.rng = rng
        eighth = steps_per_beat // 2 if steps_per_beat == 4 else 2
        self.eighth = eighth
        self.backbeats = [b for b in range(self.beats) if b % 2 == 1] or [self.beats - 1]
        if style == "halftime" and self.beats >= 4:
            self.backbeats = [self.beats // 2]
        # Timekeeper: closed hat, ride or open hat, at quarter/eighth/sixteenth resolution.
        keeper = CLOSED_HAT
        if style in ("jazz",) or (intensity > 0.8 and rng.random() < 0.35):
            keeper = RIDE
        self.keeper = keeper
        if style in ("funk", "dance") or (style == "pop" and rng.random() < 0.4):
            self.hat_step = 1
        elif style == "ballad" and rng.random() < 0.4:
            self.hat_step = steps_per_beat
        else:
            self.hat_step = eighth
        if steps_per_beat == 6:
            self.hat_step = 2
        # Base kick positions (steps), style-dependent syncopation.
        kicks = {0}
        if self.beats >= 4 and style not in ("halftime", "jazz"):
            kicks.add(2 * steps_per_beat)
        if style == "dance":
            kicks = {b * steps_per_beat for b in range(self.beats)}
        elif style == "bossa" and self.beats == 4:
            kicks = {0, 3, 8, 11}
        elif style in ("rock", "pop", "funk", "halftime") and steps_per_beat == 4:
            grid = 1 if style == "funk" else eighth
            candidates = [s for s in range(0, self.steps, grid)
                          if s % steps_per_beat and s // steps_per_beat not in self.backbeats]
            n_extra = int(rng.integers(0, 3 if style != "funk" else 4))
            for s in rng.choice(candidates, size=min(n_extra, len(candidates)), replace=False):
                kicks.add(int(s))
        elif steps_per_beat == 6 and rng.random() < 0.5:
            kicks.add(10)
        self.kicks = sorted(kicks)
        self.snare = SIDESTICK if (style in ("ballad", "bossa") and rng.random() < 0.6) else SNARE
        self.clap = style in ("dance", "pop") and rng.random() < 0.5
        self.extra = None
        if intensity > 0.6 and rng.random() < 0.3:
            self.extra = int(rng.choice([TAMBOURINE, SHAKER, COWBELL if style == "funk" else SHAKER]))

    def _vel(self, base: float, accent: bool) -> int:
        v = base * (0.55 + 0.45 * self.intensity) + (12 if accent else 0)
        return int(np.clip(v + self.rng.normal(0, 5), 12, 127))

    def bar(self, fill_beats: int = 0, crash: bool = False) -> list[Hit]:
        """One bar of hits; the last ``fill_beats`` beats are a fill; ``crash`` starts the
        bar with a crash cymbal."""
        rng = self.rng
        hits: list[Hit] = []
        fill_from = self.steps - fill_beats * self.spb if fill_beats else self.steps
        spb = self.spb
        for s in range(0, fill_from, self.hat_step):
            on_beat = s % spb == 0
            if self.style == "jazz":
                beat, pos = divmod(s, spb)
                if not (pos == 0 or (pos == self.eighth and beat % 2 == 1)):
                    continue
            pitch = self.keeper
            if self.style == "dance" and s % spb == self.eighth and self.keeper == CLOSED_HAT:
                pitch = OPEN_HAT
            elif self.keeper == CLOSED_HAT and s == fill_from - self.eighth and rng.random() < 0.15:
                pitch = OPEN_HAT
            base = 80 if on_beat else (62 if s % self.eighth == 0 else 45)
            hits.append((s, pitch, self._vel(base, False)))
        for k in self.kicks:
            if k < fill_from:
                hits.append((k, KICK, self._vel(95, k == 0)))
        if self.style in ("funk", "rock", "pop") and rng.random() < 0.2 and spb == 4:
            s = int(rng.integers(0, self.steps // 2)) * 2 + 1
            if s < fill_from:
                hits.append((s, KICK, self._vel(70, False)))
        for b in self.backbeats:
            s = b * spb
            if s < fill_from:
                hits.append((s, self.snare, self._vel(95 if self.style != "jazz" else 45, True)))
                if self.clap:
                    hits.append((s, CLAP, self._vel(80, False)))
        if self.style == "jazz":
            for b in self.backbeats:
                hits.append((b * spb, PEDAL_HAT, self._vel(60, False)))
            for b in range(self.beats):
                hits.append((b * spb, KICK, self._vel(35, False)))
            for _ in range(int(rng.integers(0, 3))):
                s = int(rng.integers(0, fill_from))
                hits.append((s, SNARE, self._vel(40, False)))
        if self.style == "bossa" and spb == 4 and self.beats == 4:
            for s in (0, 3, 6, 10, 12):
                if s < fill_from:
                    hits.append((s, SIDESTICK, self._vel(70, False)))
        if self.style == "funk" and spb == 4:
            for s in range(1, fill_from, 1):
                if s % spb and rng.random() < 0.18:
                    hits.append((s, SNARE, int(rng.integers(22, 42))))
        if self.extra is not None:
            for s in range(0, fill_from, self.eighth):
                hits.append((s, self.extra, self._vel(55 if s % spb else 70, False)))
        if crash:
            hits.append((0, int(rng.choice([CRASH, CRASH2])), self._vel(100, True)))
            if 0 not in self.kicks:
                hits.append((0, KICK, self._vel(95, True)))
        if fill_beats:
            hits.extend(self._fill(fill_from))
        return hits

    def _fill(self, start: int) -> list[Hit]:
        rng = self.rng
        kind = rng.choice(["snare", "toms", "mixed", "sparse"])
        grid = 1 if rng.random() < 0.6 else self.eighth
        steps = list(range(start, self.steps, grid))
        toms = list(TOMS[int(rng.integers(0, 2)):])
        hits: list[Hit] = []
        for i, s in enumerate(steps):
            if kind == "sparse" and rng.random() < 0.4:
                continue
            crescendo = 60 + 50 * (i + 1) / len(steps)
            if kind == "snare":
                pitch = SNARE
            elif kind == "toms":
                pitch = toms[min(len(toms) - 1, i * len(toms) // len(steps))]
            else:
                pitch = SNARE if i % 2 == 0 else toms[min(len(toms) - 1, i * len(toms) // len(steps))]
            hits.append((s, pitch, self._vel(crescendo, False)))
        if rng.random() < 0.5:
            hits.append((start, KICK, self._vel(90, False)))
        return hits
