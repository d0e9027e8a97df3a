"""A JACK client that plays an array into its output ports, and a music-like test signal to
play (the signal source for tests, benchmarks and demos without a sound card)."""

from __future__ import annotations

import numpy as np

from stemstream.bridge.hosts.jack_client import channel_names
from stemstream.realtime.errors import StemstreamError, bad_value, require


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
    other clients can align what they record with what was played. The process callback is
    native code (``stemstream.bridge.hosts.jack_native.play_period``: no GIL), so a player in the same process
    as stemstream behaves like one in another process (a DJ application).
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
        from stemstream.bridge.hosts.jack_latency import raw_pointer
        from stemstream.bridge.hosts.jack_native import PLAYER_TABLE_SIZE, P_AUDIO, P_CHANNELS, P_CLIENT, P_GO, P_LOOP, \
            P_PORTS, P_POSITION, P_SAMPLES, P_START_FRAME, set_process

        self._ports = np.array([raw_pointer(p) for p in self.ports], np.int64)
        self._position = np.zeros(1, np.int64)
        self._go = np.zeros(1, np.int64)
        self._start = np.full(1, -1, np.int64)
        table = np.zeros(PLAYER_TABLE_SIZE, np.int64)
        table[P_CHANNELS], table[P_SAMPLES], table[P_LOOP] = self.audio.shape[0], self.audio.shape[1], int(loop)
        for entry, array in ((P_PORTS, self._ports), (P_AUDIO, self.audio), (P_POSITION, self._position),
                             (P_GO, self._go), (P_START_FRAME, self._start)):
            table[entry] = array.ctypes.data
        table[P_CLIENT] = raw_pointer(self.client)
        self._table = table
        set_process(self.client, table, player=True)

    @property
    def position(self) -> int:
        """Next sample to play."""
        return int(self._position[0])

    @property
    def start_frame(self) -> int | None:
        """JACK frame time at which sample 0 went out (``None`` before)."""
        value = int(self._start[0])
        return None if value < 0 else value

    @property
    def port_names(self) -> list[str]:
        """Full names of the output ports, in channel order."""
        return [p.name for p in self.ports]

    def activate(self) -> "JackPlayer":
        self.client.activate()
        return self

    def play(self) -> None:
        """Start playing at the next JACK cycle."""
        self._go[0] = 1

    @property
    def finished(self) -> bool:
        return not self.loop and self.position >= self.audio.shape[1]

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()
