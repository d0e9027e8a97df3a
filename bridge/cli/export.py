"""`stemstream export`: a shipped model to ONNX (fp32 / fp16 / int8) or a TensorRT engine,
followed by a parity check against PyTorch through the streaming engine."""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

from stemstream.realtime.errors import bad_value

FORMATS = ("onnx", "tensorrt")
PRECISIONS = ("fp32", "fp16", "int8")
#: Shape / layout ops left out of the printed op summary.
_PLUMBING = frozenset({"Constant", "Unsqueeze", "Squeeze", "Concat", "Reshape", "Slice", "Transpose", "Shape", "Gather"})


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a model to ONNX or TensorRT and check parity with PyTorch",
        description=(
            "Export a model (registry name or .safetensors path) to an ONNX graph with explicit "
            "state and the model config in its metadata, or to a TensorRT engine for the fixed "
            "one-hop shape; then print the max abs difference and SI-SDRi versus PyTorch "
            "through the streaming engine on random and synthetic-music input."
        ),
    )
    parser.add_argument("--model", required=True, help="model name (e.g. live) or .safetensors path")
    parser.add_argument("--format", choices=FORMATS, default="onnx", help="output format (default onnx)")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32", help="numeric precision (default fp32)")
    parser.add_argument(
        "--int8-mode", choices=("dynamic", "static"), default="dynamic",
        help="ONNX int8: dynamic (weights only) or static (Q/DQ, calibrated on synthetic audio)",
    )
    parser.add_argument(
        "--hops", choices=("dynamic", "one"), default="dynamic",
        help="ONNX time axis: any number of hops per call, or exactly one hop (TensorRT EP)",
    )
    parser.add_argument("--out", required=True, help="output file (.onnx or .plan)")
    parser.add_argument("--no-parity", action="store_true", help="skip the parity check")
    parser.add_argument("--parity-seconds", type=float, default=3.0, help="seconds of audio per parity signal")
    parser.set_defaults(func=run)


def _print_parity(candidate, reference, seconds: float) -> None:
    from stemstream.export.parity import parity

    print(f"parity vs PyTorch eager (streaming engine, {seconds:g} s per signal):")
    for f in parity(candidate, reference, seconds=seconds):
        quality = (
            ""
            if math.isnan(f.si_sdri_reference)
            else f"  SI-SDRi torch {f.si_sdri_reference:+.2f} dB, exported {f.si_sdri_candidate:+.2f} dB"
        )
        print(f"  {f.signal:<6} max abs diff {f.max_abs_diff:.3e}  rms diff {f.rms_diff:.3e}{quality}")


def run(args: argparse.Namespace) -> int:
    import torch

    from stemstream.realtime.backends.torch_backend import TorchHopModel
    from stemstream.realtime.models.registry import load_torch_model

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    if args.parity_seconds <= 0:
        raise bad_value("--parity-seconds", args.parity_seconds, "a positive number of seconds")
    out = Path(args.out)
    if out.is_dir():
        raise bad_value("--out", args.out, "a file path, not a folder")
    module = load_torch_model(args.model)
    name = Path(args.model).stem if args.model.endswith(".safetensors") else args.model

    if args.format == "tensorrt":
        from stemstream.export.tensorrt_export import export_tensorrt
        from stemstream.realtime.backends.tensorrt_backend import TensorRTHopModel

        path = export_tensorrt(module, name, out, args.precision)
        print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB, TensorRT {args.precision}, one hop per call)")
        if not args.no_parity:
            _print_parity(TensorRTHopModel(path, name=name), TorchHopModel(module), args.parity_seconds)
        return 0

    from stemstream.export.onnx_export import export_onnx, op_counts
    from stemstream.export.quantise import make_precision
    from stemstream.realtime.backends.onnx_backend import open_onnx_file

    dynamic = args.hops == "dynamic"
    if args.precision == "fp32":
        result = export_onnx(module, out, name, dynamic_hops=dynamic)
        ops = result.op_counts
    else:
        with tempfile.TemporaryDirectory() as tmp:
            fp32 = Path(tmp) / "fp32.onnx"
            export_onnx(module, fp32, name, dynamic_hops=dynamic)
            make_precision(fp32, out, args.precision, int8_mode=args.int8_mode)
        ops = op_counts(out)
    compute = {k: v for k, v in ops.items() if k not in _PLUMBING}
    summary = ", ".join(f"{k} {v}" for k, v in sorted(compute.items(), key=lambda kv: -kv[1])[:10])
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB, {args.precision}"
          f"{' ' + args.int8_mode if args.precision == 'int8' else ''}, "
          f"{'any number of hops' if dynamic else 'one hop'} per call)")
    print(f"ops: {summary} ...; no complex/STFT ops: ok; metadata: ok")
    if not args.no_parity:
        _print_parity(open_onnx_file(out), TorchHopModel(module), args.parity_seconds)
    return 0
