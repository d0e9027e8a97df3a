"""Per-stem effect chains at run time: :class:`EffectsRack` (the chains of every stem,
changed from a file or OSC), :class:`EffectsInstance` (one running separator's built
chains) and :class:`EffectsSeparator` (a streaming separator followed by the effects).

Chain specs (pedalboard and pyo built-ins, VST3 and LV2 plugins, effects files) are
checked in :mod:`stemstream.bridge.effects.spec`; chains are built as boards in
:mod:`stemstream.bridge.effects.boards`. Chains run on the engine's worker thread right after
inference (:class:`EffectsSeparator` wraps the streaming separator), never in the audio
callback.

Latency: the largest reported plugin latency of the chains loaded at start is the rack's
fixed latency budget, added to the engine's reported latency; shorter chains are padded so
stems stay aligned, and a chain set later (OSC) that needs more is refused. pyo effects add
no latency: when the chains loaded at start use pyo, the rack hands stems to pyo in whole
pyo blocks (:data:`stemstream.bridge.effects.pyo_engine.DEFAULT_BLOCK` samples) and holds a partial block back
until the next call. Where the separator's output always comes in multiples of that block
(a hop model at the host rate, e.g. hop 128 at 44.1 kHz) nothing is ever held; otherwise
up to ``block - 1`` samples wait, which :meth:`EffectsSeparator.max_pending_samples` tells
the real-time session (its reported latency includes them). A rack started without pyo
effects refuses pyo chains later (start with one, e.g. ``pyo.eq`` at 0 dB, to use them).
"""

from __future__ import annotations

import json
import queue
import threading
import weakref
from typing import Any

import numpy as np

from stemstream.bridge.effects import lv2_host, lv2_world
from stemstream.bridge.live.delay_line import DelayLine
from stemstream.bridge.effects.boards import StemChain, run_board
from stemstream.bridge.effects.pyo_engine import DEFAULT_BLOCK, PYO_EFFECTS, PyoEngine, check_sample_rate
from stemstream.bridge.effects.spec import BUILTINS, check_chain_rate, checked_number, uses_pyo, validate_chain
from stemstream.realtime.errors import bad_value

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
            check_chain_rate(self.chains[stem], self.sample_rate)
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
        check_chain_rate(chain, self.sample_rate)
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
            value = lv2_world.check_param(lv2_world.plugin_info(item["uri"]), param, value, self.sample_rate)
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
        value = checked_number(param, value, *ranges[param])
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
