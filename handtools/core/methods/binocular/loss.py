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
from handtools.core.methods.binocular.config import ALL_LOSSES, DEPTH_LOSS, LOSS_NAMES, PAPER
from handtools.core.methods.binocular.model import root_relative_z, stereo_meshes


class StereoSelfSupLoss:
    """Eq. 10 for :class:`handtools.core.learning.trainer.Trainer`.

    Args:
        faces: (1538, 3); J_regressor: (16, 778) of the hand model.
        renderer: a :class:`handtools.core.render.Renderer`.
        pseudo: dict with ``left``/``right`` (N, 778, 3) metres pseudo meshes per sample
            (by ``batch["index"]``); may be None when ``edge`` is not enabled.
        weights: loss weights overriding :attr:`BinocularConfig.loss_weights`.
        enabled: names of the losses in use (ablations switch some off); default the
            paper's six plus ``depth`` (which only acts on a model with a z head).
        alpha: SSIM weight of the photo-consistency loss.
        mesh_unit: metres -> unit of eqs. 5, 6, 8; edge_reduction, mask_reduction: sum
            or mean of eqs. 5 and 7; depth_unit: metres -> unit of the ``depth`` term.
    """

    def __init__(self, faces, J_regressor, renderer, pseudo: dict | None, weights=None, enabled=None,
                 alpha: float = PAPER.alpha, mesh_unit: float = PAPER.mesh_unit,
                 edge_reduction: str = PAPER.edge_reduction, mask_reduction: str = PAPER.mask_reduction,
                 depth_unit: float = PAPER.depth_unit):
        enabled = set(enabled if enabled is not None else ALL_LOSSES)
        unknown = enabled - set(ALL_LOSSES)
        if unknown:
            raise ValueError(f"unknown losses {sorted(unknown)} (known: {', '.join(ALL_LOSSES)})")
        if pseudo is not None:  # needed by __call__ when edge is enabled (mesh_terms takes them as arguments)
            if not isinstance(pseudo, dict) or set(pseudo) != {"left", "right"}:
                raise ValueError("pseudo must be a dict with 'left' and 'right' (N, 778, 3) pseudo meshes")
            for k in ("left", "right"):
                t = pseudo[k]
                if not isinstance(t, torch.Tensor) or t.ndim != 3 or tuple(t.shape[1:]) != (NUM_VERTICES, 3):
                    raise ValueError(f"pseudo[{k!r}] must be an (N, 778, 3) tensor, got {getattr(t, 'shape', type(t))}")
        if not mesh_unit > 0:
            raise ValueError(f"mesh_unit must be positive, got {mesh_unit}")
        if not depth_unit > 0:
            raise ValueError(f"depth_unit must be positive, got {depth_unit}")
        if mask_reduction not in ("mean", "sum") or edge_reduction not in ("mean", "sum"):
            raise ValueError(f"edge/mask reduction must be 'mean' or 'sum', got {edge_reduction!r}, {mask_reduction!r}")
        self.mesh_unit = float(mesh_unit)
        self.depth_unit = float(depth_unit)
        self.edge_reduction = edge_reduction
        self.mask_reduction = mask_reduction
        self.faces = torch.as_tensor(faces, dtype=torch.long)
        self.J = torch.as_tensor(J_regressor, dtype=torch.float32)
        self.renderer = renderer
        self.pseudo = pseudo
        self.w = dict(PAPER.loss_weights, **(weights or {}))
        self.enabled = enabled
        self.alpha = alpha
        self.topology = None

    def _render(self, verts, K, size):
        r = self.renderer.render(verts, self.faces.to(verts.device), K, size)
        return r.silhouette, r.depth

    def mesh_terms(self, verts_l, verts_r, batch: dict, pseudo_l=None, pseudo_r=None) -> dict[str, torch.Tensor]:
        """The paper's terms (eqs. 2-9) of given meshes, unweighted.

        Args:
            verts_l, verts_r: (B, 778, 3) float metres, each in its own camera frame.
            batch: ``image_l``, ``image_r`` (B, 3, H, W) in [0, 1], ``mask_l``, ``mask_r``
                (B, H, W), ``K_l``, ``K_r`` (B, 3, 3), ``baseline`` (B,) metres.
            pseudo_l, pseudo_r: (B, 778, 3) metres pseudo meshes of eq. 5 (needed when
                ``edge`` is enabled).

        Returns:
            ``{name: scalar}`` for every enabled paper term; left and right branch added.
        """
        dev = verts_l.device
        faces = self.faces.to(dev)
        if self.topology is None or self.topology.edges.device != dev:
            self.topology = mesh_topology(faces, NUM_VERTICES, dev)
        K_l, K_r, b = batch["K_l"], batch["K_r"], batch["baseline"]
        size = tuple(batch["image_l"].shape[-2:])
        terms: dict[str, torch.Tensor] = {}
        cx_off = K_l[:, 0, 2] - K_r[:, 0, 2]  # (B,) principal-point offset between the crops
        if self.enabled & {"photo", "mask"}:
            sil_l, depth_l = self._render(verts_l, K_l, size)
            sil_r, depth_r = self._render(verts_r, K_r, size)
        if "photo" in self.enabled:  # eqs. 2-3, both branches
            disp_r, _ = disparity_from_depth(depth_r, K_r, b)
            warped_r, _ = warp_with_disparity(batch["image_l"], disp_r, "left_to_right", cx_off)
            disp_l, _ = disparity_from_depth(depth_l, K_l, b)
            warped_l, _ = warp_with_disparity(batch["image_r"], disp_l, "right_to_left", cx_off)
            terms["photo"] = photo_consistency_loss(batch["image_r"], warped_r, batch["mask_r"], self.alpha) + \
                photo_consistency_loss(batch["image_l"], warped_l, batch["mask_l"], self.alpha)
        lu_l, lu_r = verts_l * self.mesh_unit, verts_r * self.mesh_unit  # (B, 778, 3) in the loss unit
        if "edge" in self.enabled:  # eq. 5 against the init model's pseudo meshes
            if pseudo_l is None or pseudo_r is None:
                raise ValueError("the edge loss needs pseudo meshes")
            terms["edge"] = edge_loss(lu_l, pseudo_l.to(dev) * self.mesh_unit, self.topology,
                                      reduction=self.edge_reduction) + \
                edge_loss(lu_r, pseudo_r.to(dev) * self.mesh_unit, self.topology, reduction=self.edge_reduction)
        if "laplacian" in self.enabled:  # eq. 6
            terms["laplacian"] = laplacian_loss(lu_l, self.topology) + laplacian_loss(lu_r, self.topology)
        if "mask" in self.enabled:  # eq. 7
            terms["mask"] = mask_loss(sil_l, batch["mask_l"], reduction=self.mask_reduction) + \
                mask_loss(sil_r, batch["mask_r"], reduction=self.mask_reduction)
        # eqs. 8-9 compare the two meshes in the left camera frame
        lu_r_in_l = left_from_right_frame(lu_r, b * self.mesh_unit)
        if "chamfer" in self.enabled:
            terms["chamfer"] = chamfer_loss(lu_l, lu_r_in_l)
        if "normal" in self.enabled:
            terms["normal"] = normal_consistency_loss(lu_l, lu_r_in_l, self.topology)
        return terms

    def total(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        """Eq. 10: ``sum_k w_k L_k`` of the given terms."""
        return sum(self.w[k] * v for k, v in terms.items())

    def __call__(self, model, batch: dict):
        dev = batch["image_l"].device
        J = self.J.to(dev)
        both = model(torch.cat([batch["image_l"], batch["image_r"]]))  # one pass for both branches
        n = batch["image_l"].shape[0]
        out_l = {k: v[:n] for k, v in both.items()}
        out_r = {k: v[n:] for k, v in both.items()}
        verts_l, verts_r, z_disp = stereo_meshes(out_l, out_r, batch["K_l"], batch["K_r"], batch["baseline"], J)
        pl = pr = None
        if "edge" in self.enabled:
            if self.pseudo is None:
                raise ValueError("the edge loss needs pseudo meshes (pseudo=None)")
            idx = batch["index"].cpu()
            pl, pr = self.pseudo["left"][idx], self.pseudo["right"][idx]
        terms = self.mesh_terms(verts_l, verts_r, batch, pl, pr)
        if "z" in out_l and DEPTH_LOSS in self.enabled:
            # monocular variant (our addition): the z head agrees with the disparity depth (root-relative)
            zd = (z_disp - regress_joints21(z_disp[..., None], J)[:, :1, 0]).detach()
            terms[DEPTH_LOSS] = ((root_relative_z(out_l, J) - zd).abs().mean()
                                 + (root_relative_z(out_r, J) - zd).abs().mean()) * self.depth_unit
        loss = self.total(terms)
        metrics = {f"loss_{k}": float(v.detach()) for k, v in terms.items()}
        return loss, metrics


__all__ = ["StereoSelfSupLoss", "LOSS_NAMES", "ALL_LOSSES"]
