"""The ``stemstream`` command line: one module per subcommand under ``stemstream.bridge.cli``.

Each command module defines ``register(subparsers) -> None`` (adds its parser and sets
``func=run``) and ``run(args) -> int``. Commands from the layers above ``bridge`` (``stemstream
bench``, in ``stemstream.benchmarks.cli``) are plugged in through the ``stemstream.commands``
entry-point group, so ``bridge`` never imports them. A user's bad argument or file becomes one line on
stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from importlib.metadata import entry_points
from typing import NoReturn, Sequence

from stemstream.realtime.errors import StemstreamError

#: Subcommand modules, in the order ``--help`` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "demo",
    "separate",
    "live",
    "devices",
    "effects",
    "models",
    "eval",
    "data",
    "train",
    "export",
)

#: Entry-point group through which other layers add subcommands (``benchmarks``: ``bench``).
PLUGIN_GROUP = "stemstream.commands"


class UsageError(StemstreamError):
    """A command-line argument is missing or malformed."""


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors raise instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    """The full parser, with every available subcommand registered."""
    parser = OneLineParser(prog="stemstream", description="Real-time music source separation.")
    parser.add_argument("--version", action="version", version="stemstream 0.1.0")
    subparsers = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=OneLineParser
    )
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"stemstream.bridge.cli.{name}")
        module.register(subparsers)
    for entry in sorted(entry_points(group=PLUGIN_GROUP), key=lambda e: e.name):
        entry.load().register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``stemstream`` console script. Returns the exit code."""
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if getattr(args, "func", None) is None:
            parser.print_help(sys.stderr)
            return 2
        return int(args.func(args) or 0)
    except StemstreamError as exc:
        print(f"stemstream: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("stemstream: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
