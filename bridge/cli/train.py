"""`stemstream train --config NAME`: train a model; the flags become one typed
``stemstream.export.train.options.TrainOptions``, checked against what the config's family uses.

Configs: ``live``, ``quality`` (starts from ``live``), ``live-pruned`` (prunes ``live`` then
fine-tunes), ``dj-live`` / ``dj-quality`` / ``dj-live-pruned`` (the DJ stem set, real and
synthetic data), ``tiny`` (smoke test); ``diffusion*`` go to ``stemstream.export.train.diffusion``;
``refiner-teacher`` / ``refiner-regression`` (an ablation) / ``refiner-tiny`` to ``stemstream.export.train.refiner_teacher`` and
``refiner-student`` to ``stemstream.export.refiner_distill`` (the diffusion refiner of a base model).
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a model (dj-live, dj-live-48k, dj-quality, dj-live-pruned, live, quality, live-pruned, diffusion*, refiner*)",
        description="Train a model on the synthetic data; checkpoints, validation curves and a run record go to --out.",
    )
    parser.add_argument("--config", required=True, help="live | quality | live-pruned | dj-live | dj-live-48k | dj-quality | dj-live-pruned | tiny | "
                        "diffusion* | refiner-teacher | refiner-student | refiner-regression | refiner-tiny")
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
    parser.add_argument("--electronic", action=argparse.BooleanOptionalAction, default=None,
                        help="DJ configs: also draw LMMS' electronic songs and Sonic Pi's beats when rendered "
                             "(default: the config's; --no-electronic trains on the real and synthetic songs only)")
    parser.add_argument("--electronic-share", type=float, default=None, metavar="X",
                        help="DJ configs with --electronic: multiply the electronic recipes' weights by X "
                             "(default 1: about a fifth of the draws; 0.3: about 7 %%)")
    parser.add_argument("--voice-variants", action=argparse.BooleanOptionalAction, default=None,
                        help="DJ configs: pitch-shift the real voices and add sung harmonies to some examples "
                             "(stemstream.export.data.voice_variants; default: the config's)")
    parser.add_argument("--width", type=int, default=None, metavar="N",
                        help="the separator's residual width (default: the config's); larger than --init-from's, "
                             "it grows that model without changing what it separates, and training fills the rest")
    parser.add_argument("--lstm-layers", type=int, default=None, metavar="N",
                        help="the separator's LSTM layers (default: the config's); more than --init-from's "
                             "appends layers that start silent")
    parser.add_argument("--limit-songs", type=int, default=None, metavar="N",
                        help="read at most N songs of each split (smoke runs)")
    parser.add_argument("--base", default=None, metavar="NAME",
                        help="refiner-teacher: the shipped base model whose estimates the refiner refines (default quality)")
    parser.add_argument("--ship", action="store_true", help="copy the final weights into realtime/weights/")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from stemstream.export.train.options import TrainOptions, check_options, family

    options = TrainOptions(**{f.name: getattr(args, f.name) for f in fields(TrainOptions) if hasattr(args, f.name)})
    check_options(args.config, options)
    if family(args.config) == "refiner-teacher":
        from stemstream.export.train.refiner_teacher import run_refiner_training

        return int(run_refiner_training(args.config, options) or 0)
    if family(args.config) == "refiner-student":
        from pathlib import Path

        from stemstream.export.refiner_distill import run_refiner_distillation

        return int(run_refiner_distillation(options, Path(options.out or Path(options.runs) / args.config)) or 0)
    if family(args.config) != "hybrid":
        from stemstream.export.train.diffusion import run_training as run_diffusion

        return int(run_diffusion(args.config, options) or 0)
    from stemstream.export.train.run import run_training

    return run_training(args.config, options, log=lambda s: print(s, flush=True))
