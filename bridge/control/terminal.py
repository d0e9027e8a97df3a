"""The live session's status on the console: one screen redrawn on a terminal, plain lines otherwise.

:class:`StatusScreen` (stdout is a terminal): the terminal's alternate screen, redrawn
:data:`SCREEN_HZ` times a second in place (cursor home, each line cleared to its end, no
scrolling): the model and host, latency, CPU, deadline misses, xruns, control messages, a meter
bar per stem (RMS with a peak mark, dBFS) with its gain, mute and solo, the one-touch states, the
MIDI learn prompt and the latest messages (host lost and back, refusals). :meth:`StatusScreen.stop`
leaves the alternate screen, so what was printed before (the start line) and after (the summary)
stays in the scrollback as usual.

:class:`StatusLog` (stdout is a pipe or a file): one plain line every ``interval_s`` seconds, for
logs. Both read a :class:`stemstream.bridge.control.status.SessionStatus` (a meter hold of their own)
and run on a thread of their own; neither touches the audio.
"""

from __future__ import annotations

import os
import re
import threading
from typing import Any, Callable, TextIO

from stemstream.bridge.control.status import level_db
from stemstream.realtime.errors import bad_value

#: Redraws a second.
SCREEN_HZ: float = 5.0
#: The meters' floor, dBFS.
FLOOR_DB: float = -60.0
#: Default seconds between two plain status lines.
LOG_INTERVAL_S: float = 10.0

_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[a-zA-Z]")
_ENTER = "\x1b[?1049h\x1b[?25l"  # alternate screen, cursor hidden
_LEAVE = "\x1b[?25h\x1b[?1049l"  # cursor shown, main screen back
_HOME, _EOL, _EOS = "\x1b[H", "\x1b[K", "\x1b[J"
_BOLD, _DIM, _RED, _YELLOW, _GREEN, _RESET = "\x1b[1m", "\x1b[2m", "\x1b[31m", "\x1b[33m", "\x1b[32m", "\x1b[0m"


def meter_bar(rms: float, peak: float, width: int) -> str:
    """``width`` cells: the RMS level filled, the peak marked with ``|`` (``FLOOR_DB``..0 dBFS)."""
    def cells(value: float) -> int:
        return round((level_db(value, FLOOR_DB) - FLOOR_DB) / -FLOOR_DB * width)

    filled, mark = cells(rms), min(width - 1, cells(peak))
    bar = ["#"] * filled + ["."] * (width - filled)
    if peak > 0.0 and mark >= filled:
        bar[mark] = "|"
    return "".join(bar)


def _gain_text(gain: float) -> str:
    return "  -inf dB" if gain <= 1e-6 else f"{level_db(gain, -999):+6.1f} dB"


def render(s: dict[str, Any], width: int = 80, header: str = "") -> list[str]:
    """The screen's lines for snapshot ``s`` (``SessionStatus.snapshot``), at most ``width`` wide."""
    width = max(40, width)
    name_w = max(6, max((len(x) for x in s["stems"]), default=6))
    bar_w = max(10, width - name_w - 34)
    lines = [f"{_BOLD}stemstream live{_RESET}  model {s['model']}  {header}".rstrip(),
             f"latency {s['latency_ms']:.1f} ms   CPU {100 * s['cpu_load']:.1f} % callback, "
             f"{s['process_cpu_percent']:.0f} % process   {s['seconds']:.0f} s",
             f"deadline misses {s['deadline_misses']}   xruns {s['xruns']}   control: "
             f"{s.get('control_accepted', 0)} applied, {s.get('control_refused', 0)} refused", ""]
    lines.append(f"{'stem':<{name_w}}  {'level':<{bar_w}}  {'dBFS':>5}  {'gain':>9}")
    for i, stem in enumerate(s["stems"]):
        flags = []
        if s["mute"][i]:
            flags.append(f"{_RED}MUTE{_RESET}")
        if s["solo"][i]:
            flags.append(f"{_YELLOW}SOLO{_RESET}")
        level = level_db(s["rms"][i], FLOOR_DB)
        bar = meter_bar(s["rms"][i], s["peak"][i], bar_w)
        lines.append(f"{stem:<{name_w}}  {_GREEN}{bar}{_RESET}  {level:5.0f}  {_gain_text(s['gain'][i])}  "
                     + " ".join(flags))
    scenes = [name for name in ("acapella", "instrumental", "bypass") if s.get(name)]
    lines += ["", "on: " + (", ".join(scenes) if scenes else "all stems as mixed")]
    if s.get("midi"):
        lines.append(s["midi"])
    if s.get("last_error"):
        lines.append(f"{_RED}last refused: {s['last_error']}{_RESET}")
    lines += [f"{_DIM}{m}{_RESET}" for m in s.get("messages", [])]
    lines += ["", f"{_DIM}Ctrl-C stops{_RESET}"]
    return [clip(line, width) for line in lines]


def clip(line: str, width: int) -> str:
    """``line`` cut to ``width`` visible characters (escape sequences kept, colours reset after a cut)."""
    out, seen, i = [], 0, 0
    while i < len(line):
        match = _ESCAPE.match(line, i)
        if match:
            out.append(match.group())
            i = match.end()
            continue
        if seen == width:
            return "".join(out) + _RESET
        out.append(line[i])
        seen += 1
        i += 1
    return "".join(out)


def status_line(s: dict[str, Any]) -> str:
    """One plain line for snapshot ``s``: figures, then each stem's level, gain and state."""
    stems = []
    for i, stem in enumerate(s["stems"]):
        state = " muted" if s["mute"][i] else " solo" if s["solo"][i] else ""
        stems.append(f"{stem} {level_db(s['rms'][i], FLOOR_DB):.0f} dBFS gain {_gain_text(s['gain'][i]).strip()}"
                     f"{state}")
    return (f"stemstream live: {s['seconds']:.0f} s, latency {s['latency_ms']:.1f} ms, CPU "
            f"{100 * s['cpu_load']:.1f} % callback, deadline misses {s['deadline_misses']}, xruns {s['xruns']}; "
            + "; ".join(stems))


class _Ticker:
    """A thread calling ``tick()`` every ``interval_s`` until :meth:`stop`."""

    def __init__(self, interval_s: float, name: str) -> None:
        if not isinstance(interval_s, (int, float)) or not 0.05 <= interval_s <= 3600.0:
            raise bad_value("status_interval", interval_s, "a number of seconds in [0.05, 3600]")
        self.interval_s = float(interval_s)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.tick()

    def tick(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def start(self) -> "_Ticker":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)


class StatusScreen(_Ticker):
    """The one-screen status on terminal ``stream`` (see the module docstring).

    Args:
        status: the session's ``SessionStatus``.
        stream: the terminal (``sys.stdout``).
        header: what the first line says after the model (host, rate, block).
        interval_s: seconds between redraws.
    """

    def __init__(self, status: Any, stream: TextIO, header: str = "", interval_s: float = 1.0 / SCREEN_HZ) -> None:
        super().__init__(interval_s, "stemstream-screen")
        self.status = status
        self.stream = stream
        self.header = header
        self.frames = 0

    def _size(self) -> tuple[int, int]:
        try:
            size = os.get_terminal_size(self.stream.fileno())
        except (OSError, ValueError, AttributeError):
            return 80, 24
        return size.columns or 80, size.lines or 24  # a pty nobody sized says 0 x 0

    def tick(self) -> None:
        columns, rows = self._size()
        lines = render(self.status.snapshot(), columns, self.header)[: max(1, rows - 1)]
        self.stream.write(_HOME + "".join(line + _EOL + "\n" for line in lines) + _EOS)
        self.stream.flush()
        self.frames += 1

    def start(self) -> "StatusScreen":
        self.stream.write(_ENTER)
        self.tick()
        super().start()
        return self

    def stop(self) -> None:
        super().stop()
        self.stream.write(_LEAVE)
        self.stream.flush()


class StatusLog(_Ticker):
    """A plain status line every ``interval_s`` seconds to ``write`` (a log: no escape sequences)."""

    def __init__(self, status: Any, write: Callable[[str], None], interval_s: float = LOG_INTERVAL_S) -> None:
        super().__init__(interval_s, "stemstream-status-log")
        self.status = status
        self.write = write
        self.lines = 0

    def tick(self) -> None:
        self.write(status_line(self.status.snapshot()))
        self.lines += 1
