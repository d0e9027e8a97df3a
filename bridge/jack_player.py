"""A JACK client that plays an array into its output ports, and a music-like test signal to
play (the signal source for tests, benchmarks and demos without a sound card)."""

from __future__ import annotations

import threading

import numpy as np

from bridge.jack_client import channel_names
from realtime.errors import StemstreamError, bad_value, require


def music_like(seconds: float, sample_rate: int, seed: int = 0) -> np.ndarray:
    """A stereo test signal ``(2, samples)`` float32: four sinusoids (55, 220, 554.4, 880 Hz,
    random phase per channel) plus a decaying noise burst every 0.25 s, peak about 0.6."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    x = np.zeros((2, n), np.float64)
    for f, a in ((55.0, 0.3), (220.0, 0.15), (440.0 * 2 ** (4 / 12), 0.1), (880.0, 0.05)):
        x += a * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi, size=(2, 1)))
    beat = int(0.25 * sample_rate)
    env = np.exp(-np.arange(beat) / (0.03 * sample_rate))
    for start in range(0, n - beat, beat):
        x[:, start : start + beat] += 0.2 * rng.standard_normal((2, beat)) * env
    return (0.5 * x).astype(np.float32)


class JackPlayer:
    """Plays ``audio`` ``(channels, samples)`` float32 once or in a loop, from :meth:`play`.

    ``start_frame`` is the JACK frame time at which sample 0 went out (``None`` before), so
    other clients can align what they record with what was played.
    """

    def __init__(self, audio: np.ndarray, client_name: str = "player", server_name: str | None = None,
                 loop: bool = False) -> None:
        jack = require("jack", "live")
        if audio.ndim != 2 or audio.shape[1] == 0:
            raise bad_value("audio.shape", audio.shape, "(channels, samples) with samples > 0")
        try:
            self.client = jack.Client(client_name, servername=server_name, no_start_server=True)
        except jack.JackOpenError as exc:
            raise StemstreamError(f"JACK server {server_name or 'default'!r} is not running ({exc})") from None
        self.audio = np.ascontiguousarray(audio, dtype=np.float32)
        self.loop = loop
        self.ports = [self.client.outports.register(f"out_{n}") for n in channel_names(audio.shape[0])]
        self.position = 0
        self.start_frame: int | None = None
        self._go = threading.Event()
        self.client.set_process_callback(self._process)

    @property
    def port_names(self) -> list[str]:
        """Full names of the output ports, in channel order."""
        return [p.name for p in self.ports]

    def activate(self) -> "JackPlayer":
        self.client.activate()
        return self

    def play(self) -> None:
        """Start playing at the next JACK cycle."""
        self._go.set()

    @property
    def finished(self) -> bool:
        return not self.loop and self.position >= self.audio.shape[1]

    def _process(self, frames: int) -> None:
        if not self._go.is_set():
            for port in self.ports:
                port.get_array().fill(0.0)
            return
        if self.start_frame is None:
            self.start_frame = self.client.last_frame_time
        total = self.audio.shape[1]
        for c, port in enumerate(self.ports):
            buf = port.get_array()
            done = 0
            pos = self.position
            while done < frames:
                if pos >= total:
                    if not self.loop:
                        buf[done:] = 0.0
                        break
                    pos = 0
                n = min(frames - done, total - pos)
                buf[done : done + n] = self.audio[c, pos : pos + n]
                done += n
                pos += n
        self.position = pos if self.loop else min(total, self.position + frames)

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()
