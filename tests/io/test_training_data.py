"""What the self-supervised dataset reads: provenance of masks and keypoints, on-the-fly masks
equal to ``handtools mask``'s, and no ground-truth dataset opened (DESIGN.md "Labels and honesty")."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from handtools.io.shards import ShardReader, ShardWriter, history_entry
from handtools.io.training_data import StereoCropDataset, label_provenance, skin_masks
from tests.conftest import run_cli

GT_DATASETS = {"joints3d", "verts3d", "mano/pose", "mano/shape", "depth"}


def _step(cmd, **args):
    return {"command": f"handtools {cmd}", "args": args}


@pytest.mark.parametrize(
    "steps, kp_gt, masks_gt, from_mask, crop_gt",
    [
        ([_step("synth")], True, True, False, False),
        ([_step("synth", kp_noise=2.0), _step("crop", center="bbox")], True, True, False, True),
        ([_step("synth"), _step("crop", center="root")], True, True, False, True),
        ([_step("import stereo"), _step("crop", center="bbox")], False, False, False, False),
        ([_step("synth"), _step("crop", center="gt"), _step("mask", method="skin")], True, True, True, True),
        ([_step("synth"), _step("detect"), _step("crop", center="bbox")], False, True, False, False),
        ([_step("synth"), _step("detect"), _step("crop", center="bbox"), _step("mask", method="skin")],
         False, False, True, False),
        ([_step("synth"), _step("detect"), _step("mask", method="gt")], False, True, False, False),
        ([_step("import stereo"), _step("detect"), _step("crop"), _step("mask")], False, False, True, False),
        ([_step("import stb"), _step("crop", center="root")], True, True, False, True),
        ([_step("import stb"), _step("detect"), _step("crop", center="root")], False, True, False, False),
    ],
)
def test_label_provenance(steps, kp_gt, masks_gt, from_mask, crop_gt):
    p = label_provenance(steps)
    assert (p.keypoints_gt, p.masks_gt, p.masks_from_mask, p.crop_gt) == (kp_gt, masks_gt, from_mask, crop_gt)


def test_provenance_names_the_keypoints_the_masks_were_bounded_by():
    p = label_provenance([_step("synth", kp_noise=1.5), _step("mask", method="skin")])
    assert "ground-truth" in p.masks and "kp-noise 1.5" in p.masks
    p = label_provenance([_step("import images"), _step("mask", method="skin")])
    assert p.masks.endswith("skin colour alone") and not p.masks_gt



@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """Synthetic stereo crops (ground-truth keypoints), and the same crops as if ``detect`` had
    found those keypoints (history step added), with and without ``handtools mask``."""
    root = tmp_path_factory.mktemp("td")
    run = run_cli

    frames = run("synth", "--views", "2", "--domain", "indoor", "-n", "3", "--image-size", "160x120",
                 "--out", root / "f", "--seed", "3")
    crops = run("crop", "--size", "64", "--center", "bbox", "--out", root / "c", *frames)
    # the same frames as `detect` would leave them (keypoints and boxes from a detector; here
    # synth's, relabelled -- what matters to the dataset is the history), then crop and mask
    det = root / "d"
    with ShardReader(frames[0]) as src, ShardWriter(det, kind="frames", num_views=2, producer="tests",
                                                    history=list(src.history) + [history_entry("handtools detect")],
                                                    name=lambda k: "x.h5") as w:
        w.append(copy_from=src)
    det_crops = run("crop", "--size", "64", "--center", "bbox", "--out", root / "dc", det / "x.h5")
    masked = run("mask", "--out", root / "m", *det_crops)
    return {"gt": crops, "det": det_crops, "masked": masked}


class _Spy:
    """Records every dataset name ShardReader.read is asked for."""

    def __init__(self, monkeypatch):
        self.names = set()
        orig = ShardReader.read

        def read(reader, name, index=()):
            self.names.add(name)
            return orig(reader, name, index)

        monkeypatch.setattr(ShardReader, "read", read)


def _all_items(data):
    return [data[i] for i in range(len(data))]


def test_on_the_fly_masks_equal_handtools_mask_and_read_no_ground_truth(shards, monkeypatch):
    spy = _Spy(monkeypatch)
    data = StereoCropDataset(shards["det"])
    items = _all_items(data)
    assert not (spy.names & (GT_DATASETS | {"masks"}))  # neither ground truth nor synth's masks
    assert "keypoints2d" in spy.names
    assert data.ground_truth == [] and "computed on the fly" in data.notes[0] and "detect" in data.notes[0]
    with ShardReader(shards["masked"][0]) as r:
        want = r.read("masks") > 127  # (N, 2, H, W) from `handtools mask` (its defaults)
    got = np.stack([np.stack([it["mask_l"].numpy(), it["mask_r"].numpy()]) for it in items]).astype(bool)
    assert want.any() and np.array_equal(got, want)


def test_shard_masks_from_handtools_mask_are_used_as_they_are(shards, monkeypatch):
    spy = _Spy(monkeypatch)
    data = StereoCropDataset(shards["masked"])
    items = _all_items(data)
    assert "masks" in spy.names and not (spy.names & (GT_DATASETS | {"keypoints2d"}))
    assert "the shard's masks" in data.notes[0] and data.ground_truth == []
    with ShardReader(shards["masked"][0]) as r:
        np.testing.assert_array_equal(items[1]["mask_r"].numpy(), r.read("masks")[1, 1] > 127)


def test_ground_truth_keypoints_are_refused_unless_asked_for_and_then_named(shards, monkeypatch):
    with pytest.raises(ValueError, match="ground-truth keypoints2d"):
        StereoCropDataset(shards["gt"])  # synth | crop: masks and keypoints are synth's
    spy = _Spy(monkeypatch)
    data = StereoCropDataset(shards["gt"], gt_keypoints=True)
    _all_items(data)
    assert not (spy.names & (GT_DATASETS | {"masks"}))  # synth's own masks are still not read
    assert any("ground-truth keypoints2d" in line for line in data.ground_truth)
    assert any("crop --center bbox on ground-truth boxes" in line for line in data.ground_truth)
    # the shard's (ground-truth) masks only when asked for, and then named
    data = StereoCropDataset(shards["gt"], masks="shard")
    assert any("synth's ground-truth masks" in line for line in data.ground_truth)


def test_skin_masks_of_a_view_without_a_detection_are_empty():
    img = np.full((2, 16, 16, 3), (200, 140, 120), np.uint8)  # skin-coloured everywhere
    kp = np.zeros((2, 21, 3), np.float32)
    kp[0, :, :2] = np.random.default_rng(0).uniform(4, 12, (21, 2))
    kp[0, :, 2] = 0.9
    out = skin_masks(img, kp)
    assert out[0].any() and not out[1].any()
    assert skin_masks(img).all()  # no keypoints at all: skin colour alone


def test_rejects_unknown_mask_mode(shards):
    with pytest.raises(ValueError, match="masks must be"):
        StereoCropDataset(shards["det"], masks="gt")


def test_items_are_tensors_of_the_documented_shapes(shards):
    it = StereoCropDataset(shards["det"])[0]
    assert it["image_l"].shape == (3, 64, 64) and it["image_l"].dtype == torch.float32
    assert it["mask_l"].shape == (64, 64) and set(it["mask_l"].unique().tolist()) <= {0.0, 1.0}
    assert it["K_r"].shape == (3, 3) and it["baseline"].ndim == 0
