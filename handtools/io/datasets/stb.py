"""STB, the Stereo Hand Pose Tracking Benchmark (Zhang et al., ICIP 2017): Bumblebee2 pairs.

Layout::

    <root>/images/<seq>/BB_left_<i>.png, BB_right_<i>.png   640x480, i = 0..1499
    <root>/labels/<seq>_BB.mat                               handPara: 3 x 21 x 1500, mm

``handPara`` holds 21 points per frame in the left camera's frame, millimetres, in
STB's order: palm centre, then little, ring, middle, index, thumb, each from the
finger's root (MCP) to its tip. The Bumblebee2 pair is rectified: fx = fy =
822.79041, cx = 318.47345, cy = 250.31296 (both views), baseline 120.054 mm.

Conversions to ``docs/design.md`` (tested in ``tests/io/test_datasets.py``):

1. Units: mm -> m.
2. Joint order: ``ours[j] = stb[STB_TO_OURS[j]]`` (thumb, index, middle, ring, little,
   root to tip).
3. Root: STB labels the palm centre, not the wrist. The wrist is extrapolated as
   ``wrist = palm + (palm - ring_mcp)`` (the palm centre lies about halfway between
   the wrist and the ring finger's MCP; the rule of Ge et al., CVPR 2019, used by
   most STB results). The original palm centre is kept as ``stb/palm`` (N, 3).
4. Handedness: STB shows left hands; they are mirrored to right hands (DESIGN.md).
   Mirroring the world (x -> -x) turns the right camera into the left one, so the
   views swap: view 0 is the flipped right image, view 1 the flipped left image,
   and points move to the new view 0's frame: ``(x, y, z) -> (b - x, y, z)``. The
   intrinsics become ``cx' = W - cx``; T_view keeps the rectified rig (view 1 at
   +b along x). Each sample records ``mirrored`` = 1.
5. Pixels: K gets the half-pixel shift of :func:`common.K_from_opencv`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from handtools.errors import InputError
from handtools.io.datasets.common import OnBad, Record, K_from_opencv, bad, keypoints_and_bbox, read_views
from handtools.io.datasets.media import stereo_rig

FX = FY = 822.79041
CX, CY = 318.47345, 250.31296
BASELINE_M = 0.120054
IMAGE_SIZE = (480, 640)

#: STB's joint names in its label order.
STB_JOINT_NAMES = (
    "palm",
    "little1", "little2", "little3", "little4",
    "ring1", "ring2", "ring3", "ring4",
    "middle1", "middle2", "middle3", "middle4",
    "index1", "index2", "index3", "index4",
    "thumb1", "thumb2", "thumb3", "thumb4",
)
#: For each of our 21 joints, its index in STB's order (joint 0 then becomes the wrist).
STB_TO_OURS = (0, 17, 18, 19, 20, 13, 14, 15, 16, 9, 10, 11, 12, 5, 6, 7, 8, 1, 2, 3, 4)
_RING_MCP = 13  # in our order


def stb_K(mirrored: bool = True) -> np.ndarray:
    """(3, 3) float32 intrinsics of either Bumblebee2 view (handtools' pixel convention)."""
    K = K_from_opencv(np.array([[FX, 0, CX], [0, FY, CY], [0, 0, 1]]))
    if mirrored:
        K[0, 2] = IMAGE_SIZE[1] - K[0, 2]
    return K


def convert_joints(hand_para: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """STB labels -> our joints in the left camera frame (not yet mirrored).

    Args:
        hand_para: (3, 21, N) float, millimetres, STB order (the ``.mat`` layout).

    Returns:
        joints (N, 21, 3) float64 metres in our order with the extrapolated wrist,
        and the palm centre (N, 3) metres.
    """
    a = np.asarray(hand_para, np.float64)
    if a.ndim != 3 or a.shape[:2] != (3, 21):
        raise ValueError(f"handPara must have shape (3, 21, N), got {a.shape}")
    stb = a.transpose(2, 1, 0) / 1000.0  # (N, 21, 3) metres
    ours = stb[:, list(STB_TO_OURS)]
    palm = ours[:, 0].copy()
    ours[:, 0] = 2.0 * palm - ours[:, _RING_MCP]
    return ours, palm


def mirror_points(points: np.ndarray, baseline: float = BASELINE_M) -> np.ndarray:
    """Left-camera-frame points of a left hand -> frame of the mirrored pair's view 0: (b - x, y, z)."""
    out = np.array(points, np.float64, copy=True)
    out[..., 0] = baseline - out[..., 0]
    return out


def _load_mat(path: Path) -> np.ndarray:
    import scipy.io

    try:
        mat = scipy.io.loadmat(str(path))
    except Exception as exc:  # scipy raises several types for bad .mat files
        raise InputError(f"{path}: not a readable .mat file ({type(exc).__name__})") from None
    if "handPara" not in mat:
        raise InputError(f"{path}: no 'handPara' variable")
    hp = np.asarray(mat["handPara"])
    if hp.ndim != 3 or hp.shape[:2] != (3, 21) or not np.issubdtype(hp.dtype, np.number):
        raise InputError(f"{path}: handPara has shape {hp.shape}, expected (3, 21, N)")
    return hp


def sequences(root: Path) -> list[str]:
    """Sequence names with stereo labels (``labels/<seq>_BB.mat``), sorted."""
    labels = Path(root) / "labels"
    if not labels.is_dir():
        raise InputError(f"{labels}: no such folder (is the STB root right?)")
    names = sorted(m.group(1) for p in labels.iterdir() if (m := re.fullmatch(r"(.+)_BB\.mat", p.name)))
    if not names:
        raise InputError(f"{labels}: no <sequence>_BB.mat label files")
    return names


def stb_records(root: Path, seqs: Optional[Sequence[str]] = None, *, on_bad: OnBad = None) -> list[Record]:
    """STB stereo samples, converted and mirrored to right hands (see the module docstring).

    Args:
        root: folder with ``images/`` and ``labels/``. seqs: sequence names (default:
            every ``labels/*_BB.mat``).
        on_bad: skip unreadable label files, frames with non-finite labels and missing
            or broken images instead of failing.

    Returns:
        Records whose samples hold ``images`` (2, 480, 640, 3), ``K`` (2, 3, 3),
        ``T_view`` (2, 4, 4), ``baseline`` (m), ``joints3d`` (21, 3) m in view 0's
        frame, ``keypoints2d`` (2, 21, 3), ``bbox`` (2, 4), ``stb/palm`` (3,),
        ``mirrored`` (uint8 1) and ``source``.
    """
    root = Path(root)
    seqs = list(seqs) if seqs else sequences(root)
    K = np.stack([stb_K(), stb_K()])
    T = stereo_rig(BASELINE_M)
    records: list[Record] = []
    for seq in seqs:
        mat = root / "labels" / f"{seq}_BB.mat"
        if not mat.is_file():
            bad(on_bad, f"{mat}: no such file (labels of sequence {seq})")
            continue
        try:
            joints, palm = convert_joints(_load_mat(mat))
        except InputError as exc:
            bad(on_bad, str(exc))
            continue
        joints, palm = mirror_points(joints), mirror_points(palm)
        folder = root / "images" / seq
        for i in range(joints.shape[0]):
            if not np.isfinite(joints[i]).all():
                bad(on_bad, f"{mat}: frame {i} has non-finite labels")
                continue
            kp, box = keypoints_and_bbox(joints[i], K, T, IMAGE_SIZE)
            lab = {
                "K": K, "T_view": T, "baseline": np.float32(BASELINE_M),
                "joints3d": joints[i].astype(np.float32), "keypoints2d": kp, "bbox": box,
                "stb/palm": palm[i].astype(np.float32), "mirrored": np.uint8(1),
            }
            left, right = folder / f"BB_left_{i}.png", folder / f"BB_right_{i}.png"
            records.append(_record(left, right, lab, f"stb/{seq}/{i}"))
    return records


def _record(left: Path, right: Path, lab: dict, name: str) -> Record:
    def load() -> dict:
        # Mirrored: view 0 is the flipped right image, view 1 the flipped left one.
        views = read_views([right, left], IMAGE_SIZE)[:, :, ::-1]
        return dict(lab, images=np.ascontiguousarray(views), source=f"{left} | {right} (mirrored)")

    return Record(name, load, (left, right))
