"""A sung voice of our own rendering: a melody over a composed song, sung by a formant synthesiser.

No recording of a voice may be shipped with stemstream, so the demo song's vocals are synthesised
(a source-filter model, as in classic formant singing synthesis):

* **melody** (``sing_melody``): phrases over the song's chords in a singer's range, one
  syllable per note, rests between phrases, sung in the verses, choruses and bridges;
* **voiced sound** (``render_voice``): additive harmonics of the pitch contour (portamento
  between notes, vibrato that grows into long notes, slight jitter) under a -6 dB/octave
  glottal tilt, shaped by five vowel formants (published alto / tenor formant tables) that glide
  from syllable to syllable, so there is energy up to the Nyquist frequency as in a real voice;
* **unvoiced sound**: breath noise and consonant onsets (``s``, ``sh``, ``t``, ``k``), which put sibilance above 5 kHz where a DJ hears a real voice's air.

Everything random comes from the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stemstream.export.data.composer import SongPlan
from stemstream.realtime.errors import bad_value

#: Vowel formants: frequencies (Hz), relative levels (dB), bandwidths (Hz) per voice type.
FORMANTS: dict[str, dict[str, tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]]] = {
    "alto": {
        "a": ((800, 1150, 2800, 3500, 4950), (0, -4, -20, -36, -60), (80, 90, 120, 130, 140)),
        "e": ((400, 1600, 2700, 3300, 4950), (0, -24, -30, -35, -60), (60, 80, 120, 150, 200)),
        "i": ((350, 1700, 2700, 3700, 4950), (0, -20, -30, -36, -60), (50, 100, 120, 150, 200)),
        "o": ((450, 800, 2830, 3500, 4950), (0, -9, -16, -28, -55), (70, 80, 100, 130, 135)),
        "u": ((325, 700, 2530, 3500, 4950), (0, -12, -30, -40, -64), (50, 60, 170, 180, 200)),
    },
    "tenor": {
        "a": ((650, 1080, 2650, 2900, 3250), (0, -6, -7, -8, -22), (80, 90, 120, 130, 140)),
        "e": ((400, 1700, 2600, 3200, 3580), (0, -14, -12, -14, -20), (70, 80, 100, 120, 120)),
        "i": ((290, 1870, 2800, 3250, 3540), (0, -15, -18, -20, -30), (40, 90, 100, 120, 120)),
        "o": ((400, 800, 2600, 2800, 3000), (0, -10, -12, -12, -26), (40, 80, 100, 120, 120)),
        "u": ((350, 600, 2700, 2900, 3300), (0, -20, -17, -14, -26), (40, 60, 100, 120, 120)),
    },
}
#: Singing range (MIDI) per voice type.
RANGES: dict[str, tuple[int, int]] = {"alto": (55, 74), "tenor": (48, 67)}
VOWELS = ("a", "e", "i", "o", "u")
CONSONANTS = ("", "", "", "s", "sh", "t", "k")
CONTROL_HOP = 64  # samples between formant / amplitude control points


@dataclass(frozen=True)
class SungNote:
    """One sung syllable: ``start`` and ``end`` in seconds, MIDI ``pitch``, ``velocity`` 0..1."""

    start: float
    end: float
    pitch: int
    velocity: float
    vowel: str
    consonant: str


def sing_melody(plan: SongPlan, seconds: float, voice: str, rng: np.random.Generator) -> list[SungNote]:
    """Phrases over ``plan``'s chords for ``seconds``: a phrase in most bars of the sections with
    some intensity, notes on the 8th/quarter grid, chord tones on strong beats, steps between."""
    if voice not in RANGES:
        raise bad_value("voice", voice, f"one of {sorted(RANGES)}")
    low, high = RANGES[voice]
    notes: list[SungNote] = []
    pitch = (low + high) // 2
    for section in plan.sections:
        if section.name == "intro" and section.start_bar > 0 or section.intensity < 0.35:
            continue
        for bar in range(section.bars):
            if rng.random() < 0.15:
                continue  # a bar to breathe
            bar_start = section.start_step + bar * plan.steps_per_bar
            step = bar_start + int(rng.choice([0, 0, 2, 4]))
            end_of_phrase = bar_start + plan.steps_per_bar - int(rng.choice([2, 4]))
            while step < end_of_phrase:
                length = int(rng.choice([2, 2, 4, 4, 4, 6, 8]))
                length = max(2, min(length, end_of_phrase - step))
                chord = plan.chord_at(step)
                tones = [p for p in range(low, high + 1) if p % 12 in {t % 12 for t in chord.tones}]
                scale = [p for p in range(low, high + 1) if (p - plan.tonic) % 12 in _MODE_STEPS.get(plan.mode, _MAJOR)]
                pool = tones if (step - bar_start) % plan.steps_per_beat == 0 or not scale else scale
                near = sorted(pool, key=lambda p: abs(p - pitch) + rng.uniform(0, 3))
                pitch = int(near[0] if rng.random() < 0.6 else near[min(len(near) - 1, int(rng.integers(1, 4)))])
                t0, t1 = plan.step_time(step), plan.step_time(step + length)
                if t0 >= seconds:
                    return notes
                notes.append(SungNote(t0, min(t1, seconds), pitch, float(rng.uniform(0.6, 1.0)),
                                      VOWELS[int(rng.integers(len(VOWELS)))],
                                      CONSONANTS[int(rng.integers(len(CONSONANTS)))]))
                step += length
    return notes


_MAJOR = {0, 2, 4, 5, 7, 9, 11}
_MODE_STEPS = {"major": _MAJOR, "mixolydian": {0, 2, 4, 5, 7, 9, 10}, "minor": {0, 2, 3, 5, 7, 8, 10},
               "dorian": {0, 2, 3, 5, 7, 9, 10}}


def _envelope_db(freqs: np.ndarray, vowel_params: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """Formant envelope (dB) at ``freqs`` ``(..., H)`` for per-frame formants ``(..., 5)`` each."""
    centre, level_db, width = vowel_params
    f = freqs[..., None]
    resonance = 10 ** (level_db[..., None, :] / 20) / (1 + ((f - centre[..., None, :]) / (width[..., None, :] / 2)) ** 2)
    return 20 * np.log10(resonance.sum(-1) + 10 ** (-55 / 20))  # a floor: air above the formants


def render_voice(notes: list[SungNote], seconds: float, sample_rate: int, voice: str,
                 rng: np.random.Generator) -> np.ndarray:
    """The sung ``notes`` as mono audio ``(samples,)`` float32, peak about 0.5."""
    n = int(round(seconds * sample_rate))
    frames = n // CONTROL_HOP + 2
    t_ctrl = np.arange(frames) * CONTROL_HOP / sample_rate
    f0 = np.full(frames, np.nan)
    amp = np.zeros(frames)
    vowel_at = np.full(frames, -1)
    table = FORMANTS[voice]
    for k, note in enumerate(notes):
        a, b = np.searchsorted(t_ctrl, [note.start, note.end])
        if b <= a:
            continue
        hz = 440.0 * 2 ** ((note.pitch - 69) / 12)
        local = t_ctrl[a:b] - note.start
        depth = np.clip((local - 0.2) / 0.3, 0, 1) * 0.35  # semitones: vibrato grows into long notes
        vibrato = 2 ** (depth * np.sin(2 * np.pi * 5.6 * local + k) / 12)
        f0[a:b] = hz * vibrato
        attack = np.clip(local / 0.04, 0, 1)
        release = np.clip((note.end - t_ctrl[a:b]) / 0.07, 0, 1)
        amp[a:b] = note.velocity * attack * release
        vowel_at[a:b] = VOWELS.index(note.vowel)
    voiced = ~np.isnan(f0)
    if not voiced.any():
        return np.zeros(n, dtype=np.float32)
    # portamento: fill rests with the neighbouring pitch and smooth over ~40 ms
    idx = np.where(voiced, np.arange(frames), 0)
    np.maximum.accumulate(idx, out=idx)
    first = int(np.argmax(voiced))
    f0 = np.where(voiced, f0, f0[np.maximum(idx, first)])
    f0[:first] = f0[first]
    f0 = np.exp(_smooth(np.log(f0), int(0.04 * sample_rate / CONTROL_HOP)))
    f0 *= 2 ** (rng.normal(0, 0.03, frames) / 12)  # jitter: a few cents
    amp = _smooth(amp, 3)
    # formants glide between vowels
    vowel_at = np.where(vowel_at < 0, 0, vowel_at)
    params = [np.array([table[VOWELS[v]][j] for v in vowel_at], dtype=np.float64) for j in range(3)]
    glide = int(0.05 * sample_rate / CONTROL_HOP)
    params = [np.stack([_smooth(p[:, j], glide) for j in range(p.shape[1])], axis=1) for p in params]
    harmonics = int((sample_rate / 2 - 200) // f0.min())
    h = np.arange(1, harmonics + 1)
    freqs = f0[:, None] * h[None, :]  # (frames, H)
    level = _envelope_db(freqs, tuple(params)) - 4 * np.log2(h)[None, :]
    gain = 10 ** (level / 20) * (freqs < sample_rate / 2 - 200)
    gain *= amp[:, None]
    # per-sample synthesis, one second at a time: phase from the pitch contour, harmonic
    # amplitudes interpolated linearly between control points
    pos = np.arange(n) / CONTROL_HOP
    f0_s = np.interp(pos, np.arange(frames), f0)
    phase = 2 * np.pi * np.cumsum(f0_s) / sample_rate
    out = np.zeros(n)
    live = np.flatnonzero(gain.max(axis=0) >= 1e-5)
    for a in range(0, n, sample_rate):
        b = min(n, a + sample_rate)
        i = np.minimum(pos[a:b].astype(np.int64), frames - 2)
        w = (pos[a:b] - i)[:, None]
        g = gain[i][:, live] * (1 - w) + gain[i + 1][:, live] * w
        out[a:b] = np.einsum("th,th->t", g, np.sin(phase[a:b, None] * (live + 1)[None, :]))
    amp_s = np.interp(pos, np.arange(frames), amp)
    out += _unvoiced(notes, n, sample_rate, amp_s, phase, rng)
    peak = np.max(np.abs(out)) + 1e-9
    return (0.5 * out / peak).astype(np.float32)


def _smooth(x: np.ndarray, width: int) -> np.ndarray:
    """Moving average over ``width`` points, the ends padded with their own values."""
    width = max(1, int(width))
    if width == 1:
        return x
    padded = np.concatenate([np.full(width, x[0]), x, np.full(width, x[-1])])
    return np.convolve(padded, np.ones(width) / width, mode="same")[width:-width]


def _band_noise(rng: np.random.Generator, n: int, low: float, high: float, sample_rate: int) -> np.ndarray:
    """White noise band-passed to ``[low, high]`` Hz (two 12 dB/octave stages each side)."""
    import pedalboard as pb

    top = min(high, sample_rate / 2 - 100)
    board = pb.Pedalboard([pb.HighpassFilter(low), pb.HighpassFilter(low), pb.LowpassFilter(top), pb.LowpassFilter(top)])
    return board(rng.standard_normal(n).astype(np.float32)[None], sample_rate)[0].astype(np.float64)


def _unvoiced(notes: list[SungNote], n: int, sample_rate: int, amp: np.ndarray, phase: np.ndarray,
              rng: np.random.Generator) -> np.ndarray:
    """Breath (aspiration, pulsed with the glottis) and consonant onsets."""
    out = 0.012 * amp * (0.5 + 0.5 * np.cos(phase)) * _band_noise(rng, n, 1500, 14000, sample_rate)
    shapes = {"s": (5000, 13000, 0.09, 0.12), "sh": (2200, 7000, 0.1, 0.1), "t": (2500, 11000, 0.018, 0.2),
              "k": (1200, 4500, 0.025, 0.15)}
    for note in notes:
        if note.consonant not in shapes:
            continue
        low, high, dur, level = shapes[note.consonant]
        a = int(note.start * sample_rate)
        m = min(int(dur * sample_rate), n - a)
        if m <= 8:
            continue
        env = np.sin(np.linspace(0, np.pi, m)) ** 2
        out[a : a + m] += level * note.velocity * env * _band_noise(rng, m, low, high, sample_rate)
    return out
