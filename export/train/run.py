"""``stemstream train --config NAME``: build (or prune / transfer) the model, train, ship.

* ``live``: from scratch.
* ``quality``: same architecture with a longer synthesis window and look-ahead, started from
  ``live``'s weights (the extra look-ahead half of the mask heads starts at zero, so step 0
  equals ``live`` with a longer synthesis window).
* ``live-pruned``: structured pruning of ``live`` (``stemstream.export.prune``), then fine-tuning; started
  ``--init-from`` a model already within its MAC budget, it fine-tunes that model unpruned.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import torch

from stemstream.export.train.configs import TrainConfig, get_config
from stemstream.export.train.loop import load_data, train
from stemstream.export.train.options import TrainOptions
from stemstream.realtime.errors import ConfigError
from stemstream.realtime.models.hybrid import HybridConfig, HybridSeparator
from stemstream.realtime.models.registry import WEIGHTS_DIR
from stemstream.realtime.models.weights import read_weights


def find_weights(name: str, runs_dir: Path) -> Path:
    """Freshest weights of ``name``: ``runs/<name>/<name>.safetensors``, else the shipped file
    (``name`` may also be a ``.safetensors`` path)."""
    if name.endswith(".safetensors"):
        if not Path(name).is_file():
            raise ConfigError(f"init_from={name!r}: no such weight file")
        return Path(name)
    for p in (runs_dir / name / f"{name}.safetensors", WEIGHTS_DIR / f"{name}.safetensors"):
        if p.exists():
            return p
    raise ConfigError(f"init_from={name!r}: no weights found (train it first: stemstream train --config {name})")


def load_separator(path: Path) -> HybridSeparator:
    """A :class:`HybridSeparator` from a weight file."""
    tensors, meta = read_weights(path)
    model = HybridSeparator(HybridConfig.from_dict(json.loads(meta["config"])))
    model.load_state_dict(tensors)
    return model


#: A stem a source model lacks starts from this stem's head (DJ set from the instrument set).
STEM_SEEDS: dict[str, str] = {"vocals": "piano", "other": "guitar", "instrumental": "guitar"}


def _stem_rows(source: HybridSeparator, stems: tuple[str, ...]) -> list[int] | None:
    """Which source stem seeds each of ``stems`` (None: the same stems in the same order)."""
    have = source.config.stems
    if tuple(stems) == tuple(have):
        return None
    rows = []
    for stem in stems:
        seed = stem if stem in have else STEM_SEEDS.get(stem)
        if seed not in have:
            raise ConfigError(f"init_from: the source model has stems {have}; nothing seeds {stem!r}")
        rows.append(have.index(seed))
    return rows


def transfer(source: HybridSeparator, config: HybridConfig) -> HybridSeparator:
    """A model of ``config`` initialised from ``source`` (same sizes; heads may double for
    look-ahead; other stems take their heads from the source's stems per :data:`STEM_SEEDS`; a
    larger width or more LSTM layers grow the source without changing what it computes,
    :mod:`stemstream.export.grow`)."""
    from stemstream.export.grow import grow

    c = source.config
    sizes = (config.width, config.lstm_layers)
    if sizes != (c.width, c.lstm_layers) and config.width >= c.width and config.lstm_layers >= c.lstm_layers:
        # wider / deeper: seed a model of the source's size, then grow it without changing what it computes
        return grow(transfer(source, replace(config, width=c.width, lstm_layers=c.lstm_layers)), config)
    target = HybridSeparator(config)
    src = dict(source.state_dict())
    rows = _stem_rows(source, config.stems)
    if rows is not None:  # pick each new stem's block of head rows
        n_old = len(source.config.stems)
        for key in ("spec_head.weight", "spec_head.bias", "wave_head.weight", "wave_head.bias"):
            old = src[key]
            blocks = old.reshape(n_old, old.shape[0] // n_old, *old.shape[1:])
            src[key] = blocks[rows].reshape(len(rows) * blocks.shape[1], *old.shape[1:])
    with torch.no_grad():
        for key, value in target.state_dict().items():
            if key not in src:
                raise ConfigError(f"init_from: source has no tensor {key!r}")
            old = src[key]
            if old.shape == value.shape:
                value.copy_(old)
            elif key == "decoder.weight" and old.shape[:2] == value.shape[:2] and old.shape[2] < value.shape[2]:
                value.zero_()
                value[..., value.shape[2] - old.shape[2] :] = old  # same taps, same frame end
            elif key.endswith("head.weight") and old.shape[0] == value.shape[0] and 2 * old.shape[1] == value.shape[1]:
                value.zero_()
                value[:, : old.shape[1]] = old  # mask of frame j from h_j, as in live
            else:
                raise ConfigError(f"init_from: {key} shape {tuple(old.shape)} cannot seed {tuple(value.shape)}")
    return target


def build_model(cfg: TrainConfig, runs_dir: Path, data_root: Path, log: Callable[[str], None]) -> HybridSeparator:
    """The model to train for ``cfg`` (fresh, transferred, or pruned)."""
    torch.manual_seed(cfg.seed)
    if cfg.init_from is None:
        return HybridSeparator(cfg.model)
    source = load_separator(find_weights(cfg.init_from, runs_dir))
    if cfg.prune_macs > 0:
        from stemstream.export.prune import prune
        from stemstream.export.train.data import RemixSampler, load_songs
        from stemstream.realtime.models.hybrid import macs_per_hop

        budget, macs = (1.0 - cfg.prune_macs) * macs_per_hop(cfg.model), macs_per_hop(source.config)
        if macs <= budget:  # already pruned: fine-tune it as it is
            log(f"{cfg.init_from} is already within {cfg.name}'s MAC budget "
                f"({macs} <= {budget:.0f} per hop): fine-tuning it unpruned")
            return source

        songs = load_songs(data_root / "train", limit=64)
        if cfg.data == "dj":  # calibrate on the mixes the model will separate (voices included)
            from stemstream.export.train.dj_data import DjSampler, DjSources

            mixes = DjSampler(DjSources.load(cfg.real_data_root, songs, "train"), 4 * 44100, seed=cfg.seed).batch(16).mix
        else:
            mixes, _ = RemixSampler(songs, 4 * 44100, seed=cfg.seed).batch(16)
        model = prune(source, mixes, cfg.prune_macs)
        log(
            f"pruned {cfg.init_from}: MACs/hop {macs_per_hop(source.config)} -> {macs_per_hop(model.config)}, "
            f"bins {source.config.bins}->{model.config.bins}, width {source.config.width}->{model.config.width}, "
            f"encoder {source.config.encoder_channels}->{model.config.encoder_channels}"
        )
        return model
    return transfer(source, cfg.model)


def check_device(name: str) -> str:
    """``name`` if training can run there (``cpu``, or a CUDA device this machine has), else ConfigError."""
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"device={name!r}: expected cpu, cuda or cuda:N") from None
    if device.type == "cpu":
        return "cpu"
    if device.type != "cuda":
        raise ConfigError(f"device={name!r}: expected cpu, cuda or cuda:N")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if (device.index or 0) >= count:
        raise ConfigError(f"device={name!r}: this machine has {count} CUDA device(s) "
                          f"(torch {torch.__version__}); expected cpu" + (f" or cuda:0..{count - 1}" if count else ""))
    return str(device)


def apply_options(cfg: TrainConfig, options: TrainOptions) -> TrainConfig:
    """``cfg`` with what ``options`` sets (ranges were checked when ``options`` was built)."""
    changes: dict[str, Any] = {}
    if options.time_budget is not None:
        changes["time_budget_s"] = float(options.time_budget)
    elif options.steps is not None:
        changes["time_budget_s"] = 0.0  # --steps alone: a pure step schedule
    for name in ("lr", "seed", "ema", "batch", "excerpt_seconds", "threads"):
        if getattr(options, name) is not None:
            changes[name] = getattr(options, name)
    if options.device is not None:
        changes["device"] = check_device(options.device)
    if options.real_data:
        if cfg.data != "dj":
            raise ConfigError(f"real_data={options.real_data!r}: only the DJ configs train on real recordings; "
                              f"{cfg.name} trains on synthetic songs")
        if not Path(options.real_data).is_dir():
            raise ConfigError(f"real_data={options.real_data!r}: expected a folder with mir1k/ and musicdelta/")
        changes["real_data"] = str(options.real_data)
    if options.electronic is not None:
        if cfg.data != "dj":
            raise ConfigError(f"electronic={options.electronic!r}: only the DJ configs draw the LMMS songs; "
                              f"{cfg.name} trains on synthetic songs")
        changes["electronic"] = bool(options.electronic)
    if options.electronic_share is not None:
        if cfg.data != "dj" or not changes.get("electronic", cfg.electronic):
            raise ConfigError(f"electronic_share={options.electronic_share!r}: weights the LMMS songs' recipes, "
                              f"which {cfg.name} does not draw here; expected --electronic")
        changes["electronic_share"] = float(options.electronic_share)
    if options.voice_variants is not None:
        if cfg.data != "dj":
            raise ConfigError(f"voice_variants={options.voice_variants!r}: only the DJ configs have voices; "
                              f"{cfg.name} trains on synthetic songs")
        changes["voice_variants"] = bool(options.voice_variants)
    if options.init_from:
        changes["init_from"] = str(options.init_from)
    sizes = {k: getattr(options, k) for k in ("width", "lstm_layers") if getattr(options, k) is not None}
    if sizes:
        if cfg.prune_macs > 0:
            raise ConfigError(f"{cfg.name} prunes its starting model to a MAC budget, so it sets its own width; "
                              "expected no --width / --lstm-layers")
        changes["model"] = replace(cfg.model, **sizes)
    cfg = replace(cfg, **changes)
    if options.teacher:
        distill = options.distill if options.distill is not None else cfg.distill
        if not distill:
            raise ConfigError(f"teacher={options.teacher!r}: a teacher is used only with --distill W > 0 "
                              f"({cfg.name} does not distil); expected --distill")
        cfg = replace(cfg, teacher=str(options.teacher))
    if options.distill is not None:
        if options.distill > 0 and cfg.init_from is None and cfg.teacher is None:
            raise ConfigError(f"distill={options.distill!r}: {cfg.name} starts from scratch, so there is no teacher; "
                              "expected --teacher, --init-from or a config that starts from another model")
        cfg = replace(cfg, distill=float(options.distill))
    return cfg


def run_training(config_name: str, options: TrainOptions, log: Callable[[str], None] = print) -> int:
    """Entry point of ``stemstream train`` for the hybrid configs; returns an exit code."""
    cfg = apply_options(get_config(config_name), options)
    data_root = Path(options.data)
    runs_dir = Path(options.runs)
    out_dir = Path(options.out or runs_dir / config_name)
    steps = options.steps
    torch.set_num_threads(options.threads or cfg.threads)
    if not (data_root / "train").is_dir():
        raise ConfigError(f"data={str(data_root)!r}: expected a folder with train/ and valid/ (stemstream data synth)")
    t0 = time.time()
    ckpt = out_dir / "checkpoint.pt"
    if options.resume and ckpt.exists():
        saved = torch.load(ckpt, weights_only=False)
        model = HybridSeparator(HybridConfig.from_dict(json.loads(saved["config"])))
        log(f"resuming {config_name} from {ckpt}")
    else:
        model = build_model(cfg, runs_dir, data_root, log)
    teacher = None
    if cfg.distill > 0:
        assert cfg.teacher_source is not None  # checked above
        teacher_path = find_weights(cfg.teacher_source, runs_dir)
        teacher = load_separator(teacher_path)
        log(f"distilling from {teacher_path} (weight {cfg.distill})")
    train_songs, valid_songs = load_data(data_root, limit=options.limit_songs)
    log(
        f"{config_name}: {len(train_songs.names)} train songs ({train_songs.seconds / 60:.1f} min), "
        f"{len(valid_songs.names)} valid songs; out={out_dir}"
    )
    record = train(
        cfg, model, train_songs, valid_songs, out_dir, steps=steps,
        resume=options.resume, progress=not options.quiet, log=log,
        teacher=teacher,
    )
    log(f"done in {time.time() - t0:.0f} s: final valid {json.dumps(record['final_valid'])}")
    if options.ship:
        WEIGHTS_DIR.mkdir(parents=True, exist_ok=True)
        shutil.copy(out_dir / f"{config_name}.safetensors", WEIGHTS_DIR / f"{config_name}.safetensors")
        shutil.copy(out_dir / "run_record.json", WEIGHTS_DIR / f"{config_name}.run_record.json")
        log(f"shipped to {WEIGHTS_DIR / (config_name + '.safetensors')}")
    return 0
