"""A crate: the songs a list of files and folders holds, the name each is written under, and the
manifests that say which are done.

Layout (the same for one song or a thousand)::

    OUT/<song>/<stem>.wav|flac        --format wav / flac
    OUT/<song>.stem.mp4               --format stem.mp4
    OUT/.stemstream/<song>.json       the song's manifest (which input, what was written)

``<song>`` is the file name without its extension. Two songs of the same name from different
folders get different names: the first (in path order) keeps it, the next gets the folder's name
in parentheses (``intro (b)``), then a number. A name is never taken from another input: the
manifest says which input owns it, and an output already there without a manifest is someone
else's. So a crate run again maps every song to the same place.

**Done.** The manifest is written before a song starts (``complete: false``, so a killed run's
name stays with its song) and again, ``complete: true``, after every output has been renamed into
place. A song is done when its manifest is complete for the same input (path, size, modification
time) and the same settings (model and its weights' checksum, stems, format, bit depth, codec), and
every output it lists is there with the size it had. A run skips what is done (unless ``--force``),
so an interrupted crate resumes where it stopped; a half-separated song starts again.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from stemstream.bridge.files.sources import AUDIO_EXTENSIONS
from stemstream.realtime.files import give_default_mode

#: Folder under OUT holding the manifests.
MANIFEST_DIR = ".stemstream"
#: Longest song name, in UTF-8 bytes (file names may be 255; temporaries add ~30).
MAX_NAME_BYTES = 200
#: Stem-file endings: a folder scan leaves them out (they are outputs, ours or a DJ's).
STEM_FILE_ENDINGS = (".stem.mp4", ".stem.m4a")


@dataclass(frozen=True)
class Song:
    """One song of a crate: its file (absolute) and the name its outputs are written under."""

    source: Path
    name: str


def _under(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


def scan(inputs: Sequence[str | Path], out: Path) -> tuple[list[Path], list[Path]]:
    """The songs ``inputs`` name: files as given (any extension), folders searched recursively for
    :data:`AUDIO_EXTENSIONS` (hidden files, stem files and anything under ``out`` left out).
    Returns ``(songs, missing)``: absolute paths in order, each once; inputs that do not exist."""
    out = out.resolve()
    songs: list[Path] = []
    missing: list[Path] = []
    seen: set[Path] = set()

    def add(p: Path) -> None:
        if p not in seen:
            seen.add(p)
            songs.append(p)

    for item in inputs:
        path = Path(item).absolute()
        if path.is_dir():
            found = []
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not _under(Path(root, d).resolve(), out))
                for name in files:
                    lower = name.lower()
                    if name.startswith(".") or lower.endswith(STEM_FILE_ENDINGS):
                        continue
                    if Path(lower).suffix in AUDIO_EXTENSIONS:
                        found.append(Path(root, name))
            for p in sorted(found):
                add(p)
        elif path.exists():
            add(path)
        else:
            missing.append(path)
    return songs, missing


def base_name(source: Path) -> str:
    """The song name of a file: its name without the extension (and without ``.stem``), not
    hidden, at most :data:`MAX_NAME_BYTES` bytes."""
    name = source.name
    for ending in STEM_FILE_ENDINGS:
        if name.lower().endswith(ending):
            name = name[: -len(ending)]
            break
    else:
        name = Path(name).stem
    return _fit(name.strip().lstrip(".").strip() or "song")


def _fit(name: str) -> str:
    data = name.encode("utf-8")
    return name if len(data) <= MAX_NAME_BYTES else data[:MAX_NAME_BYTES].decode("utf-8", "ignore").rstrip()


def manifest_path(out: Path, name: str) -> Path:
    """Where song ``name``'s manifest lives."""
    return out / MANIFEST_DIR / f"{name}.json"


def read_manifest(out: Path, name: str) -> dict[str, Any] | None:
    """Song ``name``'s manifest (None: none, or unreadable)."""
    try:
        data = json.loads(manifest_path(out, name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_manifest(out: Path, name: str, data: dict[str, Any]) -> Path:
    """Write song ``name``'s manifest atomically (``OUT/.stemstream`` must exist)."""
    dest = manifest_path(out, name)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part.json", dir=dest.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        give_default_mode(tmp)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


def outputs_of(out: Path, name: str, stems: Iterable[str], fmt: str) -> list[Path]:
    """The files song ``name`` gets in ``fmt``: ``OUT/<name>/<stem>.<fmt>`` or ``OUT/<name>.stem.mp4``."""
    if fmt == "stem.mp4":
        return [out / f"{name}.stem.mp4"]
    return [out / name / f"{stem}.{fmt}" for stem in stems]


def input_identity(source: Path) -> dict[str, Any]:
    """What says a song's input is the same file, unchanged: path, size, modification time."""
    st = source.stat()
    return {"path": str(source), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _owner(out: Path, name: str) -> str | None:
    """The input path song ``name`` belongs to; ``""`` when outputs are there without a manifest
    (someone else's); None when the name is free."""
    manifest = read_manifest(out, name)
    if manifest is not None:
        return str(manifest.get("input", {}).get("path", ""))
    if (out / name).exists() or (out / f"{name}.stem.mp4").exists():
        return ""
    return None


def assign_names(sources: Sequence[Path], out: Path) -> list[Song]:
    """Each source with the name its outputs are written under (see the module docstring)."""
    taken: set[str] = set()
    songs = []
    for source in sources:
        base = base_name(source)
        candidates = [base, _fit(f"{base} ({source.parent.name})")] + [_fit(f"{base} ({n})") for n in range(2, 10_000)]
        for name in candidates:
            if name.casefold() in taken or name == MANIFEST_DIR:
                continue
            owner = _owner(out, name)
            if owner is None or owner == str(source):
                break
        taken.add(name.casefold())
        songs.append(Song(source, name))
    return songs


def is_done(out: Path, song: Song, settings: dict[str, Any]) -> bool:
    """Whether ``song`` was completed with ``settings`` from its input as it is now, every output
    still there with the size it had."""
    manifest = read_manifest(out, song.name)
    if manifest is None or not manifest.get("complete"):
        return False
    try:
        same_input = manifest.get("input") == input_identity(song.source)
    except OSError:
        return False
    if not same_input or manifest.get("settings") != settings:
        return False
    files = manifest.get("outputs", {})
    if not files:
        return False
    for rel, size in files.items():
        try:
            if (out / rel).stat().st_size != size:
                return False
        except OSError:
            return False
    return True
