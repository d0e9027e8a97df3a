"""Reduced-precision graphs: int8 (ONNX Runtime quantisation, dynamic or static) and fp16.

* Dynamic int8 (:func:`quantise_dynamic`): weights of ``MatMul`` / ``Gemm`` / ``LSTM`` to
  int8, activations quantised on the fly per call. No calibration data needed.
* Static int8 (:func:`quantise_static`): Q/DQ graph, uint8 activations and int8 weights
  per tensor (per-channel Q/DQ ran 4x slower than fp32 on ONNX Runtime's CPU provider
  here), activation ranges calibrated by streaming synthetic audio (noise, synthetic
  music, and excerpts of ``data/synth/valid`` when present) through the fp32 graph, so
  state inputs see realistic values too. LSTMs stay fp32 (ONNX Runtime quantises them
  only dynamically).
* fp16 (:func:`convert_fp16`): ``onnxconverter-common``'s converter with graph inputs and
  outputs kept float32; ``LSTM`` (recurrent state) and the spectral magnitude path
  (``Pow``/``Sqrt``/``Log``: squared DFT magnitudes overflow fp16) stay fp32.

The STFT / inverse-STFT convolutions are never quantised to int8: 8-bit audio and DFT
weights would cap the output SNR near 40 dB. Every output graph keeps the stemstream
metadata with ``precision`` updated (``int8`` / ``fp16``) and a ``quantisation`` note.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from stemstream.export.onnx_export import read_metadata, set_metadata
from stemstream.realtime.backends.onnx_backend import OnnxHopModel
from stemstream.realtime.backends.onnx_graph import AUDIO_INPUT, STATE_PREFIX
from stemstream.realtime.errors import require

#: Ops whose weights dynamic int8 quantisation converts.
DYNAMIC_OPS: tuple[str, ...] = ("MatMul", "Gemm", "LSTM")
#: Ops static int8 quantisation converts (Q/DQ).
STATIC_OPS: tuple[str, ...] = ("MatMul", "Gemm")
#: Synthetic validation songs used for calibration when present (DATA's layout).
DEFAULT_CALIBRATION_DIR = Path(__file__).resolve().parent.parent / "data" / "synth" / "valid"
#: Ops kept float32 in fp16 graphs.
FP16_BLOCKED_OPS: tuple[str, ...] = ("LSTM", "Pow", "Sqrt", "Log")


@contextlib.contextmanager
def _quiet_quantiser() -> Iterator[None]:
    """Silence the quantiser's generic pre-processing advice (logged on the root logger)."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _finish(dst: Path, src_meta: dict[str, Any], precision: str, note: str) -> dict[str, Any]:
    onnx = require("onnx", "data")
    model = onnx.load(str(dst))
    meta = dict(src_meta, precision=precision, quantisation=note)
    set_metadata(model, meta)
    onnx.save(model, str(dst))
    return meta


def quantise_dynamic(src: str | Path, dst: str | Path) -> dict[str, Any]:
    """Dynamic int8 copy of the fp32 graph ``src`` at ``dst``; returns its metadata."""
    require("onnx", "data")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src_meta = read_metadata(src)
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with _quiet_quantiser():
        quantize_dynamic(
            str(src), str(dst), op_types_to_quantize=list(DYNAMIC_OPS), per_channel=False,
            weight_type=QuantType.QInt8,
        )
    return _finish(dst, src_meta, "int8", "dynamic: " + ",".join(DYNAMIC_OPS))


def calibration_audio(
    sample_rate: int,
    channels: int,
    *,
    seconds: float = 3.0,
    seed: int = 0,
    synth_dir: str | Path | None = DEFAULT_CALIBRATION_DIR,
    max_excerpts: int = 3,
) -> list[np.ndarray]:
    """Calibration signals ``(channels, samples)`` float32: white noise at two levels, two
    synthetic-music excerpts and up to ``max_excerpts`` mixtures from ``synth_dir``."""
    from stemstream.export.parity import synthetic_music

    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    clips = [
        (0.3 * rng.standard_normal((channels, n))).astype(np.float32),
        (0.03 * rng.standard_normal((channels, n))).astype(np.float32),
        synthetic_music(seconds, sample_rate, channels, seed=seed),
        synthetic_music(seconds, sample_rate, channels, seed=seed + 1),
    ]
    clips += synth_excerpts(synth_dir, sample_rate, channels, seconds, max_excerpts, seed)
    return clips


def synth_excerpts(
    synth_dir: str | Path | None, sample_rate: int, channels: int, seconds: float, count: int, seed: int
) -> list[np.ndarray]:
    """Up to ``count`` excerpts ``(channels, seconds * sample_rate)`` of ``<dir>/<song>/mixture.wav``
    (DATA's synthetic layout), taken from the middle of each song; ``[]`` if the folder is absent."""
    if synth_dir is None or not Path(synth_dir).is_dir():
        return []
    import soundfile as sf

    out = []
    songs = sorted(p for p in Path(synth_dir).iterdir() if (p / "mixture.wav").is_file())
    rng = np.random.default_rng(seed)
    for song in songs[:count]:
        audio, sr = sf.read(str(song / "mixture.wav"), dtype="float32", always_2d=True)
        audio = audio.T
        if sr != sample_rate:
            import soxr

            audio = soxr.resample(audio.T, sr, sample_rate).T.astype(np.float32)
        if audio.shape[0] == 1 and channels == 2:
            audio = np.repeat(audio, 2, axis=0)
        n = int(seconds * sample_rate)
        if audio.shape[0] != channels or audio.shape[1] < n:
            continue
        start = int(rng.integers(0, audio.shape[1] - n + 1))
        out.append(np.ascontiguousarray(audio[:, start : start + n]))
    return out


class _StreamingCalibrationReader:
    """Feeds for ONNX Runtime calibration: each clip streamed through the fp32 graph, one feed
    per chunk of hops with the state the stream had at that point (at most ``max_feeds``)."""

    def __init__(self, fp32_path: Path, clips: Sequence[np.ndarray], max_feeds: int) -> None:
        model = OnnxHopModel(fp32_path)
        hop = model.hop_samples
        chunk = hop * (16 if model.dynamic_hops else 1)
        feeds: list[dict[str, np.ndarray]] = []
        for clip in clips:
            state = model.init_state()
            usable = clip.shape[1] - clip.shape[1] % chunk
            for start in range(0, usable, chunk):
                piece = np.ascontiguousarray(clip[:, start : start + chunk])
                feed = {AUDIO_INPUT: piece[None]} | {STATE_PREFIX + k: v for k, v in state.items()}
                feeds.append(feed)
                _, state = model.process_hops(piece, state)
        step = max(1, len(feeds) // max_feeds)
        self._feeds: Iterator[dict[str, np.ndarray]] = iter(feeds[::step][:max_feeds])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)

    def rewind(self) -> None:  # pragma: no cover - part of the reader protocol
        pass


def quantise_static(
    src: str | Path,
    dst: str | Path,
    clips: Sequence[np.ndarray] | None = None,
    *,
    max_feeds: int = 64,
) -> dict[str, Any]:
    """Static (Q/DQ) int8 copy of the fp32 graph ``src`` at ``dst``; returns its metadata.

    ``clips``: calibration audio ``(channels, samples)`` (default :func:`calibration_audio`).
    """
    require("onnx", "data")
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    src_meta = read_metadata(src)
    if clips is None:
        clips = calibration_audio(src_meta["sample_rate"], src_meta["channels"])
    base = _StreamingCalibrationReader(Path(src), clips, max_feeds)

    class Reader(CalibrationDataReader):  # the quantiser checks the base class
        def get_next(self) -> dict[str, np.ndarray] | None:
            return base.get_next()

    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with _quiet_quantiser():
        quantize_static(
            str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(STATIC_OPS), per_channel=False,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
        )
    return _finish(dst, src_meta, "int8", "static QDQ: " + ",".join(STATIC_OPS))


def convert_fp16(src: str | Path, dst: str | Path) -> dict[str, Any]:
    """fp16 copy of the fp32 graph ``src`` at ``dst`` (inputs/outputs stay float32)."""
    onnx = require("onnx", "data")
    float16 = require("onnxconverter_common.float16", "data")
    src_meta = read_metadata(src)
    model = onnx.load(str(src))
    blocked = list(float16.DEFAULT_OP_BLOCK_LIST) + list(FP16_BLOCKED_OPS)
    with warnings.catch_warnings():  # it warns for every DFT weight below fp16's 1e-7 floor
        warnings.simplefilter("ignore")
        model16 = float16.convert_float_to_float16(model, keep_io_types=True, op_block_list=blocked)
    _fix_casts_to_float(model16)
    _keep_outputs_float(model16, {o.name for o in model.graph.output})
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model16, str(dst))
    return _finish(dst, src_meta, "fp16", "fp16, fp32 kept for " + ",".join(FP16_BLOCKED_OPS))


def _fix_casts_to_float(model: Any) -> None:
    """Retarget ``Cast(to=float)`` nodes whose output the converter retyped to fp16 (e.g. an
    integer shape cast to float feeding an fp16 ``Div``): the converter leaves ``to`` at float."""
    onnx = require("onnx", "data")
    fp16_values = {
        v.name for v in model.graph.value_info if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    }
    for node in model.graph.node:
        if node.op_type == "Cast" and node.output[0] in fp16_values:
            for attr in node.attribute:
                if attr.name == "to" and attr.i == onnx.TensorProto.FLOAT:
                    attr.i = onnx.TensorProto.FLOAT16


def _keep_outputs_float(model: Any, names: set[str]) -> None:
    """Make graph outputs ``names`` float32 again where the converter left them fp16 (outputs of
    blocked ops such as the LSTM state come out through a ``Cast(to=fp16)``): such a cast is
    retargeted to float32 (exact), any other producer gets a ``Cast`` to float32 appended."""
    onnx = require("onnx", "data")
    from onnx import helper

    producers = {o: n for n in model.graph.node for o in n.output}
    for out in model.graph.output:
        if out.name not in names or out.type.tensor_type.elem_type != onnx.TensorProto.FLOAT16:
            continue
        node = producers[out.name]
        if node.op_type == "Cast":
            for attr in node.attribute:
                if attr.name == "to":
                    attr.i = onnx.TensorProto.FLOAT
        else:
            inner = out.name + "_fp16"
            node.output[list(node.output).index(out.name)] = inner
            model.graph.node.append(helper.make_node("Cast", [inner], [out.name], to=onnx.TensorProto.FLOAT))
        out.type.tensor_type.elem_type = onnx.TensorProto.FLOAT


def make_precision(src: str | Path, dst: str | Path, precision: str, int8_mode: str = "dynamic") -> dict[str, Any]:
    """``precision`` (``fp16`` / ``int8``) copy of fp32 graph ``src``; ``int8_mode``:
    ``dynamic`` or ``static``."""
    from stemstream.realtime.errors import bad_value

    if precision == "fp16":
        return convert_fp16(src, dst)
    if precision == "int8":
        if int8_mode == "dynamic":
            return quantise_dynamic(src, dst)
        if int8_mode == "static":
            return quantise_static(src, dst)
        raise bad_value("int8_mode", int8_mode, "'dynamic' or 'static'")
    raise bad_value("precision", precision, "'fp16' or 'int8'")


__all__ = [
    "DYNAMIC_OPS",
    "FP16_BLOCKED_OPS",
    "STATIC_OPS",
    "calibration_audio",
    "convert_fp16",
    "make_precision",
    "quantise_dynamic",
    "quantise_static",
    "synth_excerpts",
]
