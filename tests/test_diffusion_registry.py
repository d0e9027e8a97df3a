"""The diffusion student by name: registry cards, loading (torch and ONNX Runtime), the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from stemstream.bridge.cli.main import main
from stemstream.realtime.diffusion.student import STUDENT_ARCHITECTURE
from stemstream.realtime.errors import ConfigError
from stemstream.realtime.models import registry
from stemstream.realtime.models.weights import save_weights
from tests.test_diffusion_fixtures import tiny_student

torch.set_num_threads(1)


@pytest.fixture()
def weights_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A weights folder holding only a tiny student, as ``diffusion-student.safetensors``."""
    folder = tmp_path / "weights"
    step = tiny_student(context_samples=64)
    save_weights(folder / f"{registry.DIFFUSION_WEIGHTS}.safetensors", step.net, STUDENT_ARCHITECTURE,
                 step.config.to_json(), {"data": "synthetic", "role": "student", "steps": 7})
    monkeypatch.setattr(registry, "WEIGHTS_DIR", folder)
    monkeypatch.setenv("STEMSTREAM_CACHE", str(tmp_path / "cache"))
    return folder


def test_student_names_cards_and_loading(weights_dir: Path) -> None:
    assert registry.available_models() == ["diffusion-1step", "diffusion-2step"]
    one, two = (registry.model_card(n) for n in registry.available_models())
    assert one.architecture == STUDENT_ARCHITECTURE and one.sample_rate == 8000
    # tiny: W - O new samples per window; no delay inside a window, one window of buffering
    assert (one.hop_samples, one.latency_samples, one.buffer_samples) == (192, 0, 256)
    assert one.latency_samples == registry.load_model("diffusion-1step").info.latency_samples
    assert one.total_latency_ms == pytest.approx(1000 * 256 / 8000)
    assert two.macs_per_second == pytest.approx(2 * one.macs_per_second, rel=1e-6)
    model = registry.load_model("diffusion-2step")
    assert model.kind == "segment" and model.info.name == "diffusion-2step" and model.steps == 2
    with pytest.raises(ConfigError, match="segment model"):
        registry.load_torch_model("diffusion-1step")


def test_student_onnx_backend_exports_into_the_cache(weights_dir: Path, tmp_path: Path) -> None:
    audio = (0.2 * np.random.default_rng(0).standard_normal((2, 256))).astype(np.float32)
    torch_model = registry.load_model("diffusion-1step")
    onnx_model = registry.load_model("diffusion-1step", backend="onnx")
    assert len(list((tmp_path / "cache" / "onnx").glob("diffusion-student-*.onnx"))) == 1
    np.testing.assert_allclose(onnx_model.separate_segment(audio, None), torch_model.separate_segment(audio, None),
                               atol=1e-4)
    # `stemstream live`'s default backend: ONNX Runtime where it is installed (it is here)
    auto_model = registry.load_model("diffusion-1step", backend="auto")
    np.testing.assert_allclose(auto_model.separate_segment(audio, None), onnx_model.separate_segment(audio, None),
                               atol=1e-6)
    with pytest.raises(ConfigError, match="backend='tensorrt'"):
        registry.load_model("diffusion-1step", backend="tensorrt")


def test_student_file_path_is_a_model_name(weights_dir: Path) -> None:
    path = str(weights_dir / f"{registry.DIFFUSION_WEIGHTS}.safetensors")
    assert registry.model_card(path).name == registry.DIFFUSION_WEIGHTS
    assert registry.load_model(path).steps == 1


def test_missing_student_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "WEIGHTS_DIR", tmp_path)
    assert registry.available_models() == []
    with pytest.raises(ConfigError, match="not shipped"):
        registry.load_model("diffusion-1step")


def test_models_and_separate_commands(weights_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == ["diffusion-1step", "diffusion-2step"]
    assert main(["models"]) == 0
    assert "synthetic data, 7 student steps" in capsys.readouterr().out
    song = (0.1 * np.random.default_rng(1).standard_normal((22050, 2))).astype(np.float32)
    sf.write(tmp_path / "mix.wav", song, 44100)
    out = tmp_path / "stems"
    assert main(["separate", str(tmp_path / "mix.wav"), "-o", str(out), "--model", "diffusion-1step", "--quiet"]) == 0
    assert "a segment model also buffers up to" in capsys.readouterr().out
    for stem in ("bass", "drums", "guitar", "piano"):
        audio, rate = sf.read(out / "mix" / f"{stem}.wav")
        assert rate == 44100 and audio.shape == (22050, 2) and np.isfinite(audio).all()


def test_ship_half_stores_the_rounded_student(tmp_path: Path) -> None:
    from stemstream.export.train.diffusion_fit import ship_half
    from stemstream.realtime.diffusion.student import load_student_step
    from stemstream.realtime.models.weights import read_weights, round_to_half

    step = tiny_student(context_samples=64)
    src = tmp_path / "student.safetensors"
    save_weights(src, step.net, STUDENT_ARCHITECTURE, step.config.to_json(), {"role": "student"})
    dest = ship_half(src, tmp_path / "shipped.safetensors")
    assert dest.stat().st_size < 0.6 * src.stat().st_size
    shipped, meta = read_weights(dest)
    assert meta["storage"] == "float16" and json.loads(meta["run_record"]) == {"role": "student"}
    rounded = round_to_half(step.net).state_dict()
    assert all(torch.equal(shipped[k], rounded[k]) for k in rounded)
    assert load_student_step(dest)[0].config == step.config


def test_models_card_says_what_a_continued_student_started_from() -> None:
    from stemstream.bridge.cli.models import _trained_on

    fresh = {"data": "synthetic", "role": "student", "steps": 7, "init": "initialised from the teacher"}
    assert _trained_on(fresh) == "synthetic data, 7 student steps"
    continued = dict(fresh, init="initialised from a/student.safetensors (13557 distillation steps)")
    assert _trained_on(continued) == "synthetic data, 7 student steps in its last run (after 13557 distillation steps)"
