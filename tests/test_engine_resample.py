"""The low-delay resampler: chunked == one-shot, accuracy, stop band, exact delay and offset."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from stemstream.realtime.engine.resample import StreamResampler, host_latency, output_offset
from stemstream.realtime.errors import ConfigError

BLOCKS = (1, 64, 65, 8192, 8193, 2, 127)
RATES = [(48000, 44100), (44100, 48000), (96000, 44100), (44100, 96000), (22050, 44100), (192000, 44100), (44100, 44099)]


def _run(rs: StreamResampler, x: np.ndarray, blocks=None) -> np.ndarray:
    if blocks is None:
        return np.concatenate([rs.process(x), rs.flush()], axis=1)
    out, pos, i = [], 0, 0
    while pos < x.shape[1]:
        out.append(rs.process(x[:, pos : pos + blocks[i % len(blocks)]]))
        pos, i = pos + blocks[i % len(blocks)], i + 1
    out.append(rs.flush())
    return np.concatenate(out, axis=1)


@pytest.mark.parametrize("rates", RATES)
def test_chunked_equals_one_shot_and_length(rates) -> None:
    a, b = rates
    x = np.random.default_rng(0).standard_normal((2, 20000)).astype(np.float32)
    whole = _run(StreamResampler(a, b, 2), x)
    assert whole.shape == (2, -(-20000 * b // a))
    chunked = _run(StreamResampler(a, b, 2), x, BLOCKS)
    diff = np.abs(chunked - whole)
    assert chunked.shape == whole.shape and diff.max() == 0.0, f"first mismatch at {np.argwhere(diff > 0)[:1]}"


@pytest.mark.parametrize("rates", RATES)
@pytest.mark.parametrize("quality,snr_db", [("LD", 70.0), ("HQ", 100.0)])
def test_a_tone_lands_where_it_should(rates, quality: str, snr_db: float) -> None:
    """Output sample k is the input signal at time k / out_rate: no delay, no gain error."""
    a, b = rates
    x = np.sin(2 * np.pi * 1000.0 * np.arange(a // 4) / a)[None].astype(np.float32)
    y = _run(StreamResampler(a, b, 1, quality), x)[0]
    ref = np.sin(2 * np.pi * 1000.0 * np.arange(y.size) / b)
    err = (y - ref)[300:-300]
    assert 10 * np.log10(np.mean(ref[300:-300] ** 2) / np.mean(err**2)) > snr_db


def test_stop_band_rejects_what_would_alias() -> None:
    """48 -> 44.1 kHz: 23 kHz cannot be represented and must not fold back to 21.1 kHz."""
    for quality, floor_db in (("LD", -60.0), ("HQ", -90.0)):
        x = np.sin(2 * np.pi * 23000.0 * np.arange(24000) / 48000)[None].astype(np.float32)
        y = _run(StreamResampler(48000, 44100, 1, quality), x)[0, 1000:-1000]
        assert 10 * np.log10(np.mean(y**2) / 0.5) < floor_db
        x = np.sin(2 * np.pi * 12000.0 * np.arange(24000) / 48000)[None].astype(np.float32)
        y = _run(StreamResampler(48000, 44100, 1, quality), x)[0, 1000:-1000]
        assert abs(10 * np.log10(np.mean(y**2) / 0.5)) < 0.05  # pass band


def test_holdback_is_the_only_delay() -> None:
    rs = StreamResampler(48000, 44100, 1)
    assert rs.delay_ms < 0.5  # the low-delay kernel
    # nothing comes out until `holdback_samples` past the first output's input time
    assert rs.process(np.zeros((1, rs.holdback_samples), np.float32)).shape[1] == 0
    assert rs.process(np.zeros((1, 1), np.float32)).shape[1] == 1


def test_offset_shifts_the_grid_and_makes_latency_exact() -> None:
    # a 100-sample model delay at 44.1 kHz is 108.84 host samples at 48 kHz: rounded up to 109
    assert host_latency(100, 48000, 44100) == 109
    off = output_offset(100, 48000, 44100)
    assert off == Fraction(160 * 100 - 147 * 109, 160) and -1 < off * 160 / 147 <= 0
    # an impulse at model sample 300, delayed by the model's 100: peak at host sample exactly
    # (300 + 100) model samples = 435.37 host samples ... seen through the shifted grid
    x = np.zeros((1, 2000), np.float32)
    x[0, 400] = 1.0
    y = _run(StreamResampler(44100, 48000, 1, offset=off), x)[0]
    # output k reads model time k * 147/160 + off: the peak is where that equals 400
    assert int(np.argmax(y)) == round((400 - float(off)) * 160 / 147)
    with pytest.raises(ConfigError, match="offset"):
        StreamResampler(44100, 48000, 1, offset=Fraction(1, 7))


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ConfigError, match="quality"):
        StreamResampler(48000, 44100, 1, "VHQ")
    with pytest.raises(ConfigError, match="in_rate"):
        StreamResampler(0, 44100, 1)
    with pytest.raises(ConfigError, match="block.shape"):
        StreamResampler(48000, 44100, 2).process(np.zeros((1, 10), np.float32))
