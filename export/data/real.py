"""Real recordings we may train on (``../shared/realdata-train``), split by whole singer / song.

* **MIR-1K** (``mir1k/SINGER/CLIP.{vocals,accompaniment}.ogg``): amateur singers over karaoke
  accompaniment, 16 kHz mono, resampled here to 44.1 kHz. Nothing above 8 kHz exists in these
  recordings: every clip carries ``band_limit_hz = 8000`` so that training leaves that band
  out of the loss instead of learning that voices have no highs. The accompaniment is one
  unlabelled mix of instruments (drums, bass and the rest together).
* **MusicDelta** (MedleyDB, ``musicdelta/SONG/*.flac`` + ``tracks.json``): every instrument as
  its own dry mono track at 44.1 kHz, labelled ``vocals``, ``drums``, ``bass`` or ``guitar``;
  guitars belong to the DJ set's ``other`` stem.

Splits (whole singers and whole songs, never clips of one song on both sides):

* validation: MIR-1K singers :data:`MIR1K_VALID_SINGERS`, MusicDelta songs :data:`MUSICDELTA_VALID`;
* excluded everywhere: :data:`MUSICDELTA_EXCLUDED` (``80sRock`` is the same song as the
  evaluation track ``../shared/realdata/musdb18-sample/Music Delta - 80s Rock``);
* training: the rest.

Licences (say so in any model card trained on these): MIR-1K free for research use;
MedleyDB / MDB Drums CC BY-NC-SA 4.0.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stemstream.export.data.loaders import read_audio
from stemstream.realtime.errors import AudioInputError, bad_value
from stemstream.realtime.stems import MODEL_SAMPLE_RATE

#: Default location, relative to the repository root.
DEFAULT_REAL_TRAIN = Path(__file__).resolve().parents[2].parent / "shared" / "realdata-train"

MIR1K_VALID_SINGERS: tuple[str, ...] = ("abjones", "bug", "heycat")
MUSICDELTA_VALID: tuple[str, ...] = ("Country1", "Shadows")
MUSICDELTA_EXCLUDED: tuple[str, ...] = ("80sRock",)
MIR1K_BAND_LIMIT_HZ = 8000.0

#: MusicDelta's labels -> the DJ stem set.
MUSICDELTA_STEM = {"vocals": "vocals", "drums": "drums", "bass": "bass", "guitar": "other"}

LICENCES = {
    "mir1k": "MIR-1K (Hsu and Jang 2010): free for research use",
    "musicdelta": "MedleyDB MusicDelta excerpts via MDB Drums: CC BY-NC-SA 4.0",
}


@dataclass
class VocalClip:
    """One MIR-1K clip at 44.1 kHz: ``vocals`` and ``accompaniment`` ``(samples,)`` float32."""

    name: str
    singer: str
    vocals: np.ndarray
    accompaniment: np.ndarray
    band_limit_hz: float = MIR1K_BAND_LIMIT_HZ


@dataclass
class MultitrackSong:
    """One MusicDelta song: dry mono tracks per DJ stem, ``tracks[stem]`` a list of ``(samples,)``."""

    name: str
    tracks: dict[str, list[np.ndarray]] = field(default_factory=dict)
    instruments: list[str] = field(default_factory=list)

    @property
    def num_samples(self) -> int:
        return min(x.shape[-1] for xs in self.tracks.values() for x in xs)


def _resample(x: np.ndarray, rate: int) -> np.ndarray:
    if rate == MODEL_SAMPLE_RATE:
        return np.ascontiguousarray(x, dtype=np.float32)
    import soxr

    return np.ascontiguousarray(soxr.resample(x, rate, MODEL_SAMPLE_RATE, quality="HQ"), dtype=np.float32)


def _mono(path: Path) -> tuple[np.ndarray, int]:
    audio, rate = read_audio(path)
    return audio.mean(axis=0), rate


def load_mir1k(root: str | Path, split: str) -> list[VocalClip]:
    """MIR-1K clips of ``split`` (``train`` or ``valid``), resampled to 44.1 kHz."""
    if split not in ("train", "valid"):
        raise bad_value("split", split, "'train' or 'valid'")
    base = Path(root) / "mir1k"
    if not base.is_dir():
        raise bad_value("real data", str(Path(root)), "a folder with mir1k/SINGER/*.vocals.ogg")
    clips = []
    for singer_dir in sorted(p for p in base.iterdir() if p.is_dir()):
        if (singer_dir.name in MIR1K_VALID_SINGERS) != (split == "valid"):
            continue
        for voc in sorted(singer_dir.glob("*.vocals.ogg")):
            acc = voc.with_name(voc.name.replace(".vocals.", ".accompaniment."))
            if not acc.exists():
                raise AudioInputError(f"{str(acc)!r}: missing (every MIR-1K clip has vocals and accompaniment)")
            v, rate = _mono(voc)
            a, rate_a = _mono(acc)
            if rate_a != rate:
                raise AudioInputError(f"{str(acc)!r}: sample rate {rate_a} Hz, expected the vocals' {rate} Hz")
            n = min(v.shape[-1], a.shape[-1])
            clips.append(VocalClip(voc.name.split(".")[0], singer_dir.name,
                                   _resample(v[:n], rate), _resample(a[:n], rate)))
    if not clips:
        raise bad_value("real data", str(base), f"MIR-1K clips for the {split} split")
    return clips


def load_musicdelta(root: str | Path, split: str) -> list[MultitrackSong]:
    """MusicDelta songs of ``split`` (``train`` or ``valid``), tracks mapped to the DJ stems."""
    if split not in ("train", "valid"):
        raise bad_value("split", split, "'train' or 'valid'")
    base = Path(root) / "musicdelta"
    if not base.is_dir():
        raise bad_value("real data", str(Path(root)), "a folder with musicdelta/SONG/tracks.json")
    songs = []
    for song_dir in sorted(p for p in base.iterdir() if (p / "tracks.json").is_file()):
        name = song_dir.name
        if name in MUSICDELTA_EXCLUDED or (name in MUSICDELTA_VALID) != (split == "valid"):
            continue
        try:
            meta = json.loads((song_dir / "tracks.json").read_text())
        except json.JSONDecodeError as exc:
            raise AudioInputError(f"{str(song_dir / 'tracks.json')!r}: not JSON ({exc.msg})") from None
        song = MultitrackSong(name)
        for t in meta["tracks"]:
            stem = MUSICDELTA_STEM.get(t["stem"])
            if stem is None:
                raise AudioInputError(f"{name}/{t['file']}: stem {t['stem']!r}, expected one of {sorted(MUSICDELTA_STEM)}")
            x, rate = _mono(song_dir / t["file"])
            song.tracks.setdefault(stem, []).append(_resample(x, rate))
            song.instruments.append(t.get("instrument", t["stem"]))
        n = song.num_samples
        song.tracks = {k: [x[:n] for x in xs] for k, xs in song.tracks.items()}
        songs.append(song)
    if not songs:
        raise bad_value("real data", str(base), f"MusicDelta songs for the {split} split")
    return songs
