"""The diffusion table's live rows (excerpt alignment across rates) and its ``--rows`` merge."""

from __future__ import annotations

import numpy as np
import pytest

from stemstream.benchmarks.diffusion_rows import GROUPS, _groups, _merge, excerpt_pair, live_row
from stemstream.realtime.errors import ConfigError
from stemstream.realtime.protocol import ModelInfo
from stemstream.realtime.stems import STEMS


class _QuarterModel:
    """A stereo 44.1 kHz hop model whose every stem is a quarter of its input, delayed by
    ``latency_samples``: SI-SDRi 0 dB exactly when the benchmark aligns its output."""

    kind = "hop"
    hop_samples = 128
    max_hops_per_call = 64

    def __init__(self, latency: int = 128) -> None:
        self.info = ModelInfo("quarter", STEMS, 44100, 2, latency)

    def init_state(self) -> dict[str, np.ndarray]:
        return {"tail": np.zeros((2, self.info.latency_samples), np.float32)}

    def process_hops(self, audio: np.ndarray, state: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        joined = np.concatenate([state["tail"], audio], axis=1)
        out = np.repeat(joined[None, :, : audio.shape[1]] / 4, len(STEMS), axis=0)
        return out.astype(np.float32), {"tail": joined[:, audio.shape[1] :]}


def _song(seconds: float = 1.5, seed: int = 3) -> np.ndarray:
    """Four broadband stereo stems ``(4, 2, T)`` at 44.1 kHz."""
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal((4, 2, int(seconds * 44100)))).astype(np.float32)


def test_excerpt_pair_covers_the_excerpt() -> None:
    clip, full = excerpt_pair(_song(), 44100, 8000, 4096)
    assert clip.shape == (4, 1, 4096) and full["mixture"].shape[0] == 2
    start_8k = full["offset"]
    span_8k = full["mixture"].shape[1] * 8000 / 44100
    assert 80 <= start_8k <= 160 and 80 <= span_8k - start_8k - 4096 <= 160  # 10-20 ms each side
    assert excerpt_pair(_song(0.2), 44100, 8000, 4096) is None


@pytest.mark.parametrize("full_band", [False, True])
def test_live_row_is_aligned(full_band: bool) -> None:
    clip, full = excerpt_pair(_song(), 44100, 8000, 4096)
    row = live_row(_QuarterModel(), [clip], [full] if full_band else None, 8000, STEMS, "quarter")
    # full band: the 8 kHz reference is the same audio resampled, so only resampler edges differ;
    # 8 kHz input: a 8 -> 44.1 -> 8 kHz round trip, which dulls the band edge a little (0.1 dB held with soxr;
    # the engine's own polyphase resampler since 3951436: -0.14 dB HQ, -0.68 dB LD; one sample of
    # misalignment costs more than 3 dB, test_live_row_misalignment_would_show)
    assert row["all"] == pytest.approx(0.0, abs=1e-3 if full_band else 0.25)
    assert row["network_evals"] == int(np.ceil(4096 / 8000 * 44100 / 128)) and row["group"] == "live"


def test_live_row_misalignment_would_show() -> None:
    clip, full = excerpt_pair(_song(), 44100, 8000, 4096)
    shifted = {**full, "offset": full["offset"] + 1}
    assert live_row(_QuarterModel(), [clip], [shifted], 8000, STEMS, "quarter")["all"] < -3.0


def test_rows_option() -> None:
    assert _groups("all") == GROUPS
    assert _groups("student, live") == ("student", "live")
    with pytest.raises(ConfigError, match="--rows='studnet'"):
        _groups("studnet")


def test_merge_keeps_other_groups_in_order() -> None:
    old = [{"model": "mixture"}, {"model": "teacher Dirac 8 steps"}, {"model": "student 1 step"},
           {"model": "oracle denoiser (sampler check), Dirac"}]
    new = [{"model": "live (live, onnx)", "group": "live"}, {"model": "student 1 step", "group": "student", "all": 1.0}]
    merged = _merge(old, new, ("student", "live"), "table")
    assert [r["model"] for r in merged] == ["mixture", "teacher Dirac 8 steps", "oracle denoiser (sampler check), Dirac",
                                            "student 1 step", "live (live, onnx)"]
    assert merged[3]["all"] == 1.0
    seg = _merge([{"model": "teacher Dirac 16 steps, naive"}, {"model": "live (old)"}], [{"model": "live", "group": "live"}],
                 ("live",), "segments")
    assert [r["model"] for r in seg] == ["teacher Dirac 16 steps, naive", "live"]


def test_diagnostics_with_an_oracle_denoiser() -> None:
    """An exact denoiser: denoising gains at every level, and the projected sampler returns the
    true stems from either start; the tables come out in Markdown."""
    import torch

    from stemstream.benchmarks.diffusion_diagnose import DENOISER_SIGMAS, WARM_SIGMAS, diagnose, markdown

    rng = np.random.default_rng(0)
    clip = (0.1 * rng.standard_normal((4, 1, 512))).astype(np.float32)
    clean = torch.from_numpy(clip)[None]
    diag = diagnose(lambda x, sigma: clean.expand_as(x), [clip])
    assert [r["sigma"] for r in diag["denoiser"]] == list(DENOISER_SIGMAS)
    assert all(r["denoised_db"] > 60 > r["noisy_db"] for r in diag["denoiser"])
    projected = [r for r in diag["warm_start"] if r["sampler"] == "dirac-projected"]
    assert len(projected) == 2 * len(WARM_SIGMAS) and all(r["sisdri_db"] > 40 for r in projected)
    text = "\n".join(markdown(diag))
    assert "| dirac-projected | mixture/N |" in text and "| 0.1 |" in text


def test_teacher_rows_name_the_constrained_stem() -> None:
    import torch

    from stemstream.benchmarks.diffusion_table import _teacher_rows, teacher_runs
    from stemstream.export.train.diffusion import CONFIGS
    from stemstream.realtime.diffusion.unet import ScoreUNet

    torch.manual_seed(0)
    net = CONFIGS["diffusion-tiny"].net
    clip = (0.05 * np.random.default_rng(2).standard_normal((4, 1, net.segment_samples))).astype(np.float32)
    runs = teacher_runs(len(STEMS))
    assert [r[4] for r in runs if r[4] >= 0] == [0, 1, 2]  # piano, the default, is constrained in the other rows
    runs = [r for r in runs if r[4] >= 0 or r[:3] == ("dirac", 8, 0)]
    rows = _teacher_rows(ScoreUNet(net).eval(), [clip], ("teacher",), net.segment_samples / net.sample_rate, STEMS,
                         runs)
    labels = [r["model"] for r in rows]
    assert sum("constrained" in label for label in labels) == 3
    assert any(label.endswith(", drums constrained") and "Dirac 32 steps" in label for label in labels)
    assert not any(r["group"] == "oracle" for r in rows)
