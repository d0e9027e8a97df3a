"""Model switching without a dropout: the new session warms up beside the old one, then a
crossfade hands over, all inside the audio callback's copy-only work.

Loading a model (reading weights, building the session and its worker) happens on a loader
thread. It describes the finished session into the live table's second slot (an incoming hook,
``stemstream.bridge.live.table.LiveTable.publish``) and then flags the switch (``state[PHASE]``);
the audio side (``live_piece``, in every host) feeds the new session the same input for
``warmup`` samples (its state and buffers fill; its output is not heard yet), crossfades
linearly over ``fade`` samples, moves to the new slot and marks the switch done; the loader
thread then makes it the active session here and closes the old one, never the audio thread.
While both run, CPU use roughly doubles (a few hundred ms).
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

import numpy as np

from stemstream.bridge.live.kernels import DONE, FADE_POS, FADE_SAMPLES, FADING, IDLE, PHASE, WARMUP_LEFT
from stemstream.realtime.errors import ConfigError, StemstreamError, bad_value

SessionFactory = Callable[[str], Any]


class SwitchInProgress(ConfigError):
    """A model switch was requested while another one is still loading, warming up or fading."""


def close_session(session: Any) -> None:
    """Stop a session's worker, whichever of ``close``/``stop`` it offers."""
    for name in ("close", "stop"):
        fn = getattr(session, name, None)
        if callable(fn):
            fn()
            return


class SessionSwitcher:
    """Owns the active real-time session and swaps in a new model on request.

    Args:
        factory: builds a started session for a model name (slow; runs on the loader thread).
        model_name: the first model (built here, synchronously).
        sample_rate: host rate, Hz.
        fade_ms: crossfade length, ms.
        warmup_ms: how long the new session runs unheard before the fade (plus its latency), ms.
        validate: called with a requested name on the control thread; raises if unknown.
    """

    def __init__(
        self,
        factory: SessionFactory,
        model_name: str,
        sample_rate: int,
        fade_ms: float = 50.0,
        warmup_ms: float = 200.0,
        validate: Callable[[str], None] | None = None,
    ) -> None:
        if not 1.0 <= fade_ms <= 5000.0:
            raise bad_value("fade_ms", fade_ms, "a number in [1, 5000] ms")
        self.factory = factory
        self.validate = validate
        self.sample_rate = sample_rate
        self.fade_samples = max(1, int(round(fade_ms * 1e-3 * sample_rate)))
        self.warmup_base = int(round(warmup_ms * 1e-3 * sample_rate))
        self.active = factory(model_name)
        self.active_name = model_name
        self.incoming: Any = None
        self.incoming_name = ""
        self.switches = 0
        self.switch_errors = 0
        #: deadline misses of sessions already switched away from
        self.retired_misses = 0
        self.last_error = ""
        #: switch state shared with the audio side (``stemstream.bridge.live.kernels``: PHASE, WARMUP_LEFT, ...)
        self.state = np.zeros(4, dtype=np.int64)
        self.state[FADE_SAMPLES] = self.fade_samples
        self._retired: Any = None
        #: called with a new session (loader thread) before it starts warming up
        self.incoming_hooks: list[Callable[[Any], None]] = []
        self._lock = threading.Lock()
        self._loader: threading.Thread | None = None
        self._done = threading.Event()

    @property
    def latency_samples(self) -> int:
        """Latency of the active session, samples at the host rate."""
        return int(self.active.latency_samples)

    @property
    def switching(self) -> bool:
        """Whether a switch is loading, warming up or fading."""
        return self.incoming is not None or (self._loader is not None and self._loader.is_alive())

    def request(self, name: str) -> None:
        """Switch to model ``name`` (control thread). Returns at once; loads in the background."""
        if not isinstance(name, str) or not name:
            raise bad_value("model", name, "a model name")
        if self.validate is not None:
            self.validate(name)
        with self._lock:
            if self.switching:
                raise SwitchInProgress(f"model={name!r}: expected no switch already in progress (wait for it "
                                       "to finish)")
            if name == self.active_name:
                return
            self._done.clear()
            self._loader = threading.Thread(target=self._load, args=(name,), name="stemstream-loader", daemon=True)
            self._loader.start()

    def _load(self, name: str) -> None:
        try:
            session = self.factory(name)
        except Exception as exc:  # a bad model file must not stop the live audio
            self.switch_errors += 1
            self.last_error = f"model={name!r}: {exc}" if isinstance(exc, StemstreamError) else repr(exc)
            return
        self.state[WARMUP_LEFT] = self.warmup_base + int(session.latency_samples)
        self.state[FADE_POS] = 0
        self.incoming_name = name
        for hook in list(self.incoming_hooks):  # the live table publishes the new session's slot
            hook(session)
        self.incoming = session
        self.state[PHASE] = FADING  # the audio side crossfades from here (after the slot is written)
        while self._retired is None and not self._done.is_set():  # it marks DONE; the loader finishes
            if self.state[PHASE] == DONE:
                self.finish_switch()
            else:
                time.sleep(0.002)
        while self._retired is None:
            if self._done.wait(0.02):
                break
        if self._retired is not None:
            old, self._retired = self._retired, None
            close_session(old)

    def wait(self, timeout: float = 30.0) -> bool:
        """Block until a requested switch has completed (tests, CLI). True if it did."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if not self.switching:
                return True
            time.sleep(0.01)
        return False

    def finish_switch(self) -> None:
        """Make the incoming session the active one (the fade has completed: ``state[PHASE]``
        is ``DONE``); the loader thread closes the old one."""
        old, incoming = self.active, self.incoming
        self.retired_misses += int(getattr(old, "deadline_misses", 0))
        self.active, self.active_name = incoming, self.incoming_name
        self.incoming = None
        self.switches += 1
        self.state[PHASE] = IDLE
        self._retired = old
        self._done.set()

    def close(self) -> None:
        """Stop every session (after the audio stream has stopped)."""
        self._done.set()
        if self._loader is not None:
            self._loader.join(timeout=5.0)
        for session in (self.incoming, self._retired, self.active):
            if session is not None:
                close_session(session)
        self.incoming = self._retired = None
