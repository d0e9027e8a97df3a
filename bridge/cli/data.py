"""`stemstream data`: make and inspect multitrack data.

    stemstream data synth --out DIR --songs N --seconds S --seed K [--workers W] [--extra-other]
                          [--generator-version V]
    stemstream data lmms [--out DIR] [--projects DIR] [--timeout S] [--workers W] [--force]
    stemstream data info PATH
"""

from __future__ import annotations

import argparse
import os
import sys

from stemstream.realtime.errors import StemstreamError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="synthesise multitrack songs, inspect datasets")
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", parser_class=type(parser))
    synth = sub.add_parser("synth", help="render generated songs into separate stems (FluidSynth)")
    synth.add_argument("--out", required=True, help="output folder (created)")
    synth.add_argument("--songs", required=True, type=_int("songs"), help="number of songs")
    synth.add_argument("--seconds", required=True, type=_float("seconds"), help="length of each song (s)")
    synth.add_argument("--seed", type=_int("seed"), default=0, help="dataset seed (default 0)")
    synth.add_argument("--workers", type=_int("workers"), default=min(2, os.cpu_count() or 1),
                       help="worker processes (default: 2 or the number of cores)")
    synth.add_argument("--extra-other", action="store_true",
                       help="add strings/brass/synth parts as an 'other' stem")
    synth.add_argument("--generator-version", type=_int("generator-version"), default=None,
                       help="composer revision (default: newest; 1 reproduces data/synth)")
    synth.add_argument("--soundfont", action="append", default=None, metavar="PATH",
                       help="GM SoundFont (.sf2/.sf3) to render with; repeat it to draw one per stem "
                            "(default: FluidR3 GM only)")
    lmms = sub.add_parser("lmms", help="render LMMS' demo songs one track per file, labelled by DJ stem "
                                       "(needs apt-get install lmms lmms-common)")
    lmms.add_argument("--out", default="data/lmms", help="output folder (default: data/lmms)")
    lmms.add_argument("--projects", default=None, help="LMMS project folder (default: /usr/share/lmms/projects)")
    lmms.add_argument("--timeout", type=_float("timeout"), default=3600.0, help="seconds per project (default 3600)")
    lmms.add_argument("--workers", type=_int("workers"), default=1, help="LMMS processes at a time (default 1)")
    lmms.add_argument("--force", action="store_true", help="render songs again that were rendered before")
    info = sub.add_parser("info", help="list the tracks a loader finds in a folder")
    info.add_argument("path")
    parser.set_defaults(func=run)


def _int(name: str):
    def parse(text: str) -> int:
        try:
            return int(text)
        except ValueError:
            raise StemstreamError(f"--{name}={text!r}: expected an integer") from None
    return parse


def _float(name: str):
    def parse(text: str) -> float:
        try:
            return float(text)
        except ValueError:
            raise StemstreamError(f"--{name}={text!r}: expected a number") from None
    return parse


def run(args: argparse.Namespace) -> int:
    if args.data_command == "synth":
        return _synth(args)
    if args.data_command == "info":
        return _info(args)
    if args.data_command == "lmms":
        return _lmms(args)
    raise StemstreamError("data: expected an action: 'synth', 'lmms' or 'info'")


def _synth(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from stemstream.export.data.synth import GENERATOR_VERSION, render_dataset, validate_args

    version = GENERATOR_VERSION if args.generator_version is None else args.generator_version
    validate_args(args.out, args.songs, args.seconds, args.seed, args.workers, version)
    if args.soundfont:
        from stemstream.export.data.render import check_soundfont_file

        for font in args.soundfont:
            check_soundfont_file(font)
    bar = tqdm(total=args.songs, unit="song", file=sys.stderr, disable=None)

    def progress(done: int, total: int, summary: dict) -> None:
        bar.update(1)
        bar.set_postfix_str(f"{summary['name']} {summary['style']}")

    try:
        dataset = render_dataset(args.out, args.songs, args.seconds, args.seed, workers=args.workers,
                                 extra_other=args.extra_other, progress=progress,
                                 generator_version=version, soundfonts=tuple(args.soundfont or ()) or None)
    finally:
        bar.close()
    speed = dataset["speed"]
    print(f"rendered {args.songs} songs x {args.seconds:g} s into {args.out} "
          f"({speed['wall_seconds']:.1f} s wall, {speed['x_realtime_wall']:.1f}x real time; "
          f"{speed['x_realtime_per_core']:.1f}x real time per core on {speed['workers']} worker(s))")
    return 0


def _lmms(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from stemstream.export.data.lmms import LMMS_PROJECTS
    from stemstream.export.data.lmms_render import build_lmms_set, find_projects

    projects = args.projects or LMMS_PROJECTS
    bar = tqdm(total=len(find_projects(projects)), unit="song", file=sys.stderr, disable=None)

    def progress(result) -> None:
        bar.update(1)
        bar.set_postfix_str(f"{result.name}: {result.reason}"[:60])

    try:
        summary = build_lmms_set(args.out, projects, timeout_s=args.timeout, force=args.force, progress=progress,
                                 workers=args.workers)
    finally:
        bar.close()
    for name, reason in summary["skipped"].items():
        print(f"skipped {name}: {reason}")
    songs = summary["songs"]
    print(f"{len(songs)} songs into {args.out}: train {summary['minutes']['train']} min, "
          f"valid {summary['minutes']['valid']} min; tracks per stem {summary['tracks_per_stem']}; "
          f"{summary['wall_seconds']:.0f} s")
    return 0


def _info(args: argparse.Namespace) -> int:
    from stemstream.export.data.loaders import load_tracks

    count = 0
    for track in load_tracks(args.path):
        count += 1
        stems = ", ".join(f"{k}" for k in track.stems)
        print(f"{track.name}: {track.num_samples / track.sample_rate:.1f} s, "
              f"{track.mixture.shape[0]} ch, {track.sample_rate} Hz, stems: {stems}")
    print(f"{count} track(s)")
    return 0
