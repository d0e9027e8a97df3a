"""A preallocated ring of short MIDI events, written by an audio callback, read by a control thread.

The audio side (the JACK process callback, native or Python) copies each incoming channel message
into the ring with :func:`push_event` (numba: no allocation, no lock, no Python object) and wakes
the reader through an ``eventfd`` (``stemstream.realtime.engine.wakeup``: a ``write`` of 8 bytes,
never blocking). The control thread (``stemstream.bridge.control.midi``) waits on it, takes the
events with :meth:`EventRing.drain` and applies them through the control layer, off the audio
thread. One writer and one reader per ring: a second source (the ALSA sequencer) gets a ring of
its own.

Layout: ``events`` int64 ``(capacity, 4)``, one row per event: ``frame, status, data1, data2``
(``frame``: the event's sample time on the host's clock, JACK's frame time; -1 where the source has
no sample clock). ``index`` int64 ``(4,)``: ``WRITTEN`` (events written, ever), ``READ`` (events
read, ever; only the reader writes it), ``DROPPED`` (events lost because the ring was full), and
``WAKE_FD`` (the eventfd, -1: none). The writer stores a row, then bumps ``WRITTEN`` (in program
order on x86-64, as the rest of the live path relies on: ``stemstream.bridge.live.table``).
Only channel messages (status 0x80-0xEF) are kept: clock, active sensing and SysEx never fill it.
"""

from __future__ import annotations

import os

import numba
import numpy as np

from stemstream.realtime.engine.wakeup import Wakeup, signal_eventfd
from stemstream.realtime.errors import bad_value

#: Entries of :attr:`EventRing.index`.
WRITTEN, READ, DROPPED, WAKE_FD = range(4)
#: Columns of :attr:`EventRing.events`.
FRAME, STATUS, DATA1, DATA2 = range(4)
#: Events a ring holds unread by default (a fader sweep sends ~100 a second).
DEFAULT_CAPACITY: int = 1024


@numba.njit(cache=True)
def push_event(events: np.ndarray, index: np.ndarray, frame: int, status: int, data1: int, data2: int) -> bool:
    """Store one event (the writer's side); False when it was not a channel message or the ring
    was full (then counted in ``index[DROPPED]``)."""
    if status < 0x80 or status > 0xEF:
        return False
    written = index[WRITTEN]
    capacity = events.shape[0]
    if written - index[READ] >= capacity:
        index[DROPPED] += 1
        return False
    row = written % capacity
    events[row, FRAME] = frame
    events[row, STATUS] = status
    events[row, DATA1] = data1 & 0x7F
    events[row, DATA2] = data2 & 0x7F
    index[WRITTEN] = written + 1
    return True


@numba.njit(cache=True)
def wake_reader(index: np.ndarray, one: np.ndarray) -> None:
    """Wake the reader (``one``: an int64 array holding 1, the eventfd increment)."""
    if index[WAKE_FD] >= 0:
        signal_eventfd(index[WAKE_FD], one.ctypes.data)


class EventRing:
    """One writer's ring of MIDI events (see the module docstring).

    Args:
        capacity: events held unread before new ones are dropped (and counted).

    Attributes:
        events / index / one: the arrays a native writer is handed (``stemstream.bridge.hosts.jack_native``).
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if not isinstance(capacity, int) or not 1 <= capacity <= 1 << 20:
            raise bad_value("capacity", capacity, "an int in [1, 1048576] events")
        self.events = np.zeros((capacity, 4), np.int64)
        self.index = np.zeros(4, np.int64)
        self.one = np.ones(1, np.int64)
        self.wakeup = Wakeup()
        self.index[WAKE_FD] = self.wakeup.fd

    def push(self, frame: int, data: bytes | bytearray | memoryview | list[int]) -> bool:
        """The writer's side from Python (a Python JACK callback, the ALSA input's thread): one
        raw MIDI message; wakes the reader. False when it was not kept."""
        raw = bytes(data)
        if not raw:
            return False
        kept = bool(push_event(self.events, self.index, int(frame), raw[0],
                               raw[1] if len(raw) > 1 else 0, raw[2] if len(raw) > 2 else 0))
        if kept and self.wakeup.fd >= 0:
            try:
                os.eventfd_write(self.wakeup.fd, 1)
            except (BlockingIOError, OSError):  # pragma: no cover - the counter is never full
                pass
        return kept

    def wait(self, timeout_s: float) -> None:
        """The reader's side: return once woken or after ``timeout_s`` seconds."""
        self.wakeup.wait(timeout_s)

    def drain(self) -> np.ndarray:
        """The reader's side: the events written since the last call, ``(n, 4)`` (a copy), oldest first."""
        written, read = int(self.index[WRITTEN]), int(self.index[READ])
        n = written - read
        if n <= 0:
            return np.zeros((0, 4), np.int64)
        capacity = self.events.shape[0]
        rows = (np.arange(read, written) % capacity)
        out = self.events[rows].copy()
        self.index[READ] = written
        return out

    @property
    def dropped(self) -> int:
        """Events lost because the reader fell a whole ring behind."""
        return int(self.index[DROPPED])
