"""The training batch sampler: seeded draws, and the on-device gatherer matching the host one."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from stemstream.export.train.data import DeviceRemixSampler, RemixSampler, SongSet
from stemstream.export.train.run import check_device
from stemstream.realtime.errors import ConfigError


@pytest.fixture()
def songs() -> SongSet:
    rng = np.random.default_rng(3)
    audio = [rng.standard_normal((4, 2, n)).astype(np.float32) for n in (5000, 7000, 6100)]
    return SongSet([f"song{i}" for i in range(3)], audio, "memory")


def test_device_sampler_gathers_the_host_batches(songs: SongSet) -> None:
    host = RemixSampler(songs, 1000, seed=11)
    gathered = DeviceRemixSampler(songs, 1000, seed=11, device="cpu")
    for _ in range(4):
        mix_h, stems_h = host.batch(6)
        mix_d, stems_d = gathered.batch(6)
        assert stems_d.shape == (6, 4, 2, 1000) and mix_d.shape == (6, 2, 1000)
        torch.testing.assert_close(stems_d, stems_h, rtol=0, atol=1e-6)
        torch.testing.assert_close(mix_d, mix_h, rtol=0, atol=1e-6)


def test_plan_is_seeded_and_batches_follow_it(songs: SongSet) -> None:
    song, start, gain, swap = RemixSampler(songs, 1000, seed=5).plan(8)
    again = RemixSampler(songs, 1000, seed=5).plan(8)
    for a, b in zip((song, start, gain, swap), again):
        np.testing.assert_array_equal(a, b)
    assert swap.any() and not swap.all() and (gain > 0.5).all() and (gain < 2.0).all()
    _, stems = RemixSampler(songs, 1000, seed=5).batch(8)
    b, s = 0, 2
    expected = songs.audio[song[b, s]][s, ::-1 if swap[b, s] else 1, start[b, s] : start[b, s] + 1000] * gain[b, s]
    np.testing.assert_allclose(stems[b, s].numpy(), expected, atol=1e-6)


def test_device_names_are_checked() -> None:
    assert check_device("cpu") == "cpu"
    with pytest.raises(ConfigError, match="expected cpu, cuda or cuda:N"):
        check_device("tpu")
    with pytest.raises(ConfigError, match="CUDA device"):
        check_device("cuda:99")
