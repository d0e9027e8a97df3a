"""RemixDataset: shapes, exact mixtures, seeding, remix/gain/swap behaviour."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from stemstream.export.data.remix import RemixDataset
from stemstream.export.data.tracks import Track
from stemstream.export.data.wavio import write_wav
from stemstream.realtime.errors import AudioInputError, ConfigError
from stemstream.realtime.stems import STEMS

torch.set_num_threads(1)
RATE = 44100


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Three fake synthetic songs; song i's stem k is constant (i + 1) * 10 + k on the left
    channel and its negative on the right, so every sample says where it came from."""
    root = tmp_path_factory.mktemp("remix")
    for i in range(3):
        d = root / f"song{i:05d}"
        d.mkdir()
        n = RATE // 4 + 1000 * i
        for k, stem in enumerate(STEMS):
            if i == 2 and stem == "piano":
                continue  # a song without piano
            v = (i + 1) * 10 + k
            x = np.stack([np.full(n, v, np.float32), np.full(n, -v, np.float32)]) / 100
            write_wav(d / f"{stem}.wav", x, RATE)
        (d / "song.json").write_text(json.dumps({"stems": list(STEMS)}))
    (root / "dataset.json").write_text("{}")
    return root


def test_shapes_and_exact_mixture(folder):
    ds = RemixDataset(folder, 4096, seed=0, length=16)
    assert len(ds) == 16 and len(ds.songs) == 3
    for i in range(16):
        mixture, stems = ds[i]
        assert mixture.shape == (2, 4096) and stems.shape == (len(STEMS), 2, 4096)
        assert mixture.dtype == torch.float32 and stems.dtype == torch.float32
        total = stems[0].clone()
        for s in stems[1:]:
            total += s
        assert torch.equal(total, mixture)
    with pytest.raises(IndexError):
        ds[16]


def test_seeding(folder):
    a = RemixDataset(folder, 2048, seed=7, length=8)
    b = RemixDataset(folder, 2048, seed=7, length=8)
    c = RemixDataset(folder, 2048, seed=8, length=8)
    for i in range(8):
        assert torch.equal(a[i][1], b[i][1])
    assert any(not torch.equal(a[i][1], c[i][1]) for i in range(8))
    first = [a[i][1] for i in range(8)]
    a.set_epoch(1)
    assert any(not torch.equal(first[i], a[i][1]) for i in range(8))
    a.set_epoch(0)
    assert all(torch.equal(first[i], a[i][1]) for i in range(8))


def test_no_augmentation_gives_the_source(folder):
    ds = RemixDataset(folder, 1024, seed=1, length=20, remix_prob=0.0, gain_db=(0.0, 0.0), swap_prob=0.0)
    for i in range(20):
        _, stems = ds[i]
        left = stems[:, 0, 0].numpy()
        song = int(round(left[0] * 100)) // 10 - 1
        for k in range(len(STEMS)):
            if song == 2 and STEMS[k] == "piano":
                assert float(stems[k].abs().max()) == 0.0  # missing stem is silence
                continue
            expected = ((song + 1) * 10 + k) / 100
            assert torch.allclose(stems[k, 0], torch.full((1024,), expected))
            assert torch.allclose(stems[k, 1], torch.full((1024,), -expected))


def test_remix_gain_and_swap(folder):
    ds = RemixDataset(folder, 512, seed=2, length=64, remix_prob=1.0, gain_db=(-6.0, 0.0), swap_prob=0.5)
    mixed_songs = swapped = 0
    for i in range(64):
        _, stems = ds[i]
        sources = set()
        for k in range(len(STEMS)):
            l, r = float(stems[k, 0, 0]), float(stems[k, 1, 0])
            if l == 0.0:
                continue
            assert abs(l + r) < 1e-6
            swapped += l < 0
            value = abs(l) * 100
            # A gain in [-6, 0] dB: value / (song-id*10 + k) in [0.5, 1].
            ratios = [value / ((s + 1) * 10 + k) for s in range(3)]
            assert any(0.49 <= r <= 1.0001 for r in ratios)
            sources.add(min(range(3), key=lambda s: abs(np.log(ratios[s] / 0.75))))
        mixed_songs += len(sources) > 1
    assert mixed_songs > 10 and 20 < swapped < 200


def test_padding_mono_and_tracks():
    track = Track("t", RATE, {"bass": np.ones((1, 300), np.float32)}, np.ones((1, 300), np.float32))
    ds = RemixDataset(None, 1000, seed=0, length=4, tracks=[track], gain_db=(0.0, 0.0), swap_prob=0.0)
    mixture, stems = ds[0]
    assert stems.shape == (4, 2, 1000)
    assert torch.equal(stems[0, :, :300], torch.ones(2, 300)) and float(stems[0, :, 300:].abs().max()) == 0
    assert float(stems[1:].abs().max()) == 0.0
    mono = RemixDataset(None, 200, seed=0, length=2, tracks=[track], channels=1)
    assert mono[0][0].shape == (1, 200)


def test_bad_arguments(folder, tmp_path):
    with pytest.raises(ConfigError, match="excerpt_samples"):
        RemixDataset(folder, 0, seed=0)
    with pytest.raises(ConfigError, match="remix_prob"):
        RemixDataset(folder, 100, seed=0, remix_prob=1.5)
    with pytest.raises(ConfigError, match="gain_db"):
        RemixDataset(folder, 100, seed=0, gain_db=(3.0, -3.0))
    (tmp_path / "empty").mkdir()
    with pytest.raises(AudioInputError):
        RemixDataset(tmp_path / "empty", 100, seed=0)


def test_pickles_paths_not_samples(folder):
    import pickle

    ds = RemixDataset(folder, 1024, seed=3, length=4)
    blob = pickle.dumps(ds)
    assert len(blob) < 20_000  # the memory-mapped samples are not in the pickle
    clone = pickle.loads(blob)
    for i in range(4):
        assert torch.equal(ds[i][1], clone[i][1])
