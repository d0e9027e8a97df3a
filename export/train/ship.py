"""Ship a trained model: held-out test scores into its run record, weights into ``realtime/weights``.

``python -m export.train.ship live [--runs runs] [--test data/synth/test] [--real DIR ...]``

Evaluates ``runs/<name>/<name>.safetensors`` on the held-out synthetic test set (all four
stems) and on real music folders (bass and drums only; never trained on), adds the figures
as ``final_scores`` to the run record, and writes ``realtime/weights/<name>.safetensors``
(config + run record + checksum in the metadata) and ``<name>.run_record.json`` beside it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from export.train.evaluate import evaluate_path
from export.train.run import load_separator
from realtime.models.live import ARCHITECTURE
from realtime.models.registry import WEIGHTS_DIR
from realtime.models.weights import read_weights, round_to_half, save_weights

REAL_DEFAULT = ("../shared/realdata/musdb18-sample", "../shared/realdata/koronium")


def ship(name: str, runs: Path, test: Path, real: tuple[str, ...], consistency: str | None = None,
         log=print, half: bool = True) -> dict:
    """Evaluate and ship ``name`` (optionally with another mixture-consistency mode, chosen on
    the validation set); returns the final scores.

    ``half`` (default): weights are rounded to float16 before evaluation and stored as float16,
    so the file is half the size and the scores are those of exactly the shipped weights.
    """
    src = runs / name / f"{name}.safetensors"
    model = load_separator(src).eval()
    if consistency is not None and consistency != model.config.consistency:
        from dataclasses import replace

        from realtime.models.live import LiveSeparator

        tuned = LiveSeparator(replace(model.config, consistency=consistency))
        tuned.load_state_dict(model.state_dict())
        model = tuned.eval()
    if half:
        round_to_half(model)
    _, meta = read_weights(src)
    record = json.loads(meta.get("run_record", "{}") or "{}")
    record["weights_storage"] = "float16" if half else "float32"
    t0 = time.time()
    scores: dict = {"test": evaluate_path(model, test, model.config.stems) | {"data": str(test)}}
    log(f"{name} test: {json.dumps(scores['test'])}")
    for folder in real:
        if Path(folder).exists():
            res = evaluate_path(model, folder, ("bass", "drums"))
            scores[Path(folder).name] = res | {"data": str(folder)}
            log(f"{name} {Path(folder).name}: {json.dumps(res)}")
    scores["eval_wall_s"] = round(time.time() - t0, 1)
    record["final_scores"] = scores
    WEIGHTS_DIR.mkdir(parents=True, exist_ok=True)
    save_weights(WEIGHTS_DIR / f"{name}.safetensors", model, ARCHITECTURE, model.config.to_json(), record, half=half)
    (WEIGHTS_DIR / f"{name}.run_record.json").write_text(json.dumps(record, indent=1))
    (runs / name / "final_scores.json").write_text(json.dumps(scores, indent=1))
    return scores


def main() -> None:  # pragma: no cover - script
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("names", nargs="+")
    p.add_argument("--runs", default="runs")
    p.add_argument("--test", default="data/synth/test")
    p.add_argument("--real", nargs="*", default=list(REAL_DEFAULT))
    p.add_argument("--consistency", default=None, choices=("none", "equal", "energy"))
    p.add_argument("--fp32", action="store_true", help="store float32 weights (default: float16)")
    a = p.parse_args()
    torch.set_num_threads(1)
    for name in a.names:
        ship(name, Path(a.runs), Path(a.test), tuple(a.real), a.consistency, half=not a.fp32)


if __name__ == "__main__":  # pragma: no cover
    main()
