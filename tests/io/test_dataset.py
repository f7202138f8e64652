"""ShardDataset: one dataset over many shards, lazily opened per DataLoader worker."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from handtools.io.dataset import ShardDataset
from tests.conftest import random_batch, write_shard


def test_dataset_over_shards_with_workers(tmp_path):
    batches = [random_batch(n, v=1, names=["images", "K", "joints3d"], seed=s) for s, n in enumerate([3, 5, 2])]
    paths = [write_shard(tmp_path / f"s{i}.h5", b, num_views=1) for i, b in enumerate(batches)]
    ds = ShardDataset(paths, ["images", "joints3d"])
    assert len(ds) == 10 and ds.num_views == 1 and ds.image_size == (16, 20)
    assert ds.locate(0) == (0, 0) and ds.locate(3) == (1, 0) and ds.locate(9) == (2, 1)
    want = np.concatenate([b["joints3d"] for b in batches])
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2, shuffle=False)
    got = torch.cat([b["joints3d"] for b in loader]).numpy()
    np.testing.assert_array_equal(got, want)
    idx = torch.cat([b["index"] for b in loader]).numpy()
    np.testing.assert_array_equal(idx, np.arange(10))
    with pytest.raises(IndexError):
        ds[10]


def test_dataset_requires_fields(tmp_path):
    p = write_shard(tmp_path / "a.h5", random_batch(2, names=["K"]))
    with pytest.raises(Exception, match="joints3d: missing dataset"):
        ShardDataset([p], ["joints3d"])


def test_dataset_rejects_mixed_views(tmp_path):
    a = write_shard(tmp_path / "a.h5", random_batch(2, v=1, names=["K"]), num_views=1)
    b = write_shard(tmp_path / "b.h5", random_batch(2, v=2, names=["K"]), num_views=2)
    with pytest.raises(ValueError, match="view counts"):
        ShardDataset([a, b], ["K"])
