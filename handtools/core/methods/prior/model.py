"""Hand-prior learning: supervised losses on (u, v, z) lixel outputs and camera-space predictions.

The binocular paper (Chen et al., ICCV 2021, §3.1 and supplementary §1) pre-trains
its encoder-decoder on labelled data with I2L-MeshNet's mesh losses. The network
predicts per-vertex image coordinates (u, v) in crop pixels and a root-relative
depth z (metres). Losses compare them with the ground truth projected into the
crop, in normalised units so pixels and metres weigh alike::

    u' = u / W,   v' = v / H,   z' = z_rel / depth_range

    L = w_v * L1(verts') + w_j * L1(joints') + w_e * L_edge(verts') + w_n * L_normal(verts')

with joints regressed from the vertices by the hand model's joint regressor
(I2L-MeshNet §3.4). Default weights :data:`LOSS_WEIGHTS` (I2L-MeshNet's: normal 0.1).

Learning from scratch (no ImageNet weights), measured with ``bench/bench_prior.py``
on 64² crops, ResNet-18, Adam 1e-3, 2 CPU cores (issue 5): training goes in two
phases. First the network learns the mean root-relative mesh (the per-vertex heatmap
positions, tens of steps); only then does it learn what depends on the image
(global orientation, articulation), which from scratch needs many more images.
With ``synth --domain studio``'s global rotations (palm facing anywhere, any in-plane
roll) the mean root-relative pose is no better than a collapsed mesh (held-out
rr-MPJPE 97.5 mm vs 97.6 mm), so phase one gains nothing and the loss sits on that
plateau for the first few hundred steps whatever the head's initialisation
(I2L's std-0.001 deconvolutions or Kaiming), learning rate (3e-4 to 3e-3), loss
weights (with or without edge/normal) or crop size (64 or 128). With rotations
limited to 60° palm tilt and 45° roll the same run reaches the mean-pose level
(56.9 mm) within 100 steps of batch 8. The architecture and losses are therefore
kept as the paper's, and ``synth``'s studio preset now keeps the palm within 90° of
the camera and the roll within ±90°.
"""

from __future__ import annotations

import torch

from handtools.core.geometry.cameras import project
from handtools.core.losses.supervised import edge_length_loss, joint_l1_loss, normal_loss, vertex_l1_loss
from handtools.core.learning.nets.prior import HandPriorNet, regress_joints21, uvz_to_camera

#: Default loss weights for pre-training (vertex, joint, edge, normal).
LOSS_WEIGHTS = {"vertex": 1.0, "joint": 1.0, "edge": 1.0, "normal": 0.1}

#: Paper defaults for ``handtools pretrain`` (supplementary §1).
PRETRAIN_DEFAULTS = {"lr": 1e-5, "epochs": 25, "milestones": (17, 21), "gamma": 0.1, "batch_size": 32}


def gt_uvz(verts: torch.Tensor, joints: torch.Tensor, K: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Ground truth in the network's output space.

    verts (B, 778, 3), joints (B, 21, 3) metres camera frame; K (B, 3, 3) crop pixels.
    Returns uv (B, 778, 2) crop pixels and z_rel (B, 778) metres relative to the wrist (joint 0).
    """
    uv = project(verts, K)  # (B, 778, 2)
    z_rel = verts[..., 2] - joints[:, :1, 2]  # (B, 778)
    return uv, z_rel


def normalise_uvz(uv: torch.Tensor, z: torch.Tensor, image_size: tuple[int, int], depth_range: float) -> torch.Tensor:
    """(B, N, 2) px and (B, N) m -> (B, N, 3) dimensionless (u/W, v/H, z/depth_range)."""
    h, w = image_size
    scale = uv.new_tensor([1.0 / w, 1.0 / h])
    return torch.cat([uv * scale, (z / depth_range)[..., None]], dim=-1)


def to_camera(out: dict, K: torch.Tensor, root_depth: torch.Tensor, J_regressor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Network output -> camera-space vertices (B, 778, 3) and joints (B, 21, 3), metres.

    ``root_depth`` (B,) is the wrist's camera depth (ground truth for root-relative
    evaluation, or from stereo). Joints are regressed from the camera-space mesh.
    """
    z = out["z"] if "z" in out else torch.zeros_like(out["uv"][..., 0])
    # z is relative to the wrist of the *predicted* mesh: re-centre on its regressed root
    root_rel = regress_joints21(z[..., None], J_regressor)[:, 0, 0]  # (B,)
    verts = uvz_to_camera(out["uv"], z - root_rel[:, None], K, root_depth)  # (B, 778, 3)
    return verts, regress_joints21(verts, J_regressor)


class PriorLoss:
    """Loss function for :class:`handtools.core.learning.trainer.Trainer` (pre-training).

    Args:
        faces: (1538, 3) hand-model faces; J_regressor: (16, 778).
        image_size: (H, W) of the crops; depth_range: the model's z range (m).
        weights: loss weights (default :data:`LOSS_WEIGHTS`).
    """

    def __init__(self, faces, J_regressor, image_size, depth_range: float, weights: dict | None = None):
        self.faces = torch.as_tensor(faces, dtype=torch.long)
        self.J = torch.as_tensor(J_regressor, dtype=torch.float32)
        self.image_size = tuple(image_size)
        self.depth_range = float(depth_range)
        self.w = dict(LOSS_WEIGHTS, **(weights or {}))

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
            pv, pjc = to_camera(out, K, joints[:, 0, 2], J)
            mpjpe = ((pjc - pjc[:, :1]) - (joints - joints[:, :1])).norm(dim=-1).mean() * 1000
        metrics = {f"loss_{k}": float(v.detach()) for k, v in terms.items()}
        metrics["rr_mpjpe_mm"] = float(mpjpe)
        return loss, metrics


def build_prior(config: dict, J_regressor=None) -> HandPriorNet:
    """Rebuild a :class:`HandPriorNet` from a checkpoint's ``net`` config."""
    return HandPriorNet(
        encoder=config["encoder"],
        image_size=tuple(config["image_size"]),
        with_z=config["with_z"],
        J_regressor=J_regressor,
        hidden_channels=config.get("hidden_channels"),
        depth_bins=config.get("depth_bins", 64),
        depth_range=config.get("depth_range", 0.3),
    )
