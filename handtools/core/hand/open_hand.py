"""The bundled open, MANO-compatible right-hand model, generated reproducibly by code.

Used when the licensed MANO file is not available. The file it writes has MANO's keys,
shapes and conventions, so ``smplx.MANO(..., data_struct=Struct(**np.load(path)))``
loads it unchanged::

    v_template (778, 3)   f (1538, 3)            shapedirs (778, 3, 10)
    posedirs (778, 3, 135) J_regressor (16, 778)  weights (778, 16)
    kintree_table (2, 16)  hands_components (45, 45) hands_mean (45,)

all float64 (``f`` and ``kintree_table`` int64). Regenerate the shipped file with::

    $ python -m handtools.core.hand.open_hand --out handtools/data/open_hand_right.npz

**Frame** (MANO's right-hand template frame, metres): the fingers point along ``-x``
from the wrist joint at about ``(0.095, 0.006, 0.006)`` (MANO's mean wrist position), the
thumb is on the ``+z`` side, the back of the hand faces ``+y`` and the palm ``-y``; all
joint frames are aligned with this frame in the rest pose (as in MANO), so a positive
rotation about ``+z`` flexes a finger towards the palm. ``handtools.core.hand.joint_limits``
holds the anatomical axes and limits in that frame. The rest pose is a flat hand with
slightly spread fingers and the thumb abducted in the palm plane.

**How it is made** (deterministic, fixed seeds, a few seconds):

* surface: a "pillow" hand, see ``open_hand_mesh`` (778 vertices, 1538 faces, one wrist
  hole bounded by 16 edges, outward winding, fingertips at vertices 744, 320, 443, 555,
  672 - FreiHAND's ids - by a vertex permutation);
* skeleton: 16 joints at mid-thickness along the designed bones; middle proximal bone
  (MANO joints 4 -> 5) 2.8 cm; ``J_regressor`` rows are convex combinations of nearby
  vertices reproducing the rest joints exactly, so joints follow shape changes;
* ``weights``: bone-distance skinning (``open_hand_rig.skinning_weights``);
* ``shapedirs``: PCA of 600 random proportion changes (overall size, palm length and
  width, per-finger lengths and widths, thickness) applied by blending per-bone affine
  maps with the skinning weights; component ``i`` is scaled by its standard deviation
  so ``betas ~ N(0, 1)`` as in MANO;
* ``posedirs``: ridge least-squares fit making LBS + pose blend shapes approximate
  dual-quaternion skinning on 600 poses from ``joint_limits.sample_poses``;
* ``hands_components`` / ``hands_mean``: PCA of 20000 poses from ``sample_poses``; rows
  are principal directions scaled by their standard deviations (PCA coefficients have
  unit variance), ordered by decreasing variance.

Reproducibility: regeneration on the same platform is bit-identical; across BLAS
builds the tests compare with ``np.allclose(rtol=1e-6, atol=1e-9)``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from handtools.core.hand import open_hand_rig as rig
from handtools.core.hand.joint_limits import sample_poses
from handtools.core.hand.joints import FINGERTIP_VERTICES, MANO_PARENTS, NUM_FACES, NUM_VERTICES
from handtools.core.hand.open_hand_mesh import Skeleton2D, build_pillow, rest_skeleton

#: MANO's mean wrist joint position (metres); our palm-plane origin is put there.
WRIST_POSITION = np.array([0.0957, 0.0064, 0.0062])
MODEL_NAME = "handtools-open-hand-right-v1"
SEED = 20240531


def bundled_model_path() -> Path:
    """Path of the shipped open hand model, ``handtools/data/open_hand_right.npz``."""
    return Path(__file__).resolve().parents[2] / "data" / "open_hand_right.npz"


def _to_model_frame(uvh: np.ndarray) -> np.ndarray:
    """Palm-plane (u, v, h) in cm -> model frame (x, y, z) in metres (see docstring)."""
    uvh = np.asarray(uvh, dtype=np.float64)
    x = WRIST_POSITION[0] - 0.01 * uvh[..., 0]
    y = WRIST_POSITION[1] + 0.01 * uvh[..., 2]
    z = WRIST_POSITION[2] + 0.01 * uvh[..., 1]
    return np.stack([x, y, z], axis=-1)


def _skeleton_3d(sk: Skeleton2D) -> tuple[np.ndarray, np.ndarray]:
    j = np.concatenate([sk.joints, np.zeros((16, 1))], axis=1)
    t = np.concatenate([sk.tips, np.zeros((5, 1))], axis=1)
    return _to_model_frame(j), _to_model_frame(t)


def _permutation(n: int, tip_ids: np.ndarray) -> np.ndarray:
    """``order`` with ``order[new_id] = old_id`` putting the tips at FINGERTIP_VERTICES."""
    rest = [i for i in range(n) if i not in set(tip_ids.tolist())]
    order = np.empty(n, dtype=np.int64)
    targets = np.asarray(FINGERTIP_VERTICES)
    order[targets] = tip_ids
    free = np.setdiff1d(np.arange(n), targets)
    order[free] = rest
    return order


def _shape_samples(v: np.ndarray, joints: np.ndarray, tips: np.ndarray,
                   weights: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    """Vertex displacements (n, V, 3) of random plausible hand-proportion changes."""
    out = np.empty((n,) + v.shape)
    for i in range(n):
        size = 1.0 + 0.06 * rng.standard_normal()
        palm_len = 1.0 + 0.05 * rng.standard_normal()
        palm_wid = 1.0 + 0.05 * rng.standard_normal()
        thick = 1.0 + 0.07 * rng.standard_normal()
        shared_len = 0.05 * rng.standard_normal()
        flen = 1.0 + shared_len + 0.035 * rng.standard_normal(5)
        shared_wid = 0.07 * rng.standard_normal()
        fwid = 1.0 + shared_wid + 0.03 * rng.standard_normal(5)
        # palm: scale about the wrist along the palm axes (x: length, z: width, y: thickness)
        s0 = np.array([palm_len, thick, palm_wid])
        new_j = joints.copy()
        new_t = tips.copy()
        for j in (1, 4, 7, 10, 13):
            new_j[j] = joints[0] + s0 * (joints[j] - joints[0])
        for j in range(1, 16):
            f = rig.FINGER_OF_MANO_JOINT[j]
            end_new = new_j[j] + flen[f] * (rig.bone_end(joints, tips, j) - joints[j])
            if j in rig._CHILD:
                new_j[rig._CHILD[j]] = end_new
            else:
                new_t[rig._TIP_SLOT[j]] = end_new
        maps = np.zeros((16, 3, 4))
        maps[0, :, :3] = np.diag(s0)
        maps[0, :, 3] = joints[0] - s0 * joints[0]
        for j in range(1, 16):
            f = rig.FINGER_OF_MANO_JOINT[j]
            d = rig.bone_end(joints, tips, j) - joints[j]
            d /= np.linalg.norm(d)
            lin = fwid[f] * np.eye(3) + (flen[f] - fwid[f]) * np.outer(d, d)
            maps[j, :, :3] = lin
            maps[j, :, 3] = new_j[j] - lin @ joints[j]
        blended = np.einsum("vj,jab->vab", weights, maps)
        shaped = np.einsum("vab,vb->va", blended[..., :3], v) + blended[..., 3]
        c = joints[0]
        out[i] = size * (shaped - c) + c - v
    return out


def _pca(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` principal directions (k, D) scaled by their std, and the mean (D,).

    Signs are fixed so each direction's largest-magnitude entry is positive.
    """
    mean = x.mean(axis=0)
    xc = x - mean
    if xc.shape[0] < xc.shape[1]:  # eigen-decompose the smaller Gram matrix
        lam, u = np.linalg.eigh(xc @ xc.T)
        lam, u = lam[::-1][:k], u[:, ::-1][:, :k]
        vt = (xc.T @ u / np.sqrt(np.maximum(lam, 1e-300))).T
    else:
        lam, vec = np.linalg.eigh(xc.T @ xc)
        lam, vt = lam[::-1][:k], vec[:, ::-1][:, :k].T
    sign = np.sign(vt[np.arange(k), np.argmax(np.abs(vt), axis=1)])
    std = np.sqrt(np.maximum(lam, 0.0) / (len(x) - 1))
    return vt * (sign * std)[:, None], mean


def build_model() -> dict[str, np.ndarray]:
    """Generate the open hand model (deterministic).

    Returns:
        dict with MANO's keys (see module docstring), float64 arrays in metres,
        ``f`` and ``kintree_table`` int64, plus ``model_name`` (0-d str array).
    """
    rng = np.random.default_rng(SEED)
    sk = rest_skeleton()
    pm = build_pillow(sk)
    order = _permutation(len(pm.verts), pm.tip_ids)
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    v = _to_model_frame(pm.verts[order])
    faces = inverse[pm.faces]
    joints, tips = _skeleton_3d(sk)
    weights = rig.skinning_weights(v, joints, tips)
    j_reg = rig.joint_regressor(v, joints, weights)
    disp = _shape_samples(v, joints, tips, weights, rng, 600)
    comps, _ = _pca(disp.reshape(len(disp), -1), 10)
    shapedirs = comps.reshape(10, -1, 3).transpose(1, 2, 0)
    posedirs = rig.fit_posedirs(v, joints, weights, sample_poses(600, rng))
    hand_pca, hand_mean = _pca(sample_poses(20000, rng), 45)
    kintree = np.array([MANO_PARENTS, range(16)], dtype=np.int64)
    model = {
        "v_template": v,
        "f": faces.astype(np.int64),
        "shapedirs": shapedirs,
        "posedirs": posedirs,
        "J_regressor": j_reg,
        "weights": weights,
        "kintree_table": kintree,
        "hands_components": hand_pca,
        "hands_mean": hand_mean,
        "model_name": np.array(MODEL_NAME),
    }
    if v.shape != (NUM_VERTICES, 3) or faces.shape != (NUM_FACES, 3):
        raise RuntimeError("generated mesh has the wrong size")
    return model


def save_model(model: dict[str, np.ndarray], out: Path) -> Path:
    """Write ``model`` as an uncompressed ``.npz`` atomically (temp file, then rename)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".npz", dir=out.parent)
    os.close(fd)
    try:
        np.savez(tmp, **model)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate the open MANO-compatible hand model.")
    parser.add_argument("--out", type=Path, default=bundled_model_path(), help="output .npz path")
    args = parser.parse_args(argv)
    print(save_model(build_model(), args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
