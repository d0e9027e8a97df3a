"""A model whose outputs are groups of another model's stems: the user's stem selection.

``grouped(model, ("vocals", "instrumental"))`` runs ``model`` and sums its stems into the wanted
ones (``stemstream.realtime.stems.group_matrix``: a stem itself, or ``instrumental`` = every stem
but ``vocals``). The engine, ``stemstream separate``, ``demo`` and ``live`` all see it as an
ordinary model with fewer stems, so file and live use select stems the same way, and a whole
set (``vocals`` + ``instrumental``, or the four DJ stems) still sums to the input exactly.

The sum runs on the engine's worker with the model, never in the audio callback. Selecting the
model's own stems in its own order returns ``model`` itself. Segment models (the diffusion
student) condition each segment on all their stems and are not grouped.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from stemstream.realtime.errors import bad_value
from stemstream.realtime.protocol import ModelInfo, State, StreamModel
from stemstream.realtime.stems import group_matrix


class GroupedHopModel:
    """A hop model's stems summed into ``stems`` (see the module docstring)."""

    kind = "hop"

    def __init__(self, model: Any, stems: tuple[str, ...]) -> None:
        self.model = model
        self.rows = group_matrix(model.info.stems, stems)
        self.info: ModelInfo = replace(model.info, stems=tuple(stems))
        self.hop_samples: int = model.hop_samples
        self.max_hops_per_call: int = model.max_hops_per_call

    def init_state(self) -> State:
        return self.model.init_state()

    def process_hops(self, audio: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """``(channels, n * hop)`` -> grouped stems ``(len(stems), channels, n * hop)``."""
        out, state = self.model.process_hops(audio, state)
        return np.einsum("ks,sct->kct", self.rows, out).astype(np.float32, copy=False), state


def grouped(model: StreamModel, stems: tuple[str, ...] | None) -> StreamModel:
    """``model`` with its stems summed into ``stems`` (None, or its own stems: ``model`` itself)."""
    if stems is None or tuple(stems) == tuple(model.info.stems):
        return model
    if getattr(model, "kind", "hop") != "hop":
        raise bad_value("stems", ",".join(stems), f"the stems of segment model {model.info.name!r} "
                        f"({','.join(model.info.stems)}): its segments condition on all of them")
    return GroupedHopModel(model, tuple(stems))
