"""DLT triangulation on synthetic views: exact views give the points back, noise is averaged."""

import numpy as np
import pytest
import torch

from handtools.core.data.synth import camera_rig
from handtools.core.geometry.triangulation import reprojection_error, triangulate_dlt


def _views(n_views: int, points: np.ndarray):
    ks, ts = camera_rig(n_views, (240, 320), 300.0, 0.1, target_depth=0.5)
    K = torch.as_tensor(ks, dtype=torch.float64)[None]  # (1, V, 3, 3)
    T = torch.as_tensor(ts, dtype=torch.float64)[None]
    X = torch.as_tensor(points, dtype=torch.float64)[None]  # (1, J, 3)
    xc = X[:, None] @ T[..., :3, :3].transpose(-1, -2) + T[..., None, :3, 3]  # (1, V, J, 3)
    uv = (xc[..., :2] / xc[..., 2:3]) @ K[..., :2, :2].transpose(-1, -2) + K[..., None, :2, 2]
    kp = torch.cat([uv, torch.ones_like(uv[..., :1])], -1)
    return kp, K, T, X


def _points(seed=0, j=21):
    rng = np.random.default_rng(seed)
    return np.array([0.0, 0.0, 0.5]) + rng.uniform(-0.06, 0.06, size=(j, 3))


@pytest.mark.parametrize("views", [2, 3, 6])
def test_exact_views_give_points_back(views):
    kp, K, T, X = _views(views, _points())
    pts, valid = triangulate_dlt(kp, K, T)
    assert valid.all()
    assert torch.allclose(pts, X, atol=1e-9)
    assert reprojection_error(pts, kp, K, T).max() < 1e-6


def test_noise_shrinks_with_views_and_low_confidence_outlier_is_ignored():
    X0 = _points(1, 200)
    rng = np.random.default_rng(2)
    errs = {}
    for views in (3, 12):
        kp, K, T, X = _views(views, X0)
        kp[..., :2] += torch.as_tensor(rng.normal(0, 1.0, size=kp[..., :2].shape))
        pts, _ = triangulate_dlt(kp, K, T)
        errs[views] = (pts - X).norm(dim=-1).mean().item()
    assert errs[12] < errs[3] < 0.004  # 1 px noise at 0.5 m, 300 px focal: a few mm at most
    # a gross outlier in one view: with confidence 1 it drags the point; with ~0 it is ignored
    kp, K, T, X = _views(6, X0[:5])
    kp[0, 2, :, :2] += 40.0
    bad, _ = triangulate_dlt(kp, K, T)
    kp[0, 2, :, 2] = 1e-6
    good, _ = triangulate_dlt(kp, K, T)
    assert (bad - X).norm(dim=-1).mean() > 0.005
    assert (good - X).norm(dim=-1).max() < 1e-4


def test_too_few_views_is_nan():
    kp, K, T, X = _views(3, _points(0, 4))
    kp[0, 1:, 0, 2] = 0.0  # joint 0 seen by one view only
    pts, valid = triangulate_dlt(kp, K, T)
    assert not valid[0, 0] and valid[0, 1:].all()
    assert torch.isnan(pts[0, 0]).all()
    with pytest.raises(ValueError, match="K must have shape"):
        triangulate_dlt(kp, K[:, :2], T)
