"""Named training configurations: the model config plus how to train it."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from stemstream.realtime.errors import bad_value
from stemstream.realtime.models.hybrid import HybridConfig
from stemstream.realtime.stems import DJ_STEMS


@dataclass(frozen=True)
class TrainConfig:
    """How one shipped model is trained.

    Attributes:
        name: config / model name (``live``, ``quality``, ``live-pruned``).
        model: the model config; a ``sample_rate`` other than the data's (``dj-live-48k``) trains on
            resampled batches (``stemstream.export.train.rates``).
        steps: optimiser steps (the schedule's length).
        time_budget_s: wall-clock budget; the LR schedule follows whichever of steps / time
            runs out first, so a slow shared CPU still ends with a decayed LR (0: steps only).
        batch: excerpts per step.
        excerpt_seconds: excerpt length in seconds.
        lr: peak Adam learning rate (cosine decay to ``lr * 0.05``).
        valid_every: steps between validations (an "epoch").
        init_from: name of a shipped/trained model to start from (``quality``: ``live``).
        prune_macs: for ``live-pruned``: fraction of ``init_from``'s MACs to remove.
        distill: weight ``w`` of knowledge distillation from :attr:`teacher_source`: the loss is
            ``(1 - w) * SDR(estimate, true stems) + w * SDR(estimate, teacher's estimate)``
            (0: ground truth only). Used to fine-tune ``live-pruned`` towards ``live``.
        teacher: the model distilled from when ``distill > 0`` (None: ``init_from``'s).
        seed: RNG seed (init, data order).
        threads: torch intra-op threads.
        ema: decay per step of an exponential moving average of the weights (0: none); the run
            ships whichever of the average and the last weights scores higher on validation.
        device: where the steps run: ``cpu`` or a CUDA device (``cuda``, ``cuda:1``); the
            training songs then sit on that device too, and the saved weights are CPU tensors.
        data: ``synth`` (our synthetic songs, the instrument set) or ``dj`` (the DJ stem set from
            real recordings and synthetic backings, ``stemstream.export.train.dj_data``).
        real_data: the real training recordings for ``dj`` (None: ``../shared/realdata-train``).
        electronic: for ``dj``: also draw the LMMS songs and Sonic Pi beats when ``stemstream data
            lmms`` has rendered them (False: the material ``dj-live`` was trained on, nothing else).
        electronic_share: for ``dj`` with ``electronic``: a factor on the electronic recipes'
            weights (1: as listed in ``dj_data``, about a fifth of the draws).
        voice_variants: for ``dj``: pitch-shift the real voices and add sung harmonies to some
            examples (``stemstream.export.data.voice_variants``); validation never varies them.
    """

    name: str
    model: HybridConfig
    steps: int = 2000
    time_budget_s: float = 3600.0
    batch: int = 6
    excerpt_seconds: float = 1.5
    lr: float = 1e-3
    valid_every: int = 100
    init_from: str | None = None
    prune_macs: float = 0.0
    distill: float = 0.0
    teacher: str | None = None
    seed: int = 1234
    threads: int = 1
    ema: float = 0.0
    device: str = "cpu"
    data: str = "synth"
    real_data: str | None = None
    electronic: bool = True
    electronic_share: float = 1.0
    voice_variants: bool = False
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.data not in ("synth", "dj"):
            raise bad_value("data", self.data, "'synth' (the instrument set) or 'dj' (real + synthetic, DJ stems)")

    @property
    def real_data_root(self) -> Path:
        """Where the real training recordings are (``real_data``, else ``../shared/realdata-train``)."""
        from stemstream.export.data.real import DEFAULT_REAL_TRAIN

        return Path(self.real_data) if self.real_data else DEFAULT_REAL_TRAIN

    @property
    def teacher_source(self) -> str | None:
        """The model distilled from: ``teacher``, else ``init_from``; None without distillation."""
        return (self.teacher or self.init_from) if self.distill > 0 else None


def _configs() -> dict[str, TrainConfig]:
    live = HybridConfig()
    dj_live = TrainConfig(
        name="dj-live",
        # grown from width 256 and two LSTM layers (the shipped file until Dec 8) by `--width 320
        # --lstm-layers 3` (stemstream.export.grow). dj-quality keeps the size its shipped file has (it
        # continues from that file); dj-live-48k and dj-live-pruned follow dj-live (their shipped files,
        # made from the 256-wide dj-live, carry their own config)
        model=HybridConfig(stems=DJ_STEMS, width=320, lstm_layers=3),
        steps=100000,
        time_budget_s=7200.0,
        batch=6,
        excerpt_seconds=3.0,
        lr=4e-4,
        init_from="live",
        data="dj",
        ema=0.999,
    )
    return {
        "live": TrainConfig(name="live", model=live, steps=3000, time_budget_s=3200.0),
        "quality": TrainConfig(
            name="quality",
            model=HybridConfig(synthesis_samples=1024, lookahead_frames=12),
            steps=700,
            time_budget_s=1200.0,
            lr=4e-4,
            init_from="live",
        ),
        "live-pruned": TrainConfig(
            name="live-pruned",
            model=live,  # replaced by the pruned config at run time
            steps=500,
            time_budget_s=800.0,
            lr=3e-4,
            init_from="live",
            prune_macs=0.45,
        ),
        "dj-live": dj_live,
        # dj-live at 48 kHz (same layers: 128-sample hops of 2.67 ms, 256 = 2 hops at a 48 kHz host and
        # 1 hop at a 96 kHz host after a 2:1 resample), fine-tuned from dj-live on the resampled batches
        "dj-live-48k": replace(
            dj_live,
            name="dj-live-48k",
            model=replace(dj_live.model, sample_rate=48000),
            time_budget_s=4800.0,
            lr=2e-4,
            init_from="dj-live",
            electronic=False,  # dj-live's own material: the run learns the rate, nothing else
        ),
        "dj-quality": replace(
            dj_live,
            name="dj-quality",
            model=replace(dj_live.model, width=256, lstm_layers=2, synthesis_samples=1024, lookahead_frames=12),
            lr=2e-4,
            init_from="dj-live",
        ),
        "dj-live-pruned": replace(
            dj_live,
            name="dj-live-pruned",  # the model is replaced by the pruned config at run time
            lr=3e-4,
            init_from="dj-live",
            prune_macs=0.45,
            distill=0.5,
        ),
        "tiny": TrainConfig(
            name="tiny",
            model=HybridConfig(width=32, encoder_channels=16, analysis_samples=256, synthesis_samples=128, hop=64),
            steps=4,
            time_budget_s=0.0,
            batch=2,
            excerpt_seconds=0.25,
            valid_every=2,
            threads=1,
        ),
    }


CONFIG_NAMES: tuple[str, ...] = tuple(_configs())


def get_config(name: str) -> TrainConfig:
    """The named training config, or an error listing the known names."""
    configs = _configs()
    if name not in configs:
        raise bad_value("config", name, f"one of {', '.join(configs)} (or diffusion*)")
    return configs[name]
