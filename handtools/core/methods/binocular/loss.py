"""The self-supervised loss of eq. 10 (Chen et al., ICCV 2021, §3.2): photo-consistency
(eqs. 2-4) through the disparity of the rendered depth, the edge loss against the
``--init`` model's pseudo meshes (eq. 5), Laplacian (eq. 6), mask (eq. 7), Chamfer
(eq. 8) and normal consistency (eq. 9) between the left and right meshes. Weights and
the choices the paper leaves open: :class:`~handtools.core.methods.binocular.config.BinocularConfig`.
"""

from __future__ import annotations

import torch

from handtools.core.geometry.stereo import disparity_from_depth, left_from_right_frame, warp_with_disparity
from handtools.core.hand.joints import NUM_VERTICES
from handtools.core.learning.nets.prior import regress_joints21
from handtools.core.losses.image import mask_loss, photo_consistency_loss
from handtools.core.losses.mesh import (
    chamfer_loss,
    edge_loss,
    laplacian_loss,
    mesh_topology,
    normal_consistency_loss,
)
from handtools.core.methods.binocular.config import DEPTH_LOSS, LOSS_NAMES, PAPER
from handtools.core.methods.binocular.model import root_relative_z, stereo_meshes


class StereoSelfSupLoss:
    """Eq. 10 for :class:`handtools.core.learning.trainer.Trainer`.

    Args:
        faces: (1538, 3); J_regressor: (16, 778) of the hand model.
        renderer: a :class:`handtools.core.render.Renderer`.
        pseudo: dict with ``left``/``right`` (N, 778, 3) metres pseudo meshes per sample.
        weights: loss weights overriding :attr:`BinocularConfig.loss_weights`.
        enabled: names of the losses in use (ablations switch some off).
        alpha: SSIM weight of the photo-consistency loss.
    """

    def __init__(self, faces, J_regressor, renderer, pseudo: dict, weights=None, enabled=None,
                 alpha: float = PAPER.alpha, mesh_unit: float = PAPER.mesh_unit,
                 edge_reduction: str = PAPER.edge_reduction):
        if not isinstance(pseudo, dict) or set(pseudo) != {"left", "right"}:
            raise ValueError("pseudo must be a dict with 'left' and 'right' (N, 778, 3) pseudo meshes")
        for k in ("left", "right"):
            t = pseudo[k]
            if not isinstance(t, torch.Tensor) or t.ndim != 3 or tuple(t.shape[1:]) != (NUM_VERTICES, 3):
                raise ValueError(f"pseudo[{k!r}] must be an (N, 778, 3) tensor, got {getattr(t, 'shape', type(t))}")
        unknown = set(enabled or ()) - set(LOSS_NAMES)
        if unknown:
            raise ValueError(f"unknown losses {sorted(unknown)} (known: {', '.join(LOSS_NAMES)})")
        if not mesh_unit > 0:
            raise ValueError(f"mesh_unit must be positive, got {mesh_unit}")
        self.mesh_unit = float(mesh_unit)
        self.edge_reduction = edge_reduction
        self.faces = torch.as_tensor(faces, dtype=torch.long)
        self.J = torch.as_tensor(J_regressor, dtype=torch.float32)
        self.renderer = renderer
        self.pseudo = pseudo
        self.w = dict(PAPER.loss_weights, **(weights or {}))
        self.enabled = set(enabled if enabled is not None else LOSS_NAMES)
        self.alpha = alpha
        self.topology = None

    def _render(self, verts, K, size):
        r = self.renderer.render(verts, self.faces.to(verts.device), K, size)
        return r.silhouette, r.depth

    def __call__(self, model, batch: dict):
        dev = batch["image_l"].device
        J = self.J.to(dev)
        faces = self.faces.to(dev)
        if self.topology is None or self.topology.edges.device != dev:
            self.topology = mesh_topology(faces, NUM_VERTICES, dev)
        K_l, K_r, b = batch["K_l"], batch["K_r"], batch["baseline"]
        size = tuple(batch["image_l"].shape[-2:])
        both = model(torch.cat([batch["image_l"], batch["image_r"]]))  # one pass for both branches
        n = batch["image_l"].shape[0]
        out_l = {k: v[:n] for k, v in both.items()}
        out_r = {k: v[n:] for k, v in both.items()}
        verts_l, verts_r, z_disp = stereo_meshes(out_l, out_r, K_l, K_r, b, J)
        terms: dict[str, torch.Tensor] = {}
        cx_off = K_l[:, 0, 2] - K_r[:, 0, 2]  # (B,) principal-point offset between the crops
        need_render = self.enabled & {"photo", "mask"}
        if need_render:
            sil_l, depth_l = self._render(verts_l, K_l, size)
            sil_r, depth_r = self._render(verts_r, K_r, size)
        if "photo" in self.enabled:  # eqs. 2-3, both branches
            disp_r, _ = disparity_from_depth(depth_r, K_r, b)
            warped_r, _ = warp_with_disparity(batch["image_l"], disp_r, "left_to_right", cx_off)
            disp_l, _ = disparity_from_depth(depth_l, K_l, b)
            warped_l, _ = warp_with_disparity(batch["image_r"], disp_l, "right_to_left", cx_off)
            terms["photo"] = photo_consistency_loss(batch["image_r"], warped_r, batch["mask_r"], self.alpha) + \
                photo_consistency_loss(batch["image_l"], warped_l, batch["mask_l"], self.alpha)
        lu_l, lu_r = verts_l * self.mesh_unit, verts_r * self.mesh_unit  # (B, 778, 3) in the loss unit (metres)
        if "edge" in self.enabled:  # eq. 5 against the init model's pseudo meshes
            idx = batch["index"].cpu()
            pl = self.pseudo["left"][idx].to(dev) * self.mesh_unit
            pr = self.pseudo["right"][idx].to(dev) * self.mesh_unit
            terms["edge"] = edge_loss(lu_l, pl, self.topology, reduction=self.edge_reduction) + \
                edge_loss(lu_r, pr, self.topology, reduction=self.edge_reduction)
        if "laplacian" in self.enabled:  # eq. 6
            terms["laplacian"] = laplacian_loss(lu_l, self.topology) + laplacian_loss(lu_r, self.topology)
        if "mask" in self.enabled:  # eq. 7
            terms["mask"] = mask_loss(sil_l, batch["mask_l"]) + mask_loss(sil_r, batch["mask_r"])
        # eqs. 8-9 compare the two meshes in the left camera frame
        lu_r_in_l = left_from_right_frame(lu_r, b * self.mesh_unit)
        if "chamfer" in self.enabled:
            terms["chamfer"] = chamfer_loss(lu_l, lu_r_in_l)
        if "normal" in self.enabled:
            terms["normal"] = normal_consistency_loss(lu_l, lu_r_in_l, self.topology)
        if "z" in out_l:  # monocular variant: z head agrees with the disparity depth (root-relative)
            zd = z_disp - regress_joints21(z_disp[..., None], J)[:, :1, 0]
            terms[DEPTH_LOSS] = ((root_relative_z(out_l, J) - zd.detach()).abs().mean()
                                 + (root_relative_z(out_r, J) - zd.detach()).abs().mean()) * 100.0  # centimetres
        loss = sum(self.w[k] * v for k, v in terms.items())
        metrics = {f"loss_{k}": float(v.detach()) for k, v in terms.items()}
        return loss, metrics
