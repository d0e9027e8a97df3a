"""`stemstream train --config NAME`: train a shipped model on the synthetic data.

Configs: ``live``, ``quality`` (starts from ``live``), ``live-pruned`` (prunes ``live`` then
fine-tunes), ``tiny`` (smoke test); ``diffusion*`` go to ``stemstream.export.train.diffusion``.
"""

from __future__ import annotations

import argparse
import importlib

from stemstream.realtime.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a model (live, quality, live-pruned, diffusion*)",
        description="Train a model on the synthetic data; checkpoints, validation curves and a run record go to --out.",
    )
    parser.add_argument("--config", required=True, help="live | quality | live-pruned | dj-live | tiny | diffusion*")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    parser.add_argument("--steps", type=int, default=None, help="optimiser steps (default: the config's, with its time budget)")
    parser.add_argument("--out", default=None, help="output folder (default runs/CONFIG)")
    parser.add_argument("--data", default="data/synth", help="data root with train/ and valid/ (default data/synth)")
    parser.add_argument("--runs", default="runs", help="where earlier runs are found for init_from (default runs)")
    parser.add_argument("--init-from", default=None, metavar="NAME|FILE",
                        help="start from these weights (a model name, e.g. live, or a .safetensors file) "
                             "instead of the config's own start: fine-tuning on other data")
    parser.add_argument("--time-budget", type=float, default=None,
                        help="wall-clock training budget in seconds (default: the config's; 0: steps only)")
    parser.add_argument("--distill", type=float, default=None, metavar="W",
                        help="weight in [0, 1] of the teacher term: learn from the starting model's (init_from's) "
                             "estimates as well as the true stems (e.g. live-pruned from live; default 0)")
    parser.add_argument("--teacher", default=None, metavar="NAME|FILE",
                        help="the model --distill learns from (default: the one the run starts from; e.g. "
                             "--config live-pruned --init-from live-pruned --teacher live continues a pruned model)")
    parser.add_argument("--lr", type=float, default=None,
                        help="peak learning rate of the cosine schedule (default: the config's; lower it to "
                             "continue a trained model without undoing it)")
    parser.add_argument("--seed", type=int, default=None,
                        help="RNG seed of the initialisation and the excerpt order (default: the config's; give a "
                             "continuation its own so it does not replay the excerpts of the run before; --resume carries on "
                             "with the checkpoint's random state)")
    parser.add_argument("--ema", type=float, default=None, metavar="DECAY",
                        help="keep an exponential moving average of the weights with this decay per step (e.g. 0.999; "
                             "default 0: none) and save whichever of it and the last weights validates better")
    parser.add_argument("--batch", type=int, default=None,
                        help="excerpts per optimiser step (default: the config's, 6 for live)")
    parser.add_argument("--excerpt-seconds", type=float, default=None, metavar="S",
                        help="length of each training excerpt in seconds (default: the config's, 1.5 for live); "
                             "longer excerpts let the recurrent state learn longer context")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: the config's)")
    parser.add_argument("--device", default=None, metavar="cpu|cuda[:N]",
                        help="where the training steps run (default cpu); on a GPU the training songs are held "
                             "on it and batches gathered there; the weights saved are the same CPU safetensors")
    parser.add_argument("--real-data", default=None, metavar="DIR",
                        help="real training recordings for the DJ configs (mir1k/, musicdelta/; "
                             "default ../shared/realdata-train)")
    parser.add_argument("--ship", action="store_true", help="copy the final weights into realtime/weights/")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if str(args.config).startswith("diffusion"):
        if getattr(args, "distill", None) is not None:
            raise ConfigError(f"distill={args.distill!r}: the diffusion configs distil with stemstream.export.distill; "
                              "expected no --distill")
        if getattr(args, "teacher", None) and args.config != "diffusion-student":
            raise ConfigError(f"teacher={args.teacher!r}: of the diffusion configs only diffusion-student has a "
                              "teacher (a .safetensors file); expected no --teacher")
        if getattr(args, "lr", None) is not None:
            raise ConfigError(f"lr={args.lr!r}: the diffusion configs set their own learning rate; expected no --lr")
        if getattr(args, "seed", None) is not None:
            raise ConfigError(f"seed={args.seed!r}: the diffusion configs set their own seed; expected no --seed")
        if getattr(args, "ema", None) is not None:
            raise ConfigError(f"ema={args.ema!r}: the diffusion configs keep their own weight average; expected no --ema")
        for flag, value in (("batch", getattr(args, "batch", None)),
                            ("excerpt_seconds", getattr(args, "excerpt_seconds", None))):
            if value is not None:
                raise ConfigError(f"{flag}={value!r}: the diffusion configs set their own batches; expected no "
                                  f"--{flag.replace('_', '-')}")
        if getattr(args, "real_data", None) is not None:
            raise ConfigError(f"real_data={args.real_data!r}: the diffusion configs train on synthetic songs; "
                              "expected no --real-data")
        if getattr(args, "device", None) is not None:
            raise ConfigError(f"device={args.device!r}: the diffusion configs train on the CPU; expected no --device")
        if getattr(args, "init_from", None) and args.config != "diffusion-student":
            raise ConfigError(f"init_from={args.init_from!r}: the diffusion teacher configs start from their own runs; "
                              "expected no --init-from (diffusion-student takes a student file)")
        diffusion = importlib.import_module("stemstream.export.train.diffusion")
        return int(diffusion.run_training(args.config, args) or 0)
    from stemstream.export.train.run import run_training

    return run_training(args.config, args, log=lambda s: print(s, flush=True))
