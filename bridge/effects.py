"""Per-stem effect chains: pedalboard built-ins and VST3 plugins, from a file or OSC.

A chain is a JSON/TOML list of effects, each ``{"type": NAME, <param>: value, ...}`` with
``NAME`` one of :data:`BUILTINS` (ranges checked here, so a bad value is refused before it
reaches the audio), or ``{"type": "plugin", "path": "/path/Plugin.vst3", "params": {...}}``
for a VST3 plugin loaded with ``pedalboard.load_plugin`` (pedalboard hosts VST3 on Linux;
it has no LV2 host). A config file maps stems to chains::

    {"stems": {"drums": [{"type": "HighpassFilter", "cutoff_frequency_hz": 120}],
               "guitar": [{"type": "Reverb", "room_size": 0.4, "wet_level": 0.3}]}}

or in TOML ``[[stems.drums]]`` tables. Chains run on the engine's worker thread right after
inference (:class:`EffectsSeparator` wraps the streaming separator), never in the audio
callback. Latency: the largest reported plugin latency of the chains loaded at start is the
rack's fixed latency budget, added to the engine's reported latency; shorter chains are
padded so stems stay aligned, and a chain set later (OSC) that needs more is refused.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import weakref
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from bridge.delay_line import DelayLine
from realtime.errors import bad_value, require

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


def _number(name: str, value: Any, lo: float, hi: float) -> float:
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
        if kind == "plugin":
            path = item.get("path")
            params = item.get("params", {})
            if not isinstance(path, str) or not path.endswith(".vst3"):
                raise bad_value(f"effects[{i}].path", path, "the path of a .vst3 plugin")
            if not isinstance(params, dict):
                raise bad_value(f"effects[{i}].params", params, "an object of parameter values")
            chain.append({"type": "plugin", "path": path, "params": dict(params)})
            continue
        if kind not in BUILTINS:
            raise bad_value(f"effects[{i}].type", kind, f"'plugin' or one of {sorted(BUILTINS)}")
        ranges = BUILTINS[kind]
        out: dict[str, Any] = {"type": kind}
        for key, value in item.items():
            if key == "type":
                continue
            if key not in ranges:
                raise bad_value(f"effects[{i}].{key}", value, f"a parameter of {kind}: {sorted(ranges)}")
            out[key] = _number(f"effects[{i}].{key}", value, *ranges[key])
        chain.append(out)
    return chain


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


def build_board(chain: list[dict[str, Any]]) -> Any:
    """A ``pedalboard.Pedalboard`` for a validated chain."""
    pb = require("pedalboard", "effects")
    plugins = []
    for item in chain:
        if item["type"] == "plugin":
            try:
                plugins.append(pb.load_plugin(item["path"], parameter_values=item["params"]))
            except Exception as exc:  # pedalboard raises ImportError/ValueError/RuntimeError
                raise bad_value("plugin", item["path"], f"a loadable VST3 plugin ({exc})") from None
        else:
            params = {k: v for k, v in item.items() if k != "type"}
            plugins.append(getattr(pb, item["type"])(**params))
    return pb.Pedalboard(plugins)


def board_latency(board: Any) -> int:
    """Sum of the plugins' reported latencies, samples (built-ins report none)."""
    return int(sum(int(getattr(p, "reported_latency_samples", 0) or 0) for p in board))


class EffectsRack:
    """Per-stem chain specs plus live processing instances (one per running separator).

    Control side: :meth:`set_chain`, :meth:`set_param` validate, then hand the change to
    every instance through a queue that the worker drains between blocks.
    """

    def __init__(
        self,
        stems: tuple[str, ...],
        sample_rate: int,
        chains: dict[str, list[dict[str, Any]]] | None = None,
    ) -> None:
        self.stems = tuple(stems)
        self.sample_rate = int(sample_rate)
        self.chains: dict[str, list[dict[str, Any]]] = {s: [] for s in stems}
        for stem, chain in (chains or {}).items():
            if stem not in self.stems:
                raise bad_value("effects stem", stem, f"one of {list(self.stems)}")
            self.chains[stem] = validate_chain(chain)
        self.latency_samples = max(board_latency(build_board(c)) for c in self.chains.values())
        self._instances: "weakref.WeakSet[EffectsInstance]" = weakref.WeakSet()
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        """Whether any stem has a non-empty chain."""
        return any(self.chains.values())

    def chain_json(self, stem: str) -> str:
        """The chain of ``stem`` as JSON."""
        self._index(stem)
        return json.dumps(self.chains[stem])

    def _index(self, stem: str) -> int:
        if stem not in self.stems:
            raise bad_value("stem", stem, f"one of {list(self.stems)}")
        return self.stems.index(stem)

    def set_chain(self, stem: str, spec: Any) -> None:
        """Replace ``stem``'s chain (a list, or its JSON text); validated and built here."""
        i = self._index(stem)
        if isinstance(spec, str):
            try:
                spec = json.loads(spec) if spec.strip() else []
            except ValueError as exc:
                raise bad_value("effects", spec, f"a JSON list ({exc})") from None
        chain = validate_chain(spec)
        latency = board_latency(build_board(chain))
        if latency > self.latency_samples:
            raise bad_value("effects latency", latency, f"<= {self.latency_samples} samples (the budget fixed at start)")
        with self._lock:
            self.chains[stem] = chain
            for inst in list(self._instances):
                inst.post(("chain", i, build_board(chain)))

    def set_param(self, stem: str, index: int, param: str, value: float) -> None:
        """Set parameter ``param`` of effect ``index`` in ``stem``'s chain."""
        i = self._index(stem)
        chain = self.chains[stem]
        if not 0 <= index < len(chain):
            raise bad_value("effect index", index, f"0..{len(chain) - 1} for stem {stem!r}")
        item = chain[index]
        if item["type"] == "plugin":
            raise bad_value("effect", item["path"], "a built-in effect (plugin parameters: set the chain)")
        ranges = BUILTINS[item["type"]]
        if param not in ranges:
            raise bad_value("param", param, f"a parameter of {item['type']}: {sorted(ranges)}")
        value = _number(param, value, *ranges[param])
        with self._lock:
            item[param] = value
            for inst in list(self._instances):
                inst.post(("param", i, index, param, value))

    def instance(self, channels: int) -> "EffectsInstance":
        """A new processing instance (own plugin state) registered for updates."""
        with self._lock:
            inst = EffectsInstance(self, channels)
            self._instances.add(inst)
        return inst


class EffectsInstance:
    """The chains of one running separator; :meth:`process` runs on its worker thread."""

    def __init__(self, rack: EffectsRack, channels: int) -> None:
        self.rack = rack
        self.boards = [build_board(rack.chains[s]) for s in rack.stems]
        self._updates: "queue.SimpleQueue[tuple]" = queue.SimpleQueue()
        self._pads: list[DelayLine] = []
        self._channels = channels
        self._rebuild_pads()
        self.nonfinite_samples = 0

    def _rebuild_pads(self) -> None:
        budget = self.rack.latency_samples
        self._pads = [DelayLine(self._channels, budget - board_latency(b)) for b in self.boards]

    def post(self, update: tuple) -> None:
        """Queue a change for the worker (control thread side)."""
        self._updates.put(update)

    def _apply_updates(self) -> None:
        changed = False
        while True:
            try:
                update = self._updates.get_nowait()
            except queue.Empty:
                break
            if update[0] == "chain":
                self.boards[update[1]] = update[2]
                changed = True
            else:
                _, s, index, param, value = update
                setattr(self.boards[s][index], param, value)
        if changed:
            self._rebuild_pads()

    def reset(self) -> None:
        """Clear effect tails and padding."""
        for board, pad in zip(self.boards, self._pads):
            board.reset()
            pad.reset()

    def process(self, stems: np.ndarray) -> np.ndarray:
        """Apply each stem's chain to ``stems`` ``(stems, channels, n)`` float32 at the rack rate.

        Returns the processed stems (same shape; a new array when any chain is active).
        """
        self._apply_updates()
        if stems.shape[-1] == 0 or not any(len(b) for b in self.boards) and self.rack.latency_samples == 0:
            return stems
        out = np.empty_like(stems)
        for s, (board, pad) in enumerate(zip(self.boards, self._pads)):
            x = np.ascontiguousarray(stems[s], dtype=np.float32)
            y = board.process(x, self.rack.sample_rate, reset=False) if len(board) else x
            pad.process(np.asarray(y, dtype=np.float32), out[s])
        bad = ~np.isfinite(out)
        if bad.any():
            self.nonfinite_samples += int(bad.sum())
            out[bad] = 0.0
        return out


class EffectsSeparator:
    """A streaming separator followed by an effects instance (runs where ``process`` runs).

    Follows the engine's streaming interface: ``process(block (channels, n)) -> (stems,
    channels, m)``, ``flush()``, ``reset()``, ``latency_samples`` (engine + effects).
    """

    def __init__(self, separator: Any, rack: EffectsRack, channels: int) -> None:
        self.separator = separator
        self.rack = rack
        self.effects = rack.instance(channels)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.separator, name)

    @property
    def latency_samples(self) -> int:
        """Engine latency plus the effects' latency budget, samples at the host rate."""
        return int(self.separator.latency_samples) + self.rack.latency_samples

    def process(self, block: np.ndarray) -> np.ndarray:
        return self.effects.process(self.separator.process(block))

    def flush(self) -> np.ndarray:
        return self.effects.process(self.separator.flush())

    def reset(self) -> None:
        self.separator.reset()
        self.effects.reset()

