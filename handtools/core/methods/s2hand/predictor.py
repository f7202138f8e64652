"""Predictions of ``selfsup-mono`` checkpoints (kind ``mono``): one view, absolute meshes."""

from __future__ import annotations

import numpy as np
import torch

from handtools.core.learning.predictors import Predictor, register_predictor
from handtools.core.methods.s2hand.mirror import mirror_crop, unmirror_points
from handtools.core.methods.s2hand.model import build_s2hand, decode, mano_hand
from handtools.core.render.common import project


@register_predictor("mono", "auto", "monocular")
class S2HandPredictor(Predictor):
    """S2HAND on single crops: MANO pose / shape, scale, rotation, translation in the camera
    frame (absolute: no root depth needed), per-vertex texture and light.

    The hand model is rebuilt with 30 PCA components from ``hand``'s source (the
    ``--mano`` file or the bundled model), so ``hand`` only names it.
    """

    mode = "monocular"
    needs_root_depth = False

    def __init__(self, ckpt: dict, hand, device: torch.device, mode: str = "auto"):
        super().__init__(ckpt, hand, device, mode)
        meta = ckpt["meta"]
        self.net = build_s2hand(meta["net"]).to(device).eval()
        self.net.load_state_dict(ckpt["model"])
        s = int(meta["net"]["image_size"])
        self.image_size = (s, s)
        self.mirror_left = bool(meta.get("mirror_left", True))
        if getattr(hand, "use_pca", False) and hand.num_pca_comps == 30 and not hand.flat_hand_mean:
            self.hand = hand
        else:  # the same model file with 30 PCA components and MANO's hand mean
            self.hand = mano_hand(None if getattr(hand, "is_bundled", True) else hand.source_path, device=device)

    @torch.no_grad()
    def predict(self, batch: dict, view: int = 0) -> dict[str, np.ndarray]:
        """batch: ``images`` (B, V, H, W, 3) uint8, ``K`` (B, V, 3, 3), optional
        ``hand/is_left`` (B, V). Returns ``pred/verts3d`` (B, 778, 3), ``pred/joints3d``
        (B, 21, 3) metres in the camera frame of ``view`` (view 0 when ``T_view`` is
        identity), ``pred/uv`` (B, 778, 2) crop pixels, ``pred/pose`` (B, 48),
        ``pred/shape``, ``pred/scale``, ``pred/rot``, ``pred/trans``, ``pred/texture``
        (B, 778, 3), ``pred/light`` (B, 11)."""
        images = batch["images"][:, view]
        Ks = batch["K"][:, view].astype(np.float32)
        left = np.zeros(len(images), bool)
        if self.mirror_left and "hand/is_left" in batch:
            left = batch["hand/is_left"][:, view].astype(bool)
        imgs, Km = [], []
        for i in range(len(images)):
            if left[i]:
                a, k, _ = mirror_crop(images[i], Ks[i])
            else:
                a, k = images[i], Ks[i]
            imgs.append(a)
            Km.append(k)
        K = torch.from_numpy(np.stack(Km)).to(self.device)
        codes = self.net(self._images(np.stack(imgs)), K, with_2d=False)  # the 2D branch is for training only
        hand = decode(codes, self.hand)
        verts = unmirror_points(hand["verts"].cpu().numpy(), left)
        joints = unmirror_points(hand["joints"].cpu().numpy(), left)
        Kt = torch.from_numpy(Ks).to(self.device)
        uv, _ = project(torch.from_numpy(verts).to(self.device), Kt)
        tex = codes["texture"]
        if tex.shape[1] != verts.shape[1]:  # per-face texture: average onto the vertices
            f = self.hand.faces
            acc = torch.zeros(tex.shape[0], verts.shape[1], 3, device=tex.device).index_add_(1, f.reshape(-1), tex.repeat_interleave(3, 1))
            cnt = torch.zeros(verts.shape[1], device=tex.device).index_add_(0, f.reshape(-1), torch.ones(f.numel(), device=tex.device))
            tex = acc / cnt.clamp_min(1)[None, :, None]
        rot = codes["rot"].cpu().numpy()
        trans = codes["trans"].cpu().numpy()
        rot[left, 1:] *= -1  # mirrored rotation: (x, y, z) -> (x, -y, -z)
        trans[left, 0] *= -1
        f32 = lambda x: np.asarray(x, dtype=np.float32)  # noqa: E731
        return {
            "pred/verts3d": f32(verts), "pred/joints3d": f32(joints), "pred/uv": f32(uv.cpu().numpy()),
            "pred/pose": f32(hand["pose"].cpu().numpy()), "pred/shape": f32(codes["beta"].cpu().numpy()),
            "pred/scale": f32(codes["scale"].cpu().numpy()), "pred/rot": f32(rot), "pred/trans": f32(trans),
            "pred/texture": f32(tex.cpu().numpy()), "pred/light": f32(codes["light"].cpu().numpy()),
        }
