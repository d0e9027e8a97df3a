"""The small contract between the streaming engine and any separation model or backend.

Two kinds of model run behind one engine:

* ``HopModel`` - stateful, causal: consumes a whole number of hops and returns the same
  number of stem samples, carrying explicit state (conv tails, LSTM state, STFT history)
  from call to call. Output sample ``t`` corresponds to input sample ``t - latency_samples``
  (the model's own algorithmic latency; the engine adds nothing for hop models beyond
  resampling).
* ``SegmentModel`` - fixed windows of ``segment_samples``; the engine cuts overlapping
  segments, overlap-adds them with weights that sum to one at every sample, and hands each
  segment the previous segment's separated output over the overlap (autoregressive
  segment conditioning, the seeds' Fig. 4.4).

Everything at this boundary is ``numpy.float32``; backends (PyTorch, ONNX Runtime,
TensorRT) adapt their tensors to it. Layout is always ``(stems, channels, samples)`` for
separated audio and ``(channels, samples)`` for input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import numpy as np

#: Explicit streaming state: named arrays, owned by the model that created them.
State = dict[str, np.ndarray]


@dataclass(frozen=True)
class ModelInfo:
    """What the engine and the user need to know about a model, fixed at construction.

    Attributes:
        name: registry name (``live``, ``live-pruned``, ``quality``, ``diffusion-1step``...).
        stems: stem names in output order.
        sample_rate: sample rate the model runs at, in Hz.
        channels: input/output channels the model expects (2: stereo).
        latency_samples: algorithmic latency in samples at ``sample_rate``.
    """

    name: str
    stems: tuple[str, ...]
    sample_rate: int
    channels: int
    latency_samples: int

    @property
    def latency_ms(self) -> float:
        """Algorithmic latency in milliseconds."""
        return 1000.0 * self.latency_samples / self.sample_rate


@runtime_checkable
class HopModel(Protocol):
    """A causal, stateful model that runs hop by hop."""

    kind: Literal["hop"]
    info: ModelInfo
    #: Samples per hop; every call takes a whole number of hops.
    hop_samples: int
    #: Largest number of hops one call accepts (1 for fixed-shape engines such as TensorRT).
    max_hops_per_call: int

    def init_state(self) -> State:
        """Fresh state for the start of a stream."""
        ...

    def process_hops(self, audio: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """Separate ``audio`` of shape ``(channels, n * hop_samples)``.

        Returns stems ``(stems, channels, n * hop_samples)`` delayed by ``latency_samples``
        and the new state. Processing in several calls equals processing in one call.
        """
        ...


@runtime_checkable
class SegmentModel(Protocol):
    """A model that separates fixed windows, optionally conditioned on the previous one."""

    kind: Literal["segment"]
    info: ModelInfo
    #: Samples per segment (the model's training length).
    segment_samples: int
    #: Samples at the start of each segment that may be conditioned on the previous
    #: segment's separated output (0: no autoregressive conditioning).
    context_samples: int

    def separate_segment(self, audio: np.ndarray, context: np.ndarray | None) -> np.ndarray:
        """Separate ``audio`` ``(channels, segment_samples)``.

        ``context`` is ``None`` for the first segment, else the previous segment's separated
        output over the overlap, ``(stems, channels, context_samples)``. Returns
        ``(stems, channels, segment_samples)``.
        """
        ...


StreamModel = HopModel | SegmentModel
