"""Multitrack datasets from disk, all yielded as ``stemstream.export.data.tracks.Track``.

``load_tracks(path, stems=None)`` recognises these layouts (``path`` may be the dataset root,
a split folder or a single track folder):

* **stemstream synthetic** (``stemstream data synth``): ``DIR/dataset.json`` and
  ``DIR/<song>/{bass,drums,guitar,piano[,other]}.wav, mixture.wav, song.json``.
* **MUSDB18-HQ**: ``ROOT/{train,test}/<track>/{mixture,drums,bass,other,vocals}.wav``.
* **Slakh2100** (FLAC): ``ROOT/[split/]TrackNNNNN/metadata.yaml`` + ``stems/SNN.flac``; each
  rendered stem is mapped by its metadata to ``drums`` (``is_drum``), ``bass``, ``guitar``,
  ``piano`` (instrument class, or GM program 32-39 / 24-31 / 0-7) or ``other`` and summed
  per target; the mixture is the sum of the stems.
* **shared real evaluation tracks** (``/work/shared/realdata``; EVALUATION ONLY, never train or
  tune on them): ``musdb18-sample/<track>/{drums,bass,other,vocals}.flac`` (no mixture file:
  the mixture is the sum of the stems), ``koronium/{bass,drums,synth,violins}.mp3`` (one track,
  mixture = sum) and ``musdb18-vocals-excerpts/<track>/{vocals,accompaniment}_true.mp3``
  (mixture = sum; ``meta["baseline_estimates"]`` names Wave-U-Net's published outputs).

``stems``: if given, ``Track.stems`` keeps only those names (a requested stem the dataset
lacks is left out; ``Track.stack`` then gives silence); the mixture is always the full mix.
Unreadable, corrupt or empty files raise ``AudioInputError`` with a one-line message.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from stemstream.export.data.tracks import Track
from stemstream.realtime.errors import AudioInputError

SYNTH_STEMS = ("bass", "drums", "guitar", "piano", "other")
MUSDB_STEMS = ("drums", "bass", "other", "vocals")
KORONIUM_STEMS = ("bass", "drums", "synth", "violins")
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg")


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Read an audio file as ``((channels, samples) float32, sample_rate)``."""
    import soundfile as sf

    p = Path(path)
    try:
        data, rate = sf.read(str(p), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises several types for bad files
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AudioInputError(f"{str(p)!r}: cannot read audio ({reason})") from None
    if data.size == 0:
        raise AudioInputError(f"{str(p)!r}: audio file is empty")
    if not np.all(np.isfinite(data)):
        raise AudioInputError(f"{str(p)!r}: audio contains NaN or infinite samples")
    return np.ascontiguousarray(data.T), int(rate)


def _assemble(name: str, files: dict[str, list[Path]], mixture_file: Path | None,
              stems: Iterable[str] | None, meta: dict) -> Track:
    """Read and sum files per stem; align lengths/channels; mixture = file or sum."""
    audio: dict[str, np.ndarray] = {}
    rate: int | None = None
    for stem, paths in files.items():
        for path in paths:
            x, r = read_audio(path)
            if rate is not None and r != rate:
                raise AudioInputError(f"{str(path)!r}: sample rate {r} Hz differs from the "
                                      f"track's {rate} Hz")
            rate = r
            audio[stem] = x if stem not in audio else _add(audio[stem], x)
    if not audio or rate is None:
        raise AudioInputError(f"track {name!r}: no stem files found")
    mixture = None
    if mixture_file is not None:
        mixture, r = read_audio(mixture_file)
        if r != rate:
            raise AudioInputError(f"{str(mixture_file)!r}: sample rate {r} Hz differs from the "
                                  f"stems' {rate} Hz")
    channels = max(x.shape[0] for x in audio.values())
    length = min(x.shape[1] for x in audio.values())
    if mixture is not None:
        channels = max(channels, mixture.shape[0])
        length = min(length, mixture.shape[1])
    audio = {k: _fit(v, channels, length) for k, v in audio.items()}
    if mixture is None:
        mixture = np.zeros((channels, length), dtype=np.float32)
        for x in audio.values():
            mixture += x
    else:
        mixture = _fit(mixture, channels, length)
    if stems is not None:
        wanted = tuple(stems)
        audio = {k: audio[k] for k in wanted if k in audio}
    return Track(name=name, sample_rate=rate, stems=audio, mixture=mixture, meta=meta)


def _add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    channels = max(a.shape[0], b.shape[0])
    length = max(a.shape[1], b.shape[1])
    out = np.zeros((channels, length), dtype=np.float32)
    out[:, : a.shape[1]] += a if a.shape[0] == channels else np.repeat(a, channels, axis=0)
    out[:, : b.shape[1]] += b if b.shape[0] == channels else np.repeat(b, channels, axis=0)
    return out


def _fit(x: np.ndarray, channels: int, length: int) -> np.ndarray:
    if x.shape[0] != channels:
        if x.shape[0] != 1:
            raise AudioInputError(f"audio with {x.shape[0]} channels cannot be matched to "
                                  f"{channels} channels")
        x = np.repeat(x, channels, axis=0)
    return np.ascontiguousarray(x[:, :length])


# ---------------------------------------------------------------- layout detection


def _is_synth_song(d: Path) -> bool:
    return (d / "song.json").is_file() and (d / "mixture.wav").is_file()


def _is_musdb_track(d: Path) -> bool:
    return (d / "mixture.wav").is_file() and all((d / f"{s}.wav").is_file() for s in MUSDB_STEMS)


def _stem_file(d: Path, stem: str) -> Path | None:
    """``d/<stem>.<ext>`` for the first audio suffix that exists."""
    for suffix in AUDIO_SUFFIXES:
        if (d / f"{stem}{suffix}").is_file():
            return d / f"{stem}{suffix}"
    return None


def _is_musdb_like(d: Path) -> bool:
    """MUSDB's stems in any audio format (WAV, FLAC, MP3, OGG), with or without a mixture file."""
    return all(_stem_file(d, s) is not None for s in MUSDB_STEMS)


def _is_multitrack_json(d: Path) -> bool:
    return (d / "tracks.json").is_file()


def _is_clip_folder(d: Path) -> bool:
    return any(d.glob("*.vocals.*")) and any(d.glob("*.accompaniment.*"))


def _is_slakh_track(d: Path) -> bool:
    return (d / "metadata.yaml").is_file() and (d / "stems").is_dir()


def _is_flac_stem_track(d: Path) -> bool:
    return all((d / f"{s}.flac").is_file() for s in MUSDB_STEMS)


def _is_koronium(d: Path) -> bool:
    return all((d / f"{s}.mp3").is_file() for s in KORONIUM_STEMS)


def _is_vocals_excerpt(d: Path) -> bool:
    return (d / "vocals_true.mp3").is_file() and (d / "accompaniment_true.mp3").is_file()


_DETECTORS = (_is_synth_song, _is_musdb_track, _is_slakh_track, _is_flac_stem_track,
              _is_koronium, _is_vocals_excerpt, _is_musdb_like, _is_multitrack_json, _is_clip_folder)


def _track_dirs(root: Path, depth: int = 3) -> Iterator[Path]:
    """Track folders under ``root`` (itself included), sorted, at most ``depth`` levels."""
    if any(det(root) for det in _DETECTORS):
        yield root
        return
    if depth == 0:
        return
    for child in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        yield from _track_dirs(child, depth - 1)


def load_tracks(path: str | Path, stems: Iterable[str] | None = None) -> Iterator[Track]:
    """Yield every track found under ``path`` (layouts in the module docstring), in sorted
    folder order, each read when it is reached.

    Raises:
        AudioInputError: ``path`` is missing, holds no recognised track, or a file is
            unreadable, corrupt or empty.
    """
    root = Path(path)
    if not root.exists():
        raise AudioInputError(f"dataset path {str(path)!r} does not exist")
    if not root.is_dir():
        raise AudioInputError(f"dataset path {str(path)!r}: expected a folder")
    stems = tuple(stems) if stems is not None else None
    found = 0
    for d in _track_dirs(root):
        if _is_clip_folder(d) and not any(det(d) for det in _DETECTORS if det is not _is_clip_folder):
            for track in _load_clips(d, stems):  # a folder of clips: one track per clip
                found += 1
                yield track
            continue
        found += 1
        yield load_track(d, stems)
    if found == 0:
        raise AudioInputError(
            f"dataset path {str(path)!r}: no tracks found (expected a stemstream synthetic folder, "
            "MUSDB18-HQ, Slakh2100 or the shared realdata layout)")


def load_track(folder: str | Path, stems: Iterable[str] | None = None) -> Track:
    """Load one track folder of any supported layout."""
    d = Path(folder)
    stems = tuple(stems) if stems is not None else None
    if _is_synth_song(d):
        return _load_synth(d, stems)
    if _is_musdb_track(d):
        files = {s: [d / f"{s}.wav"] for s in MUSDB_STEMS}
        return _assemble(d.name, files, d / "mixture.wav", stems,
                         {"dataset": "musdb18hq", "split": d.parent.name, "path": str(d)})
    if _is_slakh_track(d):
        return _load_slakh(d, stems)
    if _is_flac_stem_track(d):
        files = {s: [d / f"{s}.flac"] for s in MUSDB_STEMS}
        return _assemble(d.name, files, None, stems,
                         {"dataset": "musdb18-sample", "evaluation_only": True, "path": str(d)})
    if _is_koronium(d):
        files = {s: [d / f"{s}.mp3"] for s in KORONIUM_STEMS}
        return _assemble(d.name, files, None, stems,
                         {"dataset": "koronium", "evaluation_only": True, "path": str(d)})
    if _is_vocals_excerpt(d):
        files = {s: [d / f"{s}_true.mp3"] for s in ("vocals", "accompaniment")}
        estimates = {s: str(d / f"{s}_estimate.mp3") for s in ("vocals", "accompaniment")
                     if (d / f"{s}_estimate.mp3").is_file()}
        return _assemble(d.name, files, None, stems,
                         {"dataset": "musdb18-vocals-excerpts", "evaluation_only": True,
                          "path": str(d), "baseline_estimates": estimates})
    if _is_musdb_like(d):
        files = {s: [p] for s in MUSDB_STEMS if (p := _stem_file(d, s)) is not None}
        return _assemble(d.name, files, _stem_file(d, "mixture"), stems, {"dataset": "musdb-layout", "path": str(d)})
    if _is_multitrack_json(d):
        return _load_multitrack_json(d, stems)
    raise AudioInputError(f"track folder {str(d)!r}: layout not recognised")


#: Labels of a ``tracks.json`` multitrack (MedleyDB excerpts) -> the DJ stem set.
MULTITRACK_STEMS = {"vocals": "vocals", "drums": "drums", "bass": "bass", "guitar": "other", "other": "other"}


def _load_multitrack_json(d: Path, stems: tuple[str, ...] | None) -> Track:
    """``d/tracks.json`` listing ``{"file", "stem"}`` per recorded track: tracks summed per DJ stem."""
    try:
        meta = json.loads((d / "tracks.json").read_text())
        entries = [(str(t["file"]), str(t["stem"])) for t in meta["tracks"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise AudioInputError(f"{str(d / 'tracks.json')!r}: expected {{'tracks': [{{'file', 'stem'}}, ...]}} "
                              f"({type(exc).__name__}: {exc})") from None
    files: dict[str, list[Path]] = {}
    for name, label in entries:
        if label not in MULTITRACK_STEMS:
            raise AudioInputError(f"{str(d / name)!r}: stem {label!r}, expected one of {sorted(MULTITRACK_STEMS)}")
        files.setdefault(MULTITRACK_STEMS[label], []).append(d / name)
    return _assemble(d.name, files, None, stems, {"dataset": "multitrack", "path": str(d)})


def _load_clips(d: Path, stems: tuple[str, ...] | None) -> Iterator[Track]:
    """MIR-1K's layout: ``d/CLIP.vocals.<ext>`` + ``d/CLIP.accompaniment.<ext>``, one track per clip."""
    for voc in sorted(d.glob("*.vocals.*")):
        if voc.suffix not in AUDIO_SUFFIXES:
            continue
        clip = voc.name[: -len(".vocals" + voc.suffix)]
        acc = voc.with_name(f"{clip}.accompaniment{voc.suffix}")
        if not acc.is_file():
            raise AudioInputError(f"{str(acc)!r}: missing (each clip has vocals and accompaniment)")
        yield _assemble(clip, {"vocals": [voc], "accompaniment": [acc]}, None, stems,
                        {"dataset": "clips", "path": str(d)})


def _load_synth(d: Path, stems: tuple[str, ...] | None) -> Track:
    try:
        info = json.loads((d / "song.json").read_text())
    except (OSError, ValueError) as exc:
        raise AudioInputError(f"{str(d / 'song.json')!r}: cannot read ({exc})") from None
    names = [s for s in info.get("stems", SYNTH_STEMS) if (d / f"{s}.wav").is_file()]
    files = {s: [d / f"{s}.wav"] for s in names}
    meta = {"dataset": "stemstream-synth", "path": str(d), **{k: info[k] for k in
            ("seed", "tempo_bpm", "meter", "key", "style") if k in info}}
    return _assemble(d.name, files, d / "mixture.wav", stems, meta)


# ---------------------------------------------------------------- Slakh2100


def parse_simple_yaml(text: str) -> dict:
    """Parse the YAML subset Slakh2100's ``metadata.yaml`` uses: nested mappings by
    indentation with scalar values (str, int, float, bool, null). Lists are not needed."""
    root: dict = {}
    stack: list[tuple[int, dict]] = [(-1, root)]
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split(" #")[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line.strip() or line.strip() in ("---", "..."):
            continue
        indent = len(line) - len(line.lstrip(" "))
        key, sep, value = line.strip().partition(":")
        if not sep:
            raise ValueError(f"line {lineno}: expected 'key: value'")
        while stack and indent <= stack[-1][0]:
            stack.pop()
        if not stack:
            raise ValueError(f"line {lineno}: bad indentation")
        parent = stack[-1][1]
        key = key.strip().strip("'\"")
        value = value.strip()
        if value == "":
            child: dict = {}
            parent[key] = child
            stack.append((indent, child))
        else:
            parent[key] = _yaml_scalar(value)
    return root


def _yaml_scalar(value: str):
    if value[:1] in "'\"" and value[-1:] == value[:1] and len(value) >= 2:
        return value[1:-1]
    low = value.lower()
    if low in ("true", "yes"):
        return True
    if low in ("false", "no"):
        return False
    if low in ("null", "~", "none"):
        return None
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


def slakh_target(stem_meta: dict) -> str:
    """Map one Slakh2100 stem's metadata to ``bass``/``drums``/``guitar``/``piano``/``other``:
    ``is_drum`` first, then ``inst_class``, else the GM ``program_num`` family."""
    if stem_meta.get("is_drum"):
        return "drums"
    cls = str(stem_meta.get("inst_class") or "").strip().lower()
    if cls:  # Slakh's class wins: Piano, Guitar, Bass, Drums; Organ, Strings, Brass... -> other
        return cls if cls in ("bass", "guitar", "piano", "drums") else "other"
    program = stem_meta.get("program_num")
    if isinstance(program, int):
        if 32 <= program <= 39:
            return "bass"
        if 24 <= program <= 31:
            return "guitar"
        if 0 <= program <= 7:
            return "piano"
    return "other"


def _load_slakh(d: Path, stems: tuple[str, ...] | None) -> Track:
    meta_path = d / "metadata.yaml"
    try:
        meta = parse_simple_yaml(meta_path.read_text())
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise AudioInputError(f"{str(meta_path)!r}: cannot parse metadata ({exc})") from None
    audio_dir = d / str(meta.get("audio_dir") or "stems")
    files: dict[str, list[Path]] = {}
    mapping: dict[str, str] = {}
    for sid, smeta in sorted((meta.get("stems") or {}).items()):
        if not isinstance(smeta, dict) or smeta.get("audio_rendered") is False:
            continue
        path = next((audio_dir / f"{sid}{ext}" for ext in AUDIO_SUFFIXES
                     if (audio_dir / f"{sid}{ext}").is_file()), None)
        if path is None:
            continue
        target = slakh_target(smeta)
        mapping[sid] = target
        files.setdefault(target, []).append(path)
    if not files:
        raise AudioInputError(f"Slakh track {str(d)!r}: no rendered stem files in {str(audio_dir)!r}")
    return _assemble(d.name, files, None, stems,
                     {"dataset": "slakh2100", "path": str(d), "stem_mapping": mapping,
                      "split": d.parent.name})
