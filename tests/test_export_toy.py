"""A small stateful hop module (Conv1d + LSTM, delayed dry path) the export tests run on,
independent of the shipped model; and its own streaming check."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import torch
from torch import nn

ARCHITECTURE = "toy-conv-lstm"


@dataclass(frozen=True)
class ToyConfig:
    """Toy hop model config (sizes in samples)."""

    stems: tuple[str, ...] = ("bass", "drums", "guitar", "piano")
    sample_rate: int = 44100
    channels: int = 2
    hop: int = 64
    kernel: int = 192
    width: int = 32
    delay: int = 64

    @property
    def hop_samples(self) -> int:
        return self.hop

    @property
    def latency_samples(self) -> int:
        return self.delay

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


class ToyHop(nn.Module):
    """``forward(audio (B, C, n*hop), state) -> (stems (B, S, C, n*hop), state)``.

    Conv1d over ``history + audio`` (state ``history``), an LSTM across frames (state ``h``,
    ``c``), per-frame masks applied to the input delayed by ``delay`` samples (state ``dry``).
    """

    def __init__(self, config: ToyConfig = ToyConfig()) -> None:
        super().__init__()
        self.config = c = config
        self.conv = nn.Conv1d(c.channels, c.width, c.kernel, stride=c.hop)
        self.lstm = nn.LSTM(c.width, c.width, batch_first=True)
        self.head = nn.Linear(c.width, len(c.stems) * c.channels * c.hop)

    def init_state(self, batch: int = 1) -> dict[str, torch.Tensor]:
        c = self.config
        return {
            "history": torch.zeros(batch, c.channels, c.kernel - c.hop),
            "h": torch.zeros(1, batch, c.width),
            "c": torch.zeros(1, batch, c.width),
            "dry": torch.zeros(batch, c.channels, c.delay),
        }

    def forward(self, audio: torch.Tensor, state: dict[str, torch.Tensor]):
        c = self.config
        b, ch, length = audio.shape
        n = length // c.hop
        full = torch.cat([state["history"], audio], dim=-1)
        feats = torch.tanh(self.conv(full)).transpose(1, 2)  # (B, n, W)
        out, (h, cc) = self.lstm(feats, (state["h"], state["c"]))
        masks = torch.sigmoid(self.head(out))  # (B, n, S*C*hop)
        masks = masks.reshape(b, n, len(c.stems), ch, c.hop).permute(0, 2, 3, 1, 4).reshape(b, len(c.stems), ch, length)
        dry_all = torch.cat([state["dry"], audio], dim=-1)
        stems = masks * dry_all[..., :length].unsqueeze(1)
        new = {
            "history": full[..., full.shape[-1] - (c.kernel - c.hop) :],
            "h": h,
            "c": cc,
            "dry": dry_all[..., length:],
        }
        return stems, new


def make_toy(seed: int = 0) -> ToyHop:
    """A seeded toy model in eval mode."""
    torch.manual_seed(seed)
    return ToyHop().eval()


def test_toy_chunked_equals_one_shot() -> None:
    torch.set_num_threads(1)
    model = make_toy()
    x = torch.randn(1, 2, 64 * 10, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        whole, _ = model(x, model.init_state())
        state, parts = model.init_state(), []
        for j in range(10):
            y, state = model(x[..., j * 64 : (j + 1) * 64], state)
            parts.append(y)
    assert torch.allclose(whole, torch.cat(parts, dim=-1), atol=1e-6)
