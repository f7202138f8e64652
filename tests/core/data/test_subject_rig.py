"""One-subject multi-view data: the dome rig looks at its target, centred hands are in every view."""

import numpy as np
import pytest

from handtools.core.data import synth as S


@pytest.mark.parametrize("rig", S.RIGS)
def test_rig_cameras_look_at_the_target(rig):
    ks, ts = S.camera_rig(8, (128, 128), 160.0, 0.1, target_depth=0.5, rig=rig)
    target = np.array([0.0, 0.0, 0.5])
    for T in ts:
        xc = T[:3, :3] @ target + T[:3, 3]
        assert np.allclose(xc, [0.0, 0.0, 0.5], atol=1e-5)  # on each optical axis, 0.5 m away
        assert np.allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-5)
    centres = np.stack([-T[:3, :3].T @ T[:3, 3] for T in ts])  # camera centres, view-0 frame
    assert len(np.unique(np.round(centres, 4), axis=0)) == 8
    if rig == "dome":  # the front hemisphere: no camera behind the target
        assert (centres[:, 2] < 0.5).all()
    with pytest.raises(ValueError, match="rig must be"):
        S.camera_rig(3, (64, 64), 100.0, 0.1, rig="cube")


def test_centre_scene_puts_the_hand_centre_on_the_target():
    rng = np.random.default_rng(0)
    finger = np.array([-1.0, 0.0, 0.0])
    root = np.array([0.09, 0.006, 0.006])
    scene = S.SceneSample(pose=np.concatenate([rng.normal(size=3), np.zeros(45)]).astype(np.float32),
                          shape=np.zeros(10, np.float32), trans=np.zeros(3, np.float32),
                          colours=np.zeros((1, 3)), light=np.zeros(11))
    S.centre_scene(scene, root, finger, np.array([0.0, 0.0, 0.5]))
    r = S.rotation_matrix(scene.pose[:3].astype(np.float64))
    centre = r @ (root + 0.08 * finger - root) + root + scene.trans  # MANO rotates about the root
    assert np.allclose(centre, [0.0, 0.0, 0.5], atol=1e-6)
