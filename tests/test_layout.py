"""The layout the architecture page describes: one namespace, layers that import downwards only,
no import cycles (``python -m stemstream.benchmarks.import_graph`` prints the same graph)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from stemstream.benchmarks.import_graph import ALLOWED, LAYERS, build_graph, cycles, upward_edges

ROOT = Path(__file__).resolve().parents[1]


def test_packages_listed_for_install_are_the_folders() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    folders = {"stemstream." + ".".join(p.parent.relative_to(ROOT).parts)
               for layer in LAYERS for p in (ROOT / layer).rglob("__init__.py")}
    assert listed == folders, f"pyproject packages differ: missing {sorted(folders - listed)}, extra {sorted(listed - folders)}"
    assert config["package-dir"] == {f"stemstream.{layer}": layer for layer in LAYERS}


def test_imports_run_downwards_without_cycles() -> None:
    graph = build_graph(ROOT)
    assert {m.split(".")[0] for m in graph} == set(LAYERS)
    assert upward_edges(graph) == []
    assert cycles(graph) == []


def test_realtime_needs_nothing_from_the_layers_above() -> None:
    assert ALLOWED["realtime"] == ()
    graph = build_graph(ROOT)
    assert not {t for m, ts in graph.items() if m.startswith("realtime") for t in ts if not t.startswith("realtime")}


def test_the_graph_sees_a_planted_cycle_and_an_upward_import(tmp_path: Path) -> None:
    for layer in LAYERS:
        (tmp_path / layer).mkdir()
        (tmp_path / layer / "__init__.py").write_text("")
    (tmp_path / "realtime" / "a.py").write_text("from stemstream.realtime import b\n")
    (tmp_path / "realtime" / "b.py").write_text("def f():\n    from stemstream.realtime.a import x\n")
    (tmp_path / "export" / "c.py").write_text("import stemstream.bridge.d\n")
    (tmp_path / "bridge" / "d.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from stemstream.benchmarks import e\n")
    graph = build_graph(tmp_path)
    assert cycles(graph) == [["realtime.a", "realtime.b"]]
    assert upward_edges(graph) == [("export.c", "bridge.d")]  # the TYPE_CHECKING import is not one
