"""int8 (dynamic, static) and fp16 graphs: they run, keep the metadata, and stay within
0.5 dB SI-SDRi of the fp32 graph on held-out synthetic excerpts: songs rendered here with the
test set's seed (music the model separates, so the comparison means something; the toy
songs of ``stemstream.export.parity`` it does not). The calibration songs are rendered here too, with the
validation set's seed: the test never reads ``data/``, so it does the same on every machine."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxconverter_common", reason="fp16 conversion is optional: pip install stemstream[data]")

from stemstream.export.data.synth import render_dataset  # noqa: E402
from stemstream.export.onnx_export import check_no_complex_ops, export_onnx, op_counts, read_metadata  # noqa: E402
from stemstream.export.parity import separate, synthetic_song  # noqa: E402
from stemstream.export.quantise import (  # noqa: E402
    calibration_audio,
    convert_fp16,
    make_precision,
    quantise_dynamic,
    quantise_static,
)
from stemstream.realtime.backends.onnx_backend import open_onnx_file  # noqa: E402
from stemstream.realtime.stems import STEMS  # noqa: E402
from test_export_onnx import live_module  # noqa: E402

torch.set_num_threads(1)
logging.getLogger().setLevel(logging.ERROR)  # the quantiser logs advice at WARNING

SECONDS = 3.0
#: The seeds of ``data/synth``'s test and validation splits (composer version 1).
TEST_SEED, VALID_SEED = 3000, 2000


def render_split(workdir: Path, seed: int, songs: int) -> Path:
    """``songs`` 10 s songs rendered from a split's ``seed`` into ``workdir``."""
    render_dataset(workdir, songs=songs, seconds=10, seed=seed, workers=1, generator_version=1)
    return workdir


def held_out_excerpts(sample_rate: int, workdir: Path, count: int = 2) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(name, mixture (C, T), stems (S, C, T))``: synthetic test songs, rendered into
    ``workdir``, with every stem audible in the excerpt."""
    import soundfile as sf

    root = render_split(workdir / "test", seed=TEST_SEED, songs=6)
    out = []
    for song in sorted(p for p in root.iterdir() if p.is_dir()):
        files = [song / f"{s}.wav" for s in STEMS]
        if not all(f.is_file() for f in files):
            continue
        info = sf.info(str(files[0]))
        n = int(SECONDS * info.samplerate)
        if info.samplerate != sample_rate or info.frames < 3 * n:
            continue
        start = info.frames // 2 - n // 2
        stems = np.stack([sf.read(str(f), start=start, frames=n, dtype="float32", always_2d=True)[0].T for f in files])
        if (np.sqrt(np.mean(stems**2, axis=(1, 2))) < 1e-3).any():
            continue
        out.append((song.name, stems.sum(0), stems))
        if len(out) == count:
            return out
    raise AssertionError(f"fewer than {count} songs in {root} with every stem audible")


def mean_si_sdri(model, excerpts) -> tuple[float, np.ndarray]:
    from stemstream.export.evaluation.metrics import si_sdr_improvement_stems

    per_stem = np.mean([si_sdr_improvement_stems(separate(model, mix), stems, mix) for _, mix, stems in excerpts], axis=0)
    return float(per_stem.mean()), per_stem


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    root = tmp_path_factory.mktemp("quant")
    module = live_module()
    fp32 = root / "live.onnx"
    export_onnx(module, fp32, "live")
    made = {"fp32": fp32}
    made["int8-dynamic"] = root / "int8d.onnx"
    quantise_dynamic(fp32, made["int8-dynamic"])
    made["int8-static"] = root / "int8s.onnx"
    calibration = render_split(root / "valid", seed=VALID_SEED, songs=3)
    quantise_static(fp32, made["int8-static"], clips=calibration_audio(44100, 2, synth_dir=calibration), max_feeds=24)
    made["fp16"] = root / "fp16.onnx"
    convert_fp16(fp32, made["fp16"])
    return made


@pytest.mark.parametrize("variant", ["int8-dynamic", "int8-static", "fp16"])
def test_reduced_precision_runs_and_keeps_metadata(graphs, variant) -> None:
    meta32 = read_metadata(graphs["fp32"])
    meta = read_metadata(graphs[variant])
    assert meta["precision"] == variant.split("-")[0]
    assert meta32["precision"] == "fp32"
    assert meta | {"precision": "fp32"} == meta32 | {"quantisation": meta["quantisation"]}
    check_no_complex_ops(graphs[variant])
    ops = op_counts(graphs[variant])
    if variant == "int8-dynamic":
        assert ops.get("DynamicQuantizeLSTM", 0) + ops.get("MatMulInteger", 0) + ops.get("DynamicQuantizeLinear", 0) > 0
    elif variant == "int8-static":
        assert ops.get("QuantizeLinear", 0) > 0 and ops.get("DequantizeLinear", 0) > 0
    else:
        assert ops.get("Cast", 0) > 0
    model = open_onnx_file(graphs[variant])
    assert model.precision == meta["precision"]
    for spec in model.session.get_inputs() + model.session.get_outputs():
        assert spec.type == "tensor(float)", f"{spec.name} is {spec.type}"
    audio = synthetic_song(0.5, 44100, 2, seed=9)[0]
    out = separate(model, audio)
    assert out.shape == (4,) + audio.shape and np.isfinite(out).all()
    ref = separate(open_onnx_file(graphs["fp32"]), audio)
    assert np.abs(out - ref).max() < 0.05  # reduced precision, not a different model


def test_reduced_precision_within_half_a_db_of_fp32(graphs, tmp_path) -> None:
    excerpts = held_out_excerpts(44100, tmp_path)
    base, base_stems = mean_si_sdri(open_onnx_file(graphs["fp32"]), excerpts)
    report = {}
    for variant in ("int8-dynamic", "int8-static", "fp16"):
        score, stems = mean_si_sdri(open_onnx_file(graphs[variant]), excerpts)
        report[variant] = (round(score - base, 3), np.round(stems - base_stems, 3).tolist())
    names = [n for n, _, _ in excerpts]
    assert all(abs(d) <= 0.5 for d, _ in report.values()), f"fp32 {base:.2f} dB on {names}; deltas {report}"


def test_make_precision_rejects_unknown(tmp_path, graphs) -> None:
    from stemstream.realtime.errors import ConfigError

    with pytest.raises(ConfigError, match="precision='int4'"):
        make_precision(graphs["fp32"], tmp_path / "x.onnx", "int4")
    with pytest.raises(ConfigError, match="int8_mode='qat'"):
        make_precision(graphs["fp32"], tmp_path / "x.onnx", "int8", int8_mode="qat")
