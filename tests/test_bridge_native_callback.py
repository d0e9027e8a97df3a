"""The native PortAudio callback (stemstream.bridge.hosts.portaudio_native), called through its C address with
our own buffers, equals the Python callback (LiveProcessor.process_interleaved) sample for
sample: every routing, gain / mute / solo / bypass changes mid-stream, non-finite input,
deadline misses; and PortAudio status flags are counted."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

from stemstream.bridge.live.processor import LiveConfig, LiveProcessor, output_channels
from stemstream.bridge.hosts.portaudio_native import CALLBACK_ADDRESS, NativeCallback
from stemstream.realtime.engine.session import RealtimeSession
from stemstream.realtime.engine.streamer import StreamingSeparator
from stemstream.realtime.stems import STEMS
from tests.bridge_support import TinyHopModel

BLOCK = 256
_PA_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_void_p,
                                ctypes.c_uint64, ctypes.c_void_p)(CALLBACK_ADDRESS)


def _processor(routing: str) -> LiveProcessor:
    cfg = LiveConfig(model="tiny", sample_rate=44100, block_size=BLOCK, routing=routing, ramp_ms=2.0)
    return LiveProcessor(cfg, lambda name: RealtimeSession(StreamingSeparator(TinyHopModel(), 44100, 2), BLOCK),
                         STEMS)


@pytest.mark.parametrize("routing", ["stems", "mix", "both"])
def test_native_portaudio_callback_equals_python_callback(routing: str) -> None:
    python, native = _processor(routing), _processor(routing)
    n_out = output_channels(routing, 4, 2)
    table = NativeCallback(native, n_out)
    rng = np.random.default_rng(1)
    frames_list = [BLOCK, 100, BLOCK, 3 * BLOCK, 1, BLOCK] * 4  # 3 * BLOCK: one call, pieces inside
    for k, frames in enumerate(frames_list):
        x = (0.3 * rng.standard_normal((frames, 2))).astype(np.float32)
        if k == 7:
            x[5, 0] = np.inf
        for proc in (python, native):
            if k == 4:
                proc.controls.set_gain("drums", 0.25)
                proc.controls.set_mute("bass", True)
            if k == 9:
                proc.controls.set_solo("piano", True)
            if k == 13:
                proc.controls.set_bypass(True)
        a = np.zeros((frames, n_out), np.float32)
        b = np.full((frames, n_out), 7.0, np.float32)
        python.process_interleaved(x, a)
        rc = _PA_CALLBACK(x.ctypes.data, b.ctypes.data, frames, None, 0, table.table.ctypes.data)
        assert rc == 0
        np.testing.assert_array_equal(a, b, err_msg=f"call {k}")
        if k % 5 != 2:  # now and then the worker is late: deadline misses with fades
            python.switcher.active.pump()
            native.switcher.active.pump()
    assert native.stats()["deadline_misses"] == python.stats()["deadline_misses"] > 0
    assert native.stats()["nonfinite_samples"] == 1
    assert native.callbacks == python.callbacks == len(frames_list)
    np.testing.assert_array_equal(native.mixer.rms, python.mixer.rms)


def test_status_flags_and_missing_input_are_handled() -> None:
    proc = _processor("mix")
    table = NativeCallback(proc, 2)
    out = np.full((BLOCK, 2), 7.0, np.float32)
    x = np.zeros((BLOCK, 2), np.float32)
    assert _PA_CALLBACK(x.ctypes.data, out.ctypes.data, BLOCK, None, 0x2, table.table.ctypes.data) == 0  # overflow
    assert _PA_CALLBACK(None, out.ctypes.data, BLOCK, None, 0x10, table.table.ctypes.data) == 0  # priming, no input
    stats = proc.stats()
    assert (stats["status_flags"], stats["xruns"]) == (2, 1)
    assert np.isfinite(out).all() and np.abs(out).max() == 0.0
