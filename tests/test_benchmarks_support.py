"""Benchmark support: the machine-stall probe beside the live soak (benchmarks/stall_probe.py) and
the one report writer (benchmarks/report.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from stemstream.benchmarks.stall_probe import attribute, coverage, probe


def test_probe_reports_wakeups_and_lateness() -> None:
    r = probe(0.05, period_ms=1.0, stall_ms=1000.0)
    # at least the first wake-up, at most one per period (fewer when the machine is busy)
    assert type(r["wakeups"]) is int and 1 <= r["wakeups"] <= 52
    assert r["stalls"] == []  # nothing is 1 s late in 50 ms
    assert 0.0 <= r["late_ms"]["p50"] <= r["late_ms"]["max"]
    assert set(r["late_ms"]) == {"p50", "p99", "p999", "max"}
    assert r["scheduling"].startswith(("fifo:90", "default"))


@pytest.mark.timing
def test_probe_wakes_at_least_every_few_periods() -> None:
    """On a quiet machine a 1 ms probe wakes at least 10 times in 50 ms."""
    assert probe(0.05, period_ms=1.0, stall_ms=1000.0)["wakeups"] >= 10


def test_events_are_attributed_to_nearby_stalls_only() -> None:
    stalls = [[10.0, 8.0], [20.0, 3.0]]
    # seen 0.05 s and 0.2 s after a stall (polling lag): attributed; 0.2 s before one or 5 s
    # away from any: not
    assert attribute([10.05, 20.2, 19.8, 15.0], stalls) == 2
    assert attribute([1.0], []) == 0
    # windows of 0.35 s around two stalls, overlapping ones counted once
    assert coverage(stalls, 100.0) == pytest.approx(0.007)
    assert coverage([[5.0, 3.0], [5.1, 3.0]], 10.0) == pytest.approx(0.045)


def test_probe_runs_as_its_own_process(tmp_path) -> None:
    out = tmp_path / "stalls.json"
    subprocess.run([sys.executable, "-m", "stemstream.benchmarks.stall_probe", "--seconds", "0.05", "--out", str(out)],
                   check=True, timeout=60)
    assert json.loads(out.read_text())["wakeups"] > 0


def test_reports_are_written_whole_with_an_optional_plot(tmp_path) -> None:
    from stemstream.benchmarks.report import write_report, wrote

    def plot(path) -> None:
        assert path.suffix == ".png"  # writers that look at the suffix still see it
        path.write_bytes(b"png")

    paths = write_report(tmp_path / "a", "soak", {"x": 1.5}, "# t\n", plot)
    assert [p.name for p in paths] == ["soak.json", "soak.md", "soak.png"]
    assert json.loads(paths[0].read_text()) == {"x": 1.5} and paths[1].read_text() == "# t\n"
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["soak.json", "soak.md", "soak.png"]
    assert [p.name for p in write_report(tmp_path / "b", "t", {}, "", lambda p: False)] == ["t.json", "t.md"]
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["t.json", "t.md"]
    assert wrote(paths).startswith("wrote ") and wrote(paths).endswith(" and " + str(paths[2]))


def test_a_failing_plot_leaves_no_partial_file(tmp_path) -> None:
    from stemstream.benchmarks.report import write_report

    def plot(path) -> None:
        path.write_bytes(b"half")
        raise RuntimeError("matplotlib failed")

    with pytest.raises(RuntimeError):
        write_report(tmp_path, "t", {}, "", plot)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.json", "t.md"]


def test_bench_stalls_command(tmp_path, capsys) -> None:
    from stemstream.bridge.cli.main import main

    assert main(["bench", "stalls", "--seconds", "0.05", "--out", str(tmp_path)]) == 0
    r = json.loads((tmp_path / "stalls.json").read_text())
    assert r["block_ms"] == pytest.approx(256 / 44.1) and r["stalls_over_block"] <= r["stalls_over_5ms"]
    assert "stalls longer than one 256-sample block" in (tmp_path / "stalls.md").read_text()
    assert main(["bench", "stalls", "--seconds", "0"]) == 2
    assert "--seconds=0.0" in capsys.readouterr().err


def test_soak_attributes_misses_and_classifies_slow_calls() -> None:
    """The soak's summaries: misses near a probe stall / JACK xrun / slow call are counted as
    such, and each slow call is classed by where most of its time went."""
    from stemstream.benchmarks.live_soak import _slow_call_summary, _stall_summary

    stalls = {"scheduling": "fifo:90", "wakeups": 1000, "late_ms": {"max": 12.0},
              "stalls": [[100.0, 12.0], [200.0, 3.0]]}
    events = {"xruns": [100.02], "deadline_misses": [100.05, 150.0], "steal": [[150.01, 10.0]]}
    m = _stall_summary(stalls, events, 300.0, 256, 44100)
    assert m["misses_with_stall"] == 1 and m["xruns_with_stall"] == 1 and m["misses_with_xrun"] == 1
    assert m["misses_with_steal"] == 1 and m["stalls_over_5ms"] == 1 and m["stalls_over_block"] == 1
    # (end, wall, cpu, wait, blocked, spare, frames): CPU-bound, waiting for a CPU and late-started
    calls = [(100.01, 0.008, 0.007, 0.0005, 0.0005, 0.0, 256.0),
             (149.99, 0.013, 0.002, 0.011, 0.0, -10.0, 256.0),
             (250.0, 0.004, 0.003, 0.0, 0.001, 100.0, 512.0)]
    s = _slow_call_summary(calls, events, stalls, 256)
    assert s["count"] == 3 and s["mostly"] == {"cpu": 2, "wait": 1, "blocked": 0}
    assert s["late_starts"] == 1 and s["ended_late"] == 1 and s["misses_with_slow_call"] == 2
    assert s["slow_calls_with_stall"] == 1 and s["worst"][0][0] == 13.0
