"""Electronic drum patterns and bass lines played with Sonic Pi's one-shot samples (CC0).

Debian's ``sonic-pi-samples`` installs freesound.org recordings in ``/usr/share/sonic-pi/samples``:
acoustic and electronic kicks, snares, hats, percussion and bass one-shots. :func:`groove` plays a
drum pattern of a drawn style (house, techno, breakbeat, drum and bass, trap, electro; 16 steps per
bar with drawn variations, velocities and fills) and a bass line under it (a root per bar from a
minor key, the notes on the style's bass rhythm, each note the bass sample resampled to its pitch and
cut at the next note), at a given tempo from a bar at sample 0, so they fit under another song's
grid. Only the samples :data:`KIT` and :data:`BASS_ROOTS` name are used, all CC0 according to
``/usr/share/doc/sonic-pi-samples/copyright`` (the few MIT ones, such as ``bd_mehackit``, are not).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stemstream.realtime.errors import bad_value
from stemstream.realtime.stems import MODEL_SAMPLE_RATE

SONIC_PI_SAMPLES = Path("/usr/share/sonic-pi/samples")

#: Drum roles -> Sonic Pi sample names (``NAME.flac``), CC0 only.
KIT: dict[str, tuple[str, ...]] = {
    "kick": ("bd_808", "bd_ada", "bd_boom", "bd_fat", "bd_gas", "bd_haus", "bd_klub", "bd_pure", "bd_sone",
             "bd_tek", "bd_zome", "bd_zum", "drum_heavy_kick", "drum_bass_hard", "elec_soft_kick",
             "elec_hollow_kick"),
    "snare": ("sn_dolf", "sn_dub", "sn_zome", "drum_snare_hard", "drum_snare_soft", "elec_snare",
              "elec_hi_snare", "elec_lo_snare", "elec_mid_snare", "elec_filt_snare", "perc_snap", "perc_snap2"),
    "closed_hat": ("drum_cymbal_closed", "drum_cymbal_pedal", "elec_tick", "elec_cymbal"),
    "open_hat": ("drum_cymbal_open", "drum_cymbal_soft"),
    "perc": ("drum_cowbell", "elec_wood", "elec_blip", "elec_pop", "elec_fuzz_tom", "elec_triangle",
             "drum_tom_hi_soft", "drum_tom_mid_soft", "drum_tom_lo_soft"),
    "crash": ("drum_splash_soft", "drum_splash_hard", "drum_cymbal_hard"),
}

#: Bass one-shots -> the pitch class they sound (their names say it), CC0 only.
BASS_ROOTS: dict[str, int] = {"bass_dnb_f": 5, "bass_hard_c": 0, "bass_hit_c": 0, "bass_thick_c": 0,
                              "bass_trance_c": 0, "bass_voxy_c": 0, "bass_woodsy_c": 0, "bass_drop_c": 0,
                              "bass_voxy_hit_c": 0}

#: Styles: tempo range (bpm) and 16-step patterns per role (``x`` hit, ``o`` soft hit); ``bass`` the
#: bass line's rhythm (``x`` a note on the bar's root, ``o`` an octave or a fifth above).
STYLES: dict[str, dict] = {
    "house": {"bpm": (118, 128), "kick": "x...x...x...x...", "snare": "....x.......x...",
              "closed_hat": "..x...x...x...x.", "open_hat": "", "perc": "...o......o.....", "bass": "..x...x...x...o."},
    "techno": {"bpm": (124, 138), "kick": "x...x...x...x...", "snare": "", "closed_hat": "oxoxoxoxoxoxoxox",
               "open_hat": "..x...x...x...x.", "perc": "...x..x....x..x.", "bass": "xoxxxoxxxoxxxoxx"},
    "breakbeat": {"bpm": (126, 140), "kick": "x.........x..x..", "snare": "....x.......x...",
                  "closed_hat": "x.x.x.x.x.x.x.x.", "open_hat": "", "perc": "", "bass": "x.....x...x....."},
    "dnb": {"bpm": (165, 176), "kick": "x.........x.....", "snare": "....x.......x..o",
            "closed_hat": "x.xox.x.x.xox.x.", "open_hat": "", "perc": "", "bass": "x.......x.o....."},
    "trap": {"bpm": (130, 150), "kick": "x......x..x.....", "snare": "........x.......",
             "closed_hat": "xoxoxoxoxoxxxoxo", "open_hat": "", "perc": "", "bass": "x......x..x....."},
    "electro": {"bpm": (108, 128), "kick": "x.....x...x.....", "snare": "....x.......x...",
                "closed_hat": "x.x.x.x.x.x.x.x.", "open_hat": "", "perc": "..o.....o..o....", "bass": "x..x..x...x..o.."},
}

MINOR_DEGREES = (0, 0, -2, -4, 3, 5, 7)  # roots a bar may take, semitones from the key's tonic


@dataclass(frozen=True, eq=False)
class BeatKit:
    """Sonic Pi's samples, mono float32 at 44.1 kHz: ``drums[role]`` and ``basses`` (name -> audio)."""

    drums: dict[str, dict[str, np.ndarray]]
    basses: dict[str, np.ndarray]
    _pitched: dict[tuple[str, int], np.ndarray] = field(default_factory=dict, repr=False)

    def pitched(self, name: str, semitones: int) -> np.ndarray:
        """Bass sample ``name`` ``semitones`` higher by resampling (shorter when higher); cached."""
        import soxr

        key = (name, semitones)
        if key not in self._pitched:
            x = self.basses[name]
            self._pitched[key] = x if semitones == 0 else np.asarray(
                soxr.resample(x, MODEL_SAMPLE_RATE * 2 ** (semitones / 12), MODEL_SAMPLE_RATE, quality="HQ"),
                dtype=np.float32)
        return self._pitched[key]


def load_kit(root: str | Path = SONIC_PI_SAMPLES) -> BeatKit:
    """The samples of :data:`KIT` and :data:`BASS_ROOTS` from ``root`` (every one must be there)."""
    import soxr

    from stemstream.export.data.loaders import read_audio

    base = Path(root)
    names = [n for role in KIT.values() for n in role] + list(BASS_ROOTS)
    missing = [n for n in names if not (base / f"{n}.flac").is_file()]
    if missing:
        raise bad_value("sonic-pi samples", str(base),
                        f"Sonic Pi's samples (apt-get install sonic-pi-samples); missing {missing[:3]}")

    def read(name: str) -> np.ndarray:
        x, rate = read_audio(base / f"{name}.flac")
        mono = x.mean(axis=0)
        if rate != MODEL_SAMPLE_RATE:
            mono = soxr.resample(mono, rate, MODEL_SAMPLE_RATE, quality="HQ")
        return np.ascontiguousarray(mono, dtype=np.float32)

    return BeatKit({role: {n: read(n) for n in names} for role, names in KIT.items()},
                   {n: read(n) for n in BASS_ROOTS})


def kit_exists(root: str | Path = SONIC_PI_SAMPLES) -> bool:
    """True when Sonic Pi's samples are installed at ``root``."""
    return (Path(root) / "bd_808.flac").is_file()


def _place(out: np.ndarray, x: np.ndarray, at: int, gain: float, length: int | None = None) -> None:
    """Add ``gain * x`` into mono ``out`` from ``at``, cut to ``length`` with a 5 ms fade."""
    if at >= out.shape[-1]:
        return
    y = x[: length] if length is not None else x
    y = y[: out.shape[-1] - at].astype(np.float32) * np.float32(gain)
    if length is not None and y.shape[-1] == length:
        fade = min(int(0.005 * MODEL_SAMPLE_RATE), y.shape[-1])
        y[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    out[at : at + y.shape[-1]] += y


def _vary(pattern: str, rng: np.random.Generator, p_drop: float, p_add: float) -> str:
    steps = list(pattern or "." * 16)
    for i, s in enumerate(steps):
        if s != "." and rng.random() < p_drop:
            steps[i] = "."
        elif s == "." and rng.random() < p_add:
            steps[i] = "o"
    return "".join(steps)


def groove(kit: BeatKit, bpm: float, n: int, rng: np.random.Generator, style: str | None = None
           ) -> tuple[np.ndarray, np.ndarray]:
    """``(drums, bass)``, each ``(2, n)`` float32: a drawn pattern at ``bpm`` with a bar at sample 0.

    One sample per drum role and one bass sample per call; velocities vary by step, the patterns by
    a few dropped and added soft hits per bar, and every fourth bar may end on a snare fill."""
    if style is None:
        style = list(STYLES)[int(rng.integers(len(STYLES)))]
    if style not in STYLES:
        raise bad_value("style", style, f"one of {sorted(STYLES)}")
    spec = STYLES[style]
    step = 60.0 / bpm / 4 * MODEL_SAMPLE_RATE  # a 16th note in samples
    bars = int(np.ceil(n / (16 * step))) + 1
    drums = {role: np.zeros(n, dtype=np.float32) for role in KIT}
    pans = {role: float(rng.uniform(-0.3, 0.3)) for role in KIT}
    pans["kick"] = pans["snare"] = 0.0
    for role in ("kick", "snare", "closed_hat", "open_hat", "perc"):
        names = KIT[role]
        sample = kit.drums[role][names[int(rng.integers(len(names)))]]
        base = _vary(spec[role], rng, 0.0, 0.0) if role == "kick" else spec[role]
        level = {"kick": 1.0, "snare": 0.8, "closed_hat": 0.35, "open_hat": 0.3, "perc": 0.3}[role]
        for bar in range(bars):
            pattern = base if role == "kick" else _vary(base, rng, 0.05, 0.03 if spec[role] else 0.0)
            if role == "snare" and bar % 4 == 3 and rng.random() < 0.5:
                pattern = pattern[:12] + "".join("o" if rng.random() < 0.7 else "." for _ in range(4))
            for i, s in enumerate(pattern):
                if s != ".":
                    velocity = level * (1.0 if s == "x" else 0.55) * rng.uniform(0.85, 1.0)
                    _place(drums[role], sample, int(round((bar * 16 + i) * step)), velocity)
    if rng.random() < 0.5:
        crash = kit.drums["crash"][KIT["crash"][int(rng.integers(len(KIT["crash"])))]]
        _place(drums["crash"], crash, 0, 0.35)
    stereo = np.zeros((2, n), dtype=np.float32)
    for role, x in drums.items():
        angle = (pans[role] + 1) * np.pi / 4
        stereo[0] += np.cos(angle) * x
        stereo[1] += np.sin(angle) * x
    name = list(BASS_ROOTS)[int(rng.integers(len(BASS_ROOTS)))]
    key = int(rng.integers(-5, 7))  # the tonic, semitones from the sample's own pitch class
    bass = np.zeros(n, dtype=np.float32)
    onsets = [(bar, i, s) for bar in range(bars) for i, s in enumerate(spec["bass"]) if s != "."]
    roots = [MINOR_DEGREES[int(rng.integers(len(MINOR_DEGREES)))] for _ in range(bars)]
    for k, (bar, i, s) in enumerate(onsets):
        at = int(round((bar * 16 + i) * step))
        if k + 1 < len(onsets):
            nxt = int(round((onsets[k + 1][0] * 16 + onsets[k + 1][1]) * step))
        else:
            nxt = at + int(4 * step)
        pitch = key + roots[bar] + (0 if s == "x" else (12 if rng.random() < 0.5 else 7))
        pitch = pitch - 12 if pitch > 12 else pitch + 12 if pitch < -12 else pitch  # within an octave
        x = kit.pitched(name, int(pitch))
        _place(bass, x, at, 0.8 * rng.uniform(0.9, 1.0), length=max(nxt - at, 1))
    return stereo, np.stack([bass, bass]) * np.float32(np.sqrt(0.5))
