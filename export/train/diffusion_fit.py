"""Training scaffolding shared by teacher training (``stemstream.export.train.diffusion``) and consistency
distillation (``stemstream.export.distill``): the optimiser step, EMA copies, checkpoint/resume, the
step loop with its time budget and logging, run records and the validation score.

A :class:`Fit` trains one module with Adam (gradient norm clipped at 1) and checkpoints it
with its named companions (EMA copies, consistency targets) to ``out/checkpoint.pt``::

    {<name>: state_dict for every module, "opt": ..., "step": int, "elapsed": seconds, **extra}

written atomically (``checkpoint.tmp`` then rename), so a killed run can resume.
"""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from stemstream.export.evaluation.metrics import si_sdr_improvement_stems

if TYPE_CHECKING:  # pragma: no cover
    from stemstream.export.train.options import TrainOptions

LOG = logging.getLogger("stemstream.diffusion")


class Fit:
    """Adam on ``modules[trained]``, checkpointed together with the other ``modules``.

    Args:
        out: run folder; the checkpoint is ``out / "checkpoint.pt"``.
        modules: every module saved in the checkpoint, by its checkpoint key.
        trained: key of the module the optimiser trains.
        lr: Adam learning rate.
    """

    def __init__(self, out: Path, modules: dict[str, torch.nn.Module], trained: str, lr: float) -> None:
        self.out = out
        self.modules = modules
        self.trained = modules[trained]
        self.opt = torch.optim.Adam(self.trained.parameters(), lr=lr)
        self.step = 0
        self.elapsed = 0.0
        self.running_loss = 0.0
        #: extra entries written into every checkpoint
        self.extra: dict[str, Any] = {}
        self._start = time.monotonic()

    @property
    def checkpoint_path(self) -> Path:
        return self.out / "checkpoint.pt"

    def resume(self) -> dict[str, Any] | None:
        """Load the checkpoint if there is one (modules, optimiser, step, elapsed seconds);
        returns it (for the caller's extra entries), or None when there is none."""
        if not self.checkpoint_path.exists():
            return None
        ckpt = torch.load(self.checkpoint_path, map_location="cpu", weights_only=True)
        for name, module in self.modules.items():
            module.load_state_dict(ckpt[name])
        self.opt.load_state_dict(ckpt["opt"])
        self.step, self.elapsed = int(ckpt["step"]), float(ckpt["elapsed"])
        return ckpt

    def start_clock(self) -> None:
        """Start the wall clock, counting the seconds of the resumed run."""
        self._start = time.monotonic() - self.elapsed

    def seconds(self) -> float:
        """Wall-clock seconds of training so far (resumed runs included)."""
        return time.monotonic() - self._start

    def save(self) -> None:
        """Write the checkpoint atomically."""
        state = {name: module.state_dict() for name, module in self.modules.items()}
        state.update({"opt": self.opt.state_dict(), "step": self.step, "elapsed": self.seconds(), **self.extra})
        torch.save(state, self.out / "checkpoint.tmp")
        (self.out / "checkpoint.tmp").replace(self.checkpoint_path)

    def update(self, loss: torch.Tensor) -> float:
        """One optimiser step on ``loss`` (gradient norm clipped at 1); advances :attr:`step` and
        the running loss (exponential average, 0.98); returns the loss value."""
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.trained.parameters(), 1.0)
        self.opt.step()
        self.step += 1
        value = float(loss.detach())
        self.running_loss = 0.98 * self.running_loss + 0.02 * value if self.step > 1 else value
        return value


def ema_update(average: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """``average <- decay * average + (1 - decay) * model``, parameter by parameter."""
    with torch.no_grad():
        for pa, pm in zip(average.parameters(), model.parameters()):
            pa.lerp_(pm, 1 - decay)


def run_steps(
    fit: Fit,
    *,
    total: int,
    max_minutes: float,
    loss: Callable[[], torch.Tensor],
    after_update: Callable[[int], None],
    checkpoint_every: int,
    validate_every: int,
    validate: Callable[[], None],
    log_format: str,
) -> None:
    """Train until ``total`` steps or ``max_minutes`` of wall clock: ``fit.update(loss())``,
    then ``after_update(step)`` (EMA updates), a log line every 20 steps (``log_format %
    (step, running loss, seconds)``), a checkpoint every ``checkpoint_every`` steps, and
    ``validate()`` every ``validate_every`` steps and at step ``total``."""
    while fit.step < total and fit.seconds() < max_minutes * 60:
        fit.update(loss())
        after_update(fit.step)
        if fit.step % 20 == 0:
            LOG.info(log_format, fit.step, fit.running_loss, fit.seconds())
        if fit.step % checkpoint_every == 0:
            fit.save()
        if fit.step % validate_every == 0 or fit.step == total:
            validate()


def budget_minutes(options: "TrainOptions", default: float) -> float:
    """The wall-clock budget of a run in minutes: ``--time-budget`` seconds (training in all,
    resumed runs included; 0: steps only, no time limit) when given, else ``default``."""
    budget = options.time_budget
    if budget is None:
        return default
    if budget < 0:
        from stemstream.realtime.errors import bad_value

        raise bad_value("time_budget", budget, "seconds >= 0")
    return budget / 60.0 if budget > 0 else float("inf")


def mean_sisdri(estimate: torch.Tensor, clean: torch.Tensor) -> float:
    """Mean SI-SDRi (dB) of ``estimate`` against ``clean``, both ``(B, S, C, T)``, over the
    non-silent stems (RMS >= 1e-3), the mixture being ``clean.sum(dim=1)``; NaN if none."""
    mixture = clean.sum(dim=1).numpy()
    scores = []
    for est, ref, mix in zip(estimate.numpy(), clean.numpy(), mixture):
        active = np.sqrt(np.mean(ref.reshape(ref.shape[0], -1) ** 2, axis=1)) >= 1e-3
        scores.extend(si_sdr_improvement_stems(est, ref, mix)[active])
    return float(np.mean(scores)) if scores else float("nan")


def ship_half(src: str | Path, dest: str | Path) -> Path:
    """``src`` re-stored at ``dest`` as float16, metadata kept: half the size. Loaders return the
    rounded values as float32, so score the shipped file, not ``src``."""
    import json

    from stemstream.realtime.models.weights import read_weights, save_tensors

    tensors, meta = read_weights(src)
    save_tensors(dest, tensors, meta["architecture"], meta["config"], json.loads(meta.get("run_record") or "{}"),
                 half=True)
    return Path(dest)


def run_record(extra: dict[str, Any]) -> dict[str, Any]:
    """Machine and software facts for a run record."""
    return {"machine": f"{platform.node()} {platform.processor() or platform.machine()}", "torch": torch.__version__, **extra}


__all__ = ["Fit", "budget_minutes", "ema_update", "mean_sisdri", "run_record", "run_steps", "ship_half"]


def default_teacher(runs: str | Path = "runs") -> Path | None:
    """The teacher the student and the benchmark use when none is named: the last run of the
    shipped recipe under ``runs`` (``diffusion-teacher-dirac``, else ``diffusion-teacher``),
    else the shipped file; None if none exists."""
    root = Path(__file__).resolve().parents[2]
    candidates = [Path(runs) / name / "teacher.safetensors" for name in ("diffusion-teacher-dirac", "diffusion-teacher")]
    candidates.append(root / "realtime" / "weights" / "diffusion-teacher.safetensors")
    return next((p for p in candidates if p.is_file()), None)
