"""handtools.core.render.visualize: skeleton drawing, compositing, novel views, panels, contact sheets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from handtools.core.render import visualize as vz
from handtools.core.hand.joints import BONES, FINGER_OF_JOINT


def _fan_keypoints() -> np.ndarray:
    """(21, 2) a hand-like fan: wrist at the bottom, five straight fingers spread apart."""
    kp = np.zeros((21, 2))
    kp[0] = (100.5, 180.5)
    for f in range(5):
        x = 30.5 + 35 * f
        for k in range(4):
            kp[1 + 4 * f + k] = (x, 140.5 - 30 * k)
    return kp


def test_draw_skeleton_colours_bones_by_finger_and_keeps_input():
    img = np.zeros((200, 200, 3), np.uint8)
    kp = _fan_keypoints()
    out = vz.draw_skeleton(img, kp, thickness=3, radius=4)
    assert img.max() == 0  # input untouched
    for parent, child in BONES:
        if parent == 0:
            continue  # wrist bones cross near the wrist
        mid = (kp[parent] + kp[child]) / 2  # pixel centre convention: (u, v) = (col + .5, row + .5)
        col, row = int(mid[0]), int(mid[1])
        assert tuple(out[row, col]) == vz.FINGER_COLORS[FINGER_OF_JOINT[child]]
    for j in range(21):  # joint dots, exactly at the keypoint's pixel
        col, row = int(kp[j, 0]), int(kp[j, 1])
        want = vz.WRIST_COLOR if j == 0 else vz.FINGER_COLORS[FINGER_OF_JOINT[j]]
        assert tuple(out[row, col]) == want


def test_draw_skeleton_hides_invisible_and_far_joints():
    img = np.zeros((200, 200, 3), np.uint8)
    kp = _fan_keypoints()
    vis = np.ones(21, bool)
    vis[20] = False  # little tip hidden: its bone and dot are not drawn
    kp[16] = (1e9, 1e9)  # ring tip far away (e.g. near z = 0): treated as hidden
    out = vz.draw_skeleton(img, kp, vis, thickness=3, radius=4)
    for j in (20, 16):
        mid = (kp[j - 1] + _fan_keypoints()[j]) / 2
        assert out[int(mid[1]), int(mid[0])].max() == 0
        col, row = int(_fan_keypoints()[j, 0]), int(_fan_keypoints()[j, 1])
        assert out[row, col].max() == 0
    assert tuple(out[int(kp[19, 1]), int(kp[19, 0])]) == vz.FINGER_COLORS[4]


def test_draw_skeleton_validates():
    img = np.zeros((10, 10, 3), np.uint8)
    with pytest.raises(ValueError, match="keypoints"):
        vz.draw_skeleton(img, np.zeros((20, 2)))
    with pytest.raises(ValueError, match="uint8"):
        vz.draw_skeleton(img.astype(np.float32), np.zeros((21, 2)))
    with pytest.raises(ValueError, match="visible"):
        vz.draw_skeleton(img, np.zeros((21, 2)), np.ones(5, bool))


def test_composite_closed_form():
    rng = np.random.default_rng(0)
    bg = rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)
    color = rng.random((4, 5, 3)).astype(np.float32)
    sil = np.zeros((4, 5), np.float32)
    sil[1:3, 1:4] = 1.0
    sil[0, 0] = 0.5
    rgb = color * sil[..., None]  # premultiplied by coverage, as the renderer returns it
    out = vz.composite(rgb, sil, bg, alpha=1.0)
    np.testing.assert_array_equal(out[sil == 0], bg[sil == 0])
    np.testing.assert_array_equal(out[sil == 1], np.round(color[sil == 1] * 255).astype(np.uint8))
    half = vz.composite(rgb, sil, bg, alpha=0.5)
    want = bg[1, 1] / 255.0 * 0.5 + 0.5 * color[1, 1]
    np.testing.assert_allclose(half[1, 1], want * 255, atol=0.51)
    edge = vz.composite(rgb, sil, bg, alpha=1.0)[0, 0]  # antialiased edge pixel
    np.testing.assert_allclose(edge, bg[0, 0] * 0.5 + 0.5 * color[0, 0] * 255, atol=0.51)
    solid = vz.composite(rgb, sil, np.array(vz.BACKGROUND, np.uint8))
    np.testing.assert_array_equal(solid[3, 4], vz.BACKGROUND)
    with pytest.raises(ValueError, match="alpha"):
        vz.composite(rgb, sil, bg, alpha=1.5)


def test_view_rotations_are_proper_rotations():
    for name, r in vz.VIEW_ROTATIONS.items():
        r = np.array(r)
        np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12, err_msg=name)
        assert np.isclose(np.linalg.det(r), 1.0), name


def test_novel_view_faces_the_right_side():
    rng = np.random.default_rng(1)
    pts = rng.normal(size=(1, 200, 3)) * 0.03 + np.array([0.05, -0.02, 0.5])
    verts = torch.as_tensor(pts, dtype=torch.float64)
    hw = (120, 160)
    right, up = int(np.argmax(pts[0, :, 0])), int(np.argmin(pts[0, :, 1]))  # +x extreme, -y extreme (above)
    for view, nearest in (("side", right), ("top", up)):
        cam, K = vz.novel_view(verts, view, hw)
        assert int(torch.argmin(cam[0, :, 2])) == nearest, view  # that side faces the virtual camera
        # centroid on the optical axis -> principal point at the image centre
        c = cam[0].mean(0)
        np.testing.assert_allclose(c[:2].numpy(), 0.0, atol=1e-12)
        np.testing.assert_allclose(K[0, :2, 2].numpy(), (80.0, 60.0))
        uv = (cam[0, :, :2] / cam[0, :, 2:]) * K[0, 0, 0] + K[0, :2, 2]
        assert (uv >= 0).all() and (uv[:, 0] < 160).all() and (uv[:, 1] < 120).all()  # the mesh fits
    cam, _ = vz.novel_view(verts, "front", hw)
    np.testing.assert_allclose((cam[0] - cam[0].mean(0)).numpy(), pts[0] - pts[0].mean(0), atol=1e-12)
    # A fixed extent: `extent_m` metres at the centroid span the short image side.
    cam, K = vz.novel_view(verts, "front", hw, extent_m=0.2)
    np.testing.assert_allclose(K[0, 0, 0].item() * 0.2 / cam[0, :, 2].mean().item(), 120.0, rtol=1e-9)
    with pytest.raises(ValueError, match="view"):
        vz.novel_view(verts, "bottom", hw)


class _FlatRenderer:
    """A stand-in renderer: the silhouette is a fixed box, rgb a constant colour (checks compositing)."""

    def render(self, verts, faces, K, image_size, colors=None):
        from handtools.core.render import RenderOutput

        b, (h, w) = verts.shape[0], image_size
        sil = torch.zeros(b, h, w)
        sil[:, 2:6, 3:9] = 1.0
        rgb = colors[:, :1, None, :].expand(b, h, w, 3) * sil[..., None]
        return RenderOutput(silhouette=sil, depth=sil, rgb=rgb, face_ids=sil.long() - 1, bary=None)


def test_render_panels_layout_and_content():
    rng = np.random.default_rng(2)
    b, h, w = 2, 24, 32
    images = rng.integers(0, 256, (b, h, w, 3), dtype=np.uint8)
    verts = torch.as_tensor(rng.normal(size=(b, 30, 3)) * 0.02 + np.array([0, 0, 0.4]), dtype=torch.float32)
    joints = verts[:, :21].clone()
    K = torch.tensor([[[60.0, 0, 16], [0, 60.0, 12], [0, 0, 1]]]).expand(b, 3, 3)
    colors = torch.zeros(b, 30, 3)
    colors[..., 0] = 1.0  # red texture
    strips = vz.render_panels(_FlatRenderer(), images, verts, torch.zeros(1, 3, dtype=torch.long), K, joints,
                              colors, alpha=1.0, labels=False)
    assert strips.shape == (b, h, 5 * w, 3) and strips.dtype == np.uint8
    panels = {name: strips[:, :, k * w : (k + 1) * w] for k, name in enumerate(vz.PANELS)}
    np.testing.assert_array_equal(panels["input"], images)
    inside = np.zeros((h, w), bool)
    inside[2:6, 3:9] = True
    np.testing.assert_array_equal(panels["mesh"][:, ~inside], images[:, ~inside])  # untouched outside
    assert (panels["mesh"][:, inside] == (255, 0, 0)).all()  # opaque red inside
    for k in ("side", "top"):
        assert (panels[k][:, ~inside] == vz.BACKGROUND).all()
        assert (panels[k][:, inside] == (255, 0, 0)).all()
    for i in range(b):  # the skeleton panel is draw_skeleton at the pinhole projection of the joints
        j = joints[i].double().numpy()
        uv = j[:, :2] / j[:, 2:] * 60.0 + np.array([16.0, 12.0])
        np.testing.assert_array_equal(panels["skeleton"][i], vz.draw_skeleton(images[i], uv))
    labelled = vz.render_panels(_FlatRenderer(), images, verts, torch.zeros(1, 3, dtype=torch.long), K)
    assert not np.array_equal(labelled[:, :8, :w], images[:, :8])  # caption drawn in the corner
    with pytest.raises(ValueError, match="K"):
        vz.render_panels(_FlatRenderer(), images, verts, torch.zeros(1, 3, dtype=torch.long), K[:1])


def test_render_panels_with_the_real_renderer_matches_its_silhouette():
    from handtools.core.hand.model import HandModel
    from handtools.core.render import Renderer

    model = HandModel.from_path(None)
    out = model(torch.zeros(1, 48), torch.zeros(1, 10), trans=torch.tensor([[0.0, 0.0, 0.45]]))
    K = torch.tensor([[[150.0, 0, 48], [0, 150.0, 40], [0, 0, 1]]])
    images = np.full((1, 80, 96, 3), 200, np.uint8)
    r = Renderer("torch")
    strips = vz.render_panels(r, images, out.verts, model.faces, K, out.joints, labels=False)
    sil = r.render(out.verts, model.faces, K, (80, 96)).silhouette[0].numpy()
    mesh = strips[0, :, 96:192].astype(int)
    changed = np.abs(mesh - 200).sum(-1) > 0
    np.testing.assert_array_equal(changed, sil > 0)
    assert changed.sum() > 100


def test_contact_sheet_layout_and_downscale():
    tiles = [np.full((10, 20, 3), 40 * k, np.uint8) for k in range(5)]
    sheet = vz.contact_sheet(tiles, cols=3, pad=2)
    assert sheet.shape == (2 * 10 + 3 * 2, 3 * 20 + 4 * 2, 3)
    for k in range(5):
        r, c = divmod(k, 3)
        y, x = 2 + r * 12, 2 + c * 22
        assert (sheet[y : y + 10, x : x + 20] == 40 * k).all()
    assert (sheet[14:24, 46:66] == 255).all()  # empty cell
    small = vz.contact_sheet(tiles, cols=5, max_width=60, pad=0)  # 100 px of tiles -> 60
    assert small.shape == (6, 60, 3)
    assert vz.contact_sheet(tiles).shape[1] == 3 * 20 + 4 * 2  # default cols = ceil(sqrt(5))
    with pytest.raises(ValueError, match="one shape"):
        vz.contact_sheet([tiles[0], np.zeros((5, 5, 3), np.uint8)])
    with pytest.raises(ValueError, match="no tiles"):
        vz.contact_sheet([])


def test_pad_to_multiple_and_hstack():
    img = np.full((17, 33, 3), 9, np.uint8)
    p = vz.pad_to_multiple(img, 16)
    assert p.shape == (32, 48, 3)
    np.testing.assert_array_equal(p[:17, :33], img)
    assert p[17:].max() == 0 and p[:, 33:].max() == 0
    assert vz.pad_to_multiple(p, 16) is p
    assert vz.hstack([img, img]).shape == (17, 66, 3)
    with pytest.raises(ValueError, match="heights"):
        vz.hstack([img, p])
