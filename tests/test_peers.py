"""The real peer of `stemstream bench peers`: Spleeter's 2-stem model through our adapter, and the
peers table's stem choice."""

from __future__ import annotations

import numpy as np

from stemstream.benchmarks.peers import STEM_ORDER, SpleeterSeparator, format_markdown
from stemstream.export.data.tracks import Track
from stemstream.export.evaluation.protocol import scorable_stems


def test_spleeter_separates_a_voice_from_a_beat() -> None:
    from stemstream.export.data.voice import SungNote, render_voice

    rate, n = 44100, 44100 * 3
    rng = np.random.default_rng(0)
    notes = [SungNote(0.1 + 0.7 * k, 0.7 + 0.7 * k, 60 + 2 * k, 0.9, "aeiou"[k], "s") for k in range(4)]
    voice = render_voice(notes, 3.0, rate, "alto", rng).astype(np.float64) * 0.4
    beat = np.zeros(n)
    for k in range(0, n, rate // 2):
        beat[k : k + 2000] += 0.5 * rng.standard_normal(2000) * np.exp(-np.arange(2000) / 300)
    stems = {"vocals": np.stack([voice, voice]).astype(np.float32),
             "accompaniment": np.stack([beat, beat]).astype(np.float32)}
    track = Track("t", rate, stems, stems["vocals"] + stems["accompaniment"])
    out = SpleeterSeparator()(track)
    assert out.shape == (2, 2, n) and np.isfinite(out).all()
    # ratio masks below 11 kHz: the two outputs add up to the mixture there
    low = np.fft.rfftfreq(n, 1 / rate) < 10000
    total, mix = np.fft.rfft(out.sum(axis=0)[0]), np.fft.rfft(track.mixture[0])
    assert np.linalg.norm((total - mix)[low]) < 0.05 * np.linalg.norm(mix[low])
    # the voice output is closer to the voice than the mixture is
    err = lambda a: np.linalg.norm(a - voice) / np.linalg.norm(voice)  # noqa: E731
    assert err(out[0, 0]) < err(track.mixture[0])


def test_peers_score_only_what_each_separator_and_set_have() -> None:
    assert scorable_stems(("vocals", "instrumental"), ("vocals", "accompaniment"), STEM_ORDER) == ("vocals", "instrumental")
    assert scorable_stems(("vocals", "instrumental"), ("bass", "drums", "synth", "violins"), STEM_ORDER) == ()
    dj = ("vocals", "drums", "bass", "other")
    assert scorable_stems(dj, ("drums", "bass", "other", "vocals"), STEM_ORDER) == STEM_ORDER
    assert scorable_stems(("bass", "drums", "guitar", "piano"), ("drums", "bass", "other", "vocals"), STEM_ORDER) == (
        "drums", "bass")
    table = format_markdown({"date": "d", "machine": {"platform": "p"}, "datasets": {"x": "x"},
                             "results": {"a": {"x": {"si_sdri": {"vocals": 1.234}}}}})
    assert "| a | 1.23 |" in table
