"""The native (GIL-free) JACK process callback on a real JACK dummy server: it produces the same
audio as the Python callback, sample for sample, and hands over to a new model mid-stream
(and, on a quiet machine, neither misses a deadline: ``-m timing``)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from stemstream.benchmarks.rig.jack_player import JackPlayer
from stemstream.benchmarks.rig.jack_server import DummyJackServer, jackd_available
from stemstream.bridge.live.processor import LiveConfig, LiveProcessor
from stemstream.realtime.stems import STEMS
from tests.bridge_support import JackRecorder, TinyHopModel, music_like

pytestmark = pytest.mark.skipif(not jackd_available(), reason="jackd is not installed (apt-get install jackd2)")

SR = 44100
PERIOD = 1024  # see tests/test_bridge_jack.py: the shared VM stalls now and then at 256


def _factory(name: str):
    from stemstream.realtime.engine.session import RealtimeSession
    from stemstream.realtime.engine.streamer import StreamingSeparator

    model = TinyHopModel(name=name, scale=2.0 if name == "tiny-loud" else 1.0)
    session = RealtimeSession(StreamingSeparator(model, SR, 2), PERIOD, queue_blocks=4)
    session.start()
    return session


@pytest.fixture(scope="module")
def two_callbacks() -> dict[str, Any]:
    """A native and a Python JACK callback, side by side on one dummy server and one input,
    each recording its mix; 1 s in, the native one switches to "tiny-loud". Run once for the
    tests below."""
    import jack  # JACK-Client loads libjack on import: only where jackd is installed

    from stemstream.bridge.hosts.jack_client import JackStemClient

    seconds = 3.0
    with DummyJackServer(SR, PERIOD, realtime=True) as server:
        player = JackPlayer(music_like(seconds, SR, seed=5), "player", server.name)
        recorder = JackRecorder(jack, server.name, player, ["native_L", "python_L"], int(seconds * SR))
        procs, clients = [], []
        try:
            for name, native in (("native", True), ("python", False)):
                proc = LiveProcessor(LiveConfig(model="tiny", sample_rate=SR, block_size=PERIOD, routing="mix"),
                                     _factory, STEMS)
                procs.append(proc)
                clients.append(JackStemClient(proc, f"ss-{name}", server.name, connect_inputs=player.port_names,
                                              connect_outputs={"mix_L": [f"recorder:{name}_L"]}, native=native))
            callback_modes = [c.callback_mode for c in clients]
            player.activate()
            recorder.client.activate()
            for c in clients:
                c.start()
            time.sleep(0.3)
            player.play()
            deadline = time.monotonic() + 10.0
            while recorder.filled < SR and time.monotonic() < deadline:  # 1 s of both
                time.sleep(0.02)
            native_proc = procs[0]
            native_proc.request_model("tiny-loud")  # native one only: it must end up 2x the other
            switched = native_proc.switcher.wait(10.0)
            switched_at = recorder.filled
            while recorder.filled < recorder.audio.shape[1] and time.monotonic() < deadline:
                time.sleep(0.02)
        finally:
            for c in clients:
                c.stop()
            recorder.client.deactivate()
            recorder.client.close()
            player.close()
            for p in procs:
                p.close()
        stats = [p.stats() for p in procs]
    return {"seconds": seconds, "recorder": recorder, "procs": procs, "clients": clients, "stats": stats,
            "callback_modes": callback_modes, "switched": switched, "switched_at": switched_at}


def test_native_callback_equals_python_callback_and_switches_models(two_callbacks) -> None:
    run = two_callbacks
    recorder, procs, clients, stats = run["recorder"], run["procs"], run["clients"], run["stats"]
    assert run["callback_modes"] == ["native", "python"]
    assert run["switched"]
    native, python = recorder.audio
    assert recorder.filled == recorder.audio.shape[1]
    # counted (zero only on a quiet machine: test_native_and_python_callbacks_had_no_deadline_misses)
    assert all(type(s["deadline_misses"]) is int for s in stats), stats
    assert stats[0]["callbacks"] > 0.5 * run["seconds"] * SR / PERIOD and stats[0]["model_switches"] == 1
    assert clients[0].first_frame_time is not None
    latency = procs[1].latency_samples
    assert np.abs(python[latency + PERIOD : SR]).max() > 0.05  # real signal, not silence
    # before the switch: the same kernels on the same input give the same samples
    np.testing.assert_allclose(native[:SR], python[:SR], atol=1e-6, err_msg=str(stats))
    # after the switch (warm-up + fade done before wait() returned): twice the old model
    tail = slice(run["switched_at"] + 2 * PERIOD, recorder.audio.shape[1])
    np.testing.assert_allclose(native[tail], 2.0 * python[tail], atol=1e-5, err_msg=str(stats))
    assert procs[0].model_name == "tiny-loud"


@pytest.mark.timing
def test_native_and_python_callbacks_had_no_deadline_misses(two_callbacks) -> None:
    """On a quiet machine neither session's worker missed a deadline in the run above."""
    assert all(s["deadline_misses"] == 0 for s in two_callbacks["stats"]), two_callbacks["stats"]
