"""Assemble and run a live session: model sessions, effects, OSC, an audio host watched by a
supervisor (``stemstream.bridge.hosts.supervisor``: server or device loss, reconnection); return a
summary. Used by ``stemstream live`` and the live soak benchmark. Which host, and at what rate and
block size, is settled before (``stemstream.bridge.hosts.choice.choose_host``)."""

from __future__ import annotations

import collections
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from stemstream.bridge.effects.rack import EffectsRack
from stemstream.bridge.effects.spec import load_effects_config
from stemstream.bridge.live.processor import LiveConfig, LiveProcessor, engine_factory, restore_interpreter
from stemstream.bridge.control.status import MESSAGES_KEPT, MeterTap, SessionStatus
from stemstream.bridge.live.events import EventRing
from stemstream.bridge.osc.routes import OscRoutes
from stemstream.bridge.osc.server import DEFAULT_HOST, DEFAULT_PORT, OscServer
from stemstream.realtime.errors import bad_value


@dataclass(frozen=True)
class HostOptions:
    """Where the audio comes from and goes to.

    Attributes:
        audio: ``portaudio`` (sounddevice) or ``jack`` (named JACK ports).
        input_device / output_device: PortAudio devices (index or name), ``None``: default.
        jack_server: JACK server name (``None``: default / ``$JACK_DEFAULT_SERVER``).
        jack_client: JACK client name.
        jack_inputs: JACK ports connected to our inputs.
        jack_outputs: ``{our port: [destinations]}``.
        osc_port: OSC UDP port, ``None`` disables OSC.
        osc_host: OSC bind address.
        effects: effects config file or ``None``.
        native_callback: run the audio callback as native code (no Python, no GIL on the
            audio thread: ``stemstream.bridge.hosts.jack_native`` / ``stemstream.bridge.hosts.portaudio_native``); False: a
            Python callback (JACK-Client's / sounddevice's).
        reconnect: when the JACK server or the PortAudio device goes away, wait for it and
            reconnect (False: end the session, :attr:`LiveRun.failure` says why).
        midi_map: a MIDI mapping file, or a shipped one's name (``generic-8``): MIDI on (the JACK
            port ``midi_in``, and the ALSA sequencer where present); None: off unless ``midi_learn``.
        midi_learn: build the mapping in this file by moving controls (``stemstream.bridge.control.midi``).
        web_port: serve the control page on this TCP port (0: any free port); None: off.
        web_host: the page's bind address (loopback by default; any other needs ``web_token``).
        web_token: the token the page asks for; None: one is made up where needed.
    """

    audio: str = "portaudio"
    input_device: int | str | None = None
    output_device: int | str | None = None
    jack_server: str | None = None
    jack_client: str = "stemstream"
    jack_inputs: tuple[str, ...] = ()
    jack_outputs: dict[str, list[str]] = field(default_factory=dict)
    osc_port: int | None = DEFAULT_PORT
    osc_host: str = DEFAULT_HOST
    effects: str | None = None
    native_callback: bool = True
    reconnect: bool = True
    midi_map: str | None = None
    midi_learn: str | None = None
    web_port: int | None = None
    web_host: str = DEFAULT_HOST
    web_token: str | None = None

    def __post_init__(self) -> None:
        if self.audio not in ("portaudio", "jack"):
            raise bad_value("audio", self.audio, "'portaudio' or 'jack'")


def validate_model_name(name: str) -> None:
    """Raise ``ConfigError`` unless ``name`` is a shipped model present here or a weight file."""
    from stemstream.realtime.models.registry import model_card

    model_card(name)


def model_stems(name: str, wanted: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """Stem names model ``name`` gives (from its card), or ``wanted`` after checking that the model
    can give them (``stemstream.realtime.stems.group_matrix``; ConfigError if not)."""
    from stemstream.realtime.models.registry import model_card
    from stemstream.realtime.stems import group_matrix

    have = tuple(model_card(name).stems)
    if wanted is None:
        return have
    group_matrix(have, wanted)
    return tuple(wanted)


class LiveRun:
    """A running live session; :meth:`summary` at any time, :meth:`close` at the end.

    Args:
        config: the session's settings (rate and block size as the host runs them).
        options: the audio host and OSC.
        factory / stems: a session factory and its stems (tests); default: the registry's models.
        notify: gets the one-line messages of the host supervisor (server lost, back...).

    Attributes:
        failure: why the session ended early ("" while it runs): the host was lost for good.
    """

    def __init__(self, config: LiveConfig, options: HostOptions,
                 factory: Callable[[str], Any] | None = None, stems: tuple[str, ...] | None = None,
                 notify: Callable[[str], None] | None = None) -> None:
        self.config = config
        self.options = options
        self.notify = notify or (lambda line: None)
        self.supervisor: Any = None
        self.host_left_open = False
        self._ended = threading.Event()
        if factory is None:
            validate_model_name(config.model)
        stems = stems if stems is not None else model_stems(config.model, config.stems)
        self.rack: EffectsRack | None = None
        if options.effects:
            self.rack = EffectsRack(stems, config.sample_rate, load_effects_config(options.effects, stems))
        self.processor = LiveProcessor(
            config, factory or engine_factory(config, self.rack), stems, rack=self.rack,
            validate_model=(lambda name: model_stems(name, stems)) if factory is None else None,
        )
        self.osc: OscServer | None = None
        self.host: Any = None
        self.midi: Any = None
        self.midi_ring: EventRing | None = None
        self.alsa: Any = None
        self.alsa_reason = ""
        self.web: Any = None
        self._t0 = time.monotonic()
        self._cpu0 = time.process_time()
        #: the control layer every surface applies changes through (OSC, MIDI, the web page)
        self.routes = OscRoutes(self.processor)
        self.processor.osc_counters = self.routes.counters
        self.meters = MeterTap(self.processor.read_meters)
        #: the surfaces' one-line messages (host lost and back, MIDI learn, refusals), newest last
        self.messages: collections.deque[str] = collections.deque(maxlen=MESSAGES_KEPT)
        try:
            if options.osc_port is not None:
                self.osc = OscServer(self.processor, options.osc_host, options.osc_port,
                                     meters=self.meters.reader("osc"), routes=self.routes).start()
            if options.midi_map is not None or options.midi_learn is not None:
                self._start_midi(stems)
            self._start_host()
            if options.web_port is not None:
                from stemstream.bridge.control.web import WebControl

                self.web = WebControl(self.routes, self.status_source("web"), options.web_host, options.web_port,
                                      token=options.web_token).start()
        except BaseException:
            self.close()
            raise

    def _start_midi(self, stems: tuple[str, ...]) -> None:
        """The MIDI control thread, its JACK ring (the port is made with the JACK client) and the
        ALSA sequencer input where present."""
        from stemstream.bridge.control.alsa import open_alsa_input
        from stemstream.bridge.control.mapping import load_map
        from stemstream.bridge.control.midi import MidiControl, MidiLearn

        o = self.options
        learn = MidiLearn(o.midi_learn, stems) if o.midi_learn is not None else None
        midi_map = load_map(o.midi_map, stems) if o.midi_map is not None and learn is None else None
        self.midi = MidiControl(self.routes, midi_map, learn, notify=self._note)
        if o.audio == "jack":
            self.midi_ring = self.midi.add_ring(EventRing())
        self.alsa, self.alsa_reason = open_alsa_input(self.midi.add_ring(EventRing()), o.jack_client)
        if self.alsa is None:
            self.midi.rings.pop()
        self.midi.start()

    def _note(self, line: str) -> None:
        """A surface's one-line message: kept for the status screens, and passed on."""
        self.messages.append(line)
        self.notify(line)

    def status_source(self, reader: str) -> SessionStatus:
        """What a status surface shows (the web page, the terminal), with a meter hold of its own."""
        return SessionStatus(self.processor, self.routes, self.meters.reader(reader),
                             lambda: self.host_latency_samples, self.midi, self.messages)

    @property
    def midi_inputs(self) -> str:
        """Where MIDI comes in, for the start line ("" when MIDI is off)."""
        if self.midi is None:
            return ""
        where = [f"JACK {self.options.jack_client}:midi_in"] if self.midi_ring is not None else []
        where.append(f"ALSA {self.alsa.port_name}" if self.alsa is not None else f"ALSA: {self.alsa_reason}")
        return ", ".join(where)

    def _start_host(self) -> None:
        from stemstream.bridge.hosts.jack_link import JackLink
        from stemstream.bridge.hosts.supervisor import HostSupervisor, jack_description

        o = self.options
        if o.audio == "jack":
            from stemstream.bridge.hosts.jack_client import JackStemClient

            self.host = JackStemClient(self.processor, o.jack_client, o.jack_server,
                                       o.jack_inputs, o.jack_outputs, native=o.native_callback,
                                       midi_ring=self.midi_ring).start()

            def reopen(client: Any) -> Any:
                return JackStemClient(self.processor, o.jack_client, o.jack_server, native=o.native_callback,
                                      client=client, midi_ring=self.midi_ring).start()

            wanted = [(src, f":{port.shortname}") for src, port in zip(o.jack_inputs, self.host.inports)]
            wanted += [(f":{ours}", dest) for ours, dests in o.jack_outputs.items() for dest in dests]
            link: Any = JackLink(o.jack_server, o.jack_client)
            describe = jack_description(o.jack_server)
        else:
            from stemstream.bridge.hosts.portaudio import PortAudioHost
            from stemstream.bridge.hosts.portaudio_link import PortAudioLink

            self.host = PortAudioHost(self.processor, o.input_device, o.output_device,
                                      native=o.native_callback).start()

            def reopen(client: Any) -> Any:  # the same devices, found again by name: (input, output)
                return PortAudioHost(self.processor, client[0], client[1], native=o.native_callback).start()

            wanted, link, describe = [], PortAudioLink(self.host.wanted), f"audio device {self.host.wanted.label}"
        self.supervisor = HostSupervisor(self.host, link, reopen, describe, self._note, self._end,
                                         reconnect=o.reconnect, wanted=wanted).start()
        self._t0 = time.monotonic()
        self._cpu0 = time.process_time()

    @property
    def host_latency_samples(self) -> int:
        """The host's own buffering, samples: JACK one period in and one out (the graph's), or
        PortAudio's reported input + output latency; 0 before a host runs."""
        host = self.supervisor.host if self.supervisor is not None else self.host
        if host is None:
            return 0
        return 2 * host.period if hasattr(host, "period") else int(host.host_latency_samples)

    def _end(self) -> None:
        """The supervisor's word that the session cannot go on (wakes :meth:`wait`)."""
        self._ended.set()
        stop = getattr(self, "_stop_event", None)
        if stop is not None:
            stop.set()

    @property
    def failure(self) -> str:
        """Why the session ended early ("" while it runs or after a normal stop)."""
        return self.supervisor.failure if self.supervisor is not None else ""

    def wait(self, duration_s: float | None, stop: threading.Event | None = None) -> None:
        """Block until ``duration_s`` has passed (``None``: until ``stop`` is set / Ctrl-C), or
        until the host is lost for good (:attr:`failure`)."""
        # One blocking wait (interrupted by signals on POSIX, so Ctrl-C still lands): a main
        # thread that woke up often would hold the GIL at random moments, and if the OS
        # preempted it then, the real-time audio callback would wait for it.
        stop = stop or threading.Event()
        self._stop_event = stop
        if self._ended.is_set():
            return
        stop.wait(duration_s)

    def summary(self) -> dict[str, Any]:
        """Latency, misses, xruns, status flags, CPU: the session's figures so far."""
        from stemstream.realtime.models.registry import rate_variant

        stats = self.processor.stats()
        wall = max(1e-9, time.monotonic() - self._t0)
        cpu = time.process_time() - self._cpu0
        sr = self.config.sample_rate
        engine = stats["latency_samples"]
        total = engine + self.host_latency_samples
        out = {
            "model": self.processor.model_name,
            "model_run": rate_variant(self.processor.model_name, sr),  # its 48 kHz sibling at 48/96 kHz
            "audio": self.options.audio,
            "sample_rate": sr,
            "block_size": self.config.block_size,
            "queue_blocks": self.config.worker_queue_blocks,
            "routing": self.config.routing,
            "seconds": wall,
            "engine_latency_samples": engine,
            "engine_latency_ms": 1000.0 * engine / sr,
            "host_latency_samples": self.host_latency_samples,
            "total_latency_ms": 1000.0 * total / sr,
            "process_cpu_percent": 100.0 * cpu / wall,
            "cpu_cores": os.cpu_count() or 1,
            **{k: v for k, v in stats.items() if k not in ("latency_samples", "latency_ms")},
            "callback_load_mean": stats["cpu_load"],
            "callback_load_max": stats["cpu_load_max"],
            "effects_latency_samples": self.rack.latency_samples if self.rack else 0,
            "effects_pyo_block": self.rack.pyo_block if self.rack else 0,
        }
        out["model_runtime"] = _runtime_name(self.processor.switcher.active)
        session = self.processor.switcher.active
        out["worker_scheduling"] = str(getattr(session, "worker_scheduling", "n/a"))
        out["worker_wakeup"] = str(getattr(session, "worker_wakeup", "n/a"))
        out["worker_denormals"] = str(getattr(session, "worker_denormals", "n/a"))
        out["tiny_samples"] = int(getattr(session, "tiny_samples", 0))
        out["osc_refusals"] = self.routes.counters.by_reason()
        out["control_surfaces"] = {k: {"accepted": v[0], "refused": v[1]}
                                   for k, v in self.routes.counters.surfaces.items()}
        if self.midi is not None:
            out["midi_applied"] = self.midi.applied
            out["midi_dropped"] = sum(ring.dropped for ring in self.midi.rings)
        sup = self.supervisor
        out["host_outages"] = len(sup.outages) if sup is not None else 0
        out["host_outage_seconds"] = sup.outage_seconds() if sup is not None else 0.0
        out["host_failure"] = self.failure
        out["host_connected"] = sup.host_ok if sup is not None else self.host is not None
        host = sup.host if sup is not None else self.host
        if host is not None:
            out["callback_errors"] = int(getattr(host, "callback_errors", 0))
            out["audio_callback"] = host.callback_mode
            if host.callback_mode != "native":
                out["audio_callback"] += f" ({host.native_reason})"
            client = getattr(host, "client", None)
            if client is not None and not host.lost.is_set():  # a dead client must not be asked
                out["jack_cpu_load_percent"] = float(client.cpu_load())
                out["jack_first_frame_time"] = host.first_frame_time
                out["jack_published_latency_samples"] = int(host.latency.published)
        return out

    def close(self) -> None:
        """Stop the supervisor, the audio host, OSC and every session; give the interpreter back
        its usual settings (``restore_interpreter``)."""
        if self.supervisor is not None:
            self.host = self.supervisor.close()
        if self.host is not None:
            self.host.stop()
            if hasattr(self.host, "wait_closed"):
                self.host.wait_closed(1.0)
            #: a lost host was left open (PortAudio: ``PortAudioHost.left_open``)
            link = getattr(self.supervisor, "link", None)
            self.host_left_open = bool(getattr(self.host, "left_open", False) or getattr(link, "left_open", False))
            self.host = None
        if self.web is not None:
            self.web.stop()
            self.web = None
        if self.midi is not None:
            self.midi.stop()
        if self.alsa is not None:
            self.alsa.close()
            self.alsa = None
        if self.osc is not None:
            self.osc.stop()
            self.osc = None
        self.processor.close()
        restore_interpreter()


def _runtime_name(session: Any) -> str:
    """Class name of the model object behind a session (which backend ``auto`` picked)."""
    sep = getattr(session, "separator", None)
    while sep is not None and hasattr(sep, "separator"):  # the effects wrapper
        sep = sep.separator
    model = getattr(sep, "model", None)
    return type(model).__name__ if model is not None else "unknown"
