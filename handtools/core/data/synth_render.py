"""Render sampled scenes into labelled frames (the work behind ``handtools synth``).

What a frame shows, back to front (see ``bench/bench_detect_synth.py`` for why: these
are what make MediaPipe find the synthetic hands as it finds real ones):

* the background (:func:`handtools.core.data.synth.background`);
* a forearm, elbow and upper arm continuing the hand's wrist opening
  (:func:`handtools.core.data.synth.forearm_mesh`), bare or in a sleeve, rendered at half
  resolution. It is scene context, not the hand: it is drawn *under* the hand, so
  ``masks``, ``depth``, ``keypoints2d``, ``bbox``, ``joints3d`` and ``verts3d`` are
  exactly those of the hand alone (the arm never hides any of it) and the arm is in
  no ground-truth dataset;
* the hand, closed at the wrist (a fan on the opening's own vertices, inside the
  hand's silhouette) and shaded smoothly per vertex (:func:`shade_vertices`: ambient,
  wrapped diffuse, a highlight, stronger on nails)
  instead of the renderer's flat per-face light; the renderer then only interpolates
  and antialiases. ``synth/light`` is the light in the renderer's layout.

Speed (see ``bench/bench_synth.py``): each sample is rendered on its own, in a window
just around its hand in every view, with torch single-threaded; samples run in
parallel on ``workers`` Python threads instead. The work per sample (a few hundred
small tensor ops, numpy noise, opencv drawing) is too fine-grained for torch's
intra-op threads, whose barriers stall on a busy machine; whole samples in parallel
are not. The output does not depend on the number of workers. A sample's random
draws and render window depend on (seed, index, settings) alone; the hand model
runs on the whole batch, so a different ``--batch-size`` can move vertices by a
float rounding (depth by ~1e-7 m, rarely a pixel by one grey level).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

from handtools.core.data.synth import (
    DomainPreset,
    SceneSample,
    background,
    boundary_loop,
    centre_scene,
    forearm_faces,
    forearm_mesh,
    noisy_keypoints,
    random_crop_resize,
    sample_scene,
    skin_regions,
)


def _normalise(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _vertex_normals(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """(B, V, 3) unit outward normals of meshes (B, V, 3) with faces (F, 3) (area-weighted)."""
    tri = verts[:, faces]  # (B, F, 3, 3)
    fn = torch.cross(tri[:, :, 1] - tri[:, :, 0], tri[:, :, 2] - tri[:, :, 0], dim=-1)  # (B, F, 3)
    n = torch.zeros_like(verts)
    for k in range(3):
        n.index_add_(1, faces[:, k], fn)
    return torch.nn.functional.normalize(n, dim=-1, eps=1e-12)


def shade_vertices(albedo: torch.Tensor, points: torch.Tensor, normals: torch.Tensor, light: torch.Tensor,
                   wrap: float, specular: torch.Tensor, shininess: float = 24.0) -> torch.Tensor:
    """Per-vertex lit colour of skin: ambient + wrapped diffuse + Blinn-Phong highlight.

    albedo, points (camera frame, metres), normals (unit, outward): (B, V, 3); light (B, 11)
    in the layout of :mod:`handtools.core.render.lighting` (its direction is the one the
    light travels); wrap: the diffuse term ``max(0, (n.l + wrap) / (1 + wrap))`` reaches
    past the terminator, the soft look of light scattered under skin; specular (B, V)
    highlight strength. Returns (B, V, 3), not clamped. Interpolated across faces by the
    renderer with a neutral light, this is smooth (Gouraud) shading where the renderer's
    own light is flat per face.
    """
    from handtools.core.render import lighting as L

    to_light = -torch.nn.functional.normalize(light[:, None, L.LIGHT_DIRECTION], dim=-1)  # (B, 1, 3)
    cos = (normals * to_light).sum(-1, keepdim=True)  # (B, V, 1)
    diffuse = ((cos + wrap) / (1 + wrap)).clamp(min=0)
    to_eye = -torch.nn.functional.normalize(points, dim=-1)
    half = torch.nn.functional.normalize(to_light + to_eye, dim=-1)
    spec = (normals * half).sum(-1).clamp(min=0) ** shininess * (cos[..., 0] > 0)  # (B, V)
    ambient = (light[:, L.LIGHT_AMBIENT_INTENSITY] * light[:, L.LIGHT_AMBIENT_COLOR])[:, None]  # (B, 1, 3)
    direct = (light[:, L.LIGHT_DIRECTIONAL_INTENSITY] * light[:, L.LIGHT_DIRECTIONAL_COLOR])[:, None]
    return albedo * (ambient + direct * diffuse) + (specular * spec)[..., None] * direct


def _neutral_light(n: int, device, dtype) -> torch.Tensor:
    """(n, 11) light that leaves per-vertex colours as they are: ambient 1, no directional light."""
    from handtools.core.render import lighting as L

    light = torch.zeros(n, L.LIGHT_DIM, device=device, dtype=dtype)
    light[:, L.LIGHT_AMBIENT_INTENSITY] = 1.0
    light[:, L.LIGHT_AMBIENT_COLOR] = 1.0
    light[:, L.LIGHT_DIRECTION] = torch.tensor([0.0, 0.0, 1.0], dtype=dtype)
    return light


class SceneRenderer:
    """Samples and renders batches of synthetic frames.

    Args:
        model: a :class:`handtools.core.hand.model.HandModel`.
        renderer: a :class:`handtools.core.render.Renderer`.
        preset: the domain preset.
        image_size: (H, W) pixels.
        ks: (V, 3, 3) intrinsics; ts: (V, 4, 4) world(view 0)-to-camera transforms.
        baseline: stereo baseline in metres (written for 2-view rigs), else None.
        kp_noise: keypoint noise sigma in px (0: exact keypoints, confidence 1).
        seed: base seed; sample ``i`` uses ``default_rng([seed, i])``.
        backgrounds: optional entries (e.g. image files) used instead of procedural backgrounds,
            decoded by ``read_background(entry) -> (H, W, 3) uint8`` (the caller's image reader:
            this module does no file I/O).
        fixed_shape: every sample gets shape zero (one subject: the model file's own
            template, e.g. a personal model from ``personalize`` or a test subject)
            instead of a random shape per sample.
        centre: (3,) point in the view-0 frame each hand is centred on (a multi-view rig's
            target, so every view sees it), or None (placement by the domain preset).
        workers: samples rendered at once on threads (default on CPU: ``torch.get_num_threads()``
            at construction, i.e. the cores torch would use; on CUDA 1, as a rasteriser
            context is not shared across threads). 1 renders in the caller's thread.
    """

    def __init__(
        self,
        model,
        renderer,
        preset: DomainPreset,
        image_size: tuple[int, int],
        ks: np.ndarray,
        ts: np.ndarray,
        baseline: Optional[float],
        kp_noise: float = 0.0,
        seed: int = 0,
        backgrounds: Optional[Sequence] = None,
        workers: Optional[int] = None,
        read_background: Optional[Callable[[Any], np.ndarray]] = None,
        fixed_shape: bool = False,
        centre: Optional[np.ndarray] = None,
    ):
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.model, self.renderer, self.preset = model, renderer, preset
        self.hw = image_size
        self.ks, self.ts = ks.astype(np.float32), ts.astype(np.float32)
        self.views = len(ks)
        self.baseline = baseline
        self.kp_noise, self.seed = kp_noise, seed
        self.backgrounds = list(backgrounds) if backgrounds else None
        if self.backgrounds is not None and read_background is None:
            raise ValueError("backgrounds need read_background: a function from an entry to an RGB uint8 image")
        self.read_background = read_background
        self.fixed_shape = fixed_shape
        self.centre = None if centre is None else np.asarray(centre, np.float64).reshape(3)
        dev, dt = model.faces.device, model.shapedirs.dtype
        self.device, self.dtype = dev, dt
        if workers is None:
            workers = 1 if dev.type == "cuda" else max(1, torch.get_num_threads())
        self.workers = workers
        with torch.no_grad():
            rest = model(torch.zeros(1, 48, device=dev, dtype=dt), torch.zeros(1, 10, device=dev, dtype=dt))
        j = rest.joints[0].double().cpu().numpy()  # (21, 3) FreiHAND order
        self.rest_verts = rest.verts[0].double().cpu().numpy()
        self.rest_root = j[0]
        self.finger_dir = _normalise(j[9] - j[0])  # wrist -> middle knuckle
        # For a right hand seen palm-on with fingers up, the thumb side is image +x:
        # palm normal (towards the viewer) = thumb side x finger direction.
        side = _normalise(j[5] - j[17])  # little -> index knuckle, towards the thumb
        normal = _normalise(np.cross(side, self.finger_dir))
        self.palm_normal = normal
        faces = model.faces.cpu().numpy()
        self.regions = skin_regions(self.rest_verts, j, faces, normal)
        self.nail = torch.as_tensor(self.regions["nail"], device=dev, dtype=dt)  # (778,)
        self.ts_t = torch.as_tensor(self.ts, device=dev, dtype=dt)
        self.wrist_loop = boundary_loop(faces)  # (L,) ordered ids of the wrist opening; none: no forearm
        self.arm_faces = torch.as_tensor(forearm_faces(len(self.wrist_loop)), device=dev)
        # The arm has its own renderer: a backend keeps one mesh topology cached (not shared
        # between threads that would alternate two meshes on it).
        self.arm_renderer = type(renderer)(renderer.requested, near=renderer.near, far=renderer.far,
                                           walk_steps=renderer.walk_steps)
        # The hand is drawn watertight: the wrist opening closed by a fan on its own vertices
        # (no new vertex), wound against the loop so it faces out of the hand. A ray through
        # the cap also meets the hand's surface, so the silhouette is the open mesh's.
        loop = self.wrist_loop
        cap = np.stack([np.full(max(len(loop) - 2, 0), loop[0] if len(loop) else 0), loop[2:], loop[1:-1]], 1)
        self.hand_faces = torch.cat([model.faces, torch.as_tensor(cap, device=dev, dtype=model.faces.dtype)])

    def _background(self, rng: np.random.Generator, width: int | None = None) -> np.ndarray:
        h, w = self.hw[0], width or self.hw[1]
        if self.backgrounds is None:
            return background(h, w, self.preset, rng)
        img = self.read_background(self.backgrounds[rng.integers(len(self.backgrounds))])
        return random_crop_resize(img, (h, w), rng)

    def _backgrounds(self, rng: np.random.Generator) -> list[np.ndarray]:
        """One background per view; a rectified pair sees one scene.

        For stereo the background is a fronto-parallel plane 1.5-3 m away: the right
        view shows the left one shifted by that plane's disparity ``f b / z``
        (rounded to whole pixels), so the pair is consistent away from the hand too.
        Other rigs get an independent background per view.
        """
        if self.views != 2 or self.baseline is None:
            return [self._background(rng) for _ in range(self.views)]
        w = self.hw[1]
        d = int(round(float(self.ks[0, 0, 0]) * self.baseline / rng.uniform(1.5, 3.0)))
        wide = self._background(rng, width=w + d)
        return [wide[:, :w], wide[:, d:d + w]]  # x_right = x_left - d

    def _windows(self, uv: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, int]:
        """Window around one sample's hand in all its views.

        uv (V, 778, 2) float32 projected vertices, pixels -> origins x0, y0 (V,) int and
        one size (wh, ww) for all views: the hull of the vertices plus 2 px, clipped to the
        image. It depends on this sample alone, so a frame does not depend on its batch.
        """
        h, w = self.hw
        lo = np.floor(uv.min(1)).astype(int) - 2  # (V, 2) x, y
        hi = np.ceil(uv.max(1)).astype(int) + 2
        ww = int(min(w, max(8, (hi[:, 0] - lo[:, 0]).max())))
        wh = int(min(h, max(8, (hi[:, 1] - lo[:, 1]).max())))
        return np.clip(lo[:, 0], 0, w - ww), np.clip(lo[:, 1], 0, h - wh), wh, ww

    def _render_window(self, vc, faces, K, colours, light, uv, scale: int = 1, renderer=None):
        """Render only the window around the hand (one size for the sample's views, shifted K per view).

        vc (B, 778, 3) camera-frame vertices of one sample's views, K (B, 3, 3), uv (B, 778, 2)
        their projections. Pixels outside the window hold no face, so the full-frame result
        equals the pasted window; this keeps synth fast at 640x480 where the hand covers a
        fraction. One sample per call: a batch window would be the largest hand's.
        ``scale`` > 1 renders at 1/scale of the resolution (the window's size is then
        ``ceil(wh / scale), ceil(ww / scale)``; the caller resizes); ``renderer``: another
        renderer than ``self.renderer``.
        """
        x0, y0, wh, ww = self._windows(uv)
        Kw = K.clone()
        Kw[:, 0, 2] -= torch.as_tensor(x0, dtype=K.dtype, device=K.device)
        Kw[:, 1, 2] -= torch.as_tensor(y0, dtype=K.dtype, device=K.device)
        Kw[:, :2] /= scale
        size = (-(-wh // scale), -(-ww // scale))
        r = (renderer or self.renderer).render(vc, faces, Kw, size, colors=colours, light=light)
        return r, (y0, x0, wh, ww)

    def render_batch(self, indices) -> dict[str, np.ndarray]:
        """Sample and render ``indices``; returns schema datasets with N = len(indices).

        indices: (N,) int sample indices (N >= 1). Sample ``i`` draws from
        ``default_rng([seed, i])`` only (see the module docstring on batches).
        """
        indices = np.asarray(indices)
        if indices.ndim != 1 or len(indices) == 0 or not np.issubdtype(indices.dtype, np.integer):
            raise ValueError(f"indices must be a non-empty 1-D integer array, got {indices.dtype} {indices.shape}")
        h, w = self.hw
        rngs = [np.random.default_rng([self.seed, int(i)]) for i in indices]
        scenes: list[SceneSample] = [
            sample_scene(
                self.preset, rng, self.rest_verts, self.rest_root, self.hw, float(self.ks[0, 0, 0]),
                self.palm_normal, self.finger_dir, self.regions,
            )
            for rng in rngs
        ]
        for s in scenes:  # one subject and/or a rig's target: after all draws, so nothing else changes
            if self.fixed_shape:
                s.shape = np.zeros_like(s.shape)
            if self.centre is not None:
                centre_scene(s, self.rest_root, self.finger_dir, self.centre)
        n, v = len(indices), self.views
        dev, dt = self.device, self.dtype
        t = lambda a: torch.as_tensor(np.stack(a), device=dev, dtype=dt)  # noqa: E731
        out = self.model(t([s.pose for s in scenes]), t([s.shape for s in scenes]), trans=t([s.trans for s in scenes]))
        verts0, joints0 = out.verts, out.joints  # (N, 778, 3), (N, 21, 3) view-0 frame
        colours, light = t([s.colours for s in scenes]), t([s.light for s in scenes])  # (N, 778, 3), (N, 11)

        vcs, vuvs, kuvs = [], [], []
        for view in range(v):
            T = torch.as_tensor(self.ts[view], device=dev, dtype=dt)
            K = torch.as_tensor(self.ks[view], device=dev, dtype=dt)
            vc = verts0 @ T[:3, :3].T + T[:3, 3]  # (N, 778, 3) camera frame of this view
            jc = joints0 @ T[:3, :3].T + T[:3, 3]  # (N, 21, 3)
            vcs.append(vc)
            vuvs.append(((vc[..., :2] / vc[..., 2:3]) @ K[:2, :2].T + K[:2, 2]).cpu().numpy())  # (N, 778, 2)
            kuvs.append(((jc[..., :2] / jc[..., 2:3]) @ K[:2, :2].T + K[:2, 2]).cpu().numpy())  # (N, 21, 2)
        batch = {
            "images": np.empty((n, v, h, w, 3), np.uint8),
            "K": np.repeat(self.ks[None], n, 0),
            "T_view": np.repeat(self.ts[None], n, 0),
            "keypoints2d": np.empty((n, v, 21, 3), np.float32),
            "bbox": np.empty((n, v, 4), np.float32),
            "masks": np.zeros((n, v, h, w), np.uint8),
            "depth": np.zeros((n, v, h, w), np.float32),
            "joints3d": joints0.cpu().numpy().astype(np.float32),
            "verts3d": verts0.cpu().numpy().astype(np.float32),
            "mano/pose": np.stack([s.pose for s in scenes]),
            "mano/shape": np.stack([s.shape for s in scenes]),
            "synth/trans": np.stack([s.trans for s in scenes]),
            "synth/light": np.stack([s.light for s in scenes]),
            "source": np.array([f"synth/{self.preset.name}/seed{self.seed}/{int(i)}" for i in indices], dtype=object),
        }
        if self.baseline is not None:
            batch["baseline"] = np.full(n, self.baseline, np.float32)
        vc_all = torch.stack(vcs, 1)  # (N, V, 778, 3)
        vuv, kuv = np.stack(vuvs, 1), np.stack(kuvs, 1)  # (N, V, 778, 2), (N, V, 21, 2)
        ks = torch.as_tensor(self.ks, device=dev, dtype=dt)  # (V, 3, 3)
        v0 = verts0.detach().double().cpu().numpy()  # (N, 778, 3)
        arms = [self._arm(v0[i], scenes[i]) for i in range(n)]

        def one(i: int) -> None:
            self._render_sample(rngs[i], vc_all[i], ks, colours[i], light[i], vuv[i], kuv[i], batch, i,
                                arms[i], scenes[i].specular)

        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # see the module docstring; restored below
        try:
            one(0)  # in this thread first: backends and caches initialise once, unraced
            if self.workers > 1 and n > 1:
                with ThreadPoolExecutor(min(self.workers, n - 1)) as pool:
                    list(pool.map(one, range(1, n)))  # list(): re-raises a worker's error here
            else:
                for i in range(1, n):
                    one(i)
        finally:
            torch.set_num_threads(threads)
        return batch

    def _arm(self, verts: np.ndarray, scene: SceneSample):
        """The sample's forearm in the frame of view 0: vertices (M, 3), normals (M, 3), albedo (M, 3); or None."""
        if not self.preset.forearm or scene.arm is None or len(self.wrist_loop) < 3:
            return None
        loop = self.wrist_loop
        av, an, sleeve = forearm_mesh(verts[loop], verts.mean(0), scene.arm)
        ring = scene.colours[loop]  # (L, 3): each ring takes the colours of the wrist's rim
        skin = np.concatenate([np.tile(ring, (len(av) // len(loop), 1)), ring.mean(0, keepdims=True)])
        albedo = np.where(sleeve[:, None], scene.arm.sleeve_colour[None], skin * 0.97)
        return av, an, albedo

    def _render_sample(self, rng, vc, ks, colours, light, vuv, kuv, batch: dict, i: int,
                       arm=None, specular: float = 0.0) -> None:
        """Render sample ``i`` of ``batch`` into its arrays, in place.

        rng: its generator, after scene sampling; vc (V, 778, 3) camera-frame vertices of
        each view, metres; ks (V, 3, 3); colours (778, 3) albedo; light (11,); vuv (V, 778, 2) and
        kuv (V, 21, 2) float32 projected vertices and joints, pixels; arm: the forearm of
        :meth:`_arm` (view-0 frame) or None; specular: the skin's highlight strength.

        Layers, back to front: background, forearm, hand. The forearm is drawn under the
        hand, so the hand's pixels, ``masks`` and ``depth`` are exactly those of the hand
        alone; the forearm shows only outside the hand's silhouette.
        """
        from handtools.core.render import lighting as L

        h, w = self.hw
        v = self.views
        dev, dt = vc.device, vc.dtype
        # The draws of the sample's stream, in order: the backgrounds of all views, then
        # per view its sensor noise and its keypoint noise.
        bgs = self._backgrounds(rng)
        # The light is given in the frame of view 0: turn its direction into each view's frame.
        lights = light.expand(v, -1).clone()
        lights[:, L.LIGHT_DIRECTION] = self.ts_t[:, :3, :3] @ light[L.LIGHT_DIRECTION]
        neutral = _neutral_light(v, dev, dt)
        faces = self.model.faces
        spec = specular * (1 + 2 * self.nail).expand(v, -1)  # (V, 778): nails shine more
        normals = _vertex_normals(vc, faces)  # (V, 778, 3)
        lit = shade_vertices(colours.expand(v, -1, -1), vc, normals, lights, self.preset.wrap, spec)
        r, (y0, x0, wh, ww) = self._render_window(vc, self.hand_faces, ks, lit.clamp(0, 1), neutral, vuv)
        sil = r.silhouette.clamp(0, 1)[..., None].cpu().numpy()  # (V, wh, ww, 1)
        rgb = r.rgb.clamp(0, 1).cpu().numpy()  # (V, wh, ww, 3), premultiplied by coverage
        hit = (r.face_ids >= 0).cpu().numpy()  # (V, wh, ww)
        dep = r.depth.cpu().numpy()
        arm_layer = None
        if arm is not None:
            av, an, albedo = (torch.as_tensor(x, device=dev, dtype=dt) for x in arm)
            T = self.ts_t  # (V, 4, 4)
            avc = av @ T[:, :3, :3].transpose(1, 2) + T[:, None, :3, 3]  # (V, M, 3)
            anc = an @ T[:, :3, :3].transpose(1, 2)
            auv = (avc[..., :2] / avc[..., 2:3]) @ ks[:, :2, :2].transpose(1, 2) + ks[:, None, :2, 2]
            alit = shade_vertices(albedo.expand(v, -1, -1), avc, anc, lights, self.preset.wrap,
                                  torch.full(avc.shape[:2], 0.5 * specular, device=dev, dtype=dt))
            import cv2  # resizes the arm layer

            # At half resolution, resized: the arm is smooth, large, and scene context only.
            ra, awin = self._render_window(avc, self.arm_faces, ks, alit.clamp(0, 1), neutral,
                                           auv.cpu().numpy(), scale=2, renderer=self.arm_renderer)
            layer = torch.cat([ra.silhouette[..., None], ra.rgb], -1).clamp(0, 1).cpu().numpy()  # (V, h', w', 4)
            awh, aww = awin[2], awin[3]
            layer = np.stack([cv2.resize(x, (aww, awh), interpolation=cv2.INTER_LINEAR) for x in layer])
            arm_layer = (layer[..., :1], layer[..., 1:], awin)
        for view in range(v):
            ys, xs = slice(y0[view], y0[view] + wh), slice(x0[view], x0[view] + ww)
            # In place, in float32, the operations of
            # clip((bg / 255 composited with arm and hand + noise) * 255 + 0.5, 0, 255):
            # every value is the same as with temporaries, which are gone.
            img = bgs[view].astype(np.float32)
            img /= 255.0
            if arm_layer is not None:
                asil, argb, (ay0, ax0, awh, aww) = arm_layer  # (V, awh, aww, 1), (V, awh, aww, 3)
                win = img[ay0[view]:ay0[view] + awh, ax0[view]:ax0[view] + aww]
                win *= 1.0 - asil[view]
                win += argb[view]
            win = img[ys, xs]
            win *= 1.0 - sil[view]
            win += rgb[view]
            noise = rng.standard_normal(img.shape, dtype=np.float32)
            noise *= self.preset.noise_sigma / 255.0
            img += noise
            img *= 255.0
            img += 0.5
            np.clip(img, 0, 255, out=img)
            batch["images"][i, view] = img  # truncating cast, as astype(uint8)
            batch["masks"][i, view, ys, xs] = hit[view] * np.uint8(255)
            batch["depth"][i, view, ys, xs] = dep[view]
            batch["keypoints2d"][i, view] = noisy_keypoints(kuv[view][None], self.kp_noise, rng)[0]
            lo, hi = vuv[view].min(0), vuv[view].max(0)
            batch["bbox"][i, view] = np.clip([lo[0], lo[1], hi[0], hi[1]], 0, [w, h, w, h])
