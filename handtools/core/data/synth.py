"""Synthetic labelled hand frames: scene sampling for ``handtools synth``.

Each sample is drawn from its own random stream ``default_rng([seed, index])``, so
a sample depends only on (seed, index, settings): any sharding or ``--part`` split
produces the same frames.

Two domain presets (:data:`DOMAINS`) with a real domain gap:

* ``studio`` — like FreiHAND: bright, even light (ambient 0.75–0.95, weak directional
  light), plain backgrounds with a soft gradient, the full range of plausible
  poses (joint limits scaled by 0.9), light skin tones, the hand at 0.45–0.75 m,
  its palm turned up to 90 degrees away from the camera and rolled up to ±90
  degrees in the image. (Uniformly random rotations were tried first: a prior
  trained from scratch on a few thousand such frames did not beat the mean pose
  in CPU-minutes, see bench/bench_prior.py; FreiHAND's viewpoints are not uniform either.)
* ``indoor`` — like STB: dim ambient light (0.25–0.45) and a strong directional light
  (0.5–0.9) from a random side, so fingers shade; cluttered backgrounds (shapes,
  stripes, textures); counting-style poses (each finger either extended or curled,
  as in STB's counting sequences) with small jitter; a wider range of skin tones,
  the hand at 0.45–0.7 m in front of a rectified stereo camera.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from handtools.core.hand import joint_limits

#: STB's Bumblebee2 stereo camera: focal length (px at 640x480) and baseline (m).
STB_FOCAL = 822.79041
STB_BASELINE = 0.120054


@dataclass(frozen=True)
class DomainPreset:
    """One documented set of numbers describing a data domain."""

    name: str
    pose_style: str  # "wide": within joint limits x pose_range; "counting": fingers extended/curled
    pose_range: float  # fraction of the joint-limit range used
    distance: tuple[float, float]  # wrist depth range, metres
    ambient: tuple[float, float]  # ambient intensity
    directional: tuple[float, float]  # directional intensity
    light_elevation: tuple[float, float]  # degrees above the camera axis
    background: str  # "plain" or "clutter"
    skin_tones: tuple[tuple[float, float, float], ...]  # base albedo RGB in [0, 1]
    palm_facing: float  # max angle (deg) of the palm normal away from the camera direction
    roll: float  # max in-plane rotation, degrees
    noise_sigma: float  # sensor noise, in 0..255 units
    light_colours: tuple[tuple[float, float, float], ...] = field(default=((1.0, 1.0, 1.0),))


DOMAINS: dict[str, DomainPreset] = {
    "studio": DomainPreset(
        name="studio",
        pose_style="wide",
        pose_range=0.9,
        distance=(0.45, 0.75),
        ambient=(0.75, 0.95),
        directional=(0.05, 0.25),
        light_elevation=(20.0, 60.0),
        background="plain",
        skin_tones=((0.87, 0.67, 0.56), (0.93, 0.76, 0.65), (0.80, 0.60, 0.49)),
        palm_facing=90.0,
        roll=90.0,
        noise_sigma=1.0,
    ),
    "indoor": DomainPreset(
        name="indoor",
        pose_style="counting",
        pose_range=0.6,
        distance=(0.45, 0.7),
        ambient=(0.25, 0.45),
        directional=(0.5, 0.9),
        light_elevation=(10.0, 70.0),
        background="clutter",
        skin_tones=((0.62, 0.43, 0.33), (0.74, 0.52, 0.40), (0.45, 0.30, 0.22), (0.85, 0.64, 0.52)),
        palm_facing=60.0,
        roll=45.0,
        noise_sigma=3.0,
        light_colours=((1.0, 0.95, 0.85), (1.0, 0.9, 0.75), (0.9, 0.95, 1.0)),
    ),
}


def rotation_matrix(axis_angle: np.ndarray) -> np.ndarray:
    """Rodrigues: (3,) axis-angle, radians -> (3, 3) rotation."""
    theta = float(np.linalg.norm(axis_angle))
    if theta < 1e-12:
        return np.eye(3)
    k = axis_angle / theta
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(theta) * kx + (1 - np.cos(theta)) * kx @ kx


def matrix_to_axis_angle(r: np.ndarray) -> np.ndarray:
    """(3, 3) rotation -> (3,) axis-angle, radians (inverse of :func:`rotation_matrix`)."""
    cos = np.clip((np.trace(r) - 1) / 2, -1.0, 1.0)
    theta = np.arccos(cos)
    if theta < 1e-8:
        return np.zeros(3)
    if np.pi - theta < 1e-4:  # near 180 degrees: axis from the symmetric part
        m = (r + np.eye(3)) / 2
        axis = m[np.argmax(np.diag(m))]
        axis = axis / np.linalg.norm(axis)
        return axis * theta
    w = np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]]) / (2 * np.sin(theta))
    return w * theta


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random rotation matrix (3, 3)."""
    q = rng.standard_normal(4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


#: MANO joints (1-based, as in joint_limits) of each finger: thumb, index, middle, ring, little.
_FINGER_MANO_JOINTS = ((13, 14, 15), (1, 2, 3), (4, 5, 6), (10, 11, 12), (7, 8, 9))


def counting_pose(extended: np.ndarray, rng: np.random.Generator, jitter: float = 0.5) -> np.ndarray:
    """(45,) axis-angle pose of a counting gesture, as in STB's counting sequences.

    Args:
        extended: (5,) bool, thumb..little: which fingers are stretched out.
        jitter: in [0, 1]; scales the random spread around the two finger states.
    Each extended finger flexes 0–15 % of its flexion range (times ``jitter``);
    each curled one 70–95 %. Abduction is random within 40 % of its range.
    """
    lim = np.deg2rad(joint_limits.JOINT_LIMITS_DEG)  # (15, 3, 2)
    lo, hi = lim[..., 0], lim[..., 1]
    ang = np.zeros((15, 3))
    for f, joints in enumerate(_FINGER_MANO_JOINTS):
        if extended[f]:
            frac = rng.uniform(0.0, 0.15 * jitter + 1e-6)
        else:
            frac = rng.uniform(0.7, 0.95)
        for j in joints:
            lo_f, hi_f = lo[j - 1, 0], hi[j - 1, 0]
            base = max(lo_f, 0.0)
            ang[j - 1, 0] = base + frac * (hi_f - base) + rng.normal(0, 0.03 * jitter)
    spread = lo[:, 1:] + rng.random((15, 2)) * (hi[:, 1:] - lo[:, 1:])
    ang[:, 1:] = 0.4 * spread
    ang = np.clip(ang, lo, hi)
    return joint_limits.angles_to_pose(ang[None])[0]


def sample_hand_pose(preset: DomainPreset, rng: np.random.Generator) -> np.ndarray:
    """(45,) axis-angle finger articulation for the preset's pose style."""
    if preset.pose_style == "counting":
        extended = rng.random(5) < 0.5
        return counting_pose(extended, rng, jitter=preset.pose_range)
    return joint_limits.sample_poses(1, rng, scale=preset.pose_range)[0]


def sample_light(preset: DomainPreset, rng: np.random.Generator) -> np.ndarray:
    """(11,) S2HAND lighting in the layout of :mod:`handtools.core.render.lighting`.

    The directional light travels away from the camera side (+z), tilted by the
    preset's elevation range in a random azimuth, so the side facing the camera is lit.
    """
    from handtools.core.render import lighting as L

    light = np.zeros(L.LIGHT_DIM, np.float32)
    colour = np.asarray(preset.light_colours[rng.integers(len(preset.light_colours))], float)
    elev = np.deg2rad(rng.uniform(*preset.light_elevation))
    azim = rng.uniform(0, 2 * np.pi)
    light[L.LIGHT_AMBIENT_INTENSITY] = rng.uniform(*preset.ambient)
    light[L.LIGHT_DIRECTIONAL_INTENSITY] = rng.uniform(*preset.directional)
    light[L.LIGHT_AMBIENT_COLOR] = colour
    light[L.LIGHT_DIRECTIONAL_COLOR] = colour
    light[L.LIGHT_DIRECTION] = [np.sin(elev) * np.cos(azim), np.sin(elev) * np.sin(azim), np.cos(elev)]
    return light


def skin_colours(
    verts_rest: np.ndarray, preset: DomainPreset, rng: np.random.Generator
) -> np.ndarray:
    """(778, 3) per-vertex albedo in [0, 1]: a base tone with smooth and fine variation."""
    base = np.asarray(preset.skin_tones[rng.integers(len(preset.skin_tones))], float)
    base = base * rng.uniform(0.92, 1.08, size=3)
    v = verts_rest - verts_rest.mean(0)
    # smooth blotches: a few random low-frequency waves over the rest surface
    waves = np.zeros(len(v))
    for _ in range(3):
        k = rng.standard_normal(3) * 60.0
        waves += np.sin(v @ k + rng.uniform(0, 2 * np.pi))
    smooth = 1.0 + 0.04 * waves[:, None]
    fine = 1.0 + 0.02 * rng.standard_normal((len(v), 1))
    return np.clip(base[None] * smooth * fine, 0.0, 1.0).astype(np.float32)


def random_crop_resize(img: np.ndarray, size: Sequence[int], rng: np.random.Generator) -> np.ndarray:
    """A random crop of ``img`` with the aspect of ``size`` (H, W), resized to it."""
    import cv2

    h, w = size
    ih, iw = img.shape[:2]
    scale = rng.uniform(0.6, 1.0)
    ch = int(min(ih, iw * h / w) * scale)
    cw = int(ch * w / h)
    y0 = int(rng.integers(0, ih - ch + 1))
    x0 = int(rng.integers(0, iw - cw + 1))
    return cv2.resize(img[y0 : y0 + ch, x0 : x0 + cw], (w, h), interpolation=cv2.INTER_AREA)


def background(h: int, w: int, preset: DomainPreset, rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) uint8 procedural background for the preset."""
    import cv2  # opencv draws the procedural clutter

    # Pixel coordinates as a row (1, W) and a column (H, 1): broadcasting gives every
    # pixel the value a full (H, W) grid would, without building the grid.
    xx = np.arange(w, dtype=np.float32)[None, :]
    yy = np.arange(h, dtype=np.float32)[:, None]
    if preset.background == "plain":
        c0 = rng.uniform(0.55, 0.95, size=3)
        c1 = c0 * rng.uniform(0.8, 1.0, size=3)
        a = rng.uniform(0, 2 * np.pi)
        t = ((xx - w / 2) * np.cos(a) + (yy - h / 2) * np.sin(a)) / max(h, w) + 0.5  # (H, W)
        img = c0[None, None] * (1 - t[..., None]) + c1[None, None] * t[..., None]
        return np.clip(img * 255, 0, 255).astype(np.uint8)
    # clutter: a textured wall, furniture-like blocks, stripes, blobs
    wall = rng.uniform(60, 200, size=3).astype(np.float32)
    noise = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), rng.uniform(2, 8))
    scale = noise.std() + 1e-6
    noise *= 25
    noise /= scale
    img = noise[..., None] + wall  # (H, W, 3) float32: the wall plus blurred noise of std 25
    for _ in range(rng.integers(6, 14)):
        colour = tuple(float(c) for c in rng.uniform(0, 255, size=3))
        kind = rng.integers(3)
        if kind == 0:
            x0, y0 = rng.integers(0, w), rng.integers(0, h)
            cv2.rectangle(img, (int(x0), int(y0)), (int(x0 + rng.integers(20, w // 2)), int(y0 + rng.integers(20, h // 2))), colour, -1)
        elif kind == 1:
            cv2.ellipse(
                img, (int(rng.integers(0, w)), int(rng.integers(0, h))),
                (int(rng.integers(10, w // 4)), int(rng.integers(10, h // 4))),
                float(rng.uniform(0, 180)), 0, 360, colour, -1,
            )
        else:
            p0 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            p1 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            cv2.line(img, p0, p1, colour, int(rng.integers(2, 12)))
    shade = 0.6 + 0.5 * (xx / w if rng.random() < 0.5 else yy / h)  # (1, W) or (H, 1)
    img *= shade[..., None]
    return np.clip(img, 0, 255).astype(np.uint8)


@dataclass
class SceneSample:
    """One sampled hand in the frame of view 0 (before rendering)."""

    pose: np.ndarray  # (48,) axis-angle, radians (global orient + 45)
    shape: np.ndarray  # (10,)
    trans: np.ndarray  # (3,) metres, applied after MANO
    colours: np.ndarray  # (778, 3) albedo
    light: np.ndarray  # (11,)


def sample_scene(
    preset: DomainPreset,
    rng: np.random.Generator,
    rest_verts: np.ndarray,
    rest_root: np.ndarray,
    image_size: tuple[int, int],
    focal: float,
    palm_normal: np.ndarray,
    finger_dir: np.ndarray,
) -> SceneSample:
    """Pose, shape, placement, colour and light for one sample.

    The global orientation turns the rest hand (palm normal ``palm_normal``, fingers
    along ``finger_dir``, both in the model frame) so its palm faces the camera within
    ``preset.palm_facing`` degrees, rolled in-plane within ``preset.roll``; the wrist is
    placed at a depth in ``preset.distance`` and laterally so the hand stays in view.
    """
    h, w = image_size
    hand_pose = sample_hand_pose(preset, rng)
    shape = np.clip(rng.standard_normal(10) * 0.8, -2.5, 2.5)
    if preset.palm_facing >= 180.0:
        r = random_rotation(rng)
    else:
        # align palm normal with -z (towards the camera) and fingers with -y (up in image)
        src = np.stack([palm_normal, finger_dir, np.cross(palm_normal, finger_dir)], 1)
        dst_n, dst_f = np.array([0.0, 0.0, -1.0]), np.array([0.0, -1.0, 0.0])
        dst = np.stack([dst_n, dst_f, np.cross(dst_n, dst_f)], 1)
        r_align = dst @ src.T
        tilt_axis = rng.standard_normal(2)
        tilt_axis = np.array([*tilt_axis / np.linalg.norm(tilt_axis), 0.0])
        tilt = rotation_matrix(tilt_axis * np.deg2rad(rng.uniform(0, preset.palm_facing)))
        roll = rotation_matrix(np.array([0.0, 0.0, 1.0]) * np.deg2rad(rng.uniform(-preset.roll, preset.roll)))
        r = roll @ tilt @ r_align
    global_orient = matrix_to_axis_angle(r)
    z = rng.uniform(*preset.distance)
    # keep the hand's centre (about 8 cm from the wrist along the fingers) well inside
    # the image. MANO rotates about the root joint J0: p -> R (p - J0) + J0 + trans.
    margin = 0.35
    u = rng.uniform(margin, 1 - margin) * w
    v = rng.uniform(margin, 1 - margin) * h
    target = np.array([(u - w / 2) * z / focal, (v - h / 2) * z / focal, z])
    trans = target - rest_root - r @ (0.08 * finger_dir)
    colours = skin_colours(rest_verts, preset, rng)
    light = sample_light(preset, rng)
    return SceneSample(
        pose=np.concatenate([global_orient, hand_pose]).astype(np.float32),
        shape=shape.astype(np.float32),
        trans=trans.astype(np.float32),
        colours=colours,
        light=light,
    )


def noisy_keypoints(
    kp: np.ndarray, sigma: float, rng: np.random.Generator, outlier_rate: float = 0.05
) -> np.ndarray:
    """Detector-like noise on (V, 21, 2) keypoints -> (V, 21, 3) with honest confidence.

    Each keypoint gets Gaussian noise with a per-keypoint scale drawn around ``sigma``
    px; a fraction ``outlier_rate`` jumps by 4–10 sigma. Confidence is
    ``exp(-e^2 / (2 (2 sigma)^2))`` of the actual displacement ``e``, so it falls
    as the error grows, the way a detector's score does.
    """
    v, j, _ = kp.shape
    if sigma <= 0:
        return np.concatenate([kp, np.ones((v, j, 1))], -1).astype(np.float32)
    scale = sigma * rng.lognormal(0.0, 0.5, size=(v, j, 1))
    offset = rng.standard_normal((v, j, 2)) * scale
    outlier = rng.random((v, j)) < outlier_rate
    jump = rng.standard_normal((v, j, 2))
    jump = jump / np.linalg.norm(jump, axis=-1, keepdims=True) * rng.uniform(4, 10, size=(v, j, 1)) * sigma
    offset = np.where(outlier[..., None], jump, offset)
    err = np.linalg.norm(offset, axis=-1, keepdims=True)
    conf = np.exp(-(err**2) / (2 * (2 * sigma) ** 2))
    return np.concatenate([kp + offset, conf], -1).astype(np.float32)


def camera_rig(
    views: int, image_size: tuple[int, int], focal: float, baseline: float, target_depth: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Intrinsics (V, 3, 3) and world-to-camera transforms (V, 4, 4), world = view 0.

    1 view: one pinhole camera. 2 views: a rectified stereo pair, view 1 the right
    camera ``baseline`` metres along +x (T_view translation -baseline). N > 2: cameras
    on a horizontal arc around the point ``target_depth`` in front of view 0, all
    looking at it (for multi-view ``personalize`` data), 360/N degrees apart.
    """
    h, w = image_size
    k = np.array([[focal, 0, w / 2], [0, focal, h / 2], [0, 0, 1]], np.float32)
    ks = np.repeat(k[None], views, 0)
    ts = np.repeat(np.eye(4, dtype=np.float32)[None], views, 0)
    if views == 2:
        ts[1, 0, 3] = -baseline
    elif views > 2:
        centre = np.array([0.0, 0.0, target_depth])
        for i in range(1, views):
            a = 2 * np.pi * i / views
            r = rotation_matrix(np.array([0.0, -a, 0.0]))  # yaw about the vertical axis (y down)
            # camera i: rotate view 0 about the target; world->cam: x_c = R (x - c) + c0
            ts[i, :3, :3] = r
            ts[i, :3, 3] = centre - r @ centre
    return ks, ts
