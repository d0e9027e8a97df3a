"""Separation quality metrics: SI-SDR, SI-SDR improvement (the seeds' definition) and SDR.

SI-SDR follows the thesis (Postolache, Sec. 4.5.2, after Le Roux et al. 2019) with its
``eps = 1e-8`` kept inside both the projection and the ratio::

    alpha  = (<x, x_hat> + eps) / (||x||^2 + eps)
    SI-SDR = 10 log10( (||alpha x||^2 + eps) / (||alpha x - x_hat||^2 + eps) )

where ``x`` is the reference (true stem) and ``x_hat`` the estimate. The improvement is
``SI-SDR(x, x_hat) - SI-SDR(x, y)`` with ``y`` the mixture.

Stereo: every function reduces over the **last axis only**, so ``(..., T)`` arrays give one
value per leading index. For ``(stems, channels, T)`` blocks use the ``*_stems`` helpers, which
**flatten the channels of each stem into one signal** (``(S, C*T)``): one scale ``alpha`` per
stem, energies summed over channels. All arithmetic is float64.
"""

from __future__ import annotations

import numpy as np

from stemstream.realtime.errors import bad_value

#: The seeds' epsilon (thesis Sec. 4.5.2).
SI_SDR_EPS: float = 1e-8

#: Distortion filter length of BSS Eval (taps), as in museval v4 / fast_bss_eval's default.
SDR_FILTER_LENGTH: int = 512


def _pair(estimate: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    est = np.asarray(estimate, dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64)
    if est.shape != ref.shape:
        raise bad_value("estimate.shape", est.shape, f"the reference's shape {ref.shape}")
    if est.ndim == 0 or est.shape[-1] == 0:
        raise bad_value("estimate.shape", est.shape, "(..., T) with T >= 1 samples")
    return est, ref


def si_sdr(estimate: np.ndarray, reference: np.ndarray, eps: float = SI_SDR_EPS) -> np.ndarray:
    """Scale-invariant SDR in dB, reduced over the last axis.

    Args:
        estimate: ``(..., T)`` separated signal.
        reference: ``(..., T)`` true signal, same shape.
        eps: the seeds' regulariser (1e-8). With a silent reference and a silent estimate
            the result is exactly 0 dB; with a silent reference and a non-silent estimate it
            is ``-10 log10((||x_hat||^2 + eps) / eps)`` (very negative).

    Returns:
        ``(...)`` float64 array of dB values (a 0-d array for 1-D input). Channels are not
        averaged: pass ``(S, C*T)`` (see :func:`si_sdr_stems`) to score stereo stems as one
        signal each.
    """
    est, ref = _pair(estimate, reference)
    dot = np.sum(ref * est, axis=-1, keepdims=True)
    ref_energy = np.sum(ref * ref, axis=-1, keepdims=True)
    alpha = (dot + eps) / (ref_energy + eps)
    target = alpha * ref
    num = np.sum(target * target, axis=-1) + eps
    den = np.sum((target - est) ** 2, axis=-1) + eps
    return 10.0 * np.log10(num / den)


def si_sdr_improvement(
    estimate: np.ndarray, reference: np.ndarray, mixture: np.ndarray, eps: float = SI_SDR_EPS
) -> np.ndarray:
    """SI-SDR improvement over the mixture, in dB: ``si_sdr(est, ref) - si_sdr(mix, ref)``.

    Args:
        estimate, reference: ``(..., T)``.
        mixture: ``(..., T)`` of the same shape, or a shape that broadcasts to it (e.g. the
            mixture ``(C*T,)`` against stems ``(S, C*T)``). Passing the mixture as the
            estimate gives exactly 0.
    """
    est, ref = _pair(estimate, reference)
    mix = np.broadcast_to(np.asarray(mixture, dtype=np.float64), ref.shape)
    return si_sdr(est, ref, eps) - si_sdr(mix, ref, eps)


def _flatten_stems(block: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(block, dtype=np.float64)
    if arr.ndim != 3:
        raise bad_value(f"{name}.shape", arr.shape, "(stems, channels, samples)")
    return arr.reshape(arr.shape[0], -1)


def si_sdr_stems(
    estimate: np.ndarray, reference: np.ndarray, eps: float = SI_SDR_EPS
) -> np.ndarray:
    """SI-SDR per stem of ``(S, C, T)`` blocks, channels flattened per stem. Returns ``(S,)``."""
    return si_sdr(_flatten_stems(estimate, "estimate"), _flatten_stems(reference, "reference"), eps)


def si_sdr_improvement_stems(
    estimate: np.ndarray, reference: np.ndarray, mixture: np.ndarray, eps: float = SI_SDR_EPS
) -> np.ndarray:
    """SI-SDRi per stem of ``(S, C, T)`` blocks against a ``(C, T)`` mixture. Returns ``(S,)``."""
    mix = np.asarray(mixture, dtype=np.float64)
    if mix.ndim != 2:
        raise bad_value("mixture.shape", mix.shape, "(channels, samples)")
    return si_sdr_improvement(
        _flatten_stems(estimate, "estimate"), _flatten_stems(reference, "reference"),
        mix.reshape(-1), eps,
    )


def sdr(
    estimate: np.ndarray,
    reference: np.ndarray,
    filter_length: int = SDR_FILTER_LENGTH,
    clamp_db: float = 100.0,
) -> np.ndarray:
    """BSS Eval SDR per stem, in dB, through ``fast_bss_eval`` (BSS Eval v4 style).

    v4 style: one time-invariant distortion filter of ``filter_length`` taps per stem (the
    estimate may be the reference filtered by it without penalty); no permutation search
    (each estimate is scored against its own reference only, so the other stems do not
    enter the SDR, as in ``bss_eval``'s SDR). Differences from museval's v4 ``images``
    mode: channels are flattened per stem (laid end to end with ``filter_length`` zeros
    between them, so one filter is shared by all channels without reaching across them, and
    energies are summed over channels) and each block is scored whole rather than in 1 s
    frames with a median.

    Args:
        estimate: ``(stems, channels, samples)``.
        reference: ``(stems, channels, samples)``, same shape; ``samples`` must exceed
            ``filter_length``.
        filter_length: distortion filter taps (512 as museval).
        clamp_db: results are clamped to ``[-clamp_db, clamp_db]`` (a perfect estimate would
            otherwise be +inf, which ``fast_bss_eval`` cannot handle).

    Returns:
        ``(stems,)`` float64 dB.
    """
    import fast_bss_eval as fbe  # a core dependency, imported here to keep imports light
    est = np.asarray(estimate, dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64)
    if est.ndim != 3 or est.shape != ref.shape:
        raise bad_value("estimate.shape", est.shape, f"(stems, channels, samples) = the reference's {ref.shape}")
    if not clamp_db > 0:
        raise bad_value("clamp_db", clamp_db, "a positive number of dB")
    if filter_length < 1 or est.shape[-1] <= filter_length:
        raise bad_value("samples", est.shape[-1], f"more than filter_length={filter_length}")
    # channels side by side with filter_length zeros between them: one filter per stem that
    # cannot reach across channels, energies summed over channels
    gap = ((0, 0), (0, 0), (0, filter_length))
    est = np.pad(est, gap).reshape(est.shape[0], -1)
    ref = np.pad(ref, gap).reshape(ref.shape[0], -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        values = fbe.sdr(
            ref[:, None, :], est[:, None, :], filter_length=filter_length, clamp_db=clamp_db,
            load_diag=1e-10,
        )
    return np.asarray(values, dtype=np.float64).reshape(est.shape[0])
