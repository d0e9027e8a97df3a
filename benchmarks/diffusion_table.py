"""``stemstream bench diffusion``: a table like the thesis' Table 4.5 for our diffusion models.

Rows: the mixture baseline; the teacher's Dirac separator at several step counts with and
without a correction step; the Gaussian-likelihood separator; the consistency student at
1/2/4 steps. Columns: SI-SDRi per stem and mean (dB, non-silent stems only), network
evaluations, latency per window (ms, wall clock, one thread) and real-time factor
(processing time / audio time). A second table compares naive, independent and
autoregressive segment sampling on longer files. Writes ``diffusion.json`` and
``diffusion.md`` under ``--out``.

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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``stemstream bench diffusion``."""
    parser.add_argument("--teacher", default=None, help="teacher weights (default runs/diffusion-teacher/teacher.safetensors, else shipped)")
    parser.add_argument("--student", default=None, help="student weights (default runs/diffusion-student/student.safetensors, else shipped)")
    parser.add_argument("--data", default="data/synth", help="synthetic data root (uses DATA/test)")
    parser.add_argument("--excerpts", type=int, default=6, help="excerpts of one window for the main table")
    parser.add_argument("--long-files", type=int, default=2, help="long files for the segment comparison")
    parser.add_argument("--long-seconds", type=float, default=4.0, help="length of each long file, seconds")
    parser.add_argument("--segment-steps", type=int, default=16, help="teacher steps in the segment comparison")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--out", default="runs/bench/diffusion", help="output folder")


def _first(*paths: str | Path | None) -> Path | None:
    return next((Path(p) for p in paths if p and Path(p).exists()), None)


def _sisdri(estimate: np.ndarray, clean: np.ndarray) -> np.ndarray:
    """Per-stem SI-SDRi ``(S,)`` (NaN for silent references); arrays ``(S, C, T)``."""
    from benchmarks.metrics import si_sdr_improvement

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


def _eval_clips(data_root: str, teacher_data: str, samples: int, rate: int, count: int, seed: int) -> tuple[list[np.ndarray], str]:
    """``count`` clean stem sets ``(4, 1, samples)`` normalised like training, and a description."""
    from export.train.diffusion_data import normalise_excerpt, synth_ready, toy_excerpt

    test_dir = Path(data_root) / "test"
    if synth_ready(data_root) and test_dir.is_dir() and teacher_data == "synthetic":
        import soxr

        from export.data.loaders import load_tracks
        from realtime.stems import STEMS

        clips = []
        for track in load_tracks(str(test_dir)):
            mono = track.stack(STEMS).mean(axis=1)
            res = soxr.resample(mono.T, track.sample_rate, rate).T
            start = max(0, (res.shape[-1] - samples) // 2)
            clip = np.ascontiguousarray(res[:, start : start + samples], dtype=np.float32)
            if clip.shape[-1] == samples and np.any(clip):
                clips.append(normalise_excerpt(clip[:, None, :]))
            if len(clips) >= count:
                break
        return clips, f"{len(clips)} songs of {test_dir} (middle excerpt, mono, {rate} Hz)"
    rng = np.random.default_rng(seed)
    clips = [normalise_excerpt(toy_excerpt(rng, samples, rate)) for _ in range(count)]
    return clips, f"{count} held-out procedural toy excerpts (seed {seed}; the synthetic set was not used for training)"


def _time(fn: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def _row(name: str, scores: list[np.ndarray], evals: int, seconds: list[float], audio_seconds: float,
         stems: tuple[str, ...]) -> dict[str, Any]:
    arr = np.array(scores)
    if not np.any(~np.isnan(arr)):
        return {"model": name, **{s: None for s in stems}, "all": None, "network_evals": evals,
                "latency_ms": 1000 * float(np.median(seconds)), "rtf": float(np.median(seconds)) / audio_seconds}
    per_stem = {s: float(np.nanmean(arr[:, i])) if np.any(~np.isnan(arr[:, i])) else None for i, s in enumerate(stems)}
    return {"model": name, **per_stem, "all": float(np.nanmean(arr)), "network_evals": evals,
            "latency_ms": 1000 * float(np.median(seconds)), "rtf": float(np.median(seconds)) / audio_seconds}


def run(args: argparse.Namespace) -> int:
    """Run the benchmark; returns 0."""
    from export.distill import load_teacher
    from realtime.diffusion.samplers import (
        Conditioning,
        karras_sigmas,
        network_evaluations,
        sample_dirac,
        sample_dirac_projected,
        sample_gaussian,
    )
    from realtime.diffusion.segments import separate_long
    from realtime.diffusion.student import load_student_step, sample_student
    from realtime.errors import bad_value
    from realtime.models.weights import read_weights

    torch.set_num_threads(int(args.threads))
    root = Path(__file__).resolve().parents[1]
    teacher_path = _first(args.teacher, "runs/diffusion-teacher/teacher.safetensors", root / "realtime/weights/diffusion-teacher.safetensors")
    student_path = _first(args.student, "runs/diffusion-student/student.safetensors", root / "realtime/weights/diffusion-1step.safetensors")
    if teacher_path is None:
        raise bad_value("--teacher", args.teacher, "a teacher weight file (stemstream train --config diffusion-teacher)")
    teacher = load_teacher(teacher_path)
    teacher_record = json.loads(read_weights(teacher_path)[1].get("run_record", "{}"))
    net = teacher.config
    w, rate, stems = net.segment_samples, net.sample_rate, net.stems
    clips, data_desc = _eval_clips(args.data, teacher_record.get("data", ""), w, rate, int(args.excerpts), 20_000)
    seconds_per_clip = w / rate
    rows: list[dict[str, Any]] = []

    rows.append(_row("mixture", [_sisdri(np.repeat(c.sum(0, keepdims=True), len(stems), 0), c) for c in clips],
                     0, [0.0], seconds_per_clip, stems))
    configs = [("dirac", 8, 0, 0.75), ("dirac", 8, 1, 0.75), ("dirac", 16, 0, 0.75), ("dirac", 16, 1, 0.75),
               ("dirac", 32, 0, 0.75), ("dirac", 32, 1, 0.75), ("gaussian", 32, 0, 0.75), ("gaussian", 32, 1, 0.75),
               ("gaussian", 32, 0, 2.0), ("gaussian", 32, 1, 2.0), ("dirac", 16, 0, 0.0), ("dirac-projected", 16, 0, 0.0),
               ("dirac-projected", 32, 0, 0.0), ("oracle dirac", 16, 0, 0.0), ("oracle dirac-projected", 16, 0, 0.0)]
    for kind, steps, corr, gamma in configs:
        base = kind.replace("oracle ", "")
        sampler = {"dirac": sample_dirac, "dirac-projected": sample_dirac_projected, "gaussian": sample_gaussian}[base]
        churn = 40.0 if kind == "gaussian" else (0.0 if gamma == 0.0 and kind == "dirac" else 20.0)
        scores, times = [], []
        for i, clip in enumerate(clips):
            clean = torch.from_numpy(clip)[None]
            gen = torch.Generator().manual_seed(100 + i)
            sig = karras_sigmas(steps)
            x = torch.randn(clean.shape, generator=gen) * float(sig[0])
            cond = Conditioning(mixture=clean.sum(dim=1), gamma_scale=gamma or 0.75)
            den = (lambda z, sigma, c=clean: c) if kind.startswith("oracle") else teacher
            with torch.inference_mode():
                est, dt = _time(lambda: sampler(den, x, sig, cond, s_churn=churn, corrections=corr, generator=gen))
            scores.append(_sisdri(est[0].numpy(), clip))
            times.append(dt)
        who = "oracle denoiser (sampler check)," if kind.startswith("oracle") else "teacher"
        label = f"{who} {base.capitalize()} {steps} steps" + (" + correction" if corr else "") + f" (S_churn {churn:g}"
        label += f", gamma {gamma:g} sigma)" if kind == "gaussian" else ")"
        rows.append(_row(label, scores, network_evaluations(steps, corr), times, seconds_per_clip, stems))
    student = None
    if student_path is not None:
        student, _ = load_student_step(student_path)
        for k in (1, 2, 4):
            scores, times = [], []
            for i, clip in enumerate(clips):
                clean = torch.from_numpy(clip)[None]
                noise = torch.randn((k,) + tuple(clean.shape), generator=torch.Generator().manual_seed(200 + i))
                with torch.inference_mode():
                    est, dt = _time(lambda: sample_student(student, clean.sum(dim=1), None, k, noise))
                scores.append(_sisdri(est[0].numpy(), clip))
                times.append(dt)
            rows.append(_row(f"student {k} step{'s' if k > 1 else ''}", scores, k, times, seconds_per_clip, stems))

    seg_rows = _segments(args, teacher, student, rate, stems, separate_long, teacher_record)
    result = {"machine": f"{platform.node()} ({platform.machine()}), {args.threads} torch thread(s), 2-core CPU dev box",
              "teacher": str(teacher_path), "student": str(student_path) if student_path else None,
              "teacher_record": {k: teacher_record.get(k) for k in ("data", "steps", "wall_seconds", "params")},
              "data": data_desc, "window_samples": w, "sample_rate": rate, "table": rows, "segments": seg_rows}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "diffusion.json").write_text(json.dumps(result, indent=2))
    (out / "diffusion.md").write_text(_markdown(result, stems))
    return 0


def _segments(args: argparse.Namespace, teacher: Any, student: Any, rate: int, stems: tuple[str, ...], separate_long: Any,
              teacher_record: dict[str, Any]) -> list[dict[str, Any]]:
    """Naive / independent / autoregressive on ``--long-files`` files of ``--long-seconds``."""
    net = teacher.config
    w = net.segment_samples
    samples = int(args.long_seconds * rate) // net.valid_multiple * net.valid_multiple
    files, _ = _eval_clips(args.data, teacher_record.get("data", ""), samples, rate, int(args.long_files), 30_000)
    rows = []
    steps = int(args.segment_steps)
    for mode in ("naive", "independent", "autoregressive"):
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
        rows.append(_row(f"teacher Dirac {steps} steps (S_churn 0), {mode}", scores, evals, times, samples / rate, stems))
    if student is not None:
        from realtime.diffusion.student import DiffusionSegmentModel
        from realtime.engine.offline import separate_array

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
                             samples / rate, stems))
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
        f"Machine: {result['machine']}. Data: {result['data']}.",
        f"Teacher: {result['teacher']} ({rec.get('params')} params, {rec.get('steps')} steps, "
        f"{rec.get('wall_seconds')} s of training on {rec.get('data')}). Student: {result['student']}.",
        f"Latency: wall-clock per window of {result['window_samples']} samples; RTF = time / audio time.", "",
        *table(result["table"]), "", "## Long files: naive vs independent vs autoregressive segments", "",
        *table(result["segments"]), "",
    ]
    return "\n".join(lines)
