"""Synthetic labelled hand frames: scene sampling for ``handtools synth``.

Each sample is drawn from its own random stream ``default_rng([seed, index])``, so
a sample depends only on (seed, index, settings): any sharding or ``--part`` split
produces the same frames.

Two domain presets (:data:`DOMAINS`) with a real domain gap:

* ``studio`` — like FreiHAND: bright light (ambient 0.5–0.7 plus a directional
  0.3–0.5 from the camera's side, so the hand is modelled rather than flat), plain
  muted backgrounds with a soft gradient, natural poses (:func:`natural_pose`: each
  finger's joints curl together, the fingers spread together; a third of the hands
  make a gesture from :data:`GESTURES`), light skin tones, the hand at 0.45–0.75 m,
  its palm turned up to 90 degrees away from the camera and rolled up to ±90
  degrees in the image. (Uniformly random rotations were tried first: a prior
  trained from scratch on a few thousand such frames did not beat the mean pose
  in CPU-minutes, see bench/bench_prior.py; FreiHAND's viewpoints are not uniform either.)
* ``indoor`` — like STB: dim ambient light (0.25–0.45) and a strong coloured
  directional light (0.5–0.9) from a random side, so fingers shade; cluttered
  backgrounds (shapes and stripes on a mottled wall); counting poses (STB's counting
  sequences: :data:`GESTURES`, each finger extended or curled) with small jitter; a
  wider range of skin tones, more sensor noise, the hand at 0.45–0.7 m in front of a
  rectified stereo camera.

Both draw a forearm, elbow and upper arm continuing the wrist (:func:`forearm_mesh`;
bare or in a sleeve; scene context, in no ground truth), shade the skin smoothly with
soft wrapped light and a highlight (``handtools.core.data.synth_render``), and colour palms
paler than the back of the hand, nails pink-white, palm creases darker
(:func:`skin_colours`). These choices were measured: ``bench/bench_detect_synth.py``
runs the project's detector (MediaPipe, as ``handtools detect``) on the frames, and
the label-free pipeline (detect -> crop -> mask) only sees the hands it finds. Without
them (flat-shaded armless hands, joint angles drawn independently, random subsets of
extended fingers, a fine-grained noisy wall) it found 55 % of studio and 20 % of
indoor hands; now about 93 % of each. Leaving one change out of the final presets
(600 frames per domain): no forearm 78 % / 75 %, the fine-grained wall 75 % (indoor),
random finger subsets 87 % (indoor), the old flat light with saturated backgrounds
89 % (studio). docs/detect.md has the tables, including what was tried and left out
(ambient occlusion, cast shadows, palm lines drawn per pixel, image blur).
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
    pose_style: str  # "natural" (natural_pose), "counting" (counting_pose) or "wide" (joint_limits.sample_poses)
    pose_range: float  # natural: scale of the curls; counting: jitter; wide: fraction of the joint-limit range
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
    wrap: float = 0.4  # soft (subsurface-like) diffuse: light wraps this far past the terminator
    specular: tuple[float, float] = (0.04, 0.10)  # skin highlight strength (nails 3x)
    forearm: bool = True  # draw a forearm behind the hand, continuing its wrist
    wrist_bend: float = 25.0  # max bend of the forearm against the hand, degrees
    sleeve: float = 0.6  # probability that a sleeve covers the forearm from 4-20 cm on
    wall_texture: float = 25.0  # std of the wall's blurred noise, 0..255 units
    wall_grain: tuple[float, float] = (15.0, 40.0)  # blur of the wall's noise, px at 640 px width


DOMAINS: dict[str, DomainPreset] = {
    "studio": DomainPreset(
        name="studio",
        pose_style="natural",
        pose_range=1.0,
        distance=(0.45, 0.75),
        ambient=(0.5, 0.7),
        directional=(0.3, 0.5),
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


#: Sideways spread of each finger's MCP joint when the hand is spread (degrees of
#: abduction, towards the thumb positive), by MANO joint: index, middle, little, ring.
_SPREAD_DEG = {1: 16.0, 4: 2.0, 7: -20.0, 10: -9.0}


#: Gestures people make (which fingers are extended: thumb, index, middle, ring, little):
#: counting one to five (the American and the thumb-first ways), fist, thumbs-up, "L",
#: "call me", "rock", pinky up. Random subsets include ones few hands can make
#: (the ring finger alone) and look wrong.
GESTURES = (
    (0, 1, 0, 0, 0), (0, 1, 1, 0, 0), (0, 1, 1, 1, 0), (0, 1, 1, 1, 1), (1, 1, 1, 1, 1),
    (1, 0, 0, 0, 0), (1, 1, 0, 0, 0), (1, 1, 1, 0, 0), (1, 1, 1, 1, 0),
    (0, 0, 0, 0, 0), (1, 0, 0, 0, 1), (0, 1, 0, 0, 1), (0, 0, 0, 0, 1), (0, 0, 1, 1, 1),
)


def curl_pose(curl: np.ndarray, spread: float, rng: np.random.Generator, jitter: float = 1.0) -> np.ndarray:
    """(45,) axis-angle pose from one curl per finger: the joints of a finger flex together.

    Args:
        curl: (5,) in [0, 1], thumb..little: 0 straight, 1 fully curled.
        spread: in [0, 1]: how far the fingers fan out (together, so they never cross).
        jitter: in [0, 1]; scales the random spread around these values.
    A finger's MCP, PIP and DIP joints flex to ``curl`` of their range from straight
    (MCP from 10 degrees of hyperextension; DIP to 0.8 of its range) with 5 % jitter;
    a curled finger fans out less. Sideways motion of PIP/DIP joints and twist stay
    within 2 degrees. The thumb's CMC opposes (-5 to 40 degrees), its MCP and IP
    joints flex to 50 and 70 degrees as it curls; its CMC abduction is random in
    -15..25 degrees. Angles are clipped to ``joint_limits``.
    """
    lim = np.deg2rad(joint_limits.JOINT_LIMITS_DEG)  # (15, 3, 2)
    lo, hi = lim[..., 0], lim[..., 1]
    ang = np.zeros((15, 3))
    for f, joints in enumerate(_FINGER_MANO_JOINTS[1:], start=1):
        for k, j in enumerate(joints):
            start = max(lo[j - 1, 0], np.deg2rad(-10.0)) if k == 0 else 0.0
            reach = (hi[j - 1, 0] - start) * (0.8 if k == 2 else 1.0)
            ang[j - 1, 0] = start + (curl[f] + 0.05 * jitter * rng.standard_normal()) * reach
        ang[joints[0] - 1, 1] = np.deg2rad(_SPREAD_DEG[joints[0]]) * spread * (1.0 - 0.7 * curl[f])
    ang[:, 1:] += np.deg2rad(2.0) * jitter * rng.standard_normal((15, 2))
    t = curl[0]  # thumb: CMC, MCP, IP
    ang[12] = np.deg2rad([-5.0 + 45.0 * t, rng.uniform(-15.0, 25.0), rng.uniform(-8.0, 8.0) * jitter])
    ang[13, 0] = np.deg2rad(50.0 * t + 5.0 * jitter * rng.standard_normal())
    ang[14, 0] = np.deg2rad(-5.0 + 75.0 * t + 5.0 * jitter * rng.standard_normal())
    ang = np.clip(ang, lo, hi)
    return joint_limits.angles_to_pose(ang[None])[0]


def counting_pose(extended: np.ndarray, rng: np.random.Generator, jitter: float = 0.5) -> np.ndarray:
    """(45,) axis-angle pose of a counting gesture, as in STB's counting sequences.

    Args:
        extended: (5,) bool, thumb..little: which fingers are stretched out.
        jitter: in [0, 1]; scales the random spread around the two finger states.
    Each extended finger curls 0–15 % (times ``jitter``), each curled one 70–95 %;
    the extended fingers fan out by a random spread (:func:`curl_pose`).
    """
    curl = np.where(extended, rng.uniform(0.0, 0.15 * jitter + 1e-6, 5), rng.uniform(0.7, 0.95, 5))
    return curl_pose(curl, rng.uniform(0.2, 1.0), rng, jitter)


def natural_pose(rng: np.random.Generator, extent: float = 1.0) -> np.ndarray:
    """(45,) axis-angle pose of a relaxed, natural hand: fingers curl, spread and move together.

    Each finger gets a curl in [0, 1]: a shared level for the hand (Beta(1.2, 1.6))
    plus its own deviation (sd 0.2), so neighbouring fingers end up alike; or, for a
    third of the hands, each finger extended (curl 0–0.15) or curled (0.7–1) on its
    own: pointing, victory, thumbs-up... The spread is random and shrinks as the
    fingers curl (:func:`curl_pose`). ``extent`` in [0, 1] scales the curls.
    """
    if rng.random() < 1 / 3:  # gestures: each finger extended or curled
        extended = np.asarray(GESTURES[rng.integers(len(GESTURES))], bool)
        curl = np.where(extended, rng.uniform(0.0, 0.15, 5), rng.uniform(0.7, 1.0, 5))
    else:
        curl = np.clip(rng.beta(1.2, 1.6) + 0.2 * rng.standard_normal(5), 0.0, 1.0)
    return curl_pose(curl * extent, rng.uniform(0.0, 1.0), rng)


def sample_hand_pose(preset: DomainPreset, rng: np.random.Generator) -> np.ndarray:
    """(45,) axis-angle finger articulation for the preset's pose style."""
    if preset.pose_style == "counting":
        extended = np.asarray(GESTURES[rng.integers(len(GESTURES))], bool)
        return counting_pose(extended, rng, jitter=preset.pose_range)
    if preset.pose_style == "natural":
        return natural_pose(rng, extent=preset.pose_range)
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


def skin_regions(rest_verts: np.ndarray, rest_joints: np.ndarray, faces: np.ndarray,
                 palm_normal: np.ndarray) -> dict[str, np.ndarray]:
    """Where palm, nails and skin creases are on the rest mesh: (778,) weights in [0, 1] each.

    rest_verts (778, 3) and rest_joints (21, 3, FreiHAND order) of the zero pose and
    shape, model frame, metres; faces (F, 3); palm_normal (3,) the palm's outward
    normal in that frame. ``palm``: vertices whose normal faces the palm side.
    ``nail``: the back of each distal phalanx, from 1.5 mm to 11 mm behind its
    fingertip vertex. ``crease``: palm-side bands 2 mm wide across the MCP, PIP and
    DIP joints (and the thumb's MCP and IP joints).
    """
    from handtools.core.hand.joints import FINGERTIP_VERTICES

    n = vertex_normals(rest_verts, faces)
    facing = n @ palm_normal  # (778,)
    palm = np.clip((facing - 0.1) / 0.5, 0.0, 1.0)
    nail = np.zeros(len(rest_verts))
    for tip_vertex, dip in zip(FINGERTIP_VERTICES, (3, 7, 11, 15, 19)):
        tip = rest_verts[tip_vertex]
        axis = tip - rest_joints[dip]
        axis = axis / np.linalg.norm(axis)
        back = (tip - rest_verts) @ axis  # (778,) distance behind the tip along the finger
        near = np.linalg.norm(rest_verts - tip, axis=1) < 0.016
        inside = np.clip((back - 0.0015) / 0.002, 0, 1) * np.clip((0.011 - back) / 0.002, 0, 1)
        nail = np.maximum(nail, near * inside * np.clip((-facing - 0.3) / 0.3, 0, 1))
    crease = np.zeros(len(rest_verts))
    for j, child in ((5, 6), (6, 7), (7, 8), (9, 10), (10, 11), (11, 12), (13, 14), (14, 15), (15, 16),
                     (17, 18), (18, 19), (19, 20), (2, 3), (3, 4)):
        axis = rest_joints[child] - rest_joints[j]
        axis = axis / np.linalg.norm(axis)
        d = rest_verts - rest_joints[j]
        along = d @ axis
        radial = np.linalg.norm(d - along[:, None] * axis, axis=1)
        crease = np.maximum(crease, np.exp(-0.5 * (along / 0.002) ** 2) * (radial < 0.014))
    return {"palm": palm, "nail": nail, "crease": crease * palm}


def skin_colours(
    verts_rest: np.ndarray, preset: DomainPreset, rng: np.random.Generator,
    regions: dict[str, np.ndarray] | None = None,
) -> np.ndarray:
    """(778, 3) per-vertex albedo in [0, 1]: a base tone with smooth and fine variation.

    With ``regions`` (:func:`skin_regions`): palms paler and pinker than the back of
    the hand (markedly for dark skin, as in real hands), pink-white nails, darker
    palm creases.
    """
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
    albedo = base[None] * smooth * fine  # (778, 3)
    if regions is not None:
        palm, nail, crease = (regions[k][:, None] for k in ("palm", "nail", "crease"))
        pale = np.array([0.93, 0.74, 0.66])
        albedo = albedo * (1 - 0.06 * (1 - palm)) + 0.35 * palm * (pale - albedo)
        albedo = albedo + 0.6 * nail * (np.array([0.95, 0.80, 0.78]) - albedo)
        albedo = albedo * (1 - 0.2 * crease)
    return np.clip(albedo, 0.0, 1.0).astype(np.float32)


def vertex_normals(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) unit outward vertex normals (area-weighted face normals; faces wound
    counter-clockwise seen from outside, as MANO's)."""
    tri = verts[faces]  # (F, 3, 3)
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # (F, 3), |.| = 2 area
    n = np.zeros_like(verts)
    for k in range(3):
        np.add.at(n, faces[:, k], fn)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def boundary_loop(faces: np.ndarray) -> np.ndarray:
    """Ordered vertex ids of a mesh's boundary (MANO's wrist opening); empty if closed.

    faces (F, 3) int. Boundary edges are those of one face only; the loop follows
    them from the smallest id in the direction of the face winding. A mesh with more
    than one hole gives the loop through the smallest boundary id.
    """
    count: dict[tuple[int, int], int] = {}
    directed = {}
    for f in np.asarray(faces):
        for a, b in ((f[0], f[1]), (f[1], f[2]), (f[2], f[0])):
            key = (min(a, b), max(a, b))
            count[key] = count.get(key, 0) + 1
            directed[key] = (int(a), int(b))
    nxt = dict(directed[k] for k, c in count.items() if c == 1)
    if not nxt:
        return np.zeros(0, np.int64)
    loop = [min(nxt)]
    while nxt.get(loop[-1], loop[0]) != loop[0] and len(loop) <= len(nxt):
        loop.append(nxt[loop[-1]])
    return np.asarray(loop, np.int64)


#: Distances (m) from the wrist opening of the forearm's rings before the sleeve's cuff,
#: the elbow and the upper arm are added (see :func:`forearm_mesh`).
ARM_RINGS = (0.0, 0.008, 0.02, 0.04, 0.07, 0.11, 0.16, 0.2)
#: Length of the upper arm drawn beyond the elbow, metres.
UPPER_ARM = 0.35


@dataclass
class ArmSample:
    """A forearm continuing the hand's wrist opening (scene context; not part of the hand)."""

    flex: float  # bend against the hand about the wrist's width axis, radians
    deviation: float  # bend about the wrist's thickness axis, radians
    length: float  # metres from the wrist opening to the elbow
    girth: float  # forearm cross-section, relative to the default
    sleeve_at: float  # metres from the wrist opening where a sleeve starts (>= length: bare arm)
    sleeve_colour: np.ndarray  # (3,) albedo
    upper: np.ndarray = field(default_factory=lambda: np.array([0.0, 1.0, 0.0]))  # (3,) upper arm direction, unit


def sample_arm(preset: DomainPreset, rng: np.random.Generator) -> ArmSample:
    """Forearm bend, length, girth and sleeve for the preset."""
    b = np.deg2rad(preset.wrist_bend)
    # the upper arm hangs from the shoulder: down (+y, the camera is upright), a little sideways and away
    upper = np.array([rng.uniform(-0.4, 0.4), 1.0, rng.uniform(0.0, 0.6)])
    import colorsys

    # clothing: a random hue, moderate saturation, any brightness
    colour = np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.0, 0.7), rng.uniform(0.08, 0.9)))
    return ArmSample(
        flex=float(rng.uniform(-b, b)), deviation=float(rng.uniform(-0.5 * b, 0.5 * b)),
        length=float(rng.uniform(0.24, 0.3)), girth=float(rng.uniform(0.9, 1.1)),
        sleeve_at=float(rng.uniform(0.04, 0.2)) if rng.random() < preset.sleeve else 1.0,
        sleeve_colour=colour, upper=upper / np.linalg.norm(upper),
    )


def forearm_faces(loop_size: int) -> np.ndarray:
    """(F, 3) int64 faces of :func:`forearm_mesh`'s vertices: a tube of
    ``len(ARM_RINGS) + 6`` rings of ``loop_size`` vertices, closed by a fan at the far end."""
    rings = len(ARM_RINGS) + 6
    k = np.arange(loop_size)
    faces = []
    for i in range(rings - 1):
        a, b = i * loop_size + k, i * loop_size + (k + 1) % loop_size
        faces += [np.stack([a, b, b + loop_size], 1), np.stack([a, b + loop_size, a + loop_size], 1)]
    last, centre = (rings - 1) * loop_size, rings * loop_size
    faces.append(np.stack([last + (k + 1) % loop_size, last + k, np.full(loop_size, centre)], 1))
    return np.concatenate(faces).astype(np.int64)


def forearm_mesh(loop: np.ndarray, hand_centre: np.ndarray, arm: ArmSample,
                 min_depth: float = 0.05) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Arm vertices continuing the posed hand's wrist opening: forearm, elbow, upper arm.

    loop (L, 3): the opening's vertices in loop order (camera frame, metres);
    hand_centre (3,): any point inside the hand (the arm leaves away from it).
    The first ring is the opening itself; later rings turn, over 10 cm, from the
    opening's rounded-rectangle section into an ellipse 1.1x as wide and 0.72x the
    width thick (scaled by ``girth``), bending by ``flex``/``deviation`` over the
    first 6 cm. At ``length`` (the elbow) the arm turns within 4 cm to ``upper`` and
    goes on for :data:`UPPER_ARM` m, 1.25x as thick. From ``sleeve_at`` on a cuff
    steps the section out by 20 %. Points nearer the camera than ``min_depth`` are
    pulled back towards the wrist.

    Returns vertices (M, 3), outward normals (M, 3) and a sleeve flag (M,) bool,
    M = L * (len(ARM_RINGS) + 6) + 1, for :func:`forearm_faces`.
    """
    c = loop.mean(0)
    off = loop - c
    _, _, vt = np.linalg.svd(off, full_matrices=False)
    w, a = vt[0], vt[2]
    if a @ (c - hand_centre) < 0:
        a = -a
    t = np.cross(a, w)
    x, y = off @ w, off @ t
    aw, bw = max(np.abs(x).max(), 1e-4), max(np.abs(y).max(), 1e-4)
    phi = np.arctan2(y / bw, x / aw)
    cuff = min(arm.sleeve_at, arm.length - 0.006)
    elbow = arm.length
    s = np.array(sorted(ARM_RINGS + (cuff, cuff + 0.003, elbow, elbow + 0.04, elbow + 0.12, elbow + UPPER_ARM)))
    bend_axis = arm.flex * w + arm.deviation * t
    wrist = lambda d: rotation_matrix(bend_axis * min(1.0, d / 0.06))  # noqa: E731
    fore = wrist(0.06) @ a  # the forearm's direction
    cross = np.cross(fore, arm.upper)
    turn_axis = cross / max(np.linalg.norm(cross), 1e-9) * np.arccos(np.clip(fore @ arm.upper, -1.0, 1.0))
    frame = lambda d: rotation_matrix(turn_axis * np.clip((d - elbow) / 0.04, 0, 1)) @ wrist(d)  # noqa: E731
    verts, normals, sleeve = [], [], []
    centre, prev = c.copy(), 0.0
    for i, si in enumerate(s):
        rot = frame(si)
        centre = centre + (si - prev) * (frame(0.5 * (si + prev)) @ a)
        prev = si
        wi, ti = rot @ w, rot @ t
        g = float(np.clip(si / 0.1, 0, 1)) ** 2 * (3 - 2 * float(np.clip(si / 0.1, 0, 1)))  # smoothstep
        girth = (1 + (arm.girth - 1) * g) * (1 + 0.25 * np.clip((si - elbow) / 0.04, 0, 1))
        ai, bi = aw * (1 + 0.1 * g) * girth, (bw + (0.72 * aw - bw) * g) * girth
        cloth = si > arm.sleeve_at + 0.001
        if cloth:
            ai, bi = ai * 1.2, bi * 1.2
        blend = min(1.0, si / 0.03)
        u = (1 - blend) * x * ai / aw + blend * ai * np.cos(phi)
        v = (1 - blend) * y * bi / bw + blend * bi * np.sin(phi)
        ring = loop if i == 0 else centre + u[:, None] * wi + v[:, None] * ti
        nrm = np.cos(phi)[:, None] / ai * wi + np.sin(phi)[:, None] / bi * ti
        verts.append(ring)
        normals.append(nrm / np.linalg.norm(nrm, axis=1, keepdims=True))
        sleeve.append(np.full(len(loop), cloth))
    verts.append(centre[None])
    normals.append((frame(s[-1]) @ a)[None])
    sleeve.append(np.array([s[-1] > arm.sleeve_at + 0.001]))
    verts = np.concatenate(verts)
    # keep the arm in front of the camera: pull near points back along their line to the wrist
    z0 = c[2]
    behind = verts[:, 2] < min_depth
    if behind.any() and z0 > min_depth:
        verts[behind] = c + (verts[behind] - c) * ((z0 - min_depth) / (z0 - verts[behind, 2]))[:, None]
    return verts, np.concatenate(normals), np.concatenate(sleeve)


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
        c0 = c0.mean() + 0.3 * (c0 - c0.mean())  # muted: studio walls and sheets, not candy colours
        c1 = c0 * rng.uniform(0.8, 1.0, size=3)
        a = rng.uniform(0, 2 * np.pi)
        t = ((xx - w / 2) * np.cos(a) + (yy - h / 2) * np.sin(a)) / max(h, w) + 0.5  # (H, W)
        img = c0[None, None] * (1 - t[..., None]) + c1[None, None] * t[..., None]
        return np.clip(img * 255, 0, 255).astype(np.uint8)
    # clutter: a textured wall, furniture-like blocks, stripes, blobs
    wall = rng.uniform(60, 200, size=3).astype(np.float32)
    # Blurred white noise; a coarse grain is drawn at a lower resolution and resized.
    grain = rng.uniform(*preset.wall_grain) * w / 640.0
    k = max(1, int(grain / 3))
    noise = cv2.GaussianBlur(rng.standard_normal((-(-h // k), -(-w // k))).astype(np.float32), (0, 0), grain / k)
    if k > 1:
        noise = cv2.resize(noise, (w, h), interpolation=cv2.INTER_LINEAR)
    scale = noise.std() + 1e-6
    noise *= preset.wall_texture
    noise /= scale
    img = noise[..., None] + wall  # (H, W, 3) float32: the wall plus blurred noise of std wall_texture
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
    arm: ArmSample | None = None  # the forearm drawn behind the hand
    specular: float = 0.0  # skin highlight strength


def sample_scene(
    preset: DomainPreset,
    rng: np.random.Generator,
    rest_verts: np.ndarray,
    rest_root: np.ndarray,
    image_size: tuple[int, int],
    focal: float,
    palm_normal: np.ndarray,
    finger_dir: np.ndarray,
    regions: dict[str, np.ndarray] | None = None,
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
    colours = skin_colours(rest_verts, preset, rng, regions)
    light = sample_light(preset, rng)
    arm = sample_arm(preset, rng)  # drawn even when not drawn, so preset.forearm changes nothing else
    return SceneSample(
        pose=np.concatenate([global_orient, hand_pose]).astype(np.float32),
        shape=shape.astype(np.float32),
        trans=trans.astype(np.float32),
        colours=colours,
        light=light,
        arm=arm,
        specular=float(rng.uniform(*preset.specular)),
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


#: Multi-view rig layouts for N > 2 views (``camera_rig``'s ``rig``).
RIGS = ("ring", "dome")


def camera_rig(
    views: int, image_size: tuple[int, int], focal: float, baseline: float, target_depth: float = 0.5,
    rig: str = "ring",
) -> tuple[np.ndarray, np.ndarray]:
    """Intrinsics (V, 3, 3) and world-to-camera transforms (V, 4, 4), world = view 0.

    1 view: one pinhole camera. 2 views: a rectified stereo pair, view 1 the right
    camera ``baseline`` metres along +x (T_view translation -baseline). N > 2: cameras
    around the point ``target_depth`` in front of view 0, all looking at it (for
    multi-view ``personalize`` data): ``rig="ring"`` on a horizontal circle, 360/N
    degrees apart; ``rig="dome"`` on the front hemisphere (up to 75 degrees from view 0's
    axis, a golden-angle spiral), like the paper's capture studio (front, sides, top).
    """
    if rig not in RIGS:
        raise ValueError(f"rig must be one of {RIGS}, got {rig!r}")
    if rig == "dome" and views > 2:
        return _dome_rig(views, image_size, focal, target_depth)
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


def _dome_rig(views: int, image_size: tuple[int, int], focal: float, target_depth: float):
    """Cameras on the front hemisphere around ``(0, 0, target_depth)``; see :func:`camera_rig`."""
    h, w = image_size
    k = np.array([[focal, 0, w / 2], [0, focal, h / 2], [0, 0, 1]], np.float32)
    ks = np.repeat(k[None], views, 0)
    ts = np.repeat(np.eye(4, dtype=np.float32)[None], views, 0)
    centre = np.array([0.0, 0.0, target_depth])
    golden = np.pi * (3.0 - np.sqrt(5.0))
    for i in range(1, views):
        polar = np.deg2rad(75.0) * np.sqrt(i / (views - 1))  # even spread over the cap
        azimuth = golden * i
        axis = np.array([np.cos(azimuth), np.sin(azimuth), 0.0])  # perpendicular to the view axis
        r = rotation_matrix(axis * polar)
        ts[i, :3, :3] = r
        ts[i, :3, 3] = centre - r @ centre
    return ks, ts


def centre_scene(scene: SceneSample, rest_root: np.ndarray, finger_dir: np.ndarray, centre: np.ndarray) -> None:
    """Move a sampled hand so its centre (8 cm from the wrist along the fingers, as in
    :func:`sample_scene`) sits at ``centre`` (view-0 frame, metres), in place: the point
    a multi-view rig looks at, so every view sees the hand."""
    r = rotation_matrix(scene.pose[:3].astype(np.float64))
    scene.trans = (centre - rest_root - r @ (0.08 * finger_dir)).astype(np.float32)
