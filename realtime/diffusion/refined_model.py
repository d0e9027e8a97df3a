"""A base separator followed by the diffusion refiner, as one
:class:`stemstream.realtime.protocol.SegmentModel` the streaming engine runs (``quality-refined``).

The engine's :class:`stemstream.realtime.engine.overlap_add.SegmentRunner` hands the model
segments of ``segment_samples`` that overlap by ``context_samples`` (its default overlap for a
model with context), with the previous segment's output over that overlap. Inside:

1. The base (a :class:`stemstream.realtime.protocol.HopModel`, its own streaming state) runs
   on the segment's *new* samples only (the whole segment for a stream's first), so it sees the
   stream once, continuously, exactly as it would alone. Its stems are delayed by its latency
   ``L``; the mixture goes through a delay line of ``L`` samples to match.
2. The last ``segment_samples`` of both are the refiner's window: normalised to the training
   mixture RMS, refined in 1 or 2 consistency evaluations
   (:func:`stemstream.realtime.diffusion.refiner.sample_refiner_student`), conditioned on the
   previous segment's refined stems over the overlap (as a residual against this window's base),
   scaled back.

So the output of a segment is aligned with the *delayed* input: ``info.latency_samples = L``
(the base's delay); the engine adds the window it gathers (``segment_samples``): the total
latency is the base's plus one segment. ``context=None`` marks a stream's first segment (the
engine gives None only there): the base's state and the delay line restart. A segment that does
not continue the previous one (its first ``overlap`` samples differ from the previous segment's
last) is an error, not a silent restart.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from stemstream.realtime.diffusion.refiner import RefinerStep, load_refiner_student, sample_refiner_student
from stemstream.realtime.diffusion.refiner_net import TARGET_RMS, count_parameters, macs_per_second
from stemstream.realtime.errors import bad_value
from stemstream.realtime.protocol import HopModel, ModelInfo


class RefinedSegmentModel:
    """``base`` followed by the refiner ``step`` (see the module docstring).

    Args:
        base: the base hop model (any backend); its stems, rate and channels must be the refiner's.
        step: the refiner student.
        steps: consistency evaluations per segment (1 or 2; up to ``len(step.config.sigmas)``).
        name: the model's name (``quality-refined``).
        autoregressive: condition each segment on the previous one's output (False: every segment
            refined alone, the base still continuous; the "independent segments" of the thesis).
        overlap_samples: the engine's overlap between segments (default ``context_samples``).
        seed: the noise of each evaluation is drawn once from it, so the model is deterministic.
    """

    kind: Literal["segment"] = "segment"

    def __init__(self, base: HopModel, step: RefinerStep, steps: int = 1, name: str = "refined",
                 autoregressive: bool = True, overlap_samples: int | None = None, seed: int = 0) -> None:
        net = step.config.net
        if tuple(base.info.stems) != tuple(net.stems):
            raise bad_value("base.info.stems", base.info.stems, f"the refiner's stems {net.stems}")
        if base.info.sample_rate != net.sample_rate or base.info.channels != net.channels:
            raise bad_value("base rate/channels", (base.info.sample_rate, base.info.channels),
                            f"the refiner's ({net.sample_rate}, {net.channels})")
        if not 1 <= steps <= len(step.config.sigmas):
            raise bad_value("steps", steps, f"an integer in [1, {len(step.config.sigmas)}]")
        overlap = net.context_samples if overlap_samples is None else int(overlap_samples)
        hop = int(base.hop_samples)
        if not net.context_samples <= overlap < net.segment_samples or net.segment_samples % hop or overlap % hop:
            raise bad_value("overlap_samples", overlap_samples, f"a multiple of the base hop {hop} in "
                            f"[{net.context_samples}, {net.segment_samples})")
        self.base, self.step, self.steps = base, step.eval(), int(steps)
        self.autoregressive = bool(autoregressive)
        self.segment_samples, self.context_samples, self.overlap = net.segment_samples, net.context_samples, overlap
        self.info = ModelInfo(name=name, stems=tuple(net.stems), sample_rate=net.sample_rate, channels=net.channels,
                              latency_samples=int(base.info.latency_samples))
        gen = torch.Generator().manual_seed(seed)
        self._noise = torch.randn((steps, 1, len(net.stems), net.channels, net.segment_samples), generator=gen)
        self._restart()

    def _restart(self) -> None:
        s, c, w = len(self.info.stems), self.info.channels, self.segment_samples
        self._state = self.base.init_state()
        self._delay = np.zeros((c, self.info.latency_samples), np.float32)
        self._mix = np.zeros((c, w), np.float32)
        self._stems = np.zeros((s, c, w), np.float32)
        self._last: np.ndarray | None = None

    def _advance(self, new: np.ndarray) -> None:
        """Run the base over ``new (C, n)`` and shift ``n`` samples of it and of the delayed mixture in."""
        hop, most = self.base.hop_samples, self.base.max_hops_per_call * self.base.hop_samples
        pieces = []
        for start in range(0, new.shape[1], most):
            out, self._state = self.base.process_hops(np.ascontiguousarray(new[:, start : start + most]), self._state)
            pieces.append(np.asarray(out, np.float32))
        stems = np.concatenate(pieces, axis=-1)
        n = new.shape[1]
        assert n % hop == 0 and stems.shape[-1] == n, (n, stems.shape)
        line = np.concatenate([self._delay, new], axis=1)
        delayed, self._delay = line[:, :n], line[:, n:]
        w = self.segment_samples
        self._mix = np.concatenate([self._mix, delayed], axis=1)[:, -w:]
        self._stems = np.concatenate([self._stems, stems], axis=2)[:, :, -w:]

    def separate_segment(self, audio: np.ndarray, context: np.ndarray | None) -> np.ndarray:
        """Separate ``audio (channels, segment_samples)``: see the module docstring. Returns
        ``(stems, channels, segment_samples)``, aligned with the input delayed by ``latency_samples``."""
        audio = np.asarray(audio, np.float32)
        s, c, w, o = len(self.info.stems), self.info.channels, self.segment_samples, self.overlap
        if audio.shape != (c, w):
            raise bad_value("audio.shape", audio.shape, f"({c}, {w})")
        if context is None:
            self._restart()
            self._advance(audio)
        else:
            if self._last is None or not np.array_equal(audio[:, :o], self._last[:, w - o :]):
                raise bad_value("audio", "a segment that does not continue the previous one",
                                f"segments overlapping by {o} samples, context None only on a stream's first")
            self._advance(audio[:, o:])
        self._last = audio.copy()  # the engine reuses its buffer
        k = self.context_samples
        if context is not None and self.autoregressive:
            context = np.asarray(context, np.float32)
            if context.shape != (s, c, k):
                raise bad_value("context.shape", context.shape, f"({s}, {c}, {k})")
        else:
            context = None
        rms = float(np.sqrt(np.mean(self._mix**2)))
        if rms < 1e-6:  # silence (a stream's start or end): the base, and the context kept over the overlap
            out = self._stems.copy()
            if context is not None:
                out[:, :, :k] = context
            return out
        gain = TARGET_RMS / rms
        ctx = None if context is None else torch.from_numpy((context - self._stems[:, :, :k]) * gain)[None]
        mixture = torch.from_numpy(self._mix * gain)[None]
        base = torch.from_numpy(self._stems * gain)[None]
        with torch.inference_mode():
            refined = self.refine(mixture, base, ctx)[0]
        return np.ascontiguousarray(refined.numpy() / gain, dtype=np.float32)

    def refine(self, mixture: torch.Tensor, base: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        """One window's refinement at the normalised scale: ``mixture (1, C, W)``, ``base (1, S, C, W)``,
        ``context`` a context residual ``(1, S, C, O)`` or None -> refined stems ``(1, S, C, W)``.
        The student's consistency sampling; the benchmark puts the teacher's samplers here."""
        return sample_refiner_student(self.step, mixture, base, context, self.steps, self._noise)


def load_refined(path: str | Path, base: HopModel, steps: int = 1, backend: str = "torch", name: str | None = None,
                 autoregressive: bool = True, onnx_path: str | Path | None = None) -> RefinedSegmentModel:
    """A :class:`RefinedSegmentModel` from a refiner student's weight file and an opened ``base``.

    ``backend``: ``torch``, ``onnx`` (the network through ONNX Runtime on one thread: ``onnx_path``
    if given, else ``path`` with suffix ``.onnx`` if it exists, else a graph exported into the cache)
    or ``auto`` (``stemstream.realtime.backends.segment_backend``). ``name`` defaults to
    ``<base>-refined`` (``-2step`` appended for 2 steps).
    """
    from stemstream.realtime.backends import segment_backend

    step, _ = load_refiner_student(path)
    if segment_backend(backend) == "onnx":
        from stemstream.realtime.diffusion.refiner_onnx import OnnxCore, cached_core_graph

        graph = Path(onnx_path) if onnx_path is not None else Path(path).with_suffix(".onnx")
        if onnx_path is None and not graph.exists():
            graph = cached_core_graph(step.denoiser.core, Path(path).stem)
        if not graph.exists():
            raise bad_value("onnx_path", str(graph), "an exported refiner graph (stemstream.realtime.diffusion.refiner_onnx)")
        step.denoiser.run_core = OnnxCore(graph)
    default = f"{step.config.net.base}-refined" + ("" if steps == 1 else f"-{steps}step")
    return RefinedSegmentModel(base, step, steps=steps, name=name or default, autoregressive=autoregressive)


def describe_refined(path: str | Path, base_card: Any, steps: int = 1) -> dict[str, object]:
    """Fields of a registry model card for the base of ``base_card`` (a ``ModelCard``) followed by
    the refiner in ``path`` at ``steps`` evaluations per segment.

    ``hop_samples`` is the new audio per segment (``segment - overlap``); ``latency_samples`` the
    base's delay (the model's ``ModelInfo``); ``buffer_samples`` the window the engine gathers
    (``segment_samples``); params and MACs per second are the base's plus the refiner's
    (its network once per segment and evaluation; the FFTs around it not counted).
    """
    step, meta = load_refiner_student(path)
    net = step.config.net
    hop = net.segment_samples - net.context_samples
    refiner_macs = steps * macs_per_second(net) * net.segment_samples / hop
    record = json.loads(meta.get("run_record", "{}") or "{}")
    return {
        "stems": net.stems, "sample_rate": net.sample_rate, "channels": net.channels, "hop_samples": hop,
        "latency_samples": int(base_card.latency_samples), "buffer_samples": net.segment_samples,
        "params": int(base_card.params) + count_parameters(step.denoiser),
        "macs_per_second": int(round(base_card.macs_per_second + refiner_macs)),
        "architecture": f"{base_card.architecture} + {meta['architecture']}", "path": str(path),
        "run_record": record,
    }
