"""One way for every benchmark to write its results: ``NAME.json``, ``NAME.md`` and, when the
benchmark draws one, ``NAME.png``, each written to a temporary name and renamed into place, so
an interrupted run never leaves a half-written file that looks complete."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _replace(path: Path, write: Callable[[Path], Any]) -> bool:
    """``write(tmp)`` then rename ``tmp`` to ``path`` (the temporary name keeps the suffix, so
    writers that look at it still see ``.png``). Returns whether ``path`` was written."""
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        if write(tmp) is False or not tmp.exists():
            return False
        tmp.replace(path)
        return True
    finally:
        tmp.unlink(missing_ok=True)


def write_report(out: str | Path, name: str, result: dict[str, Any], markdown: str,
                 plot: Callable[[Path], Any] | None = None) -> list[Path]:
    """Write ``out/name.json`` (``result``), ``out/name.md`` (``markdown``) and, if ``plot`` is
    given, ``out/name.png`` (``plot(path)`` draws it; a false return means nothing to draw).
    Returns the paths written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / f"{name}.json", out / f"{name}.md"]
    _replace(written[0], lambda p: p.write_text(json.dumps(result, indent=2) + "\n"))
    _replace(written[1], lambda p: p.write_text(markdown))
    if plot is not None:
        png = out / f"{name}.png"
        if _replace(png, plot):
            written.append(png)
    return written


def wrote(paths: list[Path]) -> str:
    """``"wrote a, b and c"`` for a command's last line."""
    names = [str(p) for p in paths]
    return "wrote " + (", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0])
