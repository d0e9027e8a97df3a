"""The refiner's teacher training and consistency distillation, end to end on a tiny model and a
tiny rendered set (seconds), with a tiny ``live`` network standing in for the base."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from stemstream.export.distill import DistillConfig
from stemstream.export.refiner_distill import distill_refiner
from stemstream.export.train.options import TrainOptions, check_options, family
from stemstream.export.train.refiner_data import leak
from stemstream.export.train.refiner_teacher import RefinerTrainConfig, train_refiner_teacher, training_noise
from stemstream.realtime.backends import open_backend
from stemstream.realtime.diffusion.refined_model import load_refined
from stemstream.realtime.diffusion.refiner import load_refiner_teacher
from stemstream.realtime.errors import ConfigError
from stemstream.realtime.models import registry
from tests.test_refiner_fixtures import TINY_REFINER, write_songs

torch.set_num_threads(1)


@pytest.fixture()
def tiny_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write_tiny_live_weights: Any) -> Path:
    """A tiny rendered set under ``tmp/data/synth`` and a tiny ``quality`` in a private weights folder."""
    data = tmp_path / "data" / "synth"
    write_songs(data / "train", 3, 0.5, seed=0)
    write_songs(data / "valid", 2, 0.5, seed=10)
    weights = tmp_path / "weights"
    weights.mkdir()
    write_tiny_live_weights(weights / "quality.safetensors", seed=2)
    monkeypatch.setattr(registry, "WEIGHTS_DIR", weights)
    monkeypatch.setenv("STEMSTREAM_CACHE", str(tmp_path / "cache"))
    return data


def test_teacher_then_student_end_to_end(tiny_world: Path, tmp_path: Path) -> None:
    cfg = RefinerTrainConfig(net=TINY_REFINER, batch=2, steps=6, checkpoint_every=3, validate_every=6, valid_excerpts=2)
    record = train_refiner_teacher(cfg, tmp_path / "teacher", str(tiny_world), resume=False, steps=None)
    assert record["steps"] == 6 and record["base"] == "quality"
    last = record["history"][-1]
    assert np.isfinite(last["valid_loss"]) and np.isfinite(last["refined_projected1_sisdri"])
    caches = list((tmp_path / "data" / "base-estimates" / "synth").glob("quality-*/train/*.npy"))
    assert len(caches) == 3  # the base's estimates, cached once per song
    resumed = train_refiner_teacher(cfg, tmp_path / "teacher", str(tiny_world), resume=True, steps=8)
    assert resumed["steps"] == 8 and [h["step"] for h in resumed["history"]] == [0, 6, 8]  # kept across --resume
    teacher = load_refiner_teacher(tmp_path / "teacher" / "teacher.safetensors")
    dcfg = DistillConfig(batch=2, steps=3, schedule_steps=6, high_pairs=2, checkpoint_every=2, validate_every=3,
                         direction="projected")
    rec = distill_refiner(teacher, dcfg, tmp_path / "student", str(tiny_world), resume=False, steps=None,
                          teacher_path="tiny")
    assert rec["steps"] == 3 and "valid_sisdri_1step" in rec["history"][-1]
    base = open_backend("torch", registry.load_torch_model("quality"), "quality")
    model = load_refined(tmp_path / "student" / "student.safetensors", base, steps=2)
    audio = np.full((2, model.segment_samples), 0.1, np.float32)
    assert model.separate_segment(audio, None).shape == (4, 2, model.segment_samples)


def test_the_regression_ablation_trains_the_same_network_on_its_one_step_error(tiny_world: Path, tmp_path: Path) -> None:
    from stemstream.export.train.refiner_teacher import CONFIGS, refiner_regression_loss

    assert CONFIGS["refiner-regression"].net == CONFIGS["refiner-teacher"].net
    with pytest.raises(ConfigError, match="objective"):
        RefinerTrainConfig(net=TINY_REFINER, objective="gan")
    cfg = RefinerTrainConfig(net=TINY_REFINER, batch=2, steps=3, validate_every=3, valid_excerpts=2, objective="regression")
    record = train_refiner_teacher(cfg, tmp_path / "regression", str(tiny_world), resume=False, steps=None)
    assert record["role"] == "refiner regression ablation" and record["steps"] == 3
    assert np.isfinite(record["history"][-1]["refined_projected1_sisdri"])
    model = load_refiner_teacher(tmp_path / "regression" / "teacher.safetensors")
    n = TINY_REFINER.train_samples
    mixture, stems = torch.randn(2, 2, n), torch.randn(2, 4, 2, n)
    loss = refiner_regression_loss(model, mixture, stems, stems.clone(), torch.Generator().manual_seed(0), p_context=0.0)
    assert loss.ndim == 0 and torch.isfinite(loss)


def test_the_cli_trains_the_tiny_config_and_distils_it(tiny_world: Path, tmp_path: Path) -> None:
    from stemstream.bridge.cli.main import main

    out = tmp_path / "runs" / "refiner-tiny"
    assert main(["train", "--config", "refiner-tiny", "--data", str(tiny_world), "--steps", "2", "--out", str(out),
                 "--quiet"]) == 0
    teacher = out / "teacher.safetensors"
    assert json.loads((out / "record.json").read_text())["steps"] == 2
    again = tmp_path / "runs" / "refiner-tiny-again"  # a new run started from that teacher's weights
    assert main(["train", "--config", "refiner-tiny", "--data", str(tiny_world), "--steps", "1", "--out", str(again),
                 "--init-from", str(teacher), "--quiet"]) == 0
    assert json.loads((again / "record.json").read_text())["steps"] == 1
    student = tmp_path / "runs" / "refiner-student"
    assert main(["train", "--config", "refiner-student", "--teacher", str(teacher), "--data", str(tiny_world),
                 "--steps", "2", "--out", str(student), "--quiet"]) == 0
    assert (student / "student.safetensors").is_file() and (student / "student.onnx").is_file()


def test_refiner_options_are_checked_by_family() -> None:
    assert family("refiner-teacher") == "refiner-teacher" and family("refiner-tiny") == "refiner-teacher"
    assert family("refiner-student") == "refiner-student"
    check_options("refiner-teacher", TrainOptions(base="quality", limit_songs=2, batch=3, init_from="t.safetensors"))
    with pytest.raises(ConfigError, match="--ema"):
        check_options("refiner-teacher", TrainOptions(ema=0.99))
    with pytest.raises(ConfigError, match="--base"):
        check_options("refiner-student", TrainOptions(base="quality"))
    with pytest.raises(ConfigError, match="--base"):
        check_options("live", TrainOptions(base="quality"))


def test_training_noise_and_the_leaky_base_keep_the_sums() -> None:
    noise = training_noise(torch.Size((400, 4, 2, 32)), torch.Generator().manual_seed(0), 0.75)
    dirac = noise.sum(dim=1).abs().amax(dim=(1, 2)) < 1e-5
    assert 250 < int(dirac.sum()) < 350  # about three quarters in the Dirac state (last stem = -sum of the others)
    rng = np.random.default_rng(1)
    base = rng.standard_normal((4, 2, 100)).astype(np.float32)
    leaky = leak(base, 0.3, rng)
    np.testing.assert_allclose(leaky.sum(axis=0), base.sum(axis=0), atol=1e-5)
    assert np.abs(leaky - base).max() > 0.01
    np.testing.assert_allclose(leak(base, 0.0, rng), base, atol=1e-6)


def test_only_the_student_ships(tmp_path: Path) -> None:
    from stemstream.export.train.refiner_teacher import run_refiner_training

    with pytest.raises(ConfigError, match="ship=True"):
        run_refiner_training("refiner-teacher", TrainOptions(out=str(tmp_path), quiet=True, ship=True))


def test_a_missing_teacher_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from stemstream.bridge.cli.main import main

    assert main(["train", "--config", "refiner-student", "--runs", str(tmp_path), "--out", str(tmp_path / "s"),
                 "--quiet"]) == 2
    assert "refiner-teacher/teacher.safetensors" in capsys.readouterr().err


def test_unknown_refiner_config_is_named(tmp_path: Path) -> None:
    from stemstream.export.train.refiner_teacher import run_refiner_training

    with pytest.raises(ConfigError, match="config='refiner-huge'"):
        run_refiner_training("refiner-huge", TrainOptions(out=str(tmp_path), quiet=True))
    assert replace(RefinerTrainConfig(net=TINY_REFINER), batch=3).batch == 3
