"""Diagnostics of the diffusion teacher: does its prior know what clean stems sound like, and
does it know which stem a sound belongs to? (``stemstream bench diffusion --rows diagnostics``)

Two tables on the benchmark's held-out excerpts:

* **Denoiser**: one network call at noise level ``sigma`` on the true stems plus noise. Mean
  SI-SDR (dB, non-silent stems) of the noisy input and of the denoised output: how well the
  prior knows clean audio at each level.
* **Warm start**: the Dirac separators run from ``sigma0`` (32 Karras steps down to 0) instead
  of from pure noise, starting either from the true stems plus noise at ``sigma0`` or from
  the mixture split evenly (``y / N``) plus the same noise. SI-SDRi (dB). From the truth, a
  good prior keeps the separation; from ``y / N`` it has to decide which stem each sound
  belongs to. A prior that keeps the truth but cannot leave ``y / N`` knows clean audio, but
  not yet the instruments apart - the part of the sampler that runs at high noise.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from stemstream.export.evaluation.metrics import si_sdr

#: Noise levels of the denoiser table.
DENOISER_SIGMAS: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3, 1.0)
#: Starting levels of the warm-start table.
WARM_SIGMAS: tuple[float, ...] = (0.05, 0.1, 0.2, 0.4)
#: Steps of the warm-start sampler runs.
WARM_STEPS: int = 32


def _active(clip: np.ndarray) -> list[int]:
    return [s for s in range(clip.shape[0]) if np.sqrt(np.mean(clip[s] ** 2)) >= 1e-3]


def denoiser_rows(teacher: Any, clips: list[np.ndarray], seed: int = 300) -> list[dict[str, Any]]:
    """One row per level of :data:`DENOISER_SIGMAS`: ``{"sigma", "noisy_db", "denoised_db"}``
    (mean SI-SDR over the clips' non-silent stems). ``clips``: ``(S, C, T)`` arrays."""
    rows = []
    for sigma in DENOISER_SIGMAS:
        noisy_db, denoised_db = [], []
        for i, clip in enumerate(clips):
            clean = torch.from_numpy(clip)[None]
            gen = torch.Generator().manual_seed(seed + i)
            x = clean + sigma * torch.randn(clean.shape, generator=gen)
            with torch.inference_mode():
                d = teacher(x, torch.full((1,), sigma))
            for s in _active(clip):
                ref = clip[s].reshape(-1)
                noisy_db.append(float(si_sdr(x[0, s].reshape(-1).numpy(), ref)))
                denoised_db.append(float(si_sdr(d[0, s].reshape(-1).numpy(), ref)))
        rows.append({"sigma": sigma, "noisy_db": float(np.mean(noisy_db)), "denoised_db": float(np.mean(denoised_db))})
    return rows


def warm_start_rows(teacher: Any, clips: list[np.ndarray], seed: int = 400) -> list[dict[str, Any]]:
    """One row per (sampler, start, ``sigma0``): ``{"sampler", "start", "sigma0", "sisdri_db"}``,
    mean SI-SDRi over the clips' non-silent stems; ``start`` is ``truth`` or ``mixture/N``."""
    from stemstream.realtime.diffusion.samplers import Conditioning, karras_sigmas, sample_dirac, sample_dirac_projected

    samplers = {"dirac": sample_dirac, "dirac-projected": sample_dirac_projected}
    rows = []
    for name, sampler in samplers.items():
        for start in ("truth", "mixture/N"):
            for sigma0 in WARM_SIGMAS:
                scores = []
                for i, clip in enumerate(clips):
                    clean = torch.from_numpy(clip)[None]
                    mixture = clean.sum(dim=1)
                    base = clean if start == "truth" else (mixture / clean.shape[1]).unsqueeze(1).expand_as(clean)
                    gen = torch.Generator().manual_seed(seed + i)
                    x = base + sigma0 * torch.randn(clean.shape, generator=gen)
                    with torch.inference_mode():
                        est = sampler(teacher, x, karras_sigmas(WARM_STEPS, sigma_max=sigma0), Conditioning(mixture=mixture),
                                      generator=gen)[0].numpy()
                    mix = clip.sum(0).reshape(-1)
                    for s in _active(clip):
                        ref = clip[s].reshape(-1)
                        scores.append(float(si_sdr(est[s].reshape(-1), ref) - si_sdr(mix, ref)))
                rows.append({"sampler": name, "start": start, "sigma0": sigma0, "sisdri_db": float(np.mean(scores))})
    return rows


def diagnose(teacher: Any, clips: list[np.ndarray]) -> dict[str, Any]:
    """Both tables: ``{"denoiser": [...], "warm_start": [...]}``."""
    return {"denoiser": denoiser_rows(teacher, clips), "warm_start": warm_start_rows(teacher, clips)}


def markdown(diag: dict[str, Any]) -> list[str]:
    """The two tables as Markdown lines."""
    lines = ["## Teacher diagnostics", "",
             "Denoiser, one network call on the true stems + noise at sigma (mean SI-SDR, dB):", "",
             "| sigma | noisy input | denoised |", "|---|---|---|"]
    lines += [f"| {r['sigma']:g} | {r['noisy_db']:.2f} | {r['denoised_db']:.2f} |" for r in diag["denoiser"]]
    lines += ["", f"Warm start: {WARM_STEPS} Dirac steps from sigma0 down to 0, started from the true stems or from "
              "the mixture split evenly, plus noise at sigma0 (SI-SDRi, dB):", ""]
    heads = [f"sigma0 {s:g}" for s in WARM_SIGMAS]
    lines += ["| sampler | start | " + " | ".join(heads) + " |", "|---|---|" + "---|" * len(heads)]
    for name in dict.fromkeys(r["sampler"] for r in diag["warm_start"]):
        for start in ("truth", "mixture/N"):
            vals = [r["sisdri_db"] for r in diag["warm_start"] if r["sampler"] == name and r["start"] == start]
            lines.append(f"| {name} | {start} | " + " | ".join(f"{v:.2f}" for v in vals) + " |")
    return lines
