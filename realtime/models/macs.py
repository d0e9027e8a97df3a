"""Counting multiply-accumulates (MACs) of hop models.

Two counts that must agree: the analytic one from the config
(:func:`stemstream.realtime.models.hybrid.macs_per_hop`) and a measured one that runs the module once
under ``torch.utils.flop_counter.FlopCounterMode`` (convolutions and matmuls; LSTM gates
counted from the layer sizes because the fused LSTM kernel is opaque to the counter).
Element-wise work (masks, magnitudes) is small and only in the analytic count.
"""

from __future__ import annotations

import torch
from torch import nn

from stemstream.realtime.models.hybrid import HybridSeparator, macs_per_hop


def analytic_macs_per_second(model: HybridSeparator) -> int:
    """MACs per second of audio from the config."""
    c = model.config
    return int(round(macs_per_hop(c) * c.sample_rate / c.hop_samples))


def measured_macs_per_hop(model: nn.Module, hops: int = 4) -> int:
    """MACs per hop measured by running ``hops`` hops once (batch 1)."""
    from torch.utils.flop_counter import FlopCounterMode

    cfg = model.config  # type: ignore[attr-defined]
    audio = torch.zeros(1, cfg.channels, hops * cfg.hop_samples)
    state = model.init_state(1)  # type: ignore[operator]
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(audio, state)
    macs = counter.get_total_flops() // 2
    for m in model.modules():
        if isinstance(m, nn.LSTM):
            macs += hops * 4 * m.hidden_size * (m.input_size + m.hidden_size) * m.num_layers
    return int(macs // hops)
