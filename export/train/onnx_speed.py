"""Minimal ONNX export of a hop model for measuring CPU speed (the real exporter is
``stemstream.export.onnx_export``, issue 5). State travels as explicit graph inputs/outputs.

``python -m stemstream.export.train.onnx_speed live [--hops 1 4 32] [--seconds 20]`` prints the
single-thread ONNX Runtime real-time factor per call size and the max difference to PyTorch.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn


class _Flat(nn.Module):
    def __init__(self, model: nn.Module, names: list[str]) -> None:
        super().__init__()
        self.model, self.names = model, names

    def forward(self, audio: torch.Tensor, *state: torch.Tensor):  # type: ignore[override]
        out, new = self.model(audio, dict(zip(self.names, state)))
        return (out, *[new[n] for n in self.names])


def export_onnx(model: nn.Module, path: str | Path, hops: int) -> list[str]:
    """Export ``model`` for calls of ``hops`` hops (batch 1); returns the state names in order."""
    state = model.init_state(1)
    names = sorted(state)
    audio = torch.zeros(1, model.config.channels, hops * model.config.hop_samples)
    torch.onnx.export(
        _Flat(model.eval(), names), (audio, *[state[n] for n in names]), str(path),
        input_names=["audio", *names], output_names=["stems", *[f"new_{n}" for n in names]],
        opset_version=17, dynamo=False,
    )
    return names


def measure(model: nn.Module, hops: int, seconds: float, threads: int = 1) -> dict:
    """RTF of ONNX Runtime (``threads`` intra-op threads) for calls of ``hops`` hops."""
    import onnxruntime as ort

    hop = model.config.hop_samples
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.onnx"
        names = export_onnx(model, path, hops)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    n_calls = max(1, int(seconds * model.config.sample_rate / (hops * hop)))
    audio = (0.1 * rng.standard_normal((n_calls, 1, model.config.channels, hops * hop))).astype(np.float32)
    state = {n: v.numpy() for n, v in model.init_state(1).items()}
    for _ in range(5):  # warm-up
        sess.run(None, {"audio": audio[0], **state})
    t0 = time.perf_counter()
    outs = []
    for i in range(n_calls):
        res = sess.run(None, {"audio": audio[i], **state})
        outs.append(res[0])
        state = dict(zip(names, res[1:]))
    wall = time.perf_counter() - t0
    with torch.no_grad():
        ref, _ = model(torch.from_numpy(np.concatenate(audio[:, 0], -1))[None], model.init_state(1))
    diff = float(np.abs(np.concatenate(outs, -1) - ref.numpy()).max())
    audio_s = n_calls * hops * hop / model.config.sample_rate
    return {"hops_per_call": hops, "rtf": wall / audio_s, "ms_per_call": 1000 * wall / n_calls,
            "audio_seconds": audio_s, "max_abs_diff_vs_torch": diff, "threads": threads}


def main() -> None:  # pragma: no cover - measurement script
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("model")
    p.add_argument("--hops", type=int, nargs="+", default=[1, 4, 32])
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--out", default=None)
    a = p.parse_args()
    from stemstream.realtime.models.registry import load_torch_model

    torch.set_num_threads(1)
    model = load_torch_model(a.model)
    rows = [measure(model, h, a.seconds) for h in a.hops]
    for r in rows:
        print(json.dumps(r))
    if a.out:
        Path(a.out).write_text(json.dumps({"model": a.model, "results": rows}, indent=1))


if __name__ == "__main__":  # pragma: no cover
    main()
