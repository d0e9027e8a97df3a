"""How sure a score is: song-level bootstrap intervals for ``stemstream.export.evaluation.protocol`` reports.

Chunks of one song are not independent (the same instruments, the same mix), so the unit of
resampling is the song: draw as many songs as the set has, with replacement, recompute each
stem's mean over the drawn songs' chunks (each song weighted by its chunk count, exactly as
the report's per-stem mean weights them), and average the stems (the report's ``stem_mean``).
The 2.5th and 97.5th percentiles of ``resamples`` such draws give the 95 % interval.

:func:`paired_difference` draws the *same* songs for two reports of the same data set, so the
interval of ``b - a`` leaves out the song-to-song spread both models share: the figure to read
when deciding whether one model is better than another on a small test set.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from stemstream.realtime.errors import bad_value

#: Default number of bootstrap draws (about 10 ms for 24 songs).
RESAMPLES = 2000

#: Fewest songs an interval is drawn from (one song resamples to itself: a zero-width interval).
MIN_SONGS = 2

#: Metrics scored on every counted chunk (BSS Eval SDR skips chunks too short for its filter,
#: so a track's chunk count does not weight it).
BOOTSTRAP_METRICS = ("si_sdr", "si_sdri")


def _song_sums(report: dict[str, Any], metric: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``(song names, sums (songs, stems), counts (songs, stems))`` of ``metric`` per song and stem."""
    if metric not in BOOTSTRAP_METRICS:
        raise bad_value("metric", metric, f"one of {BOOTSTRAP_METRICS}")
    stems = list(report["per_stem"])
    tracks = report.get("tracks") or []
    if not tracks or not stems:
        raise bad_value("report", "no tracks", "an evaluate_tracks report with per-track scores")
    if len(tracks) < MIN_SONGS:
        raise bad_value("report songs", len(tracks), f"at least {MIN_SONGS} songs to resample")
    sums = np.zeros((len(tracks), len(stems)))
    counts = np.zeros((len(tracks), len(stems)))
    for i, track in enumerate(tracks):
        for j, stem in enumerate(stems):
            entry = track["per_stem"].get(stem)
            if entry is None or entry[metric]["mean"] is None:
                continue
            n = int(entry["chunks"])
            counts[i, j] = n
            sums[i, j] = entry[metric]["mean"] * n
    return [t["name"] for t in tracks], sums, counts


def _stem_mean(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Stem-mean score of each draw: ``sums``/``counts`` ``(draws, songs, stems)`` -> ``(draws,)``.
    A stem no drawn song scores is left out of that draw's mean."""
    total, n = sums.sum(axis=1), counts.sum(axis=1)
    per_stem = np.where(n > 0, total / np.where(n > 0, n, 1), np.nan)
    with warnings.catch_warnings():  # a draw with no scored stem at all is NaN, dropped later
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(per_stem, axis=-1)


def _draws(songs: int, resamples: int, seed: int) -> np.ndarray:
    if resamples < 100:
        raise bad_value("resamples", resamples, "an integer >= 100")
    return np.random.default_rng(seed).integers(0, songs, size=(resamples, songs))


def _interval(values: np.ndarray, point: float, resamples: int, songs: int) -> dict[str, Any]:
    values = values[np.isfinite(values)]
    if not np.isfinite(point) or values.size == 0:
        raise bad_value("report", "no scored chunks", "at least one scored stem-chunk")
    return {
        "mean": float(point), "low": float(np.percentile(values, 2.5)),
        "high": float(np.percentile(values, 97.5)), "se": float(values.std()),
        "level": 0.95, "resamples": int(resamples), "songs": int(songs), "unit": "song",
    }


def stem_mean_interval(report: dict[str, Any], metric: str = "si_sdri", resamples: int = RESAMPLES,
                       seed: int = 0) -> dict[str, Any]:
    """95 % song-bootstrap interval of ``report``'s stem-mean ``metric`` (dB).

    Returns ``{"mean", "low", "high", "se", "level", "resamples", "songs", "unit"}``; ``mean``
    equals ``report["overall"]["stem_mean"][metric]``.
    """
    _, sums, counts = _song_sums(report, metric)
    point = float(_stem_mean(sums[None], counts[None])[0])
    idx = _draws(sums.shape[0], resamples, seed)
    return _interval(_stem_mean(sums[idx], counts[idx]), point, resamples, sums.shape[0])


def paired_difference(report_a: dict[str, Any], report_b: dict[str, Any], metric: str = "si_sdri",
                      resamples: int = RESAMPLES, seed: int = 0) -> dict[str, Any]:
    """95 % interval of ``b - a`` in stem-mean ``metric`` (dB), the same songs drawn for both.

    Both reports must score the same songs (by name, in any order) and the same stems. The
    interval's keys plus ``verdict``: ``better`` / ``worse`` when it lies wholly above / below
    zero, else ``not distinguishable at 95%``.
    """
    names_a, sums_a, counts_a = _song_sums(report_a, metric)
    names_b, sums_b, counts_b = _song_sums(report_b, metric)
    if sorted(names_a) != sorted(names_b):
        raise bad_value("report_b songs", len(names_b), f"the same {len(names_a)} songs as report_a")
    if list(report_a["per_stem"]) != list(report_b["per_stem"]):
        raise bad_value("report_b stems", list(report_b["per_stem"]), f"{list(report_a['per_stem'])}")
    order = [names_b.index(n) for n in names_a]
    sums_b, counts_b = sums_b[order], counts_b[order]
    point = float(_stem_mean(sums_b[None], counts_b[None])[0] - _stem_mean(sums_a[None], counts_a[None])[0])
    idx = _draws(len(names_a), resamples, seed)
    diff = _stem_mean(sums_b[idx], counts_b[idx]) - _stem_mean(sums_a[idx], counts_a[idx])
    out = _interval(diff, point, resamples, len(names_a))
    out["verdict"] = ("better" if out["low"] > 0 else "worse" if out["high"] < 0
                      else "not distinguishable at 95%")
    return out


__all__ = ["BOOTSTRAP_METRICS", "MIN_SONGS", "RESAMPLES", "paired_difference", "stem_mean_interval"]
