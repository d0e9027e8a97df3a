"""File modes for files written through a private temporary (``tempfile.mkstemp``, safetensors):
both create them readable by the owner only, so a finished output would stay ``0600``."""

from __future__ import annotations

import os
from pathlib import Path


def process_umask() -> int:
    """This process's umask, read without changing it where Linux exposes it (``/proc/self/status``)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore (not thread-safe, but only a fallback)
    os.umask(mask)
    return mask


def give_default_mode(path: str | Path) -> None:
    """Set ``path``'s mode to what a plain ``open(path, "w")`` would have given it (0666 minus the umask)."""
    os.chmod(path, 0o666 & ~process_umask())


__all__ = ["give_default_mode", "process_umask"]
