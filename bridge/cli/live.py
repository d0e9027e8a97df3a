"""`stemstream live`: duplex live separation through PortAudio or JACK, until Ctrl-C."""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
import threading

from stemstream.bridge.cli.stem_choice import HELP as STEMS_HELP
from stemstream.bridge.live.processor import ROUTINGS, LiveConfig
from stemstream.bridge.osc.server import DEFAULT_PORT
from stemstream.realtime.backends import BACKEND_HELP


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "live",
        help="separate live audio (PortAudio or JACK), per-stem outputs, OSC control",
        description="Live separation: input -> stems on their own outputs and/or a mix. "
        "Runs until Ctrl-C (or --duration), then prints a session summary.",
    )
    parser.add_argument("--input", metavar="DEV", help="PortAudio input device (index or name)")
    parser.add_argument("--output", metavar="DEV", help="PortAudio output device (index or name)")
    parser.add_argument("--samplerate", type=int, default=44100, help="host sample rate in Hz (default 44100)")
    parser.add_argument("--block-size", type=int, default=256, help="callback size in samples (default 256)")
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
    parser.add_argument("--routing", choices=ROUTINGS, default="both",
                        help="stems: each stem on its own outputs; mix: one mixed output; both (default)")
    parser.add_argument("--osc-port", type=int, default=DEFAULT_PORT,
                        help=f"OSC UDP port (default {DEFAULT_PORT}; 0 picks a free port)")
    parser.add_argument("--osc-host", default="127.0.0.1",
                        help="OSC bind address (default 127.0.0.1; 0.0.0.0 for a controller on the network)")
    parser.add_argument("--no-osc", action="store_true", help="do not start the OSC server")
    parser.add_argument("--effects", metavar="FILE", help="per-stem effect chains (.json or .toml)")
    parser.add_argument("--jack", action="store_true", help="run as a JACK client with named ports per stem")
    parser.add_argument("--jack-server", metavar="NAME", help="JACK server name (default: default server)")
    parser.add_argument("--jack-connect", action="append", default=[], metavar="SPEC",
                        help="auto-connect (implies --jack): 'in=system:capture_1,system:capture_2' or "
                        "'drums_L=mixxx:in_3' (repeatable)")
    parser.add_argument("--python-callback", dest="native_callback", action="store_false",
                        help="run the audio callback in Python (default: native code, no GIL on the audio thread)")
    parser.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from stemstream.bridge.hosts.jack_client import parse_connections
    from stemstream.bridge.live.runner import HostOptions, LiveRun
    from stemstream.bridge.hosts.portaudio import parse_device
    from stemstream.realtime.errors import bad_value

    if args.duration is not None and not args.duration > 0:
        raise bad_value("duration", args.duration, "a positive number of seconds")
    from stemstream.realtime.models.registry import default_model

    from stemstream.bridge.cli.stem_choice import asked_stems

    wanted = asked_stems(args.stems)
    args.model = args.model or default_model(wanted)
    config = LiveConfig(model=args.model, stems=wanted, backend=args.backend, sample_rate=args.samplerate,
                        block_size=args.block_size, routing=args.routing, queue_blocks=args.queue_blocks,
                        realtime_worker=args.realtime_worker)
    use_jack = args.jack or bool(args.jack_connect)
    options = HostOptions(
        audio="jack" if use_jack else "portaudio",
        input_device=parse_device(args.input),
        output_device=parse_device(args.output),
        jack_server=args.jack_server,
        osc_port=None if args.no_osc else args.osc_port,
        osc_host=args.osc_host,
        effects=args.effects,
        native_callback=args.native_callback,
    )
    if args.jack_connect:
        from stemstream.bridge.live.runner import model_stems

        inputs, outputs = parse_connections(args.jack_connect, model_stems(args.model, wanted), config.channels)
        options = dataclasses.replace(options, jack_inputs=tuple(inputs), jack_outputs=outputs)
    session = LiveRun(config, options)
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    where = f"OSC on {session.osc.host}:{session.osc.port}" if session.osc else "OSC off"
    print(f"stemstream live: model {session.processor.model_name}, {config.sample_rate} Hz, "
          f"block {config.block_size}, routing {config.routing}, {where}; Ctrl-C stops", file=sys.stderr)
    try:
        session.wait(args.duration, stop)
        summary = session.summary()
    finally:
        signal.signal(signal.SIGINT, previous)
        session.close()
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(format_summary(summary))
    return 0


def format_summary(s: dict) -> str:
    """The session summary as a few human-readable lines."""
    return "\n".join([
        f"session: {s['seconds']:.1f} s, model {s['model']}, {s['audio']}, {s['sample_rate']} Hz, "
        f"block {s['block_size']}, routing {s['routing']}",
        f"latency: engine {s['engine_latency_samples']} samples ({s['engine_latency_ms']:.2f} ms), "
        f"with host buffers {s['total_latency_ms']:.2f} ms",
        f"deadline misses: {s['deadline_misses']}, xruns: {s['xruns']}, status flags: {s['status_flags']}, "
        f"non-finite samples: {s['nonfinite_samples']}",
        f"cpu: process {s['process_cpu_percent']:.0f} % of one core ({s['cpu_cores']} cores), callback load "
        f"mean {100 * s['callback_load_mean']:.1f} % / max {100 * s['callback_load_max']:.1f} % of the block time",
        f"osc: {s['osc_accepted']} accepted, {s['osc_rejected']} rejected; model switches {s['model_switches']}",
        f"inference worker: scheduling {s.get('worker_scheduling', 'n/a')}, woken by {s.get('worker_wakeup', 'n/a')}"
        + (f"; audio callback: {s['audio_callback']}" if "audio_callback" in s else ""),
    ])
