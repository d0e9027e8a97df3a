"""Which audio host a live session uses, and at what rate, block size, channels and routing.

:func:`choose_host` settles what the user left open from what the host offers:

* ``audio="auto"`` (``stemstream live`` with neither ``--jack`` nor ``--portaudio``): JACK when
  a JACK server runs (the one named by ``jack_server``, else ``$JACK_DEFAULT_SERVER`` or the
  default one) and no PortAudio device was named; PortAudio's devices otherwise.
* JACK: the server's sample rate and period are adopted (any rate and period JACK runs; the
  engine resamples to the model's rate). A rate asked for that differs from the server's, or a
  block shorter than its period, is refused naming both.
* PortAudio: the output device's default rate unless one is asked for (checked against both
  devices), the input device's channels up to stereo, and, unless asked for, the richest routing
  the output device has channels for (``both``, else ``stems``, else ``mix``); a routing that
  needs more channels than the device has is refused naming both counts.

It probes and returns a :class:`HostChoice`; it opens no stream and builds no model, so a
validation suite can ask it what ``live`` would do.
"""

from __future__ import annotations

from dataclasses import dataclass

from stemstream.bridge.hosts.jack_link import open_client, server_format, server_label
from stemstream.bridge.live.processor import ROUTINGS, output_channels
from stemstream.realtime.errors import StemstreamError, bad_value, require

#: Audio host names :func:`choose_host` takes.
AUDIO_HOSTS: tuple[str, ...] = ("auto", "jack", "portaudio")
#: Block size used with PortAudio when none is asked for, samples.
DEFAULT_BLOCK = 256


@dataclass(frozen=True)
class HostChoice:
    """What a live session runs at.

    Attributes:
        audio: ``"jack"`` or ``"portaudio"``.
        sample_rate: host rate, Hz.
        block_size: callback size, samples (JACK: the server's period unless a longer one was asked for).
        channels: input channels (1 or 2).
        routing: one of ``stemstream.bridge.live.processor.ROUTINGS``.
        detail: one line saying what was found (``"JACK server 'default': 48000 Hz, period 256"``).
    """

    audio: str
    sample_rate: int
    block_size: int
    channels: int
    routing: str
    detail: str


def choose_host(audio: str = "auto", *, jack_server: str | None = None, input_device: int | str | None = None,
                output_device: int | str | None = None, sample_rate: int | None = None,
                block_size: int | None = None, routing: str | None = None, channels: int = 2,
                stems: int = 4) -> HostChoice:
    """Settle the host and its format (module docstring). ``None`` means "what the host offers";
    ``stems`` is how many stems the session outputs (for the routing's channel count)."""
    if audio not in AUDIO_HOSTS:
        raise bad_value("audio", audio, f"one of {list(AUDIO_HOSTS)}")
    if routing is not None and routing not in ROUTINGS:
        raise bad_value("routing", routing, f"one of {list(ROUTINGS)}")
    hint = ""
    if audio == "auto":
        named = input_device is not None or output_device is not None
        audio = "portaudio" if named or server_format(jack_server) is None else "jack"
        hint = "" if named else f"; no JACK server {server_label(jack_server)} runs either"
    if audio == "jack":
        return _jack(jack_server, sample_rate, block_size, routing or "both", channels)
    return _portaudio(input_device, output_device, sample_rate, block_size, routing, channels, stems, hint)


def _jack(server: str | None, sample_rate: int | None, block_size: int | None, routing: str,
          channels: int) -> HostChoice:
    client = open_client("stemstream-probe", server)  # names the server when it is not running
    try:
        rate, period = int(client.samplerate), int(client.blocksize)
    finally:
        client.close()
    label = server_label(server)
    if sample_rate is not None and sample_rate != rate:
        raise bad_value("samplerate", sample_rate, f"the rate of JACK server {label}, {rate} Hz (leave --samplerate "
                        "out to adopt it)")
    if block_size is not None and block_size < period:
        raise bad_value("block_size", block_size, f">= the period of JACK server {label}, {period} (leave "
                        "--block-size out to adopt it)")
    return HostChoice("jack", rate, block_size or period, channels, routing,
                      f"JACK server {label}: {rate} Hz, period {period}")


def _device(sd: object, device: int | str | None, kind: str, hint: str) -> dict:
    try:
        return dict(sd.query_devices(device, kind=kind))  # type: ignore[attr-defined]
    except Exception as exc:  # ValueError for a name that matches nothing, PortAudioError
        raise bad_value(kind, "default" if device is None else device,
                        f"a PortAudio {kind} device ({exc}{hint}; see 'stemstream devices')") from None


def _portaudio(input_device: int | str | None, output_device: int | str | None, sample_rate: int | None,
               block_size: int | None, routing: str | None, channels: int, stems: int, hint: str) -> HostChoice:
    sd = require("sounddevice", "live")
    ins, outs = _device(sd, input_device, "input", hint), _device(sd, output_device, "output", hint)
    have_in, have_out = int(ins["max_input_channels"]), int(outs["max_output_channels"])
    if have_in < 1:
        raise bad_value("input", ins["name"], "a device with input channels (see 'stemstream devices')")
    channels = min(channels, have_in)
    if have_out < channels:
        raise bad_value("output", outs["name"], f"a device with at least {channels} output channels")
    if routing is None:
        routing = next(r for r in ("both", "stems", "mix") if output_channels(r, stems, channels) <= have_out)
    need = output_channels(routing, stems, channels)
    if need > have_out:
        raise bad_value("routing", routing, f"at most the {have_out} output channels of {outs['name']!r} "
                        f"({routing!r} needs {need}; try --routing mix, or a device with more channels)")
    rate = sample_rate if sample_rate is not None else int(round(float(outs["default_samplerate"])))
    for device, kind, count in ((ins, "input", channels), (outs, "output", need)):
        check = sd.check_input_settings if kind == "input" else sd.check_output_settings
        try:
            check(device=device["index"], channels=count, samplerate=rate, dtype="float32")
        except Exception as exc:
            raise StemstreamError(f"samplerate={rate!r}: the {kind} device {device['name']!r} refuses it with "
                                  f"{count} channels ({exc}; see 'stemstream devices')") from None
    detail = (f"PortAudio {ins['name']!r} ({have_in} in) -> {outs['name']!r} ({have_out} out): {rate} Hz, "
              f"{channels} in, {need} out")
    return HostChoice("portaudio", rate, block_size or DEFAULT_BLOCK, channels, routing, detail)


__all__ = ["AUDIO_HOSTS", "DEFAULT_BLOCK", "HostChoice", "choose_host"]
