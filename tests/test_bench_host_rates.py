"""Host rates other than the model's: `bench hostrates` and `bench latency --sample-rates`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from stemstream.bridge.cli.main import main


def _song(folder: Path, seconds: float = 4.5, rate: int = 44100) -> None:
    rng = np.random.default_rng(1)
    t = np.arange(int(rate * seconds)) / rate
    stems = {"bass": 0.3 * np.sin(2 * np.pi * 70 * t), "drums": 0.1 * rng.standard_normal(t.size) * (np.sin(2 * np.pi * 2 * t) > 0.5),
             "guitar": 0.1 * np.sin(2 * np.pi * 330 * t), "piano": 0.1 * np.sin(2 * np.pi * 523 * t)}
    folder.mkdir(parents=True)
    mix = 0
    for name, mono in stems.items():
        stereo = np.stack([mono, 0.8 * mono], axis=1).astype(np.float32)
        sf.write(folder / f"{name}.wav", stereo, rate, subtype="FLOAT")
        mix = mix + stereo
    sf.write(folder / "mixture.wav", mix, rate, subtype="FLOAT")
    (folder / "song.json").write_text(json.dumps({"name": folder.name}))


def test_bench_hostrates_compares_rates_in_one_run(tmp_path: Path, tiny_live_weights: Path) -> None:
    _song(tmp_path / "data" / "song-a")
    out = tmp_path / "bench"
    code = main(["bench", "hostrates", "--dataset", str(tmp_path / "data"), "--model", str(tiny_live_weights),
                 "--rates", "44100,48000", "--backend", "torch", "--out", str(out)])
    assert code == 0
    report = json.loads((out / "hostrates.json").read_text())
    native, other = report["rows"]
    assert native["rate"] == 44100 and native["delta_mean"] == 0.0
    # the low-delay resampler holds back under a millisecond; hop alignment adds at most one hop
    assert 0.0 < other["resampler_ms"] < 1.0 and native["resampler_ms"] == 0.0
    hop_ms = 1000 * 128 / 44100
    assert 0.0 < other["delta_latency_ms"] < other["resampler_ms"] + hop_ms
    assert abs(other["delta_mean"]) < 1.0 and all(np.isfinite(list(other["si_sdri"].values())))
    assert "| 48000 |" in (out / "hostrates.md").read_text()


def test_bench_latency_at_several_host_rates(tmp_path: Path) -> None:
    code = main(["bench", "latency", "--model", "tiny", "--backends", "torch", "--block-sizes", "256",
                 "--sample-rates", "44100,48000", "--callbacks", "12", "--out", str(tmp_path)])
    assert code == 0
    rows = json.loads((tmp_path / "latency.json").read_text())["results"]
    assert [r["sample_rate"] for r in rows] == [44100, 48000]
    assert 0.0 < rows[1]["algorithmic_latency_ms"] - rows[0]["algorithmic_latency_ms"] < 1.0 + 1000 * 128 / 44100


@pytest.mark.parametrize("argv", [["--rates", "44100,x"], ["--rates", "4000"], ["--block", "3"]])
def test_bench_hostrates_refuses_bad_options(tmp_path: Path, argv: list[str], capsys) -> None:
    assert main(["bench", "hostrates", "--dataset", str(tmp_path), *argv]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_bench_runs_dj_live_as_its_48k_sibling_at_48k_hosts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            tiny_live_config) -> None:
    from dataclasses import replace

    from stemstream.realtime.models import registry
    from stemstream.realtime.models.hybrid import ARCHITECTURE, HybridSeparator
    from stemstream.realtime.models.weights import save_weights
    from stemstream.realtime.stems import DJ_STEMS

    monkeypatch.setattr(registry, "WEIGHTS_DIR", tmp_path)
    for name, rate in (("dj-live", 44100), ("dj-live-48k", 48000)):
        config = replace(tiny_live_config, stems=DJ_STEMS, sample_rate=rate)
        save_weights(tmp_path / f"{name}.safetensors", HybridSeparator(config).eval(), ARCHITECTURE, config.to_json(), {})
    _song(tmp_path / "data" / "song-a", seconds=3.0)
    out = tmp_path / "hostrates"
    assert main(["bench", "hostrates", "--dataset", str(tmp_path / "data"), "--model", "dj-live",
                 "--rates", "44100,48000,96000", "--backend", "torch", "--out", str(out)]) == 0
    rows = json.loads((out / "hostrates.json").read_text())["rows"]
    assert [(r["model_run"], r["model_rate"]) for r in rows] == [("dj-live", 44100), ("dj-live-48k", 48000),
                                                                ("dj-live-48k", 48000)]
    at48 = rows[1]
    assert at48["resampler_ms"] == 0.0 and at48["delta_latency_ms"] < 0.0  # 128 samples at 48 kHz, no wait
    assert 0.0 < rows[2]["resampler_ms"] and "| 48000 (dj-live-48k) |" in (out / "hostrates.md").read_text()
    assert main(["bench", "latency", "--model", "dj-live", "--backends", "torch", "--block-sizes", "256",
                 "--sample-rates", "44100,48000", "--callbacks", "12", "--queue-blocks", "2",
                 "--out", str(tmp_path / "latency")]) == 0
    rows = json.loads((tmp_path / "latency" / "latency.json").read_text())["results"]
    assert [r["model_run"] for r in rows] == ["dj-live", "dj-live-48k"]
    assert rows[1]["algorithmic_latency_ms"] == pytest.approx(1000 * 128 / 48000)
