"""LV2 plugins for the per-stem effect chains, instantiated and run through liblilv with
ctypes: :class:`Lv2Effect` (one plugin on ``(channels, n)`` blocks), :class:`SerialBoard`
(pedalboard boards and LV2 effects in series), :func:`latency_with`. Finding plugins and
checking their parameters is :mod:`stemstream.bridge.effects.lv2_world`.

How audio goes through: every instance has preallocated float32 buffers of
:data:`MAX_BLOCK_SIZE` samples per audio port and one float per control port, connected once
(``LV2_Descriptor.connect_port``) right after ``lilv_plugin_instantiate``; a block is run in
pieces of at most :data:`MAX_BLOCK_SIZE` samples (copy in, ``run(n)``, copy out). A plugin with
one audio input and one output runs once per channel (two instances for stereo stems); one
with as many inputs and outputs as the stems have channels runs directly. ``lilv_instance_*``
are ``static inline`` in ``lilv.h``, so the descriptor's function pointers are called
through the ``LilvInstance`` struct.

Host features provided (:data:`stemstream.bridge.effects.lv2_world.PROVIDED_FEATURES`): ``urid:map``,
``urid:unmap``, ``bufsz:boundedBlockLength`` and ``options:options`` (min/max/nominal block
length, sample rate).

Latency: the plugin's control output with ``lv2:reportsLatency`` (or the ``lv2:latency``
designation) read after one short run of silence at construction; the plugin is then reset
(a fresh instance: see :meth:`Lv2Effect.reset`).
"""

from __future__ import annotations

import ctypes
import math
import weakref
from typing import Any

import numpy as np

from stemstream.bridge.effects.lv2_world import LILV_LOCK, PROVIDED_FEATURES, PluginInfo, check_param, find_plugin, lilv_world, plugin_info
from stemstream.realtime.errors import bad_value

#: Largest piece handed to ``run`` in one call, samples (same as pedalboard boards).
MAX_BLOCK_SIZE = 8192


class _Feature(ctypes.Structure):
    _fields_ = [("URI", ctypes.c_char_p), ("data", ctypes.c_void_p)]


_MAP_FN = ctypes.CFUNCTYPE(ctypes.c_uint32, ctypes.c_void_p, ctypes.c_char_p)
_UNMAP_FN = ctypes.CFUNCTYPE(ctypes.c_char_p, ctypes.c_void_p, ctypes.c_uint32)


class _UridMap(ctypes.Structure):
    _fields_ = [("handle", ctypes.c_void_p), ("map", _MAP_FN)]


class _UridUnmap(ctypes.Structure):
    _fields_ = [("handle", ctypes.c_void_p), ("unmap", _UNMAP_FN)]


class _Option(ctypes.Structure):  # LV2_Options_Option
    _fields_ = [("context", ctypes.c_int), ("subject", ctypes.c_uint32), ("key", ctypes.c_uint32),
                ("size", ctypes.c_uint32), ("type", ctypes.c_uint32), ("value", ctypes.c_void_p)]


_URIS: list[bytes] = [b""]  # URID 0 is "no URID"
_URID_OF: dict[bytes, int] = {}


def _map(handle: Any, uri: bytes) -> int:
    with LILV_LOCK:
        if uri not in _URID_OF:
            _URID_OF[uri] = len(_URIS)
            _URIS.append(bytes(uri))
        return _URID_OF[uri]


def _unmap(handle: Any, urid: int) -> bytes | None:
    return _URIS[urid] if 0 < urid < len(_URIS) else None


_MAP_CB, _UNMAP_CB = _MAP_FN(_map), _UNMAP_FN(_unmap)


def latency_with(uri: str, params: dict[str, float], sample_rate: float) -> int:
    """The latency the plugin reports with these parameters, samples (0 without a latency
    port; an instance is built and run briefly to read it)."""
    if plugin_info(uri).latency_port is None:
        return 0
    effect = Lv2Effect(uri, params, sample_rate, len(plugin_info(uri).audio_outputs))
    effect.close()
    return effect.latency_samples


def _features(sample_rate: float, max_block_size: int) -> tuple[Any, list[Any]]:
    """A NULL-terminated ``LV2_Feature*`` array and the objects it points into (keep alive)."""
    umap, uunmap = _UridMap(None, _MAP_CB), _UridUnmap(None, _UNMAP_CB)
    m = lambda uri: _map(None, uri.encode())  # noqa: E731
    lengths = (ctypes.c_int32 * 3)(1, max_block_size, 256)
    rate = ctypes.c_float(sample_rate)
    atom_int, atom_float = m("http://lv2plug.in/ns/ext/atom#Int"), m("http://lv2plug.in/ns/ext/atom#Float")
    bufsz = "http://lv2plug.in/ns/ext/buf-size#"
    options = (_Option * 5)(
        _Option(0, 0, m(bufsz + "minBlockLength"), 4, atom_int, ctypes.addressof(lengths)),
        _Option(0, 0, m(bufsz + "maxBlockLength"), 4, atom_int, ctypes.addressof(lengths) + 4),
        _Option(0, 0, m(bufsz + "nominalBlockLength"), 4, atom_int, ctypes.addressof(lengths) + 8),
        _Option(0, 0, m("http://lv2plug.in/ns/lv2core#sampleRate"), 4, atom_float, ctypes.addressof(rate)),
        _Option(0, 0, 0, 0, 0, None))
    data = [ctypes.addressof(umap), ctypes.addressof(uunmap), None, ctypes.addressof(options)]
    feats = [_Feature(uri.encode(), d) for uri, d in zip(PROVIDED_FEATURES, data)]
    array = (ctypes.POINTER(_Feature) * (len(feats) + 1))(*[ctypes.pointer(f) for f in feats], None)
    return array, [umap, uunmap, lengths, rate, options, feats]


def _free(lib: Any, instance: Any, active: list[bool]) -> None:
    deactivate = instance.contents.lv2_descriptor.contents.deactivate
    if active[0] and deactivate:  # NULL when the plugin has none
        deactivate(instance.contents.lv2_handle)
        active[0] = False
    with LILV_LOCK:  # freeing may close the plugin's library, which the lilv world tracks
        lib.lilv_instance_free(instance)


class _Runner:
    """One plugin instance with its own connected buffers (``audio_in``/``audio_out``:
    ``(ports, MAX_BLOCK_SIZE)`` float32; ``controls``: one float per port index)."""

    def __init__(self, info: PluginInfo, values: dict[str, float], sample_rate: float) -> None:
        lib, _, _, _ = lilv_world()
        with LILV_LOCK:
            feats, self._keep = _features(sample_rate, MAX_BLOCK_SIZE)
            instance = lib.lilv_plugin_instantiate(find_plugin(info.uri), float(sample_rate), feats)
        if not instance:
            raise bad_value("lv2 plugin", info.uri,
                            f"a plugin that instantiates at {sample_rate:g} Hz (lilv printed why on stderr)")
        self.instance = instance
        self.desc = instance.contents.lv2_descriptor.contents
        self.handle = instance.contents.lv2_handle
        self._run = self.desc.run
        self._active = [False]
        self._finalizer = weakref.finalize(self, _free, lib, instance, self._active)
        self.audio_in = np.zeros((len(info.audio_inputs), MAX_BLOCK_SIZE), np.float32)
        self.audio_out = np.zeros((len(info.audio_outputs), MAX_BLOCK_SIZE), np.float32)
        self.controls = np.zeros(max(info.ports, 1), np.float32)
        for row, port in enumerate(info.audio_inputs):
            self.desc.connect_port(self.handle, port, self.audio_in[row].ctypes.data)
        for row, port in enumerate(info.audio_outputs):
            self.desc.connect_port(self.handle, port, self.audio_out[row].ctypes.data)
        for port in [c.index for c in info.controls] + [i for i, _ in info.control_outputs]:
            self.desc.connect_port(self.handle, port, self.controls.ctypes.data + 4 * port)
        for c in info.controls:
            self.controls[c.index] = values[c.symbol]
        self.activate()

    def activate(self) -> None:
        if self.desc.activate:
            self.desc.activate(self.handle)
        self._active[0] = True

    def run(self, n: int) -> None:
        self._run(self.handle, n)

    def close(self) -> None:
        self._finalizer()


def _finite(x: np.ndarray) -> bool:
    """Whether every sample is finite (a sum first: no temporary array on the usual path)."""
    return math.isfinite(float(x.sum())) or bool(np.isfinite(x).all())


class Lv2Effect:
    """An LV2 plugin on ``(channels, n)`` float32 blocks at a fixed ``sample_rate`` (Hz).

    Args:
        uri: the plugin's URI.
        params: ``{symbol: value}`` for control inputs (others take the plugin's default).
        sample_rate: Hz, fixed at construction.
        channels: channels of the audio processed (a 1x1 plugin runs once per channel).

    ``reported_latency_samples`` (also ``latency_samples``): the plugin's latency port after
    one run of silence, 0 without one.
    """

    def __init__(self, uri: str, params: dict[str, float], sample_rate: float, channels: int = 2) -> None:
        info = plugin_info(uri)
        if info.problem:
            raise bad_value("lv2 plugin", uri, f"a plugin we can host: {info.name} {info.problem}")
        width, outs = len(info.audio_inputs), len(info.audio_outputs)
        if (width, outs) not in ((1, 1), (1, channels), (channels, channels)):
            raise bad_value("lv2 plugin", uri, f"1x1, 1x{channels} or {channels}x{channels} audio inputs x "
                                               f"outputs for {channels}-channel stems ({info.name}: {width}x{outs})")
        self.info, self.sample_rate, self.channels = info, float(sample_rate), channels
        values = {c.symbol: c.bounds(sample_rate)[2] for c in info.controls}
        for c in info.controls:
            lo, hi, de = c.bounds(sample_rate)
            values[c.symbol] = de if math.isfinite(de) else lo if math.isfinite(lo) else 0.0
        values.update({k: check_param(info, k, v, sample_rate, "params.") for k, v in params.items()})
        #: one instance per channel (1x1 plugin), or one for all channels (1xC: fed the channel mean)
        self.per_channel = width == 1 and outs == 1
        self.runners = [_Runner(info, values, sample_rate) for _ in range(channels if self.per_channel else 1)]
        self.reported_latency_samples = 0
        #: times a non-finite output restarted the plugin
        self.restarts = 0
        if info.latency_port is not None:
            self.process(np.zeros((channels, 256), np.float32))
            self.reported_latency_samples = max(0, int(round(float(self.runners[0].controls[info.latency_port]))))
            self.reset()

    @property
    def latency_samples(self) -> int:
        return self.reported_latency_samples

    def set_param(self, symbol: str, value: float) -> None:
        """Set control input ``symbol`` (range-checked); takes effect at the next run."""
        value = check_param(self.info, symbol, value, self.sample_rate, "params.")
        index = self.info.control(symbol).index  # type: ignore[union-attr]
        for r in self.runners:
            r.controls[index] = value

    def reset(self) -> None:
        """Clear the plugin's state (tails, delay lines): fresh instances with the current
        parameter values. (LV2 defines deactivate + activate as a reset, but plugins do not
        all clear their buffers there: dragonfly's reverbs keep their tails.)"""
        values = {c.symbol: float(self.runners[0].controls[c.index]) for c in self.info.controls}
        old, self.runners = self.runners, [_Runner(self.info, values, self.sample_rate) for _ in self.runners]
        for r in old:
            r.close()

    def process(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``x`` ``(channels, n)`` float32 -> ``(channels, n)`` (into ``out`` when given),
        in pieces of at most :data:`MAX_BLOCK_SIZE` samples. Non-finite input samples are fed as
        0; non-finite output is zeroed and restarts the plugin (counted in ``restarts``)."""
        if out is None:
            out = np.empty((self.channels, x.shape[-1]), np.float32)
        n = x.shape[-1]
        if n and not _finite(x):
            x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
        downmix = not self.per_channel and len(self.info.audio_inputs) == 1 and self.channels > 1
        for start in range(0, n, MAX_BLOCK_SIZE):
            k = min(MAX_BLOCK_SIZE, n - start)
            piece = x[:, start : start + k]
            for c, r in enumerate(self.runners):
                if self.per_channel:
                    r.audio_in[0, :k] = piece[c]
                elif downmix:
                    np.mean(piece, axis=0, out=r.audio_in[0, :k])
                else:
                    r.audio_in[:, :k] = piece
                r.run(k)
                if self.per_channel:
                    out[c, start : start + k] = r.audio_out[0, :k]
                else:
                    out[:, start : start + k] = r.audio_out[:, :k]
        if n and not _finite(out):
            np.nan_to_num(out, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
            self.restarts += 1
            self.reset()
        return out

    def close(self) -> None:
        """Deactivate and free the instances (also done when this object is collected)."""
        for r in self.runners:
            r.close()


class SerialBoard:
    """pedalboard boards and :class:`Lv2Effect` objects run one after another, with the
    surface the effects rack uses on a ``pedalboard.Pedalboard``: ``len``, iteration and
    indexing over the single effects, ``process(x, sample_rate, reset=False)``, ``reset()``.

    Args:
        segments: ``pedalboard.Pedalboard`` objects and :class:`Lv2Effect` objects, in order.
    """

    def __init__(self, segments: list[Any]) -> None:
        self.segments = segments
        self._effects = [e for seg in segments for e in (seg if not isinstance(seg, Lv2Effect) else [seg])]

    def __len__(self) -> int:
        return len(self._effects)

    def __iter__(self) -> Any:
        return iter(self._effects)

    def __getitem__(self, index: int) -> Any:
        return self._effects[index]

    def process(self, x: np.ndarray, sample_rate: float, reset: bool = False) -> np.ndarray:
        """``x`` ``(channels, n)`` float32 through every segment -> ``(channels, n)``."""
        y = x
        for seg in self.segments:
            if isinstance(seg, Lv2Effect):
                if reset:
                    seg.reset()
                y = seg.process(np.asarray(y, np.float32))
            else:
                y = seg.process(np.asarray(y, np.float32), sample_rate, reset=reset)
        return y

    def reset(self) -> None:
        for seg in self.segments:
            seg.reset()


def set_effect_param(effect: Any, param: str, value: float) -> None:
    """Set ``param`` on an :class:`Lv2Effect` or a pedalboard plugin (an attribute)."""
    if isinstance(effect, Lv2Effect):
        effect.set_param(param, value)
    else:
        setattr(effect, param, value)
