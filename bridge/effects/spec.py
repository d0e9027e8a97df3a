"""Effect chain specs for the per-stem effects: the built-in effects and their parameter
ranges, chain validation, effects files, VST3 discovery.

A chain is a JSON/TOML list of effects, each ``{"type": NAME, <param>: value, ...}`` with
``NAME`` one of :data:`BUILTINS` (pedalboard) or :data:`stemstream.bridge.effects.pyo_engine.PYO_EFFECTS`
(``pyo.lowpass``, ``pyo.eq``, ``pyo.delay``, ``pyo.reverb``...; ranges checked here, so a
bad value is refused before it reaches the audio), or ``{"type": "plugin", "path":
"/path/Plugin.vst3", "params": {...}}`` for a VST3 plugin loaded with
``pedalboard.load_plugin`` (pedalboard hosts VST3 on Linux; it has no LV2 host), or
``{"type": "lv2", "uri": "http://...", "params": {symbol: value}}`` for an LV2 plugin hosted
through liblilv by :mod:`stemstream.bridge.effects.lv2_host` (parameters range-checked against the plugin's
ports by :mod:`stemstream.bridge.effects.lv2_world`, settable over OSC by symbol; its latency port counts like
a VST3's latency). A config file maps stems to chains::

    {"stems": {"drums": [{"type": "HighpassFilter", "cutoff_frequency_hz": 120}],
               "guitar": [{"type": "pyo.eq", "cutoff_frequency_hz": 800, "gain_db": -4},
                          {"type": "pyo.reverb", "room_size": 0.6, "send_level": 0.25}]}}

or in TOML ``[[stems.drums]]`` tables. Within one chain the ``pyo.*`` effects must be
consecutive (pedalboard effects may come before and after them): :func:`split_chain` cuts
a chain there. Building and running chains: :mod:`stemstream.bridge.effects.boards`, :mod:`stemstream.bridge.effects.rack`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

from stemstream.bridge.effects import lv2_world
from stemstream.bridge.effects.pyo_engine import PYO_EFFECTS, check_sample_rate, is_pyo_effect
from stemstream.realtime.errors import bad_value

#: Built-in effects and the accepted range of each parameter.
BUILTINS: dict[str, dict[str, tuple[float, float]]] = {
    "Gain": {"gain_db": (-60.0, 24.0)},
    "HighpassFilter": {"cutoff_frequency_hz": (10.0, 20000.0)},
    "LowpassFilter": {"cutoff_frequency_hz": (10.0, 20000.0)},
    "HighShelfFilter": {"cutoff_frequency_hz": (10.0, 20000.0), "gain_db": (-24.0, 24.0), "q": (0.1, 10.0)},
    "LowShelfFilter": {"cutoff_frequency_hz": (10.0, 20000.0), "gain_db": (-24.0, 24.0), "q": (0.1, 10.0)},
    "PeakFilter": {"cutoff_frequency_hz": (10.0, 20000.0), "gain_db": (-24.0, 24.0), "q": (0.1, 10.0)},
    "Reverb": {"room_size": (0.0, 1.0), "damping": (0.0, 1.0), "wet_level": (0.0, 1.0),
               "dry_level": (0.0, 1.0), "width": (0.0, 1.0), "freeze_mode": (0.0, 1.0)},
    "Delay": {"delay_seconds": (0.0, 2.0), "feedback": (0.0, 0.95), "mix": (0.0, 1.0)},
    "Compressor": {"threshold_db": (-60.0, 0.0), "ratio": (1.0, 20.0), "attack_ms": (0.1, 500.0),
                   "release_ms": (1.0, 2000.0)},
    "Limiter": {"threshold_db": (-60.0, 0.0), "release_ms": (1.0, 2000.0)},
    "NoiseGate": {"threshold_db": (-100.0, 0.0), "ratio": (1.0, 20.0), "attack_ms": (0.1, 500.0),
                  "release_ms": (1.0, 2000.0)},
    "Chorus": {"rate_hz": (0.01, 20.0), "depth": (0.0, 1.0), "centre_delay_ms": (1.0, 50.0),
               "feedback": (-0.95, 0.95), "mix": (0.0, 1.0)},
    "Phaser": {"rate_hz": (0.01, 20.0), "depth": (0.0, 1.0), "centre_frequency_hz": (20.0, 10000.0),
               "feedback": (-0.95, 0.95), "mix": (0.0, 1.0)},
}

#: Folders searched for VST3 plugins (plus ``$VST3_PATH``, colon-separated).
VST3_DIRS: tuple[str, ...] = ("~/.vst3", "/usr/lib/vst3", "/usr/local/lib/vst3")


def find_plugins(extra_dirs: Iterable[str] = ()) -> list[str]:
    """Paths of VST3 plugin bundles found on this system (may be empty)."""
    dirs = list(extra_dirs) + [d for d in os.environ.get("VST3_PATH", "").split(":") if d] + list(VST3_DIRS)
    found: list[str] = []
    for folder in dirs:
        root = Path(folder).expanduser()
        if root.is_dir():
            found.extend(str(p) for p in sorted(root.rglob("*.vst3")) if p.suffix == ".vst3")
    return sorted(set(found))


def checked_number(name: str, value: Any, lo: float, hi: float) -> float:
    """``value`` as a float, refused unless it is a number (not a bool) in ``[lo, hi]``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= float(value) <= hi:
        raise bad_value(name, value, f"a number in [{lo}, {hi}]")
    return float(value)


def validate_chain(spec: Any) -> list[dict[str, Any]]:
    """Check a chain spec (list of effect dicts) and return it normalised (floats)."""
    if not isinstance(spec, list):
        raise bad_value("effects", spec, "a list of {'type': ..., params...} objects")
    chain: list[dict[str, Any]] = []
    for i, item in enumerate(spec):
        if not isinstance(item, dict) or "type" not in item:
            raise bad_value(f"effects[{i}]", item, "an object with a 'type'")
        kind = item["type"]
        if kind == "lv2":
            chain.append(lv2_world.validate_item(item, i))
            continue
        if kind == "plugin":
            path = item.get("path")
            params = item.get("params", {})
            if not isinstance(path, str) or not path.endswith(".vst3"):
                raise bad_value(f"effects[{i}].path", path, "the path of a .vst3 plugin")
            if not isinstance(params, dict):
                raise bad_value(f"effects[{i}].params", params, "an object of parameter values")
            chain.append({"type": "plugin", "path": path, "params": dict(params)})
            continue
        if kind not in BUILTINS and kind not in PYO_EFFECTS:
            raise bad_value(f"effects[{i}].type", kind,
                            f"'plugin', 'lv2' or one of {sorted(BUILTINS) + sorted(PYO_EFFECTS)}")
        ranges = BUILTINS.get(kind) or PYO_EFFECTS[kind]
        out: dict[str, Any] = {"type": kind}
        for key, value in item.items():
            if key == "type":
                continue
            if key not in ranges:
                raise bad_value(f"effects[{i}].{key}", value, f"a parameter of {kind}: {sorted(ranges)}")
            out[key] = checked_number(f"effects[{i}].{key}", value, *ranges[key])
        chain.append(out)
    pyo_at = [i for i, item in enumerate(chain) if is_pyo_effect(item["type"])]
    if pyo_at and pyo_at[-1] - pyo_at[0] + 1 != len(pyo_at):
        raise bad_value("effects", [item["type"] for item in chain], "the pyo.* effects of a chain next to each other")
    return chain


def split_chain(chain: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """A validated chain as ``(pedalboard effects before pyo, pyo effects, pedalboard after)``."""
    at = [i for i, item in enumerate(chain) if is_pyo_effect(item["type"])]
    if not at:
        return list(chain), [], []
    return chain[: at[0]], chain[at[0] : at[-1] + 1], chain[at[-1] + 1 :]


def uses_pyo(chains: Iterable[list[dict[str, Any]]]) -> bool:
    """Whether any chain has a ``pyo.*`` effect."""
    return any(is_pyo_effect(item["type"]) for chain in chains for item in chain)


def load_effects_config(path: str | Path, stems: tuple[str, ...]) -> dict[str, list[dict[str, Any]]]:
    """Read a JSON (``.json``) or TOML (``.toml``) effects file into ``{stem: chain}``."""
    p = Path(path)
    if not p.is_file():
        raise bad_value("effects", str(p), "an existing .json or .toml file")
    try:
        if p.suffix == ".toml":
            import tomllib

            data = tomllib.loads(p.read_text())
        else:
            data = json.loads(p.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_value("effects", str(p), f"valid JSON/TOML ({exc})") from None
    table = data.get("stems") if isinstance(data, dict) else None
    if not isinstance(table, dict):
        raise bad_value("effects", str(p), "a top-level 'stems' table mapping stem names to chains")
    chains: dict[str, list[dict[str, Any]]] = {}
    for stem, spec in table.items():
        if stem not in stems:
            raise bad_value("effects stem", stem, f"one of {list(stems)}")
        chains[stem] = validate_chain(spec)
    return chains


def check_chain_rate(chain: list[dict[str, Any]], sample_rate: int) -> None:
    """Rate-dependent checks: pyo filter frequencies, LV2 ranges given per sample rate."""
    check_sample_rate(chain, sample_rate)
    lv2_world.check_rate(chain, sample_rate)
