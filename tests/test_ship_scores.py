"""`python -m stemstream.export.train.ship`: the scores it records are `stemstream eval`'s for the shipped file.

A tiny model on a tiny synthetic test set and a tiny MUSDB-like real-music folder (bass and
drums scored, ``other`` and ``vocals`` still in the mixture), shipped into a temporary weights
folder (never ``realtime/weights``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from stemstream.export.evaluation.protocol import evaluate_tracks

from stemstream.export.evaluation.separators import SubsetSeparator, model_separator
from stemstream.export.data.loaders import load_tracks
from stemstream.export.train.ship import ship, summarise

#: What an instrument-set model can score on a MUSDB-layout track (scorable_stems' order).
REAL_STEMS = ("drums", "bass")
from stemstream.realtime.models.registry import WEIGHTS_DIR
from stemstream.realtime.models.weights import read_weights

torch.set_num_threads(1)

RATE = 44100


def _stems(seed: int, names: tuple[str, ...], seconds: float) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(int(RATE * seconds)) / RATE
    out = {}
    for k, name in enumerate(names):
        gate = (np.sin(2 * np.pi * (0.3 + 0.2 * k) * t + seed) > -0.6).astype(np.float64)
        mono = gate * (0.2 * np.sin(2 * np.pi * (60 * (k + 1) + seed) * t) + 0.03 * rng.standard_normal(t.size))
        out[name] = np.stack([mono, 0.7 * mono], axis=1).astype(np.float32)
    return out


def _write_synth(root: Path, songs: int = 2, seconds: float = 4.5) -> None:
    names = ("bass", "drums", "guitar", "piano")
    for s in range(songs):
        d = root / f"song{s:05d}"
        d.mkdir(parents=True)
        stems = _stems(s, names, seconds)
        for name, audio in stems.items():
            sf.write(d / f"{name}.wav", audio, RATE, subtype="FLOAT")
        sf.write(d / "mixture.wav", np.sum(list(stems.values()), axis=0), RATE, subtype="FLOAT")
        (d / "song.json").write_text(json.dumps({"stems": list(names), "seed": s}))
    (root / "dataset.json").write_text(json.dumps({"format": "stemstream-synth", "songs": songs}))


def _write_musdb_like(root: Path, seconds: float = 4.5) -> None:
    d = root / "Artist - Song"
    d.mkdir(parents=True)
    for name, audio in _stems(9, ("drums", "bass", "other", "vocals"), seconds).items():
        sf.write(d / f"{name}.flac", audio, RATE)


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory, write_tiny_live_weights) -> dict:
    tmp = tmp_path_factory.mktemp("ship")
    (tmp / "runs" / "tiny").mkdir(parents=True)
    write_tiny_live_weights(tmp / "runs" / "tiny" / "tiny.safetensors", run_record={"train": {"steps": 1}})
    _write_synth(tmp / "test")
    _write_musdb_like(tmp / "real")
    before = sorted(p.name for p in WEIGHTS_DIR.iterdir())
    logged: list[str] = []
    scores = ship("tiny", tmp / "runs", tmp / "test", (str(tmp / "real"), str(tmp / "missing")),
                  log=logged.append, weights_dir=tmp / "weights")
    assert sorted(p.name for p in WEIGHTS_DIR.iterdir()) == before  # the shipped folder is untouched
    return {"tmp": tmp, "scores": scores, "logged": logged, "weights": tmp / "weights" / "tiny.safetensors"}


def test_ship_scores_equal_stemstream_eval_of_the_shipped_file(shipped: dict) -> None:
    tmp, scores, weights = shipped["tmp"], shipped["scores"], shipped["weights"]
    separator = model_separator(weights)  # what `stemstream eval --model <file>` runs
    report = evaluate_tracks(load_tracks(tmp / "test"), separator, separator.stems, with_sdr=False)
    assert scores["test"] == summarise(report) | {"data": str(tmp / "test")}
    assert scores["test"]["songs"] == 2 and set(scores["test"]["chunks"]) == {"bass", "drums", "guitar", "piano"}

    real = evaluate_tracks(load_tracks(tmp / "real"), SubsetSeparator(separator, REAL_STEMS), REAL_STEMS,
                           with_sdr=False)
    assert scores["real"] == summarise(real) | {"data": str(tmp / "real")}
    assert "missing" not in scores  # absent folders are skipped
    assert all(np.isfinite(scores[k]["mean"]) for k in ("test", "real"))


def test_real_music_keeps_the_other_stems_in_the_mixture(shipped: dict) -> None:
    tmp = shipped["tmp"]
    track = next(load_tracks(tmp / "real"))
    assert set(track.stems) == {"drums", "bass", "other", "vocals"}
    np.testing.assert_allclose(track.mixture, sum(track.stems.values()), atol=1e-6)
    report = json.loads((tmp / "runs" / "tiny" / "final_eval" / "real.json").read_text())
    assert report["stems"] == list(REAL_STEMS)
    assert report["per_stem"]["bass"]["chunks"] == shipped["scores"]["real"]["chunks"]["bass"] > 0


def test_ship_writes_the_record_into_the_weights_and_beside_them(shipped: dict) -> None:
    tmp, scores = shipped["tmp"], shipped["scores"]
    tensors, meta = read_weights(shipped["weights"])
    record = json.loads(meta["run_record"])
    assert record["final_scores"]["test"] == scores["test"]
    assert record["weights_storage"] == "float16" and record["train"] == {"steps": 1}
    assert all(t.dtype == torch.float32 for t in tensors.values())  # stored half, returned float32
    assert json.loads((tmp / "weights" / "tiny.run_record.json").read_text()) == record
    assert json.loads((tmp / "runs" / "tiny" / "final_scores.json").read_text()) == scores
    assert any(line.startswith("tiny test: ") for line in shipped["logged"])


def test_ship_scores_a_48k_model_on_songs_converted_to_48k(shipped: dict, tiny_live_config) -> None:
    """A model at 48 kHz (``dj-live-48k``) is scored as at a 48 kHz host: the 44.1 kHz songs are
    converted offline (soxr VHQ), not passed through the engine's low-delay resampler."""
    from dataclasses import replace

    from stemstream.export.data.tracks import track_at_rate
    from stemstream.realtime.models.hybrid import ARCHITECTURE, HybridSeparator
    from stemstream.realtime.models.weights import save_weights

    tmp = shipped["tmp"]
    config = replace(tiny_live_config, sample_rate=48000)
    (tmp / "runs" / "tiny48").mkdir(parents=True)
    torch.manual_seed(0)
    save_weights(tmp / "runs" / "tiny48" / "tiny48.safetensors", HybridSeparator(config).eval(), ARCHITECTURE,
                 config.to_json(), {"train": {"steps": 1}})
    scores = ship("tiny48", tmp / "runs", tmp / "test", (), log=lambda line: None, weights_dir=tmp / "weights")
    assert "converted offline to the model's 48000 Hz" in scores["protocol"]
    separator = model_separator(tmp / "weights" / "tiny48.safetensors")
    assert separator.model.info.sample_rate == 48000
    report = evaluate_tracks((track_at_rate(t, 48000) for t in load_tracks(tmp / "test")), separator,
                             separator.stems, with_sdr=False)
    assert scores["test"] == summarise(report) | {"data": str(tmp / "test")}
    converted = track_at_rate(next(load_tracks(tmp / "test")), 48000)
    assert converted.sample_rate == 48000 and converted.num_samples == round(4.5 * 48000)
