"""stemstream as a JACK client: named ports per stem, optional auto-connect, xrun counting.

Ports (``C`` = channel suffix ``L``/``R`` for stereo, ``1``..``n`` otherwise)::

    stemstream:in_L, stemstream:in_R               inputs (the mix to separate)
    stemstream:mix_L, stemstream:mix_R             mixed output      (routing mix/both)
    stemstream:bass_L ... stemstream:piano_R       one pair per stem (routing stems/both)
    stemstream:midi_in                             MIDI input (with a ``midi_ring``: controllers)

The process callback is native code by default (:mod:`stemstream.bridge.hosts.jack_native`: a numba
``cfunc`` running the same kernels as :meth:`stemstream.bridge.live.processor.LiveProcessor.process`, with no
Python and no GIL on JACK's thread). The Python fallback (``native=False``, or sessions
that are not the engine's) copies JACK input buffers -> a preallocated ``(frames,
channels)`` array -> :meth:`stemstream.bridge.live.processor.LiveProcessor.process` -> JACK output buffers.
JACK's xrun callback (its notification thread, Python) increments ``processor.xruns``.

Latency is published to the graph (:mod:`stemstream.bridge.hosts.jack_latency`): every output port's capture
latency is the upstream capture latency plus ``processor.latency_samples`` (model, queue,
effects), every input port's playback latency the downstream playback latency plus the same;
a model switch or an effects change makes JACK recompute them.

Server loss: JACK's shutdown callback sets :attr:`JackStemClient.lost` (with ``lost_reason`` and
``lost_at``) from JACK's thread; the connections of our ports are followed as JACK reports them
(:class:`~stemstream.bridge.hosts.jack_link.ConnectionLog`), so a new client on a restarted server can make
them again (:meth:`JackStemClient.restore`; ``stemstream.bridge.hosts.supervisor`` does both).
"""

from __future__ import annotations

import threading
import time
from typing import Any, Sequence

import numpy as np

from stemstream.bridge.hosts.jack_link import ConnectionLog, full_name, open_client, server_label
from stemstream.bridge.live.processor import LiveProcessor, tune_interpreter
from stemstream.realtime.errors import bad_value


def channel_names(channels: int) -> list[str]:
    """Port suffixes for ``channels`` channels (``L``/``R`` for stereo)."""
    return ["L", "R"] if channels == 2 else [str(i + 1) for i in range(channels)]


class JackStemClient:
    """Runs a :class:`~stemstream.bridge.live.processor.LiveProcessor` inside a JACK client.

    Args:
        processor: the live path (its ``sample_rate`` must equal the server's, and its
            ``block_size`` should equal the server's buffer size).
        client_name: JACK client name (ports are ``<client_name>:<port>``).
        server_name: JACK server name (``None``: ``$JACK_DEFAULT_SERVER`` or ``default``).
        connect_inputs: source ports connected to our inputs, in channel order
            (e.g. ``["system:capture_1", "system:capture_2"]``).
        connect_outputs: ``{our_port_short_name: [destination ports]}``.
        native: run the process callback as native code (:mod:`stemstream.bridge.hosts.jack_native`: no
            Python and no GIL on JACK's thread) where possible; False, or where it is not
            possible (``native_reason`` says why), JACK-Client's Python callback runs.
        client: a ``jack.Client`` already open on the server (e.g. the one that told the rate
            and period), used instead of opening one.
        midi_ring: a :class:`stemstream.bridge.live.events.EventRing`: registers the MIDI input
            port ``midi_in``, whose events the process callback copies into it (a control thread
            applies them, ``stemstream.bridge.control.midi``); None: no MIDI port.

    Attributes:
        callback_mode: ``"native"`` or ``"python"``.
        lost: set (from JACK's thread) when the server shut the client down: the server stopped
            or was killed; ``lost_reason`` says what JACK said, ``lost_at`` when (monotonic).
        connections: the connections of our ports, followed as JACK reports them.
        ports_changed: set whenever a port appears on the server (a client came back).
    """

    def __init__(
        self,
        processor: LiveProcessor,
        client_name: str = "stemstream",
        server_name: str | None = None,
        connect_inputs: Sequence[str] = (),
        connect_outputs: dict[str, Sequence[str]] | None = None,
        native: bool = True,
        client: Any = None,
        midi_ring: Any = None,
    ) -> None:
        self.processor = processor
        self.server_name = server_name
        cfg = processor.config
        self.client = client if client is not None else open_client(client_name, server_name)
        rate, period = int(self.client.samplerate), int(self.client.blocksize)  # before any close
        #: the server's period, frames
        self.period = period
        if rate != cfg.sample_rate:
            self.client.close()
            raise bad_value("samplerate", cfg.sample_rate, f"the rate of JACK server {server_label(server_name)}, "
                            f"{rate} Hz (leave --samplerate out to adopt it)")
        if period > cfg.block_size:
            self.client.close()
            raise bad_value("block_size", cfg.block_size, f">= the period of JACK server "
                            f"{server_label(server_name)}, {period} (leave --block-size out to adopt it)")
        self._closed = False
        self.lost = threading.Event()
        self.lost_reason = ""
        self.lost_at = 0.0
        self.ports_changed = threading.Event()
        self.connections = ConnectionLog(f"{self.client.name}:")
        names = channel_names(cfg.channels)
        self.inports = [self.client.inports.register(f"in_{n}") for n in names]
        self.mix_ports: list[Any] = []
        self.stem_ports: list[list[Any]] = []
        if cfg.routing in ("mix", "both"):
            self.mix_ports = [self.client.outports.register(f"mix_{n}") for n in names]
        if cfg.routing in ("stems", "both"):
            self.stem_ports = [
                [self.client.outports.register(f"{stem}_{n}") for n in names] for stem in processor.stems
            ]
        self.midi_ring = midi_ring
        self.midi_port = self.client.midi_inports.register("midi_in") if midi_ring is not None else None
        m = cfg.block_size
        self._in = np.zeros((m, cfg.channels), dtype=np.float32)
        self._stem_out = np.zeros((len(processor.stems), cfg.channels, m), dtype=np.float32)
        self._mix_out = np.zeros((cfg.channels, m), dtype=np.float32)
        self.callback_errors = 0
        self.last_error = ""
        self._first_frame_time: int | None = None
        self.connect_inputs = list(connect_inputs)
        self.connect_outputs = dict(connect_outputs or {})
        self.native: Any = None
        self.native_reason = "not requested" if not native else ""
        if native:
            from stemstream.bridge.hosts.jack_native import NativeProcess, native_supported

            self.native_reason = native_supported(processor)
            if not self.native_reason:
                outs = self.mix_ports + [p for ports in self.stem_ports for p in ports]
                self.native = NativeProcess(processor, self.client, self.inports, outs,
                                            bool(self.mix_ports), bool(self.stem_ports),
                                            midi_port=self.midi_port, midi_ring=midi_ring)
        if self.native is None:
            self.client.set_process_callback(self._process)
        self.client.set_xrun_callback(self._xrun)
        self.client.set_shutdown_callback(self._shutdown)
        self.client.set_port_connect_callback(self.connections.on_connect)
        self.client.set_port_registration_callback(self._port_registered)
        from stemstream.bridge.hosts.jack_latency import LatencyPublisher

        outputs = self.mix_ports + [p for ports in self.stem_ports for p in ports]
        self.latency = LatencyPublisher(self.client, self.inports, outputs, lambda: processor.latency_samples)
        processor.add_latency_listener(self.latency.recompute)

    @property
    def callback_mode(self) -> str:
        """``"native"`` (compiled process callback, no GIL) or ``"python"``."""
        return "python" if self.native is None else "native"

    @property
    def first_frame_time(self) -> int | None:
        """JACK frame time of the first processed period (``None`` before): the stream's sample 0."""
        return self.native.first_frame_time if self.native is not None else self._first_frame_time

    @property
    def name(self) -> str:
        """The client's name as JACK knows it."""
        return self.client.name

    def _xrun(self, delayed_usecs: float) -> None:
        self.processor.xruns += 1

    def _shutdown(self, status: Any, reason: str) -> None:
        # JACK's thread, as for a signal handler: note it and set a flag, nothing else
        self.lost_at = time.monotonic()
        self.lost_reason = str(reason)
        self.lost.set()

    def _port_registered(self, port: Any, registered: bool) -> None:
        if registered:
            self.ports_changed.set()

    def _process(self, frames: int) -> None:
        if self._first_frame_time is None:
            self._first_frame_time = self.client.last_frame_time
        try:
            if self.midi_port is not None:
                frame0 = self.client.last_frame_time
                for offset, data in self.midi_port.incoming_midi_events():
                    self.midi_ring.push(frame0 + offset, data)
            for c, port in enumerate(self.inports):
                self._in[:frames, c] = port.get_array()
            stem_out = self._stem_out[:, :, :frames] if self.stem_ports else None
            mix_out = self._mix_out[:, :frames] if self.mix_ports else None
            self.processor.process(self._in[:frames], stem_out, mix_out)
            for c, port in enumerate(self.mix_ports):
                port.get_array()[:] = self._mix_out[c, :frames]
            for s, ports in enumerate(self.stem_ports):
                for c, port in enumerate(ports):
                    port.get_array()[:] = self._stem_out[s, c, :frames]
        except Exception as exc:  # never let an exception kill the JACK thread: silence + count
            self.callback_errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            for port in self.mix_ports + [p for ports in self.stem_ports for p in ports]:
                port.get_array().fill(0.0)

    def start(self) -> "JackStemClient":
        """Activate and make the requested connections."""
        tune_interpreter()
        self.client.activate()
        for port, source in zip(self.inports, self.connect_inputs):
            self._connect(source, port.name)
        for short, destinations in self.connect_outputs.items():
            ours = f"{self.client.name}:{short}"
            for dest in destinations:
                self._connect(ours, dest)
        return self

    def _connect(self, source: str, destination: str) -> None:
        try:
            self.client.connect(source, destination)
        except Exception as exc:
            raise bad_value("jack_connect", f"{source} -> {destination}", f"existing, compatible ports ({exc})") from None

    def restore(self, pairs: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
        """Make the connections ``pairs`` (``(source, destination)``; our ports as ``":mix_L"``,
        see ``ConnectionLog.snapshot``) where both ports exist and they are not made yet;
        returns those still missing (a client that has not come back yet)."""
        missing = []
        for pair in pairs:
            source, destination = (full_name(p, self.client.name) for p in pair)
            try:
                if destination not in [p.name for p in self.client.get_all_connections(source)]:
                    self.client.connect(source, destination)
            except Exception:  # a port not there (yet)
                missing.append(pair)
        return missing

    def stop(self) -> None:
        """Deactivate and close the client (quietly, also after the server went away; once)."""
        self.processor.remove_latency_listener(self.latency.recompute)
        if self._closed:
            return
        self._closed = True
        if self.lost.is_set():
            abandon_client(self.client)
            return
        try:
            self.client.deactivate()
        except Exception:  # the server went away meanwhile: closing is all that is left
            pass
        finally:
            self.client.close()

    def __enter__(self) -> "JackStemClient":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def abandon_client(client: Any) -> None:
    """Let go of a client whose server died without calling ``jack_client_close``: on a dead
    server libjack's close can deadlock with its own notification thread (seen: close waiting for
    that thread while it sits in a port-registration callback), and JACK-Client's ``__del__``
    would call it at garbage collection. Its memory is leaked; nothing else is held."""
    try:
        import jack

        client._ptr = jack._ffi.NULL  # JACK-Client's own handle: close() and __del__ skip a NULL one
    except Exception:  # another JACK-Client layout: keep a reference so __del__ never runs
        _ABANDONED.append(client)


_ABANDONED: list[Any] = []


def parse_connections(
    specs: Sequence[str], stems: Sequence[str], channels: int = 2
) -> tuple[list[str], dict[str, list[str]]]:
    """``--jack-connect`` values: ``in=PORT,PORT`` (sources for our inputs, in channel order)
    or ``OURPORT=DEST[,DEST]`` (e.g. ``mix_L=system:playback_1``, ``drums_L=mixxx:in_3``)."""
    inputs: list[str] = []
    outputs: dict[str, list[str]] = {}
    names = channel_names(channels)
    valid = {f"mix_{n}" for n in names} | {f"{s}_{n}" for s in stems for n in names}
    for spec in specs:
        if "=" not in spec:
            raise bad_value("jack_connect", spec, "'in=SRC1,SRC2' or 'PORT=DEST[,DEST]'")
        key, _, value = spec.partition("=")
        targets = [v for v in value.split(",") if v]
        if not targets:
            raise bad_value("jack_connect", spec, "at least one port after '='")
        if key == "in":
            inputs = targets
        elif key in valid:
            outputs.setdefault(key, []).extend(targets)
        else:
            raise bad_value("jack_connect", key, f"'in' or one of {sorted(valid)}")
    return inputs, outputs
