"""Weight files scored on a config's training validation, every column, exactly as a training run
scores them: to set a run that predates a column (``lmms_*``) beside one that has it, or a shipped
file beside a candidate, on the same fixed excerpts. Validation data, never test data.

    python -m stemstream.export.train.score_validation --config dj-live \\
        realtime/weights/dj-live.safetensors runs/dj-live-s4/dj-live.safetensors
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import torch

from stemstream.export.train.configs import get_config
from stemstream.export.train.data import load_songs
from stemstream.export.train.loop import validation_sets
from stemstream.export.train.run import load_separator
from stemstream.export.train.validation import validate_columns
from stemstream.realtime.errors import StemstreamError


def score_files(config_name: str, files: list[str | Path], data: str | Path = "data/synth",
                real_data: str | Path | None = None) -> dict[str, dict[str, float]]:
    """``file -> {column: SI-SDRi dB}`` for each weight file, on ``config_name``'s validation set
    built from ``data/valid`` (and, for the DJ configs, the held-out songs of ``real_data``, by
    default the config's, and of ``data/lmms`` when it is there)."""
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
        out[str(f)] = {k: round(v, 3) for k, v in validate_columns(model, *sets[key]).items()}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", help=".safetensors weight files")
    p.add_argument("--config", required=True, help="the training config whose validation to use (dj-live ...)")
    p.add_argument("--data", default="data/synth", help="the synthetic song folder with valid/ (default data/synth)")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    try:
        scores = score_files(a.config, a.files, a.data)
    except (StemstreamError, OSError) as e:
        print(f"score_validation: {e}", file=sys.stderr)
        return 2
    for f, s in scores.items():
        print(json.dumps({"file": f, **s}))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
