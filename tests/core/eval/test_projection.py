"""The numpy pinhole projection of the 2D metrics: u = fx x / z + cx, v = fy y / z + cy."""

from __future__ import annotations

import numpy as np
import pytest

from handtools.core.eval.projection import points_behind, project_pinhole
from tests.core.eval.conftest import hand_like


def test_pinhole_closed_form(rng):
    pts = hand_like(rng, 3, 21)
    K = np.tile(np.array([[500.0, 0, 112], [0, 480.0, 100], [0, 0, 1]]), (3, 1, 1))
    K[1, 0, 0] = 700.0  # each sample its own intrinsics
    x, y, z = pts[..., 0], pts[..., 1], pts[..., 2]
    expected = np.stack([K[:, None, 0, 0] * x / z + K[:, None, 0, 2], K[:, None, 1, 1] * y / z + K[:, None, 1, 2]], -1)
    np.testing.assert_allclose(project_pinhole(K.astype(np.float32), pts), expected, rtol=1e-6)


def test_points_behind_and_shapes(rng):
    pts = hand_like(rng, 2, 21)
    assert points_behind(pts) == 0
    pts[1, 4, 2] = 0.0
    pts[0, 2, 2] = -0.3
    assert points_behind(pts) == 2
    with pytest.raises(ValueError, match="project_pinhole"):
        project_pinhole(np.eye(3), pts)
