"""The chunk protocol (silent and single-source chunks skipped, counts, aggregates) and the
reference separators (mixture: SI-SDRi exactly 0; oracle-mask: a high ceiling)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from stemstream.export.evaluation.protocol import chunk_starts, evaluate_tracks, format_table, rms_db, write_json
from stemstream.export.evaluation.metrics import si_sdr
from stemstream.export.evaluation.reference import MixtureSeparator, OracleMaskSeparator, reference_separator
from stemstream.export.data.tracks import Track
from stemstream.realtime.errors import ConfigError, StemstreamError

torch.set_num_threads(1)

RATE = 1000  # a low rate keeps the 4 s chunks small; the protocol is in seconds


def _active(seconds: float, start: float, stop: float, freq: float, seed: int) -> np.ndarray:
    """Stereo tone with noise between ``start`` and ``stop`` s, -100 dBFS noise floor elsewhere."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    gate = ((t >= start) & (t < stop)).astype(np.float64)
    tone = 0.3 * np.sin(2 * np.pi * freq * t) + 0.05 * rng.standard_normal(t.size)
    floor = 1e-5 * rng.standard_normal(t.size)  # "silent" is a threshold, not digital zero
    mono = gate * tone + floor
    return np.stack([mono, 0.7 * mono]).astype(np.float32)


def _track(stems: dict[str, np.ndarray], name: str = "t") -> Track:
    return Track(name, RATE, stems, np.sum(list(stems.values()), axis=0).astype(np.float32))


def _protocol_track() -> Track:
    # 12 s: chunks start at 0, 2, 4, 6, 8 s (5 chunks)
    return _track({
        "bass": _active(12, 0, 8, 55, 0),     # silent in [8, 12)
        "drums": _active(12, 0, 4, 170, 1),   # active in [0, 4)
        "piano": _active(12, 6, 12, 330, 2),  # active in [6, 12)
    })


def test_chunk_starts() -> None:
    assert chunk_starts(10, 4, 2) == [0, 2, 4, 6]
    assert chunk_starts(11, 4, 2) == [0, 2, 4, 6]  # the 1-sample tail is not scored
    assert chunk_starts(3, 4, 2) == [0]  # shorter than a chunk: one chunk of its length
    assert chunk_starts(0, 4, 2) == []
    with pytest.raises(ConfigError):
        chunk_starts(10, 0, 2)


def test_rms_db() -> None:
    assert rms_db(np.zeros(10)) == -np.inf
    assert rms_db(np.ones((2, 10))) == pytest.approx(0.0)
    assert rms_db(np.full(10, 1e-3)) == pytest.approx(-60.0)


def test_silent_and_single_source_chunks_are_skipped_and_counted() -> None:
    track = _protocol_track()
    sep = OracleMaskSeparator(("bass", "drums", "guitar", "piano"), stft_size=256)
    report = evaluate_tracks([track], sep, sep.stems)
    counts = report["counts"]
    assert counts["tracks"] == 1 and counts["chunks"] == 5
    # chunk [8, 12) s holds only the piano: skipped whole
    assert counts["chunks_skipped_few_sources"] == 1
    # kept chunks 0,2,4,6 s: bass active in all 4; drums in 0,2; piano in 4,6
    assert {s: report["per_stem"][s]["chunks"] for s in ("bass", "drums", "piano")} == {
        "bass": 4, "drums": 2, "piano": 2}
    assert counts["pairs_skipped_silent"] == {"bass": 0, "drums": 2, "guitar": 0, "piano": 2}
    assert counts["pairs_scored"] == 8
    # guitar is output but absent from the track: skipped and reported
    assert report["stems_not_in_dataset"] == {"guitar": 1}
    assert "guitar" not in report["per_stem"]
    chunks = report["tracks"][0]["chunk_values"]
    assert [c["start_s"] for c in chunks] == [0.0, 2.0, 4.0, 6.0]
    assert set(chunks[0]) == {"start_s", "bass", "drums"}
    assert set(chunks[3]) == {"start_s", "bass", "piano"}
    # the threshold decides: at -120 dBFS the noise floor counts as active
    loose = evaluate_tracks([track], sep, sep.stems, silence_db=-120.0, with_sdr=False)
    assert loose["counts"]["chunks_skipped_few_sources"] == 0
    assert loose["counts"]["pairs_scored"] == 15


def test_aggregates_are_means_and_medians_of_chunk_values() -> None:
    track = _protocol_track()
    sep = OracleMaskSeparator(("bass", "drums", "piano"), stft_size=256)
    report = evaluate_tracks([track, _protocol_track()], sep, sep.stems)
    values = {s: [] for s in sep.stems}
    for t in report["tracks"]:
        for c in t["chunk_values"]:
            for s in sep.stems:
                if s in c:
                    values[s].append(c[s]["si_sdri"])
    for s in sep.stems:
        assert report["per_stem"][s]["si_sdri"]["mean"] == pytest.approx(np.mean(values[s]))
        assert report["per_stem"][s]["si_sdri"]["median"] == pytest.approx(np.median(values[s]))
        assert report["tracks"][0]["per_stem"][s]["chunks"] * 2 == report["per_stem"][s]["chunks"]
    pooled = [v for s in sep.stems for v in values[s]]
    assert report["overall"]["chunks"] == 16
    assert report["overall"]["si_sdri"]["mean"] == pytest.approx(np.mean(pooled))
    assert report["overall"]["stem_mean"]["si_sdri"] == pytest.approx(
        np.mean([np.mean(values[s]) for s in sep.stems]))
    assert np.isfinite(report["overall"]["sdr"]["mean"])


def test_stems_not_scored_still_count_as_sources() -> None:
    # bass + other, only bass scored: the chunk has two active sources and is kept
    track = _track({"bass": _active(4, 0, 4, 55, 3), "other": _active(4, 0, 4, 440, 4)})
    report = evaluate_tracks([track], MixtureSeparator(("bass",)), ("bass",), with_sdr=False)
    assert report["counts"]["chunks_skipped_few_sources"] == 0
    assert report["per_stem"]["bass"]["chunks"] == 1
    alone = _track({"bass": _active(4, 0, 4, 55, 3)})
    report = evaluate_tracks([alone], MixtureSeparator(("bass",)), ("bass",), with_sdr=False)
    assert report["counts"]["chunks_skipped_few_sources"] == 1
    assert report["per_stem"]["bass"]["chunks"] == 0
    assert report["per_stem"]["bass"]["si_sdri"]["mean"] is None


def test_mixture_reference_improves_exactly_zero() -> None:
    track = _protocol_track()
    sep = reference_separator("mixture", ("bass", "drums", "piano"))
    report = evaluate_tracks([track], sep, sep.stems)
    for c in report["tracks"][0]["chunk_values"]:
        for s in sep.stems:
            if s in c:
                assert c[s]["si_sdri"] == 0.0
                a = int(c["start_s"] * RATE)
                ref = track.stems[s][:, a:a + 4 * RATE].reshape(-1)
                mix = track.mixture[:, a:a + 4 * RATE].reshape(-1)
                assert c[s]["si_sdr"] == pytest.approx(float(si_sdr(mix, ref)), abs=1e-9)
    assert report["overall"]["si_sdri"] == {"mean": 0.0, "median": 0.0}


def test_oracle_mask_on_sinusoids_is_high_and_sums_to_the_mixture() -> None:
    rate, seconds = 44100, 6
    t = np.arange(rate * seconds) / rate
    bass = 0.4 * np.sin(2 * np.pi * 82.4 * t) + 0.1 * np.sin(2 * np.pi * 164.8 * t)
    piano = 0.2 * np.sin(2 * np.pi * 523.3 * t) * (t > 0.5) + 0.1 * np.sin(2 * np.pi * 1046.5 * t)
    guitar = 0.15 * np.sin(2 * np.pi * 329.6 * t + 1.0) + 0.05 * np.sin(2 * np.pi * 2637 * t)
    stems = {"bass": np.stack([bass, 0.8 * bass]), "piano": np.stack([0.9 * piano, piano]),
             "guitar": np.stack([guitar, guitar])}
    stems = {k: v.astype(np.float32) for k, v in stems.items()}
    track = Track("sines", rate, stems, np.sum(list(stems.values()), axis=0).astype(np.float32))
    names = ("bass", "guitar", "piano")
    fine = OracleMaskSeparator(names, stft_size=2048)
    est = fine(track)
    assert est.shape == (3, 2, rate * seconds) and est.dtype == np.float32
    np.testing.assert_allclose(est.sum(0), track.mixture, atol=1e-5)
    report = evaluate_tracks([track], fine, names, with_sdr=False)
    assert report["counts"]["chunks"] == 2
    for s in names:
        assert report["per_stem"][s]["si_sdri"]["mean"] > 15.0
    # a short window cannot resolve 82 Hz from 165 Hz as well: lower ceiling
    coarse = evaluate_tracks([track], OracleMaskSeparator(names, stft_size=256), names, with_sdr=False)
    assert coarse["overall"]["si_sdri"]["mean"] < report["overall"]["si_sdri"]["mean"] - 3.0


def test_oracle_mask_reconstructs_a_lone_stem_exactly() -> None:
    rng = np.random.default_rng(5)
    audio = (0.3 * rng.standard_normal((2, 5000))).astype(np.float32)
    track = Track("one", 44100, {"drums": audio}, audio.copy())
    for size in (256, 1024):
        est = OracleMaskSeparator(("drums", "bass"), stft_size=size)(track)
        np.testing.assert_allclose(est[0], audio, atol=1e-5)
        assert np.all(est[1] == 0.0)  # a stem the track lacks is silence


def test_reference_and_input_errors() -> None:
    with pytest.raises(ConfigError, match="stft_size"):
        OracleMaskSeparator(("bass",), stft_size=1000 + 2)
    with pytest.raises(ConfigError, match="model"):
        reference_separator("nope", ("bass",))
    track = _protocol_track()
    with pytest.raises(StemstreamError, match="shape"):
        evaluate_tracks([track], lambda tr: np.zeros((1, 2, 10)), ("bass",))
    with pytest.raises(ConfigError, match="no tracks"):
        evaluate_tracks([], MixtureSeparator(("bass",)), ("bass",))
    with pytest.raises(ConfigError, match="stems"):
        evaluate_tracks([track], MixtureSeparator(("bass",)), ())


def test_json_and_table(tmp_path) -> None:
    sep = OracleMaskSeparator(("bass", "drums", "guitar", "piano"), stft_size=256)
    report = evaluate_tracks([_protocol_track()], sep, sep.stems)
    path = write_json(report, tmp_path / "sub" / "r.json")
    assert json.loads(path.read_text()) == report
    table = format_table(report)
    lines = table.splitlines()
    assert lines[0].split()[:2] == ["stem", "chunks"]
    assert any(line.startswith("bass ") for line in lines)
    assert "1 skipped" in table and "'guitar'" in table


def test_model_separator_runs_a_weight_file_through_the_engine(tiny_live_weights, tiny_live_config) -> None:
    from stemstream.export.evaluation.separators import model_separator

    config = tiny_live_config
    sep = model_separator(str(tiny_live_weights))
    assert sep.stems == config.stems
    rng = np.random.default_rng(6)
    stems = {s: (0.1 * rng.standard_normal((2, 44100 * 2))).astype(np.float32) for s in ("bass", "drums")}
    track = Track("noise", 44100, stems, stems["bass"] + stems["drums"])
    out = sep(track)
    assert out.shape == (len(config.stems), 2, 44100 * 2) and out.dtype == np.float32
    report = evaluate_tracks([track], sep, sep.stems, with_sdr=False)
    assert report["per_stem"]["bass"]["chunks"] == 1  # a 2 s track is one chunk
    assert report["stems_not_in_dataset"] == {"guitar": 1, "piano": 1}
    assert np.isfinite(report["overall"]["si_sdri"]["mean"])


def _noise_track(seconds: float, names: tuple[str, ...], seed: int) -> Track:
    rng = np.random.default_rng(seed)
    n = int(44100 * seconds)
    stems = {s: (0.1 * rng.standard_normal((2, n)) * np.linspace(k % 2, 1, n)).astype(np.float32)
             for k, s in enumerate(names)}
    return Track("noise", 44100, stems, np.sum(list(stems.values()), axis=0).astype(np.float32))


def test_live_window_oracle_is_aligned_sums_to_the_mixture_and_ignores_block_size() -> None:
    from stemstream.export.evaluation.reference import LowDelayOracleMaskSeparator

    track = _noise_track(1.3, ("bass", "drums", "piano"), 7)
    sep = reference_separator("oracle-mask", ("bass", "drums", "guitar"), windows="live")
    assert isinstance(sep, LowDelayOracleMaskSeparator)
    assert (sep.analysis_samples, sep.synthesis_samples, sep.hop_samples) == (1024, 256, 128)
    assert sep.latency_samples == 128
    est = sep(track)
    assert est.shape == (3, 2, track.num_samples) and est.dtype == np.float32
    assert np.all(est[2] == 0.0)  # guitar: not in the track
    full = LowDelayOracleMaskSeparator(("bass", "drums", "piano"))(track)
    np.testing.assert_allclose(full.sum(0), track.mixture, atol=1e-5)  # masks sum to one
    np.testing.assert_array_equal(full[:2], est[:2])
    small_blocks = LowDelayOracleMaskSeparator(("bass", "drums", "piano"), block_hops=3)(track)
    np.testing.assert_allclose(small_blocks, full, atol=1e-6)
    # a lone stem comes back exactly, aligned with the input (latency trimmed)
    lone = Track("one", 44100, {"drums": track.stems["drums"]}, track.stems["drums"].copy())
    np.testing.assert_allclose(LowDelayOracleMaskSeparator(("drums",))(lone)[0], lone.mixture, atol=1e-5)
    with pytest.raises(ConfigError, match="oracle windows"):
        reference_separator("oracle-mask", ("bass",), windows="square")


def test_model_separator_of_a_module_equals_its_weight_file(tiny_live_model, tiny_live_weights,
                                                            tiny_live_config) -> None:
    from stemstream.export.evaluation.separators import SubsetSeparator, model_separator

    config = tiny_live_config
    module, path = tiny_live_model(), tiny_live_weights  # the same seed: the same weights
    track = _noise_track(0.5, ("bass", "drums"), 8)
    in_memory, from_file = model_separator(module, name="tiny"), model_separator(path)
    assert in_memory.stems == from_file.stems == config.stems
    np.testing.assert_array_equal(in_memory(track), from_file(track))
    picked = SubsetSeparator(in_memory, ("drums", "bass"))
    np.testing.assert_array_equal(picked(track), in_memory(track)[[1, 0]])
    with pytest.raises(ConfigError, match="stems"):
        SubsetSeparator(in_memory, ("vocals",))
