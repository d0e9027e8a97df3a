"""The refiner rows of ``stemstream bench diffusion`` (groups ``refiner`` and ``refiner-segments``):
the diffusion refiner (``quality-refined``) beside its base, full band, stereo, 44.1 kHz.

``refiner``: the middle window (``segment_samples``, 1.49 s) of ``--refiner-excerpts`` test songs;
the base runs over a second of audio before it (a warm state, as in a stream) and past its end
by its latency; the window is normalised as the segment model does. Rows: the base alone, the
teacher's Dirac separator on the residual (Algorithm 2; its projected step) at several step
counts, the oracle-denoiser checks (the samplers given the true residual), the student at 1, 2
and 4 steps. Latency: wall clock per window (PyTorch, ``--threads``); RTF: that over the window.

``refiner-segments``: ``--refiner-long-files`` songs, ``--refiner-long-seconds`` each, through the
streaming engine (``separate_array``; the base and the refiner's network on ``--refiner-backend``,
one thread each): the base alone; the refiner with every segment refined alone (independent:
the context dropped, the base still continuous), autoregressive (each segment's overlap
conditioned on the previous segment's output), and naive (one window over the whole file,
PyTorch). The same for the teacher (projected Dirac step) when a teacher file exists.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stemstream.benchmarks.diffusion_rows import _row, _sisdri, _time

#: Row groups of this module.
REFINER_GROUPS: tuple[str, ...] = ("refiner", "refiner-segments")
#: Seconds of audio the base runs over before an excerpt (its state warm, as in a stream).
PREROLL_SECONDS = 1.0
#: The teacher's step counts in the refiner table, per sampler (``refiner.REFINER_SAMPLERS``).
TEACHER_STEPS: dict[str, tuple[int, ...]] = {"dirac": (8, 16, 32), "dirac-projected": (1, 2, 4, 8, 16)}
#: The teacher's steps (projected Dirac step) in the long-file rows.
SEGMENT_TEACHER_STEPS = 8


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The refiner's options of ``stemstream bench diffusion``."""
    parser.add_argument("--refiner", default=None, metavar="NAME|FILE",
                        help="refiner student (default: the shipped quality-refined, else runs/refiner-student/student.safetensors)")
    parser.add_argument("--refiner-teacher", default=None, metavar="FILE",
                        help="refiner teacher (default runs/refiner-teacher/teacher.safetensors; rows skipped without one)")
    parser.add_argument("--refiner-excerpts", type=int, default=6, help="windows for the refiner table")
    parser.add_argument("--refiner-long-files", type=int, default=4, help="files for the refiner's segment comparison")
    parser.add_argument("--refiner-long-seconds", type=float, default=8.0, help="length of each of those files, seconds")
    parser.add_argument("--refiner-backend", default="onnx", help="backend of the engine rows (onnx or torch)")


class _Counted:
    """A model passed through, counting its segments (or hops) run."""

    def __init__(self, model: Any) -> None:
        self.model, self.calls = model, 0
        for name in ("kind", "info", "segment_samples", "context_samples", "hop_samples", "max_hops_per_call"):
            if hasattr(model, name):
                setattr(self, name, getattr(model, name))

    def separate_segment(self, audio: np.ndarray, context: np.ndarray | None) -> np.ndarray:
        self.calls += 1
        return self.model.separate_segment(audio, context)

    def init_state(self) -> Any:
        return self.model.init_state()

    def process_hops(self, audio: np.ndarray, state: Any) -> Any:
        self.calls += audio.shape[-1] // self.model.hop_samples
        return self.model.process_hops(audio, state)


def _paths(args: argparse.Namespace) -> tuple[Path | None, Path | None]:
    from stemstream.realtime.models import registry

    student = Path(args.refiner) if args.refiner and args.refiner.endswith(".safetensors") else None
    if student is None:
        name = args.refiner or "quality-refined"
        base = registry.REFINED.get(name, ("quality", 1))[0]
        for p in (registry.refiner_path(base), Path(getattr(args, "runs", "runs")) / "refiner-student/student.safetensors"):
            if p.is_file():
                student = p
                break
    teacher = Path(args.refiner_teacher) if args.refiner_teacher else Path("runs/refiner-teacher/teacher.safetensors")
    return student, teacher if teacher.is_file() else None


def _songs(data: str, count: int) -> list[np.ndarray]:
    from stemstream.export.data.loaders import load_tracks
    from stemstream.realtime.stems import STEMS

    songs = []
    for track in load_tracks(str(Path(data) / "test")):
        songs.append(np.ascontiguousarray(track.stack(STEMS), dtype=np.float32))
        if len(songs) >= count:
            break
    return songs


def _window(song: np.ndarray, base: Any, samples: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The song's middle ``samples`` ``(S, C, W)`` and the base's aligned stems for it (warm state)."""
    from stemstream.export.train.refiner_data import run_base

    pre, lat = int(PREROLL_SECONDS * 44100), base.config.latency_samples
    start = max(pre, (song.shape[-1] - samples) // 2)
    if start + samples + lat > song.shape[-1]:
        return None
    mix = song[..., start - pre : start + samples + lat].sum(axis=0)
    est = run_base(base, mix[None])[0][..., pre : pre + samples]
    return song[..., start : start + samples], est


def _table(student: Any, teacher: Any, base: Any, songs: list[np.ndarray], stems: tuple[str, ...]) -> list[dict[str, Any]]:
    from stemstream.realtime.diffusion.refiner import refine, sample_refiner_student
    from stemstream.realtime.diffusion.refiner_net import TARGET_RMS

    net = student.config.net
    w = net.segment_samples
    windows = [p for p in (_window(s, base, w) for s in songs) if p is not None]
    seconds = w / net.sample_rate
    batch = []
    for clean, est in windows:
        mix = clean.sum(axis=0)
        gain = TARGET_RMS / max(float(np.sqrt(np.mean(mix**2))), 1e-6)
        batch.append((torch.from_numpy(mix * gain)[None], torch.from_numpy(clean * gain)[None], torch.from_numpy(est * gain)[None]))
    rows = [_row(f"base ({net.base}) alone", [_sisdri(e[0].numpy(), c[0].numpy()) for _, c, e in batch], 0, [0.0],
                 seconds, stems, "refiner")]

    def measure(label: str, run: Any, evals: int) -> None:
        scores, times = [], []
        for i, (mix, clean, est) in enumerate(batch):
            with torch.inference_mode():
                out, dt = _time(lambda: run(i, mix, clean, est))
            scores.append(_sisdri(out[0].numpy(), clean[0].numpy()))
            times.append(dt)
        rows.append(_row(label, scores, evals, times, seconds, stems, "refiner"))

    runs: list[tuple[str, str, int]] = [("dirac", "Dirac (Algorithm 2)", k) for k in TEACHER_STEPS["dirac"]]
    runs += [("dirac-projected", "Dirac, projected step", k) for k in TEACHER_STEPS["dirac-projected"]]
    if teacher is not None:
        for sampler, label, k in runs:
            measure(f"teacher, {label}, {k} step{'s' if k > 1 else ''}",
                    lambda i, m, c, e, s=sampler, k=k: refine(teacher, m, e, steps=k, sampler=s,
                                                              generator=torch.Generator().manual_seed(100 + i)), k)
    for sampler, label, k in (("dirac", "Dirac (Algorithm 2)", 64), ("dirac-projected", "Dirac, projected step", 16)):
        measure(f"oracle denoiser (sampler check), {label}, {k} steps",
                lambda i, m, c, e, s=sampler, k=k: refine(lambda x, sigma: c - e, m, e, steps=k, sampler=s,
                                                          generator=torch.Generator().manual_seed(100 + i)), 0)
    for k in (1, 2, 4):
        measure(f"student, {k} step{'s' if k > 1 else ''}",
                lambda i, m, c, e, k=k: sample_refiner_student(
                    student, m, e, None, k, torch.randn((k, *c.shape), generator=torch.Generator().manual_seed(200 + i))), k)
    return rows


def _segments(args: argparse.Namespace, student_path: Path, student: Any, teacher: Any, base_name: str,
              songs: list[np.ndarray], stems: tuple[str, ...]) -> list[dict[str, Any]]:
    from stemstream.realtime.backends import open_backend
    from stemstream.realtime.diffusion.refined_model import RefinedSegmentModel, load_refined
    from stemstream.realtime.diffusion.refiner import refine, sample_refiner_student
    from stemstream.realtime.engine.offline import separate_array
    from stemstream.realtime.models.registry import load_torch_model
    from stemstream.export.train.refiner_data import run_base
    from stemstream.realtime.diffusion.refiner_net import TARGET_RMS

    net = student.config.net
    samples = int(args.refiner_long_seconds * net.sample_rate) // net.valid_multiple * net.valid_multiple
    files = []
    for song in songs:
        start = max(0, (song.shape[-1] - samples) // 2)
        if start + samples <= song.shape[-1]:
            files.append(song[..., start : start + samples])
    seconds = samples / net.sample_rate
    backend = args.refiner_backend
    module = load_torch_model(base_name)
    rows = []

    def engine(label: str, make: Any, steps: int) -> None:
        scores, times, calls = [], [], []
        for clean in files:
            model = _Counted(make())
            out, dt = _time(lambda: separate_array(model, clean.sum(axis=0), net.sample_rate))
            scores.append(_sisdri(out, clean))
            times.append(dt)
            calls.append(model.calls)
        rows.append(_row(label, scores, int(np.median(calls)) * steps, times, seconds, stems, "refiner-segments"))

    def naive(label: str, run: Any, evals: int) -> None:
        scores, times = [], []
        for i, clean in enumerate(files):
            def whole() -> np.ndarray:
                mix = clean.sum(axis=0)
                est = run_base(module, mix[None])
                gain = TARGET_RMS / max(float(np.sqrt(np.mean(mix**2))), 1e-6)
                with torch.inference_mode():
                    out = run(i, torch.from_numpy(mix * gain)[None], torch.from_numpy(est * gain))
                return out[0].numpy() / gain
            out, dt = _time(whole)
            scores.append(_sisdri(out, clean))
            times.append(dt)
        rows.append(_row(label, scores, evals, times, seconds, stems, "refiner-segments"))

    def base_model() -> Any:
        return open_backend(backend, module, base_name)

    engine(f"base ({base_name}, {backend}) alone, streaming engine", base_model, 0)
    for k in (1, 2):
        for label, ar in (("independent (context dropped)", False), ("autoregressive", True)):
            engine(f"student {k} step{'s' if k > 1 else ''}, {label}, streaming engine ({backend})",
                   lambda k=k, ar=ar: load_refined(student_path, base_model(), steps=k, backend=backend, autoregressive=ar),
                   k)
    naive("student 1 step, naive (one window over the whole file, PyTorch)",
          lambda i, m, e: sample_refiner_student(student, m, e, None, 1,
                                                 torch.randn((1, *e.shape), generator=torch.Generator().manual_seed(i))), 1)
    if teacher is not None:
        n = SEGMENT_TEACHER_STEPS

        class TeacherSegments(RefinedSegmentModel):
            def refine(self, mixture: torch.Tensor, base: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
                return refine(teacher, mixture, base, steps=n, sampler="dirac-projected", context=context,
                              generator=torch.Generator().manual_seed(0))

        for label, ar in (("independent", False), ("autoregressive", True)):
            engine(f"teacher, Dirac projected {n} steps, {label}, streaming engine (PyTorch)",
                   lambda ar=ar: TeacherSegments(base_model(), student, autoregressive=ar), n)
        naive(f"teacher, Dirac projected {n} steps, naive (one window, PyTorch)",
              lambda i, m, e: refine(teacher, m, e, steps=n, sampler="dirac-projected",
                                     generator=torch.Generator().manual_seed(i)), n)
    return rows


def refiner_results(args: argparse.Namespace, groups: tuple[str, ...]) -> dict[str, Any]:
    """The ``refiner`` and ``refiner-segments`` groups asked for in ``groups``; ``{}`` when neither
    is asked, ``{"refiner_note": ...}`` when there is no refiner to measure."""
    from stemstream.realtime.diffusion.refiner import load_refiner_student, load_refiner_teacher
    from stemstream.realtime.models.registry import load_torch_model

    if not set(REFINER_GROUPS) & set(groups):
        return {}
    student_path, teacher_path = _paths(args)
    if student_path is None:
        return {"refiner_note": "no refiner student (quality-refiner.safetensors or runs/refiner-student)"}
    student, _ = load_refiner_student(student_path)
    teacher = load_refiner_teacher(teacher_path) if teacher_path is not None else None
    stems = tuple(student.config.net.stems)
    out: dict[str, Any] = {"refiner_student": str(student_path), "refiner_teacher": str(teacher_path) if teacher else None}
    if "refiner" in groups:
        songs = _songs(args.data, int(args.refiner_excerpts))
        out["refiner"] = _table(student, teacher, load_torch_model(student.config.net.base), songs, stems)
    if "refiner-segments" in groups:
        songs = _songs(args.data, int(args.refiner_long_files))
        out["refiner_segments"] = _segments(args, student_path, student, teacher, student.config.net.base, songs,
                                            stems)
    return out


def markdown(result: dict[str, Any], table: Any) -> list[str]:
    """The refiner sections of ``diffusion.md`` (``table(rows)`` formats rows as the main table does)."""
    if "refiner_note" in result and "refiner" not in result:
        return ["## Refiner", "", f"Not measured: {result['refiner_note']}.", ""]
    lines = []
    if result.get("refiner"):
        lines += ["## Refiner (SI-SDRi dB, stereo, 44.1 kHz)", "",
                  f"Student: {result.get('refiner_student')}; teacher: {result.get('refiner_teacher')}. One window of the "
                  "refiner's segment from the middle of each test song; latency: wall clock per window.", "",
                  *table(result["refiner"]), ""]
    if result.get("refiner_segments"):
        lines += ["## Refiner, long files: naive vs independent vs autoregressive segments", "",
                  *table(result["refiner_segments"]), ""]
    return lines
