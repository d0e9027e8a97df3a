"""`stemstream export`: writes the graph, prints parity; bad input is one line, exit code 2.

The model is ``tiny_live_weights`` (tests/conftest.py): the CLI takes a .safetensors path as
model name, ``tiny-live`` here."""

from __future__ import annotations

import re

import pytest
import torch

from stemstream.bridge.cli.main import main
from stemstream.export.onnx_export import read_metadata
from stemstream.realtime.backends.tensorrt_backend import tensorrt_available

torch.set_num_threads(1)


def test_export_onnx_prints_parity(tmp_path, tiny_live_weights, capsys) -> None:
    out = tmp_path / "tiny.onnx"
    assert main(["export", "--model", str(tiny_live_weights), "--out", str(out), "--parity-seconds", "0.5"]) == 0
    text = capsys.readouterr().out
    assert read_metadata(out)["model_name"] == "tiny-live"
    diffs = [float(x) for x in re.findall(r"max abs diff (\S+)", text)]
    assert len(diffs) == 2 and max(diffs) <= 1e-4, text
    assert "no complex/STFT ops: ok" in text


def test_export_int8_one_hop(tmp_path, tiny_live_weights, capsys) -> None:
    out = tmp_path / "tiny-int8.onnx"
    args = ["export", "--model", str(tiny_live_weights), "--out", str(out), "--precision", "int8", "--hops", "one",
            "--no-parity"]
    assert main(args) == 0
    meta = read_metadata(out)
    assert meta["precision"] == "int8" and meta["dynamic_hops"] is False
    assert "parity" not in capsys.readouterr().out


@pytest.mark.skipif(tensorrt_available(), reason="tensorrt present: the build would run")
def test_export_tensorrt_without_gpu_names_extra(tmp_path, tiny_live_weights, capsys) -> None:
    code = main(["export", "--model", str(tiny_live_weights), "--format", "tensorrt",
                 "--out", str(tmp_path / "x.plan")])
    err = capsys.readouterr().err
    assert code == 2 and "stemstream[gpu]" in err and err.count("\n") == 1


def test_bad_arguments_are_one_line(tmp_path, tiny_live_weights, capsys) -> None:
    assert main(["export", "--model", "nope", "--out", str(tmp_path / "x.onnx")]) == 2
    assert "model='nope'" in capsys.readouterr().err
    assert main(["export", "--model", str(tiny_live_weights), "--precision", "int4", "--out", "x.onnx"]) == 2
    assert main(["export", "--model", str(tiny_live_weights), "--out", str(tmp_path)]) == 2
    assert "--out=" in capsys.readouterr().err


def test_bench_backends_writes_json_and_markdown(tmp_path, tiny_live_weights, capsys) -> None:
    import json

    args = ["bench", "backends", "--models", str(tiny_live_weights), "--hops", "20", "--warmup", "2", "--rounds", "2",
            "--block-hops", "8", "--out", str(tmp_path)]
    assert main(args) == 0
    report = json.loads((tmp_path / "backends.json").read_text())
    rows = {(r["backend"], r["precision"]): r for r in report["models"][0]["rows"]}
    assert {("torch", "fp32"), ("onnx", "fp32"), ("onnx", "int8-dynamic"), ("onnx", "int8-static"), ("onnx", "fp16")} <= set(rows)
    assert rows[("torch", "fp32")]["speedup_live"] == 1.0
    assert rows[("onnx", "fp32")]["max_abs_diff_vs_torch"] <= 1e-4
    assert all(r["timed_hops"] == 20 and r["hop_p99_ms"] >= r["hop_p50_ms"] > 0 for r in rows.values())
    assert "| onnx | int8-dynamic |" in (tmp_path / "backends.md").read_text()
