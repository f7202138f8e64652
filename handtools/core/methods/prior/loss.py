"""Supervised loss of hand-prior pre-training (Chen et al., ICCV 2021, §3.1 and
supplementary §1, with I2L-MeshNet's mesh losses, §3.4).

The network predicts per-vertex image coordinates (u, v) in crop pixels and a
root-relative depth z (metres). The losses compare them with the ground truth
projected into the crop, in normalised units so pixels and metres weigh alike::

    u' = u / W,   v' = v / H,   z' = z_rel / depth_range

    L = w_v * L1(verts') + w_j * L1(joints') + w_e * L_edge(verts') + w_n * L_normal(verts')

with joints regressed from the vertices by the hand model's joint regressor.
Weights: :attr:`PriorConfig.loss_weights`.
"""

from __future__ import annotations

import torch

from handtools.core.geometry.cameras import project
from handtools.core.learning.nets.prior import regress_joints21, to_camera
from handtools.core.losses.mesh import edge_length_loss, normal_loss
from handtools.core.losses.supervised import joint_l1_loss, vertex_l1_loss
from handtools.core.methods.prior.config import PAPER


def gt_uvz(verts: torch.Tensor, joints: torch.Tensor, K: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Ground truth in the network's output space.

    verts (B, 778, 3), joints (B, 21, 3) metres camera frame; K (B, 3, 3) crop pixels.
    Returns uv (B, 778, 2) crop pixels and z_rel (B, 778) metres relative to the wrist (joint 0).
    """
    uv = project(verts, K)  # (B, 778, 2)
    z_rel = verts[..., 2] - joints[:, :1, 2]  # (B, 778)
    return uv, z_rel


@torch.no_grad()
def mean_uvz(verts: torch.Tensor, joints: torch.Tensor, K: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The training set's mean hand in the network's output space (the prior's starting point).

    verts (N, 778, 3), joints (N, 21, 3) metres, each in its view's camera frame; K (N, 3, 3)
    crop pixels. Returns the per-vertex mean of :func:`gt_uvz`: uv (778, 2) crop pixels and
    z_rel (778,) metres relative to the wrist.
    """
    if verts.ndim != 3 or verts.shape[0] < 1:
        raise ValueError(f"verts must be (N >= 1, 778, 3), got {tuple(verts.shape)}")
    uv, z = gt_uvz(verts.double(), joints.double(), K.double())
    return uv.mean(0).float(), z.mean(0).float()


def normalise_uvz(uv: torch.Tensor, z: torch.Tensor, image_size: tuple[int, int], depth_range: float) -> torch.Tensor:
    """(B, N, 2) px and (B, N) m -> (B, N, 3) dimensionless (u/W, v/H, z/depth_range)."""
    h, w = image_size
    scale = uv.new_tensor([1.0 / w, 1.0 / h])
    return torch.cat([uv * scale, (z / depth_range)[..., None]], dim=-1)


class PriorLoss:
    """Loss function for :class:`handtools.core.learning.trainer.Trainer` (pre-training).

    Args:
        faces: (1538, 3) hand-model faces; J_regressor: (16, 778).
        image_size: (H, W) of the crops; depth_range: the model's z range (m).
        weights: loss weights overriding :attr:`PriorConfig.loss_weights`.
    """

    def __init__(self, faces, J_regressor, image_size, depth_range: float, weights: dict | None = None):
        self.faces = torch.as_tensor(faces, dtype=torch.long)
        self.J = torch.as_tensor(J_regressor, dtype=torch.float32)
        self.image_size = tuple(image_size)
        self.depth_range = float(depth_range)
        self.w = dict(PAPER.loss_weights, **(weights or {}))

    def __call__(self, model, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        out = model(batch["image"])
        K, verts, joints = batch["K"], batch["verts"], batch["joints"]
        J = self.J.to(verts.device)
        uv, z = gt_uvz(verts, joints, K)
        target = normalise_uvz(uv, z, self.image_size, self.depth_range)  # (B, 778, 3)
        pz = out["z"] if "z" in out else torch.zeros_like(out["uv"][..., 0])
        pred = normalise_uvz(out["uv"], pz, self.image_size, self.depth_range)
        if "z" not in out:  # a u, v-only model: no depth supervision
            pred, target = pred[..., :2], target[..., :2]
        pj, tj = regress_joints21(pred, J), regress_joints21(target, J)
        terms = {
            "vertex": vertex_l1_loss(pred, target),
            "joint": joint_l1_loss(pj, tj),
        }
        if pred.shape[-1] == 3:
            faces = self.faces.to(verts.device)
            terms["edge"] = edge_length_loss(pred, target, faces)
            terms["normal"] = normal_loss(pred, target, faces)
        loss = sum(self.w[k] * v for k, v in terms.items())
        with torch.no_grad():  # a readable progress number: root-relative MPJPE in mm
            _, pjc = to_camera(out, K, joints[:, 0, 2], J)
            mpjpe = ((pjc - pjc[:, :1]) - (joints - joints[:, :1])).norm(dim=-1).mean() * 1000
        metrics = {f"loss_{k}": float(v.detach()) for k, v in terms.items()}
        metrics["rr_mpjpe_mm"] = float(mpjpe)
        return loss, metrics
