"""Per-stem production effects for synthetic songs (composer version 2 and later).

A mixing engineer's variety that a SoundFont lacks: random EQ (shelves and a peak),
compression, and for guitars that the SoundFont renders clean, occasional overdrive. Each
stem's chain is drawn from a seeded generator, so songs stay deterministic. Uses
``pedalboard`` (a core dependency).
"""

from __future__ import annotations

import numpy as np

CLEAN_GUITARS = range(24, 29)  # nylon, steel, jazz, clean, muted


def draw_chain(stem: str, program: int, rng: np.random.Generator) -> list[dict]:
    """A JSON-ready list of effect settings for one stem (possibly empty)."""
    chain: list[dict] = []
    if stem == "guitar" and program in CLEAN_GUITARS and rng.random() < 0.25:
        chain.append({"type": "distortion", "drive_db": round(float(rng.uniform(8, 28)), 2)})
        chain.append({"type": "lowpass", "cutoff_hz": round(float(rng.uniform(3500, 8000)), 1)})
    if rng.random() < 0.7:
        chain.append({"type": "low_shelf", "cutoff_hz": round(float(rng.uniform(80, 300)), 1),
                      "gain_db": round(float(rng.uniform(-6, 6)), 2)})
        chain.append({"type": "peak", "cutoff_hz": round(float(np.exp(rng.uniform(np.log(250), np.log(4000)))), 1),
                      "gain_db": round(float(rng.uniform(-6, 6)), 2), "q": round(float(rng.uniform(0.7, 2.0)), 2)})
        chain.append({"type": "high_shelf", "cutoff_hz": round(float(rng.uniform(3000, 10000)), 1),
                      "gain_db": round(float(rng.uniform(-6, 6)), 2)})
    if rng.random() < (0.6 if stem in ("drums", "bass") else 0.3):
        chain.append({"type": "compressor", "threshold_db": round(float(rng.uniform(-30, -10)), 2),
                      "ratio": round(float(rng.uniform(2, 6)), 2),
                      "attack_ms": round(float(rng.uniform(1, 30)), 2),
                      "release_ms": round(float(rng.uniform(50, 300)), 1)})
    return chain


def apply_chain(audio: np.ndarray, chain: list[dict], sample_rate: int) -> np.ndarray:
    """Run ``audio`` ``(channels, samples)`` float32 through ``chain``; same shape."""
    if not chain:
        return audio
    import pedalboard as pb

    plugins = []
    for fx in chain:
        kind = fx["type"]
        if kind == "distortion":
            plugins.append(pb.Distortion(drive_db=fx["drive_db"]))
        elif kind == "lowpass":
            plugins.append(pb.LowpassFilter(cutoff_frequency_hz=fx["cutoff_hz"]))
        elif kind == "low_shelf":
            plugins.append(pb.LowShelfFilter(cutoff_frequency_hz=fx["cutoff_hz"], gain_db=fx["gain_db"]))
        elif kind == "high_shelf":
            plugins.append(pb.HighShelfFilter(cutoff_frequency_hz=fx["cutoff_hz"], gain_db=fx["gain_db"]))
        elif kind == "peak":
            plugins.append(pb.PeakFilter(cutoff_frequency_hz=fx["cutoff_hz"], gain_db=fx["gain_db"], q=fx["q"]))
        elif kind == "compressor":
            plugins.append(pb.Compressor(threshold_db=fx["threshold_db"], ratio=fx["ratio"],
                                         attack_ms=fx["attack_ms"], release_ms=fx["release_ms"]))
        else:  # pragma: no cover - draw_chain makes only the kinds above
            raise ValueError(f"unknown effect {kind!r}")
    out = pb.Pedalboard(plugins)(np.ascontiguousarray(audio, dtype=np.float32), float(sample_rate))
    return np.ascontiguousarray(out, dtype=np.float32)
