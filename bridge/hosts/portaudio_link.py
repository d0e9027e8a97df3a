"""Finding a lost PortAudio device again: what the session's devices are called, re-initialising
PortAudio to see the devices present now, and when that cannot be done safely.

PortAudio lists its devices once, at ``Pa_Initialize`` (``import sounddevice``); a device
plugged in again shows up only after ``Pa_Terminate`` and ``Pa_Initialize``, which
python-sounddevice offers as ``sounddevice._terminate()`` and ``sounddevice._initialize()``
(the way its maintainer gives for re-scanning devices: python-sounddevice issues #125 and #516).
``Pa_Terminate`` closes every stream still open, so :func:`rescan` runs only once the lost
streams are closed, and the devices are then looked for by name (their indices change).

PortAudio is not re-initialised (:func:`rescan_blocker`) when:

* a lost stream is not closed yet: ``Pa_CloseStream`` never returns on some (PulseAudio's ALSA
  plugin stalled when its server went away), and ``Pa_Terminate`` would wait on it too;
* PortAudio's JACK host API is loaded (a JACK server ran when PortAudio started) and its server
  went away: ``Pa_Terminate`` then aborts the process (an ``assert`` on closing its JACK client in
  ``pa_jack.c``), for as long as the process lives. This is seen when a device is lost (the
  server not answering then); a JACK server that went away and came back while the session ran
  on another device is not.

The devices are then looked for in PortAudio's device list as it is (ALSA opens a PCM by its
name each time, so a device back under the same name opens again; a USB card that comes back
with another card number does not, until PortAudio can be re-initialised). A device on PortAudio's
JACK host API cannot come back at all (:func:`reopen_blocker`: its JACK client is gone, and a
stream on it takes up to 10 minutes to close, pa_jack's ``WaitCondition``): the session ends
(``--jack`` runs on JACK directly and reconnects).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from dataclasses import dataclass
from typing import Any, Iterator

from stemstream.realtime.errors import require

#: PortAudio's name for its JACK host API.
JACK_HOST_API = "JACK Audio Connection Kit"


@dataclass(frozen=True)
class WantedDevices:
    """The devices a session runs on, as they are looked for again after a loss.

    Attributes:
        input_name / output_name: PortAudio device names (indices change across a rescan).
        input_channels / output_channels: channels the session opens on each.
        sample_rate: the session's rate, Hz (the engine was built for it).
        host_api: the devices' host API name (``"ALSA"``, ``JACK_HOST_API``...).
    """

    input_name: str
    output_name: str
    input_channels: int
    output_channels: int
    sample_rate: int
    host_api: str

    @property
    def label(self) -> str:
        """``'hw:USB'`` or ``'in' / 'out'``, for messages."""
        if self.input_name == self.output_name:
            return repr(self.input_name)
        return f"{self.input_name!r} / {self.output_name!r}"


def wanted_devices(stream: Any, input_channels: int, output_channels: int, sample_rate: int) -> WantedDevices:
    """The devices of an open duplex ``stream`` (``stream.device``: input and output index)."""
    sd = require("sounddevice", "live")
    index_in, index_out = stream.device
    device_in, device_out = sd.query_devices(index_in), sd.query_devices(index_out)
    api = sd.query_hostapis(device_out["hostapi"])["name"]
    return WantedDevices(device_in["name"], device_out["name"], input_channels, output_channels, sample_rate, api)


def _jack_api_loaded() -> bool:
    sd = require("sounddevice", "live")
    return any(api["name"] == JACK_HOST_API for api in sd.query_hostapis())


#: why PortAudio may no longer be re-initialised in this process, once known
_NEVER_RESCAN: list[str] = []


def rescan_blocker() -> str:
    """Why PortAudio must not be re-initialised in this process ("" when it may): its JACK host
    API is loaded and its server is not answering (see the module docstring). Once so, always."""
    if _NEVER_RESCAN:
        return _NEVER_RESCAN[0]
    if not _jack_api_loaded():
        return ""
    from stemstream.bridge.hosts.jack_link import server_format

    try:
        alive = server_format() is not None
    except Exception:  # no JACK-Client: PortAudio's JACK client cannot be checked
        alive = False
    if not alive:
        _NEVER_RESCAN.append("PortAudio's JACK host API lost its server, so PortAudio cannot be restarted")
    return _NEVER_RESCAN[0] if _NEVER_RESCAN else ""


def reopen_blocker(wanted: WantedDevices) -> str:
    """Why ``wanted`` cannot be opened again in this process ("" when it can)."""
    if wanted.host_api == JACK_HOST_API:
        return "PortAudio's JACK host API cannot reopen a server it lost (--jack reconnects)"
    return ""


@contextlib.contextmanager
def quiet_portaudio() -> Iterator[None]:
    """PortAudio prints each failed call on stderr (``Expression 'ret' failed in
    'src/hostapi/alsa/pa_linux_alsa.c'``), four times a second while a device is away: as
    sounddevice does around ``Pa_Initialize``, stderr (file descriptor 2) goes to ``/dev/null``
    meanwhile (a few milliseconds; the session's own lines are not printed then)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
    except (OSError, ValueError, AttributeError):  # no stderr to mute
        yield
        return
    try:
        os.dup2(devnull, 2)
        os.close(devnull)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def rescan() -> None:
    """Re-initialise PortAudio so that its device list is the one present now (every stream
    must be closed first)."""
    sd = require("sounddevice", "live")
    with quiet_portaudio():
        sd._terminate()
        sd._initialize()


_ALSA_NUMBERS = re.compile(r"\s*\(hw:\d+,\d+\)$")


def same_device(name: str, wanted: str) -> bool:
    """Whether PortAudio's device ``name`` is the device called ``wanted`` before: the same name,
    or the same ALSA card at another number (``"USB Audio: - (hw:2,0)"`` for ``"... (hw:1,0)"``)."""
    return name == wanted or _ALSA_NUMBERS.sub("", name) == _ALSA_NUMBERS.sub("", wanted) != wanted


def find_devices(wanted: WantedDevices) -> tuple[int, int] | None:
    """The indices ``(input, output)`` of devices named as ``wanted`` with enough channels at
    its rate, in the current device list (:func:`rescan` first); ``None`` while one is missing."""
    sd = require("sounddevice", "live")
    found: list[int] = []
    for name, kind, channels in ((wanted.input_name, "input", wanted.input_channels),
                                 (wanted.output_name, "output", wanted.output_channels)):
        check = sd.check_input_settings if kind == "input" else sd.check_output_settings
        devices = list(enumerate(sd.query_devices()))  # the same name first, then the card renumbered
        for index, device in sorted(devices, key=lambda d: d[1]["name"] != name):
            if not same_device(device["name"], name) or device[f"max_{kind}_channels"] < channels:
                continue
            try:
                with quiet_portaudio():
                    check(device=index, channels=channels, samplerate=wanted.sample_rate, dtype="float32")
            except Exception:  # there, but not at the session's rate (yet), or not answering
                continue
            found.append(index)
            break
        else:
            return None
    return found[0], found[1]


class PortAudioLink:
    """What :class:`stemstream.bridge.hosts.supervisor.HostSupervisor` asks while a PortAudio
    device is away: whether it may look (:meth:`blocker`), and where the devices are now
    (:meth:`find`: a rescan each time where PortAudio may be re-initialised, else its device list
    as it is).

    Args:
        wanted: the session's devices (``PortAudioHost.wanted``).
    """

    #: a device listed but refusing to open (still settling) is looked for again
    refusal_ends = False

    def __init__(self, wanted: WantedDevices) -> None:
        self.wanted = wanted
        #: every host lost in this session (``PortAudioHost``: its ``closed`` event)
        self.lost: list[Any] = []

    @property
    def left_open(self) -> bool:
        """Whether a lost stream of the session was never closed (see ``PortAudioHost.left_open``)."""
        return any(host.left_open for host in self.lost)

    def blocker(self, lost: Any) -> str:
        """Why the devices cannot be looked for ("" when they can); ``lost`` is the lost host."""
        return reopen_blocker(self.wanted)

    def find(self, lost: Any) -> tuple[int, int] | None:
        """The devices' ``(input, output)`` indices when both are back, else ``None``; PortAudio is
        re-initialised first where it may be (every lost stream closed, :func:`rescan_blocker`)."""
        if lost not in self.lost:
            self.lost.append(lost)
        if all(host.closed.is_set() for host in self.lost) and not rescan_blocker():
            rescan()
        return find_devices(self.wanted)

    def describe(self, found: tuple[int, int]) -> str:
        """``'stemjack' at 48000 Hz, devices 3 / 3``: how the devices came back."""
        return f"{self.wanted.label} at {self.wanted.sample_rate} Hz, devices {found[0]} / {found[1]}"

    def discard(self, found: tuple[int, int]) -> None:
        """Nothing to release (the devices are only indices)."""


__all__ = ["JACK_HOST_API", "PortAudioLink", "WantedDevices", "find_devices", "quiet_portaudio", "reopen_blocker",
           "rescan", "rescan_blocker", "same_device", "wanted_devices"]
