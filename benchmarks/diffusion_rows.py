"""The rows of ``stemstream bench diffusion`` (``stemstream.benchmarks.diffusion_table``): scoring
helpers, the evaluation clips, timing, row groups and merging, and the live model's row.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

#: The engine's resampler kernel for the live rows: an offline measurement, so the high-quality
#: one (the low-delay default, 3951436, dulls the 8 kHz input's band edge: -0.68 dB on a 8 -> 44.1
#: -> 8 kHz round trip that HQ keeps within 0.1 dB, ``tests/test_diffusion_table.py``).
RESAMPLE_QUALITY = "HQ"

#: Row groups, in table order; ``--rows`` picks some of them.
GROUPS: tuple[str, ...] = ("mixture", "teacher", "oracle", "student", "live", "segments", "diagnostics", "refiner",
                           "refiner-segments")


def _first(*paths: str | Path | None) -> Path | None:
    return next((Path(p) for p in paths if p and Path(p).exists()), None)


def _sisdri(estimate: np.ndarray, clean: np.ndarray) -> np.ndarray:
    """Per-stem SI-SDRi ``(S,)`` (NaN for silent references); arrays ``(S, C, T)``."""
    from stemstream.export.evaluation.metrics import si_sdr_improvement

    s = clean.shape[0]
    ref = clean.reshape(s, -1).astype(np.float64)
    est = estimate.reshape(s, -1).astype(np.float64)
    mix = clean.sum(axis=0).reshape(-1).astype(np.float64)
    if not np.all(np.isfinite(est)):
        return np.full(s, np.nan)  # the sampler diverged (shown as "diverged")
    out = np.asarray(si_sdr_improvement(est, ref, mix), dtype=np.float64)
    silent = np.sqrt(np.mean(ref**2, axis=1)) < 1e-3 * max(float(np.sqrt(np.mean(mix**2))), 1e-8)
    out[silent] = np.nan
    return out


def excerpt_pair(full: np.ndarray, song_rate: int, rate: int, samples: int) -> tuple[np.ndarray, dict[str, Any]] | None:
    """The middle excerpt of a song's stems ``full (S, C, T)`` at ``song_rate``, twice.

    Returns ``(clip, fullband)``: ``clip (S, 1, samples)``, the channel mean resampled to
    ``rate`` and normalised like training (mixture RMS ``TARGET_RMS``); ``fullband`` the same
    excerpt at ``song_rate`` with all channels, ``{"mixture": (C, n), "sample_rate", "offset"}``,
    scaled by the same gain and covering the excerpt with 10-20 ms to spare on each side
    (``offset``: where the excerpt starts in it, in samples at ``rate``; its start is a whole
    number of samples at both rates). None when the song is shorter than the excerpt or silent.
    """
    from math import gcd

    import soxr

    from stemstream.export.train.diffusion_data import TARGET_RMS, normalise_excerpt

    res = soxr.resample(full.mean(axis=1).T, song_rate, rate).T
    start = max(0, (res.shape[-1] - samples) // 2)
    clip = np.ascontiguousarray(res[:, start : start + samples], dtype=np.float32)
    if clip.shape[-1] != samples or not np.any(clip):
        return None
    gain = TARGET_RMS / max(float(np.sqrt(np.mean(clip.sum(axis=0) ** 2))), 1e-5)
    period = rate // gcd(rate, song_rate)  # excerpt samples per whole number of song samples
    lo = max(0, (start // period - 1) * period)
    hi = (-(-(start + samples) // period) + 1) * period
    a, b = lo * song_rate // rate, hi * song_rate // rate
    fullband = {"mixture": np.ascontiguousarray(full[..., a:b].sum(axis=0) * gain, dtype=np.float32),
                "sample_rate": song_rate, "offset": start - lo}
    return normalise_excerpt(clip[:, None, :]), fullband


def _eval_clips(data_root: str, teacher_data: str, samples: int, rate: int, count: int,
                seed: int) -> tuple[list[np.ndarray], str, list[dict[str, Any]]]:
    """``count`` clean stem sets ``(4, 1, samples)`` normalised like training, a description, and
    (synthetic set only, else empty) each excerpt full-band for the live model (:func:`excerpt_pair`)."""
    from stemstream.export.train.diffusion_data import normalise_excerpt, synth_ready, toy_excerpt

    test_dir = Path(data_root) / "test"
    if synth_ready(data_root) and test_dir.is_dir() and teacher_data == "synthetic":
        from stemstream.export.data.loaders import load_tracks
        from stemstream.realtime.stems import STEMS

        clips, fullband = [], []
        for track in load_tracks(str(test_dir)):
            pair = excerpt_pair(track.stack(STEMS), track.sample_rate, rate, samples)
            if pair is not None:
                clips.append(pair[0])
                fullband.append(pair[1])
            if len(clips) >= count:
                break
        return clips, f"{len(clips)} songs of {test_dir} (middle excerpt, mono, {rate} Hz)", fullband
    rng = np.random.default_rng(seed)
    clips = [normalise_excerpt(toy_excerpt(rng, samples, rate)) for _ in range(count)]
    return clips, f"{count} held-out procedural toy excerpts (seed {seed}; the synthetic set was not used for training)", []


def _time(fn: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def _row(name: str, scores: list[np.ndarray], evals: int, seconds: list[float], audio_seconds: float,
         stems: tuple[str, ...], group: str) -> dict[str, Any]:
    arr = np.array(scores)
    timing = {"network_evals": evals, "latency_ms": 1000 * float(np.median(seconds)),
              "rtf": float(np.median(seconds)) / audio_seconds, "group": group,
              "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    if not np.any(~np.isnan(arr)):
        return {"model": name, **{s: None for s in stems}, "all": None, **timing}
    per_stem = {s: float(np.nanmean(arr[:, i])) if np.any(~np.isnan(arr[:, i])) else None for i, s in enumerate(stems)}
    return {"model": name, **per_stem, "all": float(np.nanmean(arr)), **timing}


def _groups(rows: str) -> tuple[str, ...]:
    """``--rows`` as a tuple of groups in table order."""
    from stemstream.realtime.errors import bad_value

    if rows.strip() == "all":
        return GROUPS
    asked = {r.strip() for r in rows.split(",") if r.strip()}
    if not asked or not asked <= set(GROUPS):
        raise bad_value("--rows", rows, f"'all' or a comma-separated subset of {', '.join(GROUPS)}")
    return tuple(g for g in GROUPS if g in asked)


def _group_of(row: dict[str, Any], table: str) -> str:
    """A row's group (rows written before groups were recorded: from the model name)."""
    if "group" in row:
        return str(row["group"])
    if table == "segments":
        return "live" if row["model"].startswith("live") else "segments"
    first = row["model"].split()[0]
    return {"oracle": "oracle", "student": "student", "live": "live", "mixture": "mixture"}.get(first, "teacher")


def _merge(previous: list[dict[str, Any]], new: list[dict[str, Any]], measured: tuple[str, ...], table: str) -> list[dict[str, Any]]:
    """Rows of ``previous`` whose group was not measured now, with ``new``, in group order."""
    order = ("segments", "live") if table == "segments" else GROUPS
    kept = [r for r in previous if _group_of(r, table) not in measured]
    return sorted(kept + new, key=lambda r: order.index(_group_of(r, table)))  # stable: order within a group kept


class _HopCounter:
    """A ``HopModel`` passed through, counting the hops it runs and the seconds they take."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.kind = model.kind
        self.info = model.info
        self.hop_samples = model.hop_samples
        self.max_hops_per_call = model.max_hops_per_call
        self.hops = 0
        self.seconds = 0.0

    def init_state(self) -> Any:
        return self.model.init_state()

    def process_hops(self, audio: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        self.hops += audio.shape[-1] // self.hop_samples
        out, dt = _time(lambda: self.model.process_hops(audio, state))
        self.seconds += dt
        return out


def live_row(model: Any, files: list[np.ndarray], fullband: list[dict[str, Any]] | None, rate: int,
              stems: tuple[str, ...], label: str) -> dict[str, Any]:
    """The live model on the mixtures of ``files`` (clean stems ``(S, 1, T)`` at ``rate``)
    through the streaming engine, scored against ``files``.

    ``fullband`` None: the ``rate`` mono mixture goes in (the engine resamples it to the
    model's rate and feeds both stereo inputs) and the stems come back at ``rate`` mono. Else
    the same excerpts at the songs' own rate and channels go in (see :func:`excerpt_pair`),
    and the stems are averaged over channels, resampled to ``rate`` and cut to the excerpt.
    Network evaluations: the hops a live stream runs for one file's audio; latency and RTF:
    wall clock of ``separate_array`` (its final flush included), per file.
    """
    import soxr

    from stemstream.realtime.engine.offline import separate_array
    from stemstream.realtime.engine.streamer import StreamingSeparator

    order = [model.info.stems.index(s) for s in stems]
    counter = _HopCounter(model)
    scores, times, model_seconds, hops = [], [], [], []
    seconds = files[0].shape[-1] / rate
    for i, clean_np in enumerate(files):
        t = clean_np.shape[-1]
        if fullband is None:
            mix, in_rate, offset = np.ascontiguousarray(clean_np.sum(axis=0)), rate, 0  # (1, T)
        else:
            mix, in_rate, offset = fullband[i]["mixture"], int(fullband[i]["sample_rate"]), int(fullband[i]["offset"])
        separator = StreamingSeparator(counter, in_rate, mix.shape[0], resample_quality=RESAMPLE_QUALITY)
        counter.hops, counter.seconds = 0, 0.0
        est, dt = _time(lambda: separate_array(counter, mix, in_rate, separator=separator))
        est = est[order].mean(axis=1, keepdims=True)
        if in_rate != rate:
            est = soxr.resample(est[:, 0].T, in_rate, rate).T[:, None, :]
        scores.append(_sisdri(np.ascontiguousarray(est[..., offset : offset + t]), clean_np))
        scale = seconds / (mix.shape[-1] / in_rate)  # to one file's length (the full-band input is a little longer)
        times.append(dt * scale)
        model_seconds.append(counter.seconds * scale)
        hops.append(counter.hops)
    hops_per_second = model.info.sample_rate / model.hop_samples
    row = _row(label, scores, int(np.ceil(seconds * hops_per_second)), times, seconds, stems, "live")
    row.update({"hops_per_second": hops_per_second, "hops_run": int(np.median(hops)),
                "model_latency_ms": 1000 * float(np.median(model_seconds)),
                "algorithmic_latency_ms": model.info.latency_ms,
                "engine_latency_ms": 1000.0 * StreamingSeparator(model, rate, 1, resample_quality=RESAMPLE_QUALITY)
                .latency_samples / rate})
    return row
