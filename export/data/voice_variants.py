"""More singers from the few real ones: pitch-shifted leads and sung harmonies, drawn per example.

Our real voices are 13 amateur MIR-1K singers and a handful of MusicDelta singers; released
records have many more, and most of them carry backing vocals that a DJ stem counts as vocals
(MUSDB18's ``vocals`` holds every sung part). Two variations widen what the model hears:

* **shift**: the lead is pitch-shifted by up to :data:`SHIFT_SEMITONES` either way with its
  formants moving along (Rubber Band through ``pedalboard.PitchShift``, duration kept), so a
  singer reads as a higher or lower voice of another size;
* **harmony**: a second part, the lead shifted by a drawn interval (:data:`HARMONY_INTERVALS`:
  a third, fourth or fifth above, a fourth below), a few milliseconds late and a few dB lower,
  added as its own track of the vocals stem (panned and processed on its own by the mixer).

Both keep the example exact: the varied tracks *are* the vocals stem, so the mixture is still the
sum of the stems. A band-limited voice (MIR-1K, nothing above 8 kHz) moves its limit with the
shift: ``band_hz * 2 ** (semitones / 12)`` for the lowest part, so the loss still compares only
the band that holds real signal.

Everything random comes from the ``numpy.random.Generator`` passed in; :func:`vary_voice` itself
is deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stemstream.realtime.errors import bad_value

SHIFT_SEMITONES = 3.0  # the lead's shift is drawn from [-3, 3] semitones
SHIFT_PROBABILITY = 0.5
HARMONY_PROBABILITY = 0.3
HARMONY_INTERVALS: tuple[int, ...] = (3, 4, 5, 7, -5)  # semitones from the lead
HARMONY_DB: tuple[float, float] = (-12.0, -4.0)  # level of the harmony relative to the lead
HARMONY_DELAY_S: tuple[float, float] = (0.0, 0.03)


@dataclass(frozen=True)
class VoiceVariant:
    """One drawn variation: ``semitones`` of the lead (0: as sung); ``harmony`` the interval of a
    second part in semitones from the (shifted) lead, None for none; its level in dB and its delay
    in seconds."""

    semitones: float = 0.0
    harmony: int | None = None
    harmony_db: float = -8.0
    harmony_delay_s: float = 0.0

    def __post_init__(self) -> None:
        if abs(self.semitones) > 12:
            raise bad_value("semitones", self.semitones, "a shift within one octave (|semitones| <= 12)")
        if self.harmony is not None and abs(self.harmony) > 12:
            raise bad_value("harmony", self.harmony, "an interval within one octave, or None")
        if self.harmony_delay_s < 0:
            raise bad_value("harmony_delay_s", self.harmony_delay_s, "a delay >= 0 seconds")

    @property
    def is_identity(self) -> bool:
        return self.semitones == 0.0 and self.harmony is None

    @classmethod
    def draw(cls, rng: np.random.Generator) -> "VoiceVariant":
        """A variation: shifted with :data:`SHIFT_PROBABILITY`, harmonised with
        :data:`HARMONY_PROBABILITY` (independently); the draws are always made, so the stream of
        random numbers does not depend on the outcome."""
        shift, semis = rng.random(), rng.uniform(-SHIFT_SEMITONES, SHIFT_SEMITONES)
        harm, interval = rng.random(), HARMONY_INTERVALS[int(rng.integers(len(HARMONY_INTERVALS)))]
        level, delay = rng.uniform(*HARMONY_DB), rng.uniform(*HARMONY_DELAY_S)
        return cls(semitones=float(semis) if shift < SHIFT_PROBABILITY else 0.0,
                   harmony=int(interval) if harm < HARMONY_PROBABILITY else None,
                   harmony_db=float(level), harmony_delay_s=float(delay))

    def band_limit(self, band_hz: float) -> float:
        """Where a source band-limited at ``band_hz`` ends after the variation (0: full band)."""
        if band_hz <= 0:
            return 0.0
        lowest = min(self.semitones, self.semitones + (self.harmony if self.harmony is not None else 0))
        return float(band_hz * 2 ** (lowest / 12))


def _shift(x: np.ndarray, semitones: float, sample_rate: int) -> np.ndarray:
    """``x`` ``(samples,)`` pitch-shifted, formants along, same length."""
    if semitones == 0.0:
        return x
    import pedalboard as pb

    y = pb.PitchShift(semitones=float(semitones))(x[None].astype(np.float32), sample_rate)[0]
    return np.asarray(y[: x.shape[-1]], dtype=np.float32)


def vary_voice(tracks: list[np.ndarray], band_hz: float, variant: VoiceVariant,
               sample_rate: int) -> tuple[list[np.ndarray], float]:
    """The vocals stem's tracks (each ``(samples,)`` mono or ``(2, samples)``) after ``variant``,
    and the new band limit. The lead (the first track) is shifted; the other tracks are shifted by
    the same amount; a harmony of the lead is appended as one more mono track."""
    if variant.is_identity or not tracks:
        return list(tracks), band_hz
    out = []
    for x in tracks:
        if x.ndim == 1:
            out.append(_shift(x, variant.semitones, sample_rate))
        elif x.ndim == 2:
            out.append(np.stack([_shift(c, variant.semitones, sample_rate) for c in x]))
        else:
            raise bad_value("track.shape", x.shape, "(samples,) or (channels, samples)")
    if variant.harmony is not None:
        lead = out[0] if out[0].ndim == 1 else out[0].mean(axis=0)
        part = _shift(lead, float(variant.harmony), sample_rate) * np.float32(10 ** (variant.harmony_db / 20))
        delay = min(int(round(variant.harmony_delay_s * sample_rate)), part.shape[-1])
        out.append(np.concatenate([np.zeros(delay, np.float32), part[: part.shape[-1] - delay]]))
    return out, variant.band_limit(band_hz)
