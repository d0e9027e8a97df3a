"""The README's main job, `stemstream demo`, end to end on a short demo song."""

from __future__ import annotations

import json
import math

import soundfile as sf

from stemstream.bridge.cli.main import main


def test_demo_writes_stems_and_report(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--seconds", "4", "-o", str(out), "--block-size", "1024", "--stems", "instruments"]) == 0
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


def test_dj_demo_song_has_a_voice_and_sums_exactly(tmp_path):
    import numpy as np

    from stemstream.export.data.demo_song import render_demo_song

    track = render_demo_song(6.0, tmp_path, "dj")
    assert tuple(track.stems) == ("vocals", "drums", "bass", "other")
    np.testing.assert_allclose(track.mixture, sum(track.stems.values()), atol=1e-6)
    voice = track.stems["vocals"]
    assert np.sqrt(np.mean(voice**2)) > 0.01  # sung, not silent
    spectrum = np.abs(np.fft.rfft(voice.mean(axis=0))) ** 2
    freqs = np.fft.rfftfreq(voice.shape[-1], 1 / track.sample_rate)
    assert spectrum[freqs > 8000].sum() > 1e-4 * spectrum.sum()  # a voice with air, not band-limited


def test_dj_demo_scores_vocals_and_instrumental(tmp_path, capsys):
    import torch

    from stemstream.realtime.models.hybrid import ARCHITECTURE, HybridConfig, HybridSeparator
    from stemstream.realtime.models.weights import save_weights
    from stemstream.realtime.stems import DJ_STEMS

    torch.manual_seed(0)
    cfg = HybridConfig(stems=DJ_STEMS, width=16, encoder_channels=8, analysis_samples=256, synthesis_samples=128,
                     hop=32, encoder_kernel=64)
    weights = tmp_path / "tiny-dj.safetensors"
    save_weights(weights, HybridSeparator(cfg), ARCHITECTURE, cfg.to_json())
    out = tmp_path / "demo"
    assert main(["demo", "--seconds", "4", "-o", str(out), "--stems", "dj", "--model", str(weights), "--block-size", "2048",
                 "--backend", "torch"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert set(report["per_stem"]) == {"vocals", "drums", "bass", "other", "instrumental"}
    assert report["demo"]["stems"] == "dj"
    assert "vocals" in capsys.readouterr().out
