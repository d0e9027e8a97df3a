"""``stemstream bench diffusion``: a table like the thesis' Table 4.5 for our diffusion models.

Rows: the mixture baseline; the teacher's Dirac separator at several step counts (8 up to
the thesis' regime of hundreds) with and without a correction step; the Gaussian-likelihood
separator; the oracle-denoiser sampler checks; the consistency student at 1/2/4 steps; and
the shipped discriminative ``live`` model beside them, on the same excerpts and metric.
Columns: SI-SDRi per stem and mean (dB, non-silent stems only), network evaluations per
window, latency per window (ms, wall clock, one thread) and real-time factor (processing time
/ audio time). A second table compares naive, independent and autoregressive segment
sampling on longer files (the live model again beside them). Writes ``diffusion.json`` and
``diffusion.md`` under ``--out``.

The live model runs at 44.1 kHz stereo; the diffusion models at 8 kHz mono. The live rows
feed the 8 kHz mono mixture through the streaming engine (``separate_array``), which
resamples it to 44.1 kHz, feeds both stereo inputs, averages the two output channels and
resamples the stems back to 8 kHz; the stems are scored like the diffusion rows. Its network
evaluations are the hops it runs per window.

``--rows diagnostics`` adds the teacher diagnostics of ``stemstream.benchmarks.diffusion_diagnose``
(denoiser quality per noise level; warm-started separation from the truth or the mixture).

``--rows live,student`` (groups: ``mixture, teacher, oracle, student, live, segments``)
measures only those groups and merges them into the ``diffusion.json`` already under
``--out`` (rows of the other groups are kept as they were, each row says when it was
measured), so one group can be updated cheaply.

Evaluation data: ``DATA/test`` songs (downmixed, resampled to the model rate) when the
synthetic set is ready and the teacher was trained on it; otherwise held-out procedural toy
excerpts (seed range disjoint from training and validation), which the table says.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

#: Row groups, in table order; ``--rows`` picks some of them.
GROUPS: tuple[str, ...] = ("mixture", "teacher", "oracle", "student", "live", "segments", "diagnostics")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``stemstream bench diffusion``."""
    parser.add_argument("--teacher", default=None, help="teacher weights (default: runs/diffusion-teacher-dirac/teacher.safetensors, else "
                        "runs/diffusion-teacher/teacher.safetensors, else shipped)")
    parser.add_argument("--student", default=None, help="student weights (default runs/diffusion-student/student.safetensors, else shipped)")
    parser.add_argument("--data", default="data/synth", help="synthetic data root (uses DATA/test)")
    parser.add_argument("--excerpts", type=int, default=6, help="excerpts of one window for the main table")
    parser.add_argument("--long-files", type=int, default=2, help="long files for the segment comparison")
    parser.add_argument("--long-seconds", type=float, default=4.0, help="length of each long file, seconds")
    parser.add_argument("--segment-steps", type=int, default=16, help="teacher steps in the segment comparison")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--rows", default="all",
                        help=f"comma-separated row groups to measure ({', '.join(GROUPS)}) or 'all'; "
                             "others are kept from the diffusion.json under --out")
    parser.add_argument("--live-model", default="live", help="registry model shown beside the diffusion models")
    parser.add_argument("--live-backend", default="onnx", help="backend of the live model (torch, onnx, ...)")
    parser.add_argument("--out", default="runs/bench/diffusion", help="output folder")


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
        separator = StreamingSeparator(counter, in_rate, mix.shape[0])
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
                "engine_latency_ms": 1000.0 * StreamingSeparator(model, rate, 1).latency_samples / rate})
    return row


def run(args: argparse.Namespace) -> int:
    """Run the benchmark (the ``--rows`` groups); returns 0."""
    from stemstream.realtime.diffusion.unet import load_teacher
    from stemstream.realtime.diffusion.segments import separate_long
    from stemstream.realtime.diffusion.student import load_student_step
    from stemstream.realtime.errors import bad_value
    from stemstream.realtime.models.weights import read_weights

    groups = _groups(str(getattr(args, "rows", "all")))
    torch.set_num_threads(int(args.threads))
    root = Path(__file__).resolve().parents[1]
    from stemstream.export.train.diffusion_fit import default_teacher

    teacher_path = _first(args.teacher) if args.teacher else default_teacher()
    student_path = _first(args.student, "runs/diffusion-student/student.safetensors", root / "realtime/weights/diffusion-student.safetensors")
    if teacher_path is None:
        raise bad_value("--teacher", args.teacher, "a teacher weight file (stemstream train --config diffusion-teacher)")
    teacher = load_teacher(teacher_path)
    teacher_record = json.loads(read_weights(teacher_path)[1].get("run_record", "{}"))
    net = teacher.config
    w, rate, stems = net.segment_samples, net.sample_rate, net.stems
    clips, data_desc, fullband = _eval_clips(args.data, teacher_record.get("data", ""), w, rate, int(args.excerpts), 20_000)
    seconds_per_clip = w / rate
    rows: list[dict[str, Any]] = []

    if "mixture" in groups:
        rows.append(_row("mixture", [_sisdri(np.repeat(c.sum(0, keepdims=True), len(stems), 0), c) for c in clips],
                         0, [0.0], seconds_per_clip, stems, "mixture"))
    rows += _teacher_rows(teacher, clips, groups, seconds_per_clip, stems)
    student = load_student_step(student_path)[0] if student_path is not None and {"student", "segments"} & set(groups) else None
    if student is not None and "student" in groups:
        rows += _student_rows(student, clips, seconds_per_clip, stems)
    live = None
    if "live" in groups:
        from stemstream.realtime.models.registry import load_model

        live = load_model(args.live_model, backend=args.live_backend)
        rows += _live_rows(args, live, clips, fullband, rate, stems)

    seg_rows = _segments(args, teacher, student, live, rate, stems, separate_long, teacher_record, groups)
    result = {"machine": f"{platform.node()} ({platform.machine()}), {args.threads} torch thread(s), 2-core CPU dev box",
              "teacher": str(teacher_path), "student": str(student_path) if student_path else None,
              "live": f"{args.live_model} ({args.live_backend})" if live is not None else None,
              "teacher_record": {k: teacher_record.get(k) for k in ("data", "steps", "wall_seconds", "params")},
              "data": data_desc, "window_samples": w, "sample_rate": rate, "measured_groups": list(groups),
              "table": rows, "segments": seg_rows}
    if "diagnostics" in groups:
        from stemstream.benchmarks.diffusion_diagnose import diagnose

        result["diagnostics"] = diagnose(teacher, clips)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    previous_path = out / "diffusion.json"
    if groups != GROUPS and previous_path.exists():
        previous = json.loads(previous_path.read_text())
        for key in ("student", "live"):
            result[key] = result[key] or previous.get(key)
        result["table"] = _merge(previous.get("table", []), rows, groups, "table")
        result["segments"] = _merge(previous.get("segments", []), seg_rows, groups, "segments")
        if "diagnostics" not in groups and "diagnostics" in previous:
            result["diagnostics"] = previous["diagnostics"]
    from stemstream.benchmarks.report import write_report

    write_report(out, "diffusion", result, _markdown(result, stems))
    return 0


#: one sampler run of the teacher table: (kind, steps, corrections, gamma, constrained stem or -1 for the last)
TeacherRun = tuple[str, int, int, float, int]


def teacher_runs(stems: int) -> list[TeacherRun]:
    """The teacher table's sampler runs, in table order. ``gamma`` is the Gaussian likelihood's
    scale; 0.0 on a Dirac run means no churn."""
    # Dirac from the few steps a CPU affords up to the thesis' hundreds
    runs = [("dirac", 8, 0, 0.75), ("dirac", 8, 1, 0.75), ("dirac", 16, 0, 0.75), ("dirac", 16, 1, 0.75),
            ("dirac", 32, 0, 0.75), ("dirac", 32, 1, 0.75),
            ("dirac", 64, 0, 0.75), ("dirac", 150, 0, 0.75), ("dirac", 400, 0, 0.75),
            ("gaussian", 32, 0, 0.75), ("gaussian", 32, 1, 0.75), ("gaussian", 32, 0, 2.0), ("gaussian", 32, 1, 2.0),
            ("dirac", 16, 0, 0.0), ("dirac-projected", 1, 0, 0.0), ("dirac-projected", 2, 0, 0.0),
            ("dirac-projected", 4, 0, 0.0), ("dirac-projected", 16, 0, 0.0), ("dirac-projected", 32, 0, 0.0),
            ("oracle dirac", 16, 0, 0.0), ("oracle dirac", 64, 0, 0.0), ("oracle dirac", 150, 0, 0.0),
            ("oracle dirac-projected", 16, 0, 0.0)]
    # Dirac with each other stem constrained (the thesis' Table 4.4, left): that stem takes every error of the rest
    return [r + (-1,) for r in runs] + [("dirac", 32, 0, 0.75, k) for k in range(stems - 1)]


def _teacher_rows(teacher: Any, clips: list[np.ndarray], groups: tuple[str, ...], seconds_per_clip: float,
                  stems: tuple[str, ...], runs: list[TeacherRun] | None = None) -> list[dict[str, Any]]:
    """The teacher's samplers (group ``teacher``) and the oracle-denoiser checks (``oracle``):
    ``runs``, default :func:`teacher_runs`."""
    from stemstream.realtime.diffusion.samplers import (
        Conditioning,
        karras_sigmas,
        network_evaluations,
        sample_dirac,
        sample_dirac_projected,
        sample_gaussian,
    )

    configs = teacher_runs(len(stems)) if runs is None else runs
    rows = []
    for kind, steps, corr, gamma, constrained in configs:
        group = "oracle" if kind.startswith("oracle") else "teacher"
        if group not in groups:
            continue
        base = kind.replace("oracle ", "")
        sampler = {"dirac": sample_dirac, "dirac-projected": sample_dirac_projected, "gaussian": sample_gaussian}[base]
        churn = 40.0 if kind == "gaussian" else (0.0 if gamma == 0.0 and kind == "dirac" else 20.0)
        scores, times = [], []
        for i, clip in enumerate(clips):
            clean = torch.from_numpy(clip)[None]
            gen = torch.Generator().manual_seed(100 + i)
            sig = karras_sigmas(steps)
            x = torch.randn(clean.shape, generator=gen) * float(sig[0])
            cond = Conditioning(mixture=clean.sum(dim=1), gamma_scale=gamma or 0.75, constrained=constrained)
            den = (lambda z, sigma, c=clean: c) if group == "oracle" else teacher
            with torch.inference_mode():
                est, dt = _time(lambda: sampler(den, x, sig, cond, s_churn=churn, corrections=corr, generator=gen))
            scores.append(_sisdri(est[0].numpy(), clip))
            times.append(dt)
        who = "oracle denoiser (sampler check)," if group == "oracle" else "teacher"
        label = f"{who} {base.capitalize()} {steps} steps" + (" + correction" if corr else "") + f" (S_churn {churn:g}"
        label += f", gamma {gamma:g} sigma)" if kind == "gaussian" else ")"
        label += f", {stems[constrained]} constrained" if constrained >= 0 else ""
        rows.append(_row(label, scores, network_evaluations(steps, corr), times, seconds_per_clip, stems, group))
    return rows


def _student_rows(student: Any, clips: list[np.ndarray], seconds_per_clip: float, stems: tuple[str, ...]) -> list[dict[str, Any]]:
    """The consistency student at 1, 2 and 4 steps."""
    from stemstream.realtime.diffusion.student import sample_student

    rows = []
    for k in (1, 2, 4):
        scores, times = [], []
        for i, clip in enumerate(clips):
            clean = torch.from_numpy(clip)[None]
            noise = torch.randn((k,) + tuple(clean.shape), generator=torch.Generator().manual_seed(200 + i))
            with torch.inference_mode():
                est, dt = _time(lambda: sample_student(student, clean.sum(dim=1), None, k, noise))
            scores.append(_sisdri(est[0].numpy(), clip))
            times.append(dt)
        rows.append(_row(f"student {k} step{'s' if k > 1 else ''}", scores, k, times, seconds_per_clip, stems, "student"))
    return rows


def _segments(args: argparse.Namespace, teacher: Any, student: Any, live: Any, rate: int, stems: tuple[str, ...],
              separate_long: Any, teacher_record: dict[str, Any], groups: tuple[str, ...]) -> list[dict[str, Any]]:
    """Naive / independent / autoregressive on ``--long-files`` files of ``--long-seconds``
    (group ``segments``), and the live model on the same files (group ``live``)."""
    if "segments" not in groups and live is None:
        return []
    net = teacher.config
    w = net.segment_samples
    samples = int(args.long_seconds * rate) // net.valid_multiple * net.valid_multiple
    files, _, fullband = _eval_clips(args.data, teacher_record.get("data", ""), samples, rate, int(args.long_files), 30_000)
    rows = []
    steps = int(args.segment_steps)
    for mode in ("naive", "independent", "autoregressive") if "segments" in groups else ():
        scores, times, evals = [], [], 0
        for i, clean_np in enumerate(files):
            clean = torch.from_numpy(clean_np)[None]
            gen = torch.Generator().manual_seed(300 + i)
            with torch.inference_mode():
                est, dt = _time(lambda: separate_long(teacher, clean.sum(dim=1), stems=len(stems), segment_samples=w, mode=mode,
                                                      overlap_samples=w // 2, steps=steps, s_churn=0.0,
                                                      valid_multiple=net.valid_multiple, generator=gen))
            windows = 1 if mode == "naive" else (-(-samples // w) if mode == "independent" else -(-samples // (w // 2)))
            evals = windows * steps
            scores.append(_sisdri(est[0].numpy(), clean_np))
            times.append(dt)
        rows.append(_row(f"teacher Dirac {steps} steps (S_churn 0), {mode}", scores, evals, times, samples / rate, stems,
                         "segments"))
    if student is not None and "segments" in groups:
        from stemstream.realtime.diffusion.student import DiffusionSegmentModel
        from stemstream.realtime.engine.offline import separate_array

        class _Independent(DiffusionSegmentModel):
            def separate_segment(self, audio: np.ndarray, context: np.ndarray | None) -> np.ndarray:
                return super().separate_segment(audio, None)

        hop = w - student.config.context_samples
        for label, cls in (("independent (context dropped)", _Independent), ("autoregressive", DiffusionSegmentModel)):
            scores, times = [], []
            for clean_np in files:
                model = cls(student, steps=1, channels=1)
                mix = clean_np.sum(axis=0)  # (1, T)
                est, dt = _time(lambda: separate_array(model, mix, rate))
                scores.append(_sisdri(est, clean_np))
                times.append(dt)
            rows.append(_row(f"student 1 step, {label}, streaming engine", scores, -(-samples // hop) + 1, times,
                             samples / rate, stems, "segments"))
    if live is not None:
        rows += _live_rows(args, live, files, fullband, rate, stems)
    return rows


def _live_rows(args: argparse.Namespace, live: Any, files: list[np.ndarray], fullband: list[dict[str, Any]], rate: int,
               stems: tuple[str, ...]) -> list[dict[str, Any]]:
    """The live model given the 8 kHz mono mixture, and (synthetic set) the full-band one."""
    name = f"live ({args.live_model}, {args.live_backend}), streaming engine"
    rows = [live_row(live, files, None, rate, stems, f"{name}, {rate // 1000} kHz mono input")]
    if fullband:
        rows.append(live_row(live, files, fullband, rate, stems, f"{name}, full-band input"))
    return rows


def _markdown(result: dict[str, Any], stems: tuple[str, ...]) -> str:
    def table(rows: list[dict[str, Any]]) -> list[str]:
        head = ["model", *stems, "all", "network evals", "latency (ms)", "RTF"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in rows:
            cells = [r["model"]] + ["-" if r[s] is None else f"{r[s]:.2f}" for s in stems] + [
                "diverged" if r["all"] is None else f"{r['all']:.2f}", str(r["network_evals"]), f"{r['latency_ms']:.0f}", f"{r['rtf']:.3f}"]
            lines.append("| " + " | ".join(cells) + " |")
        return lines

    rec = result["teacher_record"]
    lines = [
        "# Diffusion separators (SI-SDRi dB, mono, %d Hz)" % result["sample_rate"], "",
        f"Machine: {result['machine']} (ONNX Runtime: 1 thread). Data: {result['data']}.",
        f"Teacher: {result['teacher']} ({rec.get('params')} params, {rec.get('steps')} steps, "
        f"{rec.get('wall_seconds')} s of training on {rec.get('data')}). Student: {result['student']}.",
        f"Latency: wall-clock per window of {result['window_samples']} samples; RTF = time / audio time.",
    ]
    live = next((r for r in result["table"] + result["segments"] if _group_of(r, "") == "live" and "hops_per_second" in r), None)
    if live is not None:
        lines.append(
            f"Live: the shipped {result.get('live')} model (44.1 kHz stereo) through the streaming engine (`separate_array`). "
            "'8 kHz mono input': the diffusion models' input - the engine resamples the 8 kHz mono mixture to 44.1 kHz, "
            "feeds both stereo inputs, averages the two output channels and resamples the stems back to 8 kHz (this input "
            "has nothing above 4 kHz, which the live model never saw in training). 'full-band input': the same excerpts "
            "taken from the songs at 44.1 kHz stereo (10-20 ms to spare each side), stems averaged over channels and "
            "resampled to 8 kHz. Both are scored against the same 8 kHz references as the diffusion rows. Network evals: "
            f"the hops a live stream runs for that audio ({live['hops_per_second']:.1f} hops per second); latency and RTF: "
            "wall clock of `separate_array` including its final flush (model time alone: `model_latency_ms` in the JSON). "
            f"Algorithmic latency {live['algorithmic_latency_ms']:.1f} ms ({live['engine_latency_ms']:.1f} ms with the "
            "engine's 8 kHz resamplers)."
        )
    dates = sorted({r["measured"] for r in result["table"] + result["segments"] if "measured" in r})
    if len(dates) > 1 or any("measured" not in r for r in result["table"] + result["segments"]):
        lines.append(f"Rows were measured at different times ({', '.join(dates)}; rows without a `measured` date in "
                     "diffusion.json come from an earlier run), so their latencies compare only on an equally loaded machine.")
    lines += ["", *table(result["table"]), "", "## Long files: naive vs independent vs autoregressive segments", "",
              *table(result["segments"]), ""]
    if "diagnostics" in result:
        from stemstream.benchmarks.diffusion_diagnose import markdown

        lines += [*markdown(result["diagnostics"]), ""]
    return "\n".join(lines)
