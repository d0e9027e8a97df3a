"""`stemstream eval`: error paths (one stderr line, exit 2) and a run on a tiny dataset made here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from stemstream.bridge.cli.main import main

torch.set_num_threads(1)


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("stemstream: error: ")
    assert "Traceback" not in err[0]
    return err[0]


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--model", "mixture", "--dataset", "/nonexistent/dataset"], "--dataset='/nonexistent/dataset'"),
        (["--model", "no-such-model"], "no-such-model"),
        (["--model", "oracle-mask", "--stft-size", "1001"], "stft_size=1001"),
        (["--model", "mixture", "--stems", ",,"], "--stems"),
        (["--model", "mixture", "--max-tracks", "0"], "--max-tracks=0"),
        (["--model", "mixture", "--stft-size", "big"], "--stft-size"),
        ([], "--model"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(tmp_path: Path, capsys, extra, needle) -> None:
    argv = ["eval"] + (["--dataset", str(tmp_path)] if "--dataset" not in extra else []) + extra
    assert main(argv) == 2
    assert needle in _error_line(capsys)


def _write_song(folder: Path, seed: int, rate: int = 44100, seconds: float = 6.0) -> None:
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    stems = {
        "bass": 0.3 * np.sin(2 * np.pi * (55 + 10 * seed) * t),
        "drums": 0.1 * rng.standard_normal(t.size) * (np.sin(2 * np.pi * 2 * t) > 0.5),
        "guitar": 0.1 * np.sin(2 * np.pi * 330 * t) * (t > 3.0),
        "piano": 0.1 * np.sin(2 * np.pi * 523 * t),
    }
    folder.mkdir(parents=True)
    mix = np.zeros((t.size, 2))
    for name, mono in stems.items():
        stereo = np.stack([mono, 0.8 * mono], axis=1)
        sf.write(folder / f"{name}.wav", stereo.astype(np.float32), rate, subtype="FLOAT")
        mix += stereo
    sf.write(folder / "mixture.wav", mix.astype(np.float32), rate, subtype="FLOAT")
    (folder / "song.json").write_text(json.dumps({"name": folder.name, "seed": seed}))


def test_eval_runs_on_a_small_dataset(tmp_path: Path, capsys) -> None:
    root = tmp_path / "synth"
    for k in range(2):
        _write_song(root / f"song_{k:03d}", seed=k)
    (root / "dataset.json").write_text(json.dumps({"songs": 2, "seconds": 6.0}))
    out = tmp_path / "r.json"
    code = main(["eval", "--dataset", str(root), "--model", "oracle-mask", "--stft-size", "1024",
                 "--max-tracks", "1", "--stems", "bass,piano", "--json", str(out), "--no-sdr"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    report = json.loads(out.read_text())
    assert report["counts"]["tracks"] == 1
    assert report["stems"] == ["bass", "piano"]
    assert report["per_stem"]["bass"]["chunks"] == 2
    assert report["per_stem"]["bass"]["si_sdri"]["mean"] > 10.0
    assert report["overall"]["stem_mean_ci95"]["si_sdri"] is None  # one track: no interval
    assert "bass" in captured.out and "SI-SDRi" in captured.out
    markdown = out.with_suffix(".md").read_text()
    assert "| bass | 2 |" in markdown and "oracle-mask (STFT 1024)" in markdown

    code = main(["eval", "--dataset", str(root), "--model", "mixture", "--json", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    assert report["counts"]["tracks"] == 2
    assert report["overall"]["si_sdri"]["mean"] == 0.0
    assert np.isfinite(report["overall"]["sdr"]["mean"])
    ci = report["overall"]["stem_mean_ci95"]["si_sdri"]
    assert ci["low"] == ci["mean"] == ci["high"] == 0.0 and ci["songs"] == 2

    # the oracle against that report, the same two songs drawn for both: better on every draw
    capsys.readouterr()
    code = main(["eval", "--dataset", str(root), "--model", "oracle-mask", "--stft-size", "1024",
                 "--no-sdr", "--compare", str(out), "--json", str(tmp_path / "o.json")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    compare = json.loads((tmp_path / "o.json").read_text())["compare"]
    assert compare["verdict"] == "better" and compare["si_sdri_difference"]["low"] > 10.0
    assert "paired 95% interval" in captured.out and "95% interval over songs" in captured.out
    assert main(["eval", "--dataset", str(root), "--model", "mixture", "--compare", str(root / "dataset.json")]) == 2
    assert "--compare=" in _error_line(capsys)


def test_eval_on_a_folder_without_tracks_gives_one_line(tmp_path: Path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["eval", "--dataset", str(tmp_path / "empty"), "--model", "mixture"]) == 2
    assert "no tracks found" in _error_line(capsys)


def test_eval_oracle_with_the_live_models_windows(tmp_path: Path, capsys) -> None:
    root = tmp_path / "synth"
    _write_song(root / "song_000", seed=0, seconds=4.5)
    out = tmp_path / "r.json"
    code = main(["eval", "--dataset", str(root), "--model", "oracle-mask", "--oracle-windows", "live",
                 "--stems", "bass,drums", "--json", str(out), "--no-sdr"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    report = json.loads(out.read_text())
    assert report["run"]["oracle_windows"] == "live" and report["run"]["stft_size"] is None
    assert report["per_stem"]["bass"]["si_sdri"]["mean"] > 10.0
    assert report["overall"]["stem_mean_ci95"]["si_sdri"] is None  # one track: no interval
    assert "low-delay STFT" in captured.out
    assert main(["eval", "--dataset", str(root), "--model", "oracle-mask", "--oracle-windows", "box"]) == 2
    assert "--oracle-windows" in capsys.readouterr().err


def test_tradeoff_bench_scores_models_against_latency(tmp_path: Path, capsys, tiny_live_weights: Path,
                                                     tiny_live_config) -> None:
    """`stemstream bench tradeoff` on a one-song dataset with a small untrained live model."""
    root = tmp_path / "synth"
    _write_song(root / "song_000", seed=0, seconds=4.5)
    cfg = tiny_live_config
    out = tmp_path / "bench"
    code = main(["bench", "tradeoff", "--dataset", str(root), "--models", f"tiny={tiny_live_weights}",
                 "--backend", "torch", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    result = json.loads((out / "tradeoff.json").read_text())
    (row,) = result["rows"]
    assert row["model"] == "tiny" and row["latency_ms"] == pytest.approx(1000 * cfg.latency_samples / 44100)
    assert set(row["si_sdri"]) == {"bass", "drums", "guitar", "piano"} and np.isfinite(row["mean"])
    assert result["oracle_live_windows"]["mean"] > row["mean"]  # an untrained model is below the ceiling
    assert "oracle mask, live windows" in (out / "tradeoff.md").read_text()
    assert (out / "tradeoff.png").stat().st_size > 0
    assert main(["bench", "tradeoff", "--dataset", str(tmp_path / "nope")]) == 2
