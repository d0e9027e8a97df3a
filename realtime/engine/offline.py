"""Whole arrays, or a stream of blocks from disk, through the streaming engine (one code path for
files and live).

:func:`separate_stream` is the file path's core: blocks in, latency-aligned stem blocks out, so a
file of any length is separated in bounded memory (``stemstream separate`` reads and writes block
by block around it). :func:`separate_array` is the same loop over one array, its output the
concatenation of what :func:`separate_stream` yields for the array's blocks.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator

import numpy as np

from stemstream.realtime.engine.streamer import MAX_BLOCK_SIZE, StreamingSeparator
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
    if not isinstance(block_size, int) or not 1 <= block_size <= MAX_BLOCK_SIZE:
        raise bad_value("block_size", block_size, f"an integer in [1, {MAX_BLOCK_SIZE}]")
    if separator is None:
        separator = StreamingSeparator(model, sample_rate, audio.shape[0])
    else:
        separator.reset()
    total = audio.shape[1]
    blocks = (audio[:, start : start + block_size] for start in range(0, total, block_size))
    out = np.concatenate(list(separate_stream(separator, blocks, progress)), axis=2)
    assert out.shape[2] == total, (out.shape, total)
    return np.ascontiguousarray(out)


def separate_stream(
    separator: StreamingSeparator,
    blocks: Iterable[np.ndarray],
    progress: Callable[[int], None] | None = None,
) -> Iterator[np.ndarray]:
    """Separate the stream ``blocks`` (each ``(channels, n)``, ``n <= 65536``) -> latency-aligned
    stem blocks ``(stems, channels, m)``.

    Output sample ``t`` (counted over everything yielded) is the separation of input sample
    ``t``: the first ``separator.latency_samples`` are dropped and the tail is flushed, so the
    yielded blocks hold exactly as many samples as the input blocks did, and their concatenation
    equals :func:`separate_array` of the concatenated input (fed in the same blocks). Memory is
    that of one block: nothing is kept between blocks beyond the separator's own state.
    ``progress`` is called with the number of input samples consumed after each block.
    ``separator`` is reset first and left reset (its non-finite counters keep counting).
    """
    separator.reset()
    skip = separator.latency_samples
    consumed = 0
    for block in blocks:
        out = separator.process(block)
        consumed += block.shape[1]
        if progress is not None:
            progress(consumed)
        out, skip = _drop_front(out, skip)
        if out.shape[2]:
            yield out
    out, skip = _drop_front(separator.flush(), skip)
    assert skip == 0, skip  # flush returns samples_in + latency in all
    yield out


def _drop_front(out: np.ndarray, skip: int) -> tuple[np.ndarray, int]:
    """``out`` without its first ``skip`` samples (as many as it has), and what is left to skip."""
    if skip == 0:
        return out, 0
    cut = min(skip, out.shape[2])
    return out[:, :, cut:], skip - cut
