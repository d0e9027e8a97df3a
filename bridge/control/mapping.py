"""MIDI mapping files: which controller message drives which control, and how.

A mapping is JSON (``.json``) or TOML (``.toml``)::

    {"midi_map": 1, "name": "my controller",
     "controls": [
       {"cc": 1, "control": "gain", "stem": "vocals"},
       {"cc": 21, "control": "filter", "stem": "drums", "effect": 0, "range": [80, 18000]},
       {"cc": 22, "control": "send", "stem": "other", "effect": 1},
       {"note": 36, "control": "mute", "stem": 1},
       {"note": 52, "control": "acapella"},
       {"note": 60, "control": "model", "model": "live-pruned"}]}

Each control has exactly one trigger, ``cc`` or ``note`` (0-127), and may name a MIDI
``channel`` (1-16; none: any channel). ``stem`` is a stem name or a position (1: the first stem
of the session); a position beyond the session's stems is skipped, so a map for eight faders
works with four stems. Continuous controls (CC only; the value 0-127 is mapped onto ``range``
along ``curve``, ``linear`` or ``log``):

- ``gain``: the stem's linear gain, ``range`` default ``[0, 1]`` (the fader's top is unity).
- ``filter``: parameter ``param`` (default ``cutoff_frequency_hz``) of effect ``effect``
  (default 0) of the stem's chain, ``range`` default ``[20, 20000]`` on a ``log`` curve.
- ``send``: the same with ``param`` ``send_level`` (a ``pyo.reverb``'s send), ``range`` ``[0, 1]``.
- ``fx``: any effect parameter: ``effect``, ``param`` and ``range`` required.

Buttons (a note, or a CC whose value >= 64 means pressed): ``mute``, ``solo`` (of a stem),
``acapella``, ``instrumental``, ``bypass``, with ``mode`` ``toggle`` (default: each press flips
it) or ``momentary`` (on while held); ``model`` switches to ``model`` on press.

Every binding becomes an OSC address and arguments of the session's control layer
(``stemstream.bridge.osc.routes``); that layer validates and applies them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stemstream.realtime.errors import bad_value

#: The format version written into files (``"midi_map": 1``).
FORMAT_VERSION: int = 1
#: Controls driven by a CC's value.
CONTINUOUS: tuple[str, ...] = ("gain", "filter", "send", "fx")
#: Controls driven by a button (a note, or a CC as a switch).
BUTTONS: tuple[str, ...] = ("mute", "solo", "acapella", "instrumental", "bypass", "model")
#: Controls that need a ``stem``.
PER_STEM: tuple[str, ...] = ("gain", "filter", "send", "fx", "mute", "solo")
#: Button modes.
MODES: tuple[str, ...] = ("toggle", "momentary")
#: Defaults of the continuous controls: ``(param, range, curve)``.
DEFAULTS: dict[str, tuple[str | None, tuple[float, float] | None, str]] = {
    "gain": (None, (0.0, 1.0), "linear"),
    "filter": ("cutoff_frequency_hz", (20.0, 20000.0), "log"),
    "send": ("send_level", (0.0, 1.0), "linear"),
    "fx": (None, None, "linear"),
}
#: Shipped mappings, by name (``--midi-map NAME``).
SHIPPED: dict[str, Path] = {"generic-8": Path(__file__).with_name("maps") / "generic-8.json"}
#: A CC value at or above this presses a button.
PRESS_THRESHOLD: int = 64

_KEYS = {"cc", "note", "channel", "control", "stem", "range", "curve", "effect", "param", "mode", "model"}


@dataclass(frozen=True)
class Binding:
    """One control of a mapping, resolved against a session's stems.

    Attributes:
        kind: ``"cc"`` or ``"note"``; number: 0-127; channel: 1-16, or None for any.
        control: one of :data:`CONTINUOUS` or :data:`BUTTONS`.
        stem: the stem's name (per-stem controls), else None.
        low / high / curve: the value range and curve (continuous controls).
        effect / param: the effect position and parameter (``filter``, ``send``, ``fx``).
        mode: ``toggle`` or ``momentary`` (buttons); model: the model name (``model``).
    """

    kind: str
    number: int
    control: str
    channel: int | None = None
    stem: str | None = None
    low: float = 0.0
    high: float = 1.0
    curve: str = "linear"
    effect: int = 0
    param: str = ""
    mode: str = "toggle"
    model: str = ""

    @property
    def key(self) -> tuple[str, int | None, int]:
        """``(kind, channel, number)``: what a message is looked up by."""
        return (self.kind, self.channel, self.number)

    @property
    def continuous(self) -> bool:
        return self.control in CONTINUOUS

    def value(self, data: int) -> float:
        """A CC value (0-127) mapped onto ``[low, high]`` along the curve."""
        t = min(127, max(0, int(data))) / 127.0
        if self.curve == "log":
            return self.low * (self.high / self.low) ** t
        return self.low + (self.high - self.low) * t

    def address(self) -> str:
        """The control layer's address this binding drives."""
        if self.control == "gain":
            return f"/stemstream/stem/{self.stem}/gain"
        if self.control in ("filter", "send", "fx"):
            return f"/stemstream/stem/{self.stem}/fx/{self.effect}/{self.param}"
        if self.control in ("mute", "solo"):
            return f"/stemstream/stem/{self.stem}/{self.control}"
        return f"/stemstream/{self.control}"

    def to_json(self) -> dict[str, Any]:
        """The binding as a mapping-file entry."""
        out: dict[str, Any] = {self.kind: self.number}
        if self.channel is not None:
            out["channel"] = self.channel
        out["control"] = self.control
        if self.stem is not None:
            out["stem"] = self.stem
        if self.continuous:
            param, rng, curve = DEFAULTS[self.control]
            if self.control != "gain":
                out["effect"] = self.effect
            if self.param and self.param != param:
                out["param"] = self.param
            if rng is None or (self.low, self.high) != rng:
                out["range"] = [self.low, self.high]
            if self.curve != curve:
                out["curve"] = self.curve
        elif self.control == "model":
            out["model"] = self.model
        elif self.mode != "toggle":
            out["mode"] = self.mode
        return out


@dataclass(frozen=True)
class MidiMap:
    """A mapping resolved against a session's stems: ``bindings`` (file order) and ``skipped``
    (entries whose stem position is beyond the session's stems)."""

    name: str
    bindings: tuple[Binding, ...]
    skipped: int = 0

    def lookup(self, kind: str, channel: int, number: int) -> list[Binding]:
        """The bindings a message triggers: those of its channel and those of any channel."""
        return [b for b in self.bindings if b.kind == kind and b.number == number and b.channel in (None, channel)]

    def to_json(self) -> dict[str, Any]:
        return {"midi_map": FORMAT_VERSION, "name": self.name, "controls": [b.to_json() for b in self.bindings]}

    def save(self, path: str | Path) -> None:
        """Write the mapping as JSON (through a temporary file: a reader never sees half of it)."""
        p = Path(path)
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=1) + "\n", encoding="utf-8")
        tmp.replace(p)


def load_map(source: str | Path, stems: tuple[str, ...]) -> MidiMap:
    """Read a mapping file, or a shipped one by name (:data:`SHIPPED`), for a session with ``stems``.
    Raises ``ConfigError`` naming the file, the entry and the field."""
    path = SHIPPED.get(str(source), Path(source))
    if not path.is_file():
        raise bad_value("midi_map", str(source), f"an existing .json or .toml file, or one of {sorted(SHIPPED)}")
    try:
        if path.suffix == ".toml":
            import tomllib

            data = tomllib.loads(path.read_text(encoding="utf-8"))
        else:
            data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_value("midi_map", str(path), f"valid JSON or TOML ({exc})") from None
    return parse_map(data, stems, where=str(path))


def parse_map(data: Any, stems: tuple[str, ...], where: str = "midi map") -> MidiMap:
    """A mapping from its parsed file content (see the module docstring)."""
    if not isinstance(data, dict) or not isinstance(data.get("controls"), list):
        raise bad_value(where, type(data).__name__, 'an object with a "controls" list')
    version = data.get("midi_map", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise bad_value(f"{where}: midi_map", version, f"{FORMAT_VERSION} (the format version)")
    bindings: list[Binding] = []
    skipped = 0
    for i, entry in enumerate(data["controls"]):
        binding = parse_binding(entry, stems, f"{where}: controls[{i}]")
        if binding is None:
            skipped += 1
        else:
            bindings.append(binding)
    return MidiMap(str(data.get("name", Path(where).stem)), tuple(bindings), skipped)


def parse_binding(entry: Any, stems: tuple[str, ...], where: str) -> Binding | None:
    """One mapping entry (None: its stem position is beyond ``stems``)."""
    if not isinstance(entry, dict):
        raise bad_value(where, entry, "an object")
    unknown = sorted(set(entry) - _KEYS)
    if unknown:
        raise bad_value(f"{where}.{unknown[0]}", entry[unknown[0]], f"one of the keys {sorted(_KEYS)}")
    triggers = [k for k in ("cc", "note") if k in entry]
    if len(triggers) != 1:
        raise bad_value(where, entry, 'exactly one trigger, "cc" or "note"')
    kind = triggers[0]
    number = _int(entry[kind], 0, 127, f"{where}.{kind}")
    channel = None if entry.get("channel") is None else _int(entry["channel"], 1, 16, f"{where}.channel")
    control = entry.get("control")
    if control not in CONTINUOUS + BUTTONS:
        raise bad_value(f"{where}.control", control, f"one of {list(CONTINUOUS + BUTTONS)}")
    stem = None
    if control in PER_STEM:
        stem = _stem(entry.get("stem"), stems, f"{where}.stem")
        if stem is None:
            return None
    elif "stem" in entry:
        raise bad_value(f"{where}.stem", entry["stem"], f"no stem for control {control!r}")
    if control in CONTINUOUS:
        if kind != "cc":
            raise bad_value(f"{where}.{kind}", number, f"a \"cc\" trigger: {control!r} follows a fader or knob")
        param, rng, curve = DEFAULTS[control]
        param = entry.get("param", param)
        if control != "gain" and (not isinstance(param, str) or not param):
            raise bad_value(f"{where}.param", param, "an effect parameter name, e.g. 'cutoff_frequency_hz'")
        rng = entry.get("range", rng)
        if (not isinstance(rng, (list, tuple)) or len(rng) != 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in rng)):
            raise bad_value(f"{where}.range", rng, "[low, high], two finite numbers")
        curve = entry.get("curve", curve)
        if curve not in ("linear", "log"):
            raise bad_value(f"{where}.curve", curve, "'linear' or 'log'")
        if curve == "log" and not (rng[0] > 0 and rng[1] > 0):
            raise bad_value(f"{where}.range", rng, "two positive numbers (the 'log' curve)")
        effect = _int(entry.get("effect", 0), 0, 63, f"{where}.effect")
        return Binding(kind, number, control, channel, stem, float(rng[0]), float(rng[1]), curve, effect,
                       param if control != "gain" else "")  # type: ignore[arg-type]
    mode = entry.get("mode", "toggle")
    if mode not in MODES:
        raise bad_value(f"{where}.mode", mode, f"one of {list(MODES)}")
    model = entry.get("model", "")
    if control == "model" and (not isinstance(model, str) or not model):
        raise bad_value(f"{where}.model", model, "a model name (see 'stemstream models')")
    return Binding(kind, number, control, channel, stem, mode=mode, model=model)


def _int(value: Any, low: int, high: int, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise bad_value(where, value, f"an int in [{low}, {high}]")
    return value


def _stem(value: Any, stems: tuple[str, ...], where: str) -> str | None:
    """A stem name, or a 1-based position (None: beyond ``stems``)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise bad_value(where, value, "a stem name or a position 1, 2, ...")
        return stems[value - 1] if value <= len(stems) else None
    if value not in stems:
        raise bad_value(where, value, f"one of {list(stems)} or a position 1..{len(stems)}")
    return str(value)


def empty_map(name: str) -> MidiMap:
    """A mapping with no controls (what ``--midi-learn`` starts from)."""
    return MidiMap(name, ())


__all__ = [
    "BUTTONS", "Binding", "CONTINUOUS", "MidiMap", "PRESS_THRESHOLD", "SHIPPED", "empty_map",
    "load_map", "parse_map",
]
