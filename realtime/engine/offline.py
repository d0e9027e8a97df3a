"""Whole-array separation through the streaming engine (one code path for files and live)."""

from __future__ import annotations

from typing import Callable

import numpy as np

from stemstream.realtime.engine.streamer import MAX_BLOCK, StreamingSeparator
from stemstream.realtime.errors import AudioInputError, bad_value
from stemstream.realtime.protocol import StreamModel


def separate_array(
    model: StreamModel,
    audio: np.ndarray,
    sample_rate: int,
    block_size: int = 4096,
    progress: Callable[[int], None] | None = None,
    separator: StreamingSeparator | None = None,
) -> np.ndarray:
    """Separate ``audio`` ``(channels, samples)`` at ``sample_rate`` Hz -> ``(stems, channels, samples)``.

    Streams ``audio`` through :class:`StreamingSeparator` in blocks of ``block_size``,
    flushes the tail and drops the first ``latency_samples``, so output sample ``t`` is the
    separation of input sample ``t`` and the length equals the input's. ``progress`` is called
    with the number of input samples consumed after each block. ``separator``: reuse one
    (must match ``model``, rate and channels); it is left reset.
    """
    audio = np.asarray(audio)
    if audio.ndim != 2 or audio.shape[0] not in (1, 2):
        raise AudioInputError(f"audio.shape={audio.shape!r}: expected (1 or 2 channels, samples)")
    if not isinstance(block_size, int) or not 1 <= block_size <= MAX_BLOCK:
        raise bad_value("block_size", block_size, f"an integer in [1, {MAX_BLOCK}]")
    if separator is None:
        separator = StreamingSeparator(model, sample_rate, audio.shape[0])
    else:
        separator.reset()
    total = audio.shape[1]
    pieces = []
    for start in range(0, total, block_size):
        pieces.append(separator.process(audio[:, start : start + block_size]))
        if progress is not None:
            progress(min(start + block_size, total))
    latency = separator.latency_samples
    pieces.append(separator.flush())
    out = np.concatenate(pieces, axis=2)
    assert out.shape[2] == total + latency, (out.shape, total, latency)
    return np.ascontiguousarray(out[:, :, latency:])
