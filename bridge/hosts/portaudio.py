"""Duplex audio through PortAudio (python-sounddevice) around a :class:`LiveProcessor`.

By default the stream callback is native code (:mod:`stemstream.bridge.hosts.portaudio_native`: the live path
compiled, no Python and no GIL on the audio thread); with ``native=False``, or where that is
not possible (``native_reason``), a Python callback calls ``processor.process_interleaved``.
PortAudio's status flags are counted either way (input overflow / output underflow as xruns).

Device loss: a stream that ends without :meth:`PortAudioHost.stop` (PortAudio's finished
callback, or ``active`` turning False), or whose callbacks stop coming for :data:`STALL_S` while
it still calls itself active (ALSA's JACK plugin when its server goes away), sets
:attr:`PortAudioHost.lost`; ``stemstream.bridge.hosts.supervisor`` calls :meth:`PortAudioHost.check`
every :data:`CHECK_S`. The devices are then looked for again by name (``stemstream.bridge.hosts.portaudio_link``,
:attr:`PortAudioHost.wanted`) and a new host opened on them runs the same processor.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from stemstream.bridge.hosts.portaudio_link import WantedDevices, reopen_blocker, wanted_devices
from stemstream.bridge.live.processor import LiveProcessor, output_channels, tune_interpreter
from stemstream.realtime.errors import StemstreamError, require

#: A stream whose callbacks stopped for this long (seconds, or 4 blocks if longer) while it says
#: it is active is lost.
STALL_S: float = 0.3
#: How often the supervisor calls :meth:`PortAudioHost.check`, seconds (a few microseconds each).
CHECK_S: float = 0.1
#: How long a started stream may take to call back the first time, seconds (PulseAudio's ALSA
#: plugin takes about 2 s to fill its capture buffer).
FIRST_CALLBACK_S: float = 5.0


def parse_device(value: str | None) -> int | str | None:
    """A device given on the command line: an index (``"3"``) or a name substring."""
    if value is None or value == "":
        return None
    return int(value) if value.isdigit() else value


def list_devices() -> list[dict[str, Any]]:
    """Every PortAudio device: index, name, host API, channel counts, default rate."""
    sd = require("sounddevice", "live")
    apis = sd.query_hostapis()
    return [
        {
            "index": i,
            "name": d["name"],
            "hostapi": apis[d["hostapi"]]["name"],
            "max_input_channels": d["max_input_channels"],
            "max_output_channels": d["max_output_channels"],
            "default_samplerate": d["default_samplerate"],
        }
        for i, d in enumerate(sd.query_devices())
    ]


class PortAudioHost:
    """An open duplex ``sounddevice.Stream`` feeding ``processor``.

    Args:
        processor: the live path; its config gives rate, block size, channels and routing.
        input_device / output_device: PortAudio device index or name (``None``: default).

    Attributes:
        lost: set when the stream ended without :meth:`stop` (``lost_reason``, ``lost_at``).
        stopping: True once :meth:`stop` began (an end that is not a loss).
    """

    def __init__(self, processor: LiveProcessor, input_device: int | str | None = None,
                 output_device: int | str | None = None, native: bool = True) -> None:
        sd = require("sounddevice", "live")
        self.processor = processor
        cfg = processor.config
        self.output_channels = output_channels(cfg.routing, len(processor.stems), cfg.channels)
        self.callback_errors = 0
        self.native: Any = None
        self.native_reason = "not requested"
        self.lost = threading.Event()
        self.lost_reason = ""
        self.lost_at = 0.0
        self.stopping = False
        self._progress = (-1, 0.0)  # callbacks seen, and when they last moved (monotonic s)
        self._started_at = -1  # callbacks when the stream started
        #: callbacks standing still this long (seconds) is a loss; :meth:`check` wants calling this often
        self.stall_s = max(STALL_S, 4 * cfg.block_size / cfg.sample_rate)
        self.check_s = CHECK_S
        #: set once a lost stream is closed (:meth:`stop`)
        self.closed = threading.Event()
        self._closer: threading.Thread | None = None
        device = (input_device, output_device)
        try:
            if native:
                from stemstream.bridge.hosts.portaudio_native import NativeStream, portaudio_native_supported

                self.native_reason = portaudio_native_supported(processor)
                if not self.native_reason:
                    self.native = NativeStream(processor, device, self.output_channels, samplerate=cfg.sample_rate,
                                               blocksize=cfg.block_size, latency="low",
                                               finished_callback=self._finished)
                    self.stream = self.native.stream
            if self.native is None:
                self.stream = sd.Stream(device=device, samplerate=cfg.sample_rate, blocksize=cfg.block_size,
                                        channels=(cfg.channels, self.output_channels), dtype="float32",
                                        latency="low", callback=self._callback, finished_callback=self._finished)
        except Exception as exc:  # PortAudioError, ValueError for unknown devices
            raise StemstreamError(
                f"cannot open audio devices input={input_device!r} output={output_device!r} with "
                f"{cfg.channels} in / {self.output_channels} out channels at {cfg.sample_rate} Hz: {exc} "
                "(see 'stemstream devices')"
            ) from None
        #: the devices as they would be looked for again after a loss
        self.wanted: WantedDevices = wanted_devices(self.stream, cfg.channels, self.output_channels,
                                                    cfg.sample_rate)

    @property
    def callback_mode(self) -> str:
        """``"native"`` (compiled callback, no GIL) or ``"python"``."""
        return "python" if self.native is None else "native"

    @property
    def active(self) -> bool:
        """Whether the stream is running (False after a device loss or :meth:`stop`)."""
        try:
            return bool(self.stream.active)
        except Exception:  # a stream PortAudio no longer knows
            return False

    def check(self, now: float | None = None) -> bool:
        """Whether the stream is lost (sets :attr:`lost`): ended without :meth:`stop`, or its
        callbacks stopped for :attr:`stall_s` (:data:`FIRST_CALLBACK_S` before the first one)
        while it says it is active. Called every :attr:`check_s`."""
        if self.lost.is_set():
            return True
        if self.stopping:
            return False
        now = time.monotonic() if now is None else now
        callbacks = int(self.processor.callbacks)
        if callbacks != self._progress[0]:
            self._progress = (callbacks, now)
            stalled = False
        else:
            limit = self.stall_s if callbacks != self._started_at else FIRST_CALLBACK_S
            stalled = now - self._progress[1] >= limit
        if self.active and not stalled:
            return False
        self.lost_reason = self.lost_reason or ("its callbacks stopped: device gone or hung" if stalled
                                                else "its stream ended: device gone or failed")
        self.lost_at = self._progress[1] if stalled else now
        self.lost.set()
        return True

    @property
    def left_open(self) -> bool:
        """Whether a lost stream was left open (not closable, or its close has not returned):
        PortAudio and the libraries under it may then crash when the process exits normally."""
        return self.stopping and self.lost.is_set() and not self.closed.is_set()

    def wait_closed(self, timeout_s: float) -> None:
        """Give a lost stream's close (:meth:`stop`) up to ``timeout_s`` seconds to return."""
        if self._closer is not None:
            self._closer.join(timeout_s)

    def _close_lost(self) -> None:
        try:
            self.stream.close(ignore_errors=True)  # aborts a stalled stream's thread
        finally:
            self.closed.set()

    def _finished(self) -> None:
        # PortAudio's thread, once the stream has ended: a loss unless we stopped it
        if not self.stopping and not self.lost.is_set():
            self.lost_reason = "its stream ended: device gone or failed"
            self.lost_at = time.monotonic()
            self.lost.set()

    @property
    def host_latency_samples(self) -> int:
        """PortAudio's reported input + output latency, samples."""
        lat_in, lat_out = self.stream.latency
        return int(round((lat_in + lat_out) * self.processor.config.sample_rate))

    def _callback(self, indata: Any, outdata: Any, frames: int, time: Any, status: Any) -> None:
        if status:
            self.processor.status_flags += 1
            if status.input_overflow or status.output_underflow:
                self.processor.xruns += 1
        try:
            self.processor.process_interleaved(indata, outdata)
        except Exception:
            self.callback_errors += 1
            outdata.fill(0.0)

    def start(self) -> "PortAudioHost":
        tune_interpreter()
        self._started_at = int(self.processor.callbacks)
        self._progress = (self._started_at, time.monotonic())
        self.stream.start()
        return self

    def stop(self) -> None:
        """Stop and close the stream (once). A lost stream is closed on a thread of its own
        (:attr:`closed` is set once it is: ``Pa_CloseStream`` never returns on some lost streams,
        PulseAudio's ALSA plugin stalled when its server went away), except on PortAudio's JACK
        host API, which waits up to 10 minutes to close a stream whose server is gone (pa_jack's
        ``WaitCondition``): that one is left alone. Either way sounddevice's exit handler is
        unregistered (``Pa_Terminate`` at exit would wait on the stream too, or abort)."""
        if self.stopping:
            return
        self.stopping = True
        if self.lost.is_set() or not self.active:  # lost (perhaps not noticed yet)
            import atexit

            import sounddevice

            handler = getattr(sounddevice, "_exit_handler", None)
            if handler is not None:
                atexit.unregister(handler)
            if not reopen_blocker(self.wanted):
                self._closer = threading.Thread(target=self._close_lost, name="stemstream-close-lost", daemon=True)
                self._closer.start()
            return
        try:
            self.stream.stop()
        finally:
            self.stream.close()
