"""Run the validation checks, print one table, write ``validate.json`` and ``validate.md``."""

from __future__ import annotations

import os
import platform
import time
from dataclasses import asdict
from typing import Any, Callable, Iterable

from stemstream.benchmarks.validation.checks import Context, Result


def run_checks(ctx: Context, checks: dict[str, Callable[[Context], list[Result]]],
               progress: Callable[[Result], None] | None = None) -> list[Result]:
    """Every check of ``checks`` on ``ctx``, in order; ``progress`` sees each result as it comes."""
    results: list[Result] = []
    for fn in checks.values():
        for result in fn(ctx):
            results.append(result)
            if progress is not None:
                progress(result)
    return results


def summary(results: Iterable[Result]) -> dict[str, int]:
    """``{"passed": n, "failed": m}``."""
    rows = list(results)
    return {"passed": sum(r.passed for r in rows), "failed": sum(not r.passed for r in rows)}


def report(ctx: Context, results: list[Result], backend: str) -> dict[str, Any]:
    """The JSON record of a run: model, machine, date, every row and the totals."""
    return {
        "benchmark": "validate",
        "model": ctx.model_name,
        "backend": backend,
        "quick": ctx.quick,
        "seed": ctx.seed,
        "machine": f"{platform.node() or 'host'}: {platform.machine()}, {os.cpu_count()} CPUs, "
                   f"Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "results": [asdict(r) for r in results],
        **summary(results),
    }


def format_row(r: Result) -> str:
    """One plain-text line of the table."""
    return f"{'PASS' if r.passed else 'FAIL'}  {r.check:<9} {r.case:<22} {r.detail}  ({r.seconds:.2f} s)"


def format_markdown(payload: dict[str, Any]) -> str:
    """The Markdown table of a run."""
    lines = [f"# stemstream validate: {payload['model']} ({payload['backend']})", "",
             f"{payload['date']}, {payload['machine']}; {'quick' if payload['quick'] else 'full'} battery, seed {payload['seed']}: "
             f"**{payload['passed']} passed, {payload['failed']} failed**.", "",
             "| result | check | case | what was seen | s |", "| --- | --- | --- | --- | ---: |"]
    for r in payload["results"]:
        detail = r["detail"].replace("|", "/")
        lines.append(f"| {'pass' if r['passed'] else '**FAIL**'} | {r['check']} | {r['case']} | {detail} | {r['seconds']:.2f} |")
    return "\n".join(lines) + "\n"
