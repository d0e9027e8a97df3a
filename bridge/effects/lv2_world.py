"""LV2 plugin discovery for the per-stem effect chains: liblilv loaded with ctypes, the
lilv world, plugin ports, and the checks of an ``lv2`` chain entry.

pedalboard hosts VST3 but not LV2, and there is no Python binding of lilv on PyPI or apt,
so this module loads ``liblilv-0.so.0`` (Debian/Ubuntu package ``liblilv-0-0``) itself.

* Discovery: :func:`list_plugins` (every plugin in ``LV2_PATH`` / the default folders, e.g.
  ``/usr/lib/lv2``), :func:`plugin_info` (one plugin's ports: audio in/out, control inputs
  with min/max/default, control outputs, the latency port, required features).
* A chain entry ``{"type": "lv2", "uri": "http://...", "params": {symbol: value}}`` is
  checked by :func:`validate_item` (the plugin exists and can be hosted, every parameter is
  a control input symbol and a number in the port's range) and built as a
  :class:`stemstream.bridge.effects.lv2_host.Lv2Effect` at the rack rate.
* Ranges are in the plugin's own units. Ports with ``lv2:sampleRate`` give their bounds as
  multiples of the sample rate (a cutoff in Hz): those ranges and defaults are scaled by the
  rack rate, and checked again by :func:`check_rate` once the rate is known.

A plugin requiring a host feature other than :data:`PROVIDED_FEATURES` is refused with a
one-line ``problem`` naming it; so is one without audio input or output, or with ports other
than audio/control that are not ``lv2:connectionOptional``. Instantiating and running
plugins: :mod:`stemstream.bridge.effects.lv2_host`.
"""

from __future__ import annotations

import ctypes
import math
import threading
from dataclasses import dataclass
from typing import Any

from stemstream.realtime.errors import MissingDependencyError, bad_value

#: The apt package that provides liblilv.
APT_PACKAGE = "liblilv-0-0"

_LV2 = "http://lv2plug.in/ns/lv2core#"
_URID_MAP = "http://lv2plug.in/ns/ext/urid#map"
_URID_UNMAP = "http://lv2plug.in/ns/ext/urid#unmap"
_BOUNDED = "http://lv2plug.in/ns/ext/buf-size#boundedBlockLength"
_OPTIONS = "http://lv2plug.in/ns/ext/options#options"
#: Feature URIs this host provides to plugins.
PROVIDED_FEATURES: tuple[str, ...] = (_URID_MAP, _URID_UNMAP, _BOUNDED, _OPTIONS)

#: Held around every call into liblilv and the lilv world (shared with :mod:`stemstream.bridge.effects.lv2_host`).
LILV_LOCK = threading.RLock()
_STATE: dict[str, Any] = {}


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


def _lib() -> Any:
    """liblilv with argument/return types declared (loaded once)."""
    with LILV_LOCK:
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


def lilv_world() -> tuple[Any, Any, Any, dict[str, Any]]:
    """``(lib, world, plugins, nodes)``: the lilv world, loaded once for the process."""
    with LILV_LOCK:
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


def find_plugin(uri: str) -> Any:
    """The lilv plugin ``uri`` (a ``const LilvPlugin*``), or ``None``/NULL when not installed."""
    lib, world, plugins, _ = lilv_world()
    node = lib.lilv_new_uri(world, uri.encode())
    try:
        return lib.lilv_plugins_get_by_uri(plugins, node) if node else None
    finally:
        lib.lilv_node_free(node)


def list_plugins() -> list[PluginInfo]:
    """Every LV2 plugin lilv finds (hostable or not: see ``problem``), sorted by URI."""
    with LILV_LOCK:
        lib, _, plugins, nodes = lilv_world()
        found = []
        it = lib.lilv_plugins_begin(plugins)
        while not lib.lilv_plugins_is_end(plugins, it):
            found.append(_info(lib, lib.lilv_plugins_get(plugins, it), nodes))
            it = lib.lilv_plugins_next(plugins, it)
    return sorted(found, key=lambda p: p.uri)


def plugin_info(uri: str) -> PluginInfo:
    """The ports of the plugin ``uri``; ``ConfigError`` when no such plugin is installed."""
    with LILV_LOCK:
        cache = _STATE.setdefault("info", {})
        if isinstance(uri, str) and uri in cache:
            return cache[uri]
        plugin = find_plugin(uri) if isinstance(uri, str) else None
        if not plugin:
            raise bad_value("lv2 uri", uri, "the URI of an installed LV2 plugin (see 'stemstream effects --lv2')")
        lib, _, _, nodes = lilv_world()
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
