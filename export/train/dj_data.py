"""Training batches for the DJ stem set (vocals, drums, bass, other) from real and synthetic sources.

Sources (``DjSources``): our synthetic songs (``data/synth``: bass, drums, guitar + piano as
``other``, no vocals), the MusicDelta multitracks (dry real tracks of every stem), MIR-1K
(real voices and their karaoke accompaniment, 16 kHz: band-limited to 8 kHz) and, when
``stemstream data lmms`` has rendered them, LMMS' electronic demo songs (``data/lmms``: drums,
bass and other as their authors mixed them; :data:`LMMS_RECIPES` are drawn only then).

Each example follows a drawn **recipe** (:data:`RECIPES`): which source gives each stem, e.g.
a MIR-1K voice over a synthetic backing, a MusicDelta voice over a MusicDelta backing of another
song, or a synthetic song with no voice. Every track goes through a drawn channel strip and the
stems through a drawn master (``stemstream.export.data.mixing``), so the mixture sounds like a released
record (level, crest factor, width) and stays the exact sum of the stems.

Two kinds of partial supervision, carried by the batch instead of guessed:

* **Grouped targets**: a MIR-1K pair has only vocals and the accompaniment. Its targets are
  ``vocals`` and the accompaniment as the sum of the ``drums``, ``bass`` and ``other`` outputs
  (``TrainBatch.groups``), the other two target rows switched off (``TrainBatch.valid``).
* **Band limit**: an example holding a 16 kHz source has ``band_hz = 8000``; the loss and the
  validation score compare estimate and target below that frequency only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from stemstream.export.data.beats import SONIC_PI_SAMPLES, BeatKit, groove, kit_exists, load_kit
from stemstream.export.data.electronic import (
    DEFAULT_LMMS_ROOT, RenderedSong, drums_in_tempo, lmms_set_exists, load_lmms, tempo_partners,
)
from stemstream.export.data.mixing import MasterSettings, draw_pan, master, pan_mono, stem_chain
from stemstream.export.data.real import MultitrackSong, VocalClip, load_mir1k, load_musicdelta
from stemstream.export.data.voice_variants import VoiceVariant, vary_voice
from stemstream.export.train.data import SongSet
from stemstream.export.train.options import check_electronic_share
from stemstream.realtime.errors import bad_value
from stemstream.realtime.stems import DJ_STEMS, MODEL_SAMPLE_RATE, STEMS

VOCALS, DRUMS, BASS, OTHER = range(4)

#: Recipe name -> probability. ``a_over_b``: vocals from ``a``, backing from ``b``.
RECIPES: dict[str, float] = {
    "synth": 0.12,              # a synthetic song: no voice
    "musicdelta": 0.14,         # a MusicDelta song as recorded (voice if it has one)
    "mir1k_over_synth": 0.22,   # a MIR-1K voice over a synthetic backing
    "mir1k_over_musicdelta": 0.12,
    "musicdelta_over_synth": 0.12,  # a full-band real voice over a synthetic backing
    "musicdelta_remix": 0.10,   # each stem from another MusicDelta song
    "mir1k_pair": 0.12,         # a MIR-1K clip as recorded: grouped accompaniment target
    "mir1k_over_mir1k": 0.06,   # a voice over another singer's accompaniment: grouped
}

#: Recipes of the electronic LMMS songs, drawn beside :data:`RECIPES` only when the sources have
#: LMMS songs (without them, the draws are exactly those of :data:`RECIPES` alone).
LMMS_RECIPES: dict[str, float] = {
    "lmms": 0.08,                   # an LMMS song as its author mixed it: no voice
    "mir1k_over_lmms": 0.06,        # a MIR-1K voice over an LMMS backing: band-limited
    "musicdelta_over_lmms": 0.04,   # a full-band real voice over an LMMS backing
    "lmms_remix": 0.04,             # an LMMS song's bass and other with another's drums, in tempo, on the bar
}

#: Recipes that also need Sonic Pi's samples (``sonic-pi-samples``), drawn beside the LMMS ones.
BEATS_RECIPES: dict[str, float] = {
    "beats_lmms": 0.04,  # an LMMS song's other over drums and bass played from Sonic Pi's one-shots, in its tempo
}

#: Recipes whose voice may be varied (``voice_variants``): a voice over a backing it was not sung
#: with. A song as recorded (``musicdelta``, ``mir1k_pair``) keeps its singer in tune with it.
VARIED_VOICE_RECIPES: frozenset[str] = frozenset({
    "mir1k_over_synth", "mir1k_over_musicdelta", "musicdelta_over_synth", "musicdelta_remix", "mir1k_over_mir1k",
    "mir1k_over_lmms", "musicdelta_over_lmms",
})

#: Validation examples of the held-out LMMS songs (pass as ``validation_batch(..., recipes=)``).
LMMS_VALIDATION: dict[str, int] = {"lmms": 6, "mir1k_over_lmms": 2}

PREROLL_S = 0.5  # effects settle on this much audio before the excerpt starts


@dataclass
class TrainBatch:
    """One batch: ``mix`` ``(B, C, T)``; ``targets`` ``(B, K, C, T)`` with ``K`` the model's stems;
    ``groups`` ``(B, K, K)``: target row ``k`` is ``sum_s groups[b, k, s] * estimate[s]``;
    ``valid`` ``(B, K)`` bool: rows that count; ``band_hz`` ``(B,)``: compare below this
    frequency only (0: full band)."""

    mix: torch.Tensor
    targets: torch.Tensor
    groups: torch.Tensor
    valid: torch.Tensor
    band_hz: torch.Tensor

    def to(self, device: torch.device | str) -> "TrainBatch":
        return TrainBatch(*(t.to(device) for t in (self.mix, self.targets, self.groups, self.valid, self.band_hz)))


@dataclass
class DjSources:
    """Everything the recipes draw from, for one split."""

    synth: SongSet
    musicdelta: list[MultitrackSong]
    mir1k: list[VocalClip]
    lmms: list[RenderedSong] = field(default_factory=list)
    beats: BeatKit | None = None

    @classmethod
    def load(cls, real_root: str | Path, synth: SongSet, split: str,
             lmms_root: str | Path | None = "auto", beats_root: str | Path | None = "auto") -> "DjSources":
        """The sources of ``split``. ``lmms_root``: ``"auto"`` (default) reads ``data/lmms`` of the
        repository if ``stemstream data lmms`` has written it there and has none otherwise; ``None``
        reads none; a folder must hold such a set. ``beats_root``: Sonic Pi's samples, read only
        when there are LMMS songs (their one recipe needs both); ``"auto"`` reads them from
        ``/usr/share/sonic-pi/samples`` if installed, ``None`` not at all."""
        if synth.audio and synth.audio[0].shape[0] != len(STEMS):
            raise bad_value("synthetic stems", synth.audio[0].shape[0], f"{len(STEMS)} ({', '.join(STEMS)})")
        lmms: list[RenderedSong] = []
        if isinstance(lmms_root, str) and lmms_root == "auto":
            if lmms_set_exists(DEFAULT_LMMS_ROOT):
                lmms = load_lmms(DEFAULT_LMMS_ROOT, split)
        elif lmms_root is not None:
            lmms = load_lmms(lmms_root, split)
        beats = None
        if lmms and isinstance(beats_root, str) and beats_root == "auto":
            beats = load_kit(SONIC_PI_SAMPLES) if kit_exists(SONIC_PI_SAMPLES) else None
        elif lmms and beats_root is not None:
            beats = load_kit(beats_root)
        return cls(synth, load_musicdelta(real_root, split), load_mir1k(real_root, split), lmms, beats)

    def describe(self) -> dict:
        info = {
            "synth_songs": len(self.synth.names),
            "synth_minutes": round(self.synth.seconds / 60, 1),
            "musicdelta_songs": [s.name for s in self.musicdelta],
            "mir1k_clips": len(self.mir1k),
            "mir1k_singers": sorted({c.singer for c in self.mir1k}),
            "mir1k_minutes": round(sum(c.vocals.shape[-1] for c in self.mir1k) / MODEL_SAMPLE_RATE / 60, 1),
        }
        if self.lmms:  # absent keys when there are none: run records without LMMS read as before
            info["lmms_songs"] = [s.name for s in self.lmms]
            info["lmms_minutes"] = round(sum(s.num_samples for s in self.lmms) / MODEL_SAMPLE_RATE / 60, 1)
            info["lmms_licences"] = {lic: sum(s.licence == lic for s in self.lmms)
                                     for lic in sorted({s.licence for s in self.lmms})}
        if self.beats is not None:
            info["sonic_pi_samples"] = sum(len(v) for v in self.beats.drums.values()) + len(self.beats.basses)
        return info


def _segment(x: np.ndarray, start: int, n: int) -> np.ndarray:
    """``x[..., start:start + n]``, zero-padded past the end."""
    out = np.zeros((*x.shape[:-1], n), dtype=np.float32)
    part = x[..., start : start + n]
    out[..., : part.shape[-1]] = part
    return out


def _start(length: int, n: int, rng: np.random.Generator) -> int:
    return int(rng.integers(0, max(length - n, 0) + 1))


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


class DjExampleMaker:
    """Draws single examples ``(stems (4, 2, n), groups (4, 4), valid (4,), band_hz)``.

    ``voice_variants``: the voice of a :data:`VARIED_VOICE_RECIPES` example goes through a drawn
    :class:`VoiceVariant` (pitch shift, sung harmony); off, the draws are exactly those without it.
    ``electronic_share``: with the default recipes, the weights of :data:`LMMS_RECIPES` and
    :data:`BEATS_RECIPES` are multiplied by this (1: as listed, about a fifth of the draws).
    """

    def __init__(self, sources: DjSources, recipes: dict[str, float] | None = None,
                 voice_variants: bool = False, electronic_share: float = 1.0) -> None:
        self.src = sources
        self.voice_variants = voice_variants
        check_electronic_share(electronic_share)
        if recipes is None:
            recipes = dict(RECIPES)
            if sources.lmms:
                electronic = {**LMMS_RECIPES, **(BEATS_RECIPES if sources.beats is not None else {})}
                recipes.update({k: w * electronic_share for k, w in electronic.items()})
        recipes = dict(recipes)
        known = {**RECIPES, **LMMS_RECIPES, **BEATS_RECIPES}
        unknown = set(recipes) - set(known)
        if unknown:
            raise bad_value("recipes", sorted(unknown), f"names from {sorted(known)}")
        missing = [r for r in recipes if not self._has_sources(r)]
        if missing:
            raise bad_value("recipes", sorted(missing), "recipes these sources can make (LMMS songs: "
                            "stemstream data lmms; Sonic Pi's samples: apt-get install sonic-pi-samples)")
        self.names = list(recipes)
        p = np.array([recipes[k] for k in self.names], dtype=np.float64)
        self.p = p / p.sum()
        self.sr = MODEL_SAMPLE_RATE

    def _has_sources(self, recipe: str) -> bool:
        if recipe in BEATS_RECIPES:
            return bool(self.src.lmms) and self.src.beats is not None
        return bool(self.src.lmms) or recipe not in LMMS_RECIPES

    # -- sources -> stem tracks (lists of (2, n) or (n,) arrays per stem) -------------------
    def _synth_backing(self, n: int, rng: np.random.Generator) -> dict[int, list[np.ndarray]]:
        songs = self.src.synth.audio
        i = int(rng.integers(len(songs)))
        start = _start(songs[i].shape[-1], n, rng)
        s = _segment(songs[i], start, n)  # (4, 2, n) bass, drums, guitar, piano
        return {DRUMS: [s[1]], BASS: [s[0]], OTHER: [s[2] + s[3]]}

    def _musicdelta(self, n: int, rng: np.random.Generator, song: MultitrackSong | None = None,
                    start: int | None = None) -> tuple[dict[int, list[np.ndarray]], MultitrackSong, int]:
        if song is None:
            song = self.src.musicdelta[int(rng.integers(len(self.src.musicdelta)))]
        if start is None:
            start = _start(song.num_samples, n, rng)
        out = {DJ_STEMS.index(stem): [_segment(x, start, n) for x in xs] for stem, xs in song.tracks.items()}
        return out, song, start

    def _mir1k(self, n: int, rng: np.random.Generator) -> tuple[VocalClip, int]:
        clip = self.src.mir1k[int(rng.integers(len(self.src.mir1k)))]
        return clip, _start(clip.vocals.shape[-1], n, rng)

    def _lmms_backing(self, n: int, rng: np.random.Generator, on_bar: bool = False
                      ) -> tuple[dict[int, list[np.ndarray]], RenderedSong]:
        """An LMMS song's drums, bass and other ``(2, n)`` each, from where the song plays."""
        song = self.src.lmms[int(rng.integers(len(self.src.lmms)))]
        s = _segment(song.stems, song.draw_start(n, rng, on_bar=on_bar), n)  # (3, 2, n) drums, bass, other
        return {DRUMS: [s[0]], BASS: [s[1]], OTHER: [s[2]]}, song

    def _md_with(self, stem: int, n: int, rng: np.random.Generator) -> list[np.ndarray]:
        """The ``stem`` tracks of a MusicDelta song that has that stem."""
        having = [s for s in self.src.musicdelta if DJ_STEMS[stem] in s.tracks]
        song = having[int(rng.integers(len(having)))]
        return self._musicdelta(n, rng, song)[0][stem]

    # -- one example ------------------------------------------------------------------
    def make(self, n: int, rng: np.random.Generator, recipe: str | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """One mastered example of ``n`` samples; ``recipe`` None draws one."""
        if recipe is None:
            recipe = self.names[int(rng.choice(len(self.names), p=self.p))]
        if not self._has_sources(recipe):
            raise bad_value("recipe", recipe, "a recipe these sources can make (LMMS songs: stemstream data lmms; "
                            "Sonic Pi's samples: apt-get install sonic-pi-samples)")
        pre = int(PREROLL_S * self.sr)
        m = n + pre
        tracks: dict[int, list[np.ndarray]] = {}
        band = 0.0
        grouped = False
        if recipe == "synth":
            tracks = self._synth_backing(m, rng)
        elif recipe == "musicdelta":
            tracks = self._musicdelta(m, rng)[0]
        elif recipe in ("mir1k_over_synth", "mir1k_over_musicdelta"):
            clip, start = self._mir1k(m, rng)
            if recipe == "mir1k_over_synth":
                tracks = self._synth_backing(m, rng)
            else:
                tracks = {k: v for k, v in self._musicdelta(m, rng)[0].items() if k != VOCALS}
            tracks[VOCALS] = [_segment(clip.vocals, start, m)]
            band = clip.band_limit_hz
        elif recipe == "musicdelta_over_synth":
            tracks = self._synth_backing(m, rng)
            tracks[VOCALS] = self._md_with(VOCALS, m, rng)
        elif recipe == "musicdelta_remix":
            for k in (VOCALS, DRUMS, BASS, OTHER):
                if k == VOCALS and rng.random() < 0.3:
                    continue
                tracks[k] = self._md_with(k, m, rng)
        elif recipe in ("mir1k_pair", "mir1k_over_mir1k"):
            clip, start = self._mir1k(m, rng)
            if recipe == "mir1k_over_mir1k":
                other, ostart = self._mir1k(m, rng)
                acc = _segment(other.accompaniment, ostart, m)
            else:
                acc = _segment(clip.accompaniment, start, m)
            tracks = {VOCALS: [_segment(clip.vocals, start, m)], OTHER: [acc]}
            band, grouped = clip.band_limit_hz, True
        elif recipe == "lmms":
            tracks = self._lmms_backing(m, rng)[0]
        elif recipe == "mir1k_over_lmms":
            clip, start = self._mir1k(m, rng)
            tracks = self._lmms_backing(m, rng)[0]
            tracks[VOCALS] = [_segment(clip.vocals, start, m)]
            band = clip.band_limit_hz
        elif recipe == "musicdelta_over_lmms":
            tracks = self._lmms_backing(m, rng)[0]
            tracks[VOCALS] = self._md_with(VOCALS, m, rng)
        elif recipe == "lmms_remix":
            tracks, song = self._lmms_backing(m, rng, on_bar=True)
            partners = tempo_partners(song, self.src.lmms)
            if partners:  # else the song's own drums: one song has no partner in tempo
                tracks[DRUMS] = [drums_in_tempo(partners[int(rng.integers(len(partners)))], song.bpm, m, rng)]
        elif recipe == "beats_lmms":
            backing, song = self._lmms_backing(m, rng, on_bar=True)
            drums, bass = groove(self.src.beats, song.bpm, m, rng)
            tracks = {DRUMS: [drums], BASS: [bass], OTHER: backing[OTHER]}
        else:
            raise bad_value("recipe", recipe, f"one of {self.names}")
        if self.voice_variants and recipe in VARIED_VOICE_RECIPES and tracks.get(VOCALS):
            tracks[VOCALS], varied_band = vary_voice(tracks[VOCALS], band, VoiceVariant.draw(rng), self.sr)
            band = min(band, varied_band)  # a shift up does not lift a band-limited backing's limit; 0 stays 0
        stems = self._mix(tracks, m, rng, raw_accompaniment=grouped)
        stems = master(stems, self.sr, MasterSettings.draw(rng))[..., pre:]
        groups = np.eye(4, dtype=np.float32)
        valid = np.ones(4, dtype=bool)
        if grouped:  # targets: vocals, and the accompaniment as drums + bass + other
            stems = np.stack([stems[VOCALS], stems[OTHER], np.zeros_like(stems[0]), np.zeros_like(stems[0])])
            groups = np.zeros((4, 4), dtype=np.float32)
            groups[0, VOCALS] = 1.0
            groups[1, [DRUMS, BASS, OTHER]] = 1.0
            valid = np.array([True, True, False, False])
        return stems, groups, valid, band

    def _mix(self, tracks: dict[int, list[np.ndarray]], m: int, rng: np.random.Generator,
             raw_accompaniment: bool = False) -> np.ndarray:
        """Each track panned (mono) and through a channel strip; stems balanced; ``(4, 2, m)``."""
        stems = np.zeros((4, 2, m), dtype=np.float32)
        for k, xs in tracks.items():
            for x in xs:
                if _rms(x) < 1e-5:
                    continue
                y = x if x.ndim == 2 else np.stack([x, x]) * np.float32(np.sqrt(0.5))
                if x.ndim == 1 and not (raw_accompaniment and k == OTHER):
                    y = pan_mono(x, draw_pan(DJ_STEMS[k], rng))
                if not (raw_accompaniment and k == OTHER):
                    y = stem_chain(y, DJ_STEMS[k], rng, self.sr)
                stems[k] += y
        # balance: backing stems around equal loudness, the voice relative to the backing
        backing_level = 0.05
        for k in (DRUMS, BASS, OTHER):
            r = _rms(stems[k])
            if r > 1e-5:
                stems[k] *= np.float32(backing_level * 10 ** (rng.uniform(-5, 4) / 20) / r)
        r_voice, r_back = _rms(stems[VOCALS]), _rms(stems[DRUMS] + stems[BASS] + stems[OTHER])
        if r_voice > 1e-5:
            ref = r_back if r_back > 1e-5 else backing_level
            stems[VOCALS] *= np.float32(ref * 10 ** (rng.uniform(-7, 3) / 20) / r_voice)
        return stems


class DjSampler:
    """Seeded batches of DJ examples (``batch(size) -> TrainBatch``); ``rng`` is checkpointed."""

    def __init__(self, sources: DjSources, excerpt_samples: int, seed: int,
                 recipes: dict[str, float] | None = None, voice_variants: bool = False,
                 electronic_share: float = 1.0) -> None:
        self.maker = DjExampleMaker(sources, recipes, voice_variants=voice_variants,
                                    electronic_share=electronic_share)
        self.excerpt = excerpt_samples
        self.rng = np.random.default_rng(seed)

    def batch(self, size: int) -> TrainBatch:
        return stack_examples([self.maker.make(self.excerpt, self.rng) for _ in range(size)])


def stack_examples(examples: list[tuple[np.ndarray, np.ndarray, np.ndarray, float]]) -> TrainBatch:
    """A :class:`TrainBatch` from ``DjExampleMaker.make`` outputs."""
    targets = torch.from_numpy(np.stack([e[0] for e in examples]))
    groups = torch.from_numpy(np.stack([e[1] for e in examples]))
    valid = torch.from_numpy(np.stack([e[2] for e in examples]))
    mix = targets.sum(dim=1)  # switched-off rows are silent, so this is the sum of the sources
    band = torch.tensor([e[3] for e in examples], dtype=torch.float32)
    return TrainBatch(mix, targets, groups, valid, band)


def validation_batch(sources: DjSources, seconds: float = 6.0, seed: int = 4242,
                     recipes: dict[str, int] | None = None) -> TrainBatch:
    """A fixed validation batch from held-out sources: ``recipes`` maps recipe -> count."""
    recipes = recipes or {"musicdelta": 8, "mir1k_over_synth": 8, "musicdelta_over_synth": 6, "mir1k_pair": 4}
    maker = DjExampleMaker(sources)
    rng = np.random.default_rng(seed)
    n = int(seconds * MODEL_SAMPLE_RATE)
    return stack_examples([maker.make(n, rng, recipe) for recipe, count in recipes.items() for _ in range(count)])
