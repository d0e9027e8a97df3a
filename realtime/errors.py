"""The project's one base exception and helpers that build messages naming what was expected."""

from __future__ import annotations

from typing import Any


class StemstreamError(Exception):
    """Base class of every error stemstream raises on purpose.

    The command line turns these into one line on stderr and exit code 2.
    """


class ConfigError(StemstreamError, ValueError):
    """A parameter or configuration value is out of its allowed range or inconsistent."""


class AudioInputError(StemstreamError):
    """An audio file or buffer cannot be used (unreadable, empty, wrong shape or rate)."""


class MissingDependencyError(StemstreamError, ImportError):
    """An optional package is not installed; the message names the install extra."""


def bad_value(name: str, value: Any, expected: str) -> ConfigError:
    """Build a ``ConfigError`` saying ``name=repr(value)`` and what was expected."""
    return ConfigError(f"{name}={value!r}: expected {expected}")


def require(module: str, extra: str) -> Any:
    """Import an optional dependency lazily, or raise naming the install extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            f"optional package {module!r} is not installed ({exc}); "
            f"install it with: pip install 'stemstream[{extra}]'"
        ) from None
