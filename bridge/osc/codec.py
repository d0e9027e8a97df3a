"""OSC datagrams in and out: a strict OSC 1.0 parser of our own, python-osc's builders.

Incoming datagrams become ``(address, args)`` pairs (bundles are flattened, nested ones too;
their time tags are ignored: control changes apply on arrival and are smoothed by the mixer).
Anything that is not a well-formed OSC 1.0 packet raises :class:`MalformedDatagram`, with the
reason, and nothing is logged: python-osc's parser logs a ``WARNING:root:`` line for every
unknown type tag or unknown bundle element (and skips it, keeping the rest of the message), so a
stream of junk would flood the console; the server counts malformed datagrams instead.

Argument types: ``i`` int32, ``h`` int64, ``f`` float32, ``d`` float64, ``s`` / ``S`` string,
``b`` blob (bytes), ``c`` char (str), ``r`` RGBA and ``m`` MIDI (int), ``t`` time tag (int),
``T`` / ``F`` (bool), ``N`` (None), ``I`` (inf), ``[`` ... ``]`` arrays (lists). A message
without a type tag string has no arguments.
"""

from __future__ import annotations

import math
import struct
from typing import Any, Sequence

from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder

from stemstream.realtime.errors import StemstreamError

#: The first 8 bytes of an OSC bundle.
BUNDLE_TAG = b"#bundle\x00"
#: Deepest nesting of bundles accepted.
MAX_BUNDLE_DEPTH = 8

_FIXED = {"i": (">i", 4), "h": (">q", 8), "f": (">f", 4), "d": (">d", 8), "r": (">I", 4), "m": (">I", 4),
          "t": (">Q", 8)}


class MalformedDatagram(StemstreamError):
    """A datagram is not a valid OSC message or bundle."""


def _string(data: bytes, at: int) -> tuple[str, int]:
    end = data.find(b"\x00", at)
    if end < 0:
        raise MalformedDatagram(f"string at byte {at}: no terminating NUL")
    try:
        text = data[at:end].decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedDatagram(f"string at byte {at}: not UTF-8") from None
    nxt = (end + 4) & ~3  # NUL included, padded to a multiple of 4
    if nxt > len(data):
        raise MalformedDatagram(f"string at byte {at}: padding runs past the end")
    return text, nxt


def _argument(tag: str, data: bytes, at: int) -> tuple[Any, int]:
    if tag in _FIXED:
        fmt, size = _FIXED[tag]
        if at + size > len(data):
            raise MalformedDatagram(f"argument '{tag}' at byte {at}: datagram ends after {len(data)} bytes")
        return struct.unpack_from(fmt, data, at)[0], at + size
    if tag in "sS":
        return _string(data, at)
    if tag == "b":
        if at + 4 > len(data):
            raise MalformedDatagram(f"blob size at byte {at}: datagram ends")
        size = struct.unpack_from(">i", data, at)[0]
        end = at + 4 + size
        if size < 0 or end > len(data):
            raise MalformedDatagram(f"blob at byte {at}: {size} bytes do not fit")
        return bytes(data[at + 4 : end]), (end + 3) & ~3
    if tag == "c":
        value, at = _argument("i", data, at)
        try:
            return chr(value), at
        except (ValueError, OverflowError):
            raise MalformedDatagram(f"char argument {value!r}: not a code point") from None
    constants = {"T": True, "F": False, "N": None, "I": math.inf}
    if tag in constants:
        return constants[tag], at
    raise MalformedDatagram(f"type tag {tag!r}: not an OSC 1.0 type")


def _message(data: bytes) -> tuple[str, tuple[Any, ...]]:
    address, at = _string(data, 0)
    if not address.startswith("/"):
        raise MalformedDatagram(f"address={address!r}: expected an OSC address starting with '/'")
    if at == len(data):
        return address, ()
    tags, at = _string(data, at)
    if not tags.startswith(","):
        raise MalformedDatagram(f"type tags={tags!r}: expected a string starting with ','")
    stack: list[list[Any]] = [[]]
    for tag in tags[1:]:
        if tag == "[":
            stack.append([])
        elif tag == "]":
            if len(stack) < 2:
                raise MalformedDatagram(f"type tags={tags!r}: ']' without '['")
            inner = stack.pop()
            stack[-1].append(inner)
        else:
            value, at = _argument(tag, data, at)
            stack[-1].append(value)
    if len(stack) != 1:
        raise MalformedDatagram(f"type tags={tags!r}: '[' without ']'")
    if at != len(data):
        raise MalformedDatagram(f"{len(data) - at} bytes after the last argument")
    return address, tuple(stack[0])


def _packet(data: bytes, depth: int, out: list[tuple[str, tuple[Any, ...]]]) -> None:
    if len(data) == 0 or len(data) % 4:
        raise MalformedDatagram(f"{len(data)} bytes: an OSC packet is a non-zero multiple of 4 bytes")
    if not data.startswith(BUNDLE_TAG):
        out.append(_message(data))
        return
    if depth >= MAX_BUNDLE_DEPTH:
        raise MalformedDatagram(f"bundles nested deeper than {MAX_BUNDLE_DEPTH}")
    if len(data) < 16:
        raise MalformedDatagram(f"bundle of {len(data)} bytes: no room for its time tag")
    at = 16
    while at < len(data):
        if at + 4 > len(data):
            raise MalformedDatagram(f"bundle element size at byte {at}: datagram ends")
        size = struct.unpack_from(">i", data, at)[0]
        if size <= 0 or at + 4 + size > len(data):
            raise MalformedDatagram(f"bundle element at byte {at}: size {size} does not fit")
        _packet(data[at + 4 : at + 4 + size], depth + 1, out)
        at += 4 + size


def decode(datagram: bytes) -> list[tuple[str, tuple[Any, ...]]]:
    """The messages in ``datagram`` as ``(address, args)`` pairs, in order; raises
    :class:`MalformedDatagram` (naming what is wrong) unless the whole datagram is valid."""
    out: list[tuple[str, tuple[Any, ...]]] = []
    _packet(bytes(datagram), 0, out)
    return out


def _add(builder: OscMessageBuilder, value: Any) -> None:
    if isinstance(value, bool):
        builder.add_arg(value)
    elif isinstance(value, int):
        builder.add_arg(value, OscMessageBuilder.ARG_TYPE_INT)
    elif isinstance(value, float):
        builder.add_arg(value, OscMessageBuilder.ARG_TYPE_FLOAT)
    elif isinstance(value, str):
        builder.add_arg(value, OscMessageBuilder.ARG_TYPE_STRING)
    else:
        raise TypeError(f"value={value!r}: cannot encode as an OSC argument")


def encode_message(address: str, args: Sequence[Any] = ()) -> bytes:
    """One OSC message: ints as ``i``, floats as ``f``, strings as ``s``, bools as ``T``/``F``."""
    builder = OscMessageBuilder(address=address)
    for value in args:
        _add(builder, value)
    return builder.build().dgram


def encode_bundle(messages: Sequence[tuple[str, Sequence[Any]]]) -> bytes:
    """An OSC bundle (time tag: immediately) holding ``messages``."""
    bundle = OscBundleBuilder(IMMEDIATELY)
    for address, args in messages:
        builder = OscMessageBuilder(address=address)
        for value in args:
            _add(builder, value)
        bundle.add_content(builder.build())
    return bundle.build().dgram
