"""`stemstream bench files`: `stemstream separate` on a crate, and its peak memory on long files.

Two measurements, each a real ``stemstream separate`` process (so model loading, file reading and
writing are all in the figures):

* **crate**: ``--songs`` songs of ``--seconds`` each (a music-like test signal, one seed per song)
  separated in one call: wall time, and the real-time factor the command reports.
* **long files**: one song of each of ``--long-minutes`` (stereo, 44.1 kHz): wall time and the
  process's peak resident memory (``ru_maxrss`` from ``wait4``). Disk to disk in bounded memory
  means the peak does not grow with the length.

Writes ``files.json`` and ``files.md`` under ``--out``. The songs are written to ``--work`` (a
temporary folder by default) and deleted afterwards.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import soundfile as sf

from stemstream.benchmarks.report import write_report, wrote
from stemstream.benchmarks.rig.jack_player import music_like

RATE = 44100


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--songs", type=int, default=10, help="songs in the crate (default 10)")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each crate song (default 30 s)")
    parser.add_argument("--long-minutes", default="10,20",
                        help="lengths of the long files, comma-separated minutes (default 10,20; '' for none)")
    parser.add_argument("--model", default=None, help="model (default: separate's default, dj-live+wiener)")
    parser.add_argument("--format", default="wav", help="output format (default wav)")
    parser.add_argument("--work", default=None, help="folder for the songs and stems (default: a temporary one)")
    parser.add_argument("--out", default="runs/bench/files", help="where files.json / files.md go")


def write_song(path: Path, seconds: float, seed: int, chunk_s: float = 60.0) -> Path:
    """A music-like stereo song of ``seconds`` at 44.1 kHz, written a minute at a time."""
    with sf.SoundFile(str(path), "w", RATE, 2, "PCM_16") as f:
        done, k = 0.0, 0
        while done < seconds:
            part = min(chunk_s, seconds - done)
            f.write(music_like(part, RATE, seed=seed * 10_000 + k).T)
            done, k = done + part, k + 1
    return path


def run_separate(argv: list[str]) -> dict[str, Any]:
    """``stemstream separate ARGV`` in a child process: exit code, wall time, peak RSS, its last lines."""
    cmd = [sys.executable, "-m", "stemstream.bridge", "separate", *argv, "--quiet"]
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        log.seek(0)
        lines = log.read().decode(errors="replace").strip().splitlines()
    return {"exit_code": proc.returncode, "wall_s": round(wall, 2), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
            "last_lines": lines[-3:]}


def _rtf(lines: list[str]) -> float | None:
    for line in lines:
        if line.startswith("real-time factor:"):
            return float(line.split()[2])
    return None


def run(args: argparse.Namespace) -> int:
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="stemstream-bench-files-"))
    model = ["--model", args.model] if args.model else []
    minutes = [float(m) for m in str(args.long_minutes).split(",") if m.strip()]
    result: dict[str, Any] = {
        "machine": f"{platform.node()}: {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}",
        "load_average_at_start": list(os.getloadavg()), "model": args.model or "default", "format": args.format,
    }
    try:
        crate = work / "crate"
        crate.mkdir(parents=True, exist_ok=True)
        for k in range(args.songs):
            write_song(crate / f"song{k:02d}.wav", args.seconds, seed=k)
        run = run_separate([str(crate), "-o", str(work / "crate-out"), "--format", args.format, *model])
        run["audio_s"] = args.songs * args.seconds
        run["real_time_factor"] = _rtf(run["last_lines"])
        result["crate"] = {"songs": args.songs, "seconds_each": args.seconds, **run}
        print(f"crate: {args.songs} x {args.seconds:g} s in {run['wall_s']:.1f} s (exit {run['exit_code']}, "
              f"peak RSS {run['peak_rss_mb']:.0f} MB)", flush=True)
        result["long"] = []
        for m in minutes:
            src = write_song(work / f"long-{m:g}min.wav", 60.0 * m, seed=1000 + int(m))
            run = run_separate([str(src), "-o", str(work / "long-out"), "--format", args.format, *model])
            run["minutes"] = m
            run["real_time_factor"] = _rtf(run["last_lines"])
            result["long"].append(run)
            src.unlink()
            shutil.rmtree(work / "long-out", ignore_errors=True)
            print(f"{m:g} min: peak RSS {run['peak_rss_mb']:.0f} MB, {run['wall_s']:.1f} s (exit {run['exit_code']})",
                  flush=True)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    result["load_average_at_end"] = list(os.getloadavg())
    print(wrote(write_report(args.out, "files", result, _markdown(result))))
    failed = [r for r in [result.get("crate", {})] + result.get("long", []) if r.get("exit_code")]
    return 1 if failed else 0


def _markdown(r: dict[str, Any]) -> str:
    c = r["crate"]
    lines = [f"# `stemstream separate` disk to disk ({r['format']}, model {r['model']})", "",
             f"Machine: {r['machine']}; load average {r['load_average_at_start'][0]:.2f} at the start.", "",
             "| run | audio | wall time | real-time factor | peak RSS |", "| --- | --- | --- | --- | --- |",
             f"| crate of {c['songs']} songs | {c['songs']} x {c['seconds_each']:g} s | {c['wall_s']:.1f} s | "
             f"{c['real_time_factor']} | {c['peak_rss_mb']:.0f} MB |"]
    for run in r["long"]:
        lines.append(f"| one long song | {run['minutes']:g} min | {run['wall_s']:.1f} s | {run['real_time_factor']} | "
                     f"{run['peak_rss_mb']:.0f} MB |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover
    from stemstream.bridge.cli.main import OneLineParser

    parser = OneLineParser(prog="python -m stemstream.benchmarks.separate_files", description=__doc__.splitlines()[0])
    add_arguments(parser)
    sys.exit(run(parser.parse_args()))
