"""`stemstream data`: a working run and the error paths (one stderr line, exit code 2)."""

from __future__ import annotations

import json

import pytest

from stemstream.bridge.cli.main import main


def _one_error_line(capsys, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("stemstream: error:")
    for needle in needles:
        assert needle in err, err
    return err


def test_synth_and_info(tmp_path, capsys):
    out = tmp_path / "ds"
    rc = main(["data", "synth", "--out", str(out), "--songs", "1", "--seconds", "2",
               "--seed", "3", "--workers", "1"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "x real time per core" in printed
    assert json.loads((out / "dataset.json").read_text())["seed"] == 3
    assert main(["data", "info", str(out)]) == 0
    assert "1 track(s)" in capsys.readouterr().out


@pytest.mark.parametrize("args,needles", [
    (["--songs", "0"], ("songs=0",)),
    (["--songs", "abc"], ("--songs='abc'", "integer")),
    (["--songs", "-3"], ("songs=-3",)),
    (["--seconds", "nan"], ("seconds=nan",)),
    (["--seconds", "0.01"], ("seconds=0.01",)),
    (["--seed", "-1"], ("seed=-1",)),
    (["--workers", "0"], ("workers=0",)),
])
def test_bad_values(tmp_path, capsys, args, needles):
    base = {"--out": str(tmp_path / "o"), "--songs": "1", "--seconds": "2", "--seed": "0"}
    for flag, value in zip(args[::2], args[1::2]):
        base[flag] = value
    argv = ["data", "synth"] + [x for kv in base.items() for x in kv]
    assert main(argv) == 2
    _one_error_line(capsys, *needles)


def test_unwritable_and_missing(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["data", "synth", "--out", str(blocker), "--songs", "1", "--seconds", "2"]) == 2
    _one_error_line(capsys, "out=", "directory")
    assert main(["data", "synth", "--out", str(blocker / "sub"), "--songs", "1", "--seconds", "2"]) == 2
    _one_error_line(capsys, "out=", "writable")
    assert main(["data", "synth", "--out", str(tmp_path / "o"), "--seconds", "2"]) == 2
    _one_error_line(capsys, "--songs")
    assert main(["data"]) == 2
    _one_error_line(capsys, "synth")
    assert main(["data", "info", str(tmp_path / "nothing")]) == 2
    _one_error_line(capsys, "does not exist")
