"""Teacher training and consistency distillation run end to end on a tiny model (toy data)."""

from __future__ import annotations


from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from stemstream.export.distill import DistillConfig, distill
from stemstream.export.train.options import TrainOptions
from stemstream.realtime.diffusion.unet import load_teacher
from stemstream.export.train.diffusion import CONFIGS, run_training, train_teacher
from stemstream.export.train.diffusion_data import toy_excerpt
from stemstream.realtime.diffusion.segments import TARGET_RMS
from stemstream.realtime.diffusion.student_loader import load_student
from stemstream.realtime.errors import ConfigError

torch.set_num_threads(1)


def test_toy_excerpts_are_seeded_and_four_stems() -> None:
    a = toy_excerpt(np.random.default_rng(1), 4000, 8000)
    b = toy_excerpt(np.random.default_rng(1), 4000, 8000)
    assert a.shape == (4, 1, 4000) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert np.sqrt(np.mean(a.sum(0) ** 2)) > 0


def test_teacher_then_student(tmp_path: Path) -> None:
    cfg = replace(CONFIGS["diffusion-tiny"], steps=4, checkpoint_every=2, validate_every=4)
    record = train_teacher(cfg, tmp_path / "teacher", None, resume=False, steps=None)
    assert record["steps"] == 4 and (tmp_path / "teacher" / "checkpoint.pt").exists()
    resumed = train_teacher(cfg, tmp_path / "teacher", None, resume=True, steps=6)
    assert resumed["steps"] == 6
    teacher = load_teacher(tmp_path / "teacher" / "teacher.safetensors")
    dcfg = DistillConfig(batch=2, steps=3, checkpoint_every=2, validate_every=3)
    out = tmp_path / "student"
    out.mkdir()
    rec = distill(teacher, dcfg, out, None, resume=False, steps=None, teacher_path="tiny")
    assert rec["steps"] == 3 and "valid_sisdri_1step" in rec["history"][-1]
    model = load_student(out / "student.safetensors", steps=2)
    audio = np.full((2, model.segment_samples), TARGET_RMS, np.float32)
    assert model.separate_segment(audio, None).shape == (4, 2, model.segment_samples)


def test_unknown_config_is_named(tmp_path: Path) -> None:
    args = TrainOptions(out=str(tmp_path), quiet=True)
    with pytest.raises(ConfigError, match="config='diffusion-huge'"):
        run_training("diffusion-huge", args)


def test_time_budget_of_diffusion_runs() -> None:
    from stemstream.export.train.diffusion_fit import budget_minutes
    from stemstream.realtime.errors import ConfigError

    assert budget_minutes(TrainOptions(), 40.0) == 40.0
    assert budget_minutes(TrainOptions(time_budget=None), 40.0) == 40.0
    assert budget_minutes(TrainOptions(time_budget=600.0), 40.0) == 10.0
    assert budget_minutes(TrainOptions(time_budget=0.0), 40.0) == float("inf")
    with pytest.raises(ConfigError, match="time_budget=-1"):
        TrainOptions(time_budget=-1.0)


def test_training_data_is_the_rendered_set_or_toy_never_half_a_set(tmp_path: Path) -> None:
    from stemstream.export.train.diffusion_data import TOY_DATA, synth_ready, training_data

    assert training_data(None) == TOY_DATA and training_data(tmp_path / "none") == TOY_DATA
    root = tmp_path / "synth"
    (root / "train").mkdir(parents=True)
    (root / "train" / "dataset.json").write_text("{}")
    assert not synth_ready(root)
    with pytest.raises(ConfigError, match="valid/dataset.json"):
        training_data(root)  # valid/ not rendered: an error, not toy signals
    (root / "valid").mkdir()
    (root / "valid" / "dataset.json").write_text("{}")
    assert synth_ready(root) and training_data(root) == "synthetic"


def test_only_the_student_takes_a_teacher_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from stemstream.bridge.cli.main import main

    assert main(["train", "--config", "diffusion-tiny", "--teacher", "x.safetensors", "--out", str(tmp_path / "a")]) == 2
    assert "--teacher is not used by the diffusion-teacher configs" in capsys.readouterr().err
    missing = tmp_path / "missing.safetensors"
    assert main(["train", "--config", "diffusion-student", "--teacher", str(missing), "--out", str(tmp_path / "b"),
                 "--quiet"]) == 2
    assert f"teacher={str(missing)!r}" in capsys.readouterr().err


def test_only_the_shipped_teacher_config_ships(tmp_path: Path) -> None:
    args = TrainOptions(out=str(tmp_path), quiet=True, ship=True)
    for name in ("diffusion-tiny", "diffusion-teacher-frames"):
        with pytest.raises(ConfigError, match="ship=True"):
            run_training(name, args)
    assert CONFIGS["diffusion-teacher"].net.frame_size == 0  # the shipped teacher's network
    assert CONFIGS["diffusion-teacher-frames"].net.frame_size == 256


def test_dirac_training_noise_sums_to_zero_on_its_share() -> None:
    from stemstream.export.train.diffusion import training_noise

    shape = torch.Size((200, 4, 1, 64))
    plain = training_noise(shape, torch.Generator().manual_seed(3), 0.0)
    assert torch.equal(plain, torch.randn(shape, generator=torch.Generator().manual_seed(3)))  # same draws as before
    noise = training_noise(shape, torch.Generator().manual_seed(3), 0.5)
    summed = noise.sum(dim=1).abs().amax(dim=(1, 2))
    dirac = summed < 1e-5  # noisy stems sum to the clean mixture: what the Dirac separator's state is
    assert 70 < int(dirac.sum()) < 130
    assert torch.equal(noise[~dirac], plain[~dirac])  # the other elements keep independent noise
    assert torch.all(training_noise(shape, torch.Generator().manual_seed(4), 1.0).sum(dim=1).abs() < 1e-5)
    # the constrained stem differs between elements: three stems keep their own draws, one carries minus their sum
    kept = (noise[dirac] == plain[dirac]).all(dim=-1).squeeze(-1)
    assert torch.all(kept.sum(dim=1) == 3) and len(set(kept.float().argmin(dim=1).tolist())) == 4


def test_dirac_teacher_config_starts_from_the_teacher_run(tmp_path: Path) -> None:
    from stemstream.export.train.diffusion import TeacherTrainConfig, _init_source
    from stemstream.realtime.diffusion.unet import UNetConfig

    cfg = CONFIGS["diffusion-teacher-dirac"]
    assert cfg.dirac_noise == 0.5 and cfg.net == CONFIGS["diffusion-teacher"].net
    with pytest.raises(ConfigError, match="init_from="):  # a fine-tuning recipe never starts from scratch
        _init_source(cfg.init_from, tmp_path)
    start = tmp_path / "diffusion-teacher" / "teacher.safetensors"
    start.parent.mkdir()
    start.write_bytes(b"")
    assert _init_source(cfg.init_from, tmp_path) == start
    assert _init_source("missing/checkpoint.pt", tmp_path) is None
    with pytest.raises(ConfigError, match="dirac_noise=1.5"):
        TeacherTrainConfig(net=UNetConfig(), dirac_noise=1.5)


def test_student_continues_from_a_student_file(tmp_path: Path) -> None:
    from stemstream.realtime.diffusion.student import load_student_step
    from stemstream.realtime.models.weights import WeightFileError

    cfg = replace(CONFIGS["diffusion-tiny"], steps=2, checkpoint_every=2, validate_every=2)
    train_teacher(cfg, tmp_path / "teacher", None, resume=False, steps=None)
    teacher = load_teacher(tmp_path / "teacher" / "teacher.safetensors")
    dcfg = DistillConfig(batch=2, steps=2, checkpoint_every=2, validate_every=2)
    first = distill(teacher, dcfg, tmp_path / "a", None, resume=False, steps=None, teacher_path="tiny")
    assert first["init"] == "initialised from the teacher"
    start = tmp_path / "a" / "student.safetensors"
    before, _ = load_student_step(start)
    record = distill(teacher, dcfg, tmp_path / "b", None, resume=False, steps=0, teacher_path="tiny", init_from=start)
    assert record["init"].startswith(f"initialised from {start}") and record["steps"] == 0
    after, _ = load_student_step(tmp_path / "b" / "student.safetensors")
    for name, value in before.net.state_dict().items():  # zero steps: the weights it started from
        torch.testing.assert_close(after.net.state_dict()[name], value)
    other = replace(DistillConfig(batch=2, steps=0), context_fraction=0.25)  # another overlap: another student shape
    with pytest.raises(WeightFileError, match="init_from="):
        distill(teacher, other, tmp_path / "c", None, resume=False, steps=0, teacher_path="tiny", init_from=start)
    args = TrainOptions(out=str(tmp_path / "d"), quiet=True, init_from=str(tmp_path / "missing.safetensors"),
                              teacher=str(tmp_path / "teacher" / "teacher.safetensors"), data=None)
    with pytest.raises(ConfigError, match="init_from="):
        run_training("diffusion-student", args)
