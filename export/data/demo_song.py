"""The demo song: the same song on every machine, rendered here, with a voice for the DJ stems.

``render_demo_song(seconds, workdir, stems)``:

* ``stems="instruments"``: one synthetic song (composer version 1, the shipped models' training
  generator) with its true ``bass, drums, guitar, piano``, as rendered by ``stemstream data synth``;
* ``stems="dj"``: the same backing as ``drums, bass, other`` (guitar + piano) and a sung voice of
  our own rendering (``stemstream.export.data.voice``: a melody over the song's chords, formant-synthesised)
  as ``vocals``, each stem through a fixed channel strip and the four through a fixed master
  (``stemstream.export.data.mixing``), so that the mixture reads like a released record and is still the
  exact sum of the stems.

Everything is seeded by :data:`DEMO_SEED`; nothing is downloaded and no recording is shipped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stemstream.export.data.tracks import Track
from stemstream.realtime.errors import StemstreamError, bad_value
from stemstream.realtime.stems import DJ_STEMS

DEMO_SEED = 20261121
#: The composer version the shipped models were trained on (see ``stemstream data synth --help``).
DEMO_GENERATOR_VERSION = 1
DEMO_STEM_SETS = ("dj", "instruments")


def render_demo_song(seconds: float, workdir: Path, stems: str = "dj") -> Track:
    """The demo song as a ``Track`` (see the module docstring); ``workdir`` holds the rendering."""
    from stemstream.export.data.loaders import load_tracks
    from stemstream.export.data.synth import render_dataset

    if stems not in DEMO_STEM_SETS:
        raise bad_value("stems", stems, f"one of {DEMO_STEM_SETS}")
    render_dataset(workdir, songs=1, seconds=seconds, seed=DEMO_SEED, workers=1,
                   generator_version=DEMO_GENERATOR_VERSION)
    tracks = list(load_tracks(workdir))
    if len(tracks) != 1:
        raise StemstreamError(f"demo song rendering produced {len(tracks)} tracks, expected 1")
    backing = tracks[0]
    if stems == "instruments":
        return backing
    return _with_voice(backing, seconds)


def _with_voice(backing: Track, seconds: float) -> Track:
    from stemstream.export.data.composer import compose_song
    from stemstream.export.data.mixing import MasterSettings, master, pan_mono, stem_chain
    from stemstream.export.data.synth import song_seed
    from stemstream.export.data.voice import render_voice, sing_melody

    rate = backing.sample_rate
    rng = np.random.default_rng(DEMO_SEED)
    song = compose_song(song_seed(DEMO_SEED, 0), seconds, version=DEMO_GENERATOR_VERSION)
    notes = sing_melody(song.plan, seconds, "alto", rng)
    voice = render_voice(notes, seconds, rate, "alto", rng)
    n = backing.num_samples
    vocals = np.zeros((2, n), dtype=np.float32)
    sung = stem_chain(pan_mono(voice[:n], 0.0), "vocals", rng, rate)
    vocals[:, : sung.shape[-1]] = sung[:, :n]
    s = backing.stems
    stems = np.stack([vocals, s["drums"], s["bass"], s["guitar"] + s["piano"]]).astype(np.float32)
    backing_rms = float(np.sqrt(np.mean(stems[1:].sum(axis=0) ** 2)))
    voice_rms = float(np.sqrt(np.mean(vocals[:, np.abs(vocals).max(axis=0) > 1e-4] ** 2))) if vocals.any() else 1.0
    stems[0] *= np.float32(backing_rms * 10 ** (-1.0 / 20) / max(voice_rms, 1e-9))  # the voice 1 dB under
    settings = MasterSettings(width=0.25, rms_dbfs=-16.0, glue_threshold_db=-10.0, glue_ratio=2.0, clip_drive=0.0)
    stems = master(stems, rate, settings)
    named = {name: stems[k] for k, name in enumerate(DJ_STEMS)}
    return Track(backing.name, rate, named, stems.sum(axis=0),
                 {**backing.meta, "demo": "dj", "sung_notes": len(notes)})
