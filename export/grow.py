"""Function-preserving growth of a separator: a wider residual stream and more LSTM layers.

The counterpart of :mod:`stemstream.export.prune`: a trained model moves into a larger
:class:`HybridConfig` (``width`` and ``lstm_layers`` larger, everything else the same) and
separates *exactly* as before, so fine-tuning starts from the trained model's score and the new
capacity only has to earn its keep.

* **New width units** (``width`` ``d -> d'``): every weight *into* a new unit is drawn as a fresh
  layer of the larger size would draw it (the feature projections' rows, the LSTMs' gate rows),
  every weight *out of* one is zero (the LSTMs' input and recurrent columns of the old units, the
  mask heads' columns). The new units compute from the start; nothing reads them until
  training moves their outgoing weights off zero.
* **New LSTM layers** (appended after the trained ones): input, forget and output gates drawn,
  the cell candidate ``g`` zero. The cell stays at zero, so the layer's output ``o * tanh(c)`` is
  zero and the residual stream passes through unchanged; the gradient reaches ``g``'s weights at
  once (``dh/dg = o * i``), and through the cell the other gates after that.

Growth needs no data (unlike pruning, nothing is ranked).
"""

from __future__ import annotations

import torch

from stemstream.realtime.errors import bad_value
from stemstream.realtime.models.hybrid import HybridConfig, HybridSeparator

#: Gates of a PyTorch LSTM, in the order of their row blocks.
GATES = ("i", "f", "g", "o")


def can_grow(source: HybridConfig, target: HybridConfig) -> bool:
    """Whether ``target`` is ``source`` with a larger width and/or more LSTM layers (and at least
    one of the two larger), everything else equal."""
    same = all(getattr(source, f) == getattr(target, f) for f in source.__dataclass_fields__
               if f not in ("width", "lstm_layers"))
    bigger = target.width >= source.width and target.lstm_layers >= source.lstm_layers
    return same and bigger and (target.width, target.lstm_layers) != (source.width, source.lstm_layers)


def _head_columns(config: HybridConfig, width: int) -> torch.Tensor:
    """Where a head's input columns of ``config`` sit in a head of the grown ``width``
    (two blocks of ``width`` with lookahead: the frame's and the lookahead frame's features)."""
    cols = torch.arange(config.width)
    return torch.cat([cols, width + cols]) if config.lookahead_frames else cols


@torch.no_grad()
def grow(model: HybridSeparator, config: HybridConfig) -> HybridSeparator:
    """A :class:`HybridSeparator` of ``config`` that separates exactly as ``model`` does (see the
    module docstring). Draws its new weights from torch's global generator (seed it first)."""
    c = model.config
    if not can_grow(c, config):
        raise bad_value("config", f"width {config.width}, {config.lstm_layers} LSTM layers",
                        f"a larger width (>= {c.width}) and/or more LSTM layers (>= {c.lstm_layers}) than the "
                        "source model, every other field the same")
    new = HybridSeparator(config)  # fresh draws for everything new
    d, d2 = c.width, config.width
    old_units = torch.arange(d)
    gate_rows = torch.cat([g * d2 + old_units for g in range(len(GATES))])  # old units' rows, every gate

    for name in ("spec_in", "wave_in"):
        getattr(new, name).weight[:d] = getattr(model, name).weight
        getattr(new, name).bias[:d] = getattr(model, name).bias
    new.encoder.weight.copy_(model.encoder.weight)
    new.decoder.weight.copy_(model.decoder.weight)

    for old_l, new_l in zip(model.lstms, new.lstms):
        for kind in ("ih", "hh"):
            w = getattr(new_l, f"weight_{kind}_l0")
            w[gate_rows] = 0.0  # the old units read no new unit
            w[gate_rows[:, None], old_units[None, :]] = getattr(old_l, f"weight_{kind}_l0")
            getattr(new_l, f"bias_{kind}_l0")[gate_rows] = getattr(old_l, f"bias_{kind}_l0")
    g = GATES.index("g")
    for new_l in list(new.lstms)[c.lstm_layers :]:  # appended layers: the cell candidate silent
        for kind in ("ih", "hh"):
            getattr(new_l, f"weight_{kind}_l0")[g * d2 : (g + 1) * d2] = 0.0
            getattr(new_l, f"bias_{kind}_l0")[g * d2 : (g + 1) * d2] = 0.0

    cols = _head_columns(c, d2)
    for name in ("spec_head", "wave_head"):
        head = getattr(new, name)
        head.weight.zero_()
        head.weight[:, cols] = getattr(model, name).weight
        head.bias.copy_(getattr(model, name).bias)
    return new
