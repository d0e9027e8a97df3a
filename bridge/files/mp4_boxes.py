"""A small MP4 (ISO BMFF) box reader and the one edit the NI Stems format needs: a box in ``moov/udta``.

An MP4 file is a sequence of boxes: a 32-bit big-endian size (header included), a four-character
type, then the payload; size 1 means a 64-bit size follows the type, size 0 means "to the end of
the file". ``moov`` and ``udta`` hold child boxes. Native Instruments' Stems metadata is a
``stem`` box directly in ``moov/udta`` whose payload is JSON (no full-box header); DJ software
(Traktor, Mixxx's ``StemInfoImporter``) walks top-level boxes to ``moov``, then ``udta``, then
``stem``.

:func:`set_udta_box` rewrites ``moov`` with the box added (or replaced). It only does so when
``moov`` is the file's last box (what ffmpeg writes without ``-movflags faststart``), so no media
data moves and no chunk offset (``stco``/``co64``) needs patching; anything else is refused.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

from stemstream.realtime.errors import StemstreamError

#: Top-level boxes that may follow ``moov`` and be dropped when it is rewritten (padding).
_PADDING = (b"free", b"skip")


@dataclass(frozen=True)
class Box:
    """One box: its type, where it starts, its header length and its total size in bytes."""

    type: bytes
    offset: int
    header: int
    size: int

    @property
    def payload_offset(self) -> int:
        return self.offset + self.header

    @property
    def end(self) -> int:
        return self.offset + self.size


def iter_boxes(f: BinaryIO, start: int, end: int) -> Iterator[Box]:
    """The boxes between byte ``start`` and ``end`` of ``f``, in order. A box that claims more than
    is left is a ``StemstreamError``."""
    pos = start
    while pos + 8 <= end:
        f.seek(pos)
        size, kind = struct.unpack(">I4s", f.read(8))
        header = 8
        if size == 1:
            (size,) = struct.unpack(">Q", f.read(8))
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise StemstreamError(f"mp4 box {kind!r} at byte {pos}: size {size} runs past the end ({end})")
        yield Box(kind, pos, header, size)
        pos += size


def _file_size(f: BinaryIO) -> int:
    f.seek(0, os.SEEK_END)
    return f.tell()


def find_box(f: BinaryIO, path: tuple[bytes, ...]) -> Box | None:
    """The first box at ``path`` (e.g. ``(b"moov", b"udta", b"stem")``), or None."""
    start, end = 0, _file_size(f)
    found: Box | None = None
    for kind in path:
        found = next((b for b in iter_boxes(f, start, end) if b.type == kind), None)
        if found is None:
            return None
        start, end = found.payload_offset, found.end
    return found


def read_box_payload(path: str | Path, box_path: tuple[bytes, ...]) -> bytes | None:
    """The payload of the first box at ``box_path`` in file ``path`` (None: not there)."""
    with open(path, "rb") as f:
        box = find_box(f, box_path)
        if box is None:
            return None
        f.seek(box.payload_offset)
        return f.read(box.size - box.header)


def make_box(kind: bytes, payload: bytes) -> bytes:
    """A box of type ``kind`` holding ``payload`` (64-bit size only when needed)."""
    if len(kind) != 4:
        raise ValueError(f"kind={kind!r}: expected four bytes")
    if len(payload) + 8 < 2**32:
        return struct.pack(">I4s", len(payload) + 8, kind) + payload
    return struct.pack(">I4sQ", 1, kind, len(payload) + 16) + payload


def _children(data: bytes) -> list[tuple[bytes, bytes]]:
    """``(type, whole box bytes)`` of the boxes in a container's payload ``data``."""
    import io

    f = io.BytesIO(data)
    return [(b.type, data[b.offset : b.end]) for b in iter_boxes(f, 0, len(data))]


def set_udta_box(path: str | Path, kind: bytes, payload: bytes) -> None:
    """Put a ``kind`` box holding ``payload`` into ``moov/udta`` of the MP4 file ``path`` (replacing
    one of that type; creating ``udta`` if there is none). ``moov`` must be the last box."""
    with open(path, "r+b") as f:
        end = _file_size(f)
        top = list(iter_boxes(f, 0, end))
        moov_at = next((i for i, b in enumerate(top) if b.type == b"moov"), None)
        if moov_at is None:
            raise StemstreamError(f"file={str(path)!r}: no moov box; expected an MP4 file")
        moov = top[moov_at]
        if any(b.type not in _PADDING for b in top[moov_at + 1 :]):
            raise StemstreamError(f"file={str(path)!r}: moov is not the last box; expected ffmpeg's layout "
                                  "(media data first, no faststart)")
        f.seek(moov.payload_offset)
        children = _children(f.read(moov.size - moov.header))
        new_box = make_box(kind, payload)
        parts: list[bytes] = []
        placed = False
        for child_kind, raw in children:
            if child_kind == b"udta" and not placed:
                header = 16 if struct.unpack(">I", raw[:4])[0] == 1 else 8
                inner = [r for k, r in _children(raw[header:]) if k != kind]
                parts.append(make_box(b"udta", b"".join(inner) + new_box))
                placed = True
            else:
                parts.append(raw)
        if not placed:
            parts.append(make_box(b"udta", new_box))
        f.seek(moov.offset)
        f.write(make_box(b"moov", b"".join(parts)))
        f.truncate()
