"""Optional real-time scheduling for the engine's inference worker (Linux, opt-in).

Why: the audio callback is Python and needs the GIL. If the worker holds the GIL and the
OS deschedules it on a busy machine, a real-time audio thread waits for an ordinary one
(priority inversion) and the block is late. Running the worker with ``SCHED_FIFO`` at a
priority below JACK's client threads (:data:`WORKER_PRIORITY`, the lowest) removes
that inversion, as audio applications do for their DSP threads. Linux throttles real-time
threads to 95 % of each second, so a runaway worker cannot lock the machine up.

:class:`RealtimeWorkerSeparator` wraps a streaming separator and switches the scheduling of
whichever thread first calls ``process`` other than the one that built it (the session's
worker; the warm-up calls in ``start()`` run on the building thread and are left alone).
"""

from __future__ import annotations

import os
import threading
from typing import Any

#: SCHED_FIFO priority of the worker: the lowest, below JACK's client threads (5 with jackd -P 10).
WORKER_PRIORITY: int = 1


def make_thread_realtime(priority: int = WORKER_PRIORITY) -> str:
    """Switch the calling thread to ``SCHED_FIFO`` at ``priority``. Returns ``""`` on success
    or the reason it was refused (no permission, not Linux)."""
    if not hasattr(os, "sched_setscheduler"):
        return "real-time scheduling is not available on this OS"
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except OSError as exc:
        return f"SCHED_FIFO refused ({exc.strerror})"
    return ""


class RealtimeWorkerSeparator:
    """A streaming separator whose worker thread is made real-time on its first call.

    Attributes:
        realtime_error: ``None`` before the worker's first call, then ``""`` if the switch
            worked or the reason it did not.
    """

    def __init__(self, separator: Any, priority: int = WORKER_PRIORITY) -> None:
        self.separator = separator
        self.priority = priority
        self.realtime_error: str | None = None
        self._owner = threading.get_ident()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.separator, name)

    @property
    def latency_samples(self) -> int:
        return int(self.separator.latency_samples)

    def process(self, block: Any) -> Any:
        if self.realtime_error is None and threading.get_ident() != self._owner:
            self.realtime_error = make_thread_realtime(self.priority)
        return self.separator.process(block)

    def flush(self) -> Any:
        return self.separator.flush()

    def reset(self) -> None:
        self.separator.reset()
