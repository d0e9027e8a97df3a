"""Who imports whom: the layer graph and the import cycles of a stemstream source tree.

``python -m stemstream.benchmarks.import_graph [--root DIR] [--json OUT]`` reads every ``.py``
file under ``DIR/{realtime,export,bridge,benchmarks}`` (without importing anything) and prints

* the layer edges: how many imports run from each top-level folder (and each subpackage) to
  each other one, counting imports inside functions too (``layer_edges(graph, depth=2)`` gives
  subpackages);
* the import cycles between modules (strongly connected components with more than one module;
  imports under ``if TYPE_CHECKING:`` are for annotations only and are not counted);
* the imports that run upwards (a layer importing one above it, :data:`ALLOWED`).

Both ``stemstream.realtime...`` and the older bare ``realtime...`` spellings are understood, so
the same command reads a checkout from before the namespace move (``--root`` on a ``git
worktree`` of an old commit).
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from collections import defaultdict
from pathlib import Path

LAYERS: tuple[str, ...] = ("realtime", "export", "bridge", "benchmarks")
#: Which layers each layer may import (besides itself): imports run one way, downwards.
ALLOWED: dict[str, tuple[str, ...]] = {
    "realtime": (),
    "export": ("realtime",),
    "bridge": ("realtime", "export"),
    "benchmarks": ("realtime", "export", "bridge"),
}


def module_name(root: Path, path: Path) -> str:
    """``realtime/engine/session.py`` -> ``realtime.engine.session`` (``__init__`` -> the package)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _canonical(name: str) -> str | None:
    """An imported name inside the tree, without the ``stemstream.`` prefix; None if outside."""
    if name.startswith("stemstream."):
        name = name[len("stemstream."):]
    return name if name.split(".")[0] in LAYERS else None


def imports_of(root: Path, path: Path, known: set[str]) -> set[str]:
    """The tree's modules that ``path`` imports (``from a import b`` counts ``a.b`` when that is a
    module of the tree, else ``a``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = module_name(root, path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: set[str] = set()
    typing_only = {id(n) for block in ast.walk(tree) if _is_type_checking(block)
                   for stmt in block.body for n in ast.walk(stmt)}  # type: ignore[attr-defined]
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                name = _canonical(alias.name)
                if name:
                    found.add(name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                name = f"{base}.{node.module}" if node.module else base
            else:
                name = _canonical(node.module or "")
            if not name:
                continue
            for alias in node.names:
                sub = f"{name}.{alias.name}"
                found.add(sub if sub in known else name)
    return {m for m in found if m != here}


def _is_type_checking(node: ast.AST) -> bool:
    """``if TYPE_CHECKING:`` (imports for annotations only, not made at run time)."""
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def build_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the tree's modules it imports."""
    files = [p for layer in LAYERS if (root / layer).is_dir() for p in sorted((root / layer).rglob("*.py"))]
    known = {module_name(root, p) for p in files}
    graph = {}
    for p in files:
        graph[module_name(root, p)] = {m if m in known else _owner(m, known) for m in imports_of(root, p, known)}
        graph[module_name(root, p)].discard(None)  # type: ignore[arg-type]
    return graph


def _owner(name: str, known: set[str]) -> str | None:
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def layer_edges(graph: dict[str, set[str]], depth: int = 1) -> dict[tuple[str, str], int]:
    """Counts of imports between module prefixes of ``depth`` parts (1: the four layers)."""
    edges: dict[tuple[str, str], int] = defaultdict(int)
    for src, targets in graph.items():
        a = ".".join(src.split(".")[:depth])
        for dst in targets:
            b = ".".join(dst.split(".")[:depth])
            if a != b:
                edges[(a, b)] += 1
    return dict(edges)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(max(10000, sys.getrecursionlimit()))

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def upward_edges(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Imports that break :data:`ALLOWED` (a layer importing one above it)."""
    bad = []
    for src, targets in sorted(graph.items()):
        a = src.split(".")[0]
        for dst in sorted(targets):
            b = dst.split(".")[0]
            if a != b and b not in ALLOWED[a]:
                bad.append((src, dst))
    return bad


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stemstream.benchmarks.import_graph", description=__doc__.split("\n")[0])
    parser.add_argument("--root", default=str(Path(__file__).resolve().parents[1]), help="source tree (default: this one)")
    parser.add_argument("--json", default=None, help="also write the graph, edges and cycles as JSON")
    args = parser.parse_args(argv)
    root = Path(args.root)
    graph = build_graph(root)
    print(f"{len(graph)} modules under {root}")
    print("layer edges (imports from -> to):")
    for (a, b), n in sorted(layer_edges(graph).items()):
        flag = "" if b in ALLOWED[a] else "   <- runs upwards"
        print(f"  {a:10s} -> {b:10s} {n:4d}{flag}")
    found = cycles(graph)
    print(f"import cycles: {len(found)}")
    for comp in found:
        print("  " + " <-> ".join(comp))
    up = upward_edges(graph)
    print(f"upward imports: {len(up)}")
    for src, dst in up:
        print(f"  {src} -> {dst}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "root": str(root), "graph": {k: sorted(v) for k, v in sorted(graph.items())},
            "layer_edges": [[a, b, n] for (a, b), n in sorted(layer_edges(graph).items())],
            "cycles": found, "upward": up}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
