"""The generated tables of docs/results.md come from the benchmarks' JSON, and nothing else moves."""

from __future__ import annotations

import json
from pathlib import Path

from stemstream.benchmarks.peers import format_markdown
from stemstream.benchmarks.results_page import refresh


def test_blocks_are_rebuilt_from_json_and_the_rest_is_kept(tmp_path: Path) -> None:
    payload = {"date": "2026-12-06 23:00 UTC", "machine": {"platform": "test"}, "datasets": {"songs": "x"},
               "results": {"dj-live": {"songs": {"si_sdri": {"vocals": 4.5, "drums": 7.25}}}}}
    (tmp_path / "peers").mkdir()
    (tmp_path / "peers" / "peers.json").write_text(json.dumps(payload))
    page = ("# Results\n\nhand-written\n\n<!-- generated: peers -->\nold table\n<!-- end generated: peers -->\n"
            "\n<!-- generated: mixstats -->\nkept\n<!-- end generated: mixstats -->\ntail\n")
    text, done = refresh(page, tmp_path)
    assert done == ["peers"]
    assert "old table" not in text and format_markdown(payload) in text and "| dj-live | 4.50 | 7.25 |" in text
    assert text.startswith("# Results\n\nhand-written\n") and text.endswith("kept\n<!-- end generated: mixstats -->\ntail\n")
    assert refresh(text, tmp_path)[0] == text  # idempotent
