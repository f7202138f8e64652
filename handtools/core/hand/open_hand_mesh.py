"""Surface of the bundled open hand model: a "pillow" hand with MANO's topology counts.

Construction (all lengths in centimetres in this module; ``open_hand`` converts to metres):

1. A flat right hand is described in a 2D *palm plane* with coordinates ``(u, v)``:
   ``u`` runs from the wrist towards the fingertips, ``v`` across the palm towards the
   thumb. Fingers are tapered capsules around their bones, the palm a rounded polygon,
   joined with a smooth union so the finger webs are filleted. A forearm stub extends
   the shape below the wrist cut ``u = U_CUT``.
2. The outline of the shape (cut at the wrist) is sampled, more densely than the
   interior, with a vertex exactly at each fingertip's extreme point and exactly
   nine vertices (eight edges) along the straight wrist cut.
3. Interior points (one offset ring along the outline, finger centre lines and a
   hexagonal lattice in the palm) are triangulated with a Delaunay triangulation that
   is checked to be a disk bounded by the outline.
4. The disk is used twice, dorsal (``+h``) and palmar (``-h``), sharing the outline
   vertices except the seven inner wrist-cut vertices, which are duplicated. The
   result is a manifold open only at the wrist, whose hole is a loop of 16 edges.
   With ``I`` interior and ``B`` outline vertices: ``V = 2I + B + 7`` and
   ``F = 2(2I + B - 2)``; we choose ``2I + B = 771`` so that ``V = 778, F = 1538``.
5. Heights follow a round profile ``h = r sqrt(1 - (1 - min(d / r, 1))^2)`` of the
   distance ``d`` to the outline of the shape *with* the forearm stub, where ``r`` is
   the local finger radius or the palm half-thickness, so fingers get round
   cross-sections and the wrist opening is an ellipse rather than a slit.

Why our own code instead of a meshing library: no permissively licensed, pip-installable
constrained mesher is a dependency of the project, and the shape is simple enough that
a checked Delaunay triangulation (scipy) of a carefully sampled point set suffices.
"""

from __future__ import annotations

from dataclasses import dataclass

import contourpy
import numpy as np
from scipy.spatial import Delaunay, cKDTree

from handtools.core.hand.joint_limits import REST_BONE_ANGLE_DEG

#: Wrist cut (u coordinate, cm) and the vertices on it (including both corners).
U_CUT = -0.6
WRIST_CUT_VERTICES = 9
#: ``2I + B`` giving MANO's 778 vertices / 1538 faces (see module docstring).
PILLOW_BUDGET = 771

#: Palm half-thickness (cm) and forearm half-width (cm).
PALM_RADIUS = 1.25
#: Depth (cm) of the interior vertex ring that follows the outline.
RING_DEPTH = 0.26


@dataclass(frozen=True)
class Skeleton2D:
    """Rest skeleton in the palm plane, in MANO joint order (16 joints) plus 5 tips.

    Attributes:
        joints: (16, 2) float64, cm, MANO order (see ``handtools.core.hand.joints``).
        tips: (5, 2) float64, cm, end points of the last bones (thumb, index, middle,
            ring, little) - the fingertip *bone ends*, inside the tip pad.
        radii: (16, 2) float64, cm, capsule radius at the start and end of the bone that
            leaves each joint (row 0, the palm, is unused).
    """

    joints: np.ndarray
    tips: np.ndarray
    radii: np.ndarray


# Finger layout: MCP (u, v), bone lengths and radii; bone directions come from
# ``joint_limits.REST_BONE_ANGLE_DEG`` (one source of truth for the rest pose).
# Middle proximal bone is 2.8 cm (MANO joints 4 -> 5), adult proportions.
_FINGERS = {
    # name: (mano ids of the 3 joints, tip slot, mcp (u, v), angle deg, lengths, radii)
    "index": ((1, 2, 3), 1, (8.5, 2.75), 5.0, (2.6, 2.2, 1.75), (0.86, 0.80, 0.75, 0.68)),
    "middle": ((4, 5, 6), 2, (8.9, 0.85), 0.5, (2.8, 2.4, 1.85), (0.88, 0.82, 0.77, 0.70)),
    "ring": ((10, 11, 12), 3, (8.55, -1.05), -4.5, (2.65, 2.3, 1.75), (0.83, 0.78, 0.73, 0.66)),
    "little": ((7, 8, 9), 4, (7.75, -2.85), -10.0, (2.1, 1.65, 1.55), (0.74, 0.68, 0.64, 0.58)),
}
# Thumb: CMC-ish joint inside the thenar eminence, then MCP, IP, tip.
_THUMB_ROOT = (2.3, 2.25)
_THUMB_LENGTHS = (3.6, 3.1, 2.35)
_THUMB_RADII = (1.15, 1.0, 0.92, 0.84, 0.75)

#: Palm polygon (u, v) cm, counter-clockwise; rounded by ``_PALM_ROUND``.
_PALM_POLY = np.array(
    [(-5.0, -2.55), (4.0, -3.55), (7.75, -3.1), (8.9, -1.2), (9.0, 0.85),
     (8.6, 2.9), (5.5, 3.75), (2.0, 3.1), (-5.0, 2.45)], dtype=np.float64)
_PALM_ROUND = 0.35
_SMOOTH_UNION = 0.45


#: Finger (0 thumb .. 4 little) of each non-root MANO joint.
_FINGER_OF_BONE = {1: 1, 2: 1, 3: 1, 4: 2, 5: 2, 6: 2, 7: 4, 8: 4, 9: 4,
                   10: 3, 11: 3, 12: 3, 13: 0, 14: 0, 15: 0}


def rest_skeleton() -> Skeleton2D:
    """The designed rest skeleton (see ``Skeleton2D``); deterministic constants."""
    joints = np.zeros((16, 2))
    radii = np.zeros((16, 2))
    tips = np.zeros((5, 2))
    joints[0] = (0.0, 0.0)
    for ids, slot, mcp, angle, lengths, rad in _FINGERS.values():
        p = np.asarray(mcp, dtype=np.float64)
        for k, (j, length) in enumerate(zip(ids, lengths)):
            a = np.deg2rad(REST_BONE_ANGLE_DEG[j - 1])
            joints[j] = p
            radii[j] = (rad[k], rad[k + 1])
            p = p + length * np.array([np.cos(a), np.sin(a)])
        tips[slot] = p
    p = np.asarray(_THUMB_ROOT, dtype=np.float64)
    for k, j in enumerate((13, 14, 15)):
        a = np.deg2rad(REST_BONE_ANGLE_DEG[j - 1])
        joints[j] = p
        radii[j] = (_THUMB_RADII[k], _THUMB_RADII[k + 1])
        p = p + _THUMB_LENGTHS[k] * np.array([np.cos(a), np.sin(a)])
    tips[0] = p
    return Skeleton2D(joints=joints, tips=tips, radii=radii)


def bone_segments(sk: Skeleton2D) -> list[tuple[int, np.ndarray, np.ndarray, float, float]]:
    """Finger bones as ``(mano_joint, start (2,), end (2,), r_start, r_end)``, 15 entries."""
    from handtools.core.hand.joints import MANO_PARENTS

    child = {p: c for c, p in enumerate(MANO_PARENTS) if p > 0}
    tip_slot = {3: 1, 6: 2, 12: 3, 9: 4, 15: 0}
    out = []
    for j in range(1, 16):
        end = sk.joints[child[j]] if j in child else sk.tips[tip_slot[j]]
        out.append((j, sk.joints[j], end, sk.radii[j, 0], sk.radii[j, 1]))
    return out


def _capsule_sdf(p: np.ndarray, a: np.ndarray, b: np.ndarray, ra: float, rb: float):
    """Signed distance (approx.) to a tapered capsule; also the interpolated radius."""
    ab = b - a
    t = np.clip(((p - a) @ ab) / (ab @ ab), 0.0, 1.0)
    r = ra + (rb - ra) * t
    d = np.linalg.norm(p - (a + t[:, None] * ab), axis=1)
    return d - r, r


def _polygon_sdf(p: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Exact signed distance to a simple polygon (negative inside)."""
    d = np.full(len(p), np.inf)
    inside = np.zeros(len(p), dtype=bool)
    n = len(poly)
    for i in range(n):
        a, b = poly[i], poly[(i + 1) % n]
        e = b - a
        w = p - a
        t = np.clip((w @ e) / (e @ e), 0.0, 1.0)
        d = np.minimum(d, np.linalg.norm(w - t[:, None] * e, axis=1))
        # even-odd crossing test
        cond = (a[1] > p[:, 1]) != (b[1] > p[:, 1])
        xint = a[0] + (p[:, 1] - a[1]) * e[0] / np.where(e[1] == 0, 1e-30, e[1])
        inside ^= cond & (p[:, 0] < xint)
    return np.where(inside, -d, d)


def _smin(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth minimum (fillet radius ~k)."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b * (1 - h) + a * h - k * h * (1 - h)


def shape_fields(p: np.ndarray, sk: Skeleton2D) -> tuple[np.ndarray, np.ndarray]:
    """SDF of the hand-with-forearm shape and the local profile radius at points ``p``.

    Args:
        p: (N, 2) float64, cm.
    Returns:
        sdf (N,) cm (negative inside, forearm stub included), radius (N,) cm.
    """
    palm = _polygon_sdf(p, _PALM_POLY) - _PALM_ROUND
    sdf = palm
    num = np.exp(-np.maximum(palm, 0) / 0.3) * PALM_RADIUS
    den = np.exp(-np.maximum(palm, 0) / 0.3)
    fingers = {}
    for j, a, b, ra, rb in bone_segments(sk):
        d, r = _capsule_sdf(p, a, b, ra, rb)
        f = _FINGER_OF_BONE[j]
        fingers[f] = d if f not in fingers else np.minimum(fingers[f], d)
        wgt = np.exp(-np.maximum(d, 0) / 0.3) * np.where(d < 0, 4.0, 1.0)
        num = num + wgt * r
        den = den + wgt
    for f in sorted(fingers):
        sdf = _smin(sdf, fingers[f], _SMOOTH_UNION)
    return sdf, num / den


@dataclass(frozen=True)
class _Grid:
    """Shape fields sampled once on a regular grid (cm) for iso-line extraction."""

    uu: np.ndarray
    vv: np.ndarray
    ext: np.ndarray  # SDF with forearm stub
    dom: np.ndarray  # SDF cut at the wrist


def _grid(sk: Skeleton2D, step: float = 0.04) -> _Grid:
    us = np.arange(-3.0, 19.0 + step, step)
    vs = np.arange(-6.0, 10.0 + step, step)
    uu, vv = np.meshgrid(us, vs, indexing="xy")
    ext = shape_fields(np.stack([uu.ravel(), vv.ravel()], axis=1), sk)[0].reshape(uu.shape)
    return _Grid(uu, vv, ext, np.maximum(ext, U_CUT - uu))


def _dense_contour(g: _Grid, field: np.ndarray, level: float = 0.0) -> np.ndarray:
    """Closed iso-line ``field == level`` (longest one), (M, 2) cm, counter-clockwise."""
    gen = contourpy.contour_generator(g.uu, g.vv, field, line_type=contourpy.LineType.Separate)
    lines = gen.lines(level)
    best = max(lines, key=len)
    if np.allclose(best[0], best[-1]):
        best = best[:-1]
    # counter-clockwise orientation
    area = 0.5 * np.sum(best[:, 0] * np.roll(best[:, 1], -1) - np.roll(best[:, 0], -1) * best[:, 1])
    return best if area > 0 else best[::-1]


def _resample(path: np.ndarray, n: int) -> np.ndarray:
    """``n`` points evenly spaced by arc length on an open polyline, both ends included."""
    seg = np.linalg.norm(np.diff(path, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    t = np.linspace(0.0, s[-1], n)
    return np.stack([np.interp(t, s, path[:, 0]), np.interp(t, s, path[:, 1])], axis=1)


@dataclass(frozen=True)
class PillowMesh:
    """The pillow hand before the vertex permutation.

    Attributes:
        verts: (778, 3) float64, cm, columns (u, v, h): palm-plane coords and height.
        faces: (1538, 3) int64, outward (counter-clockwise seen from outside).
        uv: (778, 2) float64, cm, palm-plane position of each vertex.
        tip_ids: (5,) int64, vertex ids of the fingertip extremes (thumb..little).
        wrist_loop: (16,) int64, boundary loop vertex ids.
    """

    verts: np.ndarray
    faces: np.ndarray
    uv: np.ndarray
    tip_ids: np.ndarray
    wrist_loop: np.ndarray


def _outline(sk: Skeleton2D, g: _Grid, spacing: float):
    """Outline polygon (B, 2) counter-clockwise, ids of the 5 tip points, wrist ids."""
    c = _dense_contour(g, g.dom)
    # Split the contour at the two wrist corners and the five fingertip extremes.
    on_cut = np.abs(c[:, 0] - U_CUT) < 0.03
    vmin = c[on_cut, 1].min()
    vmax = c[on_cut, 1].max()
    c = c[~on_cut]
    # start right after the corner (U_CUT, vmin); CCW then goes up the little-finger side
    start = int(np.argmin(np.linalg.norm(c - (U_CUT, vmin), axis=1)))
    c = np.roll(c, -start, axis=0)
    c = np.concatenate([[[U_CUT, vmin]], c, [[U_CUT, vmax]]])
    anchors = [0]
    bones = {j: (a, b) for j, a, b, _, _ in bone_segments(sk)}
    # order along the CCW outline from the little-finger side: little, ring, middle, index, thumb
    for slot, last in ((4, 9), (3, 12), (2, 6), (1, 3), (0, 15)):
        a, b = bones[last]
        d = (b - a) / np.linalg.norm(b - a)
        proj = (c - sk.joints[[0]]) @ d
        near = np.linalg.norm(c - b, axis=1) < 1.5
        anchors.append(int(np.argmax(np.where(near, proj, -np.inf))))
    anchors.append(len(c) - 1)
    if anchors != sorted(anchors):
        raise RuntimeError("fingertip anchors are not in outline order")
    pts = [c[:1]]
    tip_ids = []
    for i0, i1 in zip(anchors[:-1], anchors[1:]):
        piece = c[i0:i1 + 1]
        length = np.sum(np.linalg.norm(np.diff(piece, axis=0), axis=1))
        n = max(int(round(length / spacing)), 2)
        pts.append(_resample(piece, n + 1)[1:])
        tip_ids.append(sum(len(q) for q in pts) - 1)
    outline_path = np.concatenate(pts)  # corner A ... corner B
    tips = np.array(tip_ids[:-1], dtype=np.int64)  # little, ring, middle, index, thumb
    cut = np.stack([np.full(WRIST_CUT_VERTICES, U_CUT),
                    np.linspace(vmax, vmin, WRIST_CUT_VERTICES)], axis=1)[1:-1]
    poly = np.concatenate([outline_path, cut])
    wrist_ids = np.concatenate([[len(outline_path) - 1],
                                np.arange(len(outline_path), len(poly)), [0]])
    return poly, tips[::-1].copy(), wrist_ids


def _interior_candidates(sk: Skeleton2D, g: _Grid, poly: np.ndarray, spacing: float):
    """Interior points: one offset ring, finger centre lines, palm lattice; with priority."""
    def dom(p):
        return np.maximum(shape_fields(p, sk)[0], U_CUT - p[:, 0])

    tree = cKDTree(poly)
    pts, kind = [], []
    # offset ring at ~45 degrees of the round profile
    ring = _dense_contour(g, g.dom, level=-RING_DEPTH)
    ring = ring[ring[:, 0] > U_CUT + 0.45]
    # break the ring where it jumps (removed wrist part) and resample each piece
    gaps = np.where(np.linalg.norm(np.diff(ring, axis=0), axis=1) > 0.1)[0]
    for piece in np.split(ring, gaps + 1):
        length = np.sum(np.linalg.norm(np.diff(piece, axis=0), axis=1))
        n = max(int(round(length / (0.8 * spacing))), 1)
        q = _resample(piece, n + 1)[:-1] if n > 1 else piece[:1]
        pts.append(q)
        kind += [0] * len(q)
    # finger centre lines
    for j, a, b, _, _ in bone_segments(sk):
        length = np.linalg.norm(b - a)
        n = max(int(round(length / (0.85 * spacing))), 1)
        t = (np.arange(n) + 0.5) / n
        q = a + t[:, None] * (b - a)
        pts.append(q)
        kind += [1] * len(q)
    # hexagonal lattice in the palm
    us = np.arange(U_CUT, 11.0, spacing * np.sqrt(3) / 2)
    lat = []
    for i, u in enumerate(us):
        vs = np.arange(-6.0 + (i % 2) * spacing / 2, 7.0, spacing)
        lat.append(np.stack([np.full(len(vs), u), vs], axis=1))
    lat = np.concatenate(lat)
    pts.append(lat)
    kind += [2] * len(lat)
    pts = np.concatenate(pts)
    kind = np.asarray(kind)
    sdf = dom(pts)
    ok = sdf < -0.2
    ok &= (kind == 0) | (tree.query(pts)[0] > RING_DEPTH + 0.35 * spacing)
    pts, kind = pts[ok], kind[ok]
    # lattice points must keep clear of the ring and centre lines; ring/centre points clear of each other
    keep = np.ones(len(pts), dtype=bool)
    fixed = pts[kind < 2]
    ftree = cKDTree(fixed)
    keep[kind == 2] = ftree.query(pts[kind == 2])[0] > 0.7 * spacing
    # thin the structured points greedily (deterministic order)
    sel = []
    order = np.argsort(kind, kind="stable")
    for i in order:
        if not keep[i]:
            continue
        if sel and np.min(np.linalg.norm(pts[sel] - pts[i], axis=1)) < 0.55 * spacing:
            continue
        sel.append(i)
    sel = np.array(sel)
    return pts[sel], kind[sel]


def _trim(pts: np.ndarray, kind: np.ndarray, n: int) -> np.ndarray:
    """Remove lattice points, most crowded first, until ``n`` points remain."""
    pts = pts.copy()
    kind = kind.copy()
    while len(pts) > n:
        d, _ = cKDTree(pts).query(pts, k=2)
        nn = np.where(kind == 2, d[:, 1], np.inf)
        i = int(np.argmin(nn))
        pts = np.delete(pts, i, axis=0)
        kind = np.delete(kind, i)
    return pts


def _triangulate_disk(poly: np.ndarray, interior: np.ndarray, sk: Skeleton2D) -> np.ndarray:
    """Delaunay triangles of outline + interior inside the outline, CCW, checked to be a disk."""
    pts = np.concatenate([poly, interior])
    tri = Delaunay(pts).simplices.astype(np.int64)
    cen = pts[tri].mean(axis=1)
    inside = np.maximum(shape_fields(cen, sk)[0], U_CUT - cen[:, 0]) < 0
    # discard triangles joining three outline points of a concave notch
    tri = tri[inside]
    a, b, c = pts[tri[:, 0]], pts[tri[:, 1]], pts[tri[:, 2]]
    cross = (b - a)[:, 0] * (c - a)[:, 1] - (b - a)[:, 1] * (c - a)[:, 0]
    tri = np.where((cross < 0)[:, None], tri[:, [0, 2, 1]], tri)
    nb = len(poly)
    edges = {}
    for f in tri:
        for k in range(3):
            e = (int(f[k]), int(f[(k + 1) % 3]))
            edges[e] = edges.get(e, 0) + 1
    boundary = [e for e in edges if (e[1], e[0]) not in edges]
    expect = {(i, (i + 1) % nb) for i in range(nb)}
    if set(boundary) != expect or len(tri) != 2 * len(pts) - nb - 2:
        raise RuntimeError(
            f"palm-plane triangulation is not a disk bounded by the outline "
            f"({len(set(boundary) ^ expect)} mismatched boundary edges)")
    return tri


def build_pillow(sk: Skeleton2D | None = None) -> PillowMesh:
    """Build the pillow hand surface (see module docstring). Deterministic, ~1 s."""
    sk = rest_skeleton() if sk is None else sk
    # outline spacing: choose it so that the interior budget is met with spacing ~1.4x
    g = _grid(sk)
    best = None
    for outline_spacing in np.arange(0.40, 0.70, 0.01):
        poly, tips, wrist = _outline(sk, g, float(outline_spacing))
        if len(poly) % 2 == 0:
            continue
        need = (PILLOW_BUDGET - len(poly)) // 2
        # largest interior spacing giving at least `need` points
        for spacing in np.arange(1.0, 0.45, -0.01):
            cand, kind = _interior_candidates(sk, g, poly, float(spacing))
            if len(cand) >= need:
                break
        if len(cand) < need or np.sum(kind == 2) < len(cand) - need:
            continue
        ratio = spacing / outline_spacing
        if best is None or abs(ratio - 1.45) < abs(best[0] - 1.45):
            best = (ratio, poly, tips, wrist, cand, kind, need)
        if ratio < 1.3:
            break
    if best is None:
        raise RuntimeError("could not meet the vertex budget")
    _, poly, tips, wrist, cand, kind, need = best
    interior = _trim(cand, kind, need)
    tri = _triangulate_disk(poly, interior, sk)
    return _inflate(sk, g, poly, interior, tri, tips, wrist)


def _inflate(sk, g, poly, interior, tri, tips, wrist) -> PillowMesh:
    """Lift the disk to the dorsal and palmar sides and stitch them (see docstring)."""
    nb, ni = len(poly), len(interior)
    # forearm-extended outline for the distance field
    ext = _dense_contour(g, g.ext)
    tree = cKDTree(ext)

    def height(p):
        d = tree.query(p)[0]
        _, r = shape_fields(p, sk)
        x = np.minimum(d / r, 1.0)
        return r * np.sqrt(np.clip(1.0 - (1.0 - x) ** 2, 0.0, 1.0))

    # vertex layout: outline (nb), dorsal interior (ni), palmar interior (ni), palmar wrist cut (7)
    cut_inner = wrist[1:-1]  # outline ids of the 7 inner wrist-cut points
    n = nb + 2 * ni + len(cut_inner)
    uv = np.concatenate([poly, interior, interior, poly[cut_inner]])
    h = np.zeros(n)
    h[nb:nb + ni] = height(interior)
    h[nb + ni:nb + 2 * ni] = -height(interior)
    h[cut_inner] = height(poly[cut_inner])
    h[nb + 2 * ni:] = -height(poly[cut_inner])
    # dorsal faces: disk ids as is (CCW in (u, v) = outward +h, see open_hand docstring)
    dorsal = np.where(tri < nb, tri, tri)
    # palmar: interior ids shifted, wrist-cut inner ids mapped to their palmar copies
    remap = np.arange(nb + ni)
    remap[nb:] = np.arange(nb + ni, nb + 2 * ni)
    remap[cut_inner] = nb + 2 * ni + np.arange(len(cut_inner))
    palmar = remap[tri][:, [0, 2, 1]]
    faces = np.concatenate([dorsal, palmar])
    verts = np.concatenate([uv, h[:, None]], axis=1)
    loop = np.concatenate([wrist, remap[wrist[::-1]][1:-1]])
    return PillowMesh(verts=verts, faces=faces, uv=uv, tip_ids=tips, wrist_loop=loop)
