"""Export-friendly streaming STFT pieces: real DFT as Conv1d, inverse as ConvTranspose1d.

No complex tensors and no ``torch.stft``: the analysis is a ``conv1d`` with a windowed DFT
basis and the synthesis a ``conv_transpose1d`` with a windowed inverse-DFT basis, so the graph
exports to ONNX as plain convolutions.

Asymmetric window pair (low-delay STFT, after Mauler & Martin 2007; the StemgenRT trick):
the analysis window spans ``analysis_samples`` (e.g. 1024: frequency resolution ~43 Hz at
44.1 kHz) but the synthesis window is non-zero only on the last ``synthesis_samples`` (e.g.
256) of each frame, so the latency is set by the synthesis window, not the analysis one.
The product ``analysis * synthesis`` is a Hann window of length ``synthesis_samples``
scaled so that its shifts by ``hop_samples`` sum to exactly one (perfect reconstruction).

Streaming conventions (shapes in samples): frame ``j`` of a call ends at the end of hop
``j``; the analysis needs the previous ``analysis_samples - hop_samples`` input samples
(state ``history``); the overlap-add keeps ``synthesis_samples - hop_samples`` pending output
samples (state ``tail``). Output is delayed by ``synthesis_samples - hop_samples`` samples.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from stemstream.realtime.errors import bad_value


def _hann(n: int) -> torch.Tensor:
    """Periodic Hann sampled at half-sample offsets: strictly positive, shifts sum exactly."""
    k = torch.arange(n, dtype=torch.float64)
    return 0.5 - 0.5 * torch.cos(2.0 * math.pi * (k + 0.5) / n)


def asymmetric_windows(
    analysis_samples: int, synthesis_samples: int, hop_samples: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Analysis and synthesis windows, both of length ``analysis_samples`` (float64).

    ``synthesis`` is zero except on the last ``synthesis_samples``; ``analysis * synthesis``
    shifted by multiples of ``hop_samples`` sums to one everywhere.
    """
    n_a, m, h = analysis_samples, synthesis_samples, hop_samples
    if m % h or (m // h) < 2 or m > n_a or m % 2:
        raise bad_value(
            "synthesis_samples", m, f"an even multiple (>= 2x) of hop_samples={h} and <= {n_a}"
        )
    rise = n_a - m // 2
    analysis = torch.empty(n_a, dtype=torch.float64)
    k = torch.arange(rise, dtype=torch.float64)
    analysis[:rise] = torch.sin(0.5 * math.pi * (k + 0.5) / rise)  # sqrt-Hann rising half
    analysis[rise:] = torch.sqrt(_hann(m)[m // 2 :])  # sqrt-Hann falling half of length m
    product = _hann(m) / (m / h / 2.0)
    synthesis = torch.zeros(n_a, dtype=torch.float64)
    synthesis[n_a - m :] = product / analysis[n_a - m :]
    return analysis, synthesis


class StreamingSTFT(torch.nn.Module):
    """Real DFT analysis and low-delay overlap-add synthesis with explicit state.

    Args:
        analysis_samples: analysis window / DFT length ``N`` (samples).
        synthesis_samples: synthesis window length ``M`` (samples); sets the latency.
        hop_samples: hop ``H`` (samples).
        bins: number of frequency bins kept (``<= N // 2 + 1``; fewer = band-limited,
            the pruning knob); bins are the lowest ``bins`` unless ``bin_index`` is given.
    """

    def __init__(
        self,
        analysis_samples: int,
        synthesis_samples: int,
        hop_samples: int,
        bins: int | None = None,
    ) -> None:
        super().__init__()
        n, m, h = analysis_samples, synthesis_samples, hop_samples
        full = n // 2 + 1
        bins = full if bins is None else bins
        if not 1 <= bins <= full:
            raise bad_value("bins", bins, f"1..{full}")
        self.analysis_samples, self.synthesis_samples, self.hop_samples = n, m, h
        self.bins = bins
        w_a, w_s = asymmetric_windows(n, m, h)
        t = torch.arange(n, dtype=torch.float64)
        f = torch.arange(bins, dtype=torch.float64)
        phase = 2.0 * math.pi * f[:, None] * t[None, :] / n  # (bins, N)
        analysis = torch.cat([torch.cos(phase), -torch.sin(phase)], 0) * w_a  # (2*bins, N)
        # Inverse real DFT restricted to the last M samples, synthesis window folded in.
        scale = torch.full((bins,), 2.0 / n, dtype=torch.float64)
        scale[0] = 1.0 / n
        if bins == full and n % 2 == 0:
            scale[-1] = 1.0 / n
        tail = slice(n - m, n)
        synth = torch.cat(
            [torch.cos(phase[:, tail]) * scale[:, None], -torch.sin(phase[:, tail]) * scale[:, None]], 0
        ) * w_s[tail]  # (2*bins, M)
        self.register_buffer("analysis_basis", analysis.float().unsqueeze(1), persistent=False)
        self.register_buffer("synthesis_basis", synth.float().unsqueeze(1), persistent=False)

    @property
    def history_samples(self) -> int:
        """Input samples carried between calls for the analysis window."""
        return self.analysis_samples - self.hop_samples

    @property
    def tail_samples(self) -> int:
        """Output samples pending in the overlap-add between calls."""
        return self.synthesis_samples - self.hop_samples

    @property
    def latency_samples(self) -> int:
        """Delay of the synthesis output relative to the input, in samples."""
        return self.synthesis_samples - self.hop_samples

    def analyse(self, signal: torch.Tensor, history: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Frames of ``signal`` ``(batch, n * hop)`` given ``history`` ``(batch, N - hop)``.

        Returns the spectrum ``(batch, 2 * bins, n)`` (real parts then imaginary parts) and
        the new history.
        """
        full = torch.cat([history, signal], dim=-1)
        spec = F.conv1d(full.unsqueeze(1), self.analysis_basis, stride=self.hop_samples)
        return spec, full[:, full.shape[-1] - self.history_samples :]

    def synthesise(self, spec: torch.Tensor, tail: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Overlap-add frames ``spec`` ``(batch, 2 * bins, n)`` given ``tail`` ``(batch, M - hop)``.

        Returns ``(batch, n * hop)`` output samples (delayed by ``latency_samples``) and the
        new tail.
        """
        frames = spec.shape[-1]
        out = F.conv_transpose1d(spec, self.synthesis_basis, stride=self.hop_samples).squeeze(1)
        return overlap_add_tail(out, tail, frames * self.hop_samples)


def overlap_add_tail(out: torch.Tensor, tail: torch.Tensor, emit: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Add the pending ``tail`` to the start of ``out`` and split off ``emit`` finished samples.

    ``out`` is ``(..., emit + k)`` from a transposed convolution and ``tail`` ``(..., k)``.
    """
    k = tail.shape[-1]
    head = out[..., :k] + tail
    rest = out[..., k:]
    full = torch.cat([head, rest], dim=-1)
    return full[..., :emit], full[..., emit:]
