"""Shared helpers of the metric tests: a seeded generator, hand-like point sets, rotations."""

from __future__ import annotations

import numpy as np
import pytest


def rot(axis: str, deg: float) -> np.ndarray:
    """(3, 3) rotation about ``axis`` ("x", "y" or "z") by ``deg`` degrees."""
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    i, j = {"x": (1, 2), "y": (2, 0), "z": (0, 1)}[axis]
    r = np.eye(3)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


def hand_like(rng, n: int, k: int) -> np.ndarray:
    """(n, k, 3) points about 0.5 m in front of the camera, spread ~4 cm."""
    return rng.normal(size=(n, k, 3)) * 0.04 + np.array([0.0, 0.0, 0.5])


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
