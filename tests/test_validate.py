"""`stemstream validate`: the quick battery passes on a real model file, and a broken model fails it."""

from __future__ import annotations

import json
from pathlib import Path

from stemstream.benchmarks.validation.battery import run_checks, summary
from stemstream.benchmarks.validation.checks import ENGINE_CHECKS, Context
from stemstream.bridge.cli.main import main
from stemstream.realtime.backends.torch_backend import TorchHopModel
from tests.engine_support import GainDelayConfig, GainDelayModule


def test_quick_battery_passes_and_writes_its_table(tmp_path: Path, tiny_live_weights: Path, capsys) -> None:
    code = main(["validate", "--quick", "--model", str(tiny_live_weights), "--backend", "onnx",
                 "--only", "rates,channels,signals,failure", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    payload = json.loads((tmp_path / "validate.json").read_text())
    assert code == 0, out
    assert payload["failed"] == 0 and payload["passed"] == len(payload["results"]) >= 10
    cases = {(r["check"], r["case"]) for r in payload["results"]}
    assert {("rates", "8000 Hz"), ("rates", "192000 Hz"), ("signals", "denormal 1e-40"), ("channels", "mono"),
            ("failure", "backend raises mid-stream")} <= cases
    rate_rows = [r for r in payload["results"] if r["check"] == "rates"]
    assert all("measured" in r["detail"] for r in rate_rows)
    assert "| pass | signals | NaN / Inf |" in (tmp_path / "validate.md").read_text()


def test_a_model_whose_stems_do_not_add_up_fails_and_the_battery_goes_on() -> None:
    # stems = (1, -0.5, 0.25, 0.125) x input: they add up to 0.875 x input, not the input
    model = TorchHopModel(GainDelayModule(GainDelayConfig(hop=64, latency_samples=10)), "gain-delay")
    ctx = Context(model=model, model_name="gain-delay", quick=True)
    results = run_checks(ctx, {"channels": ENGINE_CHECKS["channels"], "signals": ENGINE_CHECKS["signals"]})
    by_case = {r.case: r for r in results}
    assert not by_case["mono"].passed and not by_case["stereo"].passed and "sum vs input" in by_case["mono"].detail
    assert by_case["silence"].passed and by_case["NaN / Inf"].passed  # the rest still ran
    assert summary(results)["failed"] >= 2


def test_bad_selection_is_one_line(tmp_path: Path, capsys) -> None:
    assert main(["validate", "--only", "rates,nonsense", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--only" in err


def test_live_checks_kill_and_restart_a_real_jack_server(tmp_path: Path, tiny_live_weights: Path) -> None:
    import pytest

    from stemstream.benchmarks.rig.jack_server import jackd_available

    if not jackd_available():
        pytest.skip("jackd is not installed")
    code = main(["validate", "--quick", "--model", str(tiny_live_weights), "--only", "jack", "--out", str(tmp_path)])
    payload = json.loads((tmp_path / "validate.json").read_text())
    row = payload["results"][0]
    assert code == 0 and row["passed"], row["detail"]
    assert "reconnected" in row["detail"] and "outages counted 1" in row["detail"]
