"""Training the diffusion refiner's teacher: EDM denoising score matching on the residual of a
base model (``stemstream train --config refiner-teacher``).

The network (:class:`stemstream.realtime.diffusion.refiner_net.RefinerDenoiser`) learns
``D(delta + sigma n, sigma | mixture, base, context) ~ delta`` with ``delta = stems - base``
(:mod:`stemstream.export.train.refiner_data`), the EDM weighting ``lambda(sigma) = (sigma^2 +
sd^2) / (sigma sd)^2`` and ``ln sigma ~ N(p_mean, p_std^2)``. Two things make its training
inputs the ones the samplers give it:

* **Dirac-state noise** (ours, as for ``diffusion-teacher-dirac``): for a ``dirac_noise`` share of
  the excerpts the last stem's noise is minus the sum of the others', which is the state the
  Dirac sampler holds (``sum_s delta_s`` stays exact); the rest gets independent noise.
* **Context**: with probability ``p_context`` an excerpt's first ``context_samples`` of true
  residual are given as the context (clean) with its mask, as the previous segment would be.

Outputs under ``--out`` (default ``runs/<config>``): ``checkpoint.pt`` (every
``checkpoint_every`` steps; ``--resume`` continues), ``teacher.safetensors`` (the EMA weights,
config and run record in the metadata), ``train.log`` and ``record.json``. The base's estimates
are cached on the first run (:func:`stemstream.export.train.refiner_data.build_base_cache`; its
time is logged and not counted in ``--time-budget``).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stemstream.export.train.diffusion_fit import Fit, budget_minutes, ema_update, run_record, run_steps
from stemstream.export.train.options import TrainOptions
from stemstream.realtime.diffusion.refiner import load_refiner_teacher, refine
from stemstream.realtime.diffusion.refiner_net import REFINER_ARCHITECTURE, RefinerConfig, RefinerDenoiser, count_parameters
from stemstream.realtime.errors import bad_value

LOG = logging.getLogger("stemstream.diffusion")


@dataclass(frozen=True)
class RefinerTrainConfig:
    """Hyper-parameters of refiner teacher training.

    Attributes:
        net: the network.
        batch: excerpts of ``net.train_samples`` per step.
        lr: Adam learning rate (constant).
        steps: optimiser steps (with ``max_minutes``, whichever ends first).
        max_minutes: wall-clock budget of one run (``--time-budget`` replaces it).
        ema_decay: decay of the weight average that is saved.
        p_mean, p_std: ``ln sigma ~ N(p_mean, p_std^2)`` (EDM; centred near ``sigma_data``).
        high_share: share of excerpts whose ``sigma`` is log-uniform in ``[sigma_max / 20,
            sigma_max]`` instead: where sampling and the 1-step student start, which the normal
            draw reaches about once in 10^4.
        dirac_noise: share of excerpts with Dirac-state noise (last stem = minus the others' sum).
        p_context: probability that an excerpt gets its first ``context_samples`` as context.
        leak_amount, leak_share: the leaky-base augmentation (``refiner_data.leak``).
        objective: ``"edm"`` (denoising score matching: the teacher) or ``"regression"`` (the
            ablation ``refiner-regression``: the same network and data, always at ``sigma_max``,
            trained on :func:`refiner_regression_loss`, the error of its one-step estimate in dB;
            what any second stage of this size could win over the base at this training budget).
        valid_excerpts: validation excerpts (fixed, from ``valid``).
        limit_songs: read at most this many training songs (smoke runs; None: all).
    """

    net: RefinerConfig
    batch: int = 4
    lr: float = 2e-4
    steps: int = 100_000
    max_minutes: float = 90.0
    ema_decay: float = 0.999
    p_mean: float = -3.0
    p_std: float = 1.4
    high_share: float = 0.4
    dirac_noise: float = 0.75
    p_context: float = 0.5
    leak_amount: float = 0.3
    leak_share: float = 0.25
    objective: str = "edm"
    valid_excerpts: int = 6
    checkpoint_every: int = 100
    validate_every: int = 500
    threads: int = 1
    seed: int = 0
    limit_songs: int | None = None

    def __post_init__(self) -> None:
        if self.batch < 1:
            raise bad_value("batch", self.batch, "an integer >= 1")
        if self.lr <= 0:
            raise bad_value("lr", self.lr, "a positive float")
        for name in ("dirac_noise", "p_context", "leak_share", "high_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise bad_value(name, getattr(self, name), "a fraction in [0, 1]")
        if self.objective not in ("edm", "regression"):
            raise bad_value("objective", self.objective, "'edm' or 'regression'")
        if not 0 <= self.ema_decay < 1:
            raise bad_value("ema_decay", self.ema_decay, "a float in [0, 1)")


#: A tiny network for the smoke test (seconds per step on one thread).
TINY_NET = RefinerConfig(segment_samples=4096, context_samples=1024, train_samples=2048, n_fft=256, hop=128,
                         band_bins=8, widths=(8, 16), blocks=(0, 1), embed_dim=16)

CONFIGS: dict[str, RefinerTrainConfig] = {
    # the refiner of ``quality`` (bass, drums, guitar, piano; 44.1 kHz stereo): 2.1 M parameters,
    # 1.49 s segments with 0.37 s of context, trained on 0.74 s crops
    "refiner-teacher": RefinerTrainConfig(net=RefinerConfig()),
    # the ablation: the same network and data as ``refiner-teacher``, trained as a plain regressor
    "refiner-regression": RefinerTrainConfig(net=RefinerConfig(), objective="regression"),
    "refiner-tiny": RefinerTrainConfig(net=TINY_NET, batch=2, steps=20, max_minutes=2.0, checkpoint_every=10,
                                       validate_every=10, valid_excerpts=2, limit_songs=4),
}


def training_noise(shape: torch.Size, generator: torch.Generator, dirac_fraction: float) -> torch.Tensor:
    """Unit noise ``(B, S, C, T)``: independent per stem, except that for a ``dirac_fraction`` share
    of the batch the last stem carries minus the sum of the others' (the Dirac sampler's state)."""
    noise = torch.randn(shape, generator=generator)
    chosen = torch.rand(shape[0], generator=generator) < dirac_fraction
    constrained = -noise[:, :-1].sum(dim=1)
    noise[:, -1] = torch.where(chosen.reshape(-1, 1, 1), constrained, noise[:, -1])
    return noise


def training_context(delta: torch.Tensor, context_samples: int, generator: torch.Generator,
                     p_context: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The context of a training batch and its mask ``(B,)``: with probability ``p_context`` an
    excerpt's first ``context_samples`` of true residual (zero after them), as the previous
    segment would give it; otherwise none."""
    b = delta.shape[0]
    mask = (torch.rand(b, generator=generator) < p_context).to(delta.dtype)
    context = torch.nn.functional.pad(delta[..., :context_samples], (0, delta.shape[-1] - context_samples))
    return context * mask.reshape(b, 1, 1, 1), mask


def refiner_dsm_loss(model: RefinerDenoiser, mixture: torch.Tensor, stems: torch.Tensor, base: torch.Tensor,
                     generator: torch.Generator, *, p_mean: float, p_std: float, dirac_noise: float,
                     p_context: float, high_share: float = 0.0) -> torch.Tensor:
    """EDM denoising score matching of the residual ``stems - base`` (see the module docstring;
    the keyword arguments are :class:`RefinerTrainConfig`'s)."""
    b = stems.shape[0]
    cfg = model.config
    sd, o = cfg.sigma_data, cfg.context_samples
    delta = stems - base
    log_sigma = p_mean + p_std * torch.randn(b, generator=generator)
    top = math.log(cfg.sigma_max)
    high = top - math.log(20.0) * torch.rand(b, generator=generator)
    log_sigma = torch.where(torch.rand(b, generator=generator) < high_share, high, log_sigma)
    sigma = torch.exp(log_sigma).clamp(cfg.sigma_min, cfg.sigma_max)
    noise = training_noise(delta.shape, generator, dirac_noise)
    context, mask = training_context(delta, o, generator, p_context)
    denoised = model(delta + sigma.reshape(b, 1, 1, 1) * noise, sigma, mixture, base, context, mask)
    weight = ((sigma**2 + sd**2) / (sigma * sd) ** 2).reshape(b, 1, 1, 1)
    return (weight * (denoised - delta) ** 2).mean()


def refiner_regression_loss(model: RefinerDenoiser, mixture: torch.Tensor, stems: torch.Tensor, base: torch.Tensor,
                            generator: torch.Generator, *, p_context: float) -> torch.Tensor:
    """The ablation's loss: the one-step estimate ``base + D(sigma_max n)`` against the stems, as
    the mean over stems of ``10 log10(error energy + 1e-3 mixture energy / S)``: decibels like
    the metric, so a quiet stem counts as much as a loud one (the floor keeps a silent stem
    from dominating). Context is given as in training the teacher."""
    b, s = stems.shape[:2]
    cfg = model.config
    o = cfg.context_samples
    delta = stems - base
    sigma = torch.full((b,), cfg.sigma_max)
    noise = training_noise(delta.shape, generator, 1.0)
    context, mask = training_context(delta, o, generator, p_context)
    denoised = model(sigma.reshape(b, 1, 1, 1) * noise, sigma, mixture, base, context, mask)
    error = (denoised - delta).pow(2).flatten(2).sum(-1)
    floor = 1e-3 * mixture.pow(2).flatten(1).sum(-1, keepdim=True) / s
    return (10.0 * torch.log10(error + floor)).mean()


def sisdri(estimate: torch.Tensor, stems: torch.Tensor, mixture: torch.Tensor) -> float:
    """Mean SI-SDRi (dB) over the non-silent stems of ``(B, S, C, T)`` estimates (channels flattened)."""
    from stemstream.export.evaluation.metrics import si_sdr_improvement_stems

    scores = []
    for est, ref, mix in zip(estimate.numpy(), stems.numpy(), mixture.numpy()):
        active = np.sqrt(np.mean(ref.reshape(ref.shape[0], -1) ** 2, axis=1)) >= 1e-3
        scores.extend(si_sdr_improvement_stems(est, ref, mix)[active])
    return float(np.mean(scores)) if scores else float("nan")


def validate_teacher(model: RefinerDenoiser, valid: tuple[torch.Tensor, ...], seed: int = 7) -> dict[str, float]:
    """Validation figures: the denoising loss at ``sigma_data`` and SI-SDRi of the base and of the
    teacher's refinement (one projected evaluation; the projected Dirac sampler at 8 steps)."""
    mixture, stems, base = valid
    out: dict[str, float] = {"base_sisdri": sisdri(base, stems, mixture)}
    with torch.no_grad():
        gen = torch.Generator().manual_seed(seed)
        out["valid_loss"] = float(refiner_dsm_loss(model, mixture, stems, base, gen, p_mean=float(np.log(model.config.sigma_data)),
                                                   p_std=0.0, dirac_noise=1.0, p_context=0.0))
        for steps in (1, 8):
            est = refine(model, mixture, base, steps=steps, sampler="dirac-projected",
                         generator=torch.Generator().manual_seed(seed))
            out[f"refined_projected{steps}_sisdri"] = sisdri(est, stems, mixture)
    return out


def load_base(name: str) -> tuple[torch.nn.Module, Path]:
    """The shipped base model ``name`` (a registry name) and its weight file."""
    from stemstream.realtime.models.registry import WEIGHTS_DIR, load_torch_model

    return load_torch_model(name), WEIGHTS_DIR / f"{name}.safetensors"


def training_sets(cfg: RefinerTrainConfig, data_root: str, seed: int) -> tuple[Any, tuple[torch.Tensor, ...], str]:
    """The excerpt sampler, the validation batch and a description of the data, building the base
    estimates' cache where it is missing."""
    from stemstream.export.train.refiner_data import (
        RefinerExcerpts, base_checksum, build_base_cache, cache_root, fixed_excerpts,
    )

    base, path = load_base(cfg.net.base)
    folder = cache_root(data_root, cfg.net.base, base_checksum(path))
    train_songs, train_est = build_base_cache(data_root, "train", base, folder, cfg.limit_songs)
    valid_songs, valid_est = build_base_cache(data_root, "valid", base, folder, cfg.limit_songs)
    sampler = RefinerExcerpts(train_songs, train_est, cfg.net.train_samples, seed, cfg.leak_amount, cfg.leak_share)
    valid = fixed_excerpts(valid_songs, valid_est, cfg.net.train_samples, cfg.valid_excerpts)
    note = f"{len(train_songs.names)} songs of {data_root}/train; base {cfg.net.base} estimates in {folder}"
    return sampler, valid, note


def train_refiner_teacher(cfg: RefinerTrainConfig, out: Path, data_root: str, resume: bool,
                          steps: int | None, init_from: str | None = None) -> dict[str, Any]:
    """Train the refiner's denoiser; returns the run record (also ``out/record.json``).
    ``init_from``: a teacher weight file of the same network to start a new run from."""
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    model = RefinerDenoiser(cfg.net)
    ema = RefinerDenoiser(cfg.net)
    if init_from is not None:
        start = load_refiner_teacher(init_from)
        if start.config != cfg.net:
            raise bad_value("init_from", init_from, f"a refiner teacher of this config's network ({cfg.net.to_json()})")
        model.load_state_dict(start.state_dict())
    ema.load_state_dict(model.state_dict())
    ema.requires_grad_(False)
    fit = Fit(out, {"model": model, "ema": ema}, "model", cfg.lr)
    ckpt = fit.resume() if resume else None
    if ckpt is not None:
        LOG.info("resumed at step %d", fit.step)
    history: list[dict[str, float]] = list((ckpt or {}).get("history", []))
    fit.extra = {"config": cfg.net.to_json(), "history": history}  # the list itself: every checkpoint has it all
    sampler, valid, data_note = training_sets(cfg, data_root, cfg.seed + fit.step)
    gen = torch.Generator().manual_seed(cfg.seed + 1 + fit.step)
    total = int(steps if steps is not None else cfg.steps)
    LOG.info("refiner teacher: params=%d data=%s steps=%d", count_parameters(model), data_note, total)

    def validate() -> None:
        history.append({"step": fit.step, **validate_teacher(ema.eval(), valid)})
        LOG.info("validate %s", json.dumps({k: round(v, 4) for k, v in history[-1].items()}))
        _write(out / "teacher.safetensors", ema, cfg, fit, data_note, history)

    if fit.step == 0:
        validate()
    fit.start_clock()
    def loss() -> torch.Tensor:
        batch = sampler.batch(cfg.batch)
        if cfg.objective == "regression":
            return refiner_regression_loss(model, *batch, gen, p_context=cfg.p_context)
        return refiner_dsm_loss(model, *batch, gen, p_mean=cfg.p_mean, p_std=cfg.p_std, dirac_noise=cfg.dirac_noise,
                                p_context=cfg.p_context, high_share=cfg.high_share)

    run_steps(fit, total=total, max_minutes=cfg.max_minutes, loss=loss,
              after_update=lambda step: ema_update(ema, model, min(cfg.ema_decay, (1 + step) / (10 + step))),
              checkpoint_every=cfg.checkpoint_every, validate_every=cfg.validate_every, validate=validate,
              log_format="refiner step %d loss %.4f (%.0f s)")
    fit.save()
    if not history or history[-1]["step"] != fit.step:
        validate()
    record = _write(out / "teacher.safetensors", ema, cfg, fit, data_note, history)
    (out / "record.json").write_text(json.dumps(record, indent=2, sort_keys=True))
    return record


def _write(path: Path, ema: RefinerDenoiser, cfg: RefinerTrainConfig, fit: Fit, data: str,
           history: list[dict[str, float]]) -> dict[str, Any]:
    from stemstream.realtime.models.weights import save_weights

    record = run_record({
        "role": "refiner teacher" if cfg.objective == "edm" else "refiner regression ablation",
        "data": "synthetic", "data_detail": data, "base": cfg.net.base, "steps": fit.step,
        "wall_seconds": round(fit.seconds(), 1), "params": count_parameters(ema), "history": history,
        "train_config": {k: v for k, v in asdict(cfg).items() if k != "net"},
    })
    save_weights(path, ema, REFINER_ARCHITECTURE, cfg.net.to_json(), record)
    return record


def run_refiner_training(config_name: str, options: TrainOptions) -> int:
    """``stemstream train --config refiner-teacher | refiner-tiny``; returns an exit code."""
    from stemstream.export.train.diffusion import _setup_log

    if config_name not in CONFIGS:
        raise bad_value("config", config_name, f"one of {sorted(CONFIGS)} (or refiner-student)")
    if options.ship:
        raise bad_value("ship", True, "only with --config refiner-student (the student is what ships)")
    out = Path(options.out or Path(options.runs) / config_name)
    _setup_log(out, bool(options.quiet))
    cfg = CONFIGS[config_name]
    changes: dict[str, Any] = {"max_minutes": budget_minutes(options, cfg.max_minutes)}
    for name in ("threads", "batch", "lr", "seed", "limit_songs"):
        if getattr(options, name, None) is not None:
            changes[name] = getattr(options, name)
    if options.base:
        changes["net"] = replace(cfg.net, base=str(options.base))
    cfg = replace(cfg, **changes)
    init_from = None if options.resume else options.init_from
    record = train_refiner_teacher(cfg, out, options.data, bool(options.resume), options.steps, init_from)
    LOG.info("done: %d steps in %.0f s", record["steps"], record["wall_seconds"])
    return 0


__all__ = ["CONFIGS", "RefinerTrainConfig", "refiner_dsm_loss", "refiner_regression_loss", "run_refiner_training", "sisdri",
           "train_refiner_teacher", "training_context", "training_noise", "validate_teacher"]
