"""Ship a trained model: held-out test scores into its run record, weights into ``realtime/weights``.

``python -m stemstream.export.train.ship live [--runs runs] [--test data/synth/test] [--real DIR ...]
[--weights-dir realtime/weights] [--sdr]``

Evaluates ``runs/<name>/<name>.safetensors`` on the held-out synthetic test set (all four
stems) and on real music folders (bass and drums only; never trained on; the other stems of
those folders stay in the mixture), adds the figures as ``final_scores`` to the run record,
and writes ``<weights-dir>/<name>.safetensors`` (config + run record + checksum in the
metadata) and ``<name>.run_record.json`` beside it.

Scoring is ``stemstream eval``'s, nothing else: ``stemstream.export.evaluation.protocol.evaluate_tracks`` on
``stemstream.export.data.loaders.load_tracks``, the model run through the streaming engine
(``stemstream.export.evaluation.separators.model_separator``) exactly as its shipped weight file would run. The
full reports go to ``runs/<name>/final_eval/<set>.json``; ``final_scores[<set>]`` keeps the
per-stem mean SI-SDRi, ``mean`` (the mean of the per-stem means), ``chunks`` per stem and
``songs``.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import torch

from stemstream.export.train.run import load_separator
from stemstream.realtime.models.hybrid import ARCHITECTURE, HybridSeparator
from stemstream.realtime.models.registry import WEIGHTS_DIR
from stemstream.realtime.models.weights import read_weights, round_to_half, save_weights

REAL_DEFAULT = ("../shared/realdata/musdb18-sample", "../shared/realdata/koronium",
                "../shared/realdata/musdb18-vocals-excerpts")


def summarise(report: dict[str, Any], metric: str = "si_sdri") -> dict[str, Any]:
    """The compact scores of a ``stemstream.export.evaluation.protocol.evaluate_tracks`` report: per-stem mean
    of ``metric`` (dB), ``mean`` (the per-stem means averaged: the "All" column), ``mean_ci95``
    (its 95 % song-bootstrap interval, when the report has one), ``chunks`` per stem and ``songs``."""
    per = report["per_stem"]
    out: dict[str, Any] = {s: per[s][metric]["mean"] for s in per}
    out["mean"] = report["overall"]["stem_mean"][metric]
    ci = report["overall"].get("stem_mean_ci95", {}).get(metric)
    if ci:
        out["mean_ci95"] = [round(ci["low"], 3), round(ci["high"], 3)]
    out["chunks"] = {s: per[s]["chunks"] for s in per}
    out["songs"] = report["counts"]["tracks"]
    return out


def evaluate_model(model: HybridSeparator, data: str | Path, stems: tuple[str, ...] | None = None,
                   with_sdr: bool = False) -> dict[str, Any]:
    """``evaluate_tracks`` report of the in-memory ``model`` on every track under ``data``,
    scoring ``stems`` (default: all the model's outputs), at the model's rate: a track stored at
    another rate (the 44.1 kHz songs for ``dj-live-48k``) is converted offline first (soxr VHQ,
    mixture and stems alike, ``track_at_rate``), so the model runs as at a host of its own rate,
    not through the engine's low-delay resampler."""
    from stemstream.export.evaluation.protocol import evaluate_tracks
    from stemstream.export.evaluation.separators import SubsetSeparator, model_separator
    from stemstream.export.data.loaders import load_tracks
    from stemstream.export.data.tracks import track_at_rate

    separator: Any = model_separator(model, name="ship")
    if stems is not None and tuple(stems) != separator.stems:
        separator = SubsetSeparator(separator, stems)
    rate = model.config.sample_rate
    tracks = (track_at_rate(t, rate) for t in load_tracks(data))
    return evaluate_tracks(tracks, separator, separator.stems, with_sdr=with_sdr)


def ship(name: str, runs: Path, test: Path, real: tuple[str, ...], consistency: str | None = None,
         log: Callable[[str], Any] = print, half: bool = True, weights_dir: Path = WEIGHTS_DIR,
         with_sdr: bool = False) -> dict:
    """Evaluate and ship ``name`` (optionally with another mixture-consistency mode, chosen on
    the validation set); returns the final scores.

    ``half`` (default): weights are rounded to float16 before evaluation and stored as float16,
    so the file is half the size and the scores are those of exactly the shipped weights.
    ``weights_dir``: where the weight file and run record go. ``with_sdr``: also BSS Eval SDR
    (slower) in the full reports.
    """
    from stemstream.export.evaluation.protocol import write_json

    src = runs / name / f"{name}.safetensors"
    model = load_separator(src).eval()
    if consistency is not None and consistency != model.config.consistency:
        tuned = HybridSeparator(replace(model.config, consistency=consistency))
        tuned.load_state_dict(model.state_dict())
        model = tuned.eval()
    if half:
        round_to_half(model)
        # round_to_half also rounds derived (non-persistent) buffers such as the STFT bases;
        # a model loaded from the shipped file recomputes those, so evaluate that model.
        shipped = HybridSeparator(model.config)
        shipped.load_state_dict(model.state_dict())
        model = shipped.eval()
    _, meta = read_weights(src)
    record = json.loads(meta.get("run_record", "{}") or "{}")
    record["weights_storage"] = "float16" if half else "float32"
    reports_dir = runs / name / "final_eval"
    t0 = time.time()
    from stemstream.export.data.loaders import load_tracks
    from stemstream.export.evaluation.protocol import scorable_stems

    # every set scores what the model gives and the set holds (the instrument models: bass and
    # drums on real music; the DJ models: vocals and the instrumental too; a group such as the
    # instrumental is scored as the sum of its stems)
    sets = [("test", Path(test))] + [(Path(f).name, Path(f)) for f in real if Path(f).exists()]
    scores: dict[str, Any] = {}
    converted = False  # a set stored at another rate than the model's (evaluate_model converts it)
    for label, folder in sets:
        first = next(iter(load_tracks(folder)))
        converted = converted or first.sample_rate != model.config.sample_rate
        stems = scorable_stems(model.config.stems, tuple(first.stems))
        if not stems:
            log(f"{name} {label}: nothing this model separates is in {folder}; skipped")
            continue
        report = evaluate_model(model, folder, stems, with_sdr=with_sdr)
        report["run"] = {"model": name, "dataset": str(folder), "backend": "torch", "shipped_by": "stemstream.export.train.ship",
                         "sample_rate": model.config.sample_rate}
        write_json(report, reports_dir / f"{label}.json")
        scores[label] = summarise(report) | {"data": str(folder)}
        log(f"{name} {label}: {json.dumps(scores[label])}")
    scores["eval_wall_s"] = round(time.time() - t0, 1)
    scores["protocol"] = "stemstream.export.evaluation.protocol.evaluate_tracks (stemstream eval), streaming engine, torch"
    if converted:
        scores["protocol"] += f"; songs converted offline to the model's {model.config.sample_rate} Hz (soxr VHQ)"
    record["final_scores"] = scores
    dj = record.get("data", {}).get("dj_sources")
    if dj is not None:  # what a model card must say: the real recordings and their licences
        from stemstream.export.data.real import LICENCES

        record["real_training_data"] = {"sources": dj, "licences": LICENCES}
    weights_dir = Path(weights_dir)
    weights_dir.mkdir(parents=True, exist_ok=True)
    save_weights(weights_dir / f"{name}.safetensors", model, ARCHITECTURE, model.config.to_json(), record, half=half)
    (weights_dir / f"{name}.run_record.json").write_text(json.dumps(record, indent=1))
    (runs / name / "final_scores.json").write_text(json.dumps(scores, indent=1))
    return scores


def main() -> None:  # pragma: no cover - script
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="+")
    p.add_argument("--runs", default="runs")
    p.add_argument("--test", default="data/synth/test")
    p.add_argument("--real", nargs="*", default=list(REAL_DEFAULT))
    p.add_argument("--consistency", default=None, choices=("none", "equal", "energy"))
    p.add_argument("--fp32", action="store_true", help="store float32 weights (default: float16)")
    p.add_argument("--weights-dir", default=str(WEIGHTS_DIR),
                   help=f"where the weights and run record go (default: {WEIGHTS_DIR})")
    p.add_argument("--sdr", action="store_true", help="also compute BSS Eval SDR in the full reports (slower)")
    a = p.parse_args()
    torch.set_num_threads(1)
    for name in a.names:
        ship(name, Path(a.runs), Path(a.test), tuple(a.real), a.consistency, half=not a.fp32,
             weights_dir=Path(a.weights_dir), with_sdr=a.sdr)


if __name__ == "__main__":  # pragma: no cover
    main()
