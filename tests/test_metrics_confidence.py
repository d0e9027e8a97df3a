"""Song-bootstrap intervals of a report's stem mean, and the paired difference of two reports."""

from __future__ import annotations

import numpy as np
import pytest

from stemstream.export.evaluation.confidence import paired_difference, stem_mean_interval
from stemstream.realtime.errors import StemstreamError

STEMS = ("bass", "drums")


def _report(values: np.ndarray, chunks: np.ndarray, names: list[str] | None = None) -> dict:
    """A minimal evaluate_tracks-shaped report: ``values``/``chunks`` ``(songs, stems)``."""
    names = names or [f"song{i:03d}" for i in range(values.shape[0])]
    tracks = [{"name": n, "per_stem": {s: {"chunks": int(chunks[i, j]), "si_sdri": {"mean": float(values[i, j])}}
                                       for j, s in enumerate(STEMS) if chunks[i, j]}}
              for i, n in enumerate(names)]
    per_stem = {s: {"chunks": int(chunks[:, j].sum())} for j, s in enumerate(STEMS)}
    return {"per_stem": per_stem, "tracks": tracks}


def _random(songs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return 8.0 + 2.0 * rng.standard_normal((songs, len(STEMS))), rng.integers(1, 10, (songs, len(STEMS)))


def test_interval_brackets_the_chunk_weighted_stem_mean_and_is_reproducible() -> None:
    values, chunks = _random(24, 0)
    chunks[3, 1] = 0  # a song where drums are silent throughout
    ci = stem_mean_interval(_report(values, chunks))
    expected = np.mean([(values[:, j] * chunks[:, j]).sum() / chunks[:, j].sum() for j in range(2)])
    assert ci["mean"] == pytest.approx(expected, abs=1e-12)
    assert ci["low"] < ci["mean"] < ci["high"] and ci["se"] > 0
    assert ci["songs"] == 24 and ci["level"] == 0.95
    assert stem_mean_interval(_report(values, chunks)) == ci  # seeded


def test_interval_narrows_with_more_songs() -> None:
    widths = []
    for songs in (8, 32, 128):
        ci = stem_mean_interval(_report(*_random(songs, songs)))
        widths.append(ci["high"] - ci["low"])
    assert widths[0] > widths[1] > widths[2]


def test_paired_difference_of_a_constant_shift_is_exact_whatever_the_song_order() -> None:
    values, chunks = _random(16, 1)
    a = _report(values, chunks)
    order = np.random.default_rng(2).permutation(16)
    names = [f"song{i:03d}" for i in order]
    b = _report(values[order] + 0.5, chunks[order], names)
    diff = paired_difference(a, b)
    assert diff["mean"] == pytest.approx(0.5) and diff["low"] == pytest.approx(0.5)
    assert diff["high"] == pytest.approx(0.5)
    same = paired_difference(a, a)
    assert same["mean"] == same["low"] == same["high"] == 0.0
    # unpaired, the same shift is well inside the spread of either model alone
    ci = stem_mean_interval(a)
    assert ci["high"] - ci["low"] > 0.5


def test_paired_difference_refuses_other_songs_and_reports_without_tracks() -> None:
    values, chunks = _random(4, 3)
    a = _report(values, chunks)
    with pytest.raises(StemstreamError, match="same 4 songs"):
        paired_difference(a, _report(values[:3], chunks[:3]))
    with pytest.raises(StemstreamError, match="per-track scores"):
        stem_mean_interval({"per_stem": {"bass": {}}, "tracks": []})
    with pytest.raises(StemstreamError, match="at least 2 songs"):
        stem_mean_interval(_report(values[:1], chunks[:1]))  # one song: no spread to measure
    with pytest.raises(StemstreamError, match="metric"):
        stem_mean_interval(a, metric="sdr")
