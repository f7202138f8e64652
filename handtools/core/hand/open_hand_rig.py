"""Rigging of the bundled open hand model: skinning, joint regressor, shape and pose blend shapes.

Pure numpy, deterministic. Used by ``handtools.core.hand.open_hand``; units here are metres.
"""

from __future__ import annotations

import numpy as np

from handtools.core.hand.joints import MANO_PARENTS

_CHILD = {p: c for c, p in enumerate(MANO_PARENTS) if p > 0}
#: Finger (0 thumb .. 4 little) of each MANO joint; the wrist belongs to none (-1).
FINGER_OF_MANO_JOINT = (-1, 1, 1, 1, 2, 2, 2, 4, 4, 4, 3, 3, 3, 0, 0, 0)
#: Fingertip slot (thumb, index, middle, ring, little) of each last finger joint.
_TIP_SLOT = {15: 0, 3: 1, 6: 2, 12: 3, 9: 4}


def bone_end(joints: np.ndarray, tips: np.ndarray, j: int) -> np.ndarray:
    """End of the bone leaving MANO joint ``j`` (>= 1): its child joint or its fingertip."""
    return joints[_CHILD[j]] if j in _CHILD else tips[_TIP_SLOT[j]]


def _segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = b - a
    t = np.clip(((p - a) @ ab) / (ab @ ab), 0.0, 1.0)
    return np.linalg.norm(p - (a + t[:, None] * ab), axis=1)


def skinning_weights(verts: np.ndarray, joints: np.ndarray, tips: np.ndarray,
                     power: float = 4.0, finger_falloff: float = 0.01,
                     prune: float = 0.005) -> np.ndarray:
    """Smooth LBS weights from distances to the bones ("bone-distance" skinning).

    ``w_j ~ a_f(j) / d_j^power`` where ``d_j`` is the distance to the bone that joint
    ``j`` moves (wrist: the metacarpal segments wrist->MCPs) and ``a_f`` a smooth
    affinity to the vertex's closest finger so neighbouring fingers do not drag each
    other. Small weights are pruned and rows renormalised.

    Args:
        verts: (V, 3) float64, metres. joints: (16, 3). tips: (5, 3) bone end points.
    Returns:
        (V, 16) float64, rows sum to 1, entries >= 0.
    """
    nv = len(verts)
    d = np.empty((nv, 16))
    d[:, 0] = np.min([_segment_distance(verts, joints[0], joints[c])
                      for c in (1, 4, 7, 10, 13)], axis=0)
    for j in range(1, 16):
        d[:, j] = _segment_distance(verts, joints[j], bone_end(joints, tips, j))
    fd = np.stack([np.min(d[:, [j for j in range(1, 16) if FINGER_OF_MANO_JOINT[j] == f]], axis=1)
                   for f in range(5)], axis=1)  # (V, 5)
    aff = np.exp(-(((fd - fd.min(axis=1, keepdims=True)) / finger_falloff) ** 2))
    a = np.ones((nv, 16))
    for j in range(1, 16):
        a[:, j] = aff[:, FINGER_OF_MANO_JOINT[j]]
    w = a / np.maximum(d, 1e-5) ** power
    w /= w.sum(axis=1, keepdims=True)
    w[w < prune] = 0.0
    return w / w.sum(axis=1, keepdims=True)


def joint_regressor(verts: np.ndarray, joints: np.ndarray, weights: np.ndarray,
                    k: int = 24) -> np.ndarray:
    """Sparse joint regressor: each joint a convex combination of nearby vertices.

    For each joint, the ``k`` nearest vertices among those skinned to the joint or its
    parent get Gaussian weights, then the smallest change that makes the combination
    reproduce the joint exactly (and sum to 1) is applied; it stays non-negative.

    Returns:
        (16, V) float64, rows sum to 1, ``J @ verts == joints`` to ~1e-12 m.
    """
    nv = len(verts)
    reg = np.zeros((16, nv))
    for j in range(16):
        near = weights[:, j] > 0
        if MANO_PARENTS[j] >= 0:
            near |= weights[:, MANO_PARENTS[j]] > 0
        cand = np.nonzero(near)[0]
        dist = np.linalg.norm(verts[cand] - joints[j], axis=1)
        idx = cand[np.argsort(dist, kind="stable")[:k]]
        dd = np.linalg.norm(verts[idx] - joints[j], axis=1)
        w = np.exp(-0.5 * (dd / dd.mean()) ** 2)
        w /= w.sum()
        a = np.vstack([verts[idx].T, np.ones(len(idx))])  # (4, k)
        b = np.append(joints[j], 1.0)
        for _ in range(20):  # min-norm correction, clipping negatives
            w = w + a.T @ np.linalg.solve(a @ a.T, b - a @ w)
            if np.all(w >= 0):
                break
            w = np.maximum(w, 0.0)
        if np.any(w < -1e-12):
            raise RuntimeError(f"joint {j} is outside the hull of its regressor vertices")
        reg[j, idx] = w
    return reg


# --- skinning (numpy, MANO conventions) -----------------------------------------------

def rodrigues(r: np.ndarray) -> np.ndarray:
    """Axis-angle (..., 3) -> rotation matrices (..., 3, 3), float64."""
    theta = np.linalg.norm(r, axis=-1, keepdims=True)
    k = r / np.maximum(theta, 1e-12)
    kx, ky, kz = k[..., 0], k[..., 1], k[..., 2]
    zero = np.zeros_like(kx)
    kmat = np.stack([zero, -kz, ky, kz, zero, -kx, -ky, kx, zero], axis=-1).reshape(r.shape[:-1] + (3, 3))
    s = np.sin(theta)[..., None]
    c = np.cos(theta)[..., None]
    return np.eye(3) + s * kmat + (1 - c) * (kmat @ kmat)


def global_transforms(rot: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """Forward kinematics. rot: (N, 16, 3, 3) local rotations; joints: (16, 3) rest.

    Returns (N, 16, 4, 4) transforms mapping rest-pose points to posed points.
    """
    n = len(rot)
    g = np.zeros((n, 16, 4, 4))
    for j in range(16):
        local = np.zeros((n, 4, 4))
        local[:, :3, :3] = rot[:, j]
        p = MANO_PARENTS[j]
        local[:, :3, 3] = joints[j] - (joints[p] if p >= 0 else 0.0)
        local[:, 3, 3] = 1.0
        g[:, j] = local if p < 0 else g[:, p] @ local
    # remove the rest joint position: G_j * [I, -J_j]
    g[:, :, :3, 3] -= np.einsum("njab,jb->nja", g[:, :, :3, :3], joints)
    return g


def lbs_np(v_rest: np.ndarray, g: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Linear blend skinning. v_rest: (N, V, 3); g: (N, 16, 4, 4) -> (N, V, 3)."""
    t = np.einsum("vj,njab->nvab", weights, g)
    return np.einsum("nvab,nvb->nva", t[..., :3, :3], v_rest) + t[..., :3, 3]


def _quat_from_matrix(m: np.ndarray) -> np.ndarray:
    """(..., 3, 3) -> (..., 4) unit quaternions (w, x, y, z), robust branch choice."""
    from scipy.spatial.transform import Rotation

    q = Rotation.from_matrix(m.reshape(-1, 3, 3)).as_quat()  # x, y, z, w
    return np.concatenate([q[:, 3:], q[:, :3]], axis=1).reshape(m.shape[:-2] + (4,))


def _qmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack([aw * bw - ax * bx - ay * by - az * bz,
                     aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw], axis=-1)


def dqs_np(v_rest: np.ndarray, g: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Dual-quaternion skinning (Kavan et al. 2007). Shapes as ``lbs_np``.

    Written here because no maintained numpy library for it is a project dependency;
    it is only used at model-generation time to fit the pose blend shapes.
    """
    q0 = _quat_from_matrix(g[..., :3, :3])  # (N, 16, 4)
    t = np.concatenate([np.zeros(g.shape[:2] + (1,)), g[..., :3, 3]], axis=-1)
    qe = 0.5 * _qmul(t, q0)
    # shortest-path blending: align each bone's sign with the vertex's main bone
    main = np.argmax(weights, axis=1)  # (V,)
    sign = np.sign(np.einsum("njc,nvc->nvj", q0, q0[:, main]))  # (N, V, 16)
    sign[sign == 0] = 1.0
    w = weights[None] * sign
    b0 = np.einsum("nvj,njc->nvc", w, q0)
    be = np.einsum("nvj,njc->nvc", w, qe)
    norm = np.linalg.norm(b0, axis=-1, keepdims=True)
    b0, be = b0 / norm, be / norm
    w0, vec = b0[..., :1], b0[..., 1:]
    we, vece = be[..., :1], be[..., 1:]
    x = v_rest
    rot = x + 2 * np.cross(vec, np.cross(vec, x) + w0 * x)
    trans = 2 * (w0 * vece - we * vec + np.cross(vec, vece))
    return rot + trans


def pose_features(pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Local rotations (N, 16, 3, 3) and MANO pose features (N, 135) = (R_j - I), j>=1."""
    rot = rodrigues(pose.reshape(len(pose), 16, 3))
    feat = (rot[:, 1:] - np.eye(3)).reshape(len(pose), 135)
    return rot, feat


def fit_posedirs(v_rest: np.ndarray, joints: np.ndarray, weights: np.ndarray,
                 hand_poses: np.ndarray, ridge: float = 1e-3) -> np.ndarray:
    """Pose-corrective blend shapes fitted so LBS(v + P f) approximates DQS(v).

    For every sampled pose the DQS-minus-LBS offset of each vertex is mapped back to
    the rest pose (through the inverse of the vertex's blended LBS matrix) and
    regressed linearly on the pose features ``f = vec(R_j - I)`` (MANO, Eq. 3) with a
    small ridge. Each vertex only uses the joints that skin it and their parents, so
    moving one finger never deforms another.

    Args:
        v_rest: (V, 3) metres; joints: (16, 3); weights: (V, 16);
        hand_poses: (N, 45) radians (N > 135 recommended).
    Returns:
        (V, 3, 135) float64 posedirs in MANO's layout.
    """
    n = len(hand_poses)
    pose = np.concatenate([np.zeros((n, 3)), hand_poses], axis=1)
    rot, feat = pose_features(pose)
    g = global_transforms(rot, joints)
    vr = np.broadcast_to(v_rest, (n,) + v_rest.shape)
    v_l = lbs_np(vr, g, weights)
    v_d = dqs_np(vr, g, weights)
    blend = np.einsum("vj,njab->nvab", weights, g[..., :3, :3])  # (N, V, 3, 3)
    off = np.linalg.solve(blend, (v_d - v_l)[..., None])[..., 0]  # (N, V, 3) rest space
    nv = len(v_rest)
    posedirs = np.zeros((nv, 3, 135))
    for v in range(nv):
        js = {j for j in range(1, 16) if weights[v, j] > 0}
        js |= {MANO_PARENTS[j] for j in js if MANO_PARENTS[j] > 0}
        if not js:
            continue
        cols = np.concatenate([np.arange(9 * (j - 1), 9 * j) for j in sorted(js)])
        f = feat[:, cols]
        sol = np.linalg.solve(f.T @ f + ridge * n * np.eye(len(cols)), f.T @ off[:, v])
        posedirs[v][:, cols] = sol.T
    return posedirs
