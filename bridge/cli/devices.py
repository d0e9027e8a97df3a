"""`stemstream devices`: list PortAudio audio devices (and whether JACK is running)."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("devices", help="list audio devices for 'stemstream live'")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from stemstream.bridge.effects.spec import find_plugins
    from stemstream.bridge.hosts.portaudio import list_devices

    devices = list_devices()
    plugins = find_plugins()
    if args.json:
        print(json.dumps({"devices": devices, "vst3_plugins": plugins}, indent=2))
        return 0
    if not devices:
        print("no audio devices found by PortAudio (on Linux start JACK or PipeWire, or check ALSA)")
    else:
        print(f"{'idx':>3}  {'in':>3} {'out':>3}  {'rate':>6}  {'host api':<12} name")
        for d in devices:
            print(f"{d['index']:>3}  {d['max_input_channels']:>3} {d['max_output_channels']:>3}  "
                  f"{d['default_samplerate']:>6.0f}  {d['hostapi']:<12} {d['name']}")
    print(f"VST3 plugins found: {len(plugins)}" + "".join(f"\n  {p}" for p in plugins))
    return 0
