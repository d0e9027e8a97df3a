"""Weight files scored on a config's training validation, every column, exactly as a training run
scores them: to set a run that predates a column (``lmms_*``) beside one that has it, or a shipped
file beside a candidate, on the same fixed excerpts. Validation data, never test data.

    python -m stemstream.export.train.score_validation --config dj-live \\
        realtime/weights/dj-live.safetensors runs/dj-live-s4/dj-live.safetensors

``--post-filter 8192`` scores each file followed by the ``+wiener8192`` stage instead
(``--post-filter mask8192``: ``+mask8192``), run as the engine runs it (PyTorch backend, each
excerpt streamed from a fresh state, latency removed).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from stemstream.export.train.configs import get_config
from stemstream.export.train.data import load_songs
from stemstream.export.train.loop import validation_sets
from stemstream.export.train.run import load_separator
from stemstream.export.train.validation import validate_columns
from stemstream.realtime.errors import StemstreamError
from stemstream.realtime.models.wiener import PostFilter, parse_post_filter, wiener


class StreamedSeparator:
    """A hop model followed by a post-filter (``+wiener``, ``+mask``), with the call of a training-time
    separator (``(mix (B, C, T), state) -> (stems (B, K, C, T), state)``, delayed by
    ``config.latency_samples``) so that :func:`validate_columns` scores it unchanged. Each
    excerpt streams through the stage from a fresh state on the PyTorch backend."""

    def __init__(self, model: torch.nn.Module, spec: PostFilter, name: str = "candidate") -> None:
        from stemstream.realtime.backends import open_backend

        self.stream = wiener(open_backend("torch", model, name), spec)
        # stems and rate as the model's; latency and hop the stage's
        self.config = SimpleNamespace(stems=model.config.stems, sample_rate=model.config.sample_rate,
                                      latency_samples=int(self.stream.info.latency_samples),
                                      hop_samples=int(self.stream.hop_samples))

    def eval(self) -> "StreamedSeparator":
        return self

    def train(self, mode: bool = True) -> "StreamedSeparator":
        return self

    def init_state(self, batch: int) -> None:
        return None

    def __call__(self, mix: torch.Tensor, state: None) -> tuple[torch.Tensor, None]:
        outs = [self.stream.process_hops(np.ascontiguousarray(x.numpy()), self.stream.init_state())[0] for x in mix]
        return torch.from_numpy(np.stack(outs)), None


def score_files(config_name: str, files: list[str | Path], data: str | Path = "data/synth",
                real_data: str | Path | None = None,
                post_filter: PostFilter | None = None) -> dict[str, dict[str, float]]:
    """``file -> {column: SI-SDRi dB}`` for each weight file, on ``config_name``'s validation set
    built from ``data/valid`` (and, for the DJ configs, the held-out songs of ``real_data``, by
    default the config's, and of ``data/lmms`` when it is there); ``post_filter``: the stage
    after each model (:class:`StreamedSeparator`), None for the model alone."""
    cfg = get_config(config_name)
    if real_data is not None:
        cfg = replace(cfg, real_data=str(real_data))
    valid_songs = load_songs(Path(data) / "valid")
    sets: dict[tuple[int, int], tuple] = {}
    out = {}
    for f in files:
        model = load_separator(Path(f))
        key = (model.config.sample_rate, model.config.hop)
        if key not in sets:
            sets[key] = validation_sets(cfg, valid_songs, *key, torch.device("cpu"))
        model.fast_dsp = True  # the FFT path a training run validates with
        scored = model if post_filter is None else StreamedSeparator(model, post_filter, Path(f).stem)
        out[str(f)] = {k: round(v, 3) for k, v in validate_columns(scored, *sets[key]).items()}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", help=".safetensors weight files")
    p.add_argument("--config", required=True, help="the training config whose validation to use (dj-live ...)")
    p.add_argument("--data", default="data/synth", help="the synthetic song folder with valid/ (default data/synth)")
    p.add_argument("--post-filter", default=None, metavar="FILTER",
                   help="score each model followed by this stage: a window for +wiener (8192), or wiener4096, mask8192")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    try:
        spec = None if a.post_filter is None else parse_post_filter(a.post_filter)
        scores = score_files(a.config, a.files, a.data, post_filter=spec)
    except (StemstreamError, OSError) as e:
        print(f"score_validation: {e}", file=sys.stderr)
        return 2
    for f, s in scores.items():
        print(json.dumps({"file": f, **s}))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
