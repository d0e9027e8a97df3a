"""Separators the evaluation protocol scores: a model through the streaming engine, and a pick or
group of another separator's stems.

Every separator is ``separator(track) -> (len(stems), C, T)`` with a ``stems`` attribute, for
``stemstream.export.evaluation.protocol.evaluate_tracks``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from stemstream.realtime.errors import bad_value
from stemstream.realtime.stems import group_matrix


class ModelSeparator:
    """A ``StreamModel`` run through the streaming engine as an evaluation separator.

    ``ModelSeparator(model)(track) -> (len(stems), C, T)`` with ``stems`` the model's output
    stems (``model.info.stems``). Uses ``stemstream.realtime.engine.offline.separate_array`` (blocks of
    ``block_size`` samples, latency trimmed, same length as the input): the code path of
    ``stemstream separate`` and of live use.
    """

    def __init__(self, model: Any, block_size: int = 4096) -> None:
        from stemstream.realtime.engine.offline import separate_array

        self.model = model
        self.stems: tuple[str, ...] = tuple(model.info.stems)
        self.block_size = int(block_size)
        self._separate = separate_array

    def __call__(self, track: Any) -> np.ndarray:
        mixture = np.asarray(track.mixture, dtype=np.float32)
        out = self._separate(self.model, mixture, int(track.sample_rate), block_size=self.block_size)
        return np.asarray(out, dtype=np.float32)


def model_separator(model: Any, backend: str = "torch", name: str | None = None,
                    block_size: int = 4096) -> ModelSeparator:
    """A separator from a model through the streaming engine (see :class:`ModelSeparator`;
    its ``stems`` attribute gives the output stem order).

    Args:
        model: a registry model name or ``.safetensors`` path (loaded with
            ``stemstream.realtime.models.registry.load_model``), or an in-memory torch hop module
            (e.g. a ``HybridSeparator`` being shipped; opened with
            ``stemstream.realtime.backends.open_backend``, so it runs exactly as its weight file would).
        backend: inference backend (``torch``, ``onnx``, ...).
        name: model name for an in-memory module (backends that cache exports use it);
            default: the module's class name.
        block_size: engine block in samples.
    """
    if isinstance(model, (str, Path)):
        from stemstream.realtime.models.registry import load_model

        return ModelSeparator(load_model(str(model), backend=backend), block_size=block_size)
    from stemstream.realtime.backends import open_backend

    return ModelSeparator(open_backend(backend, model, name or type(model).__name__), block_size=block_size)


class SubsetSeparator:
    """Picks ``stems`` (in that order) out of ``separator``'s outputs, a group summing its
    members (``stemstream.realtime.stems.group_matrix``): ``(len(stems), C, T)``."""

    def __init__(self, separator: Any, stems: Sequence[str]) -> None:
        stems = tuple(stems)
        if not stems:
            raise bad_value("stems", "", f"stems the model outputs: {','.join(separator.stems)}")
        self.separator = separator
        self.rows = group_matrix(separator.stems, stems)
        self.stems = stems

    def __call__(self, track: Any) -> np.ndarray:
        out = np.asarray(self.separator(track))
        return np.einsum("ks,sct->kct", self.rows, out).astype(out.dtype, copy=False)
