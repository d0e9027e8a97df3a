"""Long-window post-filters over a hop model's stems: ``MODEL+wiener`` and ``MODEL+mask``.

A low-latency separator sees the music through short windows (``dj-live``: a few ms), so its
stems smear what a long window resolves: the harmonics of a voice and of the bass, and where each
instrument sits between the speakers. Both stages take the model's stems and the mixture through a
long STFT (``window`` samples, hop ``window / 4``, square-root Hann analysis and synthesis windows).

``+mask`` re-masks the *mixture* with each stem's share of the magnitudes, bin by bin and channel
by channel (the soft-mask generalised Wiener filter, magnitude exponent 1)::

    mask_k = |S_k| / sum_j |S_j|        Y_k = mask_k * MIX

``+wiener`` (stereo) goes on from the masked stems ``Y_k`` to the multichannel Wiener filter:
each stem's stereo image in each bin, ``R_k`` (its 2x2 spatial covariance, normalised by its
power), is followed through the song by an exponential average over frames, and the mixture's
two channels are filtered jointly::

    v_k = RMS over channels of |Y_k|          (magnitude, as in +mask)
    R_k = EMA over frames of Y_k Y_k^H / EMA of power, shrunk towards I while few frames are in
    out_k = v_k R_k (sum_j v_j R_j)^-1 MIX

so that a voice in the centre and a guitar on the left share a bin by where they sit as well as
by how loud they are. The average forgets with ``SPATIAL_DECAY`` per frame (about 4.6 s at 44.1
kHz and the default window) and starts from the identity, worth ``SPATIAL_PRIOR_FRAMES`` frames,
so a song's first frames, and the first after a long silence, are filtered like ``+mask`` (with
``R_k = I`` the filter is the mask of the channel-mean magnitudes). Mono input, or more than two
channels, gets ``+mask``. On our
held-out validation ``dj-live+wiener`` reads 7.54 dB against 7.41 for ``+mask``
(``docs/results.md``).

Both keep the sum: what the filter leaves over in a bin (rounding, or a bin where every stem is
silent) goes to the stems by their shares, so the stems sum to the (delayed) input exactly. Each
frame uses only that frame and the ones before it, so the stages stream: they add ``window -
window / 4`` samples of latency (at 44.1 kHz: 2048 -> 35 ms, 4096 -> 70 ms, 8192 -> 139 ms),
which suits files and offline crates rather than live monitoring.

``wiener(model, spec)`` is an ordinary hop model to the engine (``stemstream separate``, ``eval``,
``bench peers``, ``live``): its hop is ``window / 4`` and its latency the model's plus the stage's.
Registry names: ``dj-live+wiener`` (the default window, :data:`DEFAULT_WINDOW`),
``dj-live+wiener2048``, ``dj-live+mask``, ``dj-live+mask4096``. The FFTs run on the engine's
worker with the model (numpy).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from stemstream.realtime.errors import bad_value
from stemstream.realtime.protocol import ModelInfo, State, StreamModel

#: Window of a post-filter without a number, in model samples (186 ms at 44.1 kHz).
DEFAULT_WINDOW = 8192
#: Windows accepted: powers of two in this range, in model samples.
WINDOW_RANGE = (256, 65536)
#: Largest number of the stage's hops per call (each hop is ``window / 4`` samples).
MAX_HOPS_PER_CALL = 16
#: Registry suffix of the multichannel Wiener filter (what ``separate`` runs by default).
SUFFIX = "+wiener"
#: Registry suffix of the per-channel ratio mask.
MASK_SUFFIX = "+mask"
#: Both, as names take them.
SUFFIXES = (SUFFIX, MASK_SUFFIX)
#: Per-frame decay of ``+wiener``'s running spatial covariances (memory of about 100 frames).
SPATIAL_DECAY = 0.99
#: Weight of the identity a stem's spatial covariance starts from, in frames.
SPATIAL_PRIOR_FRAMES = 10.0
#: Smallest ``det / (c11 c22)`` of a bin's mixture covariance that ``+wiener`` inverts; below it
#: (a bin where every stem is silent) the bin keeps the mask's stems.
MIN_RELATIVE_DET = 1e-4


@dataclass(frozen=True)
class PostFilter:
    """What a name's suffix asks for: ``suffix`` (one of :data:`SUFFIXES`) over ``window`` samples."""

    suffix: str
    window: int

    @property
    def spatial(self) -> bool:
        """Whether stereo input gets the multichannel Wiener filter (``+wiener``)."""
        return self.suffix == SUFFIX

    def label(self) -> str:
        """``+wiener8192``: the suffix with its window, as model names end."""
        return f"{self.suffix}{self.window}"


def split_name(name: Any) -> tuple[Any, PostFilter | None]:
    """``("dj-live", PostFilter("+wiener", 8192))`` for ``"dj-live+wiener"``, ``("dj-live",
    PostFilter("+mask", 2048))`` for ``"dj-live+mask2048"``, ``(name, None)`` for a name without a
    post-filter suffix (or not a string)."""
    if not isinstance(name, str):
        return name, None
    found = max(SUFFIXES, key=name.rfind)  # the suffix that comes last in the name
    base, sep, rest = name.rpartition(found)
    if not sep or not base:
        return name, None
    if rest and not rest.isdigit():
        raise bad_value("model", name, f"NAME{found} or NAME{found}WINDOW with WINDOW a power of two in samples, "
                        f"e.g. {base}{found}4096")
    return base, PostFilter(found, int(rest) if rest else DEFAULT_WINDOW)


def parse_post_filter(text: str) -> PostFilter:
    """A post-filter from its suffix without the ``+`` (``wiener``, ``mask4096``) or a bare window
    (``8192``: ``+wiener`` at that window), as options take it; else a one-line error."""
    word = str(text).strip().lstrip("+")
    if word.isdigit():
        return PostFilter(SUFFIX, int(word))
    for suffix in SUFFIXES:
        rest = word.removeprefix(suffix[1:])
        if rest != word and (rest == "" or rest.isdigit()):
            return PostFilter(suffix, int(rest) if rest else DEFAULT_WINDOW)
    raise bad_value("post-filter", text, "wiener, mask, or either followed by a window (wiener4096), or a window")


def check_window(window: int, model_hop: int) -> int:
    """``window`` if it is a power of two in :data:`WINDOW_RANGE` whose quarter is a whole
    number of the model's hops, else a one-line error."""
    lo, hi = WINDOW_RANGE
    ok = isinstance(window, int) and lo <= window <= hi and window & (window - 1) == 0
    if not ok or (window // 4) % model_hop:
        raise bad_value("post-filter window", window, f"a power of two in [{lo}, {hi}] samples, at least 4 x the "
                        f"model's hop ({model_hop})")
    return window


def added_delay(window: int) -> int:
    """Samples of delay the stage adds at ``window``: a frame's last three quarters wait for the
    frames after it."""
    return window - window // 4


class WienerHopModel:
    """``model``'s stems re-filtered over a ``window``-sample STFT: the multichannel Wiener filter
    when ``spatial`` and the input is stereo, else the ratio mask (see the module docstring)."""

    kind = "hop"

    def __init__(self, model: Any, window: int = DEFAULT_WINDOW, spatial: bool = True) -> None:
        spec = PostFilter(SUFFIX if spatial else MASK_SUFFIX, window)
        if getattr(model, "kind", "hop") != "hop":
            raise bad_value("model", model.info.name, f"a hop model ({spec.suffix} re-filters hop models' stems)")
        self.model = model
        self.window = check_window(window, model.hop_samples)
        self.spatial = bool(spatial) and model.info.channels == 2
        self.hop_samples: int = window // 4
        self.max_hops_per_call: int = MAX_HOPS_PER_CALL
        self.tail = added_delay(window)  # samples each frame shares with the past
        self.inner_latency = int(model.info.latency_samples)
        self.info: ModelInfo = replace(model.info, name=f"{model.info.name}{spec.label()}",
                                       latency_samples=self.inner_latency + self.tail)
        n = np.arange(window)
        hann = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / window)  # periodic: overlaps at a quarter sum to 2
        self._win = np.sqrt(hann).astype(np.float32)
        self._scale = np.float32(1.0 / hann[:: self.hop_samples].sum())
        self._inner_chunk = model.hop_samples * max(1, int(model.max_hops_per_call))

    def init_state(self) -> State:
        stems, channels = len(self.model.info.stems), self.model.info.channels
        state = {f"model.{k}": v for k, v in self.model.init_state().items()}
        state["mix"] = np.zeros((channels, self.tail + self.inner_latency), np.float32)
        state["stems"] = np.zeros((stems, channels, self.tail), np.float32)
        state["ola"] = np.zeros((stems, channels, self.tail), np.float32)
        if self.spatial:
            state.update(init_spatial(stems, self.window // 2 + 1))
        return state

    def process_hops(self, audio: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """``(channels, n * hop)`` -> stems ``(stems, channels, n * hop)``, delayed by ``info.latency_samples``."""
        n = audio.shape[1]
        inner = {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}
        pieces = []
        for start in range(0, n, self._inner_chunk):
            out, inner = self.model.process_hops(audio[:, start : start + self._inner_chunk], inner)
            pieces.append(out)
        est = np.concatenate([state["stems"], *pieces], axis=2)  # (stems, channels, tail + n)
        mix_all = np.concatenate([state["mix"], audio], axis=1)
        mix = mix_all[:, : self.tail + n]  # the input each stem sample separates (latency-aligned)
        frames = n // self.hop_samples
        new: State = {f"model.{k}": v for k, v in inner.items()}
        out = self._refilter(est, mix, frames, state, new)
        new["mix"] = mix_all[:, n:].copy()
        new["stems"] = est[:, :, n:].copy()
        new["ola"] = out[:, :, n:].copy()
        return out[:, :, :n] * self._scale, new

    def _refilter(self, est: np.ndarray, mix: np.ndarray, frames: int, state: State, new: State) -> np.ndarray:
        """Overlap-added re-filtered frames ``(stems, channels, tail + n)``, not yet scaled by the
        windows' overlap sum: the first ``n`` samples are final, the rest carry into the next call.
        The spatial covariances carried to the next call go into ``new``."""
        win, hop = self._win, self.hop_samples
        view = np.lib.stride_tricks.sliding_window_view
        est_f = np.fft.rfft(view(est, self.window, axis=2)[:, :, ::hop][:, :, :frames] * win, axis=-1)
        mix_f = np.fft.rfft(view(mix, self.window, axis=1)[:, ::hop][:, :frames] * win, axis=-1)
        mag = np.abs(est_f)
        eps = np.float32(1e-12)
        mask = (mag + eps / len(mag)) / (mag.sum(axis=0, keepdims=True) + eps)
        stems_f = mask * mix_f[None]
        if self.spatial:
            stems_f, cov = spatial_filter(stems_f, mix_f, mask, {k: state[k] for k in SPATIAL_KEYS})
            new.update(cov)
        frames_out = np.fft.irfft(stems_f, n=self.window, axis=-1).astype(np.float32) * win
        acc = np.zeros(est.shape, np.float32)
        acc[:, :, : self.tail] = state["ola"]
        for j in range(frames):
            acc[:, :, j * hop : j * hop + self.window] += frames_out[:, :, j]
        return acc


#: State keys of ``+wiener``'s running spatial covariances (per stem and bin): the averaged
#: ``|Y_L|^2``, ``|Y_R|^2``, ``Y_L conj(Y_R)`` (their channel mean is the averaged power), and the
#: frames averaged in which the stem sounded in that bin (silence does not count, so after a long
#: silence, between two songs, the images start again from the identity as at a song's start).
SPATIAL_KEYS = ("cov.ll", "cov.rr", "cov.lr", "cov.frames")


def init_spatial(stems: int, bins: int) -> State:
    """Fresh running covariances: nothing heard yet (each stem's image starts as the identity)."""
    zeros = np.zeros((stems, bins), np.float32)
    return {"cov.ll": zeros, "cov.rr": zeros.copy(), "cov.lr": np.zeros((stems, bins), np.complex64),
            "cov.frames": zeros.copy()}


def spatial_filter(stems_f: np.ndarray, mix_f: np.ndarray, mask: np.ndarray,
                   cov: State) -> tuple[np.ndarray, State]:
    """Stereo stems ``(K, 2, frames, bins)`` re-estimated by the multichannel Wiener filter from
    the masked stems ``stems_f``, the mixture ``mix_f`` ``(2, frames, bins)`` and the running
    covariances ``cov`` (:data:`SPATIAL_KEYS`), frame by frame; returns them and the covariances
    after the last frame. What a bin's filter leaves over goes to the stems by ``mask``, so the
    stems sum to the mixture."""
    ll, rr, lr, seen = (cov[k] for k in SPATIAL_KEYS)
    decay, prior = np.float32(SPATIAL_DECAY), np.float32(SPATIAL_PRIOR_FRAMES)
    out = np.empty_like(stems_f)
    for t in range(stems_f.shape[2]):
        left, right = stems_f[:, 0, t], stems_f[:, 1, t]  # (K, bins)
        p_l, p_r = left.real**2 + left.imag**2, right.real**2 + right.imag**2
        frame_power = 0.5 * (p_l + p_r)
        ll, rr, lr = decay * ll + p_l, decay * rr + p_r, decay * lr + left * np.conj(right)
        power = 0.5 * (ll + rr)  # the averaged channel-mean power
        seen = decay * seen + (frame_power > 0)
        heard = seen / (seen + prior)  # how far the image has left the identity
        gain = heard / (power + np.float32(1e-20))
        r_ll, r_rr, r_lr = gain * ll + (1 - heard), gain * rr + (1 - heard), gain * lr
        v = np.sqrt(frame_power)
        c_ll, c_rr, c_lr = (v * r_ll).sum(0), (v * r_rr).sum(0), (v * r_lr).sum(0)
        det = c_ll * c_rr - (c_lr.real**2 + c_lr.imag**2)
        ok = det > MIN_RELATIVE_DET * c_ll * c_rr
        inv_det = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
        x_l, x_r = mix_f[0, t], mix_f[1, t]
        z_l, z_r = (c_rr * x_l - c_lr * x_r) * inv_det, (c_ll * x_r - np.conj(c_lr) * x_l) * inv_det
        y_l = np.where(ok, v * (r_ll * z_l + r_lr * z_r), left)
        y_r = np.where(ok, v * (np.conj(r_lr) * z_l + r_rr * z_r), right)
        out[:, 0, t] = y_l + mask[:, 0, t] * (x_l - y_l.sum(0))
        out[:, 1, t] = y_r + mask[:, 1, t] * (x_r - y_r.sum(0))
    state = {"cov.ll": ll.astype(np.float32), "cov.rr": rr.astype(np.float32), "cov.lr": lr.astype(np.complex64),
             "cov.frames": seen.astype(np.float32)}
    return out, state


def wiener(model: StreamModel, spec: PostFilter | None) -> StreamModel:
    """``model`` followed by the post-filter ``spec`` (None: ``model`` itself)."""
    return model if spec is None else WienerHopModel(model, spec.window, spec.spatial)
