"""Renderer tests: closed-form scenes, a brute-force rasteriser, finite-difference gradients.

Pixel convention under test: pixel i covers [i, i + 1), so the image of the
camera-frame point (x, y, z) is u = fx x / z + cx (column), v = fy y / z + cy (row).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import trimesh

from handtools.core.render import (
    LIGHT_AMBIENT_COLOR,
    LIGHT_AMBIENT_INTENSITY,
    LIGHT_DIM,
    LIGHT_DIRECTION,
    LIGHT_DIRECTIONAL_COLOR,
    LIGHT_DIRECTIONAL_INTENSITY,
    Renderer,
    default_light,
    project,
    render,
)
from handtools.core.render.raster_torch import TorchRasterizer, edge_neighbours, opposite_vertices

D = torch.float64


def intrinsics(f=100.0, cx=16.0, cy=16.0, dtype=D):
    return torch.tensor([[[f, 0.0, cx], [0.0, f, cy], [0.0, 0.0, 1.0]]], dtype=dtype)


def plane(x0, y0, x1, y1, z, n=1, dtype=D):
    """Fronto-parallel rectangle split into an n x n grid of quads (2 triangles each), facing the camera."""
    xs, ys = torch.linspace(x0, x1, n + 1, dtype=dtype), torch.linspace(y0, y1, n + 1, dtype=dtype)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    verts = torch.stack([gx, gy, torch.full_like(gx, z)], -1).reshape(1, -1, 3)
    faces = []
    for r in range(n):
        for c in range(n):
            a, b, d, e = r * (n + 1) + c, r * (n + 1) + c + 1, (r + 1) * (n + 1) + c, (r + 1) * (n + 1) + c + 1
            faces += [[a, e, b], [a, d, e]]  # counter-clockwise seen from outside (from the camera)
    return verts, torch.tensor(faces)


def sphere(radius=0.1, centre=(0.0, 0.0, 0.5), subdivisions=3, dtype=D):
    m = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    verts = torch.tensor(np.asarray(m.vertices), dtype=dtype)[None] + torch.tensor(centre, dtype=dtype)
    return verts, torch.tensor(np.asarray(m.faces), dtype=torch.int64)


def hand_sized_mesh(seed=0, dtype=D):
    """778 vertices, 1538 faces (MANO's counts): an icosphere with 136 faces split, 14 removed, squashed and bumped."""
    m = trimesh.creation.icosphere(subdivisions=3)
    v, f = np.asarray(m.vertices), np.asarray(m.faces)
    extra = 778 - len(v)
    centres = v[f[:extra]].mean(1)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    new = np.arange(len(v), len(v) + extra)
    a, b, c = f[:extra].T
    f = np.concatenate([f[extra:], np.stack([a, b, new], 1), np.stack([b, c, new], 1), np.stack([c, a, new], 1)])
    f = np.delete(f, np.arange(14) * 97, axis=0)
    v = np.concatenate([v, centres])
    rng = np.random.default_rng(seed)
    v = v * np.array([0.045, 0.09, 0.02]) * (1 + 0.1 * rng.standard_normal((len(v), 1)))
    verts = torch.tensor(v, dtype=dtype)[None] + torch.tensor([0.0, 0.0, 0.5], dtype=dtype)
    return verts, torch.tensor(f)


def brute_force_face_ids(verts, faces, K, H, W):
    """Reference z-buffer: every pixel centre against every face, densely (tiny images only)."""
    uv, z = project(verts, K)
    out = []
    for b in range(verts.shape[0]):
        t, tz = uv[b][faces], z[b][faces]  # (F, 3, 2), (F, 3)
        ys, xs = torch.meshgrid(torch.arange(H, dtype=D) + 0.5, torch.arange(W, dtype=D) + 0.5, indexing="ij")
        p = torch.stack([xs, ys], -1).reshape(-1, 1, 1, 2)  # (HW, 1, 1, 2)
        d = t[None] - p  # (HW, F, 3, 2)
        w = torch.stack(
            [d[..., i, 0] * d[..., j, 1] - d[..., i, 1] * d[..., j, 0] for i, j in ((1, 2), (2, 0), (0, 1))], -1
        )
        lam = w / w.sum(-1, keepdim=True)
        inside = (lam >= 0).all(-1)
        depth = torch.where(inside, 1.0 / (lam / tz).sum(-1), torch.inf)
        dmin, fid = depth.min(1)
        out.append(torch.where(torch.isinf(dmin), -1, fid).view(H, W))
    return torch.stack(out)


# --- closed-form scenes ---------------------------------------------------------------


def test_plane_depth_and_pixel_convention():
    # x in [-0.1, 0.1] at z=1, f=100, cx=16 -> u in [6, 26]: exactly columns 6..25 (centres 6.5..25.5).
    verts, faces = plane(-0.1, -0.05, 0.1, 0.15, 1.0)
    out = render(verts, faces, intrinsics(), (32, 32), backend="torch")
    inside = torch.zeros(32, 32, dtype=torch.bool)
    inside[11:31, 6:26] = True  # v in [11, 31)
    assert torch.equal(out.face_ids[0] >= 0, inside)
    assert torch.allclose(out.depth[0][inside], torch.ones((), dtype=D), atol=1e-12)
    assert (out.depth[0][~inside] == 0).all()
    assert torch.allclose(out.silhouette[0], inside.to(D))  # edges on pixel borders: no partial pixels
    assert out.rgb is None


def test_projected_point_lands_in_its_pixel():
    # A 0.6-px triangle around the image of a point 0.1 px from the centre of pixel (row 21, col 9)
    # covers exactly that pixel: centres are at integer + 0.5 of u = fx x / z + cx.
    K = intrinsics(f=80.0, cx=15.3, cy=17.9)
    z = 0.7
    u, v = 9.6, 21.4
    centre = torch.tensor([(u - 15.3) * z / 80.0, (v - 17.9) * z / 80.0, z], dtype=D)
    offsets = torch.tensor([[-0.3, -0.3, 0.0], [0.3, -0.3, 0.0], [0.0, 0.3, 0.0]], dtype=D) * z / 80.0
    verts = (centre + offsets)[None]
    uv, _ = project(centre.view(1, 1, 3), K)
    assert uv[0, 0].tolist() == pytest.approx([u, v])
    out = render(verts, torch.tensor([[0, 2, 1]]), K, (32, 32), backend="torch")
    assert torch.nonzero(out.face_ids[0] >= 0).tolist() == [[21, 9]]


def test_plane_inside_depth_perspective_correct_on_a_slanted_plane():
    # A plane z = 0.5 + 0.5 x: depth along each pixel's ray is exact, not screen-linear.
    verts, faces = plane(-0.2, -0.2, 0.2, 0.2, 0.0, n=1)
    verts[..., 2] = 0.5 + 0.5 * verts[..., 0]
    K = intrinsics(f=40.0)
    out = render(verts, faces, K, (32, 32), backend="torch")
    rows, cols = torch.nonzero(out.face_ids[0] >= 0, as_tuple=True)
    xr = (cols.to(D) + 0.5 - 16.0) / 40.0  # ray x/z at each pixel centre
    expected = 0.5 / (1 - 0.5 * xr)  # z = 0.5 + 0.5 * xr * z
    assert torch.allclose(out.depth[0, rows, cols], expected, atol=1e-10)


def test_triangle_area_matches_projection():
    verts = torch.tensor([[[-0.07, -0.05, 1.0], [0.09, -0.02, 1.0], [0.01, 0.1, 1.0]]], dtype=D)
    faces = torch.tensor([[0, 1, 2]])
    K = intrinsics()
    uv, _ = project(verts, K)
    a, b, c = uv[0]
    area = 0.5 * abs(((b - a)[0] * (c - a)[1] - (b - a)[1] * (c - a)[0]).item())
    out = render(verts, faces, K, (32, 32), backend="torch")
    assert out.silhouette.sum().item() == pytest.approx(area, rel=0.015)
    assert ((out.silhouette > 0) & (out.silhouette < 1)).any()  # slanted edges get partial coverage


def test_sphere_projected_disc_area():
    r, d, f = 0.1, 0.5, 60.0
    verts, faces = sphere(r, (0.0, 0.0, d))
    out = render(verts, faces, intrinsics(f=f, cx=32.0, cy=32.0), (64, 64), backend="torch")
    disc = math.pi * f**2 * r**2 / (d**2 - r**2)  # the sphere's silhouette: a circle of radius f r / sqrt(d^2 - r^2)
    assert out.silhouette.sum().item() == pytest.approx(disc, rel=0.02)
    assert out.depth[0, 32, 32].item() == pytest.approx(d - r, abs=5e-3)
    # Rim faces are thinner than a pixel: nvdiffrast's rule (walk_steps=0) antialiases almost
    # none of the rim; walking across them finds the silhouette edges.
    rim = render(verts, faces, intrinsics(f=f, cx=32.0, cy=32.0), (64, 64), backend="torch").silhouette
    nvd = Renderer("torch", walk_steps=0).render(verts, faces, intrinsics(f=f, cx=32.0, cy=32.0), (64, 64)).silhouette
    partial = lambda s: ((s > 0) & (s < 1)).sum().item()  # noqa: E731
    assert partial(rim) > 40 > 10 > partial(nvd)


def test_no_seams_between_interior_triangles():
    verts, faces = plane(-0.083, -0.071, 0.097, 0.089, 1.0, n=6)  # 72 triangles, edges off the pixel grid
    out = render(verts, faces, intrinsics(), (32, 32), backend="torch")
    uv, _ = project(verts, intrinsics())
    (u0, v0), (u1, v1) = uv[0].amin(0).tolist(), uv[0].amax(0).tolist()
    sil = out.silhouette[0]
    interior = sil[math.ceil(v0) + 1 : math.floor(v1) - 1, math.ceil(u0) + 1 : math.floor(u1) - 1]
    assert interior.numel() > 100
    assert torch.equal(interior, torch.ones_like(interior))
    assert out.silhouette.sum().item() == pytest.approx((u1 - u0) * (v1 - v0), rel=0.01)


def test_occlusion_nearer_triangle_wins():
    near = [[-0.1, -0.1, 0.8], [0.1, -0.1, 0.8], [0.0, 0.1, 0.8]]
    far = [[-0.12, -0.12, 1.2], [0.12, -0.12, 1.2], [0.0, 0.12, 1.2]]
    for order in ((near, far), (far, near)):
        verts = torch.tensor([order[0] + order[1]], dtype=D)
        faces = torch.tensor([[0, 2, 1], [3, 5, 4]])
        out = render(verts, faces, intrinsics(), (32, 32), backend="torch")
        near_id = 0 if order[0] is near else 1
        assert out.face_ids[0, 16, 16].item() == near_id
        assert out.depth[0, 16, 16].item() == pytest.approx(0.8)
        assert (out.depth[0][out.face_ids[0] >= 0] <= 1.2 + 1e-9).all()


def test_matches_brute_force_zbuffer_and_chunking():
    verts, faces = hand_sized_mesh()
    rot = torch.tensor([[1, 0, 0], [0, 0.8, -0.6], [0, 0.6, 0.8]], dtype=D)  # tilt: self-occlusion
    verts = (verts - verts.mean(1, keepdim=True)) @ rot.T + torch.tensor([0.0, 0.0, 0.5], dtype=D)
    verts = torch.cat([verts, verts + torch.tensor([0.02, -0.01, 0.1], dtype=D)])  # batch of two
    K = intrinsics(f=60.0, cx=20.0, cy=24.0)
    ref = brute_force_face_ids(verts, faces, K.expand(2, 3, 3), 48, 40)
    frags = TorchRasterizer().rasterize(verts, faces, K.expand(2, 3, 3), (48, 40))
    assert torch.equal(frags.face_ids, ref)
    chunked = TorchRasterizer(max_candidates=1).rasterize(verts, faces, K.expand(2, 3, 3), (48, 40))
    assert torch.equal(chunked.face_ids, ref)  # budget floors at H*W candidates: several chunks


def test_hand_sized_mesh_no_nan_float32():
    verts, faces = hand_sized_mesh(dtype=torch.float32)
    verts = verts.repeat(2, 1, 1).requires_grad_(True)
    colors = torch.full((2, 778, 3), 0.6, requires_grad=True)
    light = default_light(2).requires_grad_(True)
    K = intrinsics(f=150.0, cx=32.0, cy=32.0, dtype=torch.float32)
    out = render(verts, faces, K, (64, 64), colors=colors, light=light, backend="torch")
    assert faces.shape == (1538, 3)
    for t in (out.silhouette, out.depth, out.rgb, out.bary):
        assert torch.isfinite(t).all()
    assert 0 <= out.silhouette.min() and out.silhouette.max() <= 1
    (out.silhouette.sum() + out.depth.sum() + out.rgb.sum()).backward()
    for g in (verts.grad, colors.grad, light.grad):
        assert torch.isfinite(g).all() and g.abs().sum() > 0


def test_shading_closed_form():
    verts, faces = plane(-0.1, -0.1, 0.1, 0.1, 1.0)
    light = torch.zeros(1, LIGHT_DIM, dtype=D)
    light[:, LIGHT_AMBIENT_INTENSITY] = 0.3
    light[:, LIGHT_AMBIENT_COLOR] = torch.tensor([1.0, 0.5, 0.2], dtype=D)
    light[:, LIGHT_DIRECTIONAL_INTENSITY] = 0.6
    light[:, LIGHT_DIRECTIONAL_COLOR] = torch.tensor([0.9, 1.0, 0.8], dtype=D)
    light[:, LIGHT_DIRECTION] = torch.tensor([0.0, 0.6, 0.8], dtype=D)  # cos with the plane's normal (0,0,1): 0.8
    colors = torch.tensor([0.5, 0.4, 0.9], dtype=D).expand(1, 4, 3)
    out = render(verts, faces, intrinsics(), (32, 32), colors=colors, light=light, backend="torch")
    expected = colors[0, 0] * (0.3 * torch.tensor([1.0, 0.5, 0.2], dtype=D) + 0.6 * 0.8 * torch.tensor([0.9, 1.0, 0.8], dtype=D))
    assert torch.allclose(out.rgb[0, 16, 16], expected)
    assert torch.allclose(out.rgb[0, 0, 0], torch.zeros(3, dtype=D))
    # Seen from behind (winding flipped) the directional term vanishes: max(0, n.d) = 0.
    back = render(verts, faces.flip(1), intrinsics(), (32, 32), colors=colors, light=light, backend="torch")
    assert torch.allclose(back.rgb[0, 16, 16], colors[0, 0] * 0.3 * torch.tensor([1.0, 0.5, 0.2], dtype=D))


def test_default_light_layout():
    light = default_light(3)
    assert light.shape == (3, LIGHT_DIM) and light.dtype == torch.float32
    assert torch.equal(light[0, LIGHT_DIRECTION], torch.tensor([0.0, 0.0, 1.0]))
    assert light[0, LIGHT_AMBIENT_INTENSITY].item() == 0.5 and light[0, LIGHT_DIRECTIONAL_INTENSITY].item() == 0.5


def test_face_colors_per_face_albedo():
    verts, faces = plane(-0.1, -0.1, 0.1, 0.1, 1.0)
    fc = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]], dtype=D)
    light = default_light(1, dtype=D)
    out = render(verts, faces, intrinsics(), (32, 32), face_colors=fc, light=light, backend="torch")
    fid = out.face_ids[0, 12, 16].item()
    assert torch.allclose(out.rgb[0, 12, 16], fc[0, fid] * 1.0)  # 0.5 ambient + 0.5 * cos 1


def test_edge_neighbours_of_a_quad():
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    opp, nbr = edge_neighbours(faces)
    # Face 0's edge opposite vertex 1 is (2, 0), shared with face 1 whose far vertex is 3.
    assert opp.tolist() == [[-1, 3, -1], [-1, -1, 1]]
    assert nbr.tolist() == [[-1, 1, -1], [-1, -1, 0]]
    assert torch.equal(opposite_vertices(faces), opp)


# --- gradients against finite differences ------------------------------------------------


def _fd(fn, x, eps, entries=None):
    """Central differences of fn at x for the flat indices `entries` (all by default); others 0."""
    g = torch.zeros_like(x)
    flat = x.view(-1)
    for i in range(flat.numel()) if entries is None else entries:
        orig = flat[i].item()
        flat[i] = orig + eps
        hi = fn(x)
        flat[i] = orig - eps
        lo = fn(x)
        flat[i] = orig
        g.view(-1)[i] = (hi - lo) / (2 * eps)
    return g


def test_depth_gradient_wrt_vertex_z():
    verts = torch.tensor([[[-0.12, -0.1, 0.9], [0.11, -0.07, 1.05], [0.0, 0.12, 1.2]]], dtype=D)
    faces = torch.tensor([[0, 2, 1]])
    K = intrinsics()
    base = render(verts, faces, K, (32, 32), backend="torch")
    # Interior pixels only: moving z moves the silhouette too, and depth is not antialiased.
    weight = torch.zeros(1, 32, 32, dtype=D)
    core = (base.face_ids >= 0) & (torch.nn.functional.max_pool2d((base.face_ids < 0).to(D), 5, 1, 2) == 0)
    weight[core] = torch.rand(int(core.sum()), dtype=D, generator=torch.Generator().manual_seed(0))

    def loss(v):
        return (render(v, faces, K, (32, 32), backend="torch").depth * weight).sum()

    z = verts.clone().requires_grad_(True)
    loss(z).backward()
    fd = _fd(lambda v: loss(v).item(), verts.clone(), 1e-6)
    assert torch.allclose(z.grad[..., 2], fd[..., 2], rtol=1e-5, atol=1e-8)
    assert torch.allclose(z.grad, fd, rtol=1e-4, atol=1e-6)  # x, y through the barycentrics too


def test_rgb_gradient_wrt_colors_and_light():
    verts, faces = sphere(0.1, (0.01, -0.02, 0.5), subdivisions=1)
    K = intrinsics(f=50.0)
    gen = torch.Generator().manual_seed(1)
    colors = torch.rand(1, verts.shape[1], 3, dtype=D, generator=gen)
    light = default_light(1, dtype=D) + 0.1 * torch.rand(1, LIGHT_DIM, dtype=D, generator=gen)
    light[:, LIGHT_DIRECTION] = torch.tensor([0.3, -0.2, 0.9], dtype=D)
    weight = torch.rand(1, 32, 32, 3, dtype=D, generator=gen)

    def loss(c, li):
        return (render(verts, faces, K, (32, 32), colors=c, light=li, backend="torch").rgb * weight).sum()

    c, li = colors.clone().requires_grad_(True), light.clone().requires_grad_(True)
    loss(c, li).backward()
    some = torch.randperm(colors.numel(), generator=gen)[:24].tolist()
    fd = _fd(lambda x: loss(x, light).item(), colors.clone(), 1e-6, some)
    assert torch.allclose(c.grad.view(-1)[some], fd.view(-1)[some], rtol=1e-6, atol=1e-6)
    assert torch.allclose(li.grad, _fd(lambda x: loss(colors, x).item(), light.clone(), 1e-6), rtol=1e-5, atol=1e-6)


def test_silhouette_gradient_at_the_boundary():
    # Moving a vertex outward grows the covered area: d(sum sil)/dx > 0, matching the analytic
    # area derivative and a finite difference over a pixel-scale step.
    verts = torch.tensor([[[-0.07, -0.05, 1.0], [0.09, -0.02, 1.0], [0.01, 0.1, 1.0]]], dtype=D)
    faces = torch.tensor([[0, 2, 1]])
    K = intrinsics()

    def area_sum(v):
        return render(v, faces, K, (32, 32), backend="torch").silhouette.sum()

    v = verts.clone().requires_grad_(True)
    area_sum(v).backward()
    g = v.grad[0, 1, :2]  # vertex 1 (right-most), d area / d (x, y), pixel^2 per metre

    def projected_area(v):  # exact area of the projected triangle (shoelace)
        uv, _ = project(v, K)
        a, b, c = uv[0]
        return 0.5 * ((b - a)[0] * (c - a)[1] - (b - a)[1] * (c - a)[0]).abs()

    w = verts.clone().requires_grad_(True)
    projected_area(w).backward()
    analytic = w.grad[0, 1, :2]
    step = 0.002  # 0.2 px
    moved = verts.clone()
    moved[0, 1, 0] += step
    fd_x = (area_sum(moved) - area_sum(verts)).item() / step
    assert g[0] > 0 and fd_x > 0
    assert torch.allclose(g, analytic, rtol=0.15)
    assert g[0].item() == pytest.approx(fd_x, rel=0.15)


def test_silhouette_gradient_of_a_growing_sphere():
    # Scaling a closed mesh about its centre: silhouette edges are found through the
    # neighbouring faces' orientation (no boundary edges), and d(area)/d(radius) must match
    # the disc area pi f^2 r^2 / (d^2 - r^2) and a finite difference of the rendered sum.
    r, d, f = 0.1, 0.5, 60.0
    verts, faces = sphere(r, (0.013, -0.021, d))  # slightly off-axis: the disc area changes by < 0.3%
    centre = torch.tensor([0.013, -0.021, d], dtype=D)
    K = intrinsics(f=f, cx=32.0, cy=32.0)

    def area_sum(scale):
        return render(centre + (verts - centre) * scale, faces, K, (64, 64), backend="torch").silhouette.sum()

    scale = torch.ones((), dtype=D, requires_grad=True)
    area_sum(scale).backward()
    disc_grad = 2 * math.pi * f**2 * r * d**2 / (d**2 - r**2) ** 2 * r  # dA/dr * dr/dscale
    step = 0.01  # about 0.12 px at the rim
    fd = (area_sum(torch.tensor(1 + step, dtype=D)) - area_sum(torch.tensor(1 - step, dtype=D))).item() / (2 * step)
    assert scale.grad.item() == pytest.approx(disc_grad, rel=0.05)
    assert scale.grad.item() == pytest.approx(fd, rel=0.05)


def test_silhouette_gradient_sign_per_edge_of_a_square():
    # Each side of a square moved outward grows the silhouette; moving it inward shrinks it.
    verts, faces = plane(-0.0913, -0.0837, 0.1042, 0.0961, 1.0)
    verts.requires_grad_(True)
    render(verts, faces, intrinsics(), (32, 32), backend="torch").silhouette.sum().backward()
    g = verts.grad[0]  # corners: (x0,y0), (x1,y0), (x0,y1), (x1,y1)
    outward = torch.tensor([[-1, -1], [1, -1], [-1, 1], [1, 1]], dtype=D)
    assert (g[:, :2] * outward > 0).all()
    # Total for moving the right side by dx: its height in pixels times f / z. A corner row may
    # miss out, as in nvdiffrast: each pixel pair looks at one triangle, and near a corner the
    # segment can leave it through the interior diagonal.
    assert (g[1, 0] + g[3, 0]).item() == pytest.approx((0.0961 + 0.0837) * 100 * 100, rel=0.08)


# --- interface -----------------------------------------------------------------------------


def test_renderer_backend_choice_and_primitives():
    r = Renderer("auto", device="cpu")
    assert r.backend == "torch"
    verts, faces = plane(-0.1, -0.1, 0.1, 0.1, 1.0)
    frags = r.rasterize(verts, faces, intrinsics()[0], (32, 32))  # K (3, 3) broadcasts
    assert frags.face_ids.shape == (1, 32, 32) and frags.bary.shape == (1, 32, 32, 3)
    assert torch.allclose(frags.bary.sum(-1)[frags.mask], torch.ones((), dtype=D))
    attr = torch.arange(4, dtype=D).view(1, 4, 1)
    img = r.interpolate(attr, frags)
    assert img.shape == (1, 32, 32, 1) and (img[~frags.mask] == 0).all()
    assert img.max() <= 3 and img[frags.mask].min() >= 0
    aa = r.antialias(frags.mask.to(D)[..., None], frags)
    assert aa.shape == (1, 32, 32, 1)
    with pytest.raises(ValueError, match="CUDA"):
        Renderer("nvdiffrast", device="cpu")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"verts": torch.zeros(4, 3)}, "verts"),
        ({"faces": torch.zeros(2, 3)}, "int"),
        ({"faces": torch.tensor([[0, 1, 9]])}, "faces index"),
        ({"K": torch.eye(3).expand(2, 3, 3)}, "batch"),
        ({"image_size": (0, 8)}, "positive"),
        ({"colors": torch.zeros(1, 2, 3)}, "colors"),
        ({"light": torch.zeros(1, 10)}, "light"),
        ({"backend": "opengl"}, "backend"),
    ],
)
def test_bad_inputs_raise(kwargs, match):
    args = {
        "verts": torch.tensor([[[0.0, 0.0, 1.0], [0.1, 0.0, 1.0], [0.0, 0.1, 1.0]]]),
        "faces": torch.tensor([[0, 1, 2]]),
        "K": torch.eye(3),
        "image_size": (8, 8),
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        render(**args)


# --- the two backends agree -------------------------------------------------------------


@pytest.mark.gpu
def test_nvdiffrast_matches_torch_backend():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    pytest.importorskip("nvdiffrast.torch")
    verts, faces = hand_sized_mesh(dtype=torch.float32)
    rot = torch.tensor([[1, 0, 0], [0, 0.8, -0.6], [0, 0.6, 0.8]])
    verts = ((verts - verts.mean(1, keepdim=True)) @ rot.T + torch.tensor([0.0, 0.0, 0.5])).cuda()
    faces = faces.cuda()
    K = intrinsics(f=300.0, cx=64.0, cy=60.0, dtype=torch.float32).cuda()
    colors = torch.rand(1, 778, 3, generator=torch.Generator().manual_seed(0)).cuda()
    light = default_light(1, device="cuda")
    renderers = {
        "nvdiffrast": Renderer("nvdiffrast", device="cuda"),
        "torch-nvdiffrast-rule": Renderer("torch", device="cuda", walk_steps=0),  # nvdiffrast's AA exactly
        "torch": Renderer("torch", device="cuda"),
    }
    outs, grads = {}, {}
    for name, renderer in renderers.items():
        assert renderer.backend == name.split("-")[0]
        v = verts.clone().requires_grad_(True)
        out = renderer.render(v, faces, K, (128, 120), colors=colors, light=light)
        (out.silhouette.sum() + out.rgb.sum()).backward()
        outs[name], grads[name] = out, v.grad

    n = outs["nvdiffrast"]
    mn = n.face_ids >= 0
    for name, sil_tol, grad_cos in (("torch-nvdiffrast-rule", 0.003, 0.9), ("torch", 0.01, 0.7)):
        t = outs[name]
        mt = t.face_ids >= 0
        assert (mt & mn).sum() / (mt | mn).sum() > 0.99  # silhouette IoU of the rasterised masks
        both = mt & mn
        assert (t.face_ids[both] == n.face_ids[both]).float().mean() > 0.97
        assert (t.depth[both] - n.depth[both]).abs().mean() < 1e-4  # metres
        assert (t.bary[both] - n.bary[both]).abs().mean() < 1e-3
        assert (t.silhouette - n.silhouette).abs().mean() < sil_tol
        assert (t.rgb - n.rgb).abs().mean() < sil_tol
        cos = torch.nn.functional.cosine_similarity(grads[name].flatten(), grads["nvdiffrast"].flatten(), dim=0)
        assert cos > grad_cos
