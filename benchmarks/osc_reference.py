"""The OSC reference page, ``docs/osc.md``, generated from the code so it cannot drift.

:func:`render_markdown` builds the page from the route table
(:meth:`stemstream.bridge.osc.routes.OscRoutes.table`: address, argument kinds, description), the telemetry
frame (:func:`stemstream.bridge.osc.server.telemetry_messages`: addresses and argument types) and the
defaults in code (port, bind address, telemetry rate, subscriber limit, gain range, ramp,
warm-up and crossfade times). What the code does not say (what a telemetry value means, the
conventions, a controller recipe) is prose kept in this module; every address that prose
names is checked against the route table, so a renamed route fails the generator instead of
leaving a stale page.

``python -m stemstream.benchmarks.osc_reference`` rewrites ``docs/osc.md``; ``tests/test_docs_osc.py``
fails while the page on disk and :func:`render_markdown` differ.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from pathlib import Path
from typing import Any

from stemstream.bridge.live.controls import MAX_GAIN, MIN_GAIN_DB
from stemstream.bridge.live.processor import LiveConfig
from stemstream.bridge.osc.routes import ERROR_ADDRESS, PREFIX, REFUSALS, OscRoutes
from stemstream.bridge.osc.server import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    DEFAULT_TELEMETRY_HZ,
    ERROR_REPLIES_PER_S,
    LEASE_S,
    MAX_SUBSCRIBERS,
    telemetry_messages,
)
from stemstream.bridge.live.switcher import SessionSwitcher
from stemstream.realtime.errors import StemstreamError
from stemstream.realtime.stems import MODEL_SAMPLE_RATE, STEMS

#: Where ``main`` writes the page, relative to the repository root.
DOC_PATH = Path("docs") / "osc.md"

#: The placeholder that stands for any stem name in the generated addresses.
STEM = "<stem>"

#: What each argument kind of the route table accepts (``stemstream.bridge.osc.routes._check``).
KINDS: dict[str, str] = {
    "float": "an OSC float `f`, double `d` or int `i`/`h`, finite; `T`/`F` are refused",
    "flag": "an OSC int `i` equal to 0 or 1, or `T`/`F`; floats are refused (set TouchOSC buttons to "
    "send integers)",
    "str": "an OSC string `s`",
    "port": "an OSC int `i` in 1024..65535",
}

#: Telemetry addresses: the name of each argument and what the values mean.
TELEMETRY: dict[str, tuple[tuple[str, ...], str]] = {
    f"{PREFIX}/meter/{STEM}": (("rms", "peak"), "linear, full scale 1.0; post-gain; peak held since the "
                               "previous frame"),
    f"{PREFIX}/latency": (("samples", "ms"), "engine latency, as `/stemstream/get/latency` replies"),
    f"{PREFIX}/cpu": (("load",), "audio callback load, a fraction of the block time, smoothed"),
    f"{PREFIX}/deadline_misses": (("count",), "engine blocks not separated in time: the mix was heard "
                                  "instead"),
    f"{PREFIX}/xruns": (("count",), "JACK xruns / PortAudio over- and underflows"),
}

_OSC_TYPE = {int: "i", float: "f", str: "s"}

#: What each refusal reason (``stemstream.bridge.osc.routes.REFUSALS``) means, for the errors table.
REASONS: dict[str, str] = {
    "malformed": "the datagram is not an OSC 1.0 packet (the address is then empty)",
    "unknown_address": "no such address (an unknown stem, e.g. `/stemstream/stem/vocals/gain` for the "
    "instrument models, is an unknown address)",
    "wrong_type": "wrong number or types of arguments",
    "out_of_range": "a value outside its range (a gain of 9, a flag of 3, a privileged port)",
    "unknown_model": "`/stemstream/model`: no such model here, or one that cannot give this session's stems",
    "no_effects": "effect chains or parameters asked of a session started without `--effects`",
    "busy": "`/stemstream/model` while the previous switch is still loading or fading",
    "subscribers_full": f"`/stemstream/subscribe` while all {MAX_SUBSCRIBERS} subscriber slots are leased",
    "handler_errors": "a fault of stemstream's while applying a valid message (please report it)",
}


class _Placeholder:
    """A control target with one stem called ``<stem>``: the route table then names each
    per-stem address once. Only what building the table and a telemetry frame reads."""

    stems = (STEM,)
    model_name = "live"
    latency_samples = 0
    sample_rate = MODEL_SAMPLE_RATE
    controls = None

    def stats(self) -> dict[str, float]:
        return {}


def _default(cls: type, field: str) -> Any:
    """The default of ``field``: a dataclass field's, else the constructor parameter's."""
    if dataclasses.is_dataclass(cls):
        for f in dataclasses.fields(cls):
            if f.name == field:
                return f.default
    return inspect.signature(cls.__init__).parameters[field].default


def _kinds(text: str) -> str:
    """``"port?"`` -> ``[port]``; ``"-"`` (no arguments) stays ``-``."""
    if text == "-":
        return "-"
    out = []
    for kind in text.split():
        base = kind.rstrip("?")
        if base not in KINDS:
            raise StemstreamError(f"argument kind {kind!r}: not described in stemstream.benchmarks.osc_reference.KINDS")
        out.append(f"`[{base}]`" if kind.endswith("?") else f"`{base}`")
    return " ".join(out)


def _rows() -> list[tuple[str, str, str]]:
    """The route table's rows, per-stem addresses first (in table order), then the others."""
    rows = OscRoutes(_Placeholder()).table()  # type: ignore[arg-type]
    stem_rows = [r for r in rows if r[0].startswith(f"{PREFIX}/stem/")]
    return stem_rows + [r for r in rows if not r[0].startswith(f"{PREFIX}/stem/")]


def _cell(text: str) -> str:
    """``text`` safe in a Markdown table cell: ``<``, ``>`` and ``|`` escaped outside code spans."""
    parts = text.split("`")
    for i in range(0, len(parts), 2):  # even parts are outside backticks
        parts[i] = parts[i].replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")
    return "`".join(parts)


def _check_named(addresses: set[str], named: list[str]) -> None:
    for address in named:
        if address not in addresses:
            raise StemstreamError(f"stemstream.benchmarks.osc_reference names {address!r}, which the route table "
                                  "does not have: update the prose")


def _header(ramp_ms: float) -> list[str]:
    stems = ", ".join(f"`{s}`" for s in STEMS)
    return [
        "# OSC reference",
        "",
        "<!-- Generated by `python -m stemstream.benchmarks.osc_reference` from the route table in",
        "bridge/osc/routes.py; do not edit by hand (tests/test_docs_osc.py fails when this page and the",
        "code differ). Prose lives in benchmarks/osc_reference.py. -->",
        "",
        f"`stemstream live` listens for OSC over UDP on **{DEFAULT_HOST}:{DEFAULT_PORT}** by default",
        "(`--osc-port P`, 0 for any free port; `--osc-host 0.0.0.0` to accept a controller on the network;",
        f"`--no-osc` to turn it off). Every address starts with `{PREFIX}`. Replies to `get` queries go",
        "back to the sender's address and port, on the query's own address (the AbletonOSC convention).",
        "",
        f"`{STEM}` is one of the loaded model's stems, in its output order (`{PREFIX}/get/stems` replies",
        f"with them; the instrument models separate {stems}). The stem segment accepts OSC",
        f"address patterns (`*`, `?`, `[abc]`): `{PREFIX}/stem/*/mute 1` mutes every stem.",
        "",
        f"Gains, mutes, solos and bypass are smoothed on the audio side (a one-pole ramp of {ramp_ms:g} ms",
        "time constant), so no change clicks.",
        "",
    ]


def _routes_section(rows: list[tuple[str, str, str]]) -> list[str]:
    lines = [
        "## Control and queries",
        "",
        "| address | arguments | effect / reply |",
        "| --- | --- | --- |",
    ]
    for address, kinds, doc in rows:
        lines.append(f"| `{address}` | {_kinds(kinds)} | {_cell(doc)} |")
    lines += [
        "",
        "Argument kinds (`[kind]`: optional):",
        "",
    ]
    lines += [f"- `{kind}`: {text}." for kind, text in KINDS.items()]
    lines.append("")
    return lines


def _notes_section(addresses: set[str], ramp_ms: float, fade_ms: float, warmup_ms: float) -> list[str]:
    notes = {
        f"{PREFIX}/stem/{STEM}/gain": f"linear: 1 leaves the stem as separated, 0 silences it, {MAX_GAIN:g} is "
        f"+{20 * math.log10(MAX_GAIN):.2f} dB. `gain_db` sets the same gain in dB (down to {MIN_GAIN_DB:g}; "
        f"below that, mute). Ramped over {ramp_ms:g} ms.",
        f"{PREFIX}/stem/{STEM}/fx": 'a JSON list, e.g. `[{"type": "HighpassFilter", "cutoff_frequency_hz": '
        '200}]`; `[]` clears. Needs a session started with `--effects FILE` (to add pyo chains later, '
        "start with at least one `pyo.*` effect in the file); the chain is built and validated on the OSC "
        "thread and runs on the inference worker. Effect types: [live.md](live.md#per-stem-effects).",
        f"{PREFIX}/stem/{STEM}/fx/<index>/<param>": "range-checked against the effect's parameter ranges, "
        "e.g. `/stemstream/stem/drums/fx/0/cutoff_frequency_hz 400`.",
        f"{PREFIX}/bypass": "each stem output then carries the mix divided by the number of stems, so a "
        "summing mixer still hears the whole song.",
        f"{PREFIX}/acapella": "needs a `vocals` stem (the DJ models, or `--stems vocals,instrumental`); "
        "without one it is refused as an unknown address. It sets the mutes: a later mute, solo or "
        f"`{PREFIX}/instrumental` changes them again.",
        f"{PREFIX}/get/mixer": "the targets the audio side ramps toward (what OSC, MIDI and the web page "
        "set last), e.g. `\"vocals\", 1.0, 0, 0, \"drums\", 0.5, 1, 0, ..., 0`.",
        f"{PREFIX}/model": f"the new model loads in the background and runs unheard for {warmup_ms:g} ms "
        f"plus its latency, then a {fade_ms:g} ms crossfade hands over (no dropout).",
        f"{PREFIX}/get/latency": "engine latency (model, queue, fades, effects); host buffers are not "
        "included.",
        f"{PREFIX}/get/stats": "deadline misses, xruns, callback CPU load (fraction of the block time), "
        "OSC messages and datagrams refused, then each refusal reason with its count, in the order of "
        "[the table below](#errors), e.g. `..., \"malformed\", 0, \"unknown_address\", 2, ...`.",
        f"{PREFIX}/subscribe": f"a lease of {LEASE_S:g} s: send it again (same port) before the lease ends to "
        f"renew it, e.g. every {LEASE_S / 3:g} s; a controller that stops renewing stops receiving telemetry "
        f"and frees its slot. Telemetry always goes to the sender's own host; at most {MAX_SUBSCRIBERS} "
        "subscribers.",
    }
    _check_named(addresses, list(notes))
    lines = ["### Notes", ""]
    lines += [f"- `{address}`: {text}" for address, text in notes.items()]
    lines.append("")
    return lines


def _telemetry_section() -> list[str]:
    frame = telemetry_messages(_Placeholder(), lambda: ([0.0], [0.0]))
    sent = [address for address, _ in frame]
    if sorted(sent) != sorted(TELEMETRY):
        raise StemstreamError(f"telemetry addresses {sent!r} differ from those described in "
                              f"stemstream.benchmarks.osc_reference.TELEMETRY {list(TELEMETRY)!r}")
    lines = [
        f"## Telemetry (to subscribers, one OSC bundle per frame, {DEFAULT_TELEMETRY_HZ:g} Hz)",
        "",
        f"Send `{PREFIX}/subscribe` (with a port, or none for the sender's own port) to receive it for",
        f"{LEASE_S:g} s (the reply, on `{PREFIX}/subscribe`, says the port and the lease in seconds); send it",
        f"again within the lease to renew it. `{PREFIX}/unsubscribe` with the same port stops it at once.",
        "",
        "| address | arguments | meaning |",
        "| --- | --- | --- |",
    ]
    for address, values in frame:
        names, meaning = TELEMETRY[address]
        if len(names) != len(values):
            raise StemstreamError(f"telemetry {address!r} sends {len(values)} values, described "
                                  f"{len(names)}: {names!r}")
        args = ", ".join(f"`{_OSC_TYPE[type(v)]}` {n}" for n, v in zip(names, values))
        lines.append(f"| `{address}` | {args} | {meaning} |")
    lines.append("")
    return lines


def _footer(addresses: set[str]) -> list[str]:
    named = [f"{PREFIX}/stem/{STEM}/gain", f"{PREFIX}/stem/{STEM}/gain_db", f"{PREFIX}/stem/{STEM}/mute",
             f"{PREFIX}/stem/{STEM}/solo", f"{PREFIX}/bypass", f"{PREFIX}/subscribe", f"{PREFIX}/get/stats",
             f"{PREFIX}/acapella", f"{PREFIX}/instrumental", f"{PREFIX}/get/mixer"]
    _check_named(addresses, named)
    return [
        "## Mapping a controller",
        "",
        f"Faders to `{PREFIX}/stem/{STEM}/gain` (0-{MAX_GAIN:g}) or `gain_db`; buttons to `mute` and `solo`",
        f"(send integers 0/1); the full mix to `{PREFIX}/bypass 1`; one-touch `{PREFIX}/acapella 1` and",
        f"`{PREFIX}/instrumental 1`; VU meters by sending `{PREFIX}/subscribe 9001` from the controller",
        f"and mapping `{PREFIX}/meter/{STEM}` (rms, peak) at {DEFAULT_TELEMETRY_HZ:g} Hz; a layout in sync",
        f"with the other surfaces by asking `{PREFIX}/get/mixer`. MIDI controllers plug in directly",
        "(`--midi`, `--midi-map FILE`, `--midi-learn FILE`), and a phone or tablet can use the browser page",
        "(`--web`): [live.md](live.md#controllers). All of them apply changes through this route table, so",
        "a change refused here is refused the same way there.",
        "",
        "## Bad input",
        "",
        "Every datagram is decoded, type-checked and range-checked on the OSC thread before anything",
        "changes. Malformed datagrams, unknown addresses, wrong types and out-of-range values are refused,",
        f"answered and counted by reason (`{PREFIX}/get/stats`, the session summary); nothing is logged per",
        "datagram, and the server never stops for bad input. How accepted values reach the audio callback:",
        "[live.md](live.md#safety).",
        "",
    ]


def _errors_section() -> list[str]:
    if tuple(REASONS) != REFUSALS:
        raise StemstreamError(f"refusal reasons {list(REFUSALS)!r} differ from those described in "
                              f"stemstream.benchmarks.osc_reference.REASONS {list(REASONS)!r}")
    lines = [
        "## Errors",
        "",
        f"Every refused message is answered, to the sender's address and port, on `{ERROR_ADDRESS}` with",
        "three strings: the address refused (empty for a malformed datagram), the reason (below) and a",
        f"one-line message naming the value and what was expected, e.g. `{ERROR_ADDRESS}",
        f"\"{PREFIX}/stem/drums/gain\" \"out_of_range\" \"gain=9.0: expected a finite number in [0, 4.0]\"`.",
        f"At most {ERROR_REPLIES_PER_S:g} error replies go out a second; refusals beyond that are counted but",
        "not answered. `/stemstream/get/stats` counts every refusal by reason.",
        "",
        "| reason | refused because |",
        "| --- | --- |",
    ]
    lines += [f"| `{reason}` | {text} |" for reason, text in REASONS.items()]
    lines.append("")
    return lines


def render_markdown() -> str:
    """The whole ``docs/osc.md`` page, from the route table and the defaults in code."""
    ramp_ms = float(_default(LiveConfig, "ramp_ms"))
    fade_ms = float(_default(LiveConfig, "fade_ms"))
    warmup_ms = float(_default(SessionSwitcher, "warmup_ms"))
    rows = _rows()
    addresses = {address for address, _, _ in rows}
    lines = (_header(ramp_ms) + _routes_section(rows) + _notes_section(addresses, ramp_ms, fade_ms, warmup_ms)
             + _telemetry_section() + _errors_section() + _footer(addresses))
    return "\n".join(lines)


def main(root: Path | None = None) -> int:
    """Write :func:`render_markdown` to ``docs/osc.md`` under ``root`` (default: this checkout)."""
    from stemstream.benchmarks.report import wrote

    root = Path(__file__).resolve().parents[1] if root is None else Path(root)
    path = root / DOC_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(render_markdown(), encoding="utf-8")
    tmp.replace(path)
    print(wrote([path]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
