"""`stemstream live`: duplex live separation through PortAudio or JACK, until Ctrl-C.

Exit codes: 0 after Ctrl-C or ``--duration``; 2 for a bad argument or a host that cannot be
opened; :data:`EXIT_HOST_LOST` when the audio host went away and the session could not go on
(``--no-reconnect``, a JACK server back at another rate, PortAudio unable to start again)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys
import threading
from typing import Any

from stemstream.bridge.cli.stem_choice import HELP as STEMS_HELP
from stemstream.bridge.control.terminal import LOG_INTERVAL_S, StatusLog, StatusScreen
from stemstream.bridge.control.web import DEFAULT_WEB_PORT
from stemstream.bridge.live.processor import ROUTINGS, LiveConfig
from stemstream.bridge.osc.server import DEFAULT_PORT
from stemstream.realtime.backends import BACKEND_HELP

#: Exit code of a session that ended because its audio host was lost.
EXIT_HOST_LOST = 3


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "live",
        help="separate live audio (PortAudio or JACK), per-stem outputs, OSC control",
        description="Live separation: input -> stems on their own outputs and/or a mix. "
        "Runs until Ctrl-C (or --duration), then prints a session summary.",
    )
    parser.add_argument("--input", metavar="DEV", help="PortAudio input device (index or name)")
    parser.add_argument("--output", metavar="DEV", help="PortAudio output device (index or name)")
    parser.add_argument("--samplerate", type=int, default=None,
                        help="host sample rate in Hz (default: the JACK server's, or the output device's)")
    parser.add_argument("--block-size", type=int, default=None,
                        help="callback size in samples (default: the JACK server's period, or 256 with PortAudio)")
    parser.add_argument("--queue-blocks", type=int, default=None,
                        help="blocks of slack the inference worker gets (default: enough for 10 ms, 2 at 256 "
                        "samples; 1 = lowest latency on a machine that never stalls; more = safer, +latency)")
    parser.add_argument("--no-realtime-worker", dest="realtime_worker", action="store_false",
                        help="do not ask for real-time scheduling for the inference worker (default: ask; "
                        "Linux, falls back silently without permission)")
    parser.add_argument("--stems", default=None, help=STEMS_HELP)
    parser.add_argument("--model", default=None,
                        help="model name (default dj-live: vocals, drums, bass, other; 'live' for bass, drums, "
                             "guitar, piano; see 'stemstream models')")
    parser.add_argument("--backend", default="auto", help=BACKEND_HELP)
    parser.add_argument("--routing", choices=ROUTINGS, default=None,
                        help="stems: each stem on its own outputs; mix: one mixed output; both (default with JACK; "
                        "with PortAudio the richest the output device has channels for)")
    parser.add_argument("--osc-port", type=int, default=DEFAULT_PORT,
                        help=f"OSC UDP port (default {DEFAULT_PORT}; 0 picks a free port)")
    parser.add_argument("--osc-host", default="127.0.0.1",
                        help="OSC bind address (default 127.0.0.1; 0.0.0.0 for a controller on the network)")
    parser.add_argument("--no-osc", action="store_true", help="do not start the OSC server")
    parser.add_argument("--effects", metavar="FILE", help="per-stem effect chains (.json or .toml)")
    parser.add_argument("--jack", action="store_true",
                        help="run as a JACK client with named ports per stem (default: when a JACK server runs)")
    parser.add_argument("--portaudio", action="store_true",
                        help="use PortAudio's devices even when a JACK server runs")
    parser.add_argument("--no-reconnect", dest="reconnect", action="store_false",
                        help=f"exit (code {EXIT_HOST_LOST}) when the JACK server or the audio device goes away "
                        "(default: say so, wait for it, reconnect: ports and connections, or the devices by name)")
    parser.add_argument("--jack-server", metavar="NAME",
                        help="JACK server name (implies --jack; default: $JACK_DEFAULT_SERVER, else the default server)")
    parser.add_argument("--jack-connect", action="append", default=[], metavar="SPEC",
                        help="auto-connect (implies --jack): 'in=system:capture_1,system:capture_2' or "
                        "'drums_L=mixxx:in_3' (repeatable)")
    parser.add_argument("--python-callback", dest="native_callback", action="store_false",
                        help="run the audio callback in Python (default: native code, no GIL on the audio thread)")
    parser.add_argument("--midi", action="store_true",
                        help="MIDI control with the shipped map for a generic 8-fader controller (faders CC 1-8 -> "
                        "stem gains, notes 36-43 mutes, 44-51 solos, 52 acapella, 53 instrumental, 54 bypass): a JACK "
                        "MIDI port stemstream:midi_in, and the ALSA sequencer where present")
    parser.add_argument("--midi-map", metavar="FILE",
                        help="MIDI control with your mapping (.json or .toml; see docs/live.md), or a shipped one "
                        "by name (generic-8)")
    parser.add_argument("--midi-learn", metavar="FILE",
                        help="build a MIDI mapping by moving controls as prompted; FILE is written after each one")
    parser.add_argument("--web", nargs="?", type=int, const=DEFAULT_WEB_PORT, default=None, metavar="PORT",
                        help=f"serve the control page (faders, mutes, solos, meters) on PORT (default "
                        f"{DEFAULT_WEB_PORT}; 0 picks a free port)")
    parser.add_argument("--web-host", default="127.0.0.1",
                        help="the page's bind address (default 127.0.0.1; 0.0.0.0 for a phone or tablet on the "
                        "network, which then needs the token in the URL printed at start)")
    parser.add_argument("--web-token", metavar="TOKEN",
                        help="the page's token (default: made up at start when --web-host is not loopback)")
    parser.add_argument("--status", choices=("auto", "screen", "lines", "off"), default="auto",
                        help="console status: a one-screen status redrawn in place (screen), a plain line every "
                        "--status-interval seconds (lines), or none; auto (default): screen when stdout is a "
                        "terminal, else lines")
    parser.add_argument("--status-interval", type=float, default=LOG_INTERVAL_S, metavar="S",
                        help=f"seconds between plain status lines (default {LOG_INTERVAL_S:g})")
    parser.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from stemstream.bridge.cli.stem_choice import asked_stems
    from stemstream.bridge.hosts.choice import choose_host
    from stemstream.bridge.hosts.jack_client import parse_connections
    from stemstream.bridge.hosts.portaudio import parse_device
    from stemstream.bridge.live.runner import HostOptions, LiveRun, model_stems
    from stemstream.realtime.errors import bad_value
    from stemstream.realtime.models.registry import default_model, model_label

    if args.duration is not None and not args.duration > 0:
        raise bad_value("duration", args.duration, "a positive number of seconds")
    if sum(x is not None and x is not False for x in (args.midi or None, args.midi_map, args.midi_learn)) > 1:
        raise bad_value("midi", "--midi, --midi-map and --midi-learn", "one of them")
    if not 0.05 <= args.status_interval <= 3600:
        raise bad_value("status_interval", args.status_interval, "a number of seconds in [0.05, 3600]")
    use_jack = args.jack or bool(args.jack_connect) or args.jack_server is not None
    if use_jack and args.portaudio:
        raise bad_value("portaudio", True, "not with --jack or --jack-connect (choose one host)")
    wanted = asked_stems(args.stems)
    args.model = args.model or default_model(wanted)
    stems = model_stems(args.model, wanted)  # an unknown model is refused before any device is opened
    # the values given are checked before the host is probed; what is left open, the host settles
    config = LiveConfig(model=args.model, stems=wanted, backend=args.backend,
                        sample_rate=44100 if args.samplerate is None else args.samplerate,
                        block_size=256 if args.block_size is None else args.block_size, routing=args.routing or "both",
                        queue_blocks=args.queue_blocks, realtime_worker=args.realtime_worker)
    inputs, outputs = parse_connections(args.jack_connect, stems, config.channels)
    device_in, device_out = parse_device(args.input), parse_device(args.output)
    choice = choose_host("jack" if use_jack else "portaudio" if args.portaudio else "auto",
                         jack_server=args.jack_server, input_device=device_in, output_device=device_out,
                         sample_rate=args.samplerate, block_size=args.block_size, routing=args.routing,
                         channels=config.channels, stems=len(stems))
    config = dataclasses.replace(config, sample_rate=choice.sample_rate, block_size=choice.block_size,
                                 routing=choice.routing, channels=choice.channels)
    options = HostOptions(
        audio=choice.audio, input_device=device_in, output_device=device_out, jack_server=args.jack_server,
        jack_inputs=tuple(inputs), jack_outputs=outputs, osc_port=None if args.no_osc else args.osc_port,
        osc_host=args.osc_host, effects=args.effects, native_callback=args.native_callback,
        reconnect=args.reconnect, midi_map="generic-8" if args.midi else args.midi_map, midi_learn=args.midi_learn,
        web_port=args.web, web_host=args.web_host, web_token=args.web_token,
    )
    screen_on = threading.Event()  # while the screen is up, its messages area shows the one-line messages

    def notify(line: str) -> None:
        if not screen_on.is_set():
            print(line, file=sys.stderr, flush=True)

    session = LiveRun(config, options, notify=notify)
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    where = f"OSC on {session.osc.host}:{session.osc.port}" if session.osc else "OSC off"
    if session.midi is not None:
        where += f"; MIDI: {session.midi_inputs}"
    if session.web is not None:
        where += f"; control page: {session.web.url}"
    label = model_label(session.processor.model_name, config.sample_rate)
    print(f"stemstream live: model {label}, {choice.detail}, block {config.block_size}, "
          f"routing {config.routing}, {where}; Ctrl-C stops", file=sys.stderr, flush=True)
    console = _console(args.status, args.status_interval, session, f"{choice.detail}, block {config.block_size}")
    try:
        if isinstance(console, StatusScreen):
            screen_on.set()
        if console is not None:
            console.start()
        try:
            session.wait(args.duration, stop)
        finally:
            if console is not None:
                console.stop()
            screen_on.clear()
        summary = session.summary()
    finally:
        signal.signal(signal.SIGINT, previous)
        session.close()
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(format_summary(summary))
    code = EXIT_HOST_LOST if summary["host_failure"] else 0
    if session.host_left_open:
        # a lost stream PortAudio could not close still has its threads (ALSA's, libjack's): the
        # libraries' teardown at a normal exit may crash under them, so leave without it
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _console(mode: str, interval_s: float, session: Any, header: str) -> StatusScreen | StatusLog | None:
    """The console status: the one-screen status on a terminal, plain lines on stderr otherwise."""
    if mode == "off":
        return None
    if mode == "screen" or (mode == "auto" and sys.stdout.isatty()):
        return StatusScreen(session.status_source("terminal"), sys.stdout, header)
    return StatusLog(session.status_source("terminal"), lambda line: print(line, file=sys.stderr, flush=True),
                     interval_s)


def format_summary(s: dict) -> str:
    """The session summary as a few human-readable lines."""
    return "\n".join([
        f"session: {s['seconds']:.1f} s, model {s['model']}"
        + (f" (ran {s['model_run']})" if s.get("model_run", s["model"]) != s["model"] else "")
        + f", {s['audio']}, {s['sample_rate']} Hz, "
        f"block {s['block_size']}, routing {s['routing']}",
        f"latency: engine {s['engine_latency_samples']} samples ({s['engine_latency_ms']:.2f} ms), "
        f"with host buffers {s['total_latency_ms']:.2f} ms",
        f"deadline misses: {s['deadline_misses']}, xruns: {s['xruns']}, status flags: {s['status_flags']}, "
        f"non-finite samples: {s['nonfinite_samples']}"
        + (f", backend errors: {s['backend_errors']} (last: {s['last_backend_error']}; the mix played meanwhile)"
           if s.get("backend_errors") else ""),
        f"cpu: process {s['process_cpu_percent']:.0f} % of one core ({s['cpu_cores']} cores), callback load "
        f"mean {100 * s['callback_load_mean']:.1f} % / max {100 * s['callback_load_max']:.1f} % of the block time",
        f"control: {s['osc_accepted']} accepted, {s['osc_rejected']} rejected{_reasons(s)}{_surfaces(s)}; "
        f"model switches {s['model_switches']}",
        f"inference worker: scheduling {s.get('worker_scheduling', 'n/a')}, woken by {s.get('worker_wakeup', 'n/a')}, "
        f"denormals {s.get('worker_denormals', 'n/a')}"
        + (f"; audio callback: {s['audio_callback']}" if "audio_callback" in s else ""),
    ] + _outage_lines(s))


def _surfaces(s: dict) -> str:
    """`` (osc 3/0, midi 120/1)``: accepted/refused per control surface, when more than OSC was used."""
    counts = s.get("control_surfaces", {})
    if set(counts) <= {"osc"}:
        return ""
    return " [" + ", ".join(f"{k} {v['accepted']}/{v['refused']}" for k, v in counts.items()) + "]"


def _reasons(s: dict) -> str:
    """`` (unknown_address 2, wrong_type 1)``: the refusals by reason, if any."""
    counts = [f"{reason} {n}" for reason, n in s.get("osc_refusals", {}).items() if n]
    return f" ({', '.join(counts)})" if counts else ""


def _outage_lines(s: dict) -> list[str]:
    """The host's outages (none: no line), and why the session ended early."""
    if not s.get("host_outages"):
        return []
    n = s["host_outages"]
    line = f"audio host: {n} outage{'s' if n != 1 else ''}, {s['host_outage_seconds']:.1f} s without audio"
    if s.get("host_failure"):
        return [f"{line}; ended: {s['host_failure']}"]
    return [line + ("; reconnected" if s.get("host_connected") else "; not back when the session ended")]
