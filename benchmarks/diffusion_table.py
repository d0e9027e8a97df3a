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

from stemstream.benchmarks.diffusion_rows import (
    GROUPS, _eval_clips, _first, _group_of, _groups, _merge, _row, _sisdri, _time, live_row,
)


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
    from stemstream.benchmarks.diffusion_refiner import add_arguments as refiner_arguments

    refiner_arguments(parser)


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
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "teacher": str(teacher_path), "student": str(student_path) if student_path else None,
              "live": f"{args.live_model} ({args.live_backend})" if live is not None else None,
              "teacher_record": {k: teacher_record.get(k) for k in ("data", "steps", "wall_seconds", "params")},
              "data": data_desc, "window_samples": w, "sample_rate": rate, "measured_groups": list(groups),
              "table": rows, "segments": seg_rows}
    if "diagnostics" in groups:
        from stemstream.benchmarks.diffusion_diagnose import diagnose

        result["diagnostics"] = diagnose(teacher, clips)
    from stemstream.benchmarks.diffusion_refiner import refiner_results

    result.update(refiner_results(args, groups))
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
        for group, key in (("refiner", "refiner"), ("refiner-segments", "refiner_segments")):
            if group not in groups and key in previous:  # kept as measured before
                result[key] = previous[key]
                for info in ("refiner_student", "refiner_teacher"):
                    result.setdefault(info, previous.get(info))
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
        f"Machine: {result['machine']} (ONNX Runtime: 1 thread), {result.get('date', 'date not recorded')}. "
        f"Data: {result['data']}.",
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
    from stemstream.benchmarks.diffusion_refiner import markdown as refiner_markdown

    lines += refiner_markdown(result, table)
    return "\n".join(lines)
