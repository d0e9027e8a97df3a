"""``quality-refined`` by name: listed with the base's latency plus a segment and both costs,
opened as a segment model through the registry, on PyTorch and ONNX Runtime."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from stemstream.bridge.cli.main import main
from stemstream.realtime.diffusion.refiner import REFINER_STUDENT_ARCHITECTURE
from stemstream.realtime.errors import ConfigError
from stemstream.realtime.models import registry
from stemstream.realtime.models.weights import save_weights
from tests.test_refiner_fixtures import TINY_REFINER, music_like, tiny_refiner_student

torch.set_num_threads(1)


@pytest.fixture()
def weights_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write_tiny_live_weights: Any) -> Path:
    """A weights folder with a tiny ``quality`` and a tiny refiner of it."""
    folder = tmp_path / "weights"
    folder.mkdir()
    write_tiny_live_weights(folder / "quality.safetensors", seed=5)
    step = tiny_refiner_student(2)
    save_weights(folder / "quality-refiner.safetensors", step.denoiser, REFINER_STUDENT_ARCHITECTURE,
                 step.config.to_json(), {"data": "synthetic", "role": "refiner student", "steps": 9})
    monkeypatch.setattr(registry, "WEIGHTS_DIR", folder)
    monkeypatch.setenv("STEMSTREAM_CACHE", str(tmp_path / "cache"))
    return folder


def test_refined_cards_add_the_segment_to_the_base(weights_dir: Path) -> None:
    assert registry.available_models() == ["quality", "quality-refined", "quality-refined-2step"]
    base = registry.model_card("quality")
    one, two = registry.model_card("quality-refined"), registry.model_card("quality-refined-2step")
    w, o = TINY_REFINER.segment_samples, TINY_REFINER.context_samples
    assert (one.latency_samples, one.buffer_samples, one.hop_samples) == (base.latency_samples, w, w - o)
    assert one.total_latency_ms == pytest.approx(1000 * (base.latency_samples + w) / 44100)
    assert one.params > base.params and one.macs_per_second > base.macs_per_second
    assert two.macs_per_second - base.macs_per_second == pytest.approx(2 * (one.macs_per_second - base.macs_per_second),
                                                                        rel=1e-6)
    assert one.latency_samples == registry.load_model("quality-refined").info.latency_samples
    with pytest.raises(ConfigError, match="segment model"):
        registry.load_torch_model("quality-refined")


def test_refined_model_runs_on_both_backends(weights_dir: Path) -> None:
    w = TINY_REFINER.segment_samples
    audio = music_like(w, 3).sum(axis=0)
    torch_model = registry.load_model("quality-refined", backend="torch")
    onnx_model = registry.load_model("quality-refined", backend="onnx")
    assert torch_model.kind == "segment" and torch_model.info.name == "quality-refined"
    np.testing.assert_allclose(onnx_model.separate_segment(audio, None), torch_model.separate_segment(audio, None),
                               atol=1e-4)
    path = str(weights_dir / "quality-refiner.safetensors")  # a refiner file is a model name too
    assert registry.model_card(path).name == "quality-refiner" and registry.load_model(path).steps == 1


def test_models_command_lists_the_refined_model(weights_dir: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["quality-refined"]["total_latency_ms"] > rows["quality"]["total_latency_ms"]
    assert main(["models"]) == 0
    assert "quality-refined-2step" in capsys.readouterr().out


def test_a_refiner_without_its_base_is_not_listed(weights_dir: Path) -> None:
    (weights_dir / "quality.safetensors").unlink()
    assert registry.available_models() == []
    with pytest.raises(ConfigError, match="not shipped"):
        registry.load_model("quality-refined")


def test_eval_scores_the_refined_model(weights_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from tests.test_refiner_fixtures import write_songs

    songs = write_songs(tmp_path / "test", 1, 4.5, seed=30)
    report = tmp_path / "eval.json"
    assert main(["eval", "--dataset", str(songs), "--model", "quality-refined", "--backend", "torch", "--no-sdr",
                 "--json", str(report)]) == 0
    data = json.loads(report.read_text())
    assert "quality-refined" in json.dumps(data) and np.isfinite(data["overall"]["si_sdri"]["mean"])
