"""Refresh the generated tables of ``docs/results.md`` from the benchmarks' JSON.

``python -m stemstream.benchmarks.results_page [--runs runs/bench] [--page docs/results.md]``

A generated table sits between two markers in the page::

    <!-- generated: peers -->
    ... (replaced on every run) ...
    <!-- end generated: peers -->

and is rebuilt from ``runs/bench/<name>/<name>.json`` by the benchmark's own ``format_markdown``
(so the page shows exactly what the benchmark wrote, with its date and machine). A block whose JSON
is absent is left as it is, and says so on the command line; hand-written text around the blocks is
never touched. Blocks: :data:`BLOCKS`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
from pathlib import Path

#: Block name -> (the benchmark module with ``format_markdown(payload)``, JSON path under --runs).
BLOCKS: dict[str, tuple[str, str]] = {
    "peers": ("stemstream.benchmarks.peers", "peers/peers.json"),
    "mixstats": ("stemstream.benchmarks.mix_stats", "mixstats/mixstats.json"),
    "latency": ("stemstream.benchmarks.latency", "latency/latency.json"),
    "hostrates": ("stemstream.benchmarks.host_rates", "hostrates/hostrates.json"),
    "tradeoff": ("stemstream.benchmarks.tradeoff", "tradeoff/tradeoff.json"),
    "backends": ("stemstream.benchmarks.backends", "backends/backends.json"),
    "validate": ("stemstream.benchmarks.validation.battery", "validate/validate.json"),
}


def refresh(page: str, runs: Path) -> tuple[str, list[str]]:
    """``page`` with every block whose JSON exists under ``runs`` rebuilt; the names refreshed."""
    done = []
    for name, (module, rel) in BLOCKS.items():
        source = runs / rel
        pattern = re.compile(rf"(<!-- generated: {name} -->\n)(.*?)(<!-- end generated: {name} -->)", re.S)
        if not source.is_file() or not pattern.search(page):
            continue
        table = importlib.import_module(module).format_markdown(json.loads(source.read_text()))
        note = f"Generated from `{rel}` by `python -m stemstream.benchmarks.results_page`.\n\n"
        page = pattern.sub(lambda m: m.group(1) + note + table + m.group(3), page)
        done.append(name)
    return page, done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stemstream.benchmarks.results_page", description=__doc__.split("\n")[0])
    root = Path(__file__).resolve().parents[1]
    parser.add_argument("--runs", default="runs/bench", help="where the benchmarks wrote their JSON (default runs/bench)")
    parser.add_argument("--page", default=str(root / "docs" / "results.md"), help="the page to refresh")
    args = parser.parse_args(argv)
    page = Path(args.page)
    text, done = refresh(page.read_text(), Path(args.runs))
    page.write_text(text)
    missing = sorted(set(BLOCKS) - set(done))
    print(f"refreshed {', '.join(done) or 'nothing'}" + (f"; kept as they were: {', '.join(missing)}" if missing else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
