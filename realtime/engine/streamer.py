"""The streaming separator: any block size in, separated stems out, sample-aligned.

Pipeline (host rate ``h``, model rate ``r``)::

    block (host_channels, n) -> NaN/Inf -> 0 -> mono to model channels
        -> [resample h -> r] -> runner (hops or segments)
        -> [stereo -> mono] -> [resample r -> h] -> stems (stems, host_channels, m)

Timing contract (the denoiser ``DemucsStreamer`` / pedalboard ``StreamResampler`` style):

* Output sample ``t`` (counted from the start of the stream, over all ``process`` calls) is the
  separation of input sample ``t - latency_samples``; before that it is the separation of
  silence. ``latency_samples`` is computed from the model (its algorithmic latency) and the
  low-delay resamplers (whose filter delay is compensated; the model -> host converter's grid
  is shifted by under one host sample so that a resampled latency is a whole number of host
  samples); it is exact.  The resamplers' look-ahead (``realtime.engine.resample``, 0.36 ms
  per conversion) shows up in ``pending_samples``, not in ``latency_samples``.
* ``process(block)`` returns the output that is final so far: ``m`` may differ from ``n``
  (0 until a hop or segment completes). ``pending_samples`` = input samples in minus output
  samples out (>= 0): what a real-time user must buffer on top of ``latency_samples``;
  :meth:`StreamingSeparator.max_pending_samples` gives its worst case for a block size.
* ``flush()`` returns the rest so that the stream's total output is exactly
  ``samples_in + latency_samples`` (the last input sample's separation is included), then
  resets: the next ``process`` starts a new stream. ``reset()`` drops everything.

Channels: the host may be mono or stereo. A mono block feeds both inputs of a stereo model;
its stems come back mono (the mean of the model's two output channels). More than two
channels, or stereo into a mono model, is a ``ConfigError``.
"""

from __future__ import annotations

import math

import numpy as np

from stemstream.realtime.engine.overlap_add import HopRunner, SegmentRunner
from stemstream.realtime.engine.resample import StreamResampler, host_latency, output_offset, rate_periods
from stemstream.realtime.errors import AudioInputError, bad_value
from stemstream.realtime.protocol import StreamModel

#: Largest block ``process`` accepts, in samples.
MAX_BLOCK_SIZE = 65536


class StreamingSeparator:
    """Separate a stream block by block; see the module docstring for the timing contract.

    Args:
        model: a ``HopModel`` or ``SegmentModel`` (``stemstream.realtime.protocol``).
        host_sample_rate: sample rate of the blocks given to :meth:`process`, in Hz.
        channels: host channels, 1 (mono) or 2 (stereo).
        overlap_samples: segment models only: overlap between segments (model samples).
        resample_quality: resampler kernel (``LD``, low delay, or ``HQ``) when
            ``host_sample_rate`` differs from the model's.

    Attributes:
        latency_samples: output ``t`` = separation of input ``t - latency_samples`` (host samples).
        stems: stem names in output order.
        nonfinite_samples: NaN/Inf input samples replaced by 0 so far (kept across resets).
        nonfinite_output_samples: non-finite output samples replaced by 0 (a model fault).
    """

    def __init__(
        self,
        model: StreamModel,
        host_sample_rate: int,
        channels: int = 2,
        overlap_samples: int | None = None,
        resample_quality: str = "LD",
    ) -> None:
        kind = getattr(model, "kind", None)
        if kind == "hop":
            self._runner: HopRunner | SegmentRunner = HopRunner(model)  # type: ignore[arg-type]
            if overlap_samples is not None:
                raise bad_value("overlap_samples", overlap_samples, "None for a hop model")
        elif kind == "segment":
            self._runner = SegmentRunner(model, overlap_samples)  # type: ignore[arg-type]
        else:
            raise bad_value("model", type(model).__name__, "a HopModel or SegmentModel (kind 'hop' or 'segment')")
        if not isinstance(host_sample_rate, int) or host_sample_rate < 1:
            raise bad_value("host_sample_rate", host_sample_rate, "a positive integer in Hz")
        model_channels = model.info.channels
        if channels not in (1, 2):
            raise bad_value("channels", channels, "1 (mono) or 2 (stereo); more than two channels are not supported")
        if channels > model_channels:
            raise bad_value("channels", channels, f"at most the model's {model_channels}")
        self.model = model
        self.stems: tuple[str, ...] = tuple(model.info.stems)
        self.host_sample_rate = host_sample_rate
        self.model_sample_rate = int(model.info.sample_rate)
        self.channels = channels
        self.model_channels = model_channels
        self.resampling = host_sample_rate != self.model_sample_rate
        core_latency = self._runner.latency_samples
        if self.resampling:
            self.latency_samples = host_latency(core_latency, host_sample_rate, self.model_sample_rate)
            self._out_offset = output_offset(core_latency, host_sample_rate, self.model_sample_rate)
            self._in_rs = StreamResampler(host_sample_rate, self.model_sample_rate, model_channels, resample_quality)
            self._out_rs = StreamResampler(
                self.model_sample_rate, host_sample_rate, len(self.stems) * channels, resample_quality,
                offset=self._out_offset,
            )
        else:
            self.latency_samples = core_latency
        self.resample_quality = resample_quality
        self.nonfinite_samples = 0
        self.nonfinite_output_samples = 0
        self.samples_in = 0
        self.samples_out = 0

    # -- properties ----------------------------------------------------------------------
    @property
    def latency_ms(self) -> float:
        """``latency_samples`` in milliseconds."""
        return 1000.0 * self.latency_samples / self.host_sample_rate

    @property
    def pending_samples(self) -> int:
        """Input samples taken but whose output position has not been returned yet."""
        return self.samples_in - self.samples_out

    # -- streaming -----------------------------------------------------------------------
    def process(self, block: np.ndarray) -> np.ndarray:
        """Separate ``block`` ``(channels, n)``, ``0 <= n <= 65536`` float samples.

        Returns ``(stems, channels, m)`` float32: the next ``m`` output samples (see the
        module docstring). NaN/Inf samples are replaced by 0 and counted.
        """
        block = np.asarray(block)
        if block.ndim != 2 or block.shape[0] != self.channels:
            raise AudioInputError(f"block.shape={block.shape!r}: expected ({self.channels}, samples)")
        if block.shape[1] > MAX_BLOCK_SIZE:
            raise bad_value("block samples", block.shape[1], f"at most {MAX_BLOCK_SIZE}")
        x = block if block.dtype == np.float32 else block.astype(np.float32)
        finite = np.isfinite(x)
        if not finite.all():  # copy first: the caller's block is never modified
            x = np.array(x, dtype=np.float32, copy=True)
            self.nonfinite_samples += int(x.size - np.count_nonzero(finite))
            x[~finite] = 0.0
        self.samples_in += x.shape[1]
        out = self._run(x)
        self.samples_out += out.shape[2]
        return out

    def _run(self, x: np.ndarray) -> np.ndarray:
        if self.channels != self.model_channels:
            x = np.repeat(x, self.model_channels, axis=0)
        if self.resampling:
            x = self._in_rs.process(x)
        y = self._runner.process(x)
        if self.channels != self.model_channels:
            y = y.mean(axis=1, keepdims=True, dtype=np.float32)
        if self.resampling:
            s, c, m = y.shape
            y = self._out_rs.process(y.reshape(s * c, m)).reshape(s, c, -1)
        finite = np.isfinite(y)
        if not finite.all():
            y = np.array(y, dtype=np.float32)
            self.nonfinite_output_samples += int(y.size - np.count_nonzero(finite))
            y[~finite] = 0.0
        return np.asarray(y, dtype=np.float32)

    def flush(self) -> np.ndarray:
        """The rest of the stream: output up to ``samples_in + latency_samples`` in all,
        ``(stems, channels, m)``. Then :meth:`reset` (the separator is ready for a new stream)."""
        target = self.samples_in + self.latency_samples
        need = target - self.samples_out
        pieces = [np.zeros((len(self.stems), self.channels, 0), np.float32)]
        got = 0
        chunk = 4096
        for _ in range(10_000):
            if got >= need:
                break
            y = self._run(np.zeros((self.channels, chunk), np.float32))
            pieces.append(y)
            got += y.shape[2]
        else:  # pragma: no cover - the runners always make progress
            raise AssertionError("flush made no progress")
        out = np.concatenate(pieces, axis=2)[:, :, : max(need, 0)]
        self.reset()
        return np.ascontiguousarray(out)

    def reset(self) -> None:
        """Forget the stream (model state, buffers, resamplers); counters of non-finite
        samples are kept."""
        self._runner.reset()
        if self.resampling:
            self._in_rs.reset()
            self._out_rs.reset()
        self.samples_in = 0
        self.samples_out = 0

    # -- planning ------------------------------------------------------------------------
    def max_pending_samples(self, block_size: int, blocks: int | None = None) -> int:
        """Worst ``pending_samples`` over a stream fed in blocks of ``block_size`` (host samples).

        Computed by counting samples through the runner and (fresh) resamplers on silence,
        without running the model. A real-time session that reads ``block_size`` samples
        ``max_pending_samples`` after they could first be complete never runs dry.
        """
        if not isinstance(block_size, int) or not 1 <= block_size <= MAX_BLOCK_SIZE:
            raise bad_value("block_size", block_size, f"an integer in [1, {MAX_BLOCK_SIZE}]")
        runner = self._runner
        unit = runner.hop if isinstance(runner, HopRunner) else runner.stride
        span = unit if isinstance(runner, HopRunner) else runner.segment
        if not self.resampling:
            period = math.lcm(block_size, unit) // block_size
            count = blocks or min(period + span // block_size + 2, 100_000)
            worst = 0
            for k in range(1, count + 1):
                worst = max(worst, k * block_size - runner.output_count(k * block_size))
            return worst
        count = blocks or max(64, min(4000, 4 * (span + 1024) // block_size + rate_periods(
            self.host_sample_rate, self.model_sample_rate)[0]))
        rs_in = StreamResampler(self.host_sample_rate, self.model_sample_rate, 1, self.resample_quality)
        rs_out = StreamResampler(self.model_sample_rate, self.host_sample_rate, 1, self.resample_quality,
                                 offset=self._out_offset)
        zeros = np.zeros((1, block_size), np.float32)
        model_in, model_out, host_out, worst = 0, 0, 0, 0
        for k in range(1, count + 1):
            model_in += rs_in.process(zeros).shape[1]
            now = runner.output_count(model_in)
            host_out += rs_out.process(np.zeros((1, now - model_out), np.float32)).shape[1]
            model_out = now
            worst = max(worst, k * block_size - host_out)
        return worst
