"""Voice variants of the DJ training data: the shift moves the pitch and the band limit, the
harmony is one more quieter, later track at its interval (the examples they go into: test_dj_data)."""

from __future__ import annotations

import numpy as np
import pytest

from stemstream.export.data.voice_variants import VoiceVariant, vary_voice
from stemstream.realtime.errors import StemstreamError

SR = 44100


def _tone(hz: float, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def _peak_hz(x: np.ndarray) -> float:
    x = x[SR // 10: -SR // 10]  # away from the shifter's start and end
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.shape[-1])))
    return float(np.argmax(spectrum) * SR / x.shape[-1])


def test_shift_moves_the_pitch_and_keeps_the_length() -> None:
    tone = _tone(440.0)
    (up,), band = vary_voice([tone], 8000.0, VoiceVariant(semitones=3.0), SR)
    assert up.shape == tone.shape and up.dtype == np.float32
    assert _peak_hz(up) == pytest.approx(440.0 * 2 ** (3 / 12), rel=0.015)  # within a quarter semitone
    assert band == pytest.approx(8000.0 * 2 ** (3 / 12))  # the limit moves with the voice...
    (down,), band = vary_voice([tone], 8000.0, VoiceVariant(semitones=-3.0), SR)
    assert _peak_hz(down) == pytest.approx(440.0 * 2 ** (-3 / 12), rel=0.015)  # within a quarter semitone
    assert band == pytest.approx(8000.0 * 2 ** (-3 / 12))  # ...down as well as up


def test_harmony_is_a_quieter_later_track_at_its_interval() -> None:
    tone = _tone(440.0)
    variant = VoiceVariant(semitones=0.0, harmony=7, harmony_db=-6.0, harmony_delay_s=0.01)
    tracks, band = vary_voice([tone], 0.0, variant, SR)
    assert len(tracks) == 2 and band == 0.0  # a full-band voice stays full band
    lead, part = tracks
    np.testing.assert_array_equal(lead, tone)  # no shift: the lead as sung
    assert part.shape == tone.shape
    assert not part[: int(0.01 * SR)].any()  # the delay
    assert _peak_hz(part) == pytest.approx(440.0 * 2 ** (7 / 12), rel=0.015)
    level_db = 20 * np.log10(np.sqrt(np.mean(part[SR // 4:] ** 2)) / np.sqrt(np.mean(tone[SR // 4:] ** 2)))
    assert level_db == pytest.approx(-6.0, abs=1.0)
    assert VoiceVariant(semitones=-2.0, harmony=-5).band_limit(8000.0) == pytest.approx(8000.0 * 2 ** (-7 / 12))


def test_identity_and_stereo_tracks() -> None:
    tone = _tone(330.0, 0.5)
    tracks, band = vary_voice([tone], 8000.0, VoiceVariant(), SR)
    assert tracks[0] is tone and band == 8000.0
    stereo = np.stack([tone, 0.5 * tone])
    (shifted,), _ = vary_voice([stereo], 0.0, VoiceVariant(semitones=2.0), SR)
    assert shifted.shape == stereo.shape


@pytest.mark.parametrize("kwargs", [{"semitones": 13.0}, {"harmony": -14}, {"harmony_delay_s": -0.1}])
def test_bad_variant_is_a_clear_error(kwargs: dict) -> None:
    with pytest.raises(StemstreamError, match=next(iter(kwargs))):
        VoiceVariant(**kwargs)


def test_draws_cover_both_variations_and_are_seeded() -> None:
    draws = [VoiceVariant.draw(np.random.default_rng(s)) for s in range(200)]
    assert 0.35 < np.mean([d.semitones != 0 for d in draws]) < 0.65
    assert 0.18 < np.mean([d.harmony is not None for d in draws]) < 0.42
    assert all(abs(d.semitones) <= 3 for d in draws)
    assert VoiceVariant.draw(np.random.default_rng(5)) == VoiceVariant.draw(np.random.default_rng(5))

