"""Waking the inference worker from the audio callback without Python objects, locks or the GIL.

On Linux the worker sleeps on an ``eventfd``; the callback's numba kernel ends with a libc
``write`` of 8 bytes to it (:func:`signal_eventfd`, a numba intrinsic: no Python call, the GIL
is not released and re-taken, nothing is allocated; the counter never fills in practice, and a
full counter only makes the write fail with ``EAGAIN``, it never blocks). The worker wakes
within tens of microseconds instead of up to one polling interval later. Where ``os.eventfd``
does not exist, :class:`Wakeup` has ``fd == -1`` and its :meth:`Wakeup.wait` simply sleeps
(polling, as before).
"""

from __future__ import annotations

import math
import os
import select
import time
import weakref
from typing import Any

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def signal_eventfd(typingctx: Any, fd: Any, address: Any) -> Any:
    """``write(fd, address, 8)`` from numba code; ``address`` points at an 8-byte counter
    increment (e.g. ``arr[k:].ctypes.data`` of an int64 array holding 1). Returns the result
    of ``write`` (8, or -1 on error)."""
    if not isinstance(fd, types.Integer) or not isinstance(address, types.Integer):
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        bytes_ptr = ir.IntType(8).as_pointer()
        write_type = ir.FunctionType(ir.IntType(64), [ir.IntType(32), bytes_ptr, ir.IntType(64)])
        write = cgutils.get_or_insert_function(builder.module, write_type, "write")
        fd_value = args[0]
        if fd_value.type.width > 32:
            fd_value = builder.trunc(fd_value, ir.IntType(32))
        elif fd_value.type.width < 32:
            fd_value = builder.sext(fd_value, ir.IntType(32))
        pointer = builder.inttoptr(args[1], bytes_ptr)
        return builder.call(write, [fd_value, pointer, ir.Constant(ir.IntType(64), 8)])

    return types.int64(fd, address), codegen


class Wakeup:
    """An ``eventfd`` the worker waits on (``fd == -1`` where unavailable: waits just sleep).

    The descriptor is non-blocking and close-on-exec, and closed when the object is collected.
    """

    def __init__(self) -> None:
        self.fd = -1
        self._poll: Any = None
        if hasattr(os, "eventfd") and hasattr(select, "poll"):
            try:
                self.fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            except OSError:  # pragma: no cover - out of descriptors
                self.fd = -1
        if self.fd >= 0:
            self._poll = select.poll()
            self._poll.register(self.fd, select.POLLIN)
            weakref.finalize(self, os.close, self.fd)

    def wait(self, timeout_s: float) -> None:
        """Return once signalled (clearing the signal) or after ``timeout_s`` seconds."""
        if self.fd < 0:
            time.sleep(timeout_s)
            return
        if self._poll.poll(max(1, math.ceil(timeout_s * 1000))):
            try:
                os.eventfd_read(self.fd)
            except BlockingIOError:  # pragma: no cover - raced with another reader
                pass

    def signal(self) -> None:
        """Wake the waiter from Python (e.g. to stop it)."""
        if self.fd >= 0:
            try:
                os.eventfd_write(self.fd, 1)
            except BlockingIOError:  # pragma: no cover - counter full: already signalled
                pass


__all__ = ["Wakeup", "signal_eventfd"]
