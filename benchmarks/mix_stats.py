"""`stemstream bench mixstats`: do our training mixes sound like released records?

Reads three figures (``stemstream.export.data.mixing.measure``) of every mixture: RMS level in dBFS
over both channels, crest factor (peak over RMS, dB) and width (RMS of side over RMS of mid). Two
scales: whole songs (as the issue quotes them) and 4-second excerpts (what a training step sees).

Sources compared: released music (``../shared/realdata``: the MUSDB18 excerpts' sums of stems,
evaluation only, read here for their level statistics), our synthetic songs as rendered (``data/synth``),
the DJ training sampler's examples (``stemstream.export.train.dj_data``, real and synthetic
sources through the mix-engineer chains and the master), and the demo song. Writes
``mixstats.json`` and ``mixstats.md`` (median and 10th-90th percentiles per figure) under ``--out``.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from stemstream.benchmarks.report import write_report

DEFAULT_OUT = "runs/bench/mixstats"
REALDATA = Path(__file__).resolve().parents[1].parent / "shared" / "realdata"
EXCERPT_S = 4.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--released", default=f"{REALDATA / 'musdb18-vocals-excerpts'},{REALDATA / 'musdb18-sample'}",
                        help="comma-separated folders of released music (default: the shared MUSDB18 excerpts)")
    parser.add_argument("--synth", default="data/synth/valid", help="our synthetic songs (default data/synth/valid)")
    parser.add_argument("--dj-examples", type=int, default=64, help="DJ sampler examples to draw (0: none)")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")


def _figures(mixes: list[np.ndarray], rate: int) -> dict[str, Any]:
    from stemstream.export.data.mixing import measure

    songs = [measure(m) for m in mixes]
    n = int(EXCERPT_S * rate)
    excerpts = [measure(m[:, a : a + n]) for m in mixes for a in range(0, max(m.shape[-1] - n, 0) + 1, n)
                if np.abs(m[:, a : a + n]).max() > 1e-4]

    def spread(values: list[float]) -> dict[str, float]:
        return {"median": round(float(np.median(values)), 2), "p10": round(float(np.percentile(values, 10)), 2),
                "p90": round(float(np.percentile(values, 90)), 2)}

    out: dict[str, Any] = {"songs": len(songs), "excerpts": len(excerpts)}
    for scale, stats in (("song", songs), ("excerpt", excerpts)):
        if stats:
            out[scale] = {"rms_dbfs": spread([s.rms_dbfs for s in stats]),
                          "crest_db": spread([s.crest_db for s in stats]),
                          "width": spread([s.width for s in stats])}
    return out


def run(args: argparse.Namespace) -> int:
    from stemstream.export.data.loaders import load_tracks

    results: dict[str, Any] = {}
    released = [t.mixture for d in args.released.split(",") if d.strip() and Path(d.strip()).is_dir()
                for t in load_tracks(d.strip())]
    if released:
        results["released (MUSDB18 excerpts)"] = _figures(released, 44100)
    if Path(args.synth).is_dir():
        results[f"synthetic songs ({args.synth})"] = _figures([t.mixture for t in load_tracks(args.synth)], 44100)
    if args.dj_examples > 0 and Path(args.synth).is_dir():
        from stemstream.export.data.real import DEFAULT_REAL_TRAIN
        from stemstream.export.train.data import load_songs
        from stemstream.export.train.dj_data import DjExampleMaker, DjSources

        sources = DjSources.load(DEFAULT_REAL_TRAIN, load_songs(args.synth), "valid")
        maker, rng = DjExampleMaker(sources), np.random.default_rng(0)
        mixes = [maker.make(int(EXCERPT_S * 44100), rng)[0].sum(axis=0) for _ in range(args.dj_examples)]
        results["DJ training examples (4 s)"] = _figures(mixes, 44100)
    try:
        import tempfile

        from stemstream.export.data.demo_song import render_demo_song

        with tempfile.TemporaryDirectory() as tmp:
            results["demo song (DJ)"] = _figures([render_demo_song(20.0, Path(tmp), "dj").mixture], 44100)
        with tempfile.TemporaryDirectory() as tmp:
            results["demo song (instruments)"] = _figures([render_demo_song(20.0, Path(tmp), "instruments").mixture], 44100)
    except Exception as exc:  # the demo needs FluidSynth; report what was measured without it
        results["demo song"] = {"error": str(exc).splitlines()[0]}
    payload = {"benchmark": "mixstats", "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "machine": platform.platform(), "excerpt_seconds": EXCERPT_S, "results": results}
    markdown = format_markdown(payload)
    write_report(Path(args.out), "mixstats", payload, markdown)
    print(markdown)
    return 0


def format_markdown(payload: dict[str, Any]) -> str:
    lines = [f"Mix statistics ({payload['date']}): median [10th, 90th percentile]", "",
             "| source | scale | n | RMS dBFS | crest dB | width (side/mid) |", "| --- | --- | ---: | ---: | ---: | ---: |"]
    for name, r in payload["results"].items():
        for scale in ("song", "excerpt"):
            if scale not in r:
                continue
            cells = [f"{r[scale][k]['median']:.2f} [{r[scale][k]['p10']:.2f}, {r[scale][k]['p90']:.2f}]"
                     for k in ("rms_dbfs", "crest_db", "width")]
            n = r["songs"] if scale == "song" else r["excerpts"]
            lines.append(f"| {name} | {scale} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
