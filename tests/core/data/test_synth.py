"""Synthetic scenes: poses, forearm geometry, shading, and that the forearm changes no ground truth."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from handtools.core.hand import joint_limits
from handtools.core.data import synth as S
from handtools.core.hand.model import HandModel
from handtools.core.render import Renderer
from handtools.core.data.synth_render import SceneRenderer, shade_vertices


@pytest.fixture(scope="module")
def model():
    return HandModel.from_path(None)


def test_natural_and_counting_poses_stay_within_joint_limits():
    rng = np.random.default_rng(0)
    poses = np.stack([S.natural_pose(rng) for _ in range(200)])
    assert joint_limits.within_limits(poses).all()
    for gesture in S.GESTURES:
        extended = np.asarray(gesture, bool)
        pose = S.counting_pose(extended, rng, jitter=0.6)
        assert joint_limits.within_limits(pose[None]).all()
        flex = np.rad2deg(joint_limits.pose_to_angles(pose[None])[0, :, 0])  # (15,) flexion
        for f, joints in enumerate(S._FINGER_MANO_JOINTS[1:], start=1):  # PIP of each finger
            assert (flex[joints[1] - 1] < 20) if extended[f] else (flex[joints[1] - 1] > 60), (gesture, f)


def test_wrist_opening_is_one_loop_at_the_wrist(model):
    faces = model.faces.numpy()
    loop = S.boundary_loop(faces)
    assert len(loop) == 16 and len(set(loop.tolist())) == 16
    edges = {tuple(sorted(e)) for f in faces for e in ((f[0], f[1]), (f[1], f[2]), (f[2], f[0]))}
    for a, b in zip(loop, np.roll(loop, -1)):
        assert tuple(sorted((int(a), int(b)))) in edges
    out = model(torch.zeros(1, 48), torch.zeros(1, 10))
    verts, wrist = out.verts[0].double().numpy(), out.joints[0, 0].double().numpy()
    assert np.linalg.norm(verts[loop].mean(0) - wrist) < 0.02
    assert len(S.boundary_loop(np.array([[0, 1, 2], [0, 2, 3], [0, 3, 1], [1, 3, 2]]))) == 0  # closed


def test_forearm_continues_the_wrist_away_from_the_hand(model):
    out = model(torch.zeros(1, 48), torch.zeros(1, 10), trans=torch.tensor([[0.0, 0.0, 0.5]]))
    verts = out.verts[0].double().numpy()
    loop = S.boundary_loop(model.faces.numpy())
    rng = np.random.default_rng(1)
    for _ in range(5):
        arm = S.sample_arm(S.DOMAINS["indoor"], rng)
        av, an, sleeve = S.forearm_mesh(verts[loop], verts.mean(0), arm)
        faces = S.forearm_faces(len(loop))
        assert av.shape == an.shape == (faces.max() + 1, 3) and sleeve.shape == (len(av),)
        np.testing.assert_array_equal(av[: len(loop)], verts[loop])  # the first ring is the opening
        np.testing.assert_allclose(np.linalg.norm(an, axis=1), 1.0, atol=1e-9)
        rings = av[:-1].reshape(-1, len(loop), 3).mean(1)  # ring centres, wrist to shoulder
        away = np.linalg.norm(rings - verts.mean(0), axis=1)
        assert away[-1] > away[0] + 0.3 and av[:, 2].min() >= 0.05 - 1e-9
        assert sleeve[-1] == (arm.sleeve_at < arm.length + S.UPPER_ARM)


def test_shading_lights_what_faces_the_light():
    light = torch.tensor([[0.3, 0.7, 1, 1, 1, 1, 1, 1, 0.0, 0.0, 1.0]], dtype=torch.float64)  # travels along +z
    normals = torch.tensor([[[0, 0, -1.0], [1.0, 0, 0], [0, 0, 1.0]]], dtype=torch.float64)  # to the light, side, away
    points = torch.tensor([[[0, 0, 0.5]] * 3], dtype=torch.float64)
    albedo = torch.full((1, 3, 3), 0.5, dtype=torch.float64)
    rgb = shade_vertices(albedo, points, normals, light, wrap=0.4, specular=torch.zeros(1, 3, dtype=torch.float64))
    lum = rgb[0].mean(-1)
    assert lum[0] > lum[1] > lum[2] == pytest.approx(0.5 * 0.3)  # the side still gets wrapped light
    no_wrap = shade_vertices(albedo, points, normals, light, wrap=0.0, specular=torch.zeros(1, 3, dtype=torch.float64))
    assert no_wrap[0, 1].mean() == pytest.approx(0.5 * 0.3)


def test_forearm_changes_no_ground_truth(model):
    """The arm lies under the hand: every ground-truth dataset and the hand's pixels are those of the hand alone."""
    hw, n = (96, 128), 4
    ks, ts = S.camera_rig(2, hw, S.STB_FOCAL * hw[1] / 640, S.STB_BASELINE)
    out = {}
    for forearm in (True, False):
        preset = dataclasses.replace(S.DOMAINS["indoor"], forearm=forearm)
        scene = SceneRenderer(model, Renderer("torch"), preset, hw, ks, ts, S.STB_BASELINE, seed=5, workers=1)
        out[forearm] = scene.render_batch(np.arange(n))
    with_arm, without = out[True], out[False]
    for name in ("masks", "depth", "keypoints2d", "bbox", "joints3d", "verts3d", "mano/pose", "mano/shape"):
        np.testing.assert_array_equal(with_arm[name], without[name], err_msg=name)
    import cv2

    for i in range(n):
        for v in range(2):
            inner = cv2.erode(with_arm["masks"][i, v], np.ones((3, 3), np.uint8)) > 0  # fully covered hand pixels
            a, b = with_arm["images"][i, v], without["images"][i, v]
            np.testing.assert_array_equal(a[inner], b[inner])
            assert (np.abs(a.astype(int) - b)[with_arm["masks"][i, v] == 0] > 10).mean() > 0.01  # the arm is drawn
