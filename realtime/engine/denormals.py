"""Denormal (subnormal) floats: flushed to zero on the threads that compute audio.

A float32 below 1.18e-38 in magnitude is *denormal*. Audio meets them at the end of every decay
(a reverb tail, a muted gain ramping down, a host feeding 1e-40 instead of 0), and many CPUs
compute with them through slow microcode: a model fed a constant 1e-40 can run tens of times
slower than on silence, and a live worker then misses its deadlines. Nothing audible lives
there (1e-30 is -600 dBFS), so stemstream flushes them, three ways:

* :func:`flush_denormals` sets the calling thread's flush-to-zero (FTZ) and denormals-are-zero
  (DAZ) modes (x86-64 ``MXCSR`` bits 15 and 6, through LLVM's ``stmxcsr`` / ``ldmxcsr``, a numba
  intrinsic): every SSE/AVX operation of that thread - numpy, soxr, ONNX Runtime and PyTorch
  kernels run on it - then reads and writes denormals as 0. The mode belongs to the thread (and
  threads it starts inherit it): the engine's worker sets it when it starts
  (``stemstream.realtime.engine.session``). Others set it too: ONNX Runtime on the thread that builds
  the process' first session, some LV2 plugins (dragonfly) on the thread that instantiates them.
* :func:`scoped_flush` / :func:`restore_flush` do the same inside numba code (an audio
  callback sets the mode on entry and restores the host thread's mode on exit).
* :func:`zero_tiny` zeroes samples with ``0 < |x| < TINY`` in place: exact for audio, and it
  keeps denormals out of what is computed on threads stemstream does not own.

ONNX Runtime's own threads get the same through its ``session.set_denormal_as_zero`` option
(``stemstream.realtime.backends.onnx_backend``). Elsewhere than x86-64 the mode cannot be set here
(:func:`flush_denormals` says so); :func:`zero_tiny` still applies.
"""

from __future__ import annotations

import platform
from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

#: Samples with a magnitude below this (and not 0) are zeroed by :func:`zero_tiny` (-600 dBFS).
TINY: float = 1e-30

#: ``MXCSR`` flush-to-zero (bit 15) and denormals-are-zero (bit 6).
FTZ_DAZ: int = 0x8040

#: Whether this CPU's flush mode can be set (x86-64 only).
SUPPORTED: bool = platform.machine().lower() in ("x86_64", "amd64")


def _mxcsr_call(builder: Any, name: str, slot: Any) -> None:
    i8p = ir.IntType(8).as_pointer()
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p]), name)
    builder.call(fn, [builder.bitcast(slot, i8p)])


@intrinsic
def _get_mxcsr(typingctx: Any) -> Any:
    """The calling thread's ``MXCSR`` register."""

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        slot = cgutils.alloca_once(builder, ir.IntType(32))
        _mxcsr_call(builder, "llvm.x86.sse.stmxcsr", slot)
        return builder.zext(builder.load(slot), ir.IntType(64))

    return types.int64(), codegen


@intrinsic
def _set_mxcsr(typingctx: Any, value: Any) -> Any:
    """Load ``value`` into the calling thread's ``MXCSR`` register."""
    if not isinstance(value, types.Integer):
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        slot = cgutils.alloca_once(builder, ir.IntType(32))
        builder.store(builder.trunc(args[0], ir.IntType(32)), slot)
        _mxcsr_call(builder, "llvm.x86.sse.ldmxcsr", slot)
        return context.get_dummy_value()

    return types.none(value), codegen


if SUPPORTED:

    @numba.njit(cache=True)
    def scoped_flush() -> int:
        """Turn FTZ and DAZ on for the calling thread (numba code); returns the previous mode
        for :func:`restore_flush`. A few instructions: cheap enough for every audio callback."""
        old = _get_mxcsr()
        _set_mxcsr(old | FTZ_DAZ)
        return old

    @numba.njit(cache=True)
    def restore_flush(old: int) -> None:
        """Put back the mode :func:`scoped_flush` returned."""
        _set_mxcsr(old)

    @numba.njit(cache=True)
    def _read_mode() -> int:
        return _get_mxcsr()

    @numba.njit(cache=True)
    def _write_mode(value: int) -> None:
        _set_mxcsr(value)

else:  # pragma: no cover - exercised on other CPUs only

    @numba.njit(cache=True)
    def scoped_flush() -> int:
        return 0

    @numba.njit(cache=True)
    def restore_flush(old: int) -> None:
        return None


def denormals_flushed() -> bool | None:
    """Whether the calling thread flushes denormals (FTZ and DAZ both on); ``None`` where this
    cannot be read (not x86-64)."""
    if not SUPPORTED:
        return None
    return (int(_read_mode()) & FTZ_DAZ) == FTZ_DAZ


def flush_denormals(on: bool = True) -> str:
    """Set (``on``) or clear flush-to-zero and denormals-are-zero for the calling thread only.

    Returns what applies now, for reports: ``"flush-to-zero"``, ``"off"`` (``on=False``), or
    ``"unsupported on <machine>"`` (then only :func:`zero_tiny` protects the thread)."""
    if not SUPPORTED:
        return f"unsupported on {platform.machine() or 'this CPU'}"
    mode = int(_read_mode())
    _write_mode((mode | FTZ_DAZ) if on else (mode & ~FTZ_DAZ))
    return "flush-to-zero" if on else "off"


@numba.njit(cache=True)
def zero_tiny(block: np.ndarray) -> int:
    """Zero every sample of float32 ``block`` (any shape, C-contiguous) with ``0 < |x| <``
    :data:`TINY`, in place; returns how many were zeroed. No allocation."""
    flat = block.reshape(-1)
    zeroed = 0
    for i in range(flat.size):
        v = flat[i]
        if v != 0.0 and abs(v) < TINY:
            flat[i] = 0.0
            zeroed += 1
    return zeroed


__all__ = ["FTZ_DAZ", "SUPPORTED", "TINY", "denormals_flushed", "flush_denormals", "restore_flush",
           "scoped_flush", "zero_tiny"]
