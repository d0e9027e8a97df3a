"""OSC datagrams in and out (python-osc's parser and builders), with nothing else in here.

Incoming datagrams become ``(address, args)`` pairs (bundles are flattened; their time tags
are ignored: control changes apply on arrival and are smoothed by the mixer). Malformed
datagrams raise :class:`MalformedDatagram`.
"""

from __future__ import annotations

from typing import Any, Sequence

from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket

from stemstream.realtime.errors import StemstreamError


class MalformedDatagram(StemstreamError):
    """A datagram is not a valid OSC message or bundle."""


def decode(datagram: bytes) -> list[tuple[str, tuple[Any, ...]]]:
    """The messages in ``datagram`` as ``(address, args)`` pairs, in order."""
    try:
        packet = OscPacket(datagram)
        messages = [(m.message.address, tuple(m.message.params)) for m in packet.messages]
    except Exception as exc:  # python-osc raises ParseError, but also IndexError/struct.error on junk
        raise MalformedDatagram(f"datagram of {len(datagram)} bytes: {exc}") from None
    for address, _ in messages:
        if not isinstance(address, str) or not address.startswith("/"):
            raise MalformedDatagram(f"address={address!r}: expected an OSC address starting with '/'")
    return messages


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
