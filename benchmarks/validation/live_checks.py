"""The live-path checks of ``stemstream validate`` (OSC fuzzing, failures, JACK), and the full list."""

from __future__ import annotations

from typing import Callable

from stemstream.benchmarks.validation.checks import ENGINE_CHECKS, Context, Result

#: Every check, in the order the table shows them.
ALL_CHECKS: dict[str, Callable[[Context], list[Result]]] = {**ENGINE_CHECKS}
CHECK_NAMES: tuple[str, ...] = tuple(ALL_CHECKS)
