"""The long-window ratio-mask post-filter (``MODEL+wiener``): its exact response on a model with
known stems, sums, streaming, silence and bad input, the registry names, and ``separate``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine_support import GAINS, SlowHopModel
from separate_support import separate, song, tiny_dj_weights  # noqa: F401 - the fixture
from stemstream.realtime.engine.streamer import StreamingSeparator
from stemstream.realtime.errors import ConfigError, StemstreamError
from stemstream.realtime.models.registry import load_model, model_card
from stemstream.realtime.models.wiener import DEFAULT_WINDOW, WienerHopModel, split_name


def _stream(model, x: np.ndarray, block: int) -> np.ndarray:
    sep = StreamingSeparator(model, model.info.sample_rate, x.shape[0])
    pieces = [sep.process(x[:, i : i + block]) for i in range(0, x.shape[1], block)]
    return np.concatenate([*pieces, sep.flush()], axis=2)


@pytest.mark.parametrize("window", [256, 1024])
@pytest.mark.parametrize("block", [100, 4096])
def test_stems_that_are_scaled_inputs_get_their_share_of_the_mix(window: int, block: int) -> None:
    # Every stem is gain * input: each bin's mask is |gain| / sum |gains|, whatever the window.
    inner = SlowHopModel(hop=64, latency=32)
    model = WienerHopModel(inner, window)
    assert model.info.latency_samples == 32 + window - window // 4
    x = np.random.default_rng(0).standard_normal((2, 9000)).astype(np.float32)
    y = _stream(model, x, block)
    lat = model.info.latency_samples
    share = np.abs(GAINS) / np.abs(GAINS).sum()
    expected = np.zeros_like(y)
    expected[:, :, lat : lat + x.shape[1]] = share[:, None, None] * x[None]
    np.testing.assert_allclose(y, expected, atol=2e-6)


def test_a_real_model_stays_exact_sums_and_block_size_free() -> None:
    model = load_model("dj-live+wiener2048", "onnx")
    rng = np.random.default_rng(1)
    x = (0.1 * rng.standard_normal((2, 30000))).astype(np.float32)
    x[:, :5000] = 0.0  # silence first: the stems stay silent there
    a, b = _stream(model, x, 256), _stream(model, x, 4096)
    lat = model.info.latency_samples
    np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_allclose(a.sum(axis=0)[:, lat:], x, atol=1e-5)
    assert np.abs(a[:, :, : lat + 5000 - 2048]).max() < 1e-6
    assert np.isfinite(a).all() and np.abs(a[0]).max() > 1e-3


def test_nan_input_is_counted_and_the_stems_stay_finite() -> None:
    sep = StreamingSeparator(load_model("dj-live+wiener2048", "onnx"), 44100, 2)
    x = np.full((2, 8192), 0.05, np.float32)
    x[:, 100:200] = np.nan
    y = np.concatenate([sep.process(x), sep.flush()], axis=2)
    assert np.isfinite(y).all() and sep.nonfinite_samples == 200


def test_names_windows_and_cards() -> None:
    assert split_name("dj-live") == ("dj-live", None)
    assert split_name("dj-live+wiener") == ("dj-live", DEFAULT_WINDOW)
    assert split_name("runs/x.safetensors+wiener2048") == ("runs/x.safetensors", 2048)
    card, base = model_card("dj-live+wiener4096"), model_card("dj-live")
    assert card.name == "dj-live+wiener4096" and card.hop_samples == 1024
    assert card.latency_samples == base.latency_samples + 3072
    assert load_model("dj-live+wiener4096").info.latency_samples == card.latency_samples
    for bad in ("dj-live+wienerx", "dj-live+wiener100", "dj-live+wiener3000", "dj-live+wiener256"):
        with pytest.raises(ConfigError, match="wiener"):  # 256: a quarter is under dj-live's hop
            load_model(bad)
    with pytest.raises(StemstreamError, match="hop model"):
        load_model("diffusion-1step+wiener")


def test_separate_writes_post_filtered_stems_that_sum_to_the_song(tmp_path: Path, tiny_dj_weights: Path,  # noqa: F811
                                                                 capsys) -> None:
    src = song(tmp_path / "in" / "a.wav", seconds=1.0)
    code, out, err = separate(capsys, src, "-o", tmp_path / "out", "--model", f"{tiny_dj_weights}+wiener1024")
    assert code == 0, err
    assert any("tiny-dj+wiener1024" in line for line in out)
    mix, _ = sf.read(src, dtype="float32")
    total = sum(sf.read(tmp_path / "out" / "a" / f"{s}.wav", dtype="float32")[0] for s in ("vocals", "drums",
                                                                                        "bass", "other"))
    np.testing.assert_allclose(total, mix, atol=1e-5)


def test_separate_post_filters_by_default_and_not_when_a_model_is_named(tmp_path: Path, capsys) -> None:
    src = song(tmp_path / "in" / "b.wav", seconds=0.5)
    code, out, err = separate(capsys, src, "-o", tmp_path / "default")
    assert code == 0, err
    assert any("model 'dj-live+wiener8192'" in line for line in out)
    code, out, err = separate(capsys, src, "-o", tmp_path / "instruments", "--stems", "instruments")
    assert code == 0 and any("model 'live+wiener8192'" in line for line in out), err
    code, out, err = separate(capsys, src, "-o", tmp_path / "plain", "--model", "dj-live")
    assert code == 0 and any("model 'dj-live' " in line for line in out), err


def test_models_says_how_to_ask_for_the_post_filter(capsys) -> None:
    from stemstream.bridge.cli.main import main

    assert main(["models"]) == 0
    assert "NAME+wiener" in capsys.readouterr().out


def test_a_48k_host_gets_the_48k_sibling_post_filtered_alike() -> None:
    from stemstream.realtime.models.registry import model_label, rate_variant

    assert rate_variant("dj-live+wiener", 48000) == "dj-live-48k+wiener"
    assert rate_variant("dj-live+wiener2048", 96000) == "dj-live-48k+wiener2048"
    assert rate_variant("dj-live+wiener", 44100) == "dj-live+wiener"
    assert model_label("dj-live+wiener", 48000) == "dj-live+wiener (48 kHz variant)"
    assert load_model("dj-live-48k+wiener").info.sample_rate == 48000
