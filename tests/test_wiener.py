"""The long-window post-filters (``MODEL+wiener``, ``MODEL+mask``): their exact response on a model
with known stems, what the multichannel filter gains from where stems sit, sums, streaming,
silence and bad input, the registry names, and ``separate``."""

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
from stemstream.realtime.models.wiener import (
    DEFAULT_WINDOW, SPATIAL_KEYS, PostFilter, WienerHopModel, parse_post_filter, split_name,
)
from stemstream.realtime.protocol import ModelInfo, State


def _stream(model, x: np.ndarray, block: int) -> np.ndarray:
    sep = StreamingSeparator(model, model.info.sample_rate, x.shape[0])
    pieces = [sep.process(x[:, i : i + block]) for i in range(0, x.shape[1], block)]
    return np.concatenate([*pieces, sep.flush()], axis=2)


@pytest.mark.parametrize("spatial", [True, False])
@pytest.mark.parametrize("window", [256, 1024])
@pytest.mark.parametrize("block", [100, 4096])
def test_stems_that_are_scaled_inputs_get_their_share_of_the_mix(window: int, block: int, spatial: bool) -> None:
    # Every stem is gain * input: each bin's mask is |gain| / sum |gains|, whatever the window; and
    # every stem sits where the input does, so the multichannel filter gives the same shares.
    inner = SlowHopModel(hop=64, latency=32)
    model = WienerHopModel(inner, window, spatial)
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


class BleedModel:
    """A hop model (no delay) whose stems are given arrays ``(stems, 2, samples)``, whatever it hears."""

    kind = "hop"

    def __init__(self, stems: np.ndarray) -> None:
        self.stems = stems
        self.info = ModelInfo("bleed", ("vocals", "other"), 44100, stems.shape[1], 0)
        self.hop_samples = 64
        self.max_hops_per_call = 1 << 16

    def init_state(self) -> State:
        return {"at": np.zeros((), np.int64)}

    def process_hops(self, audio: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        at, n = int(state["at"]), audio.shape[1]
        return self.stems[:, :, at : at + n], {"at": np.asarray(at + n)}


def _bleed_scene(channels: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two noises alike in every bin, one on the left, one on the right, and a model whose stems
    each carry half of the other: ``(true stems, mixture, the model's stems)``."""
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((2, 3 * 44100)).astype(np.float32)
    pan = np.array([[1.0, 0.2], [0.2, 1.0]], np.float32)[:, :channels]
    true = np.stack([pan[0][:, None] * a, pan[1][:, None] * b])
    pad = ((0, 0), (0, 0), (0, 4096))
    return true, true.sum(axis=0), np.pad(true + 0.5 * true[::-1], pad)


def _sdr(est: np.ndarray, ref: np.ndarray) -> float:
    return float(10 * np.log10((ref**2).sum() / ((est - ref) ** 2).sum()))


def test_the_multichannel_filter_separates_by_where_stems_sit() -> None:
    # Magnitudes alone cannot undo the bleed (the noises are alike in every bin); the stems'
    # stereo images can. Both filters keep the sum exact; the state stays block-size free.
    true, mix, stems = _bleed_scene()
    scores = {}
    for spatial in (False, True):
        model = WienerHopModel(BleedModel(stems), 1024, spatial)
        assert model.info.name == f"bleed{'+wiener' if spatial else '+mask'}1024"
        assert bool(set(SPATIAL_KEYS) & set(model.init_state())) == spatial
        y = _stream(model, mix, 700)[:, :, model.info.latency_samples :][:, :, : mix.shape[1]]
        np.testing.assert_allclose(y.sum(axis=0), mix, atol=1e-5)
        later = slice(mix.shape[1] // 2, None)  # once the images are learnt
        scores[spatial] = _sdr(y[0][:, later], true[0][:, later])
        if spatial:
            z = _stream(model, mix, 4096)[:, :, model.info.latency_samples :][:, :, : mix.shape[1]]
            np.testing.assert_allclose(z, y, atol=1e-5)
    assert scores[False] < 7.0 and scores[True] > scores[False] + 3.0, scores


def test_after_a_long_silence_the_images_start_afresh() -> None:
    # Silence does not count as heard: after it, a song is filtered as from a fresh state (the
    # images start again from the identity), not from the last song's nearly forgotten images.
    true, mix, stems = _bleed_scene()
    gap = np.zeros((2, 2, 5120 * 256 + (-mix.shape[1]) % 256), np.float32)  # 30 s; the song restarts on a frame
    both = np.concatenate([stems[:, :, : mix.shape[1]], gap, stems], axis=2)
    model = WienerHopModel(BleedModel(both), 1024)
    lat, start = model.info.latency_samples, mix.shape[1] + gap.shape[2]
    x = np.concatenate([mix, gap[0], mix], axis=1)
    after = _stream(model, x, 4096)[:, :, lat + start :][:, :, : mix.shape[1]]
    fresh = _stream(WienerHopModel(BleedModel(stems), 1024), mix, 4096)[:, :, lat:][:, :, : mix.shape[1]]
    np.testing.assert_allclose(after, fresh, atol=1e-4)


def test_mono_input_gets_the_mask() -> None:
    true, mix, stems = _bleed_scene(channels=1)
    wiener, mask = WienerHopModel(BleedModel(stems), 1024), WienerHopModel(BleedModel(stems), 1024, spatial=False)
    assert not wiener.spatial and wiener.info.name == "bleed+wiener1024"
    np.testing.assert_array_equal(_stream(wiener, mix, 512), _stream(mask, mix, 512))


def test_names_windows_and_cards() -> None:
    assert split_name("dj-live") == ("dj-live", None)
    assert split_name("dj-live+wiener") == ("dj-live", PostFilter("+wiener", DEFAULT_WINDOW))
    assert split_name("runs/x.safetensors+wiener2048") == ("runs/x.safetensors", PostFilter("+wiener", 2048))
    assert split_name("runs/a+mask/x.safetensors+wiener") == ("runs/a+mask/x.safetensors", PostFilter("+wiener", 8192))
    assert split_name("dj-live+mask4096") == ("dj-live", PostFilter("+mask", 4096))
    assert parse_post_filter("8192") == parse_post_filter("wiener") == PostFilter("+wiener", 8192)
    assert parse_post_filter("mask2048") == PostFilter("+mask", 2048)
    with pytest.raises(ConfigError, match="post-filter"):
        parse_post_filter("blur")
    card, base = model_card("dj-live+wiener4096"), model_card("dj-live")
    assert card.name == "dj-live+wiener4096" and card.hop_samples == 1024
    assert card.latency_samples == base.latency_samples + 3072
    assert load_model("dj-live+wiener4096").info.latency_samples == card.latency_samples
    assert model_card("dj-live+mask").name == "dj-live+mask8192"
    assert load_model("dj-live+mask2048").info.name == "dj-live+mask2048"
    for bad in ("dj-live+wienerx", "dj-live+wiener100", "dj-live+wiener3000", "dj-live+wiener256", "dj-live+mask9"):
        with pytest.raises(ConfigError, match="wiener|mask|window"):  # 256: a quarter is under dj-live's hop
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
