"""Duplex audio through PortAudio (python-sounddevice) around a :class:`LiveProcessor`.

By default the stream callback is native code (:mod:`stemstream.bridge.hosts.portaudio_native`: the live path
compiled, no Python and no GIL on the audio thread); with ``native=False``, or where that is
not possible (``native_reason``), a Python callback calls ``processor.process_interleaved``.
PortAudio's status flags are counted either way (input overflow / output underflow as xruns).

Device loss: a stream that ends without :meth:`PortAudioHost.stop` (PortAudio's finished
callback, or ``active`` turning False, which ``stemstream.bridge.hosts.supervisor`` looks at) sets
:attr:`PortAudioHost.lost`. PortAudio cannot reopen a device it lost without re-initialising
itself, so the session ends there with a message and a non-zero exit.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from stemstream.bridge.live.processor import LiveProcessor, output_channels, tune_interpreter
from stemstream.realtime.errors import StemstreamError, require


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
        self.stream.start()
        return self

    def stop(self) -> None:
        """Stop and close the stream (once). A lost stream is left alone: PortAudio's JACK host
        API waits up to 10 minutes to stop or close a stream whose server is gone (pa_jack's
        ``WaitCondition``), and so would ``Pa_Terminate`` at exit, so sounddevice's exit handler is
        unregistered too; the operating system reclaims the stream when the process ends."""
        if self.stopping:
            return
        self.stopping = True
        if self.lost.is_set() or not self.active:  # lost (perhaps not noticed yet)
            import atexit

            import sounddevice

            handler = getattr(sounddevice, "_exit_handler", None)
            if handler is not None:
                atexit.unregister(handler)
            return
        try:
            self.stream.stop()
        finally:
            self.stream.close()
