"""Structured pruning of the live separator: DFT bins, model width, encoder channels.

Three structures are removed whole, each ranked by an importance score measured on
training audio:

* **DFT bins** (rows of the analysis basis, columns of the synthesis basis, and the matching
  feature / mask-head weights): importance = mean mixture power in the bin. Removed bins are
  simply not masked or resynthesised by the spectral branch; the learned-encoder branch and
  the mixture-consistency projection carry what remains (fine-tuning teaches them to).
* **Width units** ``D`` (one index set shared by the feature projections, every LSTM layer's
  hidden units - the residual stream ties them - and the mask heads' inputs): importance =
  mean ``|activation|`` of the unit on the residual stream times the norm of the weights
  reading it.
* **Encoder channels** ``N_w``: mean ``|activation|`` times the norm of the weights reading it
  (feature projection and decoder).

Bins are cut last, by bisection, until the MAC count reaches the target.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from stemstream.realtime.models.hybrid import HybridConfig, HybridSeparator, macs_per_hop


@torch.no_grad()
def importance(model: HybridSeparator, mixtures: torch.Tensor) -> dict[str, torch.Tensor]:
    """Importance scores ``{"bins": (b,), "width": (D,), "encoder": (N_w,)}`` on ``mixtures`` ``(B, C, T)``."""
    c = model.config
    b, d, ch = c.bins, c.width, c.channels
    hop = c.hop_samples
    x = mixtures[..., : (mixtures.shape[-1] // hop) * hop]
    state = model.init_state(x.shape[0])
    full = torch.cat([state["history"], x], dim=-1)
    spec = torch.nn.functional.conv1d(
        full.reshape(-1, 1, full.shape[-1]), model.stft.analysis_basis, stride=hop
    )  # (B*C, 2b, n)
    power = spec[:, :b].pow(2) + spec[:, b:].pow(2)
    bins = power.mean(dim=(0, 2))
    enc = torch.relu(model.encoder(full[..., c.analysis_samples - c.encoder_kernel :]))  # (B, N_w, n)
    enc_read = model.wave_in.weight.norm(dim=0) + model.decoder.weight.flatten(1).norm(dim=1)
    encoder = enc.abs().mean(dim=(0, 2)) * enc_read
    mag = torch.sqrt(spec[:, :b].pow(2) + spec[:, b:].pow(2) + 1e-8)
    feat = torch.log1p(mag).reshape(x.shape[0], ch * b, -1).transpose(1, 2)
    z = torch.relu(model.spec_in(feat)) + torch.relu(model.wave_in(enc.transpose(1, 2)))
    width = torch.zeros(d)
    for i, lstm in enumerate(model.lstms):
        width += z.abs().mean(dim=(0, 1)) * lstm.weight_ih_l0.norm(dim=0)
        out, _ = lstm(z, (state[f"lstm{i}_h"], state[f"lstm{i}_c"]))
        z = z + out
    heads = torch.cat([model.spec_head.weight, model.wave_head.weight], 0)[:, :d]
    width += z.abs().mean(dim=(0, 1)) * heads.norm(dim=0)
    return {"bins": bins, "width": width, "encoder": encoder}


def plan(config: HybridConfig, macs_fraction_removed: float, width_keep: float = 0.7,
         encoder_keep: float = 0.5) -> tuple[int, int, int]:
    """Sizes ``(bins, width, encoder_channels)`` removing at least ``macs_fraction_removed`` of the MACs."""
    target = (1.0 - macs_fraction_removed) * macs_per_hop(config)
    width = max(8, int(round(config.width * width_keep / 8)) * 8)
    enc = max(8, int(round(config.encoder_channels * encoder_keep / 8)) * 8)
    lo, hi = 1, config.bins
    while lo < hi:  # largest bin count meeting the target
        mid = (lo + hi + 1) // 2
        trial = replace(config, kept_bins=tuple(range(mid)), width=width, encoder_channels=enc)
        if macs_per_hop(trial) <= target:
            lo = mid
        else:
            hi = mid - 1
    return lo, width, enc


def _top(scores: torch.Tensor, k: int) -> torch.Tensor:
    return torch.sort(torch.topk(scores, k).indices).values


@torch.no_grad()
def prune(model: HybridSeparator, mixtures: torch.Tensor, macs_fraction_removed: float,
          width_keep: float = 0.7, encoder_keep: float = 0.5) -> HybridSeparator:
    """A new, smaller :class:`HybridSeparator` with the least important structures removed."""
    c = model.config
    scores = importance(model, mixtures)
    n_bins, n_width, n_enc = plan(c, macs_fraction_removed, width_keep, encoder_keep)
    kb = _top(scores["bins"], n_bins)
    ku = _top(scores["width"], n_width)
    ke = _top(scores["encoder"], n_enc)
    old_bins = list(c.kept_bins) if c.kept_bins is not None else list(range(c.bins))
    new_cfg = replace(
        c, kept_bins=tuple(old_bins[i] for i in kb.tolist()), width=n_width, encoder_channels=n_enc
    )
    new = HybridSeparator(new_cfg)
    s, ch, b, d, nw = len(c.stems), c.channels, c.bins, c.width, c.encoder_channels
    feat_cols = torch.cat([k * b + kb for k in range(ch)])
    head_cols = ku if not c.lookahead_frames else torch.cat([ku, d + ku])
    mask_rows = torch.cat([(si * ch + k) * b + kb for si in range(s) for k in range(ch)])
    wmask_rows = torch.cat([si * nw + ke for si in range(s)])
    gates = torch.cat([g * d + ku for g in range(4)])

    new.spec_in.weight.copy_(model.spec_in.weight[ku][:, feat_cols])
    new.spec_in.bias.copy_(model.spec_in.bias[ku])
    new.encoder.weight.copy_(model.encoder.weight[ke])
    new.wave_in.weight.copy_(model.wave_in.weight[ku][:, ke])
    new.wave_in.bias.copy_(model.wave_in.bias[ku])
    for old_l, new_l in zip(model.lstms, new.lstms):
        new_l.weight_ih_l0.copy_(old_l.weight_ih_l0[gates][:, ku])
        new_l.weight_hh_l0.copy_(old_l.weight_hh_l0[gates][:, ku])
        new_l.bias_ih_l0.copy_(old_l.bias_ih_l0[gates])
        new_l.bias_hh_l0.copy_(old_l.bias_hh_l0[gates])
    new.spec_head.weight.copy_(model.spec_head.weight[mask_rows][:, head_cols])
    new.spec_head.bias.copy_(model.spec_head.bias[mask_rows])
    new.wave_head.weight.copy_(model.wave_head.weight[wmask_rows][:, head_cols])
    new.wave_head.bias.copy_(model.wave_head.bias[wmask_rows])
    new.decoder.weight.copy_(model.decoder.weight[ke])
    return new
