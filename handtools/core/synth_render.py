"""Render sampled scenes into labelled frames (the work behind ``handtools synth``)."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch

from handtools.core.synth import DomainPreset, SceneSample, background, noisy_keypoints, sample_scene


def _normalise(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


class SceneRenderer:
    """Samples and renders batches of synthetic frames.

    Args:
        model: a :class:`handtools.core.hand_model.HandModel`.
        renderer: a :class:`handtools.core.render.Renderer`.
        preset: the domain preset.
        image_size: (H, W) pixels.
        ks: (V, 3, 3) intrinsics; ts: (V, 4, 4) world(view 0)-to-camera transforms.
        baseline: stereo baseline in metres (written for 2-view rigs), else None.
        kp_noise: keypoint noise sigma in px (0: exact keypoints, confidence 1).
        seed: base seed; sample ``i`` uses ``default_rng([seed, i])``.
        backgrounds: optional image files used instead of procedural backgrounds.
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
    ):
        self.model, self.renderer, self.preset = model, renderer, preset
        self.hw = image_size
        self.ks, self.ts = ks.astype(np.float32), ts.astype(np.float32)
        self.views = len(ks)
        self.baseline = baseline
        self.kp_noise, self.seed = kp_noise, seed
        self.backgrounds = list(backgrounds) if backgrounds else None
        dev, dt = model.faces.device, model.shapedirs.dtype
        self.device, self.dtype = dev, dt
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

    def _background(self, rng: np.random.Generator) -> np.ndarray:
        h, w = self.hw
        if self.backgrounds is None:
            return background(h, w, self.preset, rng)
        from handtools.io.images import read_image, random_crop_resize

        img = read_image(self.backgrounds[rng.integers(len(self.backgrounds))])
        return random_crop_resize(img, (h, w), rng)

    def _render_window(self, vc, faces, K, colours, light):
        """Render only the window around the hands (same size for the batch, shifted K per sample).

        Pixels outside every window hold no face, so the full-frame result equals the
        pasted windows; this keeps synth fast at 640x480 where the hand covers a fraction.
        """
        h, w = self.hw
        uv = (vc[..., :2] / vc[..., 2:3]) @ K[0, :2, :2].T + K[0, :2, 2]  # (N, 778, 2)
        lo = torch.floor(uv.amin(1)).cpu().numpy().astype(int) - 2  # (N, 2) x, y
        hi = torch.ceil(uv.amax(1)).cpu().numpy().astype(int) + 2
        ww = int(min(w, max(8, (hi[:, 0] - lo[:, 0]).max())))
        wh = int(min(h, max(8, (hi[:, 1] - lo[:, 1]).max())))
        x0 = np.clip(lo[:, 0], 0, w - ww)
        y0 = np.clip(lo[:, 1], 0, h - wh)
        Kw = K.clone()
        Kw[:, 0, 2] -= torch.as_tensor(x0, dtype=K.dtype, device=K.device)
        Kw[:, 1, 2] -= torch.as_tensor(y0, dtype=K.dtype, device=K.device)
        r = self.renderer.render(vc, faces, Kw, (wh, ww), colors=colours, light=light)
        return r, (y0, x0, wh, ww)

    def render_batch(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """Sample and render ``indices``; returns schema datasets with N = len(indices)."""
        h, w = self.hw
        rngs = [np.random.default_rng([self.seed, int(i)]) for i in indices]
        scenes: list[SceneSample] = [
            sample_scene(
                self.preset, rng, self.rest_verts, self.rest_root, self.hw, float(self.ks[0, 0, 0]),
                self.palm_normal, self.finger_dir,
            )
            for rng in rngs
        ]
        n, v = len(indices), self.views
        dev, dt = self.device, self.dtype
        t = lambda a: torch.as_tensor(np.stack(a), device=dev, dtype=dt)  # noqa: E731
        out = self.model(t([s.pose for s in scenes]), t([s.shape for s in scenes]), trans=t([s.trans for s in scenes]))
        verts0, joints0 = out.verts, out.joints  # (N, 778, 3), (N, 21, 3) view-0 frame
        colours, light = t([s.colours for s in scenes]), t([s.light for s in scenes])
        faces = self.model.faces

        images = np.empty((n, v, h, w, 3), np.uint8)
        masks = np.empty((n, v, h, w), np.uint8)
        depth = np.empty((n, v, h, w), np.float32)
        kp2d = np.empty((n, v, 21, 3), np.float32)
        bbox = np.empty((n, v, 4), np.float32)
        bgs = [[self._background(rng) for _ in range(v)] for rng in rngs]
        for view in range(v):
            T = torch.as_tensor(self.ts[view], device=dev, dtype=dt)
            K = torch.as_tensor(self.ks[view], device=dev, dtype=dt).expand(n, 3, 3)
            vc = verts0 @ T[:3, :3].T + T[:3, 3]  # (N, 778, 3) camera frame of this view
            jc = joints0 @ T[:3, :3].T + T[:3, 3]
            r, (y0, x0, wh, ww) = self._render_window(vc, faces, K, colours, light)
            sil = r.silhouette.clamp(0, 1)[..., None].cpu().numpy()  # (N, h, w, 1)
            rgb = r.rgb.clamp(0, 1).cpu().numpy()  # premultiplied by coverage
            fid = r.face_ids.cpu().numpy()
            dep = r.depth.cpu().numpy()
            for i in range(n):
                img = bgs[i][view].astype(np.float32) / 255.0
                ys, xs = slice(y0[i], y0[i] + wh), slice(x0[i], x0[i] + ww)
                img[ys, xs] = rgb[i] + (1.0 - sil[i]) * img[ys, xs]
                noise = rngs[i].standard_normal(img.shape, dtype=np.float32) * (self.preset.noise_sigma / 255.0)
                images[i, view] = np.clip((img + noise) * 255.0 + 0.5, 0, 255).astype(np.uint8)
                masks[i, view] = 0
                masks[i, view, ys, xs] = np.where(fid[i] >= 0, 255, 0)
                depth[i, view] = 0.0
                depth[i, view, ys, xs] = dep[i]
            uv = (jc[..., :2] / jc[..., 2:3]) @ K[0, :2, :2].T + K[0, :2, 2]  # (N, 21, 2)
            uv = uv.cpu().numpy()
            vuv = ((vc[..., :2] / vc[..., 2:3]) @ K[0, :2, :2].T + K[0, :2, 2]).cpu().numpy()
            for i in range(n):
                kp2d[i, view] = noisy_keypoints(uv[i][None], self.kp_noise, rngs[i])[0]
                lo, hi = vuv[i].min(0), vuv[i].max(0)
                bbox[i, view] = np.clip([lo[0], lo[1], hi[0], hi[1]], 0, [w, h, w, h])
        batch = {
            "images": images,
            "K": np.repeat(self.ks[None], n, 0),
            "T_view": np.repeat(self.ts[None], n, 0),
            "keypoints2d": kp2d,
            "bbox": bbox,
            "masks": masks,
            "depth": depth,
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
        return batch
