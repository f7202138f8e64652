"""MonoKeypointDataset: reads images, K, detected keypoints and handedness, nothing else."""

from __future__ import annotations

import numpy as np
import pytest

from handtools.io.mono_data import MonoKeypointDataset
from handtools.io.shards import ShardReader, ShardWriter, history_entry
from tests.conftest import random_batch


def crops_shard(path, command="handtools detect", views=1, n=3, left=None, args=None):
    """A crops shard with every label dataset present (they must never be read)."""
    names = ["images", "K", "keypoints2d", "joints3d", "verts3d", "mano/pose", "mano/shape", "masks", "depth"]
    b = random_batch(n, views, hw=(32, 32), names=names)
    b["keypoints2d"][..., 2] = 0.8
    if left is not None:
        b["hand/is_left"] = np.asarray(left, np.uint8).reshape(n, views)
    with ShardWriter(path.parent, kind="crops", num_views=views, producer="tests",
                     history=[history_entry("handtools synth", args or {}), history_entry(command)],
                     name=lambda k: path.name) as w:
        w.append(b)
    return path, b


def test_reads_only_images_k_keypoints(tmp_path, monkeypatch):
    path, b = crops_shard(tmp_path / "a.h5", left=[0, 1, 0])
    opened = set()
    orig_read, orig_sample = ShardReader.read, ShardReader.read_sample

    def read(self, name, index=()):
        opened.add(name)
        return orig_read(self, name, index)

    def read_sample(self, i, names=None):
        opened.update(names or [])
        return orig_sample(self, i, names)

    monkeypatch.setattr(ShardReader, "read", read)
    monkeypatch.setattr(ShardReader, "read_sample", read_sample)
    ds = MonoKeypointDataset([path])
    items = [ds[i] for i in range(len(ds))]
    assert opened <= set(MonoKeypointDataset.FIELDS)
    assert not set(MonoKeypointDataset.FORBIDDEN) & opened
    assert set(items[0]) == {"image", "K", "keypoints", "conf", "left", "index"}
    np.testing.assert_allclose(items[0]["keypoints"].numpy(), b["keypoints2d"][0, 0, :, :2])
    np.testing.assert_allclose(items[0]["conf"].numpy(), 0.8)
    # the left hand is mirrored: u -> W - u, cx -> W - cx, image flipped
    assert bool(items[1]["left"])
    np.testing.assert_allclose(items[1]["keypoints"][:, 0].numpy(), 32 - b["keypoints2d"][1, 0, :, 0], rtol=1e-6)
    assert float(items[1]["K"][0, 2]) == pytest.approx(32 - b["K"][1, 0, 0, 2])
    np.testing.assert_allclose(items[1]["image"].numpy(), b["images"][1, 0, :, ::-1].transpose(2, 0, 1) / 255.0, rtol=1e-6)
    assert not bool(MonoKeypointDataset([path], mirror_left=False)[1]["left"])


def test_refuses_ground_truth_keypoints_and_two_views(tmp_path):
    gt, _ = crops_shard(tmp_path / "gt.h5", command="handtools crop")
    with pytest.raises(ValueError, match="not detections"):
        MonoKeypointDataset([gt])
    noisy, _ = crops_shard(tmp_path / "n.h5", command="handtools crop", args={"kp_noise": 3.0})
    with pytest.raises(ValueError, match="synth-keypoints"):
        MonoKeypointDataset([noisy])
    assert MonoKeypointDataset([noisy], allow_synth_noise=True).sources == ["synth-kp-noise"]
    two, _ = crops_shard(tmp_path / "two.h5", views=2)
    with pytest.raises(ValueError, match="2 views"):
        MonoKeypointDataset([two])
