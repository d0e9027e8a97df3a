"""Parity between backends: same input through the streaming engine, compare the stems.

Test signals are deterministic: white noise, and synthetic music whose true stems are known
(:func:`synthetic_song`: bass, drums, guitar-like plucks, piano-like tones), so a parity run
reports both the raw difference (max abs, in full-scale units) and the separation quality
(SI-SDR improvement, dB) of each backend.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from stemstream.export.evaluation.metrics import si_sdr_improvement_stems
from stemstream.realtime.protocol import HopModel


def _envelope(n: int, sample_rate: int, attack_s: float, decay_s: float) -> np.ndarray:
    t = np.arange(n) / sample_rate
    return np.minimum(1.0, t / max(attack_s, 1e-4)) * np.exp(-t / decay_s)


def synthetic_song(seconds: float, sample_rate: int, channels: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A deterministic music-like excerpt and its four stems.

    Returns ``(mixture (channels, T), stems (4, channels, T))`` float32 in the order
    bass, drums, guitar, piano; ``T = seconds * sample_rate``; peak about 0.5.
    """
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sample_rate))
    stems = np.zeros((4, channels, n), dtype=np.float64)
    beat = int(sample_rate * 60 / rng.uniform(90, 130))
    root = rng.integers(36, 48)  # MIDI note of the bass root
    scale = np.array([0, 2, 3, 5, 7, 8, 10])

    def hz(midi: float) -> float:
        return 440.0 * 2 ** ((midi - 69) / 12)

    def add(stem: int, start: int, sig: np.ndarray, pan: float) -> None:
        end = min(n, start + sig.size)
        if end <= start:
            return
        gains = [math.cos(pan * math.pi / 2), math.sin(pan * math.pi / 2)] if channels == 2 else [1.0] * channels
        for c in range(channels):
            stems[stem, c, start:end] += gains[c] * sig[: end - start]

    for k, start in enumerate(range(0, n, beat)):
        # bass: one note per beat, a few harmonics
        m = root + scale[rng.integers(0, 4)]
        ln = beat
        t = np.arange(ln) / sample_rate
        note = sum(np.sin(2 * np.pi * hz(m) * h * t) / h**1.5 for h in (1, 2, 3))
        add(0, start, 0.35 * note * _envelope(ln, sample_rate, 0.005, 0.4), 0.5)
        # drums: kick on even beats, snare noise on odd, hats every half beat
        if k % 2 == 0:
            kl = int(0.25 * sample_rate)
            tk = np.arange(kl) / sample_rate
            kick = np.sin(2 * np.pi * (50 * tk + 60 * (1 - np.exp(-tk * 30)) / 30))
            add(1, start, 0.6 * kick * _envelope(kl, sample_rate, 0.001, 0.08), 0.5)
        else:
            sl = int(0.2 * sample_rate)
            add(1, start, 0.3 * rng.standard_normal(sl) * _envelope(sl, sample_rate, 0.001, 0.05), 0.45)
        for half in (0, beat // 2):
            hl = int(0.05 * sample_rate)
            hat = np.diff(rng.standard_normal(hl + 1))  # high-passed noise
            add(1, start + half, 0.08 * hat * _envelope(hl, sample_rate, 0.0005, 0.015), 0.7)
        # guitar: plucked saw-like chord tones on off-beats
        gm = root + 24 + scale[rng.integers(0, 7)]
        gl = beat
        tg = np.arange(gl) / sample_rate
        saw = sum(np.sin(2 * np.pi * hz(gm) * h * tg) / h for h in range(1, 9))
        add(2, start + beat // 2, 0.15 * saw * _envelope(gl, sample_rate, 0.002, 0.25), 0.25)
        # piano: two-note chords with inharmonic-free partials, slow decay
        for off in (0, 4):
            pm = root + 36 + scale[(k + off) % 7]
            pl = 2 * beat
            tp = np.arange(pl) / sample_rate
            tone = sum(np.sin(2 * np.pi * hz(pm) * h * tp) * 0.6**h for h in range(1, 6))
            add(3, start, 0.12 * tone * _envelope(pl, sample_rate, 0.003, 0.6), 0.75)
    mixture = stems.sum(axis=0)
    peak = np.abs(mixture).max() + 1e-9
    scale_to = 0.5 / peak
    return (mixture * scale_to).astype(np.float32), (stems * scale_to).astype(np.float32)


def synthetic_music(seconds: float, sample_rate: int, channels: int = 2, seed: int = 0) -> np.ndarray:
    """The mixture of :func:`synthetic_song`: ``(channels, seconds * sample_rate)`` float32."""
    return synthetic_song(seconds, sample_rate, channels, seed)[0]


def separate(model: HopModel, audio: np.ndarray, block_size: int = 4096) -> np.ndarray:
    """Separate ``audio`` ``(channels, T)`` at the model's rate through the streaming engine.

    Uses ``stemstream.realtime.engine.offline.separate_array`` (latency trimmed, same length). Returns
    ``(stems, channels, T)`` float32.
    """
    from stemstream.realtime.engine.offline import separate_array

    return separate_array(model, audio, model.info.sample_rate, block_size=block_size)


def si_sdr_improvement(estimate: np.ndarray, stems: np.ndarray, mixture: np.ndarray) -> float:
    """Mean SI-SDRi (dB) over stems; channels of each stem flattened into one signal.

    ``estimate``/``stems`` ``(S, C, T)``, ``mixture`` ``(C, T)`` (``stemstream.export.evaluation.metrics``' definition).
    """
    return float(np.mean(si_sdr_improvement_stems(estimate, stems, mixture)))


@dataclass(frozen=True)
class ParityFigure:
    """One input's comparison.

    Attributes:
        signal: input name (``random``, ``music``).
        max_abs_diff: largest absolute stem difference (full-scale units).
        rms_diff: RMS of the difference.
        si_sdri_reference: SI-SDRi (dB) of the reference backend (``music`` only, else nan).
        si_sdri_candidate: SI-SDRi (dB) of the candidate backend (``music`` only, else nan).
    """

    signal: str
    max_abs_diff: float
    rms_diff: float
    si_sdri_reference: float
    si_sdri_candidate: float


def parity(
    candidate: HopModel, reference: HopModel, *, seconds: float = 3.0, seed: int = 0
) -> list[ParityFigure]:
    """Run white noise and a synthetic song through both models via the engine and compare."""
    sr, ch = reference.info.sample_rate, reference.info.channels
    rng = np.random.default_rng(seed)
    noise = (0.3 * rng.standard_normal((ch, int(seconds * sr)))).astype(np.float32)
    mixture, stems = synthetic_song(seconds, sr, ch, seed)
    figures = []
    for name, audio in (("random", noise), ("music", mixture)):
        ref = separate(reference, audio)
        cand = separate(candidate, audio)
        diff = cand.astype(np.float64) - ref
        if name == "music" and stems.shape[0] == ref.shape[0]:
            q_ref = si_sdr_improvement(ref, stems, mixture)
            q_cand = si_sdr_improvement(cand, stems, mixture)
        else:
            q_ref = q_cand = float("nan")
        figures.append(
            ParityFigure(name, float(np.abs(diff).max()), float(np.sqrt(np.mean(diff**2))), q_ref, q_cand)
        )
    return figures


def figures_as_dicts(figures: list[ParityFigure]) -> list[dict[str, Any]]:
    """JSON-friendly form of :func:`parity`'s result."""
    return [asdict(f) for f in figures]


__all__ = [
    "ParityFigure",
    "figures_as_dicts",
    "parity",
    "separate",
    "si_sdr_improvement",
    "synthetic_music",
    "synthetic_song",
]
