"""``stemstream data lmms`` with the real LMMS on a two-track project made here: each track rendered
alone, labelled, licensed, written and loaded, its beats on the grid from sample 0 (the LMMS recipes
rely on it). Skipped where the Debian packages lmms / lmms-common are not installed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from stemstream.export.data.electronic import load_lmms
from stemstream.export.data.lmms_render import build_lmms_set

pytestmark = pytest.mark.skipif(
    shutil.which("lmms") is None or not Path("/usr/share/lmms/samples/drums/kick01.ogg").is_file(),
    reason="Debian packages lmms and lmms-common not installed (apt-get install -y lmms lmms-common)")

SR = 44100

PROJECT = """<?xml version="1.0"?>
<!DOCTYPE lmms-project>
<lmms-project version="1.0" creator="LMMS" creatorversion="1.2.2" type="song">
 <head bpm="120" timesig_numerator="4" timesig_denominator="4" mastervol="100" masterpitch="0"/>
 <song><trackcontainer type="song">
  <track type="0" name="Bass" muted="0" solo="0">
   <instrumenttrack vol="100" pan="0" fxch="0" basenote="57" pitch="0" pitchrange="1" usemasterpitch="1">
    <instrument name="tripleoscillator"><tripleoscillator/></instrument></instrumenttrack>
   <pattern pos="0" len="192" type="1" name="" muted="0" steps="16">
    <note pos="0" len="96" key="33" vol="100" pan="0"/><note pos="96" len="96" key="36" vol="100" pan="0"/></pattern>
  </track>
  <track type="0" name="kick01.ogg" muted="0" solo="0">
   <instrumenttrack vol="100" pan="0" fxch="0" basenote="57" pitch="0" pitchrange="1" usemasterpitch="1">
    <instrument name="audiofileprocessor"><audiofileprocessor src="drums/kick01.ogg" amp="100" reversed="0"
     looped="0" sframe="0" eframe="1" interp="1" stutter="0" lframe="0"/></instrument></instrumenttrack>
   <pattern pos="0" len="192" type="1" name="" muted="0" steps="16">
    <note pos="0" len="12" key="57" vol="100" pan="0"/><note pos="48" len="12" key="57" vol="100" pan="0"/>
    <note pos="96" len="12" key="57" vol="100" pan="0"/><note pos="144" len="12" key="57" vol="100" pan="0"/></pattern>
  </track>
  <track type="0" name="Muted lead" muted="1" solo="0">
   <instrumenttrack vol="100" pan="0" fxch="0" basenote="57" pitch="0" pitchrange="1" usemasterpitch="1">
    <instrument name="tripleoscillator"><tripleoscillator/></instrument></instrumenttrack>
   <pattern pos="0" len="192" type="1" name="" muted="0" steps="16"><note pos="0" len="96" key="69" vol="100" pan="0"/></pattern>
  </track>
 </trackcontainer></song>
</lmms-project>
"""

COPYRIGHT = """Files: *
Copyright: LMMS developers
License: GPL-2+

Files: data/projects/demos/Saber-*
Copyright: Saber Rastikerdar
License: BSD-2-clause
"""


def test_a_project_rendered_track_by_track_and_loaded(tmp_path: Path) -> None:
    projects = tmp_path / "projects" / "demos"
    projects.mkdir(parents=True)
    (projects / "Saber-Mini.mmp").write_text(PROJECT)
    (tmp_path / "copyright").write_text(COPYRIGHT)
    summary = build_lmms_set(tmp_path / "out", tmp_path / "projects", tmp_path / "copyright", timeout_s=300,
                             workers=2)
    assert summary["songs"]["Saber-Mini"]["licence"] == "BSD-2-clause" and summary["skipped"] == {}
    meta = json.loads((tmp_path / "out" / "Saber-Mini" / "tracks.json").read_text())
    assert [(t["name"], t["stem"]) for t in meta["tracks"]] == [("Bass", "bass"), ("kick01.ogg", "drums")]
    assert meta["copyright"] == ["Saber Rastikerdar"] and meta["bpm"] == 120.0
    assert not list((tmp_path / "out").glob(".*"))  # no render folder or partial song left behind
    (song,) = load_lmms(tmp_path / "out", "train")
    drums, bass = song.stems[0].astype(np.float32), song.stems[1].astype(np.float32)
    assert np.abs(bass).max() > 0.1 and np.abs(song.stems[2]).max() == 0  # the muted lead is not there
    for beat in range(4):  # a kick on every beat, from sample 0
        at = beat * SR // 2
        assert np.abs(drums[:, at : at + 64]).max() > 0.1, beat
        if beat:
            assert np.abs(drums[:, at - 64 : at]).max() < 0.5 * np.abs(drums[:, at : at + 64]).max(), beat
