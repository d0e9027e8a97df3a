"""`stemstream effects`: the effects a chain can use (pedalboard and pyo built-ins, VST3 and
LV2 plugins found on this system); `--lv2 [URI]` lists LV2 plugins or one plugin's parameters."""

from __future__ import annotations

import argparse
import json
import math
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("effects", help="list effects and plugins for per-stem chains (--effects)")
    parser.add_argument("--lv2", nargs="?", const="", default=None, metavar="URI",
                        help="list LV2 plugins (with URI: that plugin's parameters)")
    parser.add_argument("--all", action="store_true", help="with --lv2: also plugins that cannot be hosted")
    parser.add_argument("--samplerate", type=int, default=44100,
                        help="Hz, for parameter ranges given per sample rate (default 44100)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run)


def _range(lo: float, hi: float) -> str:
    fmt = lambda v: "-" if math.isnan(v) else f"{v:g}"  # noqa: E731
    return f"[{fmt(lo)}, {fmt(hi)}]"


def _plugin(uri: str, rate: int, as_json: bool) -> int:
    from stemstream.bridge.effects.lv2_world import plugin_info

    info = plugin_info(uri)
    controls = [{"symbol": c.symbol, "name": c.name, "range": c.bounds(rate)[:2], "default": c.bounds(rate)[2]}
                for c in info.controls]
    if as_json:
        print(json.dumps({"uri": info.uri, "name": info.name, "audio_inputs": len(info.audio_inputs),
                          "audio_outputs": len(info.audio_outputs), "controls": controls,
                          "reports_latency": info.latency_port is not None,
                          "required_features": list(info.required_features), "problem": info.problem}, indent=2))
        return 0
    print(f"{info.name}  <{info.uri}>  audio {len(info.audio_inputs)} in x {len(info.audio_outputs)} out"
          f"{'  reports latency' if info.latency_port is not None else ''}")
    if info.problem:
        print(f"cannot be hosted: {info.problem}")
    for c in controls:
        print(f"  {c['symbol']:<16} {_range(*c['range']):<24} default {c['default']:<10g} {c['name']}")
    print(f'chain entry: {{"type": "lv2", "uri": "{info.uri}", "params": {{"<symbol>": <value>}}}}')
    return 0


def run(args: argparse.Namespace) -> int:
    from stemstream.bridge.effects.lv2_world import list_plugins
    from stemstream.realtime.errors import MissingDependencyError

    if args.lv2:
        return _plugin(args.lv2, args.samplerate, args.json)
    try:
        lv2 = [p for p in list_plugins() if args.all or not p.problem]
        missing = ""
    except MissingDependencyError as exc:
        if args.lv2 is not None:
            raise
        lv2, missing = [], str(exc)
    rows: list[dict[str, Any]] = [
        {"uri": p.uri, "name": p.name, "audio": f"{len(p.audio_inputs)}x{len(p.audio_outputs)}",
         "latency": p.latency_port is not None, "problem": p.problem} for p in lv2]
    if args.lv2 is not None:
        if args.json:
            print(json.dumps(rows, indent=2))
            return 0
        for r in rows:
            print(f"{r['uri']:<58} {r['audio']:<4} {'L' if r['latency'] else ' '} {r['name']}"
                  + (f"  ({r['problem']})" if r["problem"] else ""))
        print(f"{len(rows)} LV2 plugins{'' if args.all else ' that can be hosted (--all: every one)'}; "
              "L: reports latency; 'stemstream effects --lv2 URI' lists one plugin's parameters")
        return 0
    from stemstream.bridge.effects.spec import BUILTINS, find_plugins
    from stemstream.bridge.effects.pyo_engine import PYO_EFFECTS

    vst3 = find_plugins()
    if args.json:
        print(json.dumps({"pedalboard": BUILTINS, "pyo": PYO_EFFECTS, "vst3": vst3, "lv2": rows}, indent=2))
        return 0
    for title, table in (("pedalboard built-ins", BUILTINS), ("pyo built-ins", PYO_EFFECTS)):
        print(f"{title}:")
        for kind, params in table.items():
            print(f"  {kind:<18} " + ", ".join(f"{k} {_range(*r)}" for k, r in params.items()))
    print(f"VST3 plugins ({len(vst3)}; type 'plugin', 'path'):" + "".join(f"\n  {p}" for p in vst3))
    if missing:
        print(f"LV2 plugins: none ({missing})")
    else:
        print(f"LV2 plugins ({len(rows)} that can be hosted; type 'lv2', 'uri'; --lv2 for details):"
              + "".join(f"\n  {r['uri']}  {r['name']}" for r in rows))
    return 0
