"""Stem selection: the DJ set, two stems (vocals + instrumental), the instrument set, by name;
groups summed so the written stems add up to the input; the model each selection runs."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from stemstream.bridge.cli.main import main
from stemstream.realtime.errors import ConfigError
from stemstream.realtime.models.hybrid import ARCHITECTURE, HybridConfig, HybridSeparator
from stemstream.realtime.models.weights import save_weights
from stemstream.realtime.stems import DJ_STEMS, INSTRUMENT_STEMS, group_matrix, parse_stems

TINY = dict(width=16, encoder_channels=8, analysis_samples=256, synthesis_samples=128, hop=32, encoder_kernel=64)


@pytest.fixture(scope="module")
def dj_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    cfg = HybridConfig(stems=DJ_STEMS, **TINY)
    path = tmp_path_factory.mktemp("weights") / "tiny-dj.safetensors"
    save_weights(path, HybridSeparator(cfg), ARCHITECTURE, cfg.to_json(), {"note": "stem selection test"})
    return path


def test_parse_stems_knows_the_sets_and_lists() -> None:
    assert parse_stems("dj") == ("vocals", "drums", "bass", "other")
    assert parse_stems("vocals") == ("vocals", "instrumental")
    assert parse_stems("instruments") == ("bass", "drums", "guitar", "piano")
    assert parse_stems(" drums, bass ") == ("drums", "bass")
    for bad in ("", ",", "drums,drums"):
        with pytest.raises(ConfigError, match="stems"):
            parse_stems(bad)


def test_group_matrix_sums_the_instrumental() -> None:
    rows = group_matrix(DJ_STEMS, ("vocals", "instrumental"))
    np.testing.assert_array_equal(rows, [[1, 0, 0, 0], [0, 1, 1, 1]])
    np.testing.assert_array_equal(group_matrix(DJ_STEMS, ("bass",)), [[0, 0, 1, 0]])
    with pytest.raises(ConfigError, match="guitar"):
        group_matrix(DJ_STEMS, ("guitar",))
    with pytest.raises(ConfigError, match="bass,drums,guitar,piano"):
        group_matrix(INSTRUMENT_STEMS, ("instrumental",))  # no vocals to leave out


def test_default_model_follows_the_stem_set() -> None:
    from stemstream.realtime.models.registry import DEFAULT_MODELS, _weights_path, default_model

    assert default_model(INSTRUMENT_STEMS) == "live"
    assert default_model(("guitar",)) == "live"
    dj = "dj-live" if _weights_path("dj-live").exists() else "live"
    assert default_model(None) == dj == default_model(("vocals", "instrumental"))
    assert DEFAULT_MODELS["dj"] == "dj-live"


@pytest.mark.parametrize("spec,names", [("vocals", ("vocals", "instrumental")), ("dj", DJ_STEMS),
                                        ("vocals,drums", ("vocals", "drums"))])
def test_separate_writes_the_chosen_stems(tmp_path: Path, dj_weights: Path, spec: str,
                                          names: tuple[str, ...]) -> None:
    rng = np.random.default_rng(1)
    song = (0.2 * rng.standard_normal((8000, 2))).astype(np.float32)
    sf.write(tmp_path / "in.wav", song, 44100, subtype="FLOAT")
    out = tmp_path / "out"
    assert main(["separate", str(tmp_path / "in.wav"), "-o", str(out), "--model", str(dj_weights),
                 "--stems", spec, "--quiet"]) == 0
    assert sorted(p.stem for p in (out / "in").glob("*.wav")) == sorted(names)
    stems = {n: sf.read(out / "in" / f"{n}.wav", dtype="float32")[0] for n in names}
    if spec in ("vocals", "dj"):  # a whole set sums to the input
        np.testing.assert_allclose(sum(stems.values()), song, atol=2e-5)


def test_separate_refuses_stems_the_model_cannot_give(tmp_path: Path, dj_weights: Path, capsys) -> None:
    sf.write(tmp_path / "in.wav", np.zeros((4000, 2), dtype=np.float32), 44100)
    assert main(["separate", str(tmp_path / "in.wav"), "-o", str(tmp_path / "o"), "--model", str(dj_weights),
                 "--stems", "piano"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "vocals, drums, bass, other, instrumental" in err[0]


def test_transfer_seeds_new_stems_from_the_instrument_heads() -> None:
    from stemstream.export.train.run import transfer

    torch.manual_seed(0)
    source = HybridSeparator(HybridConfig(**TINY))
    target = transfer(source, HybridConfig(stems=DJ_STEMS, **TINY))
    b, s_old = source.config.bins * 2, list(source.config.stems)  # rows per stem: channels x bins
    old = source.spec_head.weight.detach().reshape(4, b, -1)
    new = target.spec_head.weight.detach().reshape(4, b, -1)
    assert torch.equal(new[DJ_STEMS.index("drums")], old[s_old.index("drums")])
    assert torch.equal(new[DJ_STEMS.index("bass")], old[s_old.index("bass")])
    assert torch.equal(new[DJ_STEMS.index("other")], old[s_old.index("guitar")])
    assert torch.equal(target.lstms[0].weight_hh_l0, source.lstms[0].weight_hh_l0)


def test_eval_scores_the_instrumental_group(tmp_path: Path, dj_weights: Path) -> None:
    from stemstream.export.evaluation.protocol import evaluate_tracks
    from stemstream.export.evaluation.separators import SubsetSeparator, model_separator
    from stemstream.export.data.tracks import Track

    rng = np.random.default_rng(3)
    stems = {k: (0.1 * rng.standard_normal((2, 44100 * 6))).astype(np.float32) for k in DJ_STEMS}
    track = Track("t", 44100, stems, sum(stems.values()))
    separator = SubsetSeparator(model_separator(str(dj_weights)), ("vocals", "instrumental"))
    report = evaluate_tracks([track], separator, separator.stems, with_sdr=False)
    assert set(report["per_stem"]) == {"vocals", "instrumental"}
    assert report["per_stem"]["instrumental"]["chunks"] == 2
    vocal_excerpt = Track("v", 44100, {"vocals": stems["vocals"], "accompaniment": stems["drums"]},
                          stems["vocals"] + stems["drums"])
    report = evaluate_tracks([vocal_excerpt], separator, separator.stems, with_sdr=False)
    assert report["per_stem"]["instrumental"]["chunks"] == 2  # MUSDB's accompaniment is the instrumental


def test_live_outputs_the_chosen_stems_and_they_sum_to_the_input(dj_weights: Path) -> None:
    from stemstream.bridge.live.processor import LiveConfig, LiveProcessor, engine_factory
    from stemstream.bridge.live.runner import model_stems

    wanted = ("vocals", "instrumental")
    assert model_stems(str(dj_weights), wanted) == wanted
    assert model_stems(str(dj_weights)) == DJ_STEMS
    with pytest.raises(ConfigError, match="piano"):
        model_stems(str(dj_weights), ("piano",))
    cfg = LiveConfig(model=str(dj_weights), stems=wanted, backend="torch", block_size=256, routing="stems",
                     realtime_worker=False)
    proc = LiveProcessor(cfg, engine_factory(cfg), wanted)
    try:
        rng = np.random.default_rng(5)
        x = (0.2 * rng.standard_normal((256 * 40, 2))).astype(np.float32)
        out = np.zeros((x.shape[0], 4), np.float32)  # vocals L/R, instrumental L/R
        for a in range(0, x.shape[0], 256):
            proc.process_interleaved(x[a : a + 256], out[a : a + 256])
            time.sleep(256 / 44100)  # the worker thread separates while the "host" waits a block
        lat = proc.latency_samples
    finally:
        proc.close()
    summed = out[:, 0:2] + out[:, 2:4]  # late blocks fall back to the mix: the sum holds either way
    np.testing.assert_allclose(summed[lat:], x[: x.shape[0] - lat], atol=1e-4)
    assert np.abs(out[lat:, 0:2]).max() > 0 and np.abs(out[lat:, 2:4]).max() > 0
