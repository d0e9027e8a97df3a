"""Training loop for the live separator: seeded, resumable, validated per epoch.

Writes into ``out_dir``: ``checkpoint.pt`` (model, optimiser, step, RNG, history, the weight
average with ``cfg.ema``; written at every validation), ``metrics.json`` / ``metrics.csv`` / ``curve.png`` (validation SI-SDRi
per stem per epoch), ``train.log`` (by the caller), ``<name>.safetensors`` and
``run_record.json`` at the end.
"""

from __future__ import annotations

import copy
import json
import math
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from stemstream.export.train.configs import TrainConfig
from stemstream.export.train.data import DeviceRemixSampler, RemixSampler, SongSet, dataset_info, load_songs, valid_excerpts
from stemstream.export.train.diffusion_fit import ema_update
from stemstream.export.train.dj_data import LMMS_VALIDATION, DjSampler, DjSources, TrainBatch, validation_batch
from stemstream.export.train.losses import align, grouped_sdr_loss, thresholded_sdr_loss
from stemstream.export.train.rates import ResampledSampler, resample_batch, source_samples, whole_hops
from stemstream.export.train.validation import machine_info, validate_columns, write_curves
from stemstream.realtime.errors import ConfigError
from stemstream.realtime.models.hybrid import ARCHITECTURE, HybridSeparator, count_parameters, macs_per_hop
from stemstream.realtime.models.weights import save_weights
from stemstream.realtime.stems import MODEL_SAMPLE_RATE


def training_loss(
    model: HybridSeparator, mix: torch.Tensor | TrainBatch, stems: torch.Tensor | None = None,
    teacher: HybridSeparator | None = None, distill: float = 0.0,
) -> torch.Tensor:
    """Thresholded SDR of ``model``'s latency-aligned estimate against the true ``stems``; with a
    ``teacher``, ``(1 - distill)`` of that plus ``distill`` times the SDR against the teacher's
    estimate (computed without gradients). ``mix`` may be a :class:`TrainBatch` (grouped and
    band-limited targets, ``stemstream.export.train.dj_data``)."""
    lat = model.config.latency_samples
    if isinstance(mix, TrainBatch):
        return grouped_training_loss(model, mix, teacher, distill)
    est, _ = model(mix, model.init_state(mix.shape[0]))
    est, ref = align(est, stems, lat)
    _, mref = align(mix, mix, lat)
    loss = thresholded_sdr_loss(est, ref, mref)
    if teacher is None or distill == 0:
        return loss
    with torch.no_grad():
        t_est, _ = teacher(mix, teacher.init_state(mix.shape[0]))
    t_est, _ = align(t_est, stems, lat)
    return (1 - distill) * loss + distill * thresholded_sdr_loss(est, t_est, mref)


def grouped_training_loss(model: HybridSeparator, data: TrainBatch, teacher: HybridSeparator | None = None,
                          distill: float = 0.0) -> torch.Tensor:
    """:func:`training_loss` for a :class:`TrainBatch`; a teacher's estimate is a full-band,
    ungrouped target for every stem."""
    lat, rate = model.config.latency_samples, model.config.sample_rate
    est, _ = model(data.mix, model.init_state(data.mix.shape[0]))
    est, ref = align(est, data.targets, lat)
    _, mref = align(data.mix, data.mix, lat)
    loss = grouped_sdr_loss(est, ref, mref, data.groups, data.valid, data.band_hz, rate)
    if teacher is None or distill == 0:
        return loss
    with torch.no_grad():
        t_est, _ = teacher(data.mix, teacher.init_state(data.mix.shape[0]))
    t_est, _ = align(t_est, data.targets, lat)
    return (1 - distill) * loss + distill * thresholded_sdr_loss(est, t_est, mref)


def audio_seen_s(phases: list[dict], cfg: TrainConfig, step: int) -> float:
    """Seconds of training audio in ``step`` steps: each phase with its own batch and excerpt
    length (phases recorded before those were kept, and steps before phases were recorded, use
    ``cfg``'s)."""
    covered = sum(p["to_step"] - p["from_step"] for p in phases)
    seen = sum(
        (p["to_step"] - p["from_step"]) * p.get("batch", cfg.batch) * p.get("excerpt_seconds", cfg.excerpt_seconds)
        for p in phases
    )
    return seen + max(0, step - covered) * cfg.batch * cfg.excerpt_seconds


def train(
    cfg: TrainConfig,
    model: HybridSeparator,
    train_songs: SongSet,
    valid_songs: SongSet,
    out_dir: str | Path,
    steps: int | None = None,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = lambda s: None,
    teacher: HybridSeparator | None = None,
) -> dict[str, Any]:
    """Train ``model`` per ``cfg``; returns the run record (also written to ``out_dir``).

    With ``cfg.distill > 0`` the frozen ``teacher`` (same latency) adds its estimates as a
    second target (knowledge distillation). With ``cfg.ema > 0`` an exponential moving average
    of the weights is kept beside them; at the end both are validated and the better is saved
    (the run record says which).
    """
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    total = steps if steps is not None else cfg.steps
    rate, hop = model.config.sample_rate, model.config.hop
    excerpt = int(round(cfg.excerpt_seconds * rate / hop)) * hop  # at the model's rate
    # the data are made at MODEL_SAMPLE_RATE: another model rate draws them longer and resamples
    drawn_samples = excerpt if rate == MODEL_SAMPLE_RATE else source_samples(excerpt, rate)
    device = torch.device(cfg.device)
    dj_sources = None
    if cfg.data == "dj":
        if device.type != "cpu":
            raise ConfigError(f"device={cfg.device!r}: the DJ data ({cfg.name}) is mixed on the CPU; expected cpu")
        dj_sources = DjSources.load(cfg.real_data_root, train_songs, "train",
                                    lmms_root="auto" if cfg.electronic else None)
        sampler = DjSampler(dj_sources, drawn_samples, seed=cfg.seed, voice_variants=cfg.voice_variants,
                            electronic_share=cfg.electronic_share)
        log(f"DJ sources: {json.dumps(dj_sources.describe())}")
    elif device.type == "cpu":  # refuses excerpts longer than every song
        sampler = RemixSampler(train_songs, drawn_samples, seed=cfg.seed)
    else:
        sampler = DeviceRemixSampler(train_songs, drawn_samples, seed=cfg.seed, device=device)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if rate != MODEL_SAMPLE_RATE:
        sampler = ResampledSampler(sampler, rate, excerpt)
        log(f"model rate {rate} Hz: batches resampled from {MODEL_SAMPLE_RATE} Hz "
            f"({drawn_samples} -> {excerpt} samples)")
    model.to(device)
    if teacher is not None:
        teacher.to(device)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    vset, extra_vsets = validation_sets(cfg, valid_songs, rate, hop, device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    step, elapsed, history, phases = 0, 0.0, [], []
    ckpt = out_dir / "checkpoint.pt"
    if resume and ckpt.exists():
        state = torch.load(ckpt, weights_only=False, map_location=device)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step, elapsed, history = state["step"], state["elapsed"], state["history"]
        phases = state.get("phases", [])
        sampler.rng.bit_generator.state = state["sampler_rng"]
        torch.set_rng_state(state["torch_rng"].cpu())
        log(f"resumed from {ckpt} at step {step} ({elapsed:.0f} s)")
    average, averaged = None, 0  # the weight average and how many updates it has had
    if cfg.ema > 0:  # the decay's range is checked with the other arguments (stemstream.export.train.run)
        average = copy.deepcopy(model).requires_grad_(False)
        if resume and ckpt.exists() and "ema" in state:
            average.load_state_dict(state["ema"])
            averaged = state["ema_updates"]
    # one entry per invocation (a resume with other arguments starts a new phase): the run record
    # then says how every step was trained
    phases.append({"from_step": step, "to_step": step, "steps": total, "time_budget_s": cfg.time_budget_s,
                   "lr": cfg.lr, "distill": cfg.distill,
                   "teacher": cfg.teacher_source, "seed": cfg.seed, "ema": cfg.ema,
                   "batch": cfg.batch, "excerpt_seconds": cfg.excerpt_seconds, "device": cfg.device})
    lat = model.config.latency_samples
    if cfg.distill > 0:
        if teacher is None:
            raise ConfigError(f"distill={cfg.distill}: expected a teacher model")
        if teacher.config.latency_samples != lat:
            raise ConfigError(f"distill={cfg.distill}: the teacher's latency is {teacher.config.latency_samples} "
                              f"samples; expected the student's, {lat}")
        teacher.eval()
        teacher.fast_dsp = True
        teacher.requires_grad_(False)
    budget = cfg.time_budget_s  # the schedule ends at whichever of steps / budget comes first

    def progress_fraction() -> float:
        frac = step / max(total, 1)
        if budget > 0:
            frac = max(frac, elapsed / budget)
        return min(frac, 1.0)

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, initial=step, desc=cfg.name, mininterval=5.0)
    model.train()
    model.fast_dsp = True  # FFT path for training; the export path is numerically the same
    init_valid = None
    if cfg.init_from and step == 0:  # where the starting weights stand, on every column
        init_valid = {k: round(v, 3) for k, v in validate_columns(model, vset, extra_vsets).items()}
        log(f"starting weights ({cfg.init_from}): {json.dumps(init_valid)}")
    running, t_last = [], time.time()
    while step < total and progress_fraction() < 1.0:
        frac = progress_fraction()
        lr = cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))
        if step < 50:  # warm-up: a fresh Adam's first updates are full-size on every weight
            lr *= (step + 1) / 50
        for g in opt.param_groups:
            g["lr"] = lr
        drawn = sampler.batch(cfg.batch)
        if isinstance(drawn, TrainBatch):
            loss = training_loss(model, drawn, None, teacher, cfg.distill)
        else:
            loss = training_loss(model, *drawn, teacher, cfg.distill)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        step += 1
        if average is not None:  # short memory at first, so the average starts near the weights
            ema_update(average, model, min(cfg.ema, (1 + averaged) / (10 + averaged)))
            averaged += 1
        now = time.time()
        elapsed += now - t_last
        t_last = now
        running.append(float(loss.detach()))
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(running[-20:]):.2f}", lr=f"{lr:.1e}")
        done = step >= total or progress_fraction() >= 1.0
        if dj_sources is None and step % 25 == 0 and not (Path(train_songs.root).parent / "READY").exists():
            added = train_songs.refresh()
            if added:
                sampler.update_pool()
                log(f"step {step}: {added} more train songs ({len(train_songs.names)} in all)")
        if step % cfg.valid_every == 0 or done:
            scores = validate_columns(model, vset, extra_vsets)
            entry = {
                "epoch": len(history) + 1,
                "step": step,
                "elapsed_s": round(elapsed, 1),
                "train_loss": float(np.mean(running)) if running else float("nan"),
                **{k: round(v, 3) for k, v in scores.items()},
            }
            history.append(entry)
            running = []
            phases[-1]["to_step"] = step
            log(json.dumps(entry))
            write_curves(out_dir, history, model.config.stems)
            torch.save(
                {
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "step": step,
                    "elapsed": elapsed,
                    "history": history,
                    "phases": phases,
                    "sampler_rng": sampler.rng.bit_generator.state,
                    "torch_rng": torch.get_rng_state(),
                    "config": model.config.to_json(),
                    **({"ema": average.state_dict(), "ema_updates": averaged} if average is not None else {}),
                },
                ckpt,
            )
            t_last = time.time()
    if bar is not None:
        bar.close()
    ema_choice = None
    if average is not None:
        last = history[-1]["mean"] if history else float("-inf")
        average.fast_dsp = True
        ema_scores = validate_columns(average, vset, extra_vsets)
        chosen = "ema" if ema_scores["mean"] > last else "last"
        ema_choice = {"decay": cfg.ema, "updates": averaged, "chosen": chosen,
                      "valid_last_mean": last, "valid_ema": {k: round(v, 3) for k, v in ema_scores.items()}}
        log(f"weight average ({averaged} updates, decay {cfg.ema}): valid mean {ema_scores['mean']:.3f} "
            f"vs last weights {last:.3f}: saving the {'average' if chosen == 'ema' else 'last weights'}")
        if chosen == "ema":
            model.load_state_dict(average.state_dict())
    model.eval()
    model.fast_dsp = False
    model.cpu()
    record = {
        "name": cfg.name,
        "architecture": ARCHITECTURE,
        "data": {
            "train_root": train_songs.root,
            "train_songs": len(train_songs.names),
            "train_seconds": round(train_songs.seconds, 1),
            "train_fingerprint": train_songs.fingerprint(),
            "valid_root": valid_songs.root,
            "valid_songs": len(valid_songs.names),
            "dataset_json": {k: v for k, v in dataset_info(train_songs.root).items() if not isinstance(v, (list, dict))},
            **({"dj_sources": dj_sources.describe(), "real_data_root": str(cfg.real_data_root)}
               if dj_sources is not None else {}),
        },
        "train": {
            "steps": step,
            "batch": cfg.batch,
            "excerpt_seconds": cfg.excerpt_seconds,
            "audio_seen_hours": round(audio_seen_s(phases, cfg, step) / 3600, 2),
            "lr": cfg.lr,
            "seed": cfg.seed,
            "init_from": cfg.init_from,
            "init_valid": init_valid,
            "distill": cfg.distill,
            "teacher": cfg.teacher_source,
            "phases": phases,
            "ema": ema_choice,
            "loss": "thresholded SDR (tau=1e-3), time domain, latency-aligned",
            "wall_time_s": round(elapsed, 1),
        },
        "machine": machine_info(),
        "params": count_parameters(model),
        "macs_per_second": int(macs_per_hop(model.config) * model.config.sample_rate / model.config.hop),
        "latency_samples": model.config.latency_samples,
        "valid_history": history,
        "final_valid": (ema_choice["valid_ema"] if ema_choice and ema_choice["chosen"] == "ema"
                        else history[-1] if history else {}),
    }
    (out_dir / "run_record.json").write_text(json.dumps(record, indent=1))
    save_weights(out_dir / f"{cfg.name}.safetensors", model, ARCHITECTURE, model.config.to_json(), record)
    return record


def validation_sets(cfg: TrainConfig, valid_songs: SongSet, rate: int, hop: int, device: torch.device
                    ) -> tuple[TrainBatch | tuple[torch.Tensor, torch.Tensor], dict[str, TrainBatch]]:
    """The fixed validation set of ``cfg`` at the model's ``rate`` and the extra columns beside it,
    scored and recorded (``lmms_mean`` ...) but never choosing anything: for the DJ set, the held-out
    LMMS songs whenever they are there, trained on or not."""
    extra: dict[str, TrainBatch] = {}
    if cfg.data == "dj":
        valid_sources = DjSources.load(cfg.real_data_root, valid_songs, "valid")
        vset: TrainBatch | tuple[torch.Tensor, torch.Tensor] = validation_batch(valid_sources)
        if valid_sources.lmms:
            extra["lmms"] = validation_batch(valid_sources, recipes=LMMS_VALIDATION)
    else:
        vset = tuple(t.to(device) for t in valid_excerpts(valid_songs, seconds=6.0, count=16))
    if rate == MODEL_SAMPLE_RATE:
        return vset, extra

    def at_rate(v):  # the same excerpts, from their first sample, in whole hops
        length = (v.mix if isinstance(v, TrainBatch) else v[0]).shape[-1]
        return resample_batch(v, rate, whole_hops(length * rate // MODEL_SAMPLE_RATE, hop), edges=False)

    return at_rate(vset), {name: at_rate(v) for name, v in extra.items()}


def load_data(data_root: str | Path, limit: int | None = None) -> tuple[SongSet, SongSet]:
    """Train and valid song sets from ``data_root/{train,valid}``."""
    root = Path(data_root)
    return load_songs(root / "train", limit=limit), load_songs(root / "valid", limit=limit)
