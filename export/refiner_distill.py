"""Consistency distillation of the refiner's teacher into a 1-2 step student
(``stemstream train --config refiner-student``).

The same method as :mod:`stemstream.export.distill` (Song et al. 2023, Alg. 2, with one Dirac
Euler step of the teacher as the ODE solver, an EMA target, a regression to the truth as a
regulariser, extra weight on the noisiest pairs; :class:`stemstream.export.distill.DistillConfig`
holds its knobs), on the residual ``delta = stems - base`` and with the base, the mixture and
the context as the teacher's and the student's conditioning::

    x_{n+1} = Dirac_r(context-overwrite(delta + sigma_{n+1} z)),   r = mixture - sum(base)
    x_n     = Dirac_r(x_{n+1} + (sigma_n - sigma_{n+1}) g),       d = (x - D_teacher(x | mixture, base, context)) / sigma
    loss    = |f_theta(x_{n+1}) - f_target(x_n)|^2 + truth_weight |f_theta(x_{n+1}) - delta|^2     (over sigma_data^2)

``g`` is the projected direction ``d - mean_k d_k`` by default (``direction="projected"``, as
``sample_dirac_projected``): exact with an exact denoiser at any step count, where Algorithm 2's
``d - d_N`` multiplies the error along the sum direction by ``1 - N(1 - r)`` per step of ratio
``r`` (unstable below ``r = 0.5``, which an 18-level schedule from 0.5 to 1e-4 reaches).

Outputs under ``--out``: ``checkpoint.pt``, ``student.safetensors`` (EMA weights) with its ONNX
graph ``student.onnx`` beside it (parity logged), ``record.json``. ``--ship`` stores the student
as ``realtime/weights/<base>-refiner.safetensors`` (float16), which ``<base>-refined`` runs.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

from stemstream.export.distill import DistillConfig
from stemstream.export.train.diffusion_fit import Fit, budget_minutes, ema_update, run_record, run_steps, ship_half
from stemstream.export.train.options import TrainOptions
from stemstream.export.train.refiner_teacher import RefinerTrainConfig, sisdri, training_sets
from stemstream.realtime.diffusion.refiner import (
    REFINER_STUDENT_ARCHITECTURE, RefinerStep, init_student, load_refiner_student, load_refiner_teacher,
    overwrite_context, residual_sum, sample_refiner_student,
)
from stemstream.realtime.diffusion.refiner_net import RefinerDenoiser, count_parameters
from stemstream.realtime.diffusion.samplers import dirac_direction, dirac_project, karras_sigmas, projected_direction
from stemstream.realtime.errors import bad_value

LOG = logging.getLogger("stemstream.diffusion")

#: The refiner student's distillation: the unconditional student's knobs, the projected teacher step.
REFINER_DISTILL = DistillConfig(batch=4, lr=1e-4, steps=100_000, max_minutes=60.0, checkpoint_every=50,
                                validate_every=250, direction="projected")


def refiner_cd_loss(student: RefinerStep, target: RefinerStep, teacher: RefinerDenoiser,
                    batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor], sigmas: torch.Tensor, cfg: DistillConfig,
                    gen: torch.Generator) -> torch.Tensor:
    """One consistency-distillation loss on ``batch = (mixture, stems, base)`` (module docstring)."""
    mixture, stems, base = batch
    delta = stems - base
    b = delta.shape[0]
    o = student.config.net.context_samples
    sd = student.config.net.sigma_data
    r = residual_sum(mixture, base)
    mask = (torch.rand(b, generator=gen) < cfg.p_context).to(delta.dtype)
    context = delta[..., :o] * mask.reshape(b, 1, 1, 1)
    n = torch.randint(0, len(sigmas) - 1, (b,), generator=gen)
    high = torch.rand(b, generator=gen) < cfg.p_high
    n = torch.where(high, torch.randint(0, cfg.high_pairs, (b,), generator=gen), n)
    s_hi, s_lo = sigmas[n], sigmas[n + 1]
    noise = torch.randn(delta.shape, generator=gen)
    x_hi = dirac_project(overwrite_context(delta + s_hi.reshape(b, 1, 1, 1) * noise, context, mask, noise, s_hi), r)
    with torch.no_grad():
        ctx_full = torch.nn.functional.pad(context, (0, delta.shape[-1] - o))
        d = (x_hi - teacher(x_hi, s_hi, mixture, base, ctx_full, mask)) / s_hi.reshape(b, 1, 1, 1)
        g = projected_direction(d) if cfg.direction == "projected" else dirac_direction(d, -1)
        x_lo = dirac_project(x_hi + (s_lo - s_hi).reshape(b, 1, 1, 1) * g, r)
        want = target(noise, s_lo, mixture, base, context, mask, previous=x_lo - s_lo.reshape(b, 1, 1, 1) * noise)
    online = student(noise, s_hi, mixture, base, context, mask, previous=delta)
    loss = (online - want).square().mean()
    if cfg.truth_weight:
        loss = loss + cfg.truth_weight * (online - delta).square().mean()
    return loss / sd**2


def evaluate_refiner_student(step: RefinerStep, valid: tuple[torch.Tensor, ...], steps: int, seed: int = 5) -> float:
    """Mean SI-SDRi (dB) of the student's refinement with ``steps`` evaluations, no context."""
    mixture, stems, base = valid
    noise = torch.randn((steps, *stems.shape), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return sisdri(sample_refiner_student(step, mixture, base, None, steps, noise), stems, mixture)


def distill_refiner(teacher: RefinerDenoiser, cfg: DistillConfig, out: Path, data_root: str, resume: bool,
                    steps: int | None, teacher_path: str, init_from: str | Path | None = None,
                    limit_songs: int | None = None) -> dict[str, Any]:
    """Run the refiner's consistency distillation; returns the run record. ``init_from``: a
    student weight file to continue (its network must be the teacher's)."""
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    student, target, ema = init_student(teacher), init_student(teacher), init_student(teacher)
    target.requires_grad_(False)
    ema.requires_grad_(False)
    note = f"initialised from the teacher {teacher_path}"
    if init_from is not None and not resume:
        given, _ = load_refiner_student(init_from)
        if given.config.net != student.config.net:
            raise bad_value("init_from", str(init_from), f"a student of the teacher's network {student.config.net.to_json()}")
        for module in (student, target, ema):
            module.denoiser.load_state_dict(given.denoiser.state_dict())
        note = f"initialised from {init_from}"
    fit = Fit(out, {"student": student, "target": target, "ema": ema}, "student", cfg.lr)
    ckpt = fit.resume() if resume else None
    note = str((ckpt or {}).get("init", note))
    history: list[dict[str, float]] = list((ckpt or {}).get("history", []))
    fit.extra = {"init": note, "history": history}  # the list itself: every checkpoint has it all
    net = teacher.config
    tcfg = RefinerTrainConfig(net=net, limit_songs=limit_songs, batch=cfg.batch, leak_share=0.5)
    sampler, valid, data_note = training_sets(tcfg, data_root, cfg.seed + 77 + fit.step)
    sigmas = karras_sigmas(cfg.schedule_steps, net.sigma_min, net.sigma_max)[:-1]
    gen = torch.Generator().manual_seed(cfg.seed + fit.step)
    total = int(steps if steps is not None else cfg.steps)
    base_score = sisdri(valid[2], valid[1], valid[0])

    def validate() -> None:
        history.append({"step": fit.step, "base_sisdri": base_score,
                        **{f"valid_sisdri_{k}step": evaluate_refiner_student(ema, valid, k) for k in (1, 2)}})
        LOG.info("refiner distill validate %s", json.dumps({k: round(v, 3) for k, v in history[-1].items()}))

    def write() -> dict[str, Any]:
        from stemstream.realtime.models.weights import save_weights

        record = run_record({"role": "refiner student", "data": "synthetic", "data_detail": data_note,
                             "base": net.base, "steps": fit.step, "teacher": teacher_path, "init": note,
                             "wall_seconds": round(fit.seconds(), 1), "history": history,
                             "params": count_parameters(ema.denoiser), "distill_config": asdict(cfg),
                             "method": "consistency distillation (Song et al. 2023 Alg. 2) of the residual, "
                                       f"{cfg.direction} Dirac-Euler teacher step"})
        save_weights(out / "student.safetensors", ema.denoiser, REFINER_STUDENT_ARCHITECTURE, ema.config.to_json(), record)
        return record

    def validate_and_write() -> None:
        validate()
        write()

    def after_update(step: int) -> None:
        ema_update(target, student, cfg.target_decay)
        ema_update(ema, student, cfg.ema_decay)

    if fit.step == 0:
        validate()
    fit.start_clock()
    run_steps(fit, total=total, max_minutes=cfg.max_minutes,
              loss=lambda: refiner_cd_loss(student, target, teacher, sampler.batch(cfg.batch), sigmas, cfg, gen),
              after_update=after_update, checkpoint_every=cfg.checkpoint_every, validate_every=cfg.validate_every,
              validate=validate_and_write, log_format="refiner distill step %d loss %.4f (%.0f s)")
    fit.save()
    if not history or history[-1]["step"] != fit.step:
        validate()
    record = write()
    (out / "record.json").write_text(json.dumps(record, indent=2, sort_keys=True))
    return record


def default_refiner_teacher(runs: str | Path) -> Path | None:
    """``runs/refiner-teacher/teacher.safetensors`` if it exists."""
    path = Path(runs) / "refiner-teacher" / "teacher.safetensors"
    return path if path.is_file() else None


def run_refiner_distillation(options: TrainOptions, out: Path) -> int:
    """``stemstream train --config refiner-student``: distil, export the ONNX graph, optionally ship."""
    from stemstream.export.train.diffusion import _setup_log
    from stemstream.realtime.diffusion.refiner_onnx import core_parity, export_core

    _setup_log(out, bool(options.quiet))
    teacher_path = Path(options.teacher) if options.teacher else default_refiner_teacher(options.runs)
    if teacher_path is None or not teacher_path.is_file():
        raise bad_value("teacher", str(teacher_path or Path(options.runs) / "refiner-teacher/teacher.safetensors"),
                        "a refiner teacher's .safetensors file (stemstream train --config refiner-teacher)")
    teacher = load_refiner_teacher(teacher_path)
    cfg = replace(REFINER_DISTILL, max_minutes=budget_minutes(options, REFINER_DISTILL.max_minutes))
    for name in ("threads", "batch", "lr", "seed"):
        if getattr(options, name, None) is not None:
            cfg = replace(cfg, **{name: getattr(options, name)})
    record = distill_refiner(teacher, cfg, out, options.data, bool(options.resume), options.steps, str(teacher_path),
                             options.init_from, options.limit_songs)
    step, _ = load_refiner_student(out / "student.safetensors")
    graph = export_core(step.denoiser.core, out / "student.onnx")
    LOG.info("distilled %d steps; ONNX parity max abs err %.2e", record["steps"], core_parity(step.denoiser.core, graph))
    if options.ship:
        dest = Path(__file__).resolve().parents[1] / "realtime" / "weights" / f"{teacher.config.base}-refiner.safetensors"
        ship_half(out / "student.safetensors", dest)
        LOG.info("shipped %s", dest)
    return 0


__all__ = ["REFINER_DISTILL", "distill_refiner", "evaluate_refiner_student", "refiner_cd_loss",
           "run_refiner_distillation"]
