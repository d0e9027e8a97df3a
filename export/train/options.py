"""What a user asks of one training run: typed, frozen, checked once, at the CLI boundary.

``stemstream train`` builds one :class:`TrainOptions` from its flags; the hybrid trainer
(``stemstream.export.train.run``), the diffusion teacher (``...train.diffusion``) and the
consistency distillation (``stemstream.export.distill``) read its attributes. Which options each
family of configs understands is a table (:data:`FAMILY_OPTIONS`), so a flag a config would
ignore is refused by name, all at once, instead of one check per flag per family.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from stemstream.realtime.errors import ConfigError, bad_value


def check_electronic_share(value: float) -> float:
    """``value`` if it is a factor in (0, 10] on the electronic recipes' weights, else a one-line error."""
    if not (math.isfinite(value) and 0.0 < value <= 10.0):
        raise bad_value("electronic_share", value,
                        "a factor in (0, 10] on the electronic recipes' weights (1: as listed)")
    return float(value)


@dataclass(frozen=True)
class TrainOptions:
    """One run's options (None: the config's own value).

    Attributes:
        steps: optimiser steps (alone: a pure step schedule).
        time_budget: wall-clock budget in seconds (0: steps only).
        out: output folder (default ``runs/<config>``).
        data: data root with ``train/`` and ``valid/``.
        runs: where earlier runs are found (``init_from``, teachers).
        init_from: a model name or ``.safetensors`` file to start from.
        distill: weight in [0, 1] of learning from a teacher's estimates.
        teacher: the model distilled from (name or file).
        lr: peak learning rate, in (0, 1].
        seed: RNG seed of initialisation and data order.
        ema: weight-average decay per step, in [0, 1).
        batch: excerpts per step, 1..512.
        excerpt_seconds: excerpt length, 0.05..60 s.
        threads: torch intra-op threads.
        device: ``cpu``, ``cuda`` or ``cuda:N``.
        real_data: the real recordings of the DJ configs.
        limit_songs: read at most this many songs per split (smoke runs).
        base: the registry name of the base model a diffusion refiner refines.
        electronic: DJ configs: draw the LMMS songs and Sonic Pi beats too (None: the config's).
        electronic_share: DJ configs with the LMMS songs: a factor on their recipes' weights.
        voice_variants: DJ configs: pitch-shifted voices and sung harmonies (None: the config's).
        width: the separator's residual width (None: the config's); larger than the model started
            from, it grows that model without changing what it computes (``stemstream.export.grow``).
        lstm_layers: the separator's LSTM layers (None: the config's); more than the model started
            from appends layers that start silent.
        resume: continue from ``out/checkpoint.pt``.
        ship: copy the final weights into ``realtime/weights``.
        quiet: no progress bar.
    """

    steps: int | None = None
    time_budget: float | None = None
    out: str | None = None
    data: str = "data/synth"
    runs: str = "runs"
    init_from: str | None = None
    distill: float | None = None
    teacher: str | None = None
    lr: float | None = None
    seed: int | None = None
    ema: float | None = None
    batch: int | None = None
    excerpt_seconds: float | None = None
    threads: int | None = None
    device: str | None = None
    real_data: str | None = None
    limit_songs: int | None = None
    base: str | None = None
    electronic: bool | None = None
    electronic_share: float | None = None
    voice_variants: bool | None = None
    width: int | None = None
    lstm_layers: int | None = None
    resume: bool = False
    ship: bool = False
    quiet: bool = False

    def __post_init__(self) -> None:
        if self.steps is not None and self.steps < 1:
            raise bad_value("steps", self.steps, "a positive integer")
        if self.time_budget is not None and not (math.isfinite(self.time_budget) and self.time_budget >= 0):
            raise bad_value("time_budget", self.time_budget, "seconds >= 0 (0: steps only)")
        if self.lr is not None and not (math.isfinite(self.lr) and 0.0 < self.lr <= 1.0):
            raise bad_value("lr", self.lr, "a learning rate in (0, 1]")
        if self.seed is not None and not 0 <= self.seed < 2**63:
            raise bad_value("seed", self.seed, "an integer in [0, 2**63)")
        if self.ema is not None and not (math.isfinite(self.ema) and 0.0 <= self.ema < 1.0):
            raise bad_value("ema", self.ema, "a decay in [0, 1) (0: no weight average)")
        if self.batch is not None and not 1 <= self.batch <= 512:
            raise bad_value("batch", self.batch, "1 to 512 excerpts per step")
        if self.excerpt_seconds is not None and not (math.isfinite(self.excerpt_seconds)
                                                     and 0.05 <= self.excerpt_seconds <= 60.0):
            raise bad_value("excerpt_seconds", self.excerpt_seconds, "0.05 to 60 seconds (and shorter than the songs)")
        if self.distill is not None and not 0.0 <= self.distill <= 1.0:
            raise bad_value("distill", self.distill, "a weight in [0, 1]")
        if self.threads is not None and not 1 <= self.threads <= 256:
            raise bad_value("threads", self.threads, "1 to 256 torch threads")
        if self.electronic_share is not None:
            check_electronic_share(self.electronic_share)
        if self.width is not None and not 8 <= self.width <= 4096:
            raise bad_value("width", self.width, "a residual width of 8 to 4096 units")
        if self.lstm_layers is not None and not 1 <= self.lstm_layers <= 16:
            raise bad_value("lstm_layers", self.lstm_layers, "1 to 16 LSTM layers")
        if self.limit_songs is not None and self.limit_songs < 1:
            raise bad_value("limit_songs", self.limit_songs, "a positive number of songs")

    def given(self) -> set[str]:
        """The options set to something other than their defaults (what the user asked for)."""
        return {f.name for f in fields(self) if getattr(self, f.name) != f.default}


#: Options every family understands.
COMMON = {"steps", "time_budget", "out", "data", "runs", "threads", "resume", "ship", "quiet"}
#: Options per family of configs: the hybrid separators (live, quality, dj-*...), the diffusion
#: teacher configs, the consistency-distilled student, and the diffusion refiner's teacher and student.
FAMILY_OPTIONS: dict[str, set[str]] = {
    "hybrid": COMMON | {"init_from", "distill", "teacher", "lr", "seed", "ema", "batch", "excerpt_seconds",
                        "device", "real_data", "limit_songs", "electronic",
                        "electronic_share", "voice_variants", "width", "lstm_layers"},
    "diffusion-teacher": COMMON,
    "diffusion-student": COMMON | {"init_from", "teacher"},
    "refiner-teacher": COMMON | {"init_from", "base", "lr", "seed", "batch", "limit_songs"},
    "refiner-student": COMMON | {"init_from", "teacher", "lr", "seed", "batch", "limit_songs"},
}


def family(config: str) -> str:
    """The family of config ``config``."""
    if config == "diffusion-student":
        return "diffusion-student"
    if config.startswith("refiner"):
        return "refiner-student" if config.endswith("student") else "refiner-teacher"
    return "diffusion-teacher" if config.startswith("diffusion") else "hybrid"


def check_options(config: str, options: TrainOptions) -> None:
    """Refuse, in one message, every option ``config``'s family does not use."""
    unused = sorted(options.given() - FAMILY_OPTIONS[family(config)])
    if unused:
        flags = ", ".join("--" + name.replace("_", "-") for name in unused)
        raise ConfigError(f"config={config!r}: {flags} {'is' if len(unused) == 1 else 'are'} not used by the "
                          f"{family(config)} configs; expected none of them")
