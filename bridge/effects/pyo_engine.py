"""Built-in per-stem DSP through pyo: filters, a parametric EQ band, a delay, a reverb send.

Effect types (:data:`PYO_EFFECTS`, parameter ranges checked before anything reaches pyo):

=================  =====================================================  ==========================
type               parameters (default)                                   pyo objects
=================  =====================================================  ==========================
``pyo.lowpass``    ``cutoff_frequency_hz`` (1000), ``q`` (0.707)           ``Biquad`` type 0
``pyo.highpass``   ``cutoff_frequency_hz`` (1000), ``q`` (0.707)           ``Biquad`` type 1
``pyo.eq``         ``cutoff_frequency_hz`` (1000), ``gain_db`` (0), ``q``  ``EQ`` type 0 (peak/notch)
``pyo.lowshelf``   same as ``pyo.eq``                                      ``EQ`` type 1
``pyo.highshelf``  same as ``pyo.eq``                                      ``EQ`` type 2
``pyo.delay``      ``delay_seconds`` (0.25), ``feedback`` (0), ``mix``     ``Delay`` + ``Interp``
``pyo.reverb``     ``room_size`` (0.5), ``damping`` (0.5), ``send_level``  dry + ``Freeverb`` (wet only)
=================  =====================================================  ==========================

How the audio gets in and out, sample-accurately: every :class:`PyoEngine` owns one pyo
``Server`` in ``manual`` mode (``buffersize`` = the engine's block, ``sr`` = the rack rate,
``ichnls`` = stems x channels). Each :meth:`PyoEngine.process` writes one block of every stem
into the server's own input buffer (``Server.getInputAddr()``, viewed as a numpy array: no
copy through Python objects, no allocation), calls ``Server.process()`` once, and reads each
stem's result from a ``DataTable`` of one block that a ``TableFill`` writes sample by sample
(the table's memory is a numpy view too). ``Input(chnl)`` reads the input buffer at audio
rate, so sample ``i`` of the block in is sample ``i`` of the block out: the engine adds no
latency (a delay of ``d`` samples moves an impulse by exactly ``d``). The server's own
output buffer is not used: it carries pyo's master-gain smoothing (a fade-in at start, and
it settles at 0.9999992, not 1).

pyo keeps several servers per process in manual mode (each gets an id; new objects attach to
the one made current with ``Server.setServer()``): every running separator (two while a
model switch crossfades) gets its own server, so one worker never advances another's delay
lines. Objects are created only under :data:`_LOCK` right after ``setServer()``.

Parameters named ``mix``, ``feedback`` and ``send_level`` glide to new values over 10 ms
(``SigTo``); filter and EQ settings change at the next block.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import io
import os
import threading
import weakref
from typing import Any

import numpy as np

from stemstream.realtime.errors import bad_value, require

#: pyo effect types and the accepted range of each parameter.
PYO_EFFECTS: dict[str, dict[str, tuple[float, float]]] = {
    "pyo.lowpass": {"cutoff_frequency_hz": (10.0, 20000.0), "q": (0.1, 20.0)},
    "pyo.highpass": {"cutoff_frequency_hz": (10.0, 20000.0), "q": (0.1, 20.0)},
    "pyo.eq": {"cutoff_frequency_hz": (10.0, 20000.0), "gain_db": (-24.0, 24.0), "q": (0.1, 20.0)},
    "pyo.lowshelf": {"cutoff_frequency_hz": (10.0, 20000.0), "gain_db": (-24.0, 24.0), "q": (0.1, 20.0)},
    "pyo.highshelf": {"cutoff_frequency_hz": (10.0, 20000.0), "gain_db": (-24.0, 24.0), "q": (0.1, 20.0)},
    "pyo.delay": {"delay_seconds": (1e-5, 2.0), "feedback": (0.0, 0.95), "mix": (0.0, 1.0)},
    "pyo.reverb": {"room_size": (0.0, 1.0), "damping": (0.0, 1.0), "send_level": (0.0, 1.0)},
}

#: Values used for parameters a chain leaves out.
PYO_DEFAULTS: dict[str, dict[str, float]] = {
    "pyo.lowpass": {"cutoff_frequency_hz": 1000.0, "q": 0.707},
    "pyo.highpass": {"cutoff_frequency_hz": 1000.0, "q": 0.707},
    "pyo.eq": {"cutoff_frequency_hz": 1000.0, "gain_db": 0.0, "q": 1.0},
    "pyo.lowshelf": {"cutoff_frequency_hz": 1000.0, "gain_db": 0.0, "q": 0.707},
    "pyo.highshelf": {"cutoff_frequency_hz": 1000.0, "gain_db": 0.0, "q": 0.707},
    "pyo.delay": {"delay_seconds": 0.25, "feedback": 0.0, "mix": 0.5},
    "pyo.reverb": {"room_size": 0.5, "damping": 0.5, "send_level": 0.3},
}

#: Default pyo block (server buffer size), samples.
DEFAULT_BLOCK = 64

#: Glide time of ``mix`` / ``feedback`` / ``send_level`` changes, seconds.
GLIDE_S = 0.01

_LOCK = threading.RLock()
_EXIT_HOOK = False
_MAX_DELAY_S = 2.0


def is_pyo_effect(kind: Any) -> bool:
    """Whether an effect ``type`` names a pyo effect (``pyo.<name>``)."""
    return isinstance(kind, str) and kind.startswith("pyo.")


def check_sample_rate(chain: list[dict[str, Any]], sample_rate: int) -> None:
    """Refuse filter frequencies at or above Nyquist for ``sample_rate`` (Hz)."""
    for i, item in enumerate(chain):
        f = item.get("cutoff_frequency_hz")
        if is_pyo_effect(item["type"]) and f is not None and f >= 0.49 * sample_rate:
            raise bad_value(f"effects[{i}].cutoff_frequency_hz", f, f"< {0.49 * sample_rate:g} Hz at {sample_rate} Hz")


def import_pyo() -> Any:
    """Import pyo quietly (it prints a wxPython notice on stdout otherwise)."""
    global _EXIT_HOOK
    os.environ.setdefault("PYO_GUI_WX", "0")
    with contextlib.redirect_stdout(io.StringIO()):
        pyo = require("pyo", "effects")
    with _LOCK:
        if not _EXIT_HOOK:
            atexit.register(_close_all)
            _EXIT_HOOK = True
    return pyo


def _float_view(address: str, count: int) -> np.ndarray:
    return np.ctypeslib.as_array((ctypes.c_float * count).from_address(int(address, 16)))


class _Unit:
    """One built effect: its output object, every object it needs alive, and its setters."""

    def __init__(self, output: Any, keep: list[Any], setters: dict[str, Any]) -> None:
        self.output = output
        self.keep = keep
        self.setters = setters

    def set(self, param: str, value: float) -> None:
        self.setters[param](value)


def _build_unit(pyo: Any, kind: str, p: dict[str, float], src: Any, sample_rate: int) -> _Unit:
    if kind in ("pyo.lowpass", "pyo.highpass"):
        f = pyo.Biquad(src, freq=p["cutoff_frequency_hz"], q=p["q"], type=0 if kind == "pyo.lowpass" else 1)
        return _Unit(f, [f], {"cutoff_frequency_hz": f.setFreq, "q": f.setQ})
    if kind in ("pyo.eq", "pyo.lowshelf", "pyo.highshelf"):
        shape = {"pyo.eq": 0, "pyo.lowshelf": 1, "pyo.highshelf": 2}[kind]
        f = pyo.EQ(src, freq=p["cutoff_frequency_hz"], q=p["q"], boost=p["gain_db"], type=shape)
        return _Unit(f, [f], {"cutoff_frequency_hz": f.setFreq, "q": f.setQ, "gain_db": f.setBoost})
    if kind == "pyo.delay":

        def seconds(value: float) -> float:  # whole samples: an impulse moves by exactly round(s * sr)
            return max(1, round(value * sample_rate)) / sample_rate

        fb = pyo.SigTo(p["feedback"], time=GLIDE_S, init=p["feedback"])
        mix = pyo.SigTo(p["mix"], time=GLIDE_S, init=p["mix"])
        wet = pyo.Delay(src, delay=seconds(p["delay_seconds"]), feedback=fb, maxdelay=_MAX_DELAY_S + 0.01)
        out = pyo.Interp(src, wet, interp=mix)
        return _Unit(out, [fb, mix, wet, out], {"delay_seconds": lambda v: wet.setDelay(seconds(v)),
                                                "feedback": fb.setValue, "mix": mix.setValue})
    if kind == "pyo.reverb":
        send = pyo.SigTo(p["send_level"], time=GLIDE_S, init=p["send_level"])
        verb = pyo.Freeverb(src, size=p["room_size"], damp=p["damping"], bal=1.0, mul=send)
        out = src + verb
        return _Unit(out, [send, verb, out], {"room_size": verb.setSize, "damping": verb.setDamp,
                                              "send_level": send.setValue})
    raise bad_value("effect type", kind, f"one of {sorted(PYO_EFFECTS)}")  # validated before: not reached


class _Chain:
    """The pyo objects of one stem: ``Input`` -> units -> ``TableFill`` into a one-block table."""

    def __init__(self, pyo: Any, specs: list[dict[str, Any]], first_channel: int, channels: int,
                 block: int, sample_rate: int) -> None:
        self.source = pyo.Input(chnl=list(range(first_channel, first_channel + channels)))
        self.units: list[_Unit] = []
        signal = self.source
        for spec in specs:
            params = {**PYO_DEFAULTS[spec["type"]], **{k: v for k, v in spec.items() if k != "type"}}
            unit = _build_unit(pyo, spec["type"], params, signal, sample_rate)
            self.units.append(unit)
            signal = unit.output
        self.table = pyo.DataTable(size=block, chnls=channels)
        self.fill = pyo.TableFill(signal, self.table)
        self.views = [np.asarray(self.table.getBuffer(c)) for c in range(channels)]

    def close(self) -> None:
        """Stop and release the objects. The numpy views go first: a view outliving its
        ``DataTable`` releases freed memory when it goes (heap corruption)."""
        self.views = []
        for obj in [self.fill, *(o for u in reversed(self.units) for o in u.keep), self.source]:
            obj.stop()
        self.units.clear()
        self.fill = self.table = self.source = None


def _shutdown(server: Any, chains: dict[int, _Chain]) -> None:
    with _LOCK:
        for chain in chains.values():
            chain.close()
        chains.clear()
        try:
            server.stop()
            server.shutdown()
        except Exception:  # interpreter shutdown: pyo may already be gone
            pass


_ENGINES: "weakref.WeakSet[PyoEngine]" = weakref.WeakSet()


def _close_all() -> None:
    """At exit, before pyo's own exit handlers (registered earlier, so they run later)."""
    for engine in list(_ENGINES):
        engine.close()


class PyoEngine:
    """pyo chains for every stem of one separator, on its own manual-mode pyo server.

    Args:
        stems: stem count.
        channels: channels per stem.
        sample_rate: Hz.
        block: samples per :meth:`process` call (the server's buffer size).

    Stems without a chain pass through unchanged. Build, change and process from one
    thread (the separator's worker); construction may happen on another.
    """

    def __init__(self, stems: int, channels: int, sample_rate: int, block: int = DEFAULT_BLOCK) -> None:
        if not isinstance(block, int) or not 1 <= block <= 4096:
            raise bad_value("pyo block", block, "an int in [1, 4096] samples")
        self.pyo = import_pyo()
        self.stems, self.channels, self.sample_rate, self.block = stems, channels, int(sample_rate), block
        width = stems * channels
        with _LOCK:
            server = self.pyo.Server(sr=self.sample_rate, nchnls=width, ichnls=width, buffersize=block,
                                     duplex=1, audio="manual")
            server.setVerbosity(0)
            server.boot()
            server.start()
        self.server = server
        self._in = _float_view(server.getInputAddr(), block * width).reshape(block, width)
        self._in[:] = 0.0
        self.chains: dict[int, _Chain] = {}
        self.specs: dict[int, list[dict[str, Any]]] = {}
        self._finalizer = weakref.finalize(self, _shutdown, server, self.chains)
        self._finalizer.atexit = False  # _close_all runs at exit, before pyo's handlers
        _ENGINES.add(self)

    def set_chain(self, stem: int, specs: list[dict[str, Any]]) -> None:
        """Build ``stem``'s chain from validated ``pyo.*`` specs (``[]`` removes it)."""
        with _LOCK:
            old = self.chains.pop(stem, None)
            if old is not None:
                old.close()
            self.specs[stem] = [dict(s) for s in specs]
            if specs:
                self.server.setServer()
                self.chains[stem] = _Chain(self.pyo, specs, stem * self.channels, self.channels, self.block,
                                           self.sample_rate)

    def set_param(self, stem: int, index: int, param: str, value: float) -> None:
        """Set parameter ``param`` of the ``index``-th pyo effect in ``stem``'s chain."""
        self.chains[stem].units[index].set(param, value)
        self.specs[stem][index][param] = value

    def reset(self) -> None:
        """Fresh state (delay lines, filter memories, reverb tails): rebuild every chain."""
        for stem in list(self.specs):
            self.set_chain(stem, self.specs[stem])

    def process(self, block: np.ndarray, out: np.ndarray) -> None:
        """One pyo tick: ``block`` ``(stems, channels, self.block)`` float32 -> ``out`` (same
        shape, may be ``block`` itself). Non-finite output restarts that stem's chain."""
        if not self.chains:
            if out is not block:
                np.copyto(out, block)
            return
        c = self.channels
        for s in self.chains:
            for ch in range(c):
                self._in[:, s * c + ch] = block[s, ch]
        self.server.process()
        for s in range(self.stems):
            chain = self.chains.get(s)
            if chain is None:
                if out is not block:
                    np.copyto(out[s], block[s])
                continue
            for ch in range(c):
                out[s, ch] = chain.views[ch]
        for s in list(self.chains):
            if not np.isfinite(out[s]).all():
                out[s] = 0.0
                self.set_chain(s, self.specs[s])

    def close(self) -> None:
        """Remove every chain and shut the server down."""
        self._finalizer()
