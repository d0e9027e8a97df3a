"""Mix like a mix engineer: per-stem processing, then a master bus that keeps the stems' sum exact.

Two kinds of operation, kept apart on purpose:

* **Per-stem** (``pan_mono``, ``stem_chain``): panning, EQ, compression, reverb and delay sends.
  Each changes one stem only; the mixture is formed afterwards as the sum of the processed
  stems, so it stays their exact sum. A send's wet signal belongs to the stem it was sent from.
* **Master bus** (``master``): operations applied *alike to every stem*: a stereo width change
  (the same mid/side matrix), glue compression, a limiter and a clipper (the same time-varying
  gain ``g(t)``, computed from the mixture), and a loudness gain. Because
  ``sum_s g(t) * stem_s(t) = g(t) * mixture(t)``, the stems still sum exactly to the mastered
  mixture; a clipper written as a gain ``clip(m) / m`` puts the distortion into every stem in
  proportion, as it is in a clipped master.

``measure`` reads the three figures the targets are stated in: RMS level (dBFS over both
channels), crest factor (peak over RMS, dB) and width (RMS of side over RMS of mid, with
``mid = (L + R) / 2`` and ``side = (L - R) / 2``). Released music (the MUSDB18 excerpts in
``../shared/realdata``) reads -18 to -20 dBFS, crest ~17 dB, width 0.2-0.3.

Everything random is drawn from a ``numpy.random.Generator`` the caller passes in, so a seed
gives the same mix. Audio is ``(channels, samples)`` float32 at ``sample_rate`` Hz.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from stemstream.realtime.errors import bad_value

#: Where released music sits (MUSDB18 excerpts, measured with ``measure``; see the module doc).
RELEASED_RMS_DBFS: tuple[float, float] = (-21.5, -15.5)
RELEASED_WIDTH: tuple[float, float] = (0.12, 0.35)


@dataclass(frozen=True)
class MixStats:
    """Level figures of a stereo signal: RMS in dBFS, crest factor in dB, side/mid width."""

    rms_dbfs: float
    crest_db: float
    width: float


def measure(mix: np.ndarray) -> MixStats:
    """RMS level, crest factor and width of ``mix`` ``(2, samples)`` (mono: width 0)."""
    x = np.asarray(mix, dtype=np.float64)
    if x.ndim != 2 or x.shape[-1] == 0:
        raise bad_value("mix.shape", x.shape, "(channels, samples) with samples > 0")
    rms = float(np.sqrt(np.mean(x**2)) + 1e-12)
    peak = float(np.max(np.abs(x)) + 1e-12)
    width = 0.0
    if x.shape[0] == 2:
        mid, side = (x[0] + x[1]) / 2, (x[0] - x[1]) / 2
        width = float(np.sqrt(np.mean(side**2)) / (np.sqrt(np.mean(mid**2)) + 1e-12))
    return MixStats(20 * np.log10(rms), 20 * np.log10(peak / rms), width)


# ------------------------------------------------------------------------- per stem


def pan_mono(x: np.ndarray, position: float) -> np.ndarray:
    """Constant-power pan of ``x`` ``(samples,)`` to ``(2, samples)``; ``position`` in [-1, 1]
    (-1 hard left); the centre is -3 dB per side."""
    if not -1.0 <= position <= 1.0:
        raise bad_value("position", position, "a pan position in [-1, 1]")
    angle = (position + 1) * np.pi / 4
    return np.stack([np.cos(angle) * x, np.sin(angle) * x]).astype(np.float32)


#: Pan spread per stem: vocals and bass sit near the centre, the rest spread out.
PAN_SPREAD: dict[str, float] = {"vocals": 0.12, "bass": 0.1, "drums": 0.25, "other": 0.8}


def draw_pan(stem: str, rng: np.random.Generator) -> float:
    """A pan position for one track of ``stem``."""
    spread = PAN_SPREAD.get(stem, 0.6)
    return float(np.clip(rng.uniform(-spread, spread), -1.0, 1.0))


def stem_chain(x: np.ndarray, stem: str, rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """One stem through a drawn channel strip: high-pass, EQ, compressor, reverb / delay sends.

    ``x`` ``(2, samples)``; returns the same shape (the sends' wet signal added). Vocals get a
    compressor and a reverb most of the time and a delay sometimes; bass is never high-passed.
    """
    import pedalboard as pb

    chain: list = []
    if stem != "bass" and rng.random() < 0.6:
        chain.append(pb.HighpassFilter(float(rng.uniform(40, 150 if stem != "drums" else 60))))
    if rng.random() < 0.75:
        chain.append(pb.LowShelfFilter(float(rng.uniform(80, 300)), float(rng.uniform(-4, 4))))
        chain.append(pb.PeakFilter(float(np.exp(rng.uniform(np.log(300), np.log(5000)))),
                                   float(rng.uniform(-5, 5)), float(rng.uniform(0.7, 2.0))))
        chain.append(pb.HighShelfFilter(float(rng.uniform(4000, 12000)), float(rng.uniform(-4, 5))))
    if rng.random() < {"vocals": 0.85, "drums": 0.6, "bass": 0.7}.get(stem, 0.35):
        chain.append(pb.Compressor(threshold_db=float(rng.uniform(-28, -10)), ratio=float(rng.uniform(2, 6)),
                                   attack_ms=float(rng.uniform(2, 25)), release_ms=float(rng.uniform(50, 250))))
    y = pb.Pedalboard(chain)(x, sample_rate) if chain else x.copy()
    sends = []
    if rng.random() < {"vocals": 0.8, "drums": 0.4, "bass": 0.1}.get(stem, 0.5):
        sends.append(pb.Reverb(room_size=float(rng.uniform(0.2, 0.85)), damping=float(rng.uniform(0.2, 0.8)),
                               wet_level=1.0, dry_level=0.0, width=float(rng.uniform(0.6, 1.0))))
    if stem == "vocals" and rng.random() < 0.3:
        sends.append(pb.Delay(delay_seconds=float(rng.uniform(0.12, 0.45)), feedback=float(rng.uniform(0.1, 0.45)),
                              mix=1.0))
    for send in sends:
        level = 10 ** (rng.uniform(-22, -10) / 20)
        y = y + level * pb.Pedalboard([send])(y, sample_rate)
    return np.asarray(y, dtype=np.float32)


# ------------------------------------------------------------------------ master bus


@numba.njit(cache=True)
def _smooth_gain(target: np.ndarray, attack: float, release: float) -> np.ndarray:
    """One-pole smoothing of a gain curve: falls with ``attack``, recovers with ``release``
    (coefficients per sample, 0..1)."""
    out = np.empty_like(target)
    g = 1.0
    for i in range(target.shape[0]):
        t = target[i]
        coeff = attack if t < g else release
        g = g + coeff * (t - g)
        out[i] = g
    return out


def _coeff(ms: float, sample_rate: int) -> float:
    return 1.0 - float(np.exp(-1.0 / max(ms * 1e-3 * sample_rate, 1.0)))


def _moving_mean(x: np.ndarray, win: int) -> np.ndarray:
    """``np.convolve(x, np.ones(win) / win, mode="same")`` through a running sum: O(n), not O(n * win)."""
    ahead = (win - 1) // 2
    total = np.cumsum(np.concatenate([np.zeros(win - ahead), x, np.zeros(ahead)]))
    return (total[win:] - total[:-win]) / win


def compressor_gain(mix: np.ndarray, sample_rate: int, threshold_db: float, ratio: float,
                    attack_ms: float, release_ms: float) -> np.ndarray:
    """The gain ``(samples,)`` a feed-forward RMS compressor would apply to ``mix`` ``(C, T)``."""
    power = np.mean(np.asarray(mix, dtype=np.float64) ** 2, axis=0)
    win = max(int(0.01 * sample_rate), 1)  # 10 ms RMS detector
    level_db = 10 * np.log10(_moving_mean(power, win) + 1e-12)
    over = np.maximum(level_db - threshold_db, 0.0)
    target = 10 ** (-over * (1 - 1 / ratio) / 20)
    return _smooth_gain(target, _coeff(attack_ms, sample_rate), _coeff(release_ms, sample_rate))


def limiter_gain(mix: np.ndarray, sample_rate: int, ceiling: float, release_ms: float = 60.0,
                 lookahead_ms: float = 1.5) -> np.ndarray:
    """The gain ``(samples,)`` of a look-ahead peak limiter holding ``mix`` under ``ceiling``."""
    from scipy.ndimage import maximum_filter1d

    peak = np.max(np.abs(np.asarray(mix, dtype=np.float64)), axis=0)
    look = max(int(lookahead_ms * 1e-3 * sample_rate), 1)
    peak = maximum_filter1d(peak, size=2 * look + 1, mode="nearest")
    target = np.minimum(1.0, ceiling / np.maximum(peak, 1e-12))
    gain = _smooth_gain(target, 1.0, _coeff(release_ms, sample_rate))
    return np.minimum(gain, target)  # the smoothed curve never lets a peak through


def clipper_gain(mix: np.ndarray, drive: float) -> np.ndarray:
    """The gain ``(C, samples)`` that turns ``mix`` into ``tanh(drive * mix) / drive``: a soft
    clipper written as a per-sample gain, so every stem carries its share of the distortion."""
    x = np.asarray(mix, dtype=np.float64)
    safe = np.where(np.abs(x) < 1e-9, 1e-9, x)
    return np.tanh(drive * safe) / (drive * safe)


def set_width(stems: np.ndarray, factor: float) -> np.ndarray:
    """Scale the side signal of every stem ``(S, 2, T)`` by ``factor`` (the same linear map for
    all, so the sum is mapped alike)."""
    mid = (stems[:, 0] + stems[:, 1]) / 2
    side = (stems[:, 0] - stems[:, 1]) / 2 * factor
    return np.stack([mid + side, mid - side], axis=1).astype(np.float32)


@dataclass(frozen=True)
class MasterSettings:
    """One drawn master: target width and loudness, glue compressor, limiter and clipper."""

    width: float
    rms_dbfs: float
    glue_threshold_db: float
    glue_ratio: float
    clip_drive: float  # 0: no clipper

    @classmethod
    def draw(cls, rng: np.random.Generator) -> "MasterSettings":
        return cls(
            width=float(rng.uniform(*RELEASED_WIDTH)),
            rms_dbfs=float(rng.uniform(*RELEASED_RMS_DBFS)),
            glue_threshold_db=float(rng.uniform(-12, -4)),
            glue_ratio=float(rng.uniform(1.3, 3.0)),
            clip_drive=float(rng.uniform(1.0, 2.5)) if rng.random() < 0.2 else 0.0,
        )


def master(stems: np.ndarray, sample_rate: int, settings: MasterSettings) -> np.ndarray:
    """Master ``stems`` ``(S, 2, T)`` like a released record; returns the mastered stems, whose
    sum is the mastered mixture (exactly, up to float32 rounding).

    Order: width (towards ``settings.width``, at most x2.5 wider or narrower), glue compression
    (relative to the mix's own RMS), a loudness gain to ``settings.rms_dbfs``, an optional soft
    clipper, and a limiter at -0.3 dBFS.
    """
    x = np.asarray(stems, dtype=np.float32)
    if x.ndim != 3 or x.shape[1] != 2:
        raise bad_value("stems.shape", x.shape, "(stems, 2, samples)")
    mix = x.sum(axis=0)
    now = measure(mix).width
    if now > 1e-3:
        x = set_width(x, float(np.clip(settings.width / now, 0.4, 2.5)))
        mix = x.sum(axis=0)
    rms_db = measure(mix).rms_dbfs
    g = compressor_gain(mix, sample_rate, rms_db + settings.glue_threshold_db + 12, settings.glue_ratio,
                        attack_ms=10.0, release_ms=120.0)
    x = x * g.astype(np.float32)
    mix = x.sum(axis=0)
    loud = 10 ** ((settings.rms_dbfs - measure(mix).rms_dbfs) / 20)
    x = x * np.float32(loud)
    mix = mix * np.float32(loud)
    if settings.clip_drive > 0:
        x = x * clipper_gain(mix, settings.clip_drive).astype(np.float32)
        mix = x.sum(axis=0)
    ceiling = 10 ** (-0.3 / 20)
    x = x * limiter_gain(mix, sample_rate, ceiling).astype(np.float32)
    return np.ascontiguousarray(x, dtype=np.float32)
