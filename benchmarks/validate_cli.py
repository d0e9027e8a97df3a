"""`stemstream validate`: the validation battery as a command (plugged in like ``bench``)."""

from __future__ import annotations

import argparse

from stemstream.realtime.backends import BACKEND_HELP

DEFAULT_OUT = "runs/bench/validate"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``validate`` to the ``stemstream`` command line."""
    from stemstream.benchmarks.validation.live_checks import CHECK_NAMES

    parser = subparsers.add_parser(
        "validate",
        help="check this machine and model: rates, blocks, edge signals, latency, OSC fuzzing, failures",
        description="A battery of checks of the engine and the live path on this machine with this model: "
                    "host rates 8-192 kHz, block sizes 1-8192 and random, mono/stereo, silence, full scale, "
                    "NaN/Inf/denormal input, measured vs reported latency, streaming vs one-shot, fuzzed OSC "
                    "datagrams, a backend failing mid-stream, a JACK server killed and restarted. Prints a "
                    "table, writes validate.json and validate.md; exit 1 if anything failed.",
    )
    parser.add_argument("--model", default=None, help="registry name or .safetensors path (default: the default model)")
    parser.add_argument("--backend", default="auto", help=BACKEND_HELP)
    parser.add_argument("--quick", action="store_true", help="a shorter battery (fewer rates and block sizes)")
    parser.add_argument("--only", default=None,
                        help=f"comma-separated checks to run (default all): {', '.join(CHECK_NAMES)}")
    parser.add_argument("--seed", type=int, default=0, help="seed of the test signals and fuzzing (default 0)")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the battery; 0 if every check passed, 1 if any failed."""
    from stemstream.benchmarks.report import write_report, wrote
    from stemstream.benchmarks.validation.battery import format_markdown, format_row, report, run_checks
    from stemstream.benchmarks.validation.checks import Context
    from stemstream.benchmarks.validation.live_checks import ALL_CHECKS
    from stemstream.realtime.errors import bad_value
    from stemstream.realtime.models.registry import default_model, load_model

    wanted = ALL_CHECKS
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in ALL_CHECKS]
        if unknown or not names:
            raise bad_value("--only", args.only, f"comma-separated names from {', '.join(ALL_CHECKS)}")
        wanted = {n: ALL_CHECKS[n] for n in names}
    name = args.model or default_model()
    model = load_model(name, backend=args.backend)
    ctx = Context(model=model, model_name=name, quick=args.quick, seed=args.seed)
    print(f"validating {name} ({args.backend}, {'quick' if args.quick else 'full'} battery)", flush=True)
    results = run_checks(ctx, wanted, progress=lambda r: print(format_row(r), flush=True))
    payload = report(ctx, results, args.backend)
    print(f"{payload['passed']} passed, {payload['failed']} failed")
    print(wrote(write_report(args.out, "validate", payload, format_markdown(payload))))
    return 1 if payload["failed"] else 0
