"""Generated songs: tempo, meter, key, sections, chord progressions, and per-stem scores.

``compose_song(seed, seconds, extra_other)`` returns a ``Song``: for each stem a ``StemScore``
of timed MIDI notes (seconds) with its General MIDI program, mix settings and the sections
it plays in. Everything is drawn from one ``numpy.random.Generator`` seeded by ``seed``, so a
seed always gives the same song.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from stemstream.export.data import parts
from stemstream.export.data.drums import SWING_STYLES, Groove, styles_for_meter
from stemstream.export.data.theory import MODES, NOTE_NAMES, PROGRESSIONS, Chord, diatonic_chord
from stemstream.realtime.errors import bad_value

#: Meter name -> (steps per bar, steps per beat) on a 16th-note grid.
METERS: dict[str, tuple[int, int]] = {"4/4": (16, 4), "3/4": (12, 4), "6/8": (12, 6), "5/4": (20, 4)}
METER_WEIGHTS: dict[str, float] = {"4/4": 0.7, "3/4": 0.12, "6/8": 0.12, "5/4": 0.06}

#: GM program ranges (inclusive) per stem family.
PROGRAM_RANGES: dict[str, tuple[int, int]] = {
    "bass": (32, 39), "guitar": (24, 31), "piano": (0, 7), "other": (40, 95),
}
#: Section templates: (name, intensity).
SECTION_SEQUENCE: tuple[tuple[str, float], ...] = (
    ("intro", 0.4), ("verse", 0.6), ("chorus", 0.9), ("verse", 0.6), ("chorus", 0.95),
    ("bridge", 0.7), ("chorus", 1.0), ("outro", 0.5),
)
INSTRUMENT_STEMS: tuple[str, ...] = ("bass", "drums", "guitar", "piano")
#: Generator revisions ``compose_song`` can reproduce, and the default (newest).
COMPOSER_VERSIONS: tuple[int, ...] = (1, 2)
COMPOSER_VERSION: int = 2


@dataclass
class Section:
    """A run of bars sharing a progression, an intensity, active stems and roles.

    ``chords`` holds ``(start_step, length_steps, Chord)`` in song steps."""

    name: str
    start_bar: int
    bars: int
    start_step: int
    intensity: float
    progression: tuple[int, ...]
    chords: list[tuple[int, int, Chord]] = field(default_factory=list)
    active: tuple[str, ...] = ()
    roles: dict[str, str] = field(default_factory=dict)


@dataclass
class SongPlan:
    """The song's global musical choices; time unit is the 16th-note step."""

    tempo_bpm: float
    meter: str
    steps_per_bar: int
    steps_per_beat: int
    step_seconds: float
    tonic: int
    mode: str
    style: str
    swing: float
    sections: list[Section]
    chord_steps: list[Chord]

    def chord_at(self, step: float) -> Chord:
        i = int(np.clip(int(step), 0, len(self.chord_steps) - 1))
        return self.chord_steps[i]

    def step_time(self, step: float) -> float:
        """Seconds of a (possibly fractional) step, with swing on off-beat eighths."""
        if self.swing <= 0.5 or self.steps_per_beat != 4:
            return step * self.step_seconds
        beat, pos = divmod(step, 4.0)
        r = self.swing
        warped = pos * 2 * r if pos <= 2 else 4 * r + (pos - 2) * 2 * (1 - r)
        return (beat * 4 + warped) * self.step_seconds


@dataclass
class StemScore:
    """What one stem plays: timed notes ``(on_s, off_s, pitch, velocity)``, controller
    events ``(time_s, cc, value)``, its GM bank/program and mix settings."""

    stem: str
    bank: int
    program: int
    notes: list[tuple[float, float, int, int]]
    controls: list[tuple[float, int, int]]
    pan: int
    reverb_send: int
    chorus_send: int
    level_db: float
    roles: dict[str, str]


@dataclass
class Song:
    """A composed song: the plan, the per-stem scores and a JSON-ready description."""

    plan: SongPlan
    seconds: float
    stems: dict[str, StemScore]
    reverb: dict[str, float]
    chorus: dict[str, float]


def _choose_roles(style: str, guitar_program: int, rng: np.random.Generator) -> dict[str, tuple[str, ...]]:
    bass = {"rock": ("eighths", "root_fifth", "kick", "roots"), "pop": ("eighths", "kick", "roots", "root_fifth"),
            "dance": ("eighths", "kick", "syncopated"), "funk": ("syncopated", "kick"),
            "shuffle": ("walking", "root_fifth"), "jazz": ("walking",), "bossa": ("root_fifth", "walking"),
            "halftime": ("sparse", "kick", "roots"), "ballad": ("sparse", "roots", "root_fifth")}[style]
    if guitar_program in (29, 30):
        guitar = ("power", "lead", "sustain", "power")
    elif style in ("funk", "dance"):
        guitar = ("skank", "arpeggio", "lead")
    elif style in ("ballad", "bossa"):
        guitar = ("arpeggio", "sustain", "strum", "lead")
    else:
        guitar = ("strum", "arpeggio", "skank", "lead", "sustain", "power")
    piano = {"ballad": ("ballad", "arpeggio", "melody", "pad")}.get(
        style, ("block", "arpeggio", "pad", "melody", "ballad"))
    return {"bass": bass, "guitar": guitar, "piano": piano, "other": ("pad", "stabs", "lead")}


def _other_role(program: int, rng: np.random.Generator) -> tuple[str, ...]:
    if 88 <= program <= 95 or 48 <= program <= 54:
        return ("pad", "pad", "stabs")
    if 56 <= program <= 63:
        return ("stabs", "lead", "pad")
    return ("lead", "lead", "pad")


def compose_song(seed: int, seconds: float, extra_other: bool = False,
                 version: int = COMPOSER_VERSION) -> Song:
    """Compose a song of ``seconds`` seconds from ``seed``; stems are ``bass, drums, guitar,
    piano`` (+ ``other`` when ``extra_other``).

    ``version`` selects the generator revision (``COMPOSER_VERSIONS``), so data rendered by
    an older revision stays reproducible: 1 = first release (its kick-locked bass only
    followed the downbeat, and 3/4 or 6/8 songs could change chords mid-beat); 2 = bass
    locked to the drum groove's kicks, half-bar chord changes in 4/4 only."""
    if version not in COMPOSER_VERSIONS:
        raise bad_value("version", version, f"one of {COMPOSER_VERSIONS}")
    rng = np.random.default_rng(seed)
    meter = str(rng.choice(list(METER_WEIGHTS), p=list(METER_WEIGHTS.values())))
    spbar, spb = METERS[meter]
    beats = spbar // spb
    style = str(rng.choice(styles_for_meter(beats, spb)))
    lo, hi = {"ballad": (66, 100), "jazz": (90, 170), "dance": (118, 132), "funk": (88, 116),
              "halftime": (120, 160), "bossa": (110, 145)}.get(style, (80, 160))
    if spb == 6:
        lo, hi = 48, 76  # dotted-quarter beats per minute
    tempo = float(rng.uniform(lo, hi))
    step_seconds = 60.0 / tempo / spb
    swing = float(rng.uniform(0.6, 0.7)) if style in SWING_STYLES else (
        float(rng.uniform(0.5, 0.56)) if style in ("funk", "pop") and rng.random() < 0.3 else 0.5)
    mode = str(rng.choice(list(MODES), p=[0.5, 0.3, 0.1, 0.1]))
    tonic = int(rng.integers(0, 12))
    seventh_prob = 0.7 if style in ("jazz", "bossa") else (0.25 if style in ("funk", "ballad") else 0.08)

    bar_seconds = spbar * step_seconds
    total_bars = int(np.ceil(seconds / bar_seconds))
    section_bars = 8 if total_bars >= 32 else 4 if total_bars >= 12 else 2 if total_bars >= 4 else 1
    harmonic = spbar if rng.random() < 0.6 else (spbar * 2 if rng.random() < 0.5 else spbar // 2)
    if section_bars * spbar < harmonic or spbar % 2 or harmonic < spb:
        harmonic = spbar
    if version >= 2 and harmonic < spbar and meter != "4/4":
        harmonic = spbar
    progressions: dict[str, tuple[int, ...]] = {}
    prog_pos: dict[str, int] = {}  # a progression continues where the last same-named section left it
    sections: list[Section] = []
    chord_steps: list[Chord] = []
    templates = list(SECTION_SEQUENCE)
    if rng.random() < 0.35:
        templates = templates[1:]  # no intro
    bar = 0
    k = 0
    while bar < total_bars:
        name, intensity = templates[k % len(templates)] if k < len(templates) else ("chorus", 1.0)
        k += 1
        if name not in progressions:
            progressions[name] = tuple(rng.choice(PROGRESSIONS[mode]))
        prog = progressions[name]
        bars = min(section_bars, total_bars - bar)
        sec = Section(name, bar, bars, bar * spbar, float(np.clip(intensity + rng.normal(0, 0.08), 0.2, 1.0)),
                      prog)
        for s in range(0, bars * spbar, harmonic):
            j = prog_pos.get(name, 0)
            prog_pos[name] = j + 1
            degree = prog[j % len(prog)]
            chord = diatonic_chord(tonic, mode, degree, seventh=bool(rng.random() < seventh_prob))
            length = min(harmonic, bars * spbar - s)
            sec.chords.append((sec.start_step + s, length, chord))
            chord_steps.extend([chord] * length)
        sections.append(sec)
        bar += bars
    plan = SongPlan(tempo, meter, spbar, spb, step_seconds, tonic, mode, style, swing, sections, chord_steps)

    stems = list(INSTRUMENT_STEMS) + (["other"] if extra_other else [])
    programs = {s: int(rng.integers(PROGRAM_RANGES[s][0], PROGRAM_RANGES[s][1] + 1))
                for s in stems if s != "drums"}
    if programs.get("guitar") == 31 and rng.random() < 0.7:
        programs["guitar"] = int(rng.integers(24, 31))
    kits = (0, 1, 2, 8, 9, 16, 17, 24, 25, 32, 33, 40, 41)
    kit = int(rng.choice((32, 40, 41, 33)) if style in ("jazz", "bossa") and rng.random() < 0.6 else rng.choice(kits))
    role_options = _choose_roles(style, programs["guitar"], rng)
    if extra_other:
        role_options["other"] = _other_role(programs["other"], rng)
    _assign_activity(sections, stems, role_options, rng)

    grooves: dict[int, Groove] = {}
    if version >= 2:  # grooves first, so the bass can lock to the kicks
        grooves = {idx: Groove(style, spbar, spb, sec.intensity, rng) for idx, sec in enumerate(sections)}
    timing_sd = float(rng.uniform(0.002, 0.014))
    scores: dict[str, StemScore] = {}
    for stem in stems:
        notes: list[tuple[float, float, int, float, float]] = []
        controls: list[tuple[float, int, int]] = []
        sec_roles: dict[str, str] = {}
        for idx, sec in enumerate(sections):
            role = sec.roles.get(stem, "")
            sec_roles[f"{idx}:{sec.name}"] = role if stem in sec.active else "silent"
            if stem == "drums":
                groove = grooves[idx] if version >= 2 else Groove(style, spbar, spb, sec.intensity, rng)
                if stem not in sec.active:
                    continue
                for b in range(sec.bars):
                    last = b == sec.bars - 1 and idx + 1 < len(sections)
                    fill = int(rng.integers(1, 3)) if last and rng.random() < 0.75 else 0
                    fill = min(fill, spbar // spb)
                    crash = b == 0 and idx > 0 and rng.random() < 0.8
                    for step, pitch, vel in groove.bar(fill, crash):
                        notes.append((sec.start_step + b * spbar + step, 2.0, pitch, vel, 0.0))
                continue
            if stem not in sec.active:
                continue
            if stem == "bass":
                kicks = grooves[idx].kicks if version >= 2 else [0]  # v1: drums came later
                notes += parts.bass_part(plan, sec, role, rng, kicks)
            elif stem == "guitar":
                notes += parts.guitar_part(plan, sec, role, rng, programs["guitar"])
            elif stem == "piano":
                n, c = parts.piano_part(plan, sec, role, rng)
                notes += n
                controls += c
            else:
                notes += parts.other_part(plan, sec, role, rng)
        sd = timing_sd * (0.5 if stem == "drums" else 1.0)
        push = float(rng.normal(0, 0.004))
        timed = []
        end_limit = seconds - 0.05
        for step, dur, pitch, vel, offset in notes:
            on = plan.step_time(step) + offset + push + float(rng.normal(0, sd))
            off = plan.step_time(step + dur) + offset + push
            on = max(0.0, on)
            if on >= end_limit:
                continue
            off = min(max(off, on + 0.03), seconds)
            timed.append((on, off, int(pitch), int(np.clip(vel, 1, 127))))
        timed.sort()
        timed_controls = sorted((max(0.0, plan.step_time(s)), cc, v) for s, cc, v in controls
                                if plan.step_time(s) < seconds)
        scores[stem] = StemScore(
            stem=stem,
            bank=128 if stem == "drums" else 0,
            program=kit if stem == "drums" else programs[stem],
            notes=timed,
            controls=timed_controls,
            pan=int(np.clip(64 + rng.normal(0, 8 if stem in ("drums", "bass") else 28), 0, 127)),
            reverb_send=int(rng.integers(0, 60 if stem == "bass" else 110)),
            chorus_send=int(rng.integers(0, 30) if stem in ("drums", "bass") else rng.integers(0, 90)),
            level_db=float(rng.uniform(-9.0, 3.0)),
            roles=sec_roles,
        )
    reverb = {"roomsize": float(rng.uniform(0.15, 0.9)), "damping": float(rng.uniform(0.1, 0.8)),
              "width": float(rng.uniform(0.4, 1.0)), "level": float(rng.uniform(0.4, 1.0))}
    chorus = {"nr": int(rng.integers(2, 6)), "level": float(rng.uniform(0.5, 2.0)),
              "speed": float(rng.uniform(0.2, 1.5)), "depth": float(rng.uniform(2.0, 12.0))}
    return Song(plan, float(seconds), scores, reverb, chorus)


def _assign_activity(sections: list[Section], stems: list[str], role_options: dict[str, tuple[str, ...]],
                     rng: np.random.Generator) -> None:
    """Decide per section which stems play and in which role; stems enter and drop out.

    Sections of the same name share roles. With two or more sections at least one stem
    sits out somewhere, every stem plays somewhere, and every section has two stems."""
    prob = {"intro": 0.35, "verse": 0.75, "chorus": 0.92, "bridge": 0.6, "outro": 0.5}
    roles_by_name: dict[str, dict[str, str]] = {}
    for sec in sections:
        if sec.name not in roles_by_name:
            roles = {s: str(rng.choice(role_options[s])) for s in stems if s != "drums"}
            melodic = [s for s, r in roles.items() if r in ("lead", "melody")]
            for s in melodic[1:]:  # at most one melody at a time
                roles[s] = next(r for r in role_options[s] if r not in ("lead", "melody"))
            roles_by_name[sec.name] = roles
        sec.roles = dict(roles_by_name[sec.name])
        active = [s for s in stems if rng.random() < prob[sec.name]]
        while len(active) < min(2, len(stems)):
            extra = str(rng.choice([s for s in stems if s not in active]))
            active.append(extra)
        sec.active = tuple(s for s in stems if s in active)
    if len(sections) >= 2:
        if all(len(sec.active) == len(stems) for sec in sections):
            sec = sections[0] if sections[0].name == "intro" else sections[int(rng.integers(0, len(sections)))]
            drop = str(rng.choice(list(stems)))
            sec.active = tuple(s for s in sec.active if s != drop)
        for stem in stems:
            if not any(stem in sec.active for sec in sections):
                sec = max(sections[1:], key=lambda x: (x.intensity, x.bars))
                sec.active = tuple(s for s in stems if s in sec.active or s == stem)


def describe(song: Song) -> dict:
    """JSON-ready description of the composition (no audio facts)."""
    plan = song.plan
    return {
        "tempo_bpm": round(plan.tempo_bpm, 3),
        "meter": plan.meter,
        "key": f"{NOTE_NAMES[plan.tonic]} {plan.mode}",
        "style": plan.style,
        "swing": round(plan.swing, 3),
        "sections": [
            {
                "name": s.name,
                "start_s": round(plan.step_time(s.start_step), 4),
                "end_s": round(min(song.seconds, plan.step_time(s.start_step + s.bars * plan.steps_per_bar)), 4),
                "bars": s.bars,
                "chords": [c.name for _, _, c in s.chords],
                "active": list(s.active),
                "intensity": round(s.intensity, 3),
            }
            for s in plan.sections
        ],
    }
