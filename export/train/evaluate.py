"""Held-out evaluation of hop models: SI-SDRi per stem, and the oracle-mask ceiling.

Protocol (the seeds' Sec. 4.x): each song is separated in one causal streaming pass (equal
to hop-by-hop processing), the model latency is removed, then SI-SDRi is computed on 4 s
chunks with a 2 s hop; chunks where the reference stem is silent (RMS < 1e-3) or the
mixture is a single source are skipped. Figures are means over chunks, per stem.

``python -m export.train.evaluate live [--data data/synth/test] [--oracle] [--out F.json]``
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from export.train.losses import si_sdr
from realtime.models.dsp import StreamingSTFT
from realtime.models.live import LiveSeparator

Separator = Callable[[np.ndarray], np.ndarray]  # (C, T) mixture -> (S, C, T) stems, aligned


def model_separator(model: LiveSeparator) -> Separator:
    """Causal one-pass separation with the latency trimmed (output aligned with input)."""

    @torch.no_grad()
    def run(mix: np.ndarray) -> np.ndarray:
        hop, lat = model.config.hop_samples, model.config.latency_samples
        t = mix.shape[-1]
        n = -(-(t + lat) // hop) * hop
        x = torch.zeros(1, mix.shape[0], n)
        x[0, :, :t] = torch.from_numpy(mix)
        y, _ = model(x, model.init_state(1))
        return y[0, ..., lat : lat + t].numpy()

    return run


def oracle_separator(stems_ref: np.ndarray, analysis: int = 1024, synthesis: int = 256, hop: int = 128) -> np.ndarray:
    """Ideal ratio mask ``|S_k| / sum_j |S_j|`` through the same low-delay STFT, aligned.

    ``stems_ref`` ``(S, C, T)``; returns the oracle estimate ``(S, C, T)``.
    """
    stft = StreamingSTFT(analysis, synthesis, hop)
    s, c, t = stems_ref.shape
    lat = stft.latency_samples
    n = -(-(t + lat) // hop) * hop
    x = torch.zeros(s * c, n)
    x[:, :t] = torch.from_numpy(stems_ref.reshape(s * c, t))
    spec, _ = stft.analyse(x, torch.zeros(s * c, stft.history_samples))  # (S*C, 2F, n)
    f = spec.shape[1] // 2
    spec = spec.reshape(s, c, 2, f, -1)
    mag = torch.sqrt(spec[:, :, 0] ** 2 + spec[:, :, 1] ** 2)
    mask = mag / (mag.sum(0, keepdim=True) + 1e-8)
    mix_spec = spec.sum(0, keepdim=True)
    est = (mask.unsqueeze(2) * mix_spec).reshape(s * c, 2 * f, -1)
    y, _ = stft.synthesise(est, torch.zeros(s * c, stft.tail_samples))
    return y.reshape(s, c, -1)[..., lat : lat + t].numpy()


def chunk_scores(est: np.ndarray, ref: np.ndarray, mix: np.ndarray, sr: int = 44100,
                 chunk_s: float = 4.0, hop_s: float = 2.0) -> list[list[float]]:
    """SI-SDRi per stem over chunks: ``scores[stem]`` is a list of chunk values."""
    s = ref.shape[0]
    out: list[list[float]] = [[] for _ in range(s)]
    c, h = int(chunk_s * sr), int(hop_s * sr)
    t = ref.shape[-1]
    starts = list(range(0, max(t - c, 0) + 1, h)) or [0]
    for a in starts:
        r = torch.from_numpy(ref[..., a : a + c].reshape(s, -1).astype(np.float32))
        e = torch.from_numpy(est[..., a : a + c].reshape(s, -1).astype(np.float32))
        m = torch.from_numpy(mix[..., a : a + c].reshape(1, -1).astype(np.float32)).expand_as(r)
        active = r.pow(2).mean(-1).sqrt() > 1e-3
        if int(active.sum()) < 2:
            continue  # silent or single-source chunk
        imp = si_sdr(e, r) - si_sdr(m, r)
        for k in range(s):
            if active[k]:
                out[k].append(float(imp[k]))
    return out


def _load_folder(root: Path, stems: tuple[str, ...]) -> list[tuple[str, np.ndarray]]:
    """Song folders with ``<stem>.{wav,flac,mp3}``; missing stems are silence (44.1 kHz)."""
    import soundfile as sf

    songs = []
    dirs = [root] if any(root.glob("*.mp3")) or any(root.glob("*.flac")) else sorted(p for p in root.iterdir() if p.is_dir())
    for d in dirs:
        parts = {}
        for s in stems:
            for ext in ("wav", "flac", "mp3"):
                p = d / f"{s}.{ext}"
                if p.exists():
                    a, sr = sf.read(str(p), dtype="float32", always_2d=True)
                    assert sr == 44100, (p, sr)
                    parts[s] = a.T[:2] if a.shape[1] >= 2 else np.repeat(a.T, 2, 0)
                    break
        # non-target stems present in the folder still belong in the mixture
        others = [p for p in d.iterdir() if p.suffix in (".wav", ".flac", ".mp3")
                  and p.stem not in stems and p.stem != "mixture"]
        if not parts:
            continue
        n = min(a.shape[-1] for a in parts.values())
        ref = np.stack([parts.get(s, np.zeros((2, n), np.float32))[:, :n] for s in stems])
        extra = np.zeros((2, n), np.float32)
        for p in others:
            a, _ = sf.read(str(p), dtype="float32", always_2d=True)
            a = a.T[:2] if a.shape[1] >= 2 else np.repeat(a.T, 2, 0)
            m = min(n, a.shape[-1])
            extra[:, :m] += a[:, :m]
        songs.append((d.name, ref, extra))
    return songs


def evaluate_path(model: LiveSeparator | None, root: str | Path, stems: tuple[str, ...],
                  oracle: bool = False) -> dict:
    """Per-stem SI-SDRi of ``model`` (or the oracle mask) on every song under ``root``."""
    loaded = _load_folder(Path(root), stems)
    sep = model_separator(model) if model is not None else None
    songs = loaded
    per: list[list[float]] = [[] for _ in stems]
    for _, ref, extra in songs:
        mix = ref.sum(0) + extra
        if oracle:
            full = np.concatenate([ref, extra[None]], 0)
            est = oracle_separator(full)[: len(stems)]
        else:
            est = sep(mix)[[list(model.config.stems).index(n) for n in stems]]
        for k, vals in enumerate(chunk_scores(est, ref, mix)):
            per[k].extend(vals)
    res = {n: (float(np.mean(v)) if v else float("nan")) for n, v in zip(stems, per)}
    res["mean"] = float(np.nanmean([res[n] for n in stems if not np.isnan(res[n])]))
    res["chunks"] = {n: len(v) for n, v in zip(stems, per)}
    res["songs"] = len(songs)
    return res


def main() -> None:  # pragma: no cover - evaluation script
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("model", help="registry name or .safetensors path; 'oracle' for the oracle mask")
    p.add_argument("--data", default="data/synth/test")
    p.add_argument("--stems", default="bass,drums,guitar,piano")
    p.add_argument("--out", default=None)
    a = p.parse_args()
    torch.set_num_threads(1)
    stems = tuple(a.stems.split(","))
    if a.model == "oracle":
        res = evaluate_path(None, a.data, stems, oracle=True)
    else:
        from realtime.models.registry import load_torch_model

        res = evaluate_path(load_torch_model(a.model), a.data, stems)
    res = {"model": a.model, "data": a.data, **res}
    print(json.dumps(res))
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":  # pragma: no cover
    main()
