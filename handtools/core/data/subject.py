"""A test subject whose hand the shape space cannot express, with its true template known.

``personalize`` (DeepHandMesh, Moon et al. ECCV 2020) learns one person's hand; to measure
what it learns we need a person whose true hand is known exactly and lies outside what a
MANO shape vector can reach. :func:`make_test_subject` derives one from any MANO-format
model:

* **bone lengths**: each finger bone (MCP->PIP, PIP->DIP, DIP->tip, thumb likewise) is
  longer or shorter by ``bone_scale`` (7-10 % either way by default). Each finger
  segment is moved rigidly with its joint and stretched along its bone, blended with the
  model's skinning weights, so the mesh stays smooth;
* **local thickness**: the palm and some fingers are inflated or deflated along the vertex
  normals by 2-3 mm (``offset_mm``), with a smooth falloff (the parts' skinning weights);
* **pose correctives**: the model's ``posedirs`` times ``corrective_gain`` plus a bulge
  along the normals around each finger joint as it bends (``bulge_mm`` per radian-ish
  unit of ``R - I``), so poses deform the skin in a way LBS with the base model does not.

The joint regressor is kept: the subject's skeleton is that regressor applied to its
template (so the template fixes it exactly). The output is a MANO-format dict (loadable by
:class:`handtools.core.hand.model.HandModel`, smplx, and ``--mano``), with a JSON record
under ``handtools_subject`` saying how it was made. Pure numpy; the caller writes it.
"""

from __future__ import annotations

import json

import numpy as np

from handtools.core.hand.joints import FINGERTIP_VERTICES, MANO_PARENTS, NUM_MANO_JOINTS

#: MANO joints of each finger, root to last joint (thumb, index, middle, ring, little)
#: and the fingertip vertex that ends it.
FINGER_CHAINS = ((13, 14, 15), (1, 2, 3), (4, 5, 6), (10, 11, 12), (7, 8, 9))


def vertex_normals(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) unit area-weighted vertex normals of a mesh (V, 3) with faces (F, 3)."""
    tri = verts[faces]  # (F, 3, 3)
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # (F, 3)
    n = np.zeros_like(verts)
    for k in range(3):
        np.add.at(n, faces[:, k], fn)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def _smooth(values: np.ndarray, faces: np.ndarray, iterations: int) -> np.ndarray:
    """Uniform-Laplacian smoothing of per-vertex values (V,) over the mesh's edges."""
    nv = len(values)
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    e = np.unique(np.sort(e, 1), axis=0)
    deg = np.bincount(e.ravel(), minlength=nv).astype(float)
    for _ in range(iterations):
        acc = np.zeros(nv)
        np.add.at(acc, e[:, 0], values[e[:, 1]])
        np.add.at(acc, e[:, 1], values[e[:, 0]])
        values = 0.5 * values + 0.5 * acc / np.maximum(deg, 1)
    return values


def make_test_subject(
    arrays: dict[str, np.ndarray],
    seed: int = 0,
    bone_scale: tuple[float, float] = (0.07, 0.10),
    offset_mm: tuple[float, float] = (2.0, 3.0),
    offset_fingers: int = 2,
    corrective_gain: float = 3.0,
    bulge_mm: float = 2.0,
) -> dict[str, np.ndarray]:
    """A personal hand derived from a MANO-format model (see the module docstring).

    Args:
        arrays: a MANO-format model (``mano_io.load_mano``); not modified.
        seed: random seed of every choice (which bones grow, which fingers thicken).
        bone_scale: each finger bone's length changes by a factor ``1 +- U(lo, hi)``.
        offset_mm: normal offset magnitude range in millimetres (palm and
            ``offset_fingers`` random fingers; sign random per finger, palm outwards).
        corrective_gain: factor on the model's own ``posedirs``.
        bulge_mm: added pose-dependent bulge around bending finger joints, mm per unit of
            ``R - I`` (about 2 mm at a right angle).

    Returns:
        A new MANO-format dict (float64 arrays, same keys) plus ``handtools_subject`` (0-d
        str: JSON of the settings and the chosen scales/offsets).
    """
    rng = np.random.default_rng(seed)
    V = np.asarray(arrays["v_template"], np.float64)  # (778, 3)
    W = np.asarray(arrays["weights"], np.float64)  # (778, 16)
    Jreg = np.asarray(arrays["J_regressor"], np.float64)  # (16, 778)
    faces = np.asarray(arrays["f"], np.int64)
    J = Jreg @ V  # (16, 3)

    # ---- bone lengths: per joint, the scale of the segment it owns (joint -> child/tip)
    seg_scale = np.ones(NUM_MANO_JOINTS)
    seg_end = np.zeros((NUM_MANO_JOINTS, 3))  # end point of each joint's segment (rest)
    for chain, tip in zip(FINGER_CHAINS, FINGERTIP_VERTICES):
        for k, j in enumerate(chain):
            seg_end[j] = J[chain[k + 1]] if k + 1 < len(chain) else V[tip]
            seg_scale[j] = 1.0 + rng.choice([-1.0, 1.0]) * rng.uniform(*bone_scale)
    new_j = J.copy()
    for chain in FINGER_CHAINS:  # the finger roots stay; each later joint moves with its bone
        for k in range(1, len(chain)):
            p, c = chain[k - 1], chain[k]
            new_j[c] = new_j[p] + seg_scale[p] * (J[c] - J[p])
    moved = np.repeat(V[None], NUM_MANO_JOINTS, 0)  # (16, 778, 3): each joint's rigid+stretch map
    for chain in FINGER_CHAINS:
        for j in chain:
            d = seg_end[j] - J[j]
            d = d / np.linalg.norm(d)
            rel = V - J[j]  # (778, 3)
            along = rel @ d  # (778,)
            moved[j] = new_j[j] + rel + (seg_scale[j] - 1.0) * np.clip(along, 0.0, None)[:, None] * d
    V1 = np.einsum("vj,jvc->vc", W, moved)  # (778, 3)

    # ---- local thickness along the normals
    n = vertex_normals(V1, faces)
    dominant = W.argmax(1)
    fingers = rng.choice(len(FINGER_CHAINS), size=offset_fingers, replace=False)
    offset = np.zeros(len(V1))
    parts = {"palm": (0, float(rng.uniform(*offset_mm)))}
    for f in fingers:
        parts[f"finger{int(f)}"] = (int(f), float(rng.choice([-1.0, 1.0]) * rng.uniform(*offset_mm)))
    for name, (f, mm) in parts.items():
        joints = [0] if name == "palm" else list(FINGER_CHAINS[f])
        mask = np.isin(dominant, joints).astype(float)
        offset += mm * 1e-3 * np.clip(_smooth(mask, faces, 3), 0, 1)
    V2 = V1 + offset[:, None] * n

    # ---- pose correctives: stronger model correctives plus a bulge at bending finger joints
    posedirs = np.asarray(arrays["posedirs"], np.float64) * corrective_gain  # (778, 3, 135)
    n2 = vertex_normals(V2, faces)
    coef = rng.uniform(-1.0, 1.0, size=(NUM_MANO_JOINTS - 1, 9))
    coef /= np.abs(coef).sum(1, keepdims=True)  # a unit of R - I moves the skin <= bulge_mm
    for j in range(1, NUM_MANO_JOINTS):
        parent = MANO_PARENTS[j]
        near = W[:, j] * W[:, parent] * 4.0  # around the joint: blended between two segments
        near = np.clip(_smooth(near, faces, 2), 0, 1)
        for k in range(9):
            posedirs[:, :, 9 * (j - 1) + k] += bulge_mm * 1e-3 * coef[j - 1, k] * near[:, None] * n2

    out = {k: np.array(v, copy=True) for k, v in arrays.items()}
    out["v_template"] = V2
    out["posedirs"] = posedirs
    out["J"] = Jreg @ V2
    record = {
        "generator": "handtools.core.data.subject.make_test_subject",
        "seed": seed,
        "bone_scale": list(bone_scale),
        "offset_mm": list(offset_mm),
        "corrective_gain": corrective_gain,
        "bulge_mm": bulge_mm,
        "segment_scales": {str(j): round(float(s), 4) for j, s in enumerate(seg_scale) if s != 1.0},
        "offsets_mm": {k: round(v[1], 3) for k, v in parts.items()},
    }
    out["handtools_subject"] = np.asarray(json.dumps(record))
    return out
