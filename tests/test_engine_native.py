"""The session kernel run from a slot (addresses only, as a native audio thread runs it)
equals RealtimeSession.callback sample for sample, deadline misses and fades included."""

from __future__ import annotations

import numpy as np

from stemstream.realtime.engine.native import SLOT_SIZE, run_slot, session_slot
from stemstream.realtime.engine.session import RealtimeSession
from stemstream.realtime.engine.streamer import StreamingSeparator
from tests.bridge_support import TinyHopModel


def _session() -> RealtimeSession:
    return RealtimeSession(StreamingSeparator(TinyHopModel(), 44100, 2), 256, fade_samples=16)


def test_run_slot_equals_session_callback():
    by_method, by_slot = _session(), _session()
    slot = session_slot(by_slot)
    assert slot.shape == (SLOT_SIZE,) and slot.dtype == np.int64
    rng = np.random.default_rng(3)
    for k, frames in enumerate([256, 17, 256, 100, 256, 256, 1, 256, 64, 256] * 3):
        x = rng.standard_normal((frames, 2)).astype(np.float32)
        if k == 5:
            x[3, 1] = np.nan  # replaced by 0 and counted, on both paths
        a = np.zeros((4, 2, frames), np.float32)
        b = np.ones_like(a)
        by_method.callback(x, a)
        run_slot(slot, x, b)
        np.testing.assert_array_equal(a, b)
        if k % 4 != 3:  # every fourth block the worker is "late": a deadline miss with fades
            by_method.pump()
            by_slot.pump()
    assert by_slot.deadline_misses == by_method.deadline_misses > 0
    assert by_slot.nonfinite_samples == by_method.nonfinite_samples == 1
    assert by_slot.blocks == by_method.blocks == 30
