"""MIDI control: mapping files, the event ring, learn, and for real on a dummy JACK server: a JACK
MIDI client in the test sends CCs and notes to ``stemstream:midi_in``, the stems' gains and mutes
follow (read back over OSC), and the control-to-audio latency of a CC is measured on JACK's
frame clock (the event's frame vs the first output sample of the gain ramp)."""

from __future__ import annotations

import collections
import json
import os
import socket
import time
from pathlib import Path

import numpy as np
import pytest

from stemstream.benchmarks.rig.jack_player import JackPlayer
from stemstream.benchmarks.rig.jack_server import DummyJackServer, jackd_available
from stemstream.bridge.control.mapping import load_map, parse_map
from stemstream.bridge.control.midi import MidiControl, MidiLearn
from stemstream.bridge.live.events import EventRing, push_event
from stemstream.bridge.live.processor import LiveConfig, LiveProcessor
from stemstream.bridge.osc.routes import OscRoutes
from stemstream.realtime.errors import ConfigError
from tests.bridge_support import stand_in_factory

DJ = ("vocals", "drums", "bass", "other")
BLOCK = 128
CC, NOTE_ON, NOTE_OFF = 0xB0, 0x90, 0x80


@pytest.fixture()
def layer():
    """A live processor with DJ stem names (no audio host) and its control layer."""
    cfg = LiveConfig(model="tiny", sample_rate=44100, block_size=BLOCK, routing="both")
    proc = LiveProcessor(cfg, stand_in_factory(BLOCK, started=False), DJ)
    yield proc, OscRoutes(proc)
    proc.close()


def test_the_shipped_map_drives_faders_mutes_solos_and_one_touch_buttons(layer) -> None:
    proc, routes = layer
    midi = MidiControl(routes, load_map("generic-8", DJ))
    assert midi.map.skipped == 12  # faders, mutes and solos 5-8: four stems here
    ctl = proc.controls
    midi.handle(CC, 1, 127)  # fader 1 at the top: unity
    midi.handle(CC | 3, 2, 0)  # fader 2 on MIDI channel 4 (the map takes any channel): silent
    midi.handle(CC, 3, 64)
    np.testing.assert_allclose(ctl.gain, [1.0, 0.0, 64 / 127, 1.0])
    midi.handle(NOTE_ON, 37, 100)  # mute drums: toggles on each press
    midi.handle(NOTE_OFF, 37, 0)
    assert ctl.mute.tolist() == [0, 1, 0, 0]
    midi.handle(NOTE_ON, 37, 100)
    assert ctl.mute.tolist() == [0, 0, 0, 0]
    midi.handle(NOTE_ON, 46, 90)  # solo bass
    assert ctl.solo.tolist() == [0, 0, 1, 0]
    midi.handle(NOTE_ON, 52, 127)  # acapella: vocals only, solos cleared
    assert ctl.mute.tolist() == [0, 1, 1, 1] and not ctl.solo.any() and ctl.acapella
    midi.handle(NOTE_ON, 53, 127)  # instrumental
    assert ctl.mute.tolist() == [1, 0, 0, 0] and ctl.instrumental
    midi.handle(NOTE_ON, 53, 127)  # again: off, every stem heard
    assert not ctl.mute.any()
    assert midi.applied == 9 and routes.counters.surfaces["midi"] == [9, 0]
    midi.handle(CC, 100, 5)  # not mapped
    assert midi.unmapped == 1


def test_a_refused_midi_change_is_refused_as_over_osc(tmp_path: Path) -> None:
    """The instrument stems have no vocals: the acapella button is refused by the control layer with
    the reason and message OSC gets, counted with the others; nothing changes."""
    stems = ("bass", "drums", "guitar", "piano")
    cfg = LiveConfig(model="tiny", sample_rate=44100, block_size=BLOCK, routing="both")
    proc = LiveProcessor(cfg, stand_in_factory(BLOCK, started=False), stems)
    try:
        routes = OscRoutes(proc)
        lines: list[str] = []
        midi = MidiControl(routes, load_map("generic-8", stems), notify=lines.append)
        refusals = midi.handle(NOTE_ON, 52, 127)
        over_osc = routes.dispatch("/stemstream/acapella", (1,))
        assert [(r.address, r.reason, r.message) for r in refusals] == [
            (over_osc.refusal.address, over_osc.refusal.reason, over_osc.refusal.message)]
        assert refusals[0].reason == "unknown_address" and "vocals" in refusals[0].message
        assert not proc.controls.mute.any()
        assert routes.counters.unknown_address == 2 and routes.counters.surfaces == {"midi": [0, 1], "osc": [0, 1]}
        assert len(lines) == 1 and "MIDI refused: /stemstream/acapella: unknown_address" in lines[0]
        # an effect parameter of a session without effects: refused, as over OSC
        fx = MidiControl(routes, parse_map({"controls": [{"cc": 20, "control": "filter", "stem": "drums"}]}, stems))
        assert [r.reason for r in fx.handle(CC, 20, 64)] == ["no_effects"]
    finally:
        proc.close()


def test_mapping_files_are_checked_naming_the_entry(tmp_path: Path) -> None:
    good = tmp_path / "map.toml"
    good.write_text('name = "knobs"\n[[controls]]\ncc = 21\ncontrol = "filter"\nstem = "drums"\n'
                    'range = [80, 18000]\n[[controls]]\nnote = 60\ncontrol = "model"\nmodel = "live-pruned"\n'
                    '[[controls]]\ncc = 22\nchannel = 2\ncontrol = "send"\nstem = 4\neffect = 1\n')
    m = load_map(good, DJ)
    filt, model, send = m.bindings
    assert filt.address() == "/stemstream/stem/drums/fx/0/cutoff_frequency_hz"
    assert filt.value(0) == pytest.approx(80.0) and filt.value(127) == pytest.approx(18000.0)
    assert filt.value(64) == pytest.approx(80.0 * (18000 / 80) ** (64 / 127))  # log curve
    assert model.address() == "/stemstream/model" and send.address() == "/stemstream/stem/other/fx/1/send_level"
    assert m.lookup("cc", 2, 22) == [send] and m.lookup("cc", 1, 22) == []
    bad = [({"cc": 200, "control": "gain", "stem": 1}, "controls[0].cc=200"),
           ({"note": 3, "control": "gain", "stem": 1}, "controls[0].note=3"),
           ({"cc": 3, "control": "volume", "stem": 1}, "controls[0].control='volume'"),
           ({"cc": 3, "control": "gain", "stem": "piano"}, "controls[0].stem='piano'"),
           ({"cc": 3, "note": 4, "control": "mute", "stem": 1}, "exactly one trigger"),
           ({"cc": 3, "control": "filter", "stem": 1, "range": [0, 100]}, "log"),
           ({"note": 3, "control": "model"}, "controls[0].model=''"),
           ({"cc": 3, "control": "gain", "stem": 1, "colour": "red"}, "controls[0].colour")]
    for entry, text in bad:
        with pytest.raises(ConfigError, match=text.replace("[", r"\[").replace("]", r"\]")):
            parse_map({"controls": [entry]}, DJ)
    with pytest.raises(ConfigError, match="generic-8"):
        load_map(tmp_path / "missing.json", DJ)


def test_midi_learn_writes_the_file_as_controls_move(layer, tmp_path: Path) -> None:
    proc, routes = layer
    path = tmp_path / "learned.json"
    lines: list[str] = []
    learn = MidiLearn(path, DJ)
    midi = MidiControl(routes, learn=learn, notify=lines.append)
    assert "vocals gain" in learn.prompt()
    for value in (10, 40, 90):  # a fader swept: learned once, then it drives the gain
        midi.handle(CC, 7, value)
    assert json.loads(path.read_text())["controls"] == [{"cc": 7, "channel": 1, "control": "gain", "stem": "vocals"}]
    assert proc.controls.gain[0] == pytest.approx(90 / 127)
    midi.handle(NOTE_ON, 60, 100)  # a button cannot be a fader: still waiting for drums gain
    assert "drums gain" in learn.prompt()
    midi.handle(CC | 1, 8, 30)
    learn._last_seen[("cc", 1, 7)] -= 10.0  # pretend the first fader was left alone for a while
    for skipped in ("bass", "other"):  # touching a learned control skips a prompt
        midi.handle(CC, 7, 50)
        learn._last_seen[("cc", 1, 7)] -= 10.0
    assert "vocals mute" in learn.prompt()
    midi.handle(NOTE_ON, 36, 100)
    midi.handle(NOTE_OFF, 36, 0)
    saved = load_map(path, DJ)
    assert [(b.kind, b.number, b.channel, b.control, b.stem) for b in saved.bindings] == [
        ("cc", 7, 1, "gain", "vocals"), ("cc", 8, 2, "gain", "drums"), ("note", 36, 1, "mute", "vocals")]
    assert proc.controls.mute[0] == 1.0  # the learned button acts at once
    again = MidiLearn(path, DJ)  # learning goes on where it stopped, asking again what was skipped
    assert "bass gain" in again.prompt() and len(again.targets) == len(learn.targets) + 2
    assert any("skipped bass gain" in line for line in lines)


def test_pushing_into_the_ring_allocates_nothing() -> None:
    """What the audio callback does per event allocates nothing: the same allocations (those of calling
    compiled code from Python) for 10 events as for 1000."""
    import numba
    from numba.core.runtime import _nrt_python, rtsys

    @numba.njit
    def push_many(events, index, n):
        for i in range(n):
            push_event(events, index, i, CC, 1, i)

    _nrt_python.memsys_enable_stats()
    ring = EventRing(capacity=64)
    push_many(ring.events, ring.index, 1)  # compiled first

    def allocations(n: int) -> int:
        before = rtsys.get_allocation_stats().alloc
        push_many(ring.events, ring.index, n)
        return rtsys.get_allocation_stats().alloc - before

    assert allocations(10) == allocations(1000)
    assert ring.dropped == 1 + 10 + 1000 - 64


def test_the_ring_keeps_channel_messages_and_counts_what_it_drops() -> None:
    ring = EventRing(capacity=4)
    assert not ring.push(5, b"\xf8")  # MIDI clock: not ours
    for i in range(6):
        ring.push(100 + i, bytes([CC, 1, i]))
    got = ring.drain()
    assert got[:, 0].tolist() == [100, 101, 102, 103] and got[:, 3].tolist() == [0, 1, 2, 3]
    assert ring.dropped == 2 and ring.drain().shape == (0, 4)
    assert push_event(ring.events, ring.index, 7, NOTE_ON, 60, 200)  # data bytes masked to 7 bits
    assert ring.drain().tolist() == [[7, NOTE_ON, 60, 200 & 0x7F]]


# ---- on a real JACK server -------------------------------------------------------------------
SR, PERIOD = 44100, 256


class MidiSender:
    """A JACK client with a MIDI output ``midictl:out``; :meth:`send` queues a message for the next
    period at ``offset`` frames; ``sent`` holds each message's JACK frame time."""

    def __init__(self, jack, server: str) -> None:
        self.client = jack.Client("midictl", servername=server, no_start_server=True)
        self.port = self.client.midi_outports.register("out")
        self.queue: collections.deque = collections.deque()
        self.sent: list[int] = []
        self.client.set_process_callback(self._process)

    def send(self, data: bytes, offset: int = 0) -> None:
        self.queue.append((offset, data))

    def _process(self, frames: int) -> None:
        self.port.clear_buffer()
        while self.queue:
            offset, data = self.queue.popleft()
            self.port.write_midi_event(offset, data)
            self.sent.append(self.client.last_frame_time + offset)


class FrameRecorder:
    """Records one input port with absolute JACK frame times: ``audio[frame - first]``."""

    def __init__(self, jack, server: str, seconds: float) -> None:
        self.client = jack.Client("rec", servername=server, no_start_server=True)
        self.port = self.client.inports.register("in")
        self.audio = np.zeros(int(seconds * SR), np.float32)
        self.recorded = np.zeros(self.audio.size, bool)  # periods lost to an xrun stay False
        self.first = -1
        self.client.set_process_callback(self._process)

    def _process(self, frames: int) -> None:
        now = self.client.last_frame_time
        if self.first < 0:
            self.first = now
        at = now - self.first
        if at + frames <= self.audio.size:
            self.audio[at:at + frames] = self.port.get_array()
            self.recorded[at:at + frames] = True


def _get_mixer(run) -> tuple:
    from stemstream.bridge.osc.codec import decode, encode_message

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(2.0)
        client.sendto(encode_message("/stemstream/get/mixer"), (run.osc.host, run.osc.port))
        return decode(client.recvfrom(4096)[0])[0][1]


def _wait(cond, timeout: float = 3.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.005)
    return cond()


@pytest.fixture()
def jack_live(monkeypatch):
    """A dummy JACK server, `LiveRun` on it with MIDI (the shipped map) and OSC, a DC player into
    it, a MIDI client connected to ``stemstream:midi_in`` and a recorder on ``vocals_L``."""
    if not jackd_available():
        pytest.skip("jackd is not installed (apt-get install jackd2)")
    import jack

    from stemstream.bridge.live.runner import HostOptions, LiveRun

    with DummyJackServer(SR, PERIOD, realtime=True) as server:
        monkeypatch.setenv("JACK_DEFAULT_SERVER", server.name)
        dc = np.full((2, SR), 0.5, np.float32)
        player = JackPlayer(dc, "player", server.name, loop=True).activate()
        options = HostOptions(audio="jack", jack_server=server.name, jack_inputs=tuple(player.port_names),
                              osc_port=0, midi_map="generic-8")
        config = LiveConfig(model="tiny", sample_rate=SR, block_size=PERIOD, routing="stems", queue_blocks=4)
        run = LiveRun(config, options, factory=stand_in_factory(PERIOD, started=True), stems=DJ)
        sender = MidiSender(jack, server.name)
        recorder = FrameRecorder(jack, server.name, 8.0)
        try:
            sender.client.activate()
            recorder.client.activate()
            sender.client.connect("midictl:out", "stemstream:midi_in")
            recorder.client.connect("stemstream:vocals_L", "rec:in")
            player.play()
            yield run, sender, recorder
        finally:
            for client in (sender.client, recorder.client):
                client.deactivate()
                client.close()
            run.close()
            player.close()


def test_jack_midi_ccs_drive_the_gains_and_the_latency_is_measured(jack_live) -> None:
    run, sender, recorder = jack_live
    assert run.host.callback_mode == "native" and run.midi_inputs.startswith("JACK stemstream:midi_in")
    # faders 1-4 to four positions; the gains follow, read back over OSC
    for cc, value in ((1, 127), (2, 64), (3, 32), (4, 0)):
        sender.send(bytes([CC, cc, value]))
    assert _wait(lambda: run.midi.applied >= 4)
    reply = _get_mixer(run)
    gains = dict(zip(reply[0:16:4], reply[1:16:4]))
    assert gains == pytest.approx({"vocals": 1.0, "drums": 64 / 127, "bass": 32 / 127, "other": 0.0})
    sender.send(bytes([NOTE_ON, 38, 100]))  # mute bass
    sender.send(bytes([NOTE_OFF, 38, 0]), offset=10)
    assert _wait(lambda: _get_mixer(run)[10] == 1)
    # control-to-audio latency: vocals fader 127 -> 0 -> 127 ..., the output is a DC level (0.5 in,
    # the tiny model's vocals = 0.2) or silence; each CC's frame vs the first output sample that moved
    time.sleep(0.3)
    latencies: list[int] = []
    disturbed: list[int] = []
    offsets = [0, 64, 128, 200, 255, 32, 96, 160, 224, 16]
    for k, offset in enumerate(offsets):
        before = len(sender.sent)
        sender.send(bytes([CC, 1, 0 if k % 2 == 0 else 127]), offset=offset)
        assert _wait(lambda: len(sender.sent) > before)
        time.sleep(0.3)  # the 10 ms ramp settles (snapped within 1e-7: 16 time constants)
        event = sender.sent[-1] - recorder.first
        window = slice(event - 4 * PERIOD, event + 20 * PERIOD)
        trace = recorder.audio[window]
        if not recorder.recorded[window].all() or np.ptp(trace[: 4 * PERIOD]) >= 1e-6:
            disturbed.append(offset)  # an xrun lost part of the recording, or a deadline miss moved the output
            continue
        steady = trace[4 * PERIOD - 1]
        moved = np.flatnonzero(np.abs(trace[4 * PERIOD:] - steady) > 1e-6)
        assert moved.size, "the gain never moved"
        latencies.append(int(moved[0]))
    summary = run.summary()
    print(f"MIDI CC -> first output sample of the ramp: {latencies} frames at {SR} Hz, period {PERIOD} "
          f"(ms: {[round(1000 * x / SR, 2) for x in latencies]}); xruns {summary['xruns']}, "
          f"misses {summary['deadline_misses']}; windows disturbed (offsets) {disturbed}")
    # the event is read at the start of its period; the control thread sets the target before the
    # next period, whose output ramps: at most one period after the event on a machine that keeps up
    # (0: an event stamped on the very frame where a period begins ramps there; seen once under CI load)
    assert len(latencies) >= 3 and all(0 <= lat <= 8 * PERIOD for lat in latencies), (latencies, disturbed)
    assert summary["midi_applied"] >= 4 + 1 + len(offsets) and summary["midi_dropped"] == 0
    assert summary["control_surfaces"]["midi"]["refused"] == 0


@pytest.mark.timing
def test_jack_midi_cc_reaches_the_output_within_one_period(jack_live) -> None:
    run, sender, recorder = jack_live
    time.sleep(0.3)
    for k in range(6):
        sender.send(bytes([CC, 1, 0 if k % 2 == 0 else 127]), offset=k * 40)
        time.sleep(0.3)
        event = sender.sent[-1] - recorder.first
        trace = recorder.audio[event - 1: event + 4 * PERIOD]
        assert recorder.recorded[event - 1: event + 4 * PERIOD].all()
        moved = np.flatnonzero(np.abs(trace - trace[0]) > 1e-6)
        assert moved.size and moved[0] <= PERIOD, (k, moved[:1])


def test_the_alsa_sequencer_is_used_where_present_and_its_absence_is_said() -> None:
    from stemstream.bridge.control.alsa import SEQUENCER, open_alsa_input

    ring = EventRing()
    alsa, why = open_alsa_input(ring, "stemstream-test")
    if alsa is None:  # containers and machines without snd-seq: one reason, no traceback, no noise
        assert why and ("rtmidi" in why or "ALSA" in why)
        if not os.path.exists(SEQUENCER):
            assert SEQUENCER in why
        return
    try:
        assert alsa.port_name == "stemstream-test:midi_in"
        alsa._on_message(([CC, 1, 99], 0.0))  # what rtmidi's thread hands over
        assert ring.drain().tolist() == [[-1, CC, 1, 99]]
    finally:
        alsa.close()
