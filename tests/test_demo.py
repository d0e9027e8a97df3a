"""The README's main job, `stemstream demo`, end to end on a short demo song."""

from __future__ import annotations

import json
import math

import soundfile as sf

from bridge.cli import main


def test_demo_writes_stems_and_report(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--seconds", "4", "-o", str(out), "--block-size", "1024"]) == 0
    report = json.loads((out / "report.json").read_text())
    mixture, rate = sf.read(out / "mixture.wav", always_2d=True)
    assert rate == 44100
    for stem in ("bass", "drums", "guitar", "piano"):
        audio, stem_rate = sf.read(out / f"{stem}.wav", always_2d=True)
        assert stem_rate == rate and audio.shape == mixture.shape
    demo = report["demo"]
    assert demo["latency_samples"] > 0 and math.isfinite(demo["real_time_factor"])
    assert "latency" in capsys.readouterr().out


def test_demo_rejects_absurd_block_size(capsys):
    assert main(["demo", "--block-size", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--block-size" in err[0]
