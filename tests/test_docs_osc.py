"""docs/osc.md is generated from the OSC route table: it must equal what the generator renders now."""

from __future__ import annotations

from pathlib import Path

import pytest

from stemstream.benchmarks import osc_reference
from stemstream.bridge.osc.routes import OscRoutes
from stemstream.realtime.errors import StemstreamError

ROOT = Path(__file__).resolve().parents[1]


def test_osc_doc_matches_route_table() -> None:
    on_disk = (ROOT / osc_reference.DOC_PATH).read_text(encoding="utf-8")
    rendered = osc_reference.render_markdown()
    if on_disk != rendered:
        a, b = on_disk.splitlines(), rendered.splitlines()
        line = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        got = a[line] if line < len(a) else "<end of file>"
        want = b[line] if line < len(b) else "<end of file>"
        pytest.fail(f"docs/osc.md is stale at line {line + 1}: {got!r} != {want!r}; "
                    "run: .venv/bin/python -m stemstream.benchmarks.osc_reference")


def test_every_route_is_on_the_page() -> None:
    page = osc_reference.render_markdown()
    for address, _, _ in OscRoutes(osc_reference._Placeholder()).table():  # type: ignore[arg-type]
        assert f"| `{address}` |" in page, address


def test_a_new_route_changes_the_page(monkeypatch: pytest.MonkeyPatch) -> None:
    before = osc_reference.render_markdown()
    table = OscRoutes.table

    def with_extra(self: OscRoutes) -> list[tuple[str, str, str]]:
        return [*table(self), ("/stemstream/tempo", "float", "beats per minute")]

    monkeypatch.setattr(OscRoutes, "table", with_extra)
    after = osc_reference.render_markdown()
    assert after != before
    assert "| `/stemstream/tempo` | `float` | beats per minute |" in after


def test_prose_naming_a_missing_route_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    table = OscRoutes.table

    def without_bypass(self: OscRoutes) -> list[tuple[str, str, str]]:
        return [row for row in table(self) if row[0] != "/stemstream/bypass"]

    monkeypatch.setattr(OscRoutes, "table", without_bypass)
    with pytest.raises(StemstreamError, match="/stemstream/bypass"):
        osc_reference.render_markdown()


def test_main_writes_the_page(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert osc_reference.main(tmp_path) == 0
    assert (tmp_path / "docs" / "osc.md").read_text(encoding="utf-8") == osc_reference.render_markdown()
    assert "docs/osc.md" in capsys.readouterr().out
