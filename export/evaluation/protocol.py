"""The seeds' evaluation protocol: chunked SI-SDR, SI-SDRi and SDR per stem, track and overall.

Protocol (thesis Sec. 4.5.2, after the Demucs + Gibbs evaluation on Slakh2100):

* Each track is cut into chunks of ``chunk_seconds`` (4 s) starting every ``hop_seconds``
  (2 s, i.e. 2 s overlap). Chunks start at ``0, hop, 2 hop, ...`` while the chunk fits in the
  track; the tail after the last full chunk (shorter than one hop) is not scored. A track
  shorter than one chunk is scored as a single chunk of its full length.
* **Silent**: a stem is silent in a chunk when its RMS over all channels and samples is below
  ``silence_db`` dBFS (default -60 dBFS, i.e. RMS < 1e-3 on the [-1, 1] scale).
* A chunk with fewer than ``min_active_sources`` (2) non-silent stems **of the track** (every
  stem the dataset holds, including ones the model does not output, e.g. MUSDB's ``vocals``)
  is skipped entirely (SI-SDRi is meaningless there: the mixture *is* the source).
* In a kept chunk, each (stem, chunk) pair whose reference stem is silent is skipped.
* Every kept pair gets SI-SDR and SI-SDRi (``eps = 1e-8``) and BSS Eval SDR
  (``stemstream.export.evaluation.metrics``; stereo flattened per stem).

Aggregates: per stem (mean and median over all its scored chunks in all tracks), per track
(the same per stem, over that track's chunks) and overall (mean and median over every scored
pair, plus ``stem_mean``: the mean of the per-stem means, the seeds' "All" column, and
``stem_mean_ci95``: its 95 % song-bootstrap interval, ``stemstream.export.evaluation.confidence``; ``None``
with fewer than two tracks).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from stemstream.export.evaluation.confidence import BOOTSTRAP_METRICS, MIN_SONGS, stem_mean_interval
from stemstream.export.evaluation.metrics import SDR_FILTER_LENGTH, SI_SDR_EPS, sdr, si_sdr_stems
from stemstream.realtime.errors import ConfigError, StemstreamError, bad_value
from stemstream.realtime.stems import GROUP_STEMS

#: ``separator(track) -> (len(stems), channels, samples)`` float array.
Separator = Callable[[Any], np.ndarray]

#: Metric names in the report, in table order.
METRICS: tuple[str, ...] = ("si_sdr", "si_sdri", "sdr")

#: Default silence threshold, RMS in dBFS.
SILENCE_DB: float = -60.0


def chunk_starts(num_samples: int, chunk_samples: int, hop_samples: int) -> list[int]:
    """Start sample of every scored chunk (see the module docstring for the rule)."""
    if chunk_samples < 1 or hop_samples < 1:
        raise bad_value("chunk/hop samples", (chunk_samples, hop_samples), "positive integers")
    if num_samples <= chunk_samples:
        return [0] if num_samples > 0 else []
    return list(range(0, num_samples - chunk_samples + 1, hop_samples))


def rms_db(audio: np.ndarray) -> float:
    """RMS level of ``audio`` (any shape) in dBFS; ``-inf`` for digital silence."""
    arr = np.asarray(audio, dtype=np.float64)
    power = float(np.mean(arr * arr)) if arr.size else 0.0
    return 10.0 * math.log10(power) if power > 0.0 else -math.inf


def _stats(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"mean": None, "median": None}
    arr = np.asarray(values, dtype=np.float64)
    return {"mean": float(np.mean(arr)), "median": float(np.median(arr))}


def _summary(pairs: dict[str, list[float]]) -> dict[str, Any]:
    return {"chunks": len(pairs["si_sdr"]), **{m: _stats(pairs[m]) for m in METRICS}}


def _empty() -> dict[str, list[float]]:
    return {m: [] for m in METRICS}


def reference_members(track_stems: Sequence[str], name: str) -> list[str] | None:
    """Which of a track's stems make up the reference ``name``: ``[name]`` itself; for a group of
    :data:`GROUP_STEMS` (``instrumental``), the track's ``accompaniment`` / ``instrumental`` if it
    has one, else every stem but the left-out ones (only when the track has those); None if the
    track cannot give ``name``."""
    have = tuple(track_stems)
    if name in have:
        return [name]
    if name not in GROUP_STEMS:
        return None
    for alias in GROUP_STEMS:
        if alias in have:
            return [alias]
    left_out = GROUP_STEMS[name]
    rest = [k for k in have if k not in left_out]
    return rest if rest and all(k in have for k in left_out) else None


def scorable_stems(model_stems: Sequence[str], track_stems: Sequence[str],
                   order: Sequence[str] = ("vocals", "instrumental", "drums", "bass", "other", "guitar", "piano")
                   ) -> tuple[str, ...]:
    """The stems of ``order`` that a separator with ``model_stems`` can give (itself or as a group
    of :data:`GROUP_STEMS`) and a track with ``track_stems`` can score."""
    model_stems = tuple(model_stems)
    out = []
    for s in order:
        gives = s in model_stems or (s in GROUP_STEMS and all(x in model_stems for x in GROUP_STEMS[s]))
        if gives and reference_members(track_stems, s) is not None:
            out.append(s)
    return tuple(out)


def stem_references(track: Any, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """The track's stems plus the groups of :data:`GROUP_STEMS` it can form (see
    :func:`reference_members`), or only ``names`` where given."""
    refs = dict(track.stems)
    for name in (names if names is not None else GROUP_STEMS):
        members = reference_members(tuple(track.stems), name)
        if members is not None and name not in refs:
            refs[name] = np.sum(np.stack([track.stems[k] for k in members]), axis=0)
    return refs


def evaluate_tracks(
    tracks: Iterable[Any],
    separator: Separator,
    stems: Sequence[str],
    chunk_seconds: float = 4.0,
    hop_seconds: float = 2.0,
    silence_db: float = SILENCE_DB,
    min_active_sources: int = 2,
    with_sdr: bool = True,
    keep_chunks: bool = True,
) -> dict[str, Any]:
    """Score ``separator`` on ``tracks`` with the seeds' chunk protocol.

    Args:
        tracks: ``stemstream.export.data.tracks.Track`` objects (``stems`` name -> ``(C, T)``,
            ``mixture`` ``(C, T)``, ``sample_rate`` in Hz).
        separator: ``separator(track) -> (len(stems), C, T)``; output stem ``i`` is
            ``stems[i]``.
        stems: the names of the separator's outputs. Stems the track lacks are skipped
            (``stems_not_in_dataset`` counts them); track stems not in ``stems`` are not
            scored but still count as sources for the single-source rule.
        chunk_seconds, hop_seconds: chunk length and hop in seconds (4 and 2).
        silence_db: RMS threshold in dBFS under which a stem chunk is silent.
        min_active_sources: a chunk needs at least this many non-silent track stems.
        with_sdr: also compute BSS Eval SDR (about 80 ms per stem-chunk on one core).
        keep_chunks: include every scored chunk's values in the report.

    Returns:
        A JSON-serialisable dict: ``protocol``, ``stems``, ``stems_not_in_dataset``,
        ``counts``, ``per_stem``, ``overall``, ``tracks`` (see the module docstring).
    """
    stems = tuple(stems)
    if not stems or len(set(stems)) != len(stems):
        raise bad_value("stems", stems, "a non-empty sequence of distinct stem names")
    if not chunk_seconds > 0 or not hop_seconds > 0:
        raise bad_value("chunk_seconds/hop_seconds", (chunk_seconds, hop_seconds), "positive seconds")
    if min_active_sources < 1:
        raise bad_value("min_active_sources", min_active_sources, "an integer >= 1")

    all_pairs = {s: _empty() for s in stems}
    missing: dict[str, int] = {}
    counts = {"tracks": 0, "chunks": 0, "chunks_skipped_few_sources": 0,
              "pairs_scored": 0, "pairs_skipped_silent": {s: 0 for s in stems}}
    track_reports: list[dict[str, Any]] = []

    for track in tracks:
        counts["tracks"] += 1
        mixture = np.asarray(track.mixture, dtype=np.float64)
        estimate = np.asarray(separator(track))
        expected = (len(stems), *mixture.shape)
        if estimate.shape != expected:
            raise StemstreamError(
                f"separator output for track {track.name!r} has shape {estimate.shape}, "
                f"expected (stems, channels, samples) = {expected}"
            )
        if not np.all(np.isfinite(estimate)):
            raise StemstreamError(f"separator output for track {track.name!r} has NaN or Inf")
        refs = stem_references(track, stems)
        scored = [i for i, s in enumerate(stems) if s in refs]
        for i, s in enumerate(stems):
            if s not in refs:
                missing[s] = missing.get(s, 0) + 1
        sources = list(track.stems)
        rate = int(track.sample_rate)
        chunk = max(1, int(round(chunk_seconds * rate)))
        hop = max(1, int(round(hop_seconds * rate)))
        starts = chunk_starts(mixture.shape[-1], chunk, hop)
        track_pairs = {stems[i]: _empty() for i in scored}
        chunk_records: list[dict[str, Any]] = []
        skipped_few = 0
        for start in starts:
            stop = min(start + chunk, mixture.shape[-1])
            active = {n: rms_db(track.stems[n][..., start:stop]) >= silence_db for n in sources}
            if sum(active.values()) < min_active_sources:
                skipped_few += 1
                continue
            for i in scored:  # a group is active when its sum is
                if stems[i] not in active:
                    active[stems[i]] = rms_db(refs[stems[i]][..., start:stop]) >= silence_db
            keep = [i for i in scored if active[stems[i]]]
            for i in scored:
                if not active[stems[i]]:
                    counts["pairs_skipped_silent"][stems[i]] += 1
            if not keep:
                continue
            est = estimate[keep, :, start:stop].astype(np.float64)
            ref = np.stack([refs[stems[i]][..., start:stop] for i in keep]).astype(np.float64)
            mix = mixture[:, start:stop]
            score = si_sdr_stems(est, ref)
            values = {
                "si_sdr": score,
                "si_sdri": score - si_sdr_stems(np.broadcast_to(mix, ref.shape), ref),
            }
            if with_sdr and stop - start > SDR_FILTER_LENGTH:
                values["sdr"] = sdr(est, ref)
            record: dict[str, Any] = {"start_s": start / rate}
            for j, i in enumerate(keep):
                name = stems[i]
                record[name] = {}
                for m in METRICS:
                    if m in values:
                        v = float(values[m][j])
                        track_pairs[name][m].append(v)
                        all_pairs[name][m].append(v)
                        record[name][m] = v
                counts["pairs_scored"] += 1
            chunk_records.append(record)
        counts["chunks"] += len(starts)
        counts["chunks_skipped_few_sources"] += skipped_few
        report: dict[str, Any] = {
            "name": track.name,
            "seconds": mixture.shape[-1] / rate,
            "chunks": len(starts),
            "chunks_skipped_few_sources": skipped_few,
            "per_stem": {s: _summary(p) for s, p in track_pairs.items()},
        }
        if keep_chunks:
            report["chunk_values"] = chunk_records
        track_reports.append(report)

    if counts["tracks"] == 0:
        raise ConfigError("tracks: the dataset yielded no tracks to evaluate")
    per_stem = {s: _summary(all_pairs[s]) for s in stems if missing.get(s, 0) < counts["tracks"]}
    pooled = _empty()
    for s in per_stem:
        for m in METRICS:
            pooled[m].extend(all_pairs[s][m])
    overall = _summary(pooled)
    overall["stem_mean"] = {
        m: (float(np.mean([v[m]["mean"] for v in per_stem.values() if v[m]["mean"] is not None]))
            if any(v[m]["mean"] is not None for v in per_stem.values()) else None)
        for m in METRICS
    }
    report = {
        "protocol": {
            "chunk_seconds": chunk_seconds, "hop_seconds": hop_seconds, "silence_db": silence_db,
            "min_active_sources": min_active_sources, "si_sdr_eps": SI_SDR_EPS,
            "sdr": (f"fast_bss_eval, {SDR_FILTER_LENGTH}-tap filter, channels flattened, "
                    "clamped to +-100 dB") if with_sdr else None,
            "stereo": "channels flattened per stem (one signal per stem)",
        },
        "stems": list(stems),
        "stems_not_in_dataset": missing,
        "counts": counts,
        "per_stem": per_stem,
        "overall": overall,
        "tracks": track_reports,
    }
    overall["stem_mean_ci95"] = {
        m: stem_mean_interval(report, m)
        if overall["stem_mean"][m] is not None and counts["tracks"] >= MIN_SONGS else None
        for m in BOOTSTRAP_METRICS
    }
    return report


def write_json(report: dict[str, Any], path: str | Path) -> Path:
    """Write ``report`` as indented JSON (parent folders created). Returns the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")
    return out


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _interval_line(overall: dict[str, Any]) -> str:
    """One line with the SI-SDRi stem mean and its song-bootstrap interval ('' without one)."""
    ci = overall.get("stem_mean_ci95", {}).get("si_sdri")
    if not ci:
        return ""
    return (f"SI-SDRi stem mean {ci['mean']:.2f} dB, 95% interval over songs "
            f"[{ci['low']:.2f}, {ci['high']:.2f}] (song bootstrap, {ci['songs']} songs)")


def format_table(report: dict[str, Any]) -> str:
    """Per-stem table (dB, mean / median over chunks) plus overall rows and skip notes."""
    header = ["stem", "chunks", "SI-SDR mean", "SI-SDR med", "SI-SDRi mean", "SI-SDRi med",
              "SDR mean", "SDR med"]
    rows = []
    for name, v in report["per_stem"].items():
        rows.append([name, str(v["chunks"])] + [_fmt(v[m][k]) for m in METRICS for k in ("mean", "median")])
    o = report["overall"]
    rows.append(["all (pooled)", str(o["chunks"])] + [_fmt(o[m][k]) for m in METRICS for k in ("mean", "median")])
    rows.append(["all (stem mean)", ""] + [x for m in METRICS for x in (_fmt(o["stem_mean"][m]), "")])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if interval := _interval_line(o):
        lines.append(interval)
    c = report["counts"]
    lines.append(
        f"{c['tracks']} tracks, {c['chunks']} chunks of {report['protocol']['chunk_seconds']:g} s "
        f"(hop {report['protocol']['hop_seconds']:g} s); {c['chunks_skipped_few_sources']} skipped "
        f"(< {report['protocol']['min_active_sources']} active sources); silent stem-chunks skipped: "
        + ", ".join(f"{s} {n}" for s, n in c["pairs_skipped_silent"].items())
    )
    for stem, n in report["stems_not_in_dataset"].items():
        lines.append(f"note: stem {stem!r} is output by the model but absent from {n} track(s): not scored there")
    return "\n".join(lines)


def format_markdown(report: dict[str, Any], title: str | None = None) -> str:
    """The per-stem table as Markdown (dB, mean / median), with the protocol in one line."""
    lines = [f"### {title}", ""] if title else []
    lines += ["| stem | chunks | SI-SDR | SI-SDRi | SDR |", "| --- | ---: | ---: | ---: | ---: |"]

    def cell(v: dict[str, float | None]) -> str:
        return f"{_fmt(v['mean'])} / {_fmt(v['median'])}"

    for name, v in report["per_stem"].items():
        lines.append(f"| {name} | {v['chunks']} | " + " | ".join(cell(v[m]) for m in METRICS) + " |")
    o = report["overall"]
    lines.append(f"| all (pooled) | {o['chunks']} | " + " | ".join(cell(o[m]) for m in METRICS) + " |")
    lines.append("| all (stem mean) | | " + " | ".join(_fmt(o["stem_mean"][m]) for m in METRICS) + " |")
    if interval := _interval_line(o):
        lines += ["", interval]
    p, c = report["protocol"], report["counts"]
    lines += ["", f"dB, mean / median over {p['chunk_seconds']:g} s chunks (hop {p['hop_seconds']:g} s) "
              f"of {c['tracks']} tracks; chunks with < {p['min_active_sources']} sources above "
              f"{p['silence_db']:g} dBFS skipped ({c['chunks_skipped_few_sources']}), silent stems skipped."]
    return "\n".join(lines) + "\n"
