"""A song's decoded stems kept beside it as one ``.npy`` file, memory-mapped by every later read:
parallel training runs then share one copy in the page cache instead of decoding one each."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

CACHE_NAME = ".stems-cache.npy"


def read_cache(cache: Path, newest_source: float, fits: Callable[[np.ndarray], bool]) -> np.ndarray | None:
    """The memory-mapped cache if it is at least as new as ``newest_source`` (an mtime) and
    ``fits(array)``; None when it is missing, stale, unreadable or of another shape."""
    if not cache.exists() or cache.stat().st_mtime < newest_source:
        return None
    try:
        arr = np.load(cache, mmap_mode="r")
    except (OSError, ValueError):
        return None
    return arr if fits(arr) else None


def write_cache(cache: Path, arr: np.ndarray) -> np.ndarray:
    """Write ``arr`` to ``cache`` whole (a temporary file renamed over it) and return it
    memory-mapped; on read-only data, ``arr`` itself."""
    tmp = cache.with_name(f"{cache.name}.{os.getpid()}.part")
    try:
        with open(tmp, "wb") as fh:
            np.save(fh, arr)
        tmp.replace(cache)
    except OSError:  # read-only data: keep it in memory
        tmp.unlink(missing_ok=True)
        return arr
    return np.load(cache, mmap_mode="r")
