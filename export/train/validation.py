"""Validation during training and what a run records: SI-SDRi per stem on fixed excerpts
(plain, or grouped and band-limited for the DJ set), the curves, and where the run happened."""

from __future__ import annotations

import csv
import json
import platform
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stemstream.export.train.dj_data import TrainBatch
from stemstream.export.train.losses import align, band_limit, si_sdri_per_stem
from stemstream.realtime.models.hybrid import HybridSeparator


def machine_info() -> dict[str, Any]:
    """Where a run happened (goes in the run record)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    return {
        "host": platform.node(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "git_commit": commit,
        "cuda_device": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


@torch.no_grad()
def validate(model: HybridSeparator, mix: torch.Tensor | TrainBatch, stems: torch.Tensor | None = None,
             batch: int = 4) -> dict[str, float]:
    """Mean SI-SDRi (dB) per stem on fixed excerpts, latency-aligned; plus ``mean``.

    ``mix`` may be a :class:`TrainBatch` (the DJ set's validation: grouped and band-limited rows);
    then a stem is scored on the rows whose target is that stem alone."""
    if isinstance(mix, TrainBatch):
        return validate_grouped(model, mix, batch)
    model.eval()
    lat = model.config.latency_samples
    hop = model.config.hop_samples
    n = (mix.shape[-1] // hop) * hop
    imps, valids = [], []
    for i in range(0, mix.shape[0], batch):
        m, s = mix[i : i + batch, :, :n], stems[i : i + batch, ..., :n]
        est, _ = model(m, model.init_state(m.shape[0]))
        est, ref = align(est, s, lat)
        _, mref = align(m, m, lat)
        imp, valid = si_sdri_per_stem(est, ref, mref)
        imps.append(imp)
        valids.append(valid)
    model.train()
    imp, valid = torch.cat(imps), torch.cat(valids)
    out = {}
    for k, name in enumerate(model.config.stems):
        sel = imp[:, k][valid[:, k]]
        out[name] = float(sel.mean()) if len(sel) else float("nan")
    out["mean"] = float(np.nanmean([out[n] for n in model.config.stems]))
    return out


def validate_columns(model: HybridSeparator, main: TrainBatch | tuple[torch.Tensor, torch.Tensor],
                     extra: dict[str, TrainBatch] | None = None) -> dict[str, float]:
    """:func:`validate` on the ``main`` set (its keys as they are) and on each ``extra`` set, whose
    keys come prefixed with its name (``lmms_vocals``, ``lmms_mean``)."""
    scores = validate(model, main) if isinstance(main, TrainBatch) else validate(model, *main)
    for name, batch in (extra or {}).items():
        scores.update({f"{name}_{k}": v for k, v in validate(model, batch).items()})
    return scores


@torch.no_grad()
def validate_grouped(model: HybridSeparator, data: TrainBatch, batch: int = 4) -> dict[str, float]:
    """:func:`validate` for a :class:`TrainBatch`: band-limited rows compared below their band."""
    model.eval()
    lat, hop = model.config.latency_samples, model.config.hop_samples
    n = (data.mix.shape[-1] // hop) * hop
    stems = model.config.stems
    scores: dict[int, list[torch.Tensor]] = {k: [] for k in range(len(stems))}
    for i in range(0, data.mix.shape[0], batch):
        part = slice(i, i + batch)
        m, t, g = data.mix[part, :, :n], data.targets[part, ..., :n], data.groups[part]
        est, _ = model(m, model.init_state(m.shape[0]))
        est, ref = align(torch.einsum("bks,bsct->bkct", g, est), t, lat)
        _, mref = align(m, m, lat)
        band = data.band_hz[part]
        est, ref, mref = (band_limit(x, band, model.config.sample_rate) for x in (est, ref, mref))
        imp, audible = si_sdri_per_stem(est, ref, mref)
        for b in range(imp.shape[0]):
            for k in range(imp.shape[1]):
                row = g[b, k]
                if not (data.valid[i + b, k] and audible[b, k]) or float(row.sum()) != 1.0:
                    continue
                scores[int(row.argmax())].append(imp[b, k])
    model.train()
    out = {name: float(torch.stack(scores[k]).mean()) if scores[k] else float("nan")
           for k, name in enumerate(stems)}
    out["mean"] = float(np.nanmean([out[name] for name in stems]))
    return out


def write_curves(out_dir: Path, history: list[dict[str, Any]], stems: tuple[str, ...]) -> None:
    """``metrics.json``, ``metrics.csv`` and ``curve.png`` from the validation history."""
    (out_dir / "metrics.json").write_text(json.dumps(history, indent=1))
    keys = ["epoch", "step", "elapsed_s", "train_loss", *stems, "mean"]
    keys += [k for k in (history[-1] if history else {}) if k not in keys]  # extra columns (lmms_mean ...)
    with open(out_dir / "metrics.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        w.writerows(history)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        steps = [h["step"] for h in history]
        for k in (*stems, "mean"):
            ax.plot(steps, [h[k] for h in history], label=k, lw=2 if k == "mean" else 1)
        ax.set_xlabel("step")
        ax.set_ylabel("validation SI-SDRi (dB)")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out_dir / "curve.png", dpi=100)
        plt.close(fig)
    except Exception:  # plotting is a convenience; never fail a run on it
        pass
