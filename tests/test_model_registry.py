"""Loading models by name, cards, weight files, and the training entry point (tiny)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from stemstream.realtime.errors import ConfigError, StemstreamError
from stemstream.realtime.models import registry
from stemstream.realtime.models.hybrid import ARCHITECTURE, HybridConfig, HybridSeparator
from stemstream.realtime.models.weights import WeightFileError, read_weights, save_weights

from stemstream.realtime.stems import DJ_STEMS, INSTRUMENT_STEMS

torch.set_num_threads(1)

TINY = HybridConfig(width=32, encoder_channels=16, analysis_samples=256, synthesis_samples=128, hop=32, encoder_kernel=64)


@pytest.mark.parametrize("name", [n for n in registry.available_models() if n in registry.SHIPPED])
def test_every_shipped_model_loads_and_runs(name: str) -> None:
    card = registry.model_card(name)
    expected = DJ_STEMS if name.startswith("dj-") else INSTRUMENT_STEMS  # the two families
    assert card.stems == expected and card.sample_rate == (48000 if name.endswith("-48k") else 44100)
    assert card.params > 0 and card.macs_per_second > 0
    model = registry.load_model(name)
    hop = model.hop_samples
    x = np.random.default_rng(0).standard_normal((2, 4 * hop)).astype(np.float32) * 0.1
    y, state = model.process_hops(x, model.init_state())
    assert y.shape == (4, 2, 4 * hop) and np.isfinite(y).all()


@pytest.mark.parametrize("name", ["live", "dj-live"])
def test_shipped_live_latency_within_budget(name: str) -> None:
    if name not in registry.available_models():
        pytest.skip(f"{name} weights not shipped")
    card = registry.model_card(name)
    assert card.latency_samples + card.hop_samples <= 0.012 * 44100


def test_unknown_name_lists_available() -> None:
    with pytest.raises(ConfigError) as info:
        registry.load_torch_model("nope")
    assert "model='nope'" in str(info.value) and "available:" in str(info.value)


def test_weight_file_roundtrip_and_checksum(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = HybridSeparator(TINY)
    path = tmp_path / "tiny.safetensors"
    save_weights(path, model, ARCHITECTURE, TINY.to_json(), {"steps": 3})
    loaded = registry.load_torch_model(str(path))
    assert loaded.config == TINY
    card = registry.model_card(str(path))
    assert card.name == "tiny" and card.run_record == {"steps": 3}
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0xFF  # corrupt one weight byte
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(bytes(raw))
    with pytest.raises(WeightFileError, match="checksum"):
        read_weights(bad)


def test_half_storage_loads_exactly_the_rounded_model(tmp_path: Path) -> None:
    from stemstream.realtime.models.weights import round_to_half

    torch.manual_seed(0)
    model = HybridSeparator(TINY)
    full, half = tmp_path / "full.safetensors", tmp_path / "half.safetensors"
    save_weights(full, model, ARCHITECTURE, TINY.to_json())
    save_weights(half, model, ARCHITECTURE, TINY.to_json(), half=True)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    tensors, meta = read_weights(half)
    assert meta["storage"] == "float16" and all(t.dtype == torch.float32 for t in tensors.values())
    loaded = registry.load_torch_model(str(half))
    rounded = round_to_half(model)
    for name, value in rounded.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], value, rtol=0, atol=0)


def test_models_command_lists(capsys) -> None:
    from stemstream.bridge.cli.main import main

    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == registry.available_models()


def test_train_command_tiny(tmp_path: Path) -> None:
    import soundfile as sf

    from stemstream.bridge.cli.main import main

    rng = np.random.default_rng(0)
    for split, n in (("train", 2), ("valid", 1)):
        for i in range(n):
            d = tmp_path / "data" / split / f"song{i}"
            d.mkdir(parents=True)
            for s in ("bass", "drums", "guitar", "piano"):
                sf.write(d / f"{s}.wav", (0.1 * rng.standard_normal((44100 * 8, 2))).astype(np.float32), 44100)
    out = tmp_path / "run"
    args = ["train", "--config", "tiny", "--data", str(tmp_path / "data"), "--out", str(out), "--quiet"]
    assert main(args) == 0
    for f in ("checkpoint.pt", "metrics.json", "metrics.csv", "run_record.json", "tiny.safetensors"):
        assert (out / f).exists(), f
    record = json.loads((out / "run_record.json").read_text())
    assert record["train"]["steps"] == 4 and record["machine"]["torch"]
    assert main(args + ["--resume", "--steps", "6"]) == 0
    assert json.loads((out / "run_record.json").read_text())["train"]["steps"] == 6
    # the first load wrote a memory-mappable cache per song; it holds the decoded WAVs exactly
    from stemstream.export.train.data import CACHE_NAME, load_songs

    song = tmp_path / "data" / "train" / "song0"
    assert (song / CACHE_NAME).exists()
    cached = load_songs(tmp_path / "data" / "train").audio[0]
    assert isinstance(cached, np.memmap)
    np.testing.assert_array_equal(cached[1], sf.read(song / "drums.wav", dtype="float32")[0].T)
    assert main(["train", "--config", "nope"]) == 2
    # fine-tuning: --init-from a weight file starts the tiny config from those weights
    tuned = tmp_path / "tuned"
    base = ["train", "--config", "tiny", "--data", str(tmp_path / "data"), "--quiet", "--steps", "2"]
    assert main(base + ["--out", str(tuned), "--init-from", str(out / "tiny.safetensors")]) == 0
    assert json.loads((tuned / "run_record.json").read_text())["train"]["init_from"] == str(out / "tiny.safetensors")
    assert main(base + ["--out", str(tmp_path / "t2"), "--init-from", str(tmp_path / "missing.safetensors")]) == 2
    assert main(["train", "--config", "diffusion-tiny", "--init-from", "live"]) == 2
    # distillation from the weights it starts from; the run record keeps each phase's arguments
    kd = tmp_path / "kd"
    start = str(out / "tiny.safetensors")
    assert main(base + ["--out", str(kd), "--init-from", start, "--distill", "1"]) == 0
    assert main(base + ["--out", str(kd), "--resume", "--steps", "4", "--init-from", start, "--distill", "0.5"]) == 0
    phases = json.loads((kd / "run_record.json").read_text())["train"]["phases"]
    assert [(p["from_step"], p["to_step"], p["distill"]) for p in phases] == [(0, 2, 1.0), (2, 4, 0.5)]
    assert main(base + ["--out", str(tmp_path / "t3"), "--distill", "0.5"]) == 2  # tiny has no teacher
    assert main(base + ["--out", str(tmp_path / "t3"), "--init-from", start, "--distill", "1.5"]) == 2
    assert main(["train", "--config", "diffusion-tiny", "--distill", "0.5"]) == 2
    # --lr sets the schedule's peak; the phase records it
    assert main(base + ["--out", str(kd), "--resume", "--steps", "5", "--init-from", start, "--lr", "2e-4"]) == 0
    assert json.loads((kd / "run_record.json").read_text())["train"]["phases"][-1]["lr"] == 2e-4
    for bad in ("0", "-1e-3", "nan", "2"):
        assert main(base + ["--out", str(tmp_path / "t4"), "--lr", bad]) == 2
    assert main(["train", "--config", "diffusion-tiny", "--lr", "1e-4"]) == 2
    # --seed: a continuation draws its own excerpts (recorded in the record and the phase)
    reseeded = tmp_path / "reseeded"
    assert main(base + ["--out", str(reseeded), "--init-from", start, "--seed", "7"]) == 0
    train = json.loads((reseeded / "run_record.json").read_text())["train"]
    assert train["seed"] == 7 and train["phases"][-1]["seed"] == 7
    from safetensors.torch import load_file

    a, b = (load_file(str(d / "tiny.safetensors")) for d in (tuned, reseeded))
    assert any(not torch.equal(a[k], b[k]) for k in a)
    assert main(base + ["--out", str(tmp_path / "t7"), "--seed", "-1"]) == 2
    assert main(["train", "--config", "diffusion-tiny", "--seed", "3"]) == 2
    # --teacher: distil from another model than the one the run starts from (recorded)
    other = tmp_path / "other"
    assert main(base + ["--out", str(other), "--init-from", start, "--teacher", str(kd / "tiny.safetensors"),
                        "--distill", "0.5"]) == 0
    assert json.loads((other / "run_record.json").read_text())["train"]["teacher"] == str(kd / "tiny.safetensors")
    assert main(base + ["--out", str(tmp_path / "t5"), "--teacher", start, "--distill", "1"]) == 0  # from scratch
    assert main(base + ["--out", str(tmp_path / "t6"), "--teacher", start]) == 2  # a teacher needs --distill
    assert main(base + ["--out", str(tmp_path / "t6"), "--teacher", str(tmp_path / "no.safetensors"),
                        "--distill", "1"]) == 2
    # --ema: a weight average rides along, survives --resume, and the better-validating one is saved
    averaged = tmp_path / "averaged"
    assert main(base + ["--out", str(averaged), "--init-from", start, "--ema", "0.5"]) == 0
    assert main(base + ["--out", str(averaged), "--init-from", start, "--ema", "0.5", "--resume", "--steps", "4"]) == 0
    record = json.loads((averaged / "run_record.json").read_text())
    ema = record["train"]["ema"]
    assert ema["updates"] == 4 and ema["decay"] == 0.5 and record["train"]["phases"][-1]["ema"] == 0.5
    saved = load_file(str(averaged / "tiny.safetensors"))
    ckpt = torch.load(averaged / "checkpoint.pt", weights_only=False)
    source = ckpt["ema"] if ema["chosen"] == "ema" else ckpt["model"]
    assert all(torch.equal(saved[k], source[k]) for k in saved)
    assert not all(torch.equal(ckpt["ema"][k], ckpt["model"][k]) for k in saved)
    assert (ema["chosen"] == "ema") == (ema["valid_ema"]["mean"] > ema["valid_last_mean"])
    for bad in ("1", "-0.1", "nan"):
        assert main(base + ["--out", str(tmp_path / "t8"), "--ema", bad]) == 2
    assert main(["train", "--config", "diffusion-tiny", "--ema", "0.9"]) == 2
    # --batch / --excerpt-seconds: recorded per phase; the audio seen adds up phase by phase
    longer = tmp_path / "longer"
    assert main(base + ["--out", str(longer), "--init-from", start]) == 0  # tiny: 2 x 0.25 s per step
    assert main(base + ["--out", str(longer), "--init-from", start, "--resume", "--steps", "4",
                        "--batch", "3", "--excerpt-seconds", "0.5"]) == 0
    train = json.loads((longer / "run_record.json").read_text())["train"]
    assert [(p["batch"], p["excerpt_seconds"]) for p in train["phases"]] == [(2, 0.25), (3, 0.5)]
    from stemstream.export.train.configs import get_config
    from stemstream.export.train.loop import audio_seen_s

    assert audio_seen_s(train["phases"], get_config("tiny"), 4) == 2 * 2 * 0.25 + 2 * 3 * 0.5
    assert audio_seen_s([], get_config("tiny"), 4) == 4 * 2 * 0.25  # steps before phases were kept
    for flag, bad in (("--batch", "0"), ("--batch", "100000"), ("--excerpt-seconds", "0"),
                      ("--excerpt-seconds", "nan"), ("--excerpt-seconds", "3600")):
        assert main(base + ["--out", str(tmp_path / "t9"), flag, bad]) == 2
    assert main(base + ["--out", str(tmp_path / "t9"), "--excerpt-seconds", "20"]) == 2  # songs are 8 s
    assert main(["train", "--config", "diffusion-tiny", "--batch", "4"]) == 2


def test_distillation_loss_targets_the_teacher() -> None:
    from stemstream.export.train.loop import training_loss

    torch.manual_seed(0)
    student = HybridSeparator(TINY)
    teacher = HybridSeparator(TINY)
    teacher.load_state_dict(student.state_dict())
    mix = 0.1 * torch.randn(2, 2, 40 * TINY.hop)
    stems = 0.05 * torch.randn(2, len(TINY.stems), 2, 40 * TINY.hop)
    truth = training_loss(student, mix, stems)
    # a teacher identical to the student: its term sits at the threshold floor, far below the truth's
    copy = training_loss(student, mix, stems, teacher, 1.0)
    assert float(copy) < float(truth) - 15
    half = training_loss(student, mix, stems, teacher, 0.5)
    assert torch.allclose(half, 0.5 * truth + 0.5 * copy, atol=1e-4)
    assert torch.equal(training_loss(student, mix, stems, teacher, 0.0), truth)


def test_unknown_backend_is_a_clear_error(tiny_live_weights: Path) -> None:
    with pytest.raises(StemstreamError, match="backend"):
        registry.load_model(str(tiny_live_weights), backend="no-such-backend")
