"""Per-stem effect chains: pyo built-in DSP, pedalboard built-ins, VST3 and LV2 plugins,
from a file or OSC.

A chain is a JSON/TOML list of effects, each ``{"type": NAME, <param>: value, ...}`` with
``NAME`` one of :data:`BUILTINS` (pedalboard) or :data:`bridge.effects_pyo.PYO_EFFECTS`
(``pyo.lowpass``, ``pyo.eq``, ``pyo.delay``, ``pyo.reverb``...; ranges checked here, so a
bad value is refused before it reaches the audio), or ``{"type": "plugin", "path":
"/path/Plugin.vst3", "params": {...}}`` for a VST3 plugin loaded with
``pedalboard.load_plugin`` (pedalboard hosts VST3 on Linux; it has no LV2 host), or
``{"type": "lv2", "uri": "http://...", "params": {symbol: value}}`` for an LV2 plugin hosted
through liblilv by :mod:`bridge.lv2_host` (parameters range-checked against the plugin's
ports, settable over OSC by symbol; its latency port counts like a VST3's latency). A config
file maps stems to chains::

    {"stems": {"drums": [{"type": "HighpassFilter", "cutoff_frequency_hz": 120}],
               "guitar": [{"type": "pyo.eq", "cutoff_frequency_hz": 800, "gain_db": -4},
                          {"type": "pyo.reverb", "room_size": 0.6, "send_level": 0.25}]}}

or in TOML ``[[stems.drums]]`` tables. Within one chain the ``pyo.*`` effects must be
consecutive (pedalboard effects may come before and after them). Chains run on the engine's
worker thread right after inference (:class:`EffectsSeparator` wraps the streaming
separator), never in the audio callback.

Latency: the largest reported plugin latency of the chains loaded at start is the rack's
fixed latency budget, added to the engine's reported latency; shorter chains are padded so
stems stay aligned, and a chain set later (OSC) that needs more is refused. pyo effects add
no latency: when the chains loaded at start use pyo, the rack hands stems to pyo in whole
pyo blocks (:data:`bridge.effects_pyo.DEFAULT_BLOCK` samples) and holds a partial block back
until the next call. Where the separator's output always comes in multiples of that block
(a hop model at the host rate, e.g. hop 128 at 44.1 kHz) nothing is ever held; otherwise
up to ``block - 1`` samples wait, which :meth:`EffectsSeparator.max_pending_samples` tells
the real-time session (its reported latency includes them). A rack started without pyo
effects refuses pyo chains later (start with one, e.g. ``pyo.eq`` at 0 dB, to use them).
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

from bridge import lv2_host
from bridge.delay_line import DelayLine
from bridge.effects_pyo import DEFAULT_BLOCK, PYO_EFFECTS, PyoEngine, check_sample_rate, is_pyo_effect
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
        if kind == "lv2":
            chain.append(lv2_host.validate_item(item, i))
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
            out[key] = _number(f"effects[{i}].{key}", value, *ranges[key])
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


def _check_rate(chain: list[dict[str, Any]], sample_rate: int) -> None:
    """Rate-dependent checks: pyo filter frequencies, LV2 ranges given per sample rate."""
    check_sample_rate(chain, sample_rate)
    lv2_host.check_rate(chain, sample_rate)


def build_board(chain: list[dict[str, Any]], sample_rate: int | None = None, channels: int = 2) -> Any:
    """A ``pedalboard.Pedalboard`` for a validated chain of pedalboard effects; with LV2
    effects (which need ``sample_rate`` and ``channels``) a :class:`bridge.lv2_host.SerialBoard`."""
    pb = require("pedalboard", "effects")
    if any(item["type"] == "lv2" for item in chain):
        if sample_rate is None:
            raise bad_value("sample_rate", sample_rate, "a rate in Hz to build LV2 effects at")
        segments: list[Any] = []
        run: list[dict[str, Any]] = []
        for item in chain + [{"type": "lv2"}]:  # a sentinel closes the last pedalboard run
            if item["type"] != "lv2":
                run.append(item)
                continue
            if run:
                segments.append(build_board(run))
                run = []
            if "uri" in item:
                segments.append(lv2_host.Lv2Effect(item["uri"], item["params"], sample_rate, channels))
        return lv2_host.SerialBoard(segments)
    plugins = []
    for item in chain:
        if is_pyo_effect(item["type"]):
            raise bad_value("effect", item["type"], "a pedalboard effect (pyo effects run in bridge.effects_pyo)")
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


#: Largest piece handed to a pedalboard board in one call, samples. Boards are primed with a
#: block this long: pedalboard re-prepares (and so resets) its plugins whenever a block
#: longer than any before arrives, which would put a click wherever the worker catches up.
BOARD_BLOCK = 8192


def prime_board(board: Any, sample_rate: int, channels: int) -> Any:
    """Prepare ``board`` for blocks up to :data:`BOARD_BLOCK` samples, then clear its state."""
    if len(board):
        board.process(np.zeros((channels, BOARD_BLOCK), np.float32), sample_rate, reset=True)
        board.reset()
    return board


def run_board(board: Any, x: np.ndarray, sample_rate: int) -> np.ndarray:
    """``board`` on ``x`` ``(channels, n)`` in pieces of at most :data:`BOARD_BLOCK` samples."""
    if x.shape[-1] <= BOARD_BLOCK:
        return board.process(x, sample_rate, reset=False)
    return np.concatenate([board.process(x[:, i : i + BOARD_BLOCK], sample_rate, reset=False)
                           for i in range(0, x.shape[-1], BOARD_BLOCK)], axis=-1)


class StemChain:
    """One stem's chain, built: pedalboard ``pre`` -> pyo ``pyo`` (specs) -> pedalboard ``post``.

    With ``sample_rate`` and ``channels`` the boards are primed (:func:`prime_board`).
    ``latency_samples``: the plugins' reported latency (pyo effects add none).
    """

    def __init__(self, chain: list[dict[str, Any]], sample_rate: int | None = None, channels: int = 2) -> None:
        pre, pyo, post = split_chain(chain)
        self.pre, self.pyo = build_board(pre, sample_rate, channels), pyo
        self.post = build_board(post, sample_rate, channels)
        if sample_rate is not None:
            prime_board(self.pre, sample_rate, channels)
            prime_board(self.post, sample_rate, channels)
        self.latency_samples = board_latency(self.pre) + board_latency(self.post)

    def locate(self, index: int) -> tuple[str, int]:
        """Where effect ``index`` of the chain lives: ``("pre" | "pyo" | "post", index there)``."""
        a, b = len(self.pre), len(self.pre) + len(self.pyo)
        return ("pre", index) if index < a else ("pyo", index - a) if index < b else ("post", index - b)


class EffectsRack:
    """Per-stem chain specs plus live processing instances (one per running separator).

    Control side: :meth:`set_chain`, :meth:`set_param` validate, then hand the change to
    every instance through a queue that the worker drains between blocks.

    Args:
        stems: stem names in output order.
        sample_rate: Hz of the audio the chains process.
        chains: ``{stem: chain}`` loaded at start (fixes the latency budget and whether pyo
            runs, see the module docstring).
        pyo_block: samples per pyo tick (pyo's buffer size).
    """

    def __init__(
        self,
        stems: tuple[str, ...],
        sample_rate: int,
        chains: dict[str, list[dict[str, Any]]] | None = None,
        pyo_block: int = DEFAULT_BLOCK,
    ) -> None:
        self.stems = tuple(stems)
        self.sample_rate = int(sample_rate)
        self.chains: dict[str, list[dict[str, Any]]] = {s: [] for s in stems}
        for stem, chain in (chains or {}).items():
            if stem not in self.stems:
                raise bad_value("effects stem", stem, f"one of {list(self.stems)}")
            self.chains[stem] = validate_chain(chain)
            _check_rate(self.chains[stem], self.sample_rate)
        if not isinstance(pyo_block, int) or not 1 <= pyo_block <= 4096:
            raise bad_value("pyo_block", pyo_block, "an int in [1, 4096] samples")
        self.latency_samples = max(self._latency(c) for c in self.chains.values())
        #: pyo block size when the chains loaded at start use pyo, else 0 (no pyo server)
        self.pyo_block = pyo_block if uses_pyo(self.chains.values()) else 0
        self._instances: "weakref.WeakSet[EffectsInstance]" = weakref.WeakSet()
        self._lock = threading.Lock()

    def _latency(self, chain: list[dict[str, Any]]) -> int:
        """A chain's plugin latency, samples (LV2 effects are built at the rack rate to read it)."""
        lv2 = any(item["type"] == "lv2" for item in chain)
        return StemChain(chain, self.sample_rate if lv2 else None).latency_samples

    @property
    def active(self) -> bool:
        """Whether any stem has a non-empty chain (or pyo was loaded at start)."""
        return self.pyo_block > 0 or any(self.chains.values())

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
        _check_rate(chain, self.sample_rate)
        if uses_pyo([chain]) and not self.pyo_block:
            raise bad_value("effects", spec, "no pyo.* effects: this rack started without any (put one in the effects file)")
        latency = self._latency(chain)
        if latency > self.latency_samples:
            raise bad_value("effects latency", latency, f"<= {self.latency_samples} samples (the budget fixed at start)")
        with self._lock:
            self.chains[stem] = chain
            for inst in list(self._instances):
                inst.post(("chain", i, StemChain(chain, self.sample_rate, inst.channels)))

    def set_param(self, stem: str, index: int, param: str, value: float) -> None:
        """Set parameter ``param`` of effect ``index`` in ``stem``'s chain."""
        i = self._index(stem)
        chain = self.chains[stem]
        if not 0 <= index < len(chain):
            raise bad_value("effect index", index, f"0..{len(chain) - 1} for stem {stem!r}")
        item = chain[index]
        if item["type"] == "plugin":
            raise bad_value("effect", item["path"], "a built-in effect (plugin parameters: set the chain)")
        if item["type"] == "lv2":
            value = lv2_host.check_param(lv2_host.plugin_info(item["uri"]), param, value, self.sample_rate)
            params = {**item["params"], param: value}
            if lv2_host.latency_with(item["uri"], params, self.sample_rate) != lv2_host.latency_with(
                    item["uri"], item["params"], self.sample_rate):  # new latency: rebuild (pads, budget)
                self.set_chain(stem, [{**it, "params": params} if k == index else it for k, it in enumerate(chain)])
                return
            with self._lock:
                item["params"][param] = value
                for inst in list(self._instances):
                    inst.post(("param", i, index, param, value))
            return
        ranges = BUILTINS.get(item["type"]) or PYO_EFFECTS[item["type"]]
        if param not in ranges:
            raise bad_value("param", param, f"a parameter of {item['type']}: {sorted(ranges)}")
        value = _number(param, value, *ranges[param])
        check_sample_rate([{**item, param: value}], self.sample_rate)
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
        self.channels = channels
        self.chains = [StemChain(rack.chains[s], rack.sample_rate, channels) for s in rack.stems]
        self._updates: "queue.SimpleQueue[tuple]" = queue.SimpleQueue()
        self._pads: list[DelayLine] = []
        self._rebuild_pads()
        self.nonfinite_samples = 0
        #: pyo chains of every stem (``None`` when the rack does not use pyo)
        self.pyo: PyoEngine | None = None
        s = len(rack.stems)
        self._held = np.zeros((s, channels, 0), np.float32)
        if rack.pyo_block:
            self.pyo = PyoEngine(s, channels, rack.sample_rate, rack.pyo_block)
            for k, chain in enumerate(self.chains):
                if chain.pyo:
                    self.pyo.set_chain(k, chain.pyo)

    @property
    def held_samples(self) -> int:
        """Samples waiting for a whole pyo block (output later, positions unchanged)."""
        return int(self._held.shape[-1])

    def _rebuild_pads(self) -> None:
        budget = self.rack.latency_samples
        self._pads = [DelayLine(self.channels, budget - c.latency_samples) for c in self.chains]

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
                _, s, chain = update
                self.chains[s] = chain
                if self.pyo is not None:
                    self.pyo.set_chain(s, chain.pyo)
                changed = True
            else:
                _, s, index, param, value = update
                where, k = self.chains[s].locate(index)
                if where == "pyo":
                    assert self.pyo is not None
                    self.pyo.set_param(s, k, param, value)
                else:
                    lv2_host.set_effect_param(getattr(self.chains[s], where)[k], param, value)
        if changed:
            self._rebuild_pads()

    def reset(self) -> None:
        """Clear effect tails, padding and held samples."""
        for chain, pad in zip(self.chains, self._pads):
            chain.pre.reset()
            chain.post.reset()
            pad.reset()
        if self.pyo is not None:
            self.pyo.reset()
        self._held = self._held[..., :0]

    def process(self, stems: np.ndarray) -> np.ndarray:
        """Apply each stem's chain to ``stems`` ``(stems, channels, n)`` float32 at the rack rate.

        Returns ``(stems, channels, m)``: ``m == n`` without pyo; with pyo, the whole pyo
        blocks available so far (a partial block waits for the next call). Output sample
        ``t`` always belongs to input sample ``t - rack.latency_samples``.
        """
        self._apply_updates()
        if self.pyo is not None:
            block = self.pyo.block
            if self._held.shape[-1]:
                stems = np.concatenate([self._held, stems], axis=-1)
            whole = stems.shape[-1] - stems.shape[-1] % block
            self._held = np.array(stems[..., whole:], dtype=np.float32)
            stems = stems[..., :whole]
        elif stems.shape[-1] == 0 or not any(c.pre or c.post for c in self.chains) and self.rack.latency_samples == 0:
            return stems
        return self._run(stems)

    def drain(self) -> np.ndarray:
        """The held partial pyo block, processed (padded with silence inside pyo), ``(stems,
        channels, held_samples)``; nothing is held afterwards."""
        r = self.held_samples
        if r == 0 or self.pyo is None:
            return self._held[..., :0].copy()
        pad = np.zeros(self._held.shape[:2] + (self.pyo.block - r,), np.float32)
        self._held, block = self._held[..., :0], np.concatenate([self._held, pad], axis=-1)
        return self._run(block)[..., :r]

    def _run(self, stems: np.ndarray) -> np.ndarray:
        n = stems.shape[-1]
        out = np.empty(stems.shape, np.float32)
        if n == 0:
            return out
        sr = self.rack.sample_rate
        staged = out if self.pyo is not None else None
        for s, (chain, pad) in enumerate(zip(self.chains, self._pads)):
            x = np.ascontiguousarray(stems[s], dtype=np.float32)
            y = run_board(chain.pre, x, sr) if len(chain.pre) else x
            if staged is None:
                y = run_board(chain.post, np.asarray(y, np.float32), sr) if len(chain.post) else y
                pad.process(np.asarray(y, dtype=np.float32), out[s])
            else:
                staged[s] = y
        if self.pyo is not None:
            np.nan_to_num(out, copy=False, nan=0.0, posinf=0.0, neginf=0.0)  # pyo state must stay finite
            block = self.pyo.block
            for start in range(0, n, block):
                piece = out[..., start : start + block]
                self.pyo.process(piece, piece)
            for s, (chain, pad) in enumerate(zip(self.chains, self._pads)):
                y = run_board(chain.post, out[s], sr) if len(chain.post) else out[s].copy()
                pad.process(np.asarray(y, dtype=np.float32), out[s])
        bad = ~np.isfinite(out)
        if bad.any():
            self.nonfinite_samples += int(bad.sum())
            out[bad] = 0.0
        return out

    def close(self) -> None:
        """Shut the pyo server down (if any)."""
        if self.pyo is not None:
            self.pyo.close()


def output_multiple(separator: Any) -> int:
    """A number every output block of ``separator`` is a multiple of (1 when unknown): the
    hop of a hop model at the host rate."""
    model = getattr(separator, "model", None)
    if getattr(separator, "resampling", True) or getattr(model, "kind", None) != "hop":
        return 1
    return int(model.hop_samples)


class EffectsSeparator:
    """A streaming separator followed by an effects instance (runs where ``process`` runs).

    Follows the engine's streaming interface: ``process(block (channels, n)) -> (stems,
    channels, m)``, ``flush()``, ``reset()``, ``latency_samples`` (engine + effects),
    ``max_pending_samples(block_size)`` (engine + a partial pyo block where one can wait).
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

    def max_pending_samples(self, block_size: int, blocks: int | None = None) -> int:
        """Worst input-minus-output sample count: the engine's, plus ``pyo_block - 1`` when
        the engine's output is not always made of whole pyo blocks."""
        inner = getattr(self.separator, "max_pending_samples", None)
        pending = int(inner(block_size, blocks) if blocks is not None else inner(block_size)) if inner else 0
        block = self.rack.pyo_block
        if block and output_multiple(self.separator) % block:
            pending += block - 1
        return pending

    def process(self, block: np.ndarray) -> np.ndarray:
        return self.effects.process(self.separator.process(block))

    def flush(self) -> np.ndarray:
        head = self.effects.process(self.separator.flush())
        tail = self.effects.drain()
        return head if tail.shape[-1] == 0 else np.concatenate([head, tail], axis=-1)

    def reset(self) -> None:
        self.separator.reset()
        self.effects.reset()

    def close(self) -> None:
        """Release the effects' pyo server (also done when this object is collected)."""
        self.effects.close()
        close = getattr(self.separator, "close", None)
        if callable(close):
            close()
