"""Real-time session: exact alignment, deadline fallback with fades, no allocation in the callback."""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pytest

from stemstream.realtime.engine.session import RealtimeSession, set_thread_realtime
from stemstream.realtime.engine.streamer import StreamingSeparator
from stemstream.realtime.errors import ConfigError
from tests.engine_support import GAINS, SlowHopModel

SR = 44100
G = np.asarray(GAINS, np.float32).reshape(-1, 1, 1)


def _input(channels: int, samples: int) -> np.ndarray:
    """Smooth, never-zero test signal ``(channels, samples)``: 0.3 + 0.2 sin(2 pi 50 t)."""
    t = np.arange(samples) / SR
    x = 0.3 + 0.2 * np.sin(2 * np.pi * 50 * t + np.arange(channels)[:, None])
    return x.astype(np.float32)


def _run(session: RealtimeSession, x: np.ndarray, pump_unless=lambda k: True, pace_s: float = 0.0) -> np.ndarray:
    """Drive callbacks over ``x`` block by block; pump the worker synchronously after block
    ``k`` when ``pump_unless(k)`` (no worker thread), or pace in real time (worker thread)."""
    b = session.block_size
    blocks = x.shape[1] // b
    out = np.zeros((len(session.stems), x.shape[0], blocks * b), np.float32)
    indata = np.ascontiguousarray(x.T)
    t_next = time.perf_counter()
    for k in range(blocks):
        if pace_s:
            t_next += pace_s
            delay = t_next - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        session.callback(indata[k * b : (k + 1) * b], out[:, :, k * b : (k + 1) * b])
        if not pace_s and pump_unless(k):
            session.pump()
    return out


@pytest.mark.parametrize("block,hop,queue", [(64, 64, 1), (100, 64, 1), (256, 128, 2), (48, 32, 3)])
def test_on_time_output_is_exactly_delayed_separation(block: int, hop: int, queue: int) -> None:
    sep = StreamingSeparator(SlowHopModel(hop=hop, latency=37), SR, 2)
    session = RealtimeSession(sep, block, queue_blocks=queue)
    assert session.latency_samples == 37 + queue * block + sep.max_pending_samples(block) + session.fade_samples
    x = np.random.default_rng(0).standard_normal((2, 60 * block)).astype(np.float32)
    out = _run(session, x)
    d = session.latency_samples
    assert session.deadline_misses == 0 and session.blocks == 60
    np.testing.assert_allclose(out[:, :, d:], G * x[None, :, :-d], atol=1e-7)
    assert np.abs(out[:, :, :d]).max() == 0.0


def test_late_worker_falls_back_to_aligned_mix_with_fades() -> None:
    block, fade = 64, 32
    session = RealtimeSession(StreamingSeparator(SlowHopModel(hop=64, latency=10), SR, 2), block, fade_samples=fade)
    x = _input(2, 200 * block)
    late = set(range(50, 60)) | set(range(120, 121))
    out = _run(session, x, pump_unless=lambda k: k not in late)
    d = session.latency_samples
    assert session.deadline_misses >= 2
    sep = G * x[None, :, :-d]
    got = out[:, :, d:]
    fallback = np.isclose(got, 0.25 * x[None, :, :-d], atol=1e-6) & ~np.isclose(got, sep, atol=1e-6)
    separated = np.isclose(got, sep, atol=1e-6)
    assert fallback[0, 0].sum() >= 5 * block  # whole blocks of time-aligned mix
    assert (fallback | separated).mean() > 0.97  # the rest: the fades
    # never silence: the stems sum to between 0.875 and 1 times the (never-zero) mix
    total = got.sum(axis=0)
    assert (np.abs(total) >= 0.8 * np.abs(x[:, :-d])).all()
    # fades, not clicks: jumps bounded by the fade slope plus the signal's own slope
    signal_slope = np.abs(np.diff(sep, axis=-1)).max()
    worst_gap = np.abs(sep - 0.25 * x[None, :, :-d]).max()
    jumps = np.abs(np.diff(got, axis=-1)).max()
    assert jumps <= worst_gap / (fade + 1) + signal_slope + 1e-6, (jumps, worst_gap)
    assert worst_gap > 10 * jumps  # an instant switch would have jumped by worst_gap


def test_fallback_to_one_stem() -> None:
    session = RealtimeSession(StreamingSeparator(SlowHopModel(hop=64), SR, 1), 64, fallback_stem="drums")
    x = _input(1, 100 * 64)
    out = _run(session, x, pump_unless=lambda k: k < 30 or k > 60)
    d = session.latency_samples
    mid = slice(45 * 64, 55 * 64)  # well inside the late stretch (output time)
    np.testing.assert_allclose(out[1, 0, mid], x[0, mid.start - d : mid.stop - d], atol=1e-7)
    assert np.abs(out[[0, 2, 3], 0, mid]).max() == 0.0
    assert session.deadline_misses > 20


def test_slow_model_on_worker_thread_paced_like_a_sound_card() -> None:
    block = 128
    model = SlowHopModel(hop=128, latency=0, sleep_s=0.08, slow_calls={40})
    session = RealtimeSession(StreamingSeparator(model, SR, 2), block, warmup_blocks=0)
    x = _input(2, 300 * block)
    tail = _input(2, 10 * block)
    tail_out = np.zeros((4, 2, 10 * block), np.float32)
    with session:
        out = _run(session, x, pace_s=block / SR)
        for k in range(10):  # recovery: once the worker is on time, separation is back
            deadline = time.monotonic() + 10.0
            while session.delivered_samples < session.frames + block + session.fade_samples:
                assert time.monotonic() < deadline
                time.sleep(0.001)
            session.callback(np.ascontiguousarray(tail[:, k * block : (k + 1) * block].T), tail_out[:, :, k * block : (k + 1) * block])
    assert session.worker_error is None
    assert session.deadline_misses >= 5  # 80 ms late = ~27 blocks of 2.9 ms
    d = session.latency_samples
    got = out[:, :, d:]
    assert (np.abs(got.sum(axis=0)) >= 0.8 * np.abs(x[:, :-d])).all()
    worst_gap = np.abs((G - 0.25) * x[None]).max()
    signal_slope = np.abs(np.diff(G * x[None], axis=-1)).max()
    assert np.abs(np.diff(got, axis=-1)).max() <= worst_gap / 33 + signal_slope + 1e-6
    # back to separation at the end (the tail's last block is separated input from x's end / tail)
    whole = np.concatenate([x, tail], axis=1)
    np.testing.assert_allclose(tail_out[:, :, -block:], (G * whole[None, :, -block - d : -d]), atol=1e-6)


def test_nonfinite_input_in_callback() -> None:
    session = RealtimeSession(StreamingSeparator(SlowHopModel(hop=64), SR, 2), 64)
    x = _input(2, 40 * 64)
    x[0, 100] = np.nan
    x[1, 700:710] = np.inf
    out = _run(session, x, pump_unless=lambda k: k % 7 != 3)  # some misses: the mix path too
    assert session.nonfinite_samples == 11
    assert np.isfinite(out).all()


def _callback_allocations(block: int) -> tuple[int, int]:
    """(worst transient bytes, net bytes) traced during single callbacks in steady state."""
    session = RealtimeSession(StreamingSeparator(SlowHopModel(hop=32), SR, 2), block)
    x = np.ascontiguousarray(_input(2, 200 * block).T)
    views = [x[k * block : (k + 1) * block] for k in range(200)]  # the host's buffers
    out = np.zeros((4, 2, block), np.float32)
    tracemalloc.start()
    try:
        worst, net = 0, 0
        for k in range(200):
            if k % 10 < 7:  # separated blocks, fades out and in, and fallback blocks
                session.pump()
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            session.callback(views[k], out)
            current, peak = tracemalloc.get_traced_memory()
            if k >= 5:  # the first calls after tracemalloc.start() see its own bookkeeping
                worst, net = max(worst, peak - before), net + current - before
    finally:
        tracemalloc.stop()
    assert session.deadline_misses > 0 and session.blocks == 200
    return worst, net


def test_callback_allocates_nothing() -> None:
    """No audio buffer, no growth: the only traced bytes are numba's fixed 48-byte argument
    descriptors (one per array argument), freed before the call returns, the same for a
    64- and a 2048-frame block."""
    small, net_small = _callback_allocations(64)
    large, net_large = _callback_allocations(2048)
    assert net_small == 0 and net_large == 0
    assert small == large <= 6 * 48, (small, large)


def test_worker_scheduling_reported_and_dropped_after_overrun() -> None:
    """The worker says how it is scheduled; a worker that overruns leaves real-time scheduling."""
    block = 64
    model = SlowHopModel(hop=64, sleep_s=0.4, slow_calls={0})  # stuck long enough to overrun
    session = RealtimeSession(StreamingSeparator(model, SR, 2), block, warmup_blocks=0)
    assert session.worker_scheduling == "not started"
    indata = np.ascontiguousarray(_input(2, block).T)
    out = np.zeros((4, 2, block), np.float32)
    with session:
        session.callback(indata, out)  # the worker's first call sleeps 0.4 s ...
        deadline = time.monotonic() + 5.0
        while model.started == 0 and time.monotonic() < deadline:  # the worker is inside that call
            time.sleep(0.001)
        for _ in range(session._in_ring.capacity // block + 4):  # ... while far more input arrives
            session.callback(indata, out)
        while session.overruns == 0 and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.05)
        scheduling = session.worker_scheduling
    assert session.worker_error is None and session.overruns >= 1
    refused = scheduling.startswith("default (") and "Error" in scheduling  # no CAP_SYS_NICE here
    assert refused or scheduling == "default (after an overrun)", scheduling
    assert set_thread_realtime(None).startswith("default")  # this (main) thread: unchanged, never raises
    assert set_thread_realtime(100).startswith("default (")  # out of range: refused, not raised


def test_callback_signals_the_worker() -> None:
    """Each callback writes one count to the worker's eventfd (Linux), from the numba kernel."""
    import os

    from stemstream.realtime.engine.wakeup import Wakeup

    session = RealtimeSession(StreamingSeparator(SlowHopModel(hop=64), SR, 2), 64)
    if session._wakeup.fd < 0:
        pytest.skip("no eventfd on this platform: the worker polls")
    os.eventfd_read(session._wakeup.fd)  # the compile call in __init__ signalled once
    x = _input(2, 5 * 64)
    _run(session, x, pump_unless=lambda k: False)
    assert os.eventfd_read(session._wakeup.fd) == 5 and session.worker_wakeup == "eventfd"
    wake = Wakeup()
    wake.signal()
    t0 = time.monotonic()
    wake.wait(5.0)  # returns at once: signalled
    wake.wait(0.001)  # the signal was consumed: this one times out
    assert time.monotonic() - t0 < 4.0


def test_bad_session_arguments() -> None:
    sep = StreamingSeparator(SlowHopModel(), SR, 2)
    with pytest.raises(ConfigError, match="fade_samples=65"):
        RealtimeSession(sep, 64, fade_samples=65)
    with pytest.raises(ConfigError, match="fallback_stem='vocals'"):
        RealtimeSession(sep, 64, fallback_stem="vocals")
    with pytest.raises(ConfigError, match="block_size=0"):
        RealtimeSession(sep, 0)
    with pytest.raises(ConfigError, match="worker_priority=0"):
        RealtimeSession(sep, 64, worker_priority=0)


def _one_slow_call(block: int, queue_blocks: int, callbacks: int) -> RealtimeSession:
    """A started-and-stopped session whose worker's 4th call sleeps 30 ms, driven by
    ``callbacks`` callbacks 5 ms apart (then 0.1 s for the worker to catch up)."""
    model = SlowHopModel(hop=64, sleep_s=0.03, slow_calls={3})
    session = RealtimeSession(StreamingSeparator(model, SR, 2), block, warmup_blocks=0, queue_blocks=queue_blocks)
    indata = np.ascontiguousarray(_input(2, block).T)
    out = np.zeros((4, 2, block), np.float32)
    with session:
        for _ in range(callbacks):
            session.callback(indata, out)
            time.sleep(0.005)
        time.sleep(0.1)  # the worker catches up; leaving the block joins it
    return session


def test_compute_histogram_counts_every_call() -> None:
    """Every worker call lands in the histogram (not only the recent ones in ``compute_s``),
    the slow one in the right bin and as the maximum; percentiles read back to one bin."""
    from stemstream.realtime.engine.session import COMPUTE_BIN_S, histogram_percentiles

    block = 64
    session = _one_slow_call(block, queue_blocks=16, callbacks=12)
    hist = session.compute_histogram
    assert int(hist.sum()) == len(session.compute_s) >= 2
    assert session.compute_max_s == pytest.approx(max(session.compute_s))
    assert session.compute_max_s >= 0.03 and hist[int(0.03 / COMPUTE_BIN_S):].sum() >= 1
    p50, top = histogram_percentiles(hist, COMPUTE_BIN_S, (0.5, 1.0))
    assert p50 <= top and top == pytest.approx(session.compute_max_s, abs=COMPUTE_BIN_S)
    assert np.isnan(histogram_percentiles(np.zeros(4, np.int64), 1.0, (0.5,))[0])
    # the slow call (a 30 ms sleep inside the model) is recorded, and its time shows as blocked
    slow = [c for c in session.slow_calls if c[1] >= 0.03]
    assert len(slow) == 1
    end, wall, cpu, wait, blocked, spare, frames = slow[0]
    assert frames == block and spare > 0  # 16 blocks of queue: late by the clock, not for the audio
    assert end <= time.monotonic() and blocked >= 0.025 and cpu < 0.01
    assert cpu + (0.0 if np.isnan(wait) else wait) + blocked == pytest.approx(wall, abs=1e-6)


def test_a_call_too_late_for_the_next_callback_is_recorded_with_negative_spare() -> None:
    """One block of queue and a 30 ms call while callbacks come every 5 ms: the blocks after it
    fall back to the mix, and the call is recorded as ended too late (spare < 0)."""
    session = _one_slow_call(64, queue_blocks=1, callbacks=16)
    late = [c for c in session.slow_calls if c[5] < 0]
    assert session.deadline_misses >= 1 and any(c[1] >= 0.03 for c in late)


def test_denormal_input_is_zeroed_and_never_reaches_the_output() -> None:
    """A host feeding 1e-40 (denormal) and 1e-31 (tiny): the worker zeroes them before separating
    and the callback's fallback mix flushes them; no denormal, NaN or Inf comes out. A session
    told to keep denormals passes them through (what the test would see without the change)."""
    from stemstream.realtime.engine.denormals import TINY

    def signal() -> np.ndarray:  # built where denormals are kept: under flush-to-zero 1e-40 would become 0
        x = np.full((2, 40 * 64), 1e-40, np.float32)
        x[:, ::5] = -1e-31
        x[:, 3::11] = -3e-39
        assert denormal(x) > 0
        return x

    def denormal(out: np.ndarray) -> int:  # from the bits: float comparisons see 0 where denormals are zero
        bits = np.ascontiguousarray(out, np.float32).view(np.uint32)
        return int(np.count_nonzero(((bits & 0x7F800000) == 0) & ((bits & 0x007FFFFF) != 0)))

    def on_a_thread_keeping_denormals(fn):  # this thread may flush already (ONNX Runtime, LV2 plugins set it)
        import threading

        from stemstream.realtime.engine.denormals import flush_denormals

        result = []
        thread = threading.Thread(target=lambda: (flush_denormals(False), result.append(fn())))
        thread.start()
        thread.join()
        return result[0]

    kept = RealtimeSession(StreamingSeparator(SlowHopModel(hop=64), SR, 2), 64, flush_denormals=False)
    assert denormal(on_a_thread_keeping_denormals(lambda: _run(kept, signal()))) > 0 and kept.tiny_samples == 0
    for pump in (lambda k: True, lambda k: k % 7 != 3):  # on time; and with misses (fallback mix)
        session = RealtimeSession(StreamingSeparator(SlowHopModel(hop=64), SR, 2), 64)
        out = on_a_thread_keeping_denormals(lambda: _run(session, signal(), pump_unless=pump))
        assert np.isfinite(out).all() and denormal(out) == 0
        assert np.abs(out).max() < TINY
        assert session.tiny_samples > 0.9 * out[0].size  # every sample the worker read was tiny


def test_worker_flushes_denormals_and_the_callback_restores_the_callers_mode() -> None:
    """The worker thread computes with flush-to-zero (numpy multiplies 1e-40 to 0 there); the
    callback kernel flushes while it runs and gives the calling thread its own mode back."""
    import threading

    from stemstream.realtime.engine.denormals import SUPPORTED, denormals_flushed, flush_denormals

    if not SUPPORTED:
        pytest.skip("the flush mode is set on x86-64 only")
    session = RealtimeSession(StreamingSeparator(SlowHopModel(hop=64), SR, 2), 64)
    assert session.worker_denormals == "not started"
    with session:
        deadline = time.monotonic() + 5.0
        while session.worker_denormals == "not started" and time.monotonic() < deadline:
            time.sleep(0.005)
        assert session.worker_denormals == "flush-to-zero"
        mode = denormals_flushed()
        session.callback(np.zeros((64, 2), np.float32), np.zeros((4, 2, 64), np.float32))
        assert denormals_flushed() == mode  # the host thread's mode, unchanged
    seen: dict[str, float] = {}

    def product(key: str, flush: bool) -> None:
        flush_denormals(flush)
        seen[key] = float((np.full(4, 1e-40, np.float32) * np.float32(1.0))[0])

    for key, flush in (("on", True), ("off", False)):
        thread = threading.Thread(target=product, args=(key, flush))
        thread.start()
        thread.join()
    assert seen == {"on": 0.0, "off": pytest.approx(1e-40, rel=1e-2)}


def test_onnx_runtime_sessions_flush_denormals() -> None:
    """ONNX Runtime's own threads flush denormals (its session.set_denormal_as_zero option)."""
    from stemstream.realtime.backends.onnx_backend import DENORMAL_AS_ZERO_KEY, OnnxRuntimeOptions, session_options

    assert session_options(OnnxRuntimeOptions()).get_session_config_entry(DENORMAL_AS_ZERO_KEY) == "1"
    with pytest.raises(RuntimeError):  # onnxruntime: no such entry, the default (denormals kept)
        session_options(OnnxRuntimeOptions(flush_denormals=False)).get_session_config_entry(DENORMAL_AS_ZERO_KEY)


class _FailingHopModel(SlowHopModel):
    """Raises on the hop calls whose index is in ``fail_calls`` (a backend failing mid-stream)."""

    def __init__(self, fail_calls: set[int], **kw) -> None:
        super().__init__(**kw)
        self.fail_calls = fail_calls

    def process_hops(self, audio, state):  # noqa: ANN001, ANN201 - the HopModel signature
        if self.started in self.fail_calls:
            self.started += 1
            raise RuntimeError("backend fell over")
        return super().process_hops(audio, state)


def test_a_backend_failing_mid_stream_plays_the_mix_then_recovers() -> None:
    block = 64
    model = _FailingHopModel({40, 41, 42}, hop=64, latency=10)
    session = RealtimeSession(StreamingSeparator(model, SR, 2), block)
    x = _input(2, 200 * block)
    out = _run(session, x)
    d = session.latency_samples
    got, sep, mix = out[:, :, d:], G * x[None, :, :-d], 0.25 * x[None, :, :-d]
    assert session.backend_errors == 3 and "backend fell over" in session.last_backend_error
    assert session.worker_error is None  # the worker lives on
    separated = np.isclose(got, sep, atol=1e-6).all(axis=(0, 1))
    fallback = np.isclose(got, mix, atol=1e-6).all(axis=(0, 1)) & ~separated
    assert fallback.sum() >= 2 * block  # the mix played while the backend failed
    assert separated[-100 * block :].all()  # and separation came back, sample-aligned
    assert np.isfinite(out).all() and (np.abs(got.sum(axis=0)) >= 0.8 * np.abs(x[:, :-d])).all()  # never silence
