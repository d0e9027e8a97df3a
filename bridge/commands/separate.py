"""`stemstream separate`: not built yet (placeholder until its issue lands)."""

from __future__ import annotations

import argparse

from realtime.errors import StemstreamError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("separate", help="(not available yet)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    raise StemstreamError("'stemstream separate' is not available in this version yet")
