"""Training of the multi-source diffusion teacher (denoising score matching, EDM weighting).

``stemstream train --config diffusion-teacher`` (LIVEMODEL's ``bridge/cli/train.py``
dispatches ``diffusion*`` configs here); ``diffusion-student`` runs the consistency
distillation of ``stemstream.export.distill``; ``diffusion-tiny`` is a seconds-long smoke test.

Outputs under ``--out`` (default ``runs/<config>``): ``checkpoint.pt`` (model, EMA,
optimiser, step; written every ``checkpoint_every`` steps so a killed run can ``--resume``),
``teacher.safetensors`` (EMA weights, config + run record in the metadata), ``train.log``
and ``record.json``. ``--ship`` stores the weights in ``realtime/weights/`` as float16.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from stemstream.export.train.diffusion_data import batches, excerpt_stream, training_data
from stemstream.export.train.diffusion_fit import (
    Fit, budget_minutes, default_teacher, ema_update, mean_sisdri, run_record, run_steps, ship_half,
)
from stemstream.export.train.options import TrainOptions
from stemstream.realtime.diffusion.samplers import SAMPLERS, Conditioning, karras_sigmas
from stemstream.realtime.diffusion.unet import ARCHITECTURE, ScoreUNet, UNetConfig, count_parameters, load_teacher
from stemstream.realtime.errors import bad_value

LOG = logging.getLogger("stemstream.diffusion")


@dataclass(frozen=True)
class TeacherTrainConfig:
    """Hyper-parameters of teacher training (steps, seconds, learning rate...)."""

    net: UNetConfig
    batch: int = 6
    lr: float = 2e-4
    steps: int = 6000
    max_minutes: float = 50.0
    ema_decay: float = 0.999
    p_mean: float = -2.4
    p_std: float = 1.6
    #: share of each batch noised the way the Dirac separator's state is (:func:`training_noise`)
    dirac_noise: float = 0.0
    checkpoint_every: int = 100
    validate_every: int = 500
    threads: int = 1
    seed: int = 0
    #: what starts a fresh run: a checkpoint relative to ``--runs`` (its EMA weights; skipped if it does
    #: not exist), or a ``.safetensors`` teacher file relative to ``--runs`` or as given (required)
    init_from: str | None = None

    def __post_init__(self) -> None:
        if self.batch < 1:
            raise bad_value("batch", self.batch, "an integer >= 1")
        if self.lr <= 0:
            raise bad_value("lr", self.lr, "a positive float")
        if not 0 <= self.ema_decay < 1:
            raise bad_value("ema_decay", self.ema_decay, "a float in [0, 1)")
        if not 0 <= self.dirac_noise <= 1:
            raise bad_value("dirac_noise", self.dirac_noise, "a fraction in [0, 1]")


CONFIGS: dict[str, TeacherTrainConfig] = {
    # the shipped teacher: the U-Net over raw samples
    "diffusion-teacher": TeacherTrainConfig(net=UNetConfig(), batch=4, max_minutes=40.0,
                                            init_from="diffusion-teacher-toy/checkpoint.pt"),
    # experimental, not shipped: the U-Net over STFT frames (256-sample frames, hop 64 = 8 ms at 8 kHz);
    # its student (``--teacher``) gets gains on the mixture's spectrum (``mixture_gains``)
    "diffusion-teacher-frames": TeacherTrainConfig(
        net=UNetConfig(widths=(128, 192, 256), factors=(2, 2), blocks=(1, 2, 2), kernel_size=3, frame_size=256),
        batch=8, max_minutes=60.0, init_from="diffusion-teacher-frames-toy/checkpoint.pt"),
    # the raw-sample teacher (the diffusion-teacher run's weights) fine-tuned with half of every batch
    # noised like the Dirac separator's state (stems + noise summing to the clean mixture), see
    # ``training_noise``; its separation peaks early (the shipped one: 2500 steps)
    "diffusion-teacher-dirac": TeacherTrainConfig(net=UNetConfig(), batch=4, steps=2500, max_minutes=80.0,
                                                  dirac_noise=0.5, init_from="diffusion-teacher/teacher.safetensors"),
    "diffusion-tiny": TeacherTrainConfig(
        net=UNetConfig(widths=(8, 16), factors=(4,), blocks=(0, 1), embed_dim=16, segment_samples=256),
        batch=2,
        steps=20,
        max_minutes=2.0,
        checkpoint_every=10,
        validate_every=10,
    ),
}


#: configs whose ``--ship`` replaces the shipped teacher
SHIPPABLE = ("diffusion-teacher", "diffusion-teacher-dirac")


def _setup_log(out: Path, quiet: bool) -> None:
    LOG.setLevel(logging.INFO)
    LOG.handlers.clear()
    out.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(out / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    LOG.addHandler(handler)
    if not quiet:
        LOG.addHandler(logging.StreamHandler(sys.stderr))


def training_noise(shape: torch.Size, generator: torch.Generator, dirac_fraction: float = 0.0) -> torch.Tensor:
    """Unit noise ``(B, S, C, T)`` for denoising score matching.

    Independent per stem (the thesis' Eq. 4.4), except that a ``dirac_fraction`` share of the
    batch elements is drawn as the Dirac separator's state is (Algorithm 2, lines 8 and 14): one
    stem, picked at random, carries minus the sum of the others' noise, so the noisy stems sum
    to the clean mixture. Trained on those too, the network meets at separation time the inputs
    it was trained on (ours, not the thesis'). With ``dirac_fraction = 0`` the draws are exactly
    those of plain ``randn``."""
    noise = torch.randn(shape, generator=generator)
    if dirac_fraction <= 0:
        return noise
    b, s = shape[0], shape[1]
    chosen = (torch.rand(b, generator=generator) < dirac_fraction).reshape(b, 1, 1, 1)
    constrained = torch.nn.functional.one_hot(torch.randint(0, s, (b,), generator=generator), s).bool()
    constrained = constrained.reshape(b, s, 1, 1)
    others = torch.where(constrained, 0.0, noise).sum(dim=1, keepdim=True)
    return torch.where(chosen & constrained, -others, noise)


def dsm_loss(model: ScoreUNet, clean: torch.Tensor, p_mean: float, p_std: float, generator: torch.Generator,
             dirac_fraction: float = 0.0) -> torch.Tensor:
    """EDM denoising score matching: ``lambda(sigma) |D(x + sigma n, sigma) - x|^2``,
    ``ln sigma ~ N(p_mean, p_std^2)``, ``lambda = (sigma^2 + sd^2) / (sigma sd)^2``, ``n`` from
    :func:`training_noise`. ``clean (B, S, C, T)``."""
    b = clean.shape[0]
    sd = model.config.sigma_data
    sigma = torch.exp(p_mean + p_std * torch.randn(b, generator=generator)).clamp(1e-4, 3.0)
    noise = training_noise(clean.shape, generator, dirac_fraction)
    denoised = model(clean + sigma.reshape(b, 1, 1, 1) * noise, sigma)
    weight = ((sigma**2 + sd**2) / (sigma * sd) ** 2).reshape(b, 1, 1, 1)
    return (weight * (denoised - clean) ** 2).mean()


def separation_sisdri(model: ScoreUNet, clean: torch.Tensor, steps: int, seed: int, sampler: str = "dirac",
                      s_churn: float = 20.0) -> float:
    """Mean SI-SDRi (dB) of a separation sampler (``SAMPLERS`` key: ``dirac``, ``dirac-projected``,
    ``gaussian``) on ``clean (B, S, C, T)`` (non-silent stems)."""
    gen = torch.Generator().manual_seed(seed)
    mixture = clean.sum(dim=1)
    sigmas = karras_sigmas(steps)
    with torch.no_grad():
        x = torch.randn(clean.shape, generator=gen) * float(sigmas[0])
        est = SAMPLERS[sampler](model, x, sigmas, Conditioning(mixture=mixture), s_churn=s_churn, generator=gen)
    return mean_sisdri(est, clean)


def train_teacher(cfg: TeacherTrainConfig, out: Path, data_root: str | None, resume: bool, steps: int | None,
                  runs: str | Path = "runs") -> dict[str, Any]:
    """Train the score network; returns the run record (also written to ``out/record.json``)."""
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    model = ScoreUNet(cfg.net)
    ema = ScoreUNet(cfg.net)
    ema.load_state_dict(model.state_dict())
    ema.requires_grad_(False)
    fit = Fit(out, {"model": model, "ema": ema}, "model", cfg.lr)
    init_note = "from scratch"
    ckpt = fit.resume() if resume else None
    if ckpt is not None:
        init_note = str(ckpt.get("init", "resumed"))
        LOG.info("resumed at step %d", fit.step)
    elif (start := _init_source(cfg.init_from, runs)) is not None:
        weights, start_steps = _init_weights(start)
        model.load_state_dict(weights)
        ema.load_state_dict(weights)
        LOG.info("initialised from %s (step %d)", start, start_steps)
        init_note = f"initialised from {cfg.init_from} ({start_steps} steps)"
    fit.extra = {"config": cfg.net.to_json(), "init": init_note}
    step = fit.step
    total = int(steps if steps is not None else cfg.steps)
    data = training_data(data_root)
    data_note = f"{data}; {init_note}"
    train = batches(excerpt_stream(data_root, "train", cfg.net.segment_samples, cfg.net.sample_rate, cfg.seed + step), cfg.batch)
    valid = next(batches(excerpt_stream(data_root, "valid", cfg.net.segment_samples, cfg.net.sample_rate, 10_000), 4))
    gen = torch.Generator().manual_seed(cfg.seed + 1 + step)
    LOG.info("config=%s params=%d data=%s steps=%d", cfg.net.to_json(), count_parameters(model), data, total)
    history: list[dict[str, float]] = []
    fit.start_clock()

    def validate() -> None:
        ema.eval()
        with torch.no_grad():
            vloss = float(dsm_loss(ema, valid, cfg.p_mean, 0.0, torch.Generator().manual_seed(123)))
        # 64 steps: Algorithm 2's update amplifies the stems' sum error at fewer (the better the
        # denoiser, the more: on the toy signals -60 dB at 16 steps for a teacher at +3.9 dB with 64)
        sisdri = separation_sisdri(ema, valid, steps=64, seed=7)
        # the projected update is stable at few steps (see sample_dirac_projected); churn-free
        projected = separation_sisdri(ema, valid, steps=16, seed=7, sampler="dirac-projected", s_churn=0.0)
        history.append({"step": fit.step, "valid_loss": vloss, "valid_sisdri_dirac64": sisdri,
                        "valid_sisdri_projected16": projected})
        LOG.info("validate step %d loss %.4f SI-SDRi dirac-64 %.2f dB, dirac-projected-16 %.2f dB",
                 fit.step, vloss, sisdri, projected)
        _write_weights(out / "teacher.safetensors", ema, cfg, fit.step, fit.seconds(), data, history, data_note)

    run_steps(fit, total=total, max_minutes=cfg.max_minutes,
              loss=lambda: dsm_loss(model, next(train), cfg.p_mean, cfg.p_std, gen, cfg.dirac_noise),
              after_update=lambda step: ema_update(ema, model, min(cfg.ema_decay, (1 + step) / (10 + step))),
              checkpoint_every=cfg.checkpoint_every, validate_every=cfg.validate_every, validate=validate,
              log_format="step %d loss %.4f (%.0f s)")
    fit.save()
    record = _write_weights(out / "teacher.safetensors", ema, cfg, fit.step, fit.seconds(), data, history, data_note)
    (out / "record.json").write_text(json.dumps(record, indent=2, sort_keys=True))
    return record


def _init_source(init_from: str | None, runs: str | Path) -> Path | None:
    """Where ``init_from`` points (see :class:`TeacherTrainConfig`): ``runs / init_from``, or for
    a ``.safetensors`` file also ``init_from`` itself. None when there is no ``init_from`` or its
    checkpoint does not exist (the run starts from scratch); a teacher file that does not exist
    is an error, since a fine-tuning recipe means nothing from scratch."""
    if not init_from:
        return None
    candidates = [Path(runs) / init_from]
    if init_from.endswith(".safetensors"):
        candidates.append(Path(init_from))
    found = next((p for p in candidates if p.is_file()), None)
    if found is None and init_from.endswith(".safetensors"):
        raise bad_value("init_from", str(candidates[0]), "the teacher file this config fine-tunes (the "
                        "diffusion-teacher run's teacher.safetensors; the README says how to fetch the one it used)")
    return found


def _init_weights(path: Path) -> tuple[dict[str, torch.Tensor], int]:
    """The starting weights and their training steps: a checkpoint's EMA or a teacher file."""
    if path.suffix == ".safetensors":
        from stemstream.realtime.models.weights import read_weights

        steps = json.loads(read_weights(path)[1].get("run_record") or "{}").get("steps", 0)
        return load_teacher(path).state_dict(), int(steps)
    init = torch.load(path, map_location="cpu", weights_only=True)
    return init["ema"], int(init["step"])


def _write_weights(path: Path, ema: ScoreUNet, cfg: TeacherTrainConfig, step: int, seconds: float, data: str,
                   history: list[dict[str, float]], note: str = "") -> dict[str, Any]:
    from stemstream.realtime.models.weights import save_weights

    record = run_record({
        "role": "teacher", "data": data, "init": note, "steps": step, "wall_seconds": round(seconds, 1),
        "batch": cfg.batch, "lr": cfg.lr, "params": count_parameters(ema), "history": history,
        "train_config": {k: v for k, v in asdict(cfg).items() if k != "net"},
    })
    save_weights(path, ema, ARCHITECTURE, cfg.net.to_json(), record)
    return record


def run_training(config_name: str, options: TrainOptions) -> int:
    """Entry point of ``stemstream train --config diffusion-*``; returns an exit code."""
    out = Path(options.out or Path(options.runs) / config_name)
    _setup_log(out, bool(options.quiet))
    if config_name == "diffusion-student":
        from stemstream.export.distill import run_distillation

        return run_distillation(options, out)
    if config_name not in CONFIGS:
        raise bad_value("config", config_name, f"one of {sorted(CONFIGS) + ['diffusion-student']}")
    cfg = CONFIGS[config_name]
    if options.ship and config_name not in SHIPPABLE:
        raise bad_value("ship", True, f"only with --config {' or '.join(SHIPPABLE)} (the shipped teacher's "
                        f"recipes); {config_name} writes {out}/teacher.safetensors")
    if options.threads:
        cfg = replace(cfg, threads=int(options.threads))
    cfg = replace(cfg, max_minutes=budget_minutes(options, cfg.max_minutes))
    record = train_teacher(cfg, out, options.data, bool(options.resume),
                           options.steps, options.runs)
    LOG.info("done: %d steps in %.0f s", record["steps"], record["wall_seconds"])
    if options.ship:
        dest = Path(__file__).resolve().parents[2] / "realtime" / "weights" / "diffusion-teacher.safetensors"
        ship_half(out / "teacher.safetensors", dest)
        LOG.info("shipped %s", dest)
    return 0


__all__ = [
    "CONFIGS", "SHIPPABLE", "TeacherTrainConfig", "default_teacher", "dsm_loss", "training_noise", "run_record", "run_training", "separation_sisdri", "train_teacher",
]

