"""The shipped models, by name: cards for listing, loaders for PyTorch and the engine.

Names: ``dj-live`` (vocals, drums, bass, other; 5.8 ms; trained on real recordings and synthetic
songs), ``dj-live-48k`` (``dj-live`` fine-tuned at 48 kHz: what a 48 or 96 kHz host runs for
``dj-live``, :func:`rate_variant`), ``dj-live-pruned`` and ``dj-quality`` (when shipped); ``live`` (5.8 ms),
``live-pruned`` (pruned + fine-tuned ``live``), ``quality`` (same architecture, longer synthesis
window and look-ahead): the instrument set (bass, drums, guitar, piano); hop models whose weights
live in ``realtime/weights/<name>.safetensors``. ``diffusion-1step`` / ``diffusion-2step``: the
consistency-distilled diffusion student (``stemstream.realtime.diffusion.student``), one weight file
(``diffusion-student.safetensors``) run with 1 or 2 network evaluations per segment, a segment
model. ``quality-refined`` / ``quality-refined-2step``: ``quality`` followed by the diffusion
refiner (``stemstream.realtime.diffusion.refined_model``: a consistency-distilled conditional
diffusion model of ``quality``'s residual) at 1 or 2 network evaluations per segment, a segment
model; its weight file is ``quality-refiner.safetensors`` beside ``quality``'s. A path to a
``.safetensors`` file also works as a name (a student or refiner file runs 1 step).
Any hop model's name followed by ``+wiener`` (or ``+wiener2048``) runs it through the long-window
multichannel Wiener filter, ``+mask`` (or ``+mask4096``) through the long-window ratio mask
(``stemstream.realtime.models.wiener``): better stems for files, at ``window * 3/4`` samples
more latency.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from stemstream.realtime.errors import ConfigError
from stemstream.realtime.models.hybrid import ARCHITECTURE, HybridConfig, HybridSeparator, macs_per_hop
from stemstream.realtime.models.weights import WeightFileError, read_weights
from stemstream.realtime.models.wiener import added_delay, check_window, split_name, wiener

#: Folder holding the shipped weight files.
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"

#: Shipped hop-model names, in the order they are listed: the DJ stem set (vocals, drums, bass,
#: other), then the instrument set of the seeds' protocol (bass, drums, guitar, piano).
SHIPPED: tuple[str, ...] = ("dj-live", "dj-live-48k", "dj-live-pruned", "dj-quality", "live", "live-pruned", "quality")

#: Models trained at another rate than :data:`MODEL_SAMPLE_RATE`, by base name: ``{rate: name}``.
#: ``dj-live-48k`` is ``dj-live`` fine-tuned at 48 kHz, where a 256-sample block is two hops.
RATE_VARIANTS: dict[str, dict[int, str]] = {"dj-live": {48000: "dj-live-48k"}}

#: The model each stem set runs by default (``stemstream separate / live / demo``).
DEFAULT_MODELS: dict[str, str] = {"dj": "dj-live", "instruments": "live"}


def default_model(stems: tuple[str, ...] | None = None) -> str:
    """The default model for the wanted ``stems``: ``live`` when they are instrument-set stems
    the DJ set lacks (guitar, piano), else ``dj-live``; falls back to the instrument family when
    no DJ weights are shipped in this build."""
    from stemstream.realtime.stems import DJ_STEMS, GROUP_STEMS, INSTRUMENT_STEMS

    wanted = tuple(stems or DJ_STEMS)
    dj_can = all(s in DJ_STEMS or s in GROUP_STEMS for s in wanted)
    if not dj_can and all(s in INSTRUMENT_STEMS for s in wanted):
        return DEFAULT_MODELS["instruments"]
    name = DEFAULT_MODELS["dj"]
    return name if _weights_path(name).exists() else DEFAULT_MODELS["instruments"]


def rate_variant(name: str, host_rate: int) -> str:
    """The model to run for ``name`` at a host rate of ``host_rate`` Hz: its rate sibling
    (:data:`RATE_VARIANTS`) when the host rate is a whole multiple of the sibling's rate but not
    of :data:`MODEL_SAMPLE_RATE` (48 and 96 kHz for ``dj-live-48k``: no resampler, or a clean
    2:1 one, and host blocks in whole hops) and the sibling's weights are shipped; else ``name``."""
    from stemstream.realtime.stems import MODEL_SAMPLE_RATE

    if not isinstance(name, str) or int(host_rate) % MODEL_SAMPLE_RATE == 0:
        return name
    base, spec = split_name(name)
    if spec is not None:  # the sibling, post-filtered alike
        return rate_variant(base, host_rate) + name[len(base):]
    for rate, variant in RATE_VARIANTS.get(name, {}).items():
        if int(host_rate) % rate == 0 and _weights_path(variant).exists():
            return variant
    return name


def model_label(name: str, host_rate: int) -> str:
    """``name`` as the start lines show it at ``host_rate``: ``dj-live (48 kHz variant)`` when
    :func:`rate_variant` runs a sibling, else ``name``."""
    variant = rate_variant(name, host_rate)
    if variant == name:
        return name
    base, _ = split_name(name)
    sibling = rate_variant(base, host_rate)
    rate = next(r for r, v in RATE_VARIANTS[base].items() if v == sibling)
    return f"{name} ({rate / 1000:g} kHz variant)"


#: Diffusion student names and their network evaluations per segment (listed after ``SHIPPED``).
DIFFUSION_STEPS: dict[str, int] = {"diffusion-1step": 1, "diffusion-2step": 2}

#: Weight file (stem) of the diffusion student.
DIFFUSION_WEIGHTS = "diffusion-student"

#: Refined models: a shipped hop model followed by its diffusion refiner (weight file
#: ``<base>-refiner.safetensors``), by name: ``(base, network evaluations per segment)``.
REFINED: dict[str, tuple[str, int]] = {"quality-refined": ("quality", 1), "quality-refined-2step": ("quality", 2),
                                       "dj-quality-refined": ("dj-quality", 1)}


def refiner_path(base: str) -> Path:
    """The refiner weight file of base model ``base``."""
    return WEIGHTS_DIR / f"{base}-refiner.safetensors"


@dataclass(frozen=True)
class ModelCard:
    """What ``stemstream models`` lists about one model.

    Attributes:
        name: registry name.
        stems: stem names in output order.
        sample_rate: model rate in Hz.
        channels: audio channels.
        hop_samples: new audio per model call (a hop; for a segment model the segment's stride).
        latency_samples: the model's delay, the same number as its ``ModelInfo.latency_samples``
            (output ``t`` = separation of input ``t - latency``; 0 for a segment model, which
            separates a whole window in place).
        buffer_samples: input a stream must gather before an output sample can be final, on top
            of ``latency_samples``: one hop for a hop model, one whole window for a segment model.
        params: number of parameters.
        macs_per_second: multiply-accumulates per second of audio.
        architecture: architecture identifier.
        path: weight file.
        run_record: the training run record stored in the weight file.
    """

    name: str
    stems: tuple[str, ...]
    sample_rate: int
    channels: int
    hop_samples: int
    latency_samples: int
    buffer_samples: int
    params: int
    macs_per_second: int
    architecture: str
    path: str
    run_record: dict[str, Any]

    @property
    def latency_ms(self) -> float:
        """The model's delay in ms (``latency_samples``; excluding any input buffering)."""
        return 1000.0 * self.latency_samples / self.sample_rate

    @property
    def total_latency_ms(self) -> float:
        """Algorithmic latency in ms: the delay plus ``buffer_samples`` of input buffering (the
        lowest any streaming use can have, before the host's own blocks)."""
        return 1000.0 * (self.latency_samples + self.buffer_samples) / self.sample_rate


def _weights_path(name: str) -> Path:
    if name.endswith(".safetensors"):
        return Path(name)
    return WEIGHTS_DIR / f"{DIFFUSION_WEIGHTS if name in DIFFUSION_STEPS else name}.safetensors"


def available_models() -> list[str]:
    """Names of shipped models whose weight files are present (hop models, diffusion, refined)."""
    names = [n for n in (*SHIPPED, *DIFFUSION_STEPS) if _weights_path(n).exists()]
    return names + [n for n, (base, _) in REFINED.items() if _weights_path(base).exists() and refiner_path(base).exists()]


def _refined(name: str) -> tuple[Path, str, int, str] | None:
    """``(refiner file, base name, steps, card name)`` if ``name`` is a refined model (a
    :data:`REFINED` name, or a refiner student's weight file: its base from its config), else None."""
    if not isinstance(name, str):
        return None
    if name in REFINED:
        base, steps = REFINED[name]
        path = refiner_path(base)
        for needed in (path, _weights_path(base)):
            if not needed.exists():
                raise ConfigError(f"model={name!r}: weights {str(needed)!r} are not shipped in this build")
        return path, base, steps, name
    if name.endswith(".safetensors") and Path(name).exists():
        from stemstream.realtime.diffusion.refiner import REFINER_STUDENT_ARCHITECTURE
        from stemstream.realtime.diffusion.refiner_net import RefinerConfig
        from stemstream.realtime.models.weights import read_metadata

        meta = read_metadata(name)
        if meta.get("architecture") == REFINER_STUDENT_ARCHITECTURE:
            base = RefinerConfig.from_json(json.dumps(json.loads(meta["config"])["net"])).base
            return Path(name), base, 1, Path(name).stem
    return None


def _student(name: str) -> tuple[Path, int, str] | None:
    """``(weight file, steps, card name)`` if ``name`` is a diffusion student, else None."""
    if not isinstance(name, str):
        return None
    if name in DIFFUSION_STEPS:
        path = _weights_path(name)
        if not path.exists():
            raise ConfigError(f"model={name!r}: weights {str(path)!r} are not shipped in this build")
        return path, DIFFUSION_STEPS[name], name
    if name.endswith(".safetensors") and Path(name).exists():
        from stemstream.realtime.diffusion.student import STUDENT_ARCHITECTURE
        from stemstream.realtime.models.weights import read_metadata

        if read_metadata(name).get("architecture") == STUDENT_ARCHITECTURE:
            return Path(name), 1, Path(name).stem
    return None


def _unknown(name: str) -> ConfigError:
    names = available_models()
    listed = ", ".join(names) if names else "(none shipped)"
    return ConfigError(f"model={name!r}: unknown model; available: {listed}")


def _read(name: str) -> tuple[dict[str, torch.Tensor], dict[str, str], Path]:
    if not isinstance(name, str) or (name not in SHIPPED and not name.endswith(".safetensors")):
        raise _unknown(name)
    path = _weights_path(name)
    if not path.exists():
        if name in SHIPPED:
            raise ConfigError(f"model={name!r}: weights {str(path)!r} are not shipped in this build")
        raise _unknown(name)
    tensors, meta = read_weights(path)
    if meta["architecture"] != ARCHITECTURE:
        raise WeightFileError(
            f"weights={str(path)!r}: architecture {meta['architecture']!r}, this code has {ARCHITECTURE!r}"
        )
    return tensors, meta, path


def model_card(name: str) -> ModelCard:
    """The card of model ``name``."""
    base, spec = split_name(name)
    if spec is not None:
        if _refined(base) is not None or _student(base) is not None:
            raise ConfigError(f"model={name!r}: {spec.suffix} re-filters hop models' stems; {base!r} is a segment model")
        card = model_card(base)
        hop = check_window(spec.window, card.hop_samples) // 4
        return replace(card, name=f"{card.name}{spec.label()}", hop_samples=hop, buffer_samples=hop,
                       latency_samples=card.latency_samples + added_delay(spec.window))
    refined = _refined(name)
    if refined is not None:
        from stemstream.realtime.diffusion.refined_model import describe_refined

        path, base, steps, card_name = refined
        return ModelCard(name=card_name, **describe_refined(path, model_card(base), steps))  # type: ignore[arg-type]
    student = _student(name)
    if student is not None:
        from stemstream.realtime.diffusion.student import describe_student

        path, steps, card_name = student
        return ModelCard(name=card_name, **describe_student(path, steps))  # type: ignore[arg-type]
    tensors, meta, path = _read(name)
    cfg = HybridConfig.from_dict(json.loads(meta["config"]))
    params = int(sum(t.numel() for t in tensors.values()))
    card_name = path.stem if name.endswith(".safetensors") else name
    return ModelCard(
        name=card_name,
        stems=cfg.stems,
        sample_rate=cfg.sample_rate,
        channels=cfg.channels,
        hop_samples=cfg.hop_samples,
        latency_samples=cfg.latency_samples,
        buffer_samples=cfg.hop_samples,
        params=params,
        macs_per_second=int(round(macs_per_hop(cfg) * cfg.sample_rate / cfg.hop_samples)),
        architecture=meta["architecture"],
        path=str(path),
        run_record=json.loads(meta.get("run_record", "{}") or "{}"),
    )


def list_models() -> list[ModelCard]:
    """Cards of every shipped model present, in ``SHIPPED`` order."""
    return [model_card(n) for n in available_models()]


def load_torch_model(name: str) -> HybridSeparator:
    """The PyTorch module of hop model ``name`` (eval mode, CPU)."""
    if _student(name) is not None or _refined(name) is not None:
        raise ConfigError(f"model={name!r}: a diffusion segment model, not a hop model (open it with load_model)")
    tensors, meta, _ = _read(name)
    cfg = HybridConfig.from_dict(json.loads(meta["config"]))
    model = HybridSeparator(cfg)
    expected = model.state_dict()
    if set(expected) != set(tensors) or any(expected[k].shape != tensors[k].shape for k in expected):
        raise WeightFileError(f"model={name!r}: tensors do not match the config's layer shapes")
    model.load_state_dict(tensors)
    return model.eval()


def load_model(name: str, backend: str = "torch") -> Any:
    """Model ``name`` as a ``stemstream.realtime.protocol.HopModel`` (``SegmentModel`` for the diffusion
    student and the refined models: backends ``torch`` and ``onnx``) through ``backend``.

    Uses ``stemstream.realtime.backends.open_backend`` (the engine's dispatcher: ``torch``, ``onnx``,
    ``onnx-cuda``, ``tensorrt``, ``auto``).
    """
    from stemstream.realtime.backends import open_backend

    base, spec = split_name(name)
    if spec is not None:
        return wiener(load_model(base, backend), spec)
    refined = _refined(name)
    if refined is not None:
        from stemstream.realtime.backends import segment_backend
        from stemstream.realtime.diffusion.refined_model import load_refined

        path, base, steps, card_name = refined
        refiner_backend = segment_backend(backend)  # torch or onnx; a GPU-only name is refused here
        return load_refined(path, open_backend(backend, load_torch_model(base), base), steps=steps,
                            backend=refiner_backend, name=card_name)
    student = _student(name)
    if student is not None:
        from stemstream.realtime.diffusion.student_loader import load_student

        path, steps, card_name = student
        return load_student(path, steps=steps, backend=backend, name=card_name)

    module = load_torch_model(name)
    card_name = Path(name).stem if name.endswith(".safetensors") else name
    return open_backend(backend, module, card_name)
