"""Built effect chains: pedalboard boards (with LV2 effects a
:class:`stemstream.bridge.effects.lv2_host.SerialBoard`), their latency, priming and block-wise running, and
:class:`StemChain` (one stem's chain cut into pedalboard ``pre`` -> pyo -> pedalboard
``post``). Chain specs come from :mod:`stemstream.bridge.effects.spec`; the rack that runs them per
stem is :mod:`stemstream.bridge.effects.rack`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stemstream.bridge.effects import lv2_host
from stemstream.bridge.effects.pyo_engine import is_pyo_effect
from stemstream.bridge.effects.spec import split_chain
from stemstream.realtime.errors import bad_value, require


def build_board(chain: list[dict[str, Any]], sample_rate: int | None = None, channels: int = 2) -> Any:
    """A ``pedalboard.Pedalboard`` for a validated chain of pedalboard effects; with LV2
    effects (which need ``sample_rate`` and ``channels``) a :class:`stemstream.bridge.effects.lv2_host.SerialBoard`."""
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
            raise bad_value("effect", item["type"], "a pedalboard effect (pyo effects run in stemstream.bridge.effects.pyo_engine)")
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
