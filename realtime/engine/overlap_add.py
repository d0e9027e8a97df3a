"""Model runners at the model's rate: whole hops for hop models, overlap-added segments for
segment models. Both take any number of samples and return whatever output is final.

The runners share one small interface used by ``stemstream.realtime.engine.streamer``::

    runner.process(audio (channels, n)) -> stems (stems, channels, m)   # m may be 0
    runner.output_count(n_total) -> int   # samples out after n_total samples in (pure)
    runner.reset()
    runner.latency_samples                # output t = separation of input t - latency

Segment overlap-add (as in demucs ``apply.py``): segment ``k`` covers input samples
``[k*stride, k*stride + segment_samples)``; every segment's output is multiplied by a
positive weight window, the weighted outputs and the weights are summed, and each sample is
divided by its weight sum, so the effective weights sum to one at every sample for any
overlap (0 <= overlap < segment). A sample is final (and returned) once the last segment
covering it has run.

Autoregressive segment conditioning: segment ``k`` receives ``context`` = segment ``k-1``'s
raw separated output over the first ``context_samples`` of segment ``k`` (``context[..., j]``
is the previous segment's estimate at this segment's sample ``j``); segment 0 gets ``None``.
"""

from __future__ import annotations

import numpy as np

from stemstream.realtime.errors import bad_value
from stemstream.realtime.protocol import HopModel, SegmentModel


class _InputBuffer:
    """Growable ``(channels, capacity)`` float32 FIFO: append at the end, drop from the front."""

    def __init__(self, channels: int, capacity: int) -> None:
        self.data = np.zeros((channels, max(1, capacity)), np.float32)
        self.fill = 0

    def append(self, audio: np.ndarray) -> None:
        n = audio.shape[1]
        if self.fill + n > self.data.shape[1]:
            bigger = np.zeros((self.data.shape[0], 2 * (self.fill + n)), np.float32)
            bigger[:, : self.fill] = self.data[:, : self.fill]
            self.data = bigger
        self.data[:, self.fill : self.fill + n] = audio
        self.fill += n

    def drop(self, n: int) -> None:
        rest = self.fill - n
        if rest:
            self.data[:, :rest] = self.data[:, n : self.fill]
        self.fill = rest


class HopRunner:
    """Feeds a ``HopModel`` whole hops (as many per call as available, at most
    ``max_hops_per_call``), carrying its explicit state."""

    def __init__(self, model: HopModel) -> None:
        if not isinstance(model.hop_samples, int) or model.hop_samples < 1:
            raise bad_value("model.hop_samples", model.hop_samples, "a positive integer")
        self.model = model
        self.hop = model.hop_samples
        self.stems = len(model.info.stems)
        self.channels = model.info.channels
        self.latency_samples = int(model.info.latency_samples)
        self._buffer = _InputBuffer(self.channels, 4 * self.hop)
        self._state = model.init_state()

    def output_count(self, n_total: int) -> int:
        """Samples returned in all after ``n_total`` samples in: whole hops only."""
        return (n_total // self.hop) * self.hop

    def process(self, audio: np.ndarray) -> np.ndarray:
        """Buffer ``audio`` ``(channels, n)``; run every whole hop; ``(stems, channels, m)``."""
        buf = self._buffer
        buf.append(audio)
        hops = buf.fill // self.hop
        if hops == 0:
            return np.zeros((self.stems, self.channels, 0), np.float32)
        pieces = []
        done = 0
        while done < hops:
            k = min(hops - done, self.model.max_hops_per_call)
            chunk = buf.data[:, done * self.hop : (done + k) * self.hop]
            out, self._state = self.model.process_hops(chunk, self._state)
            pieces.append(out)
            done += k
        buf.drop(hops * self.hop)
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces, axis=-1)

    def reset(self) -> None:
        """Fresh model state, empty buffer."""
        self._buffer.fill = 0
        self._state = self.model.init_state()


def segment_weight(segment_samples: int) -> np.ndarray:
    """Positive triangular weight ``(segment_samples,)``: rises from the edges to the middle."""
    i = np.arange(segment_samples, dtype=np.float64)
    return np.minimum(i + 1, segment_samples - i).astype(np.float32)


class SegmentRunner:
    """Cuts overlapping fixed segments, passes autoregressive context, overlap-adds.

    Args:
        model: a ``SegmentModel``.
        overlap_samples: samples shared by consecutive segments, ``context_samples <= overlap
            < segment_samples``; default: ``context_samples`` when the model is conditioned
            on context (the overlap *is* the context), else ``segment_samples // 4``.
    """

    def __init__(self, model: SegmentModel, overlap_samples: int | None = None) -> None:
        seg, ctx = int(model.segment_samples), int(model.context_samples)
        if seg < 1:
            raise bad_value("model.segment_samples", seg, "a positive integer")
        if not 0 <= ctx < seg:
            raise bad_value("model.context_samples", ctx, f"an integer in [0, segment_samples={seg})")
        if overlap_samples is None:
            overlap_samples = ctx if ctx else seg // 4
        if not isinstance(overlap_samples, int) or not ctx <= overlap_samples < seg:
            raise bad_value("overlap_samples", overlap_samples, f"an integer in [context_samples={ctx}, {seg})")
        self.model = model
        self.segment = seg
        self.context = ctx
        self.overlap = overlap_samples
        self.stride = seg - overlap_samples
        self.stems = len(model.info.stems)
        self.channels = model.info.channels
        self.latency_samples = int(model.info.latency_samples)
        self.weight = segment_weight(seg)
        self._buffer = _InputBuffer(self.channels, 2 * seg)
        self._num = np.zeros((self.stems, self.channels, seg), np.float32)
        self._den = np.zeros(seg, np.float32)
        self._previous: np.ndarray | None = None

    def output_count(self, n_total: int) -> int:
        """Samples returned in all after ``n_total`` samples in: ``stride`` per full segment."""
        if n_total < self.segment:
            return 0
        return ((n_total - self.segment) // self.stride + 1) * self.stride

    def process(self, audio: np.ndarray) -> np.ndarray:
        """Buffer ``audio`` ``(channels, n)``; run each complete segment; ``(stems, channels, m)``."""
        buf = self._buffer
        buf.append(audio)
        pieces = []
        seg, stride = self.segment, self.stride
        while buf.fill >= seg:
            context = None
            if self._previous is not None and self.context:
                context = self._previous[:, :, stride : stride + self.context]
            out = np.asarray(self.model.separate_segment(buf.data[:, :seg], context), dtype=np.float32)
            if out.shape != (self.stems, self.channels, seg):
                raise bad_value("segment output shape", out.shape, f"{(self.stems, self.channels, seg)}")
            self._previous = out
            self._num += out * self.weight
            self._den += self.weight
            pieces.append(self._num[:, :, :stride] / self._den[:stride])
            keep = seg - stride
            self._num[:, :, :keep] = self._num[:, :, stride:]
            self._num[:, :, keep:] = 0.0
            self._den[:keep] = self._den[stride:]
            self._den[keep:] = 0.0
            buf.drop(stride)
        if not pieces:
            return np.zeros((self.stems, self.channels, 0), np.float32)
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces, axis=-1)

    def reset(self) -> None:
        """Empty buffers, no context: the next segment is a stream's first."""
        self._buffer.fill = 0
        self._num[:] = 0.0
        self._den[:] = 0.0
        self._previous = None
