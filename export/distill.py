"""Consistency distillation of the teacher's Dirac separation sampler into a 1-2 step student.

Song et al. (2023, "Consistency Models", Alg. 2), with the ODE solver ``Phi`` being one Euler
step of the thesis' "MSDM Dirac" sampler (Eq. 4.10, Algorithm 2 without churn) from
``sigma_{n+1}`` to ``sigma_n`` on the teacher's Karras schedule::

    x0 ~ data, y = sum(x0), context = x0[..., :O] with probability p_context (else none)
    x_{n+1} = Dirac(context-overwrite(x0 + sigma_{n+1} z))
    x_n     = Dirac(x_{n+1} + (sigma_n - sigma_{n+1}) g),   d = (x - D_teacher) / sigma
    g       = d - d_N  (``direction="dirac"``, Algorithm 2, default)  or  d - mean_k d_k  (``"projected"``)
    loss    = | f_theta(x_{n+1}, sigma_{n+1}) - f_target(x_n, sigma_n) |^2

``direction="projected"`` uses the projected Dirac update (``sample_dirac_projected``): the same
constraint, stable for the large steps of a short schedule, where Algorithm 2's ``d - d_N``
amplifies the error along the sum direction (see that sampler's docstring). It is exact with an
exact denoiser, but with our teacher it separated worse than ``d - d_N`` (``stemstream bench
diffusion --rows diagnostics``), so the default stays the thesis' step.

``f_target`` is an EMA of the student (decay ``target_decay``). The student starts as the
teacher (extra input channels zero), ``f(x, sigma_min) ~ x`` holds by the EDM
preconditioning. ``truth_weight`` adds the denoising regression ``|f_theta(x_{n+1}) - x0|^2``
as a regulariser, as Consistency Trajectory Models (Kim et al. 2023) add their DSM loss: on
a CPU budget of minutes it is what teaches the student to read the mixture channel at the
highest noise level (set it to 0 for pure consistency distillation). With probability
``p_high`` a pair is drawn from the ``high_pairs`` noisiest levels, where the 1-2 step
student starts.

``stemstream train --config diffusion-student [--steps N] [--out DIR] [--teacher FILE]`` runs it
(teacher ``FILE``, else ``stemstream.export.train.diffusion_fit.default_teacher``: the last teacher run, else the shipped one); writes
``checkpoint.pt`` as it goes, ``student.safetensors`` (+ ``.onnx``) and ``record.json``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from stemstream.export.train.diffusion_data import batches, excerpt_stream, training_data
from stemstream.export.train.diffusion_fit import (
    Fit, budget_minutes, default_teacher, ema_update, mean_sisdri, run_record, run_steps, ship_half,
)
from stemstream.export.train.options import TrainOptions
from stemstream.realtime.diffusion.samplers import dirac_direction, dirac_project, karras_sigmas, projected_direction
from stemstream.realtime.diffusion.student import (
    STUDENT_ARCHITECTURE,
    StudentConfig,
    StudentStep,
    init_student_from_teacher,
    sample_student,
    student_cond_channels,
)
from stemstream.realtime.diffusion.unet import ScoreUNet, load_teacher
from stemstream.realtime.errors import bad_value

LOG = logging.getLogger("stemstream.diffusion")


@dataclass(frozen=True)
class DistillConfig:
    """Hyper-parameters of consistency distillation."""

    schedule_steps: int = 18
    batch: int = 4
    lr: float = 1e-4
    steps: int = 2000
    max_minutes: float = 28.0
    target_decay: float = 0.95
    ema_decay: float = 0.99
    p_context: float = 0.5
    context_fraction: float = 0.5
    truth_weight: float = 0.5
    p_high: float = 0.5
    high_pairs: int = 4
    checkpoint_every: int = 50
    validate_every: int = 250
    threads: int = 1
    seed: int = 1
    #: teacher ODE step: ``dirac`` (Algorithm 2's d - d_N) or ``projected`` (sample_dirac_projected)
    direction: str = "dirac"

    def __post_init__(self) -> None:
        if self.schedule_steps < 2:
            raise bad_value("schedule_steps", self.schedule_steps, "an integer >= 2")
        if not 0 <= self.p_context <= 1:
            raise bad_value("p_context", self.p_context, "a probability in [0, 1]")
        if self.direction not in ("projected", "dirac"):
            raise bad_value("direction", self.direction, "'projected' or 'dirac'")
        if not 0 <= self.context_fraction < 1:
            raise bad_value("context_fraction", self.context_fraction, "a float in [0, 1)")


def make_student(teacher: ScoreUNet, context_fraction: float) -> StudentStep:
    """A student initialised from ``teacher`` with overlap ``context_fraction * W``."""
    net = teacher.config
    v = net.valid_multiple
    context = int(round(net.segment_samples * context_fraction / v)) * v
    cfg = StudentConfig(net=replace(net, cond_channels=student_cond_channels(len(net.stems), net.channels),
                                    mixture_gains=bool(net.frame_size)), context_samples=context)
    student = StudentStep(cfg)
    init_student_from_teacher(student, teacher)
    return student


def cd_loss(student: StudentStep, target: StudentStep, teacher: ScoreUNet, clean: torch.Tensor, sigmas: torch.Tensor,
            cfg: DistillConfig, gen: torch.Generator) -> torch.Tensor:
    """One consistency-distillation loss on ``clean (B, S, C, T)`` (see the module docstring)."""
    b, s, c, t = clean.shape
    o = student.config.context_samples
    mixture = clean.sum(dim=1)
    mask = (torch.rand(b, generator=gen) < cfg.p_context).float()
    context = clean[..., :o] * mask.reshape(b, 1, 1, 1)
    n = torch.randint(0, len(sigmas) - 1, (b,), generator=gen)
    high = torch.rand(b, generator=gen) < cfg.p_high  # extra weight on the levels the 1-2 step student starts at
    n = torch.where(high, torch.randint(0, cfg.high_pairs, (b,), generator=gen), n)
    s_hi, s_lo = sigmas[n], sigmas[n + 1]
    noise = torch.randn(clean.shape, generator=gen)
    # x_{n+1} exactly as StudentStep builds it from (previous=clean, sigma_{n+1}, noise)
    x_hi = clean + s_hi.reshape(b, 1, 1, 1) * noise
    m4 = mask.reshape(b, 1, 1, 1)
    x_hi = torch.cat([m4 * (context + s_hi.reshape(b, 1, 1, 1) * noise[..., :o]) + (1 - m4) * x_hi[..., :o],
                      x_hi[..., o:]], dim=-1)
    x_hi = dirac_project(x_hi, mixture)
    with torch.no_grad():
        denoised = teacher(x_hi, s_hi)
        d = (x_hi - denoised) / s_hi.reshape(b, 1, 1, 1)
        g = projected_direction(d) if cfg.direction == "projected" else dirac_direction(d, -1)
        x_lo = dirac_project(x_hi + (s_lo - s_hi).reshape(b, 1, 1, 1) * g, mixture)
        # the target sees x_lo with its overlap re-noised at sigma_lo (the sampler's projection)
        want = target(noise, s_lo, mixture, context, mask, previous=x_lo - s_lo.reshape(b, 1, 1, 1) * noise)
    online = student(noise, s_hi, mixture, context, mask, previous=clean)
    loss = (online - want).square().mean()
    if cfg.truth_weight:
        loss = loss + cfg.truth_weight * (online - clean).square().mean()
    return loss


def evaluate_student(student: StudentStep, clean: torch.Tensor, steps: int, seed: int = 5) -> float:
    """Mean SI-SDRi (dB) of the student with ``steps`` evaluations, no context."""
    gen = torch.Generator().manual_seed(seed)
    mixture = clean.sum(dim=1)
    noise = torch.randn((steps,) + tuple(clean.shape), generator=gen)
    with torch.no_grad():
        est = sample_student(student, mixture, None, steps, noise)
    return mean_sisdri(est, clean)


def distill(teacher: ScoreUNet, cfg: DistillConfig, out: Path, data_root: str | None, resume: bool,
            steps: int | None, teacher_path: str, teacher_steps: int | None = None,
            init_from: str | Path | None = None) -> dict[str, Any]:
    """Run consistency distillation; returns the run record (``teacher_steps``: the teacher's
    training steps, from its weight file, recorded with its path). ``init_from``: a student
    weight file to start from (its network must match the teacher's) instead of the teacher."""
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    student = make_student(teacher, cfg.context_fraction)
    target = make_student(teacher, cfg.context_fraction).requires_grad_(False)
    ema = make_student(teacher, cfg.context_fraction).requires_grad_(False)
    start_note = "initialised from the teacher"
    if init_from is not None and not resume:
        start_note = _start_from_student(init_from, (student, target, ema))
    fit = Fit(out, {"student": student, "target": target, "ema": ema}, "student", cfg.lr)
    if resume:
        start_note = str((fit.resume() or {}).get("init", start_note))
    fit.extra = {"init": start_note}
    step = fit.step
    net = teacher.config
    total = int(steps if steps is not None else cfg.steps)
    data = training_data(data_root)
    train = batches(excerpt_stream(data_root, "train", net.segment_samples, net.sample_rate, cfg.seed + 77 + step), cfg.batch)
    valid = next(batches(excerpt_stream(data_root, "valid", net.segment_samples, net.sample_rate, 10_000), 4))
    sigmas = karras_sigmas(cfg.schedule_steps)[:-1]  # decreasing sigma_max ... sigma_min: n -> n+1 denoises
    gen = torch.Generator().manual_seed(cfg.seed + step)
    history: list[dict[str, float]] = []

    def validate() -> None:
        history.append({"step": fit.step, **{f"valid_sisdri_{k}step": evaluate_student(ema, valid, k) for k in (1, 2)}})
        LOG.info("distill %s %s", "init" if fit.step == 0 else "validate", history[-1])

    def write() -> dict[str, Any]:
        from stemstream.realtime.models.weights import save_weights

        record = run_record({"role": "student", "data": data, "steps": fit.step, "teacher": teacher_path,
                             "teacher_steps": teacher_steps, "init": start_note,
                             "wall_seconds": round(fit.seconds(), 1), "history": history,
                             "distill_config": asdict(cfg), "method": "consistency distillation (Song et al. 2023 Alg. 2), "
                             f"{cfg.direction} Dirac-Euler teacher step"})
        save_weights(out / "student.safetensors", ema.net, STUDENT_ARCHITECTURE, ema.config.to_json(), record)
        return record

    def validate_and_write() -> None:
        validate()
        write()

    def after_update(step: int) -> None:
        ema_update(target, student, cfg.target_decay)
        ema_update(ema, student, cfg.ema_decay)

    if step == 0:
        validate()
    fit.start_clock()
    run_steps(fit, total=total, max_minutes=cfg.max_minutes,
              loss=lambda: cd_loss(student, target, teacher, next(train), sigmas, cfg, gen), after_update=after_update,
              checkpoint_every=cfg.checkpoint_every, validate_every=cfg.validate_every,
              validate=validate_and_write, log_format="distill step %d loss %.3e (%.0f s)")
    fit.save()
    if not history or history[-1]["step"] != fit.step:
        validate()
    record = write()
    (out / "record.json").write_text(json.dumps(record, indent=2, sort_keys=True))
    return record


def _start_from_student(path: str | Path, students: tuple[StudentStep, ...]) -> str:
    """Load a student weight file into each of ``students``; returns the run-record note. A file
    whose configuration differs from the teacher-made student is a ``WeightFileError``."""
    from stemstream.realtime.diffusion.student import load_student_step
    from stemstream.realtime.models.weights import WeightFileError

    given, meta = load_student_step(path)
    if given.config != students[0].config:
        raise WeightFileError(f"init_from={str(path)!r}: student config {given.config.to_json()} != the teacher's "
                              f"{students[0].config.to_json()}")
    for module in students:
        module.net.load_state_dict(given.net.state_dict())
    steps = json.loads(meta.get("run_record") or "{}").get("steps")
    return f"initialised from {path} ({steps} distillation steps)"


def _student_file(options: TrainOptions) -> Path | None:
    """``--init-from``: a student ``.safetensors`` file, or ``diffusion-1step`` / ``diffusion-2step``
    (the shipped student); None when not given."""
    given = options.init_from
    if not given:
        return None
    from stemstream.realtime.models.registry import DIFFUSION_STEPS, DIFFUSION_WEIGHTS, WEIGHTS_DIR

    path = WEIGHTS_DIR / f"{DIFFUSION_WEIGHTS}.safetensors" if given in DIFFUSION_STEPS else Path(given)
    if not path.is_file():
        raise bad_value("init_from", given, f"a student .safetensors file, or {' / '.join(DIFFUSION_STEPS)} "
                        "(the shipped student)")
    return path


def run_distillation(options: TrainOptions, out: Path) -> int:
    """``stemstream train --config diffusion-student``: distil, export ONNX, optionally ship."""
    root = Path(__file__).resolve().parents[1]
    given = options.teacher
    if given:
        teacher_path = Path(given) if Path(given).is_file() else None
    else:
        teacher_path = default_teacher(options.runs)
    if teacher_path is None:
        raise bad_value("teacher", given or "runs/diffusion-teacher-dirac/teacher.safetensors",
                        "a trained teacher's .safetensors file (stemstream train --config diffusion-teacher-dirac)")
    teacher = load_teacher(teacher_path)
    from stemstream.realtime.models.weights import read_weights

    teacher_steps = json.loads(read_weights(teacher_path)[1].get("run_record") or "{}").get("steps")
    cfg = DistillConfig()
    if options.threads:
        cfg = replace(cfg, threads=int(options.threads))
    cfg = replace(cfg, max_minutes=budget_minutes(options, cfg.max_minutes))
    record = distill(teacher, cfg, out, options.data, bool(options.resume),
                     options.steps, str(teacher_path), teacher_steps, _student_file(options))
    from stemstream.export.diffusion_onnx import parity
    from stemstream.realtime.diffusion.student import load_student_step
    from stemstream.realtime.diffusion.student_onnx import export_student

    step_module, _ = load_student_step(out / "student.safetensors")
    onnx_path = export_student(step_module, out / "student.onnx")
    LOG.info("distilled %d steps; ONNX parity max abs err %.2e", record["steps"], parity(step_module, onnx_path))
    if options.ship:
        dest = root / "realtime" / "weights" / "diffusion-student.safetensors"
        ship_half(out / "student.safetensors", dest)
        LOG.info("shipped %s", dest)
    return 0
