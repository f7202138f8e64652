"""2D annotations for shards without meshes: keypoints with confidence, boxes, masks, views side by side."""

from __future__ import annotations

import numpy as np
import pytest

from handtools.core.render.overlay import BOX_COLOR, MASK_ALPHA, MASK_COLOR, annotate_view, annotated_views

H, W = 60, 80


def test_nothing_to_draw_leaves_the_image():
    img = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    out = annotate_view(img, keypoints=np.zeros((21, 3)), bbox=np.zeros(4))  # "no hand" rows, empty box
    assert np.array_equal(out, img) and out is not img


def test_mask_is_blended_with_its_colour():
    img = np.full((H, W, 3), 100, np.uint8)
    mask = np.zeros((H, W), np.uint8)
    mask[20:40, 20:40] = 255
    out = annotate_view(img, mask=mask)
    want = np.round(100 * (1 - MASK_ALPHA) + np.array(MASK_COLOR) * MASK_ALPHA - 1e-9).astype(int)
    assert np.abs(out[30, 30].astype(int) - want).max() <= 1  # inside: the blend
    assert (out[5, 5] == 100).all()  # outside: untouched
    assert tuple(out[20, 30]) == MASK_COLOR  # the outline


def test_box_and_keypoints():
    img = np.zeros((H, W, 3), np.uint8)
    kp = np.zeros((21, 3))
    kp[:, 0], kp[:, 1], kp[:, 2] = np.linspace(20, 60, 21), 30, 0.9
    kp[5, 2] = 0.1  # uncertain: a dark ring around it
    kp[0, :2] = 14.5, 40.5  # the wrist, apart from the other dots (and above the label): pixel (row 40, column 14)
    out = annotate_view(img, keypoints=kp, bbox=[10, 5, 70, 55])
    assert tuple(out[30, 10]) == BOX_COLOR  # left edge (x0 = 10 -> column 10)
    assert tuple(out[54, 60]) == BOX_COLOR  # bottom edge (y1 = 55 -> last row 54), right of the label
    assert tuple(out[54, 20]) == tuple(c * 35 // 100 for c in BOX_COLOR)  # under the label: darkened, not hidden
    assert (out[40, 14] > 200).all()  # the wrist dot is white
    sure = kp.copy()
    sure[5, 2] = 0.9
    ref = annotate_view(img, keypoints=sure, bbox=[10, 5, 70, 55])
    diff = np.argwhere((out[: H - 16] != ref[: H - 16]).any(-1))  # above the label (mean confidence):
    # only around joint 5 (u = v = 30), and darker there
    assert len(diff) and (np.abs(diff[:, 0] - 30) <= 4).all() and (np.abs(diff[:, 1] - 30) <= 4).all()
    assert out[: H - 16].astype(int).sum() < ref[: H - 16].astype(int).sum()
    assert (out[H - 14 : H - 2, 2:50] == 255).all(-1).any()  # "conf 0.86" written bottom-left, in white
    with pytest.raises(ValueError, match="keypoints"):
        annotate_view(img, keypoints=np.zeros((21, 2)))
    with pytest.raises(ValueError, match="mask"):
        annotate_view(img, mask=np.zeros((H + 1, W)))


def test_views_side_by_side():
    images = np.zeros((2, 3, H, W, 3), np.uint8)
    images[:, 1] = 200
    out = annotated_views(images)
    assert out.shape == (2, H, 3 * W + 4, 3)
    assert (out[:, :, W + 2 : 2 * W + 2] == 200).all() and (out[:, :, :W] == 0).all()
    with pytest.raises(ValueError, match="images"):
        annotated_views(images[0])
