"""LV2 plugins for the per-stem effect chains, hosted through liblilv with ctypes.

pedalboard hosts VST3 but not LV2, and there is no Python binding of lilv on PyPI or apt,
so this module loads ``liblilv-0.so.0`` (Debian/Ubuntu package ``liblilv-0-0``) itself.

* Discovery: :func:`list_plugins` (every plugin in ``LV2_PATH`` / the default folders, e.g.
  ``/usr/lib/lv2``), :func:`plugin_info` (one plugin's ports: audio in/out, control inputs
  with min/max/default, control outputs, the latency port, required features).
* A chain entry ``{"type": "lv2", "uri": "http://...", "params": {symbol: value}}`` is
  checked by :func:`validate_item` (the plugin exists and can be hosted, every parameter is
  a control input symbol and a number in the port's range) and built as an
  :class:`Lv2Effect` at the rack rate.
* Ranges are in the plugin's own units. Ports with ``lv2:sampleRate`` give their bounds as
  multiples of the sample rate (a cutoff in Hz): those ranges and defaults are scaled by the
  rack rate, and checked again by :func:`check_rate` once the rate is known.

How audio goes through: every instance has preallocated float32 buffers of
:data:`MAX_BLOCK` samples per audio port and one float per control port, connected once
(``LV2_Descriptor.connect_port``) right after ``lilv_plugin_instantiate``; a block is run in
pieces of at most :data:`MAX_BLOCK` samples (copy in, ``run(n)``, copy out). A plugin with
one audio input and one output runs once per channel (two instances for stereo stems); one
with as many inputs and outputs as the stems have channels runs directly. ``lilv_instance_*``
are ``static inline`` in ``lilv.h``, so the descriptor's function pointers are called
through the ``LilvInstance`` struct.

Host features provided: ``urid:map``, ``urid:unmap``, ``bufsz:boundedBlockLength`` and
``options:options`` (min/max/nominal block length, sample rate). A plugin requiring any
other feature is refused with a one-line error naming it; so is one without audio input or
output, or with ports other than audio/control that are not ``lv2:connectionOptional``.

Latency: the plugin's control output with ``lv2:reportsLatency`` (or the ``lv2:latency``
designation) read after one short run of silence at construction; the plugin is then reset
(a fresh instance: see :meth:`Lv2Effect.reset`).
"""

from __future__ import annotations

import ctypes
import math
import threading
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

from realtime.errors import MissingDependencyError, bad_value

#: The apt package that provides liblilv.
APT_PACKAGE = "liblilv-0-0"
#: Largest piece handed to ``run`` in one call, samples (same as pedalboard boards).
MAX_BLOCK = 8192

_LV2 = "http://lv2plug.in/ns/lv2core#"
_URID_MAP = "http://lv2plug.in/ns/ext/urid#map"
_URID_UNMAP = "http://lv2plug.in/ns/ext/urid#unmap"
_BOUNDED = "http://lv2plug.in/ns/ext/buf-size#boundedBlockLength"
_OPTIONS = "http://lv2plug.in/ns/ext/options#options"
#: Feature URIs this host provides to plugins.
PROVIDED_FEATURES: tuple[str, ...] = (_URID_MAP, _URID_UNMAP, _BOUNDED, _OPTIONS)

_LOCK = threading.RLock()
_STATE: dict[str, Any] = {}


class _Feature(ctypes.Structure):
    _fields_ = [("URI", ctypes.c_char_p), ("data", ctypes.c_void_p)]


_CONNECT = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_void_p)
_HANDLE_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_RUN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint32)


class _Descriptor(ctypes.Structure):  # LV2_Descriptor (lv2core/lv2.h)
    _fields_ = [("URI", ctypes.c_char_p), ("instantiate", ctypes.c_void_p), ("connect_port", _CONNECT),
                ("activate", _HANDLE_FN), ("run", _RUN), ("deactivate", _HANDLE_FN),
                ("cleanup", _HANDLE_FN), ("extension_data", ctypes.c_void_p)]


class _Instance(ctypes.Structure):  # struct LilvInstanceImpl (lilv.h)
    _fields_ = [("lv2_descriptor", ctypes.POINTER(_Descriptor)), ("lv2_handle", ctypes.c_void_p),
                ("pimpl", ctypes.c_void_p)]


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
    with _LOCK:
        if uri not in _URID_OF:
            _URID_OF[uri] = len(_URIS)
            _URIS.append(bytes(uri))
        return _URID_OF[uri]


def _unmap(handle: Any, urid: int) -> bytes | None:
    return _URIS[urid] if 0 < urid < len(_URIS) else None


_MAP_CB, _UNMAP_CB = _MAP_FN(_map), _UNMAP_FN(_unmap)


def _lib() -> Any:
    """liblilv with argument/return types declared (loaded once)."""
    with _LOCK:
        if "lib" in _STATE:
            return _STATE["lib"]
        try:
            lib = ctypes.CDLL("liblilv-0.so.0")
        except OSError as exc:
            raise MissingDependencyError(
                f"LV2 hosting needs liblilv ({exc}); install it with: apt-get install {APT_PACKAGE}") from None
        p, u32, f32 = ctypes.c_void_p, ctypes.c_uint32, ctypes.c_float
        sigs: dict[str, tuple[Any, list[Any]]] = {
            "lilv_world_new": (p, []), "lilv_world_load_all": (None, [p]),
            "lilv_world_get_all_plugins": (p, [p]), "lilv_new_uri": (p, [p, ctypes.c_char_p]),
            "lilv_plugins_begin": (p, [p]), "lilv_plugins_next": (p, [p, p]),
            "lilv_plugins_is_end": (ctypes.c_bool, [p, p]), "lilv_plugins_get": (p, [p, p]),
            "lilv_plugins_get_by_uri": (p, [p, p]), "lilv_plugin_get_uri": (p, [p]),
            "lilv_plugin_get_name": (p, [p]), "lilv_plugin_get_num_ports": (u32, [p]),
            "lilv_plugin_get_port_ranges_float": (None, [p] + [ctypes.POINTER(f32)] * 3),
            "lilv_plugin_get_port_by_index": (p, [p, u32]),
            "lilv_plugin_get_port_by_designation": (p, [p, p, p]),
            "lilv_plugin_get_required_features": (p, [p]),
            "lilv_plugin_instantiate": (ctypes.POINTER(_Instance), [p, ctypes.c_double, p]),
            "lilv_instance_free": (None, [ctypes.POINTER(_Instance)]),
            "lilv_port_is_a": (ctypes.c_bool, [p, p, p]), "lilv_port_has_property": (ctypes.c_bool, [p, p, p]),
            "lilv_port_get_symbol": (p, [p, p]), "lilv_port_get_name": (p, [p, p]),
            "lilv_port_get_index": (u32, [p, p]),
            "lilv_nodes_begin": (p, [p]), "lilv_nodes_next": (p, [p, p]),
            "lilv_nodes_is_end": (ctypes.c_bool, [p, p]), "lilv_nodes_get": (p, [p, p]),
            "lilv_nodes_free": (None, [p]), "lilv_node_as_string": (ctypes.c_char_p, [p]),
            "lilv_node_free": (None, [p]),
        }
        for name, (restype, argtypes) in sigs.items():
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = restype, argtypes
        _STATE["lib"] = lib
        return lib


def _world() -> tuple[Any, Any, Any, dict[str, Any]]:
    """``(lib, world, plugins, nodes)``: the lilv world, loaded once for the process."""
    with _LOCK:
        if "world" not in _STATE:
            lib = _lib()
            world = lib.lilv_world_new()
            lib.lilv_world_load_all(world)
            names = ["InputPort", "OutputPort", "AudioPort", "ControlPort", "connectionOptional",
                     "sampleRate", "integer", "toggled", "reportsLatency", "latency"]
            nodes = {n: lib.lilv_new_uri(world, (_LV2 + n).encode()) for n in names}
            _STATE["world"] = (lib, world, lib.lilv_world_get_all_plugins(world), nodes)
        return _STATE["world"]


def _text(lib: Any, node: Any, free: bool = False) -> str:
    if not node:
        return ""
    text = (lib.lilv_node_as_string(node) or b"").decode("utf-8", "replace")
    if free:
        lib.lilv_node_free(node)
    return text


@dataclass(frozen=True)
class ControlPort:
    """A control input: ``minimum``/``maximum``/``default`` in the plugin's units (NaN where
    the plugin states none); ``per_sample_rate``: those are multiples of the sample rate."""

    index: int
    symbol: str
    name: str
    minimum: float
    maximum: float
    default: float
    per_sample_rate: bool = False

    def bounds(self, sample_rate: float | None) -> tuple[float, float, float]:
        """``(minimum, maximum, default)`` at ``sample_rate`` Hz (unscaled when ``None``)."""
        k = float(sample_rate) if self.per_sample_rate and sample_rate else 1.0
        # a default outside the unscaled range is already absolute (swh's oscillators: 440)
        relative = not (self.default < self.minimum or self.default > self.maximum)
        return self.minimum * k, self.maximum * k, self.default * (k if relative else 1.0)


@dataclass(frozen=True)
class PluginInfo:
    """One LV2 plugin's ports (indices into the plugin's port list) and whether we can host it.

    ``problem`` is ``""`` when the plugin can be hosted, else why not (one line)."""

    uri: str
    name: str
    audio_inputs: tuple[int, ...]
    audio_outputs: tuple[int, ...]
    controls: tuple[ControlPort, ...]
    control_outputs: tuple[tuple[int, str], ...]
    latency_port: int | None
    required_features: tuple[str, ...]
    ports: int
    problem: str = ""

    def control(self, symbol: str) -> ControlPort | None:
        """The control input with this symbol, or ``None``."""
        return next((c for c in self.controls if c.symbol == symbol), None)


def _info(lib: Any, plugin: Any, nodes: dict[str, Any]) -> PluginInfo:
    uri = _text(lib, lib.lilv_plugin_get_uri(plugin))
    n = int(lib.lilv_plugin_get_num_ports(plugin))
    lo, hi, de = (ctypes.c_float * max(n, 1))(), (ctypes.c_float * max(n, 1))(), (ctypes.c_float * max(n, 1))()
    lib.lilv_plugin_get_port_ranges_float(plugin, lo, hi, de)
    latency_by_designation = lib.lilv_plugin_get_port_by_designation(plugin, nodes["OutputPort"], nodes["latency"])
    ins, outs, controls, control_outs, problems = [], [], [], [], []
    latency = None
    for i in range(n):
        port = lib.lilv_plugin_get_port_by_index(plugin, i)
        is_a = lambda kind: bool(lib.lilv_port_is_a(plugin, port, nodes[kind]))  # noqa: E731
        has = lambda prop: bool(lib.lilv_port_has_property(plugin, port, nodes[prop]))  # noqa: E731
        symbol = _text(lib, lib.lilv_port_get_symbol(plugin, port))
        if is_a("AudioPort"):
            (ins if is_a("InputPort") else outs).append(i)
        elif is_a("ControlPort") and is_a("InputPort"):
            controls.append(ControlPort(i, symbol, _text(lib, lib.lilv_port_get_name(plugin, port), free=True),
                                        float(lo[i]), float(hi[i]), float(de[i]), has("sampleRate")))
        elif is_a("ControlPort"):
            control_outs.append((i, symbol))
            if has("reportsLatency") or (latency_by_designation and int(
                    lib.lilv_port_get_index(plugin, latency_by_designation)) == i):
                latency = i
        elif not has("connectionOptional"):
            problems.append(f"port {symbol!r} is neither audio nor control")
    features = lib.lilv_plugin_get_required_features(plugin)
    required = []
    it = lib.lilv_nodes_begin(features)
    while not lib.lilv_nodes_is_end(features, it):
        required.append(_text(lib, lib.lilv_nodes_get(features, it)))
        it = lib.lilv_nodes_next(features, it)
    lib.lilv_nodes_free(features)
    missing = [f for f in required if f not in PROVIDED_FEATURES]
    if missing:
        problems.insert(0, f"requires host features we do not provide: {', '.join(missing)}")
    if not ins or not outs:
        problems.append(f"has {len(ins)} audio inputs and {len(outs)} audio outputs (needs both)")
    elif (len(ins), len(outs)) not in ((1, 1), (1, 2), (2, 2)):
        problems.append(f"has {len(ins)} audio inputs and {len(outs)} outputs (hosted: 1x1, 1x2, 2x2)")
    return PluginInfo(uri, _text(lib, lib.lilv_plugin_get_name(plugin), free=True), tuple(ins), tuple(outs),
                      tuple(controls), tuple(control_outs), latency, tuple(required), n, "; ".join(problems))


def _find(uri: str) -> Any:
    lib, world, plugins, _ = _world()
    node = lib.lilv_new_uri(world, uri.encode())
    try:
        return lib.lilv_plugins_get_by_uri(plugins, node) if node else None
    finally:
        lib.lilv_node_free(node)


def list_plugins() -> list[PluginInfo]:
    """Every LV2 plugin lilv finds (hostable or not: see ``problem``), sorted by URI."""
    with _LOCK:
        lib, _, plugins, nodes = _world()
        found = []
        it = lib.lilv_plugins_begin(plugins)
        while not lib.lilv_plugins_is_end(plugins, it):
            found.append(_info(lib, lib.lilv_plugins_get(plugins, it), nodes))
            it = lib.lilv_plugins_next(plugins, it)
    return sorted(found, key=lambda p: p.uri)


def plugin_info(uri: str) -> PluginInfo:
    """The ports of the plugin ``uri``; ``ConfigError`` when no such plugin is installed."""
    with _LOCK:
        cache = _STATE.setdefault("info", {})
        if isinstance(uri, str) and uri in cache:
            return cache[uri]
        plugin = _find(uri) if isinstance(uri, str) else None
        if not plugin:
            raise bad_value("lv2 uri", uri, "the URI of an installed LV2 plugin (see 'stemstream effects --lv2')")
        lib, _, _, nodes = _world()
        cache[uri] = _info(lib, plugin, nodes)
        return cache[uri]


def check_param(info: PluginInfo, symbol: Any, value: Any, sample_rate: float | None, where: str = "") -> float:
    """``value`` as a float after checking it against control input ``symbol``'s range at
    ``sample_rate`` Hz (a ``per_sample_rate`` range is left unchecked when ``None``)."""
    port = info.control(symbol) if isinstance(symbol, str) else None
    name = f"{where}{symbol}" if isinstance(symbol, str) else f"{where}{symbol!r}"
    if port is None:
        raise bad_value(name, value, f"a control input of {info.name}: {[c.symbol for c in info.controls]}")
    lo, hi, _ = port.bounds(sample_rate)
    if port.per_sample_rate and sample_rate is None:
        lo = hi = math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or (
            not math.isnan(lo) and value < lo) or (not math.isnan(hi) and value > hi):
        unit = f" at {sample_rate:g} Hz" if port.per_sample_rate and sample_rate else ""
        span = "a finite number" if math.isnan(lo) and math.isnan(hi) else f"a number in [{lo:g}, {hi:g}]{unit}"
        raise bad_value(name, value, f"{span} ({info.name}: {port.name})")
    return float(value)


def validate_item(item: dict[str, Any], i: int, sample_rate: float | None = None) -> dict[str, Any]:
    """A chain entry ``{"type": "lv2", "uri": ..., "params": {...}}`` checked and normalised."""
    uri, params = item.get("uri"), item.get("params", {})
    extra = sorted(set(item) - {"type", "uri", "params"})
    if extra:
        raise bad_value(f"effects[{i}].{extra[0]}", item[extra[0]], "only 'uri' and 'params' in an lv2 effect")
    if not isinstance(uri, str):
        raise bad_value(f"effects[{i}].uri", uri, "the URI of an LV2 plugin")
    if not isinstance(params, dict):
        raise bad_value(f"effects[{i}].params", params, "an object of {symbol: number}")
    info = plugin_info(uri)
    if info.problem:
        raise bad_value(f"effects[{i}].uri", uri, f"a plugin we can host: {info.name} {info.problem}")
    checked = {k: check_param(info, k, v, sample_rate, f"effects[{i}].params.") for k, v in params.items()}
    return {"type": "lv2", "uri": uri, "params": checked}


def check_rate(chain: list[dict[str, Any]], sample_rate: float) -> None:
    """Check the sample-rate-relative parameters of a chain's lv2 effects at ``sample_rate``."""
    for i, item in enumerate(chain):
        if item["type"] == "lv2":
            validate_item(item, i, sample_rate)


def latency_with(uri: str, params: dict[str, float], sample_rate: float) -> int:
    """The latency the plugin reports with these parameters, samples (0 without a latency
    port; an instance is built and run briefly to read it)."""
    if plugin_info(uri).latency_port is None:
        return 0
    effect = Lv2Effect(uri, params, sample_rate, len(plugin_info(uri).audio_outputs))
    effect.close()
    return effect.latency_samples


def _features(sample_rate: float, max_block: int) -> tuple[Any, list[Any]]:
    """A NULL-terminated ``LV2_Feature*`` array and the objects it points into (keep alive)."""
    umap, uunmap = _UridMap(None, _MAP_CB), _UridUnmap(None, _UNMAP_CB)
    m = lambda uri: _map(None, uri.encode())  # noqa: E731
    lengths = (ctypes.c_int32 * 3)(1, max_block, 256)
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
    feats = [_Feature(uri.encode(), d) for uri, d in zip((_URID_MAP, _URID_UNMAP, _BOUNDED, _OPTIONS), data)]
    array = (ctypes.POINTER(_Feature) * (len(feats) + 1))(*[ctypes.pointer(f) for f in feats], None)
    return array, [umap, uunmap, lengths, rate, options, feats]


def _free(lib: Any, instance: Any, active: list[bool]) -> None:
    deactivate = instance.contents.lv2_descriptor.contents.deactivate
    if active[0] and deactivate:  # NULL when the plugin has none
        deactivate(instance.contents.lv2_handle)
        active[0] = False
    with _LOCK:  # freeing may close the plugin's library, which the lilv world tracks
        lib.lilv_instance_free(instance)


class _Runner:
    """One plugin instance with its own connected buffers (``audio_in``/``audio_out``:
    ``(ports, MAX_BLOCK)`` float32; ``controls``: one float per port index)."""

    def __init__(self, info: PluginInfo, values: dict[str, float], sample_rate: float) -> None:
        lib, _, _, _ = _world()
        with _LOCK:
            feats, self._keep = _features(sample_rate, MAX_BLOCK)
            instance = lib.lilv_plugin_instantiate(_find(info.uri), float(sample_rate), feats)
        if not instance:
            raise bad_value("lv2 plugin", info.uri,
                            f"a plugin that instantiates at {sample_rate:g} Hz (lilv printed why on stderr)")
        self.instance = instance
        self.desc = instance.contents.lv2_descriptor.contents
        self.handle = instance.contents.lv2_handle
        self._run = self.desc.run
        self._active = [False]
        self._finalizer = weakref.finalize(self, _free, lib, instance, self._active)
        self.audio_in = np.zeros((len(info.audio_inputs), MAX_BLOCK), np.float32)
        self.audio_out = np.zeros((len(info.audio_outputs), MAX_BLOCK), np.float32)
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
        in pieces of at most :data:`MAX_BLOCK` samples. Non-finite input samples are fed as
        0; non-finite output is zeroed and restarts the plugin (counted in ``restarts``)."""
        if out is None:
            out = np.empty((self.channels, x.shape[-1]), np.float32)
        n = x.shape[-1]
        if n and not _finite(x):
            x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
        downmix = not self.per_channel and len(self.info.audio_inputs) == 1 and self.channels > 1
        for start in range(0, n, MAX_BLOCK):
            k = min(MAX_BLOCK, n - start)
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
