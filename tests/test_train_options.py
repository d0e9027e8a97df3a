"""Training options: typed and checked once at the CLI boundary; a flag a config's family
would ignore is refused by name, all such flags in one line."""

from __future__ import annotations

import pytest

from stemstream.bridge.cli.main import main
from stemstream.export.train.configs import get_config
from stemstream.export.train.options import FAMILY_OPTIONS, TrainOptions, check_options, family
from stemstream.export.train.run import apply_options
from stemstream.realtime.errors import ConfigError


def test_options_check_their_ranges() -> None:
    for bad in (dict(lr=0.0), dict(lr=2.0), dict(ema=1.0), dict(batch=0), dict(excerpt_seconds=0.01),
                dict(distill=1.5), dict(steps=0), dict(seed=-1), dict(time_budget=-5.0), dict(threads=0)):
        name = next(iter(bad))
        with pytest.raises(ConfigError, match=name):
            TrainOptions(**bad)
    assert TrainOptions(lr=1e-3, steps=3).given() == {"lr", "steps"}


def test_each_family_refuses_what_it_would_ignore_in_one_line() -> None:
    assert family("dj-live") == family("live") == "hybrid"
    assert family("diffusion-teacher-dirac") == "diffusion-teacher"
    check_options("live", TrainOptions(lr=1e-4, ema=0.99, real_data="x"))
    with pytest.raises(ConfigError) as err:
        check_options("diffusion-teacher", TrainOptions(lr=1e-4, seed=3, batch=2, init_from="x"))
    message = str(err.value)
    assert all(flag in message for flag in ("--lr", "--seed", "--batch", "--init-from"))
    check_options("diffusion-student", TrainOptions(init_from="x", teacher="y"))
    assert FAMILY_OPTIONS["diffusion-student"] < FAMILY_OPTIONS["hybrid"]


def test_options_reach_the_config() -> None:
    cfg = apply_options(get_config("live"), TrainOptions(lr=2e-4, threads=2, steps=10, batch=3))
    assert (cfg.lr, cfg.threads, cfg.batch, cfg.time_budget_s) == (2e-4, 2, 3, 0.0)  # --steps alone: no budget
    assert apply_options(get_config("live"), TrainOptions(steps=10, time_budget=60)).time_budget_s == 60.0
    with pytest.raises(ConfigError, match="real_data"):
        apply_options(get_config("live"), TrainOptions(real_data="/tmp"))
    with pytest.raises(ConfigError, match="distill"):
        apply_options(get_config("live"), TrainOptions(distill=0.5))  # from scratch: no teacher
    with pytest.raises(ConfigError, match="does not distil"):
        apply_options(get_config("live-pruned"), TrainOptions(teacher="live"))
    # a config that distils by itself takes a teacher without --distill
    pruned = apply_options(get_config("dj-live-pruned"), TrainOptions(teacher="x.safetensors"))
    assert (pruned.teacher, pruned.distill) == ("x.safetensors", 0.5)


def test_electronic_material_is_switched_per_run_for_the_dj_configs_only() -> None:
    assert get_config("dj-live").electronic and not get_config("dj-live-48k").electronic
    assert not apply_options(get_config("dj-live"), TrainOptions(electronic=False)).electronic
    assert apply_options(get_config("dj-live-48k"), TrainOptions(electronic=True)).electronic
    assert apply_options(get_config("dj-live"), TrainOptions()).electronic  # None: the config's
    with pytest.raises(ConfigError, match="only the DJ configs"):
        apply_options(get_config("live"), TrainOptions(electronic=False))
    assert main(["train", "--config", "diffusion-teacher", "--no-electronic"]) == 2
    assert apply_options(get_config("dj-live"), TrainOptions(electronic_share=0.4)).electronic_share == 0.4
    with pytest.raises(ConfigError, match="electronic_share"):  # nothing electronic to weight
        apply_options(get_config("dj-live"), TrainOptions(electronic=False, electronic_share=0.4))
    with pytest.raises(ConfigError, match="electronic_share"):
        TrainOptions(electronic_share=0.0)


def test_voice_variants_are_switched_per_run_for_the_dj_configs_only() -> None:
    assert not get_config("dj-live").voice_variants  # off unless asked: the shipped runs did not vary voices
    assert apply_options(get_config("dj-live"), TrainOptions(voice_variants=True)).voice_variants
    assert not apply_options(get_config("dj-quality"), TrainOptions()).voice_variants
    with pytest.raises(ConfigError, match="only the DJ configs"):
        apply_options(get_config("live"), TrainOptions(voice_variants=True))
    assert main(["train", "--config", "diffusion-teacher", "--voice-variants"]) == 2


def test_width_and_depth_reach_the_model_config() -> None:
    cfg = apply_options(get_config("dj-live"), TrainOptions(width=320, lstm_layers=3))
    assert (cfg.model.width, cfg.model.lstm_layers) == (320, 3)
    assert cfg.model.stems == get_config("dj-live").model.stems  # the rest as the config has it
    assert apply_options(get_config("dj-quality"), TrainOptions(width=320)).model.lookahead_frames == 12
    with pytest.raises(ConfigError, match="prunes"):
        apply_options(get_config("dj-live-pruned"), TrainOptions(width=320))
    for bad in (dict(width=4), dict(lstm_layers=0)):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            TrainOptions(**bad)
    assert main(["train", "--config", "diffusion-teacher", "--width", "64"]) == 2


def test_cli_refuses_flags_of_another_family(capsys) -> None:
    assert main(["train", "--config", "diffusion-teacher", "--lr", "1e-3", "--ema", "0.9"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--ema" in err[0] and "--lr" in err[0]
