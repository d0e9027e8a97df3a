"""LMMS demo projects as multitracks: what a project holds, which DJ stem each track is, its licence.

The Debian packages ``lmms`` and ``lmms-common`` ship human-made songs as LMMS projects
(``/usr/share/lmms/projects/{demos,shorties,tutorials}/*.mmp[z]``). Every unmuted instrument and
sample track is rendered to its own file (``stemstream.export.data.lmms_render``, one
:func:`solo_project` per track); this module reads a project without running LMMS:

* :func:`read_project`: tempo, length and the tracks in the order ``rendertracks`` numbers its files
  (the song's unmuted instrument/sample tracks, then those of the beat/bassline editor);
* :func:`label_track`: a small rule table from the track's name, its sample file, its ZynAddSubFX
  preset name and its plugin to ``drums``, ``bass`` or ``other`` (LMMS ships no recorded voice:
  "voice", "choir" and "vocal morph" tracks are synthesised and go to ``other``); tracks the rules
  cannot place are decided from their spectrum by the renderer (:data:`UNDECIDED`);
* :func:`project_licence`: the project's licence and copyright holders as the package's
  ``debian/copyright`` (DEP-5) states them.

An ``.mmpz`` file is Qt's ``qCompress``: a 4-byte big-endian length, then a zlib stream of the XML.
"""

from __future__ import annotations

import fnmatch
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

from stemstream.realtime.errors import AudioInputError

#: Where ``lmms-common`` puts the projects and its copyright file.
LMMS_PROJECTS = Path("/usr/share/lmms/projects")
LMMS_COPYRIGHT = Path("/usr/share/doc/lmms-common/copyright")

#: LMMS track types (``Track::TrackTypes``) that ``rendertracks`` renders.
INSTRUMENT_TRACK, BB_TRACK, SAMPLE_TRACK = "0", "1", "2"

#: LMMS timing: ticks per quarter note (``DefaultTicksPerBar / 4`` = 192 / 4).
TICKS_PER_BEAT = 48

#: The label a rule gives when it cannot decide; the renderer decides such tracks by spectrum.
UNDECIDED = "undecided"

#: Names that say nothing about the instrument (LMMS' default preset names).
GENERIC_NAMES = re.compile(r"^(default|standard)([ -]?preset)?$|^default kicker preset$", re.IGNORECASE)


@dataclass(frozen=True)
class LmmsTrack:
    """One track ``rendertracks`` renders.

    Attributes:
        number: the number ``rendertracks`` prefixes its file with (1-based).
        name: the track's name as the author left it.
        plugin: the instrument plugin (``zynaddsubfx``, ``tripleoscillator``, ``audiofileprocessor``,
            ``kicker``, ``lb302``, ...); ``sampletrack`` for a sample track.
        preset: ZynAddSubFX's instrument name, else ``""``.
        sample: the sample file an ``audiofileprocessor`` plays (relative to LMMS' samples), else ``""``.
        beat_editor: True for a track of the beat/bassline editor.
    """

    number: int
    name: str
    plugin: str
    preset: str = ""
    sample: str = ""
    beat_editor: bool = False


@dataclass(frozen=True)
class LmmsProject:
    """What a project file says: ``bpm`` (quarter notes per minute), ``seconds`` (the song's end),
    ``tracks`` in ``rendertracks`` order."""

    path: Path
    bpm: float
    seconds: float
    tracks: tuple[LmmsTrack, ...]


def project_xml(path: str | Path) -> ElementTree.Element:
    """The XML root of an ``.mmp`` or ``.mmpz`` project."""
    p = Path(path)
    try:
        data = p.read_bytes()
        if p.suffix == ".mmpz":
            data = zlib.decompress(data[4:])
        return ElementTree.fromstring(data)
    except (OSError, zlib.error, ElementTree.ParseError) as exc:
        raise AudioInputError(f"{str(p)!r}: not a readable LMMS project ({type(exc).__name__}: {exc})") from None


def _zyn_preset(instrument: ElementTree.Element) -> str:
    """The instrument name of ZynAddSubFX's first enabled part, if it has one."""
    for part in instrument.iter("PART"):
        enabled = [b.get("value") for b in part.findall("par_bool") if b.get("name") == "enabled"]
        if enabled and enabled[0] != "yes":
            continue
        for s in part.iter("string"):
            if s.get("name") == "name" and (s.text or "").strip():
                return s.text.strip()
    return ""


def _track(el: ElementTree.Element, number: int, beat_editor: bool) -> LmmsTrack:
    name = el.get("name", "")
    if el.get("type") == SAMPLE_TRACK:
        return LmmsTrack(number, name, "sampletrack", beat_editor=beat_editor)
    ins = el.find("instrumenttrack/instrument")
    plugin = ins.get("name", "") if ins is not None else ""
    preset = sample = ""
    if ins is not None and plugin == "zynaddsubfx":
        preset = _zyn_preset(ins)
    if ins is not None and len(ins):
        sample = ins[0].get("src", "") or ""
    return LmmsTrack(number, name, plugin, preset, sample, beat_editor)


def _rendered(container: ElementTree.Element | None) -> list[ElementTree.Element]:
    if container is None:
        return []
    return [t for t in container.findall("track")
            if t.get("type") in (INSTRUMENT_TRACK, SAMPLE_TRACK) and t.get("muted", "0") != "1"]


def _containers(root: ElementTree.Element) -> tuple[ElementTree.Element | None, ElementTree.Element | None]:
    """The song editor's track container and the beat/bassline editor's (inside the first BB track)."""
    song = root.find("song")
    container = song.find("trackcontainer") if song is not None else None
    if container is None:
        return None, None
    bb = next((t.find("bbtrack/trackcontainer") for t in container.findall("track") if t.get("type") == BB_TRACK), None)
    return container, bb


def solo_project(path: str | Path, number: int) -> bytes:
    """The project's XML with track ``number`` (as :func:`read_project` numbers them) the only
    instrument or sample track left, in either editor: beat/bassline tracks, automation, the FX
    mixer and the master stay. ``lmms render`` of it gives the same audio as ``rendertracks`` gives
    for that track (LMMS mutes the other tracks but still runs their synths: removing them makes a
    song of many ZynAddSubFX tracks several times faster to render)."""
    root = project_xml(path)
    song, bb = _containers(root)
    rendered = [(c, el) for c in (song, bb) if c is not None for el in _rendered(c)]
    if not 1 <= number <= len(rendered):
        raise AudioInputError(f"{str(path)!r}: no track number {number} (it renders {len(rendered)})")
    keep = rendered[number - 1][1]
    for container in (song, bb):
        if container is None:
            continue
        for el in container.findall("track"):
            if el.get("type") in (INSTRUMENT_TRACK, SAMPLE_TRACK) and el is not keep:
                container.remove(el)
    return ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)


def read_project(path: str | Path) -> LmmsProject:
    """Tempo, length and rendered tracks of one LMMS project.

    The order is ``RenderManager::renderTracks`` of LMMS 1.2: the song editor's unmuted instrument
    and sample tracks, then the beat/bassline editor's (kept inside the first beat/bassline track);
    the file of track ``i`` (0-based) is ``f"{i + 1}_{name}.wav"``.
    """
    root = project_xml(path)
    head = root.find("head")
    container, bb = _containers(root)
    if head is None or container is None:
        raise AudioInputError(f"{str(path)!r}: an LMMS project without <head> or a song track container")
    try:
        bpm = float(head.get("bpm", "140"))
    except ValueError:
        raise AudioInputError(f"{str(path)!r}: tempo {head.get('bpm')!r} is not a number") from None
    elements = [(el, False) for el in _rendered(container)] + [(el, True) for el in _rendered(bb)]
    end_ticks = 0
    for t in container.findall("track"):
        for clip in t:
            if clip.get("pos") is not None and clip.get("len") is not None:
                end_ticks = max(end_ticks, int(clip.get("pos")) + int(clip.get("len")))
    tracks = tuple(_track(el, i + 1, in_bb) for i, (el, in_bb) in enumerate(elements))
    return LmmsProject(Path(path), bpm, end_ticks / TICKS_PER_BEAT * 60.0 / bpm, tracks)


# ----------------------------------------------------------------------------- labels

#: Keyword rules, tried in order on a text (lower case, ``_`` read as a space). Word starts keep
#: "override" from being a ride; ``(?![a-z])`` lets "hats1" and "BD 03" match but not "subtle".
#: Drum words come before "bass" so that "bassdrum" is drums, and the instrument words of
#: :data:`INSTRUMENT_RULE` after it so that "plucky bass" is bass.
KEYWORD_RULES: tuple[tuple[str, str], ...] = (
    ("other", r"voice|vocal|\bvox|choir|\bahh"),  # synthesised voices: no recorded singer in LMMS
    ("other", r"\bfx(?![a-z])|sweep|woosh|whoosh|riser"),  # effects, even when played from a drum sample
    ("drums", r"bass ?drum|kick|\bkik|\bbd(?![a-z])|snare|\bsnr|clap|hi ?hat|\bhh(?![a-z])|\bhats?(?![a-z])"
              r"|\bride|crash|cymbal|\btoms?(?![a-z])|\bperc|shaker|\btamb|\brim|drum|\bcga|conga|bongo"
              r"|cowbell|808|909|sidestick"),
    ("bass", r"bass|\bsub(?![a-z])|303"),
)
#: Pitched instruments: tried after the sample's folder, so that a drum sample named "Noise Clip"
#: stays a drum.
INSTRUMENT_RULE: tuple[str, str] = (
    "other", r"guitar|piano|string|\bpad|lead|organ|rhodes|pluck|\barp|bell|brass|brazz|trumpet|flute"
             r"|chord|synth|\bsaw|square|reed|pipe|noise|chimes|melody")

#: Sample folders of LMMS' library (``/usr/share/lmms/samples``) -> stem; ``None``: look further.
SAMPLE_FOLDERS: tuple[tuple[str, str | None], ...] = (
    ("drumsynth/instrument/", None),  # pitched instruments made with DrumSynth: decide by name
    ("drumsynth/effects/", "other"),
    ("drumsynth/misc_fx/", "other"),
    ("drumsynth/", "drums"),
    ("drums/", "drums"),
    ("beats/", "drums"),
    ("latin/", None),  # latin percussion and guitars alike: decide by name
    ("basses/", "bass"),
    ("bassloops/", "bass"),
)

#: Plugins that decide a track the other rules left open (sfxr makes game sound effects).
PLUGIN_STEMS = {"lb302": "bass", "sfxr": "other"}
#: Plugins whose unnamed tracks no rule can place: Kicker is a drum synth, but authors also play
#: leads and chords on it (Jousboxx-BuzzerBeater), and a kick's spectrum reads like a bass's.
AMBIGUOUS_PLUGINS = ("kicker",)


def _keywords(text: str, rules: tuple[tuple[str, str], ...] = KEYWORD_RULES + (INSTRUMENT_RULE,)) -> str | None:
    low = text.lower().replace("_", " ")
    for stem, pattern in rules:
        if re.search(pattern, low):
            return stem
    return None


def label_track(track: LmmsTrack) -> tuple[str, str]:
    """``(stem, reason)`` for one track: ``drums``, ``bass``, ``other`` or :data:`UNDECIDED`.

    In order: keywords (:data:`KEYWORD_RULES`) in the track's name (unless it is a default like
    "Default preset"), the sample's folder (:data:`SAMPLE_FOLDERS`), instrument words
    (:data:`INSTRUMENT_RULE`) in the name, all keywords in the sample's file name and in the
    ZynAddSubFX preset's name, the plugin (:data:`PLUGIN_STEMS`); any other sample of LMMS' library
    is a pitched instrument, ``other``; the rest (a synth no rule names) is :data:`UNDECIDED`, for
    :func:`label_by_spectrum`.
    """
    name = track.name.strip()
    named = bool(name) and not GENERIC_NAMES.match(name)
    stem = _keywords(name, KEYWORD_RULES) if named else None
    if stem is not None:
        return stem, f"name {name!r}"
    for folder, folder_stem in SAMPLE_FOLDERS if track.sample else ():
        if track.sample.startswith(folder):
            if folder_stem is not None:
                return folder_stem, f"sample folder {folder!r}"
            break
    stem = _keywords(name, (INSTRUMENT_RULE,)) if named else None
    if stem is not None:
        return stem, f"name {name!r}"
    stem = _keywords(Path(track.sample).stem) if track.sample else None
    if stem is not None:
        return stem, f"sample {track.sample!r}"
    stem = _keywords(track.preset) if track.preset else None
    if stem is not None:
        return stem, f"preset {track.preset!r}"
    if track.plugin in PLUGIN_STEMS:
        return PLUGIN_STEMS[track.plugin], f"plugin {track.plugin!r}"
    if track.sample:
        return "other", f"pitched sample {track.sample!r}"
    return UNDECIDED, f"no rule for name {name!r}, preset {track.preset!r}, plugin {track.plugin!r}"


#: Below this frequency (Hz) a bass has most of its energy.
BASS_BAND_HZ = 250.0
#: A track the rules left open is ``bass`` if at least this share of its energy is below the band.
BASS_LOW_FRACTION = 0.6


def label_by_spectrum(low_fraction: float, plugin: str = "") -> tuple[str | None, str]:
    """The rule for a synth the name rules left open: ``bass`` if most of its energy is below
    :data:`BASS_BAND_HZ`, else ``other``; ``None`` (leave the track out) for
    :data:`AMBIGUOUS_PLUGINS`."""
    if plugin in AMBIGUOUS_PLUGINS:
        return None, f"unnamed {plugin!r} track: a drum or a synth"
    if low_fraction >= BASS_LOW_FRACTION:
        return "bass", f"spectrum: {low_fraction:.0%} of the energy below {BASS_BAND_HZ:g} Hz"
    return "other", f"spectrum: {low_fraction:.0%} of the energy below {BASS_BAND_HZ:g} Hz"


# --------------------------------------------------------------------------- licences


@dataclass(frozen=True)
class Licence:
    """A project's licence as the package states it: SPDX-like short name and copyright lines."""

    licence: str
    copyright: tuple[str, ...]


def parse_dep5(text: str) -> list[tuple[tuple[str, ...], Licence]]:
    """The ``Files:`` stanzas of a machine-readable ``debian/copyright``: ``(patterns, licence)``."""
    stanzas: list[tuple[tuple[str, ...], Licence]] = []
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, list[str]] = {}
        key = None
        for line in block.splitlines():
            if line[:1] in (" ", "\t") and key is not None:
                fields[key].append(line.strip())
            elif ":" in line:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                fields[key] = [value.strip()] if value.strip() else []
        if "files" in fields and "license" in fields and fields["license"]:
            patterns = tuple(p for chunk in fields["files"] for p in chunk.split())
            holders = tuple(h for h in fields.get("copyright", []) if h and h != ".")
            stanzas.append((patterns, Licence(fields["license"][0], holders)))
    return stanzas


def project_licence(copyright_text: str, relative: str) -> Licence:
    """The licence of ``data/projects/<relative>`` (e.g. ``demos/Saber-FinalStep.mmpz``): DEP-5
    says the last stanza whose ``Files`` pattern matches wins (``*`` matches ``/`` too)."""
    path = f"data/projects/{relative}"
    found: Licence | None = None
    for patterns, licence in parse_dep5(copyright_text):
        if any(fnmatch.fnmatchcase(path, p) for p in patterns):
            found = licence
    if found is None:
        raise AudioInputError(f"{path!r}: no Files stanza of the copyright file covers it")
    return found
