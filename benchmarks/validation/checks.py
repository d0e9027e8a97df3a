"""The engine checks of ``stemstream validate``: rates, blocks, channels, edge signals, latency.

Each check is a function ``check(ctx) -> list[Result]`` over one opened model (:class:`Context`).
They drive the same streaming engine ``separate`` and ``live`` use
(``stemstream.realtime.engine.streamer``), with the model the user picked, on signals made here
(seeded), and say in one line what they saw.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from stemstream.realtime.engine.offline import separate_array
from stemstream.realtime.engine.streamer import StreamingSeparator

#: Host rates tried (Hz): the common ones and the extremes the engine accepts.
RATES = (8000, 11025, 16000, 22050, 32000, 44100, 48000, 88200, 96000, 176400, 192000)
QUICK_RATES = (8000, 48000, 96000, 192000)
#: Block sizes tried (samples), then a seeded random sequence of them.
BLOCKS = (1, 2, 3, 17, 64, 255, 256, 257, 1000, 4096, 8192)
QUICK_BLOCKS = (1, 64, 257, 8192)
#: Streaming may differ from one-shot by float rounding only.
STREAM_TOLERANCE = 1e-5
#: Smallest normal float32: anything non-zero below it is denormal.
FLOAT32_NORMAL = float(np.finfo(np.float32).tiny)


@dataclass(frozen=True)
class Result:
    """One row of the validation table: ``check`` (a family), ``case`` (what was tried), whether it
    passed, what was seen (one line) and the seconds it took."""

    check: str
    case: str
    passed: bool
    detail: str
    seconds: float = 0.0


@dataclass
class Context:
    """What every check needs: the opened model, its name, whether to run the short version,
    a seeded random generator and the model's own rate."""

    model: Any
    model_name: str
    quick: bool = False
    seed: int = 0
    rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    @property
    def model_rate(self) -> int:
        return int(self.model.info.sample_rate)


def band_limited(rng: np.random.Generator, channels: int, seconds: float, rate: int, top_hz: float = 6000.0) -> np.ndarray:
    """Music-like test input: a few tones under ``top_hz`` with noise bursts, peak 0.5, float32."""
    n = int(seconds * rate)
    t = np.arange(n) / rate
    x = np.zeros((channels, n))
    for c in range(channels):
        for f in rng.uniform(60.0, min(top_hz, 0.4 * rate), size=5):
            x[c] += np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) * rng.uniform(0.05, 0.2)
    return (0.5 * x / max(1e-9, np.abs(x).max())).astype(np.float32)


def _timed(fn: Callable[[], tuple[bool, str]], check: str, case: str) -> Result:
    started = time.perf_counter()
    try:
        ok, detail = fn()
    except Exception as exc:  # a check that raises has failed; the battery goes on
        ok, detail = False, f"raised {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return Result(check, case, bool(ok), detail, round(time.perf_counter() - started, 3))


def _snr_db(estimate: np.ndarray, reference: np.ndarray) -> float:
    err = float(np.sum((estimate.astype(np.float64) - reference) ** 2))
    return 10 * np.log10(float(np.sum(reference.astype(np.float64) ** 2)) / max(err, 1e-30))


def _stream(sep: StreamingSeparator, x: np.ndarray, blocks: list[int]) -> np.ndarray:
    out, pos, i = [], 0, 0
    while pos < x.shape[1]:
        n = blocks[i % len(blocks)]
        out.append(sep.process(x[:, pos : pos + n]))
        pos, i = pos + n, i + 1
    out.append(sep.flush())
    return np.concatenate(out, axis=2)


def check_rates(ctx: Context) -> list[Result]:
    """Every host rate: finite output of the input's length, stems that add up to the input (for a
    band-limited input, through the resamplers), and the latency the engine reports measured on
    the raw stream: the stems' sum peaks in cross-correlation with the input exactly there."""

    def one(rate: int) -> tuple[bool, str]:
        x = band_limited(ctx.rng, 2, 0.6, rate)
        sep = StreamingSeparator(ctx.model, rate, 2)
        raw = _stream(sep, x, [512])
        lat = sep.latency_samples
        if raw.shape[2] != x.shape[1] + lat or not np.isfinite(raw).all():
            return False, f"output {raw.shape[2]} samples (expected {x.shape[1] + lat}), finite {np.isfinite(raw).all()}"
        total = raw.sum(axis=0)[0].astype(np.float64)
        lags = np.arange(0, lat + 64)
        corr = [float(np.dot(total[k : k + x.shape[1] - 64], x[0, : x.shape[1] - 64])) for k in lags]
        measured = int(lags[int(np.argmax(corr))])
        snr = _snr_db(raw.sum(axis=0)[:, lat:], x)
        ok = measured == lat and snr > 30.0
        return ok, f"latency reported {lat} / measured {measured} samples ({1000 * lat / rate:.2f} ms); sum vs input {snr:.1f} dB"

    return [_timed(lambda r=r: one(r), "rates", f"{r} Hz") for r in (QUICK_RATES if ctx.quick else RATES)]


def check_blocks(ctx: Context) -> list[Result]:
    """Every block size, and a random sequence of sizes: the stream equals the one-shot run
    within :data:`STREAM_TOLERANCE`, at the model's rate and at 48 kHz."""
    results = []
    rates = (ctx.model_rate, 48000) if ctx.model_rate != 48000 else (48000, 44100)
    for rate in rates:
        x = band_limited(ctx.rng, 2, 0.5, rate)
        whole = _stream(StreamingSeparator(ctx.model, rate, 2), x, [x.shape[1]])
        sizes: list[Any] = list(QUICK_BLOCKS if ctx.quick else BLOCKS) + ["random"]
        for size in sizes:
            def one(size: Any = size) -> tuple[bool, str]:
                blocks = list(ctx.rng.integers(1, 2049, size=64)) if size == "random" else [size]
                got = _stream(StreamingSeparator(ctx.model, rate, 2), x, [int(b) for b in blocks])
                if got.shape != whole.shape:
                    return False, f"shape {got.shape} vs one-shot {whole.shape}"
                diff = float(np.abs(got - whole).max())
                return diff <= STREAM_TOLERANCE, f"max difference from one-shot {diff:.1e}"

            results.append(_timed(one, "blocks", f"{size} @ {rate} Hz"))
    return results


def check_channels(ctx: Context) -> list[Result]:
    """Mono and stereo hosts: stems come back with the host's channels and add up to the input."""

    def one(channels: int) -> tuple[bool, str]:
        x = band_limited(ctx.rng, channels, 0.5, ctx.model_rate)
        out = separate_array(ctx.model, x, ctx.model_rate, block_size=256)
        if out.shape != (len(ctx.model.info.stems), channels, x.shape[1]):
            return False, f"output shape {out.shape}"
        snr = _snr_db(out.sum(axis=0), x)
        return snr > 40.0, f"{len(ctx.model.info.stems)} stems x {channels} ch; sum vs input {snr:.1f} dB"

    return [_timed(lambda c=c: one(c), "channels", name) for c, name in ((1, "mono"), (2, "stereo"))]


def check_signals(ctx: Context) -> list[Result]:
    """Edge signals: silence stays silent; full scale and beyond stay finite and add up; NaN and
    Inf are replaced and counted; denormal input gives no denormal output and costs what silence
    costs."""
    rate, n = ctx.model_rate, ctx.model_rate // 2

    def run(x: np.ndarray) -> tuple[np.ndarray, StreamingSeparator, float]:
        sep = StreamingSeparator(ctx.model, rate, 2)
        started = time.perf_counter()
        out = separate_array(ctx.model, x, rate, block_size=256, separator=sep)
        return out, sep, time.perf_counter() - started

    def silence() -> tuple[bool, str]:
        out, _, _ = run(np.zeros((2, n), np.float32))
        peak = float(np.abs(out).max())
        return peak < 1e-6, f"peak {peak:.1e}"

    def full_scale() -> tuple[bool, str]:
        square = np.sign(np.sin(2 * np.pi * 220 * np.arange(n) / rate)).astype(np.float32)
        x = np.stack([square, -square]) * np.float32(1.0)
        loud = (ctx.rng.standard_normal((2, n)) * 2.0).astype(np.float32)  # beyond full scale
        worst = np.inf
        for sig in (x, loud):
            out, _, _ = run(sig)
            if not np.isfinite(out).all():
                return False, "non-finite output"
            worst = min(worst, _snr_db(out.sum(axis=0), sig))
        return worst > 40.0, f"+-1 square and 2x-full-scale noise: finite, sum vs input >= {worst:.1f} dB"

    def nonfinite() -> tuple[bool, str]:
        x = band_limited(ctx.rng, 2, 0.5, rate)
        idx = ctx.rng.choice(x.size, size=30, replace=False)
        x.reshape(-1)[idx[:10]] = np.nan
        x.reshape(-1)[idx[10:20]] = np.inf
        x.reshape(-1)[idx[20:]] = -np.inf
        out, sep, _ = run(x)
        ok = np.isfinite(out).all() and sep.nonfinite_samples == 30
        return ok, f"30 NaN/+Inf/-Inf in: {sep.nonfinite_samples} replaced and counted; output finite {np.isfinite(out).all()}"

    def denormal() -> tuple[bool, str]:
        _, _, t_silence = run(np.zeros((2, n), np.float32))
        out, _, t_denormal = run(np.full((2, n), 1e-40, np.float32))
        tiny = int(np.count_nonzero((out != 0) & (np.abs(out) < FLOAT32_NORMAL)))
        ratio = t_denormal / max(t_silence, 1e-9)
        return tiny == 0 and np.isfinite(out).all() and ratio < 2.0, (
            f"constant 1e-40: {tiny} denormal samples out; time {1000 * t_denormal:.0f} ms vs silence "
            f"{1000 * t_silence:.0f} ms ({ratio:.2f}x)")

    return [_timed(silence, "signals", "silence"), _timed(full_scale, "signals", "full scale"),
            _timed(nonfinite, "signals", "NaN / Inf"), _timed(denormal, "signals", "denormal 1e-40")]


class _FailingModel:
    """``model`` as it is, except that its model calls number ``fail_calls`` raise (a backend
    falling over mid-stream: a lost GPU, a runtime error)."""

    def __init__(self, model: Any, fail_calls: set[int]) -> None:
        self._model, self._fail, self.calls = model, fail_calls, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def _maybe_fail(self) -> None:
        self.calls += 1
        if self.calls - 1 in self._fail:
            raise RuntimeError("validate: injected backend failure")

    def process_hops(self, audio: np.ndarray, state: Any) -> Any:
        self._maybe_fail()
        return self._model.process_hops(audio, state)

    def separate_segment(self, audio: np.ndarray, context: Any) -> Any:
        self._maybe_fail()
        return self._model.separate_segment(audio, context)


def check_backend_failure(ctx: Context) -> list[Result]:
    """A backend raising mid-stream in a real-time session: the callback plays the time-aligned
    mix (with its fades) while it fails, then separation comes back on its own, sample-aligned
    with what an undisturbed session gives."""
    from stemstream.realtime.engine.session import RealtimeSession

    def run() -> tuple[bool, str]:
        rate, block = ctx.model_rate, 256
        x = band_limited(ctx.rng, 2, 3.0, rate)
        blocks = x.shape[1] // block
        indata = np.ascontiguousarray(x.T)

        def play(model: Any) -> tuple[np.ndarray, RealtimeSession]:
            session = RealtimeSession(StreamingSeparator(model, rate, 2), block, warmup_blocks=0, worker_priority=None)
            out = np.zeros((len(session.stems), 2, blocks * block), np.float32)
            for k in range(blocks):
                session.callback(indata[k * block : (k + 1) * block], out[:, :, k * block : (k + 1) * block])
                session.pump()
            return out, session

        clean, _ = play(ctx.model)
        failing = _FailingModel(ctx.model, {30, 31, 32})
        out, session = play(failing)
        d = session.latency_samples
        same = np.isclose(out, clean, atol=1e-4).all(axis=(0, 1))
        n = blocks * block
        delayed = np.zeros((2, n), np.float32)
        delayed[:, d:] = x[:, : n - d]
        mix = np.isclose(out, delayed[None] / len(session.stems), atol=1e-4).all(axis=(0, 1))
        # back: the last third is separated again (not the mix) and its stems add up to the input,
        # in time; the model's state restarted, so it need not equal the undisturbed run
        tail = slice(n - blocks // 3 * block, n)
        recovered = bool((~mix[tail]).all()) and _snr_db(out[:, :, tail].sum(axis=0), delayed[:, tail]) > 40.0
        played_mix = int((mix & ~same)[d:].sum())
        ok = session.backend_errors == 3 and session.worker_error is None and recovered and played_mix >= block
        return ok, (f"3 calls raised: {session.backend_errors} counted, the mix played for {played_mix} samples, "
                    f"{'separation back and aligned' if recovered else 'separation did not come back'}")

    return [_timed(run, "failure", "backend raises mid-stream")]


#: The engine checks, in the order the table shows them.
ENGINE_CHECKS: dict[str, Callable[[Context], list[Result]]] = {
    "rates": check_rates,
    "blocks": check_blocks,
    "channels": check_channels,
    "signals": check_signals,
    "failure": check_backend_failure,
}
