"""A real-time separation session: copy-only audio callback, inference on a worker thread.

Callback contract (as python-sounddevice's ``Stream``)::

    session.callback(indata, out_stems)

* ``indata``: ``(frames, channels)`` float32 (C-contiguous), ``frames <= block_size``.
* ``out_stems``: ``(stems, channels, frames)`` float32, filled in place.
* The callback copies ``indata`` into a preallocated input ring (NaN/Inf -> 0, counted),
  and copies separated samples from a preallocated output ring into ``out_stems``; it does no
  inference, no file I/O, takes no lock, allocates nothing and creates no Python object (one
  numba kernel, positions exchanged through an int64 array; its one system call is the
  non-blocking ``eventfd`` write that wakes the worker). Call it from one thread only.
* Output stem sample ``t`` (counted over all callbacks) is the separation of input sample
  ``t - latency_samples``, where ``latency_samples`` = the separator's latency + the
  worker's queue (``queue_blocks * block_size``) + the separator's worst-case pending
  samples at this block size + ``fade_samples`` of look-ahead for the fades.

Deadline policy (as the anchors' StemgenRT): when the worker has not delivered a block (plus
``fade_samples`` beyond it) in time, the output falls back to the full mix - the input
delayed by the same ``latency_samples``, so it stays time-aligned - given to
``fallback_stem`` (others silent) or, when ``fallback_stem`` is None, spread evenly so the
stems sum to the mix. Separation fades out over ``fade_samples`` (<= 64) with samples that
did arrive, and fades back in over ``fade_samples`` when the worker is on time again: never
silence, never a click because inference was late. Each block not fully separated counts as
one deadline miss. Before :meth:`RealtimeSession.start` (or after the worker failed) every
block is a miss and the output is the fallback mix.

The worker thread sleeps until the callback signals a new block (an ``eventfd`` written from
the numba kernel, ``stemstream.realtime.engine.wakeup``; where there is none it polls the input ring every
``poll_s``), runs ``separator.process`` on every new block and writes the result to the output
ring. If it falls so far behind that unread input would be overwritten, it drops the backlog,
resets the separator and resumes (``overruns`` counts this).

Scheduling: where the system allows it (Linux with CAP_SYS_NICE or an ``rtprio`` limit), the
worker runs at ``SCHED_FIFO`` priority ``worker_priority`` (default 1, the lowest real-time
priority: above every normal process, below audio threads such as JACK's), so other
processes on the machine cannot delay inference; on the 2-core dev box with both cores busy
training, that cut the ``live`` model's p99 compute per 256-sample block from 5.3 ms to 1.7 ms
and deadline misses from 89 to 3 in 2000 callbacks. Otherwise it keeps the default
scheduling (``worker_scheduling`` says which). A worker that overruns (cannot keep up)
returns to the default scheduling, so a too-slow model never monopolises a core.

Denormals (``stemstream.realtime.engine.denormals``): with ``flush_denormals`` (the default) the
worker thread computes with flush-to-zero and denormals-are-zero on, and zeroes input samples
below 1e-30 in magnitude (-600 dBFS: exact for audio) before separating them, so a host feeding
1e-40, or a tail decaying into denormals, costs what silence costs.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import numpy as np

from stemstream.realtime.engine import slot as slots
from stemstream.realtime.engine.callback_kernel import (
    _BLOCKS, _FRAMES, _MISSES, _MODE, _NONFINITE, _OUT_END, _OUT_START, _WAKE, _callback_kernel,
)
from stemstream.realtime.engine.denormals import flush_denormals as set_denormal_flush
from stemstream.realtime.engine.denormals import zero_tiny
from stemstream.realtime.engine.ringbuffer import SampleRing
from stemstream.realtime.engine.thread_clock import ThreadClock
from stemstream.realtime.engine.wakeup import Wakeup
from stemstream.realtime.errors import StemstreamError, bad_value


#: Longest wait of a worker woken by an eventfd before it looks at the rings anyway, seconds.
EVENT_WAIT_S = 0.05

#: Longest fade allowed, in samples.
MAX_FADE = 64

#: Most slow worker calls :attr:`RealtimeSession.slow_calls` keeps (the first ones).
SLOW_CALLS_KEPT = 2000
#: Every this many backend failures the worker pauses :data:`BACKEND_RETRY_PAUSE_S` seconds
#: before trying again: a backend that fails on every call must not spin a core.
BACKEND_RETRY_EVERY = 8
BACKEND_RETRY_PAUSE_S = 0.05


def set_thread_realtime(priority: int | None) -> str:
    """Put the calling thread under ``SCHED_FIFO`` at ``priority`` (1..99), or back to the
    default scheduling when ``priority`` is None. Never raises: returns what applies now,
    ``"fifo:<priority>"`` or ``"default"`` (with the reason when the request was refused)."""
    if not hasattr(os, "sched_setscheduler"):
        return "default (no sched_setscheduler on this platform)"
    try:
        if priority is None:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
            return "default"
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
        return f"fifo:{priority}"
    except (OSError, ValueError) as exc:  # no CAP_SYS_NICE / rtprio limit, or bad priority
        return f"default ({exc.__class__.__name__}: {exc})"


#: Width of a bin of :attr:`RealtimeSession.compute_histogram`, seconds (10 us).
COMPUTE_BIN_S: float = 1e-5
#: Bins of that histogram: up to 100 ms, longer calls in the last bin.
COMPUTE_BINS: int = 10_000


def histogram_percentiles(histogram: np.ndarray, bin_s: float, quantiles: tuple[float, ...]) -> list[float]:
    """Upper edges (seconds) of the bins holding ``quantiles`` (0..1) of a count histogram; NaN
    for an empty one. The error is at most one bin."""
    total = int(histogram.sum())
    if total == 0:
        return [float("nan")] * len(quantiles)
    cum = np.cumsum(histogram)
    return [float((np.searchsorted(cum, q * total) + 1) * bin_s) for q in quantiles]


class RealtimeSession:
    """Real-time separation around a ``StreamingSeparator`` (contract in the module docstring).

    Args:
        separator: a ``stemstream.realtime.engine.streamer.StreamingSeparator`` (or anything with its
            ``process``/``reset``/``latency_samples``/``stems``/``channels``/
            ``max_pending_samples``).
        block_size: frames per callback (the most one callback may pass).
        queue_blocks: block periods the worker has to deliver a block (>= 1).
        fallback_stem: stem that gets the mix on a deadline miss; None: the mix spread evenly.
        fade_samples: length of the fades out of and into separation, 1..64.
        warmup_blocks: blocks of silence run through the separator in :meth:`start` (then
            reset), so first-call costs do not land on the audio.
        poll_s: worker's polling interval in seconds where the callback cannot signal it
            (no ``eventfd``; default: an eighth of a block period, within 0.2..2 ms).
        worker_priority: ``SCHED_FIFO`` priority of the worker thread (1..99) where the
            system allows it; None: default scheduling (module docstring).
        flush_denormals: flush denormals on the worker thread and zero tiny input samples
            (module docstring); False only to measure what that saves.

    Attributes:
        latency_samples: input-to-output delay of every stem sample, host samples.
        worker_error: the exception that stopped the worker, if any (a failing separator does
            not stop it: see ``backend_errors``).
        backend_errors: ``separator.process`` calls that raised. The worker resets the
            separator and restarts the stream where the input is now; meanwhile the callback
            plays the time-aligned mix, with its fades, as on a deadline miss.
        last_backend_error: ``repr`` of the latest of those exceptions ("" if none).
        overruns: times the worker dropped a backlog it could not catch up with.
        compute_s: wall-clock seconds of each ``separator.process`` call (last 100000).
        compute_frames: input frames of each of those calls (one block when on time).
        compute_histogram: every call's time since start, in bins of
            :data:`COMPUTE_BIN_S` (the last bin holds the longer ones); see
            :meth:`compute_percentiles`.
        compute_max_s: the slowest call since start, seconds.
        slow_calls: worker calls that took longer than one block period or ended too late for
            the next callback (the first :data:`SLOW_CALLS_KEPT`):
            ``(end, wall_s, cpu_s, wait_s, blocked_s, spare, frames)`` with ``end`` in
            ``time.monotonic`` seconds, the wall time split into on-CPU, waiting for a CPU and
            blocked (``stemstream.realtime.engine.thread_clock``), ``spare`` the separated samples beyond
            what the next callback needs when the call ended (negative: that callback fell back
            to the mix, a deadline miss; 0: just in time) and ``frames`` the input it took (more
            than a block: the worker started late) - why a block was late.
        worker_scheduling: how the worker thread is scheduled (``"fifo:1"``, ``"default"``
            with the reason a request was refused; ``"not started"`` before :meth:`start`).
        worker_denormals: the worker's denormal mode (``"flush-to-zero"``, ``"off"``,
            ``"unsupported on ..."``; ``"not started"`` before :meth:`start`).
        tiny_samples: input samples with ``0 < |x| < 1e-30`` zeroed before separation.
    """

    def __init__(
        self,
        separator: Any,
        block_size: int,
        queue_blocks: int = 1,
        fallback_stem: str | None = None,
        fade_samples: int = 32,
        warmup_blocks: int = 4,
        poll_s: float | None = None,
        worker_priority: int | None = 1,
        flush_denormals: bool = True,
    ) -> None:
        if not isinstance(block_size, int) or not 1 <= block_size <= 65536:
            raise bad_value("block_size", block_size, "an integer in [1, 65536] frames")
        if not isinstance(queue_blocks, int) or queue_blocks < 1:
            raise bad_value("queue_blocks", queue_blocks, "an integer >= 1")
        if not isinstance(fade_samples, int) or not 1 <= fade_samples <= MAX_FADE:
            raise bad_value("fade_samples", fade_samples, f"an integer in [1, {MAX_FADE}]")
        if worker_priority is not None and (not isinstance(worker_priority, int) or not 1 <= worker_priority <= 99):
            raise bad_value("worker_priority", worker_priority, "None or an integer in [1, 99]")
        stems = tuple(separator.stems)
        if fallback_stem is not None and fallback_stem not in stems:
            raise bad_value("fallback_stem", fallback_stem, f"None or one of {stems}")
        self.separator = separator
        self.block_size = block_size
        self.queue_blocks = queue_blocks
        self.fade_samples = fade_samples
        self.fallback_stem = fallback_stem
        self.warmup_blocks = warmup_blocks
        self.worker_priority = worker_priority
        self.worker_scheduling = "not started"
        self.flush_denormals = bool(flush_denormals)
        self.worker_denormals = "not started"
        self.tiny_samples = 0
        self.stems = stems
        self.channels = int(separator.channels)
        sample_rate = int(getattr(separator, "host_sample_rate", 44100))
        self.sample_rate = sample_rate
        self.block_period_s = block_size / sample_rate
        self.poll_s = poll_s if poll_s is not None else min(0.002, max(0.0002, self.block_period_s / 8))
        self.pending_samples = int(separator.max_pending_samples(block_size))
        self.queue_samples = queue_blocks * block_size + self.pending_samples + fade_samples
        self.latency_samples = int(separator.latency_samples) + self.queue_samples
        self._in_ring = SampleRing((self.channels,), self.latency_samples + (queue_blocks + 64) * block_size)
        self._out_ring = SampleRing((len(stems), self.channels), self.queue_samples + 4 * block_size)
        self._idx = np.zeros(8, np.int64)
        self._wakeup = Wakeup()
        self._mix_gain = np.full(len(stems), 1.0 / len(stems), np.float32)
        if fallback_stem is not None:
            self._mix_gain[:] = 0.0
            self._mix_gain[stems.index(fallback_stem)] = 1.0
        self._f32 = np.dtype(np.float32)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.worker_error: BaseException | None = None
        self.backend_errors = 0
        self.last_backend_error = ""
        self.overruns = 0
        self.compute_s: list[float] = []
        self.compute_frames: list[int] = []
        self.compute_histogram = np.zeros(COMPUTE_BINS, np.int64)
        self.compute_max_s = 0.0
        self.slow_calls: list[tuple[float, ...]] = []
        self._clock: ThreadClock | None = None
        self._reset_positions()
        # compile the kernel now, not in the first audio callback
        self.callback(np.zeros((1, self.channels), np.float32), np.zeros((len(stems), self.channels, 1), np.float32))
        self._reset_positions()

    def _reset_positions(self) -> None:
        self._idx[:] = 0
        self._idx[_WAKE] = 1
        self._idx[_OUT_START] = 0
        self._idx[_OUT_END] = self.queue_samples  # primed: separation of the silence before t=0
        self._idx[_MODE] = 1
        self._read = 0  # next input sample the worker separates
        self._out_pos = self.queue_samples  # session position of the separator's next output
        self._in_ring.clear()
        self._out_ring.clear()

    # -- counters --------------------------------------------------------------------------
    @property
    def deadline_misses(self) -> int:
        """Blocks whose output was not (fully) separated because the worker was late."""
        return int(self._idx[_MISSES])

    @property
    def nonfinite_samples(self) -> int:
        """NaN/Inf input samples replaced by 0 in the callback."""
        return int(self._idx[_NONFINITE])

    @property
    def blocks(self) -> int:
        """Callbacks run."""
        return int(self._idx[_BLOCKS])

    @property
    def frames(self) -> int:
        """Frames passed through the callback."""
        return int(self._idx[_FRAMES])

    @property
    def delivered_samples(self) -> int:
        """Session position up to which the worker has delivered separated output (the
        callback at position ``p`` with ``frames`` needs ``p + frames + fade_samples``)."""
        return int(self._idx[_OUT_END])

    @property
    def latency_ms(self) -> float:
        """``latency_samples`` in milliseconds."""
        return 1000.0 * self.latency_samples / self.sample_rate

    @property
    def worker_wakeup(self) -> str:
        """How the worker learns of a new block: ``"eventfd"`` or ``"polling every X ms"``."""
        return "eventfd" if self._wakeup.fd >= 0 else f"polling every {1000.0 * self.poll_s:.2f} ms"

    def describe_slot(self, slot: np.ndarray | None = None) -> np.ndarray:
        """Write where this session's callback arrays live into ``slot`` (a new int64 array of
        ``stemstream.realtime.engine.slot.SLOT_SIZE`` if None) and return it: what a native audio
        thread needs to run :meth:`callback`'s kernel (``stemstream.realtime.engine.native.run_slot``).
        Nothing is copied: keep the session alive while the slot is in use."""
        if slot is None:
            slot = np.zeros(slots.SLOT_SIZE, np.int64)
        in_ring, out_ring = self._in_ring.data, self._out_ring.data
        slot[slots.IN_RING] = in_ring.ctypes.data
        slot[slots.IN_CHANNELS], slot[slots.IN_CAPACITY] = in_ring.shape
        slot[slots.OUT_RING] = out_ring.ctypes.data
        slot[slots.OUT_STEMS], _, slot[slots.OUT_CAPACITY] = out_ring.shape
        slot[slots.POSITIONS] = self._idx.ctypes.data
        slot[slots.MIX_GAIN] = self._mix_gain.ctypes.data
        slot[slots.DELAY] = self.latency_samples
        slot[slots.FADE] = self.fade_samples
        slot[slots.WAKE_FD] = self._wakeup.fd
        return slot

    # -- audio side ------------------------------------------------------------------------
    def callback(self, indata: np.ndarray, out_stems: np.ndarray) -> None:
        """Audio-callback side: copy ``indata`` ``(frames, channels)`` in, fill ``out_stems``
        ``(stems, channels, frames)`` in place. Copy-only; see the module docstring."""
        if indata.dtype is not self._f32:  # slow path for non-float32 hosts (allocates)
            indata = np.ascontiguousarray(indata, dtype=np.float32)
        _callback_kernel(
            indata, out_stems, self._in_ring.data, self._out_ring.data, self._idx, self._mix_gain,
            self.latency_samples, self.fade_samples, self._wakeup.fd,
        )

    # -- worker side -----------------------------------------------------------------------
    def start(self) -> None:
        """Warm the separator up, reset it and start the worker thread (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        zeros = np.zeros((self.channels, self.block_size), np.float32)
        for _ in range(self.warmup_blocks):
            self.separator.process(zeros)
        self.separator.reset()
        self._reset_positions()
        self._stop.clear()
        self.worker_error = None
        self._thread = threading.Thread(target=self._worker, name="stemstream-worker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the worker thread and wait for it; the callback keeps working (fallback mix)."""
        self._stop.set()
        self._wakeup.signal()
        if self._thread is not None:
            self._thread.join(timeout=10.0)
            self._thread = None

    close = stop

    def __enter__(self) -> "RealtimeSession":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _worker(self) -> None:
        try:
            self._work()
        except BaseException as exc:  # kept for the caller; the callback falls back to the mix
            self.worker_error = exc

    def _work(self) -> None:
        self.worker_denormals = set_denormal_flush(self.flush_denormals)
        realtime = self.worker_priority is not None
        if realtime:
            self.worker_scheduling = set_thread_realtime(self.worker_priority)
            realtime = self.worker_scheduling.startswith("fifo")
        overruns = self.overruns
        wait_s = EVENT_WAIT_S if self._wakeup.fd >= 0 else self.poll_s
        self._clock = ThreadClock()
        try:
            while not self._stop.is_set():
                if not self._step():
                    self._wakeup.wait(wait_s)
                elif realtime and self.overruns != overruns:  # cannot keep up: stop starving others
                    self.worker_scheduling = set_thread_realtime(None) + " (after an overrun)"
                    realtime = False
        finally:
            self._clock.close()
            self._clock = None

    def pump(self) -> int:
        """Run the worker's job in the calling thread until all input written so far is
        separated (for tests and offline drivers; not while the worker thread runs).
        Returns the number of separator calls made."""
        if self._thread is not None and self._thread.is_alive():
            raise StemstreamError("pump() while the worker thread runs: call stop() first")
        calls = 0
        while self._step():
            calls += 1
        return calls

    def _step(self) -> bool:
        """Separate what the callback wrote since the last step (at most 8192 samples).
        Returns False when there was nothing to do."""
        idx, sep = self._idx, self.separator
        written = int(idx[_FRAMES])
        if written - self._read > self._in_ring.capacity - self.latency_samples - 2 * self.block_size:
            # hopelessly behind: drop the backlog and restart the stream where the input is now
            self.overruns += 1
            self._restart(written)
            return True
        if written == self._read:
            return False
        n = min(written - self._read, max(self.block_size, 8192))
        block = self._in_ring.read(self._read, n)
        if self.flush_denormals:
            self.tiny_samples += zero_tiny(block)
        self._read += n
        clock = self._clock
        before = clock.mark() if clock is not None else None
        t0 = time.perf_counter()
        try:
            stems = sep.process(block)
        except Exception as exc:  # a failing backend: the mix plays, the stream restarts
            self.backend_errors += 1
            self.last_backend_error = repr(exc)
            self._restart(int(idx[_FRAMES]))
            if self.backend_errors % BACKEND_RETRY_EVERY == 0:  # failing every time: don't spin
                time.sleep(BACKEND_RETRY_PAUSE_S)
            return True
        dt = time.perf_counter() - t0
        # separated samples beyond what the next callback needs (its block and the fade look-ahead)
        spare = self._out_pos + stems.shape[2] - int(idx[_FRAMES]) - self.block_size - self.fade_samples
        if before is not None and (dt > self.block_period_s or spare < 0) and len(self.slow_calls) < SLOW_CALLS_KEPT:
            split = clock.split(before, clock.mark())
            self.slow_calls.append((time.monotonic(), split.wall_s, split.cpu_s, split.wait_s, split.blocked_s,
                                    float(spare), float(n)))
        self.compute_s.append(dt)
        self.compute_frames.append(n)
        self.compute_histogram[min(int(dt / COMPUTE_BIN_S), COMPUTE_BINS - 1)] += 1
        self.compute_max_s = max(self.compute_max_s, dt)
        if len(self.compute_s) > 100_000:
            del self.compute_s[:50_000]
            del self.compute_frames[:50_000]
        m = stems.shape[2]
        if m:
            out_pos = self._out_pos
            skip = max(0, min(m, int(idx[_FRAMES]) - out_pos))  # positions the callback passed
            if skip < m:
                self._out_ring.write(out_pos + skip, stems[:, :, skip:])
            self._out_pos = out_pos + m
            idx[_OUT_END] = self._out_pos
        return True

    def _restart(self, written: int) -> None:
        """Restart the separated stream at input position ``written``: what came before it is
        dropped, the separator starts afresh, and its output lands ``queue_samples`` later, where
        the callback expects it (until then it plays the mix)."""
        idx = self._idx
        self._read = written
        self.separator.reset()
        self._out_pos = written + self.queue_samples
        idx[_OUT_START] = self._out_pos  # start before end: see the kernel
        idx[_OUT_END] = self._out_pos

    def raise_worker_error(self) -> None:
        """Re-raise the worker's exception as a ``StemstreamError`` if it failed."""
        if self.worker_error is not None:
            raise StemstreamError(f"separation worker failed: {self.worker_error!r}") from self.worker_error
