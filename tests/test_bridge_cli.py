"""`stemstream live` / `stemstream devices` on the command line, and the PortAudio routing layout."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from stemstream.bridge.cli.main import main
from stemstream.bridge.hosts.jack_client import parse_connections
from stemstream.bridge.live.processor import AUTO_QUEUE_MS, LiveConfig, LiveProcessor, output_channels
from stemstream.realtime.errors import ConfigError
from stemstream.realtime.stems import STEMS
from tests.bridge_support import stand_in_factory


def test_devices_lists_without_error():
    out = subprocess.run([sys.executable, "-m", "stemstream.bridge", "devices", "--json"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    listing = json.loads(out.stdout)
    assert isinstance(listing["devices"], list) and isinstance(listing["vst3_plugins"], list)


@pytest.mark.parametrize("argv, needle", [
    (["live", "--block-size", "3"], "block_size=3"),
    (["live", "--routing", "surround"], "routing"),
    (["live", "--model", "no-such-model", "--duration", "1"], "model='no-such-model'"),
    (["live", "--duration", "-1"], "duration=-1"),
    (["live", "--queue-blocks", "0"], "queue_blocks=0"),
    (["live", "--jack-connect", "vocals_L=system:playback_1", "--model", "no-such-model"], "no-such-model"),
])
def test_bad_live_arguments_give_one_line_and_exit_2(argv, needle, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err


@pytest.mark.parametrize("block,rate,queue,blocks", [(256, 44100, None, 2), (256, 48000, None, 2),
                                                     (128, 44100, None, 4), (512, 44100, None, 1),
                                                     (1024, 48000, None, 1), (256, 44100, 3, 3)])
def test_automatic_worker_queue_covers_10_ms(block, rate, queue, blocks):
    cfg = LiveConfig(model="tiny", sample_rate=rate, block_size=block, queue_blocks=queue)
    assert cfg.worker_queue_blocks == blocks
    if queue is None:  # the fewest blocks that give at least AUTO_QUEUE_MS
        assert blocks * block / rate >= AUTO_QUEUE_MS / 1000 > (blocks - 1) * block / rate or blocks == 1


def test_interleaved_layout_for_portaudio():
    block = 64
    cfg = LiveConfig(model="tiny", sample_rate=44100, block_size=block, routing="both")
    proc = LiveProcessor(cfg, stand_in_factory(block), STEMS)
    n_out = output_channels("both", 4, 2)
    assert n_out == 10 and output_channels("stems", 4, 2) == 8 and output_channels("mix", 4, 2) == 2
    rng = np.random.default_rng(0)
    x = rng.standard_normal((block * 3, 2)).astype(np.float32)
    outdata = np.zeros((block * 3, n_out), np.float32)
    proc.process_interleaved(x, outdata)  # 3 blocks in one callback: processed in pieces
    # mix first (channels 0, 1), then stem k channel c at 2 + 2k + c
    np.testing.assert_allclose(outdata[:, 0], outdata[:, 2::2].sum(axis=1), atol=1e-5)
    np.testing.assert_allclose(outdata[:, 1], outdata[:, 3::2].sum(axis=1), atol=1e-5)
    assert np.abs(outdata[:, 2:]).max() > 0 and proc.callbacks == 1  # one host callback, three pieces
    proc.close()


def test_jack_connection_specs():
    inputs, outputs = parse_connections(["in=system:capture_1,system:capture_2", "drums_L=mixxx:in_3",
                                         "drums_L=carla:in_1", "mix_R=system:playback_2"], STEMS)
    assert inputs == ["system:capture_1", "system:capture_2"]
    assert outputs == {"drums_L": ["mixxx:in_3", "carla:in_1"], "mix_R": ["system:playback_2"]}
    for bad in ("drums_L", "in=", "vocals_L=x:y"):
        with pytest.raises(ConfigError):
            parse_connections([bad], STEMS)


@pytest.mark.parametrize("restore", [True, False])
def test_a_live_session_leaves_nothing_alive_at_exit(restore):
    """Live audio freezes the garbage collector's view (tune_interpreter); closing the session gives
    it back (restore_interpreter), so extension objects in reference cycles - soxr's resamplers were -
    are collected before the interpreter goes: no nanobind leak report at exit (19 lines before)."""
    code = (
        "import soxr\n"
        "from stemstream.bridge.live.processor import restore_interpreter, tune_interpreter\n"
        "class Holder: pass\n"
        "h = Holder(); h.me = h; h.resampler = soxr.ResampleStream(48000, 44100, 2, dtype='float32')\n"
        "tune_interpreter(); del h\n"
        + ("restore_interpreter()\n" if restore else "")
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert ("nanobind" in done.stderr) is not restore, done.stderr


def test_summary_lines_name_refusals_and_outages():
    from stemstream.bridge.cli.live import format_summary

    summary = {"seconds": 5.0, "model": "live", "audio": "jack", "sample_rate": 48000, "block_size": 256,
               "routing": "both", "engine_latency_samples": 700, "engine_latency_ms": 14.6, "total_latency_ms": 25.2,
               "deadline_misses": 0, "xruns": 0, "status_flags": 0, "nonfinite_samples": 0, "process_cpu_percent": 40,
               "cpu_cores": 2, "callback_load_mean": 0.01, "callback_load_max": 0.1, "osc_accepted": 3,
               "osc_rejected": 2, "osc_refusals": {"malformed": 0, "unknown_address": 2}, "model_switches": 0,
               "host_outages": 1, "host_outage_seconds": 2.5, "host_failure": "", "host_connected": True}
    text = format_summary(summary)
    assert "2 rejected (unknown_address 2)" in text
    assert text.splitlines()[-1] == "audio host: 1 outage, 2.5 s without audio; reconnected"
    summary.update(host_failure="JACK server 'x' stopped (closed)", host_connected=False)
    assert format_summary(summary).splitlines()[-1].endswith("; ended: JACK server 'x' stopped (closed)")
    summary["host_outages"] = 0
    assert "audio host" not in format_summary(summary)
