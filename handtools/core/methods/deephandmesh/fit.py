"""Personalising a hand model with per-frame pose variables (``personalize --fit-poses``).

The paper trains an image encoder with the decoder (§4, §7). On a CPU the encoder is
replaced by free pose variables, one per frame (global rotation about the root, the
articulation, a translation), optimised jointly with the person's correctives by the same
losses (:class:`DeepHandMeshLoss`). The global pose starts at the paper's rigid alignment
of the wrist and finger roots (§5.2). With the model frozen the same loop fits poses only:
how the held-out evaluation compares models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import Tensor

from handtools.core.methods.deephandmesh.config import DeepHandMeshConfig
from handtools.core.methods.deephandmesh.loss import DeepHandMeshLoss
from handtools.core.methods.deephandmesh.model import PersonalHandModel, initial_global_pose


@dataclass
class FrameData:
    """What one subject's capture gives, per frame (F frames, C views, S x S depth crops).

    joints (F, 21, 3) metres, world = view 0 of each frame; joint_valid (F, 21) bool;
    depth (F, C, S, S) metres (0 = none) or None; K (F, C, 3, 3) of the crops; T_view
    (F, C, 4, 4) world-to-camera.
    """

    joints: Tensor
    joint_valid: Tensor
    depth: Optional[Tensor]
    K: Tensor
    T_view: Tensor

    def __post_init__(self):
        f = self.joints.shape[0]
        if self.joints.shape != (f, 21, 3) or self.joint_valid.shape != (f, 21):
            raise ValueError(f"joints must be (F, 21, 3) with joint_valid (F, 21), got "
                             f"{tuple(self.joints.shape)}, {tuple(self.joint_valid.shape)}")
        if self.K.shape[:2] != self.T_view.shape[:2] or self.K.shape[0] != f:
            raise ValueError("K and T_view must be (F, C, 3, 3) and (F, C, 4, 4)")
        if self.depth is not None and self.depth.shape[:2] != self.K.shape[:2]:
            raise ValueError(f"depth must be (F, C, S, S), got {tuple(self.depth.shape)}")

    def __len__(self) -> int:
        return self.joints.shape[0]


class FramePoses(torch.nn.Module):
    """Per-frame pose variables: pose (F, pose_dim) and trans (F, 3), initialised by §5.2's
    rigid alignment of the model's rest skeleton to each frame's joints."""

    def __init__(self, model: PersonalHandModel, joints: Tensor):
        super().__init__()
        rot, trans = initial_global_pose(model, torch.nan_to_num(joints))
        pose = torch.zeros(joints.shape[0], model.pose_dim, dtype=joints.dtype, device=joints.device)
        pose[:, :3] = rot
        self.pose = torch.nn.Parameter(pose)
        self.trans = torch.nn.Parameter(trans)


def frame_targets(data, idx: torch.Tensor, views: torch.Tensor) -> dict:
    """The loss targets of frames ``idx`` (B,) seen from ``views`` (C',): their 3D joints and,
    when the capture has depth, those views' depth maps and cameras."""
    targets = {"joints": data.joints[idx], "joint_valid": data.joint_valid[idx]}
    if data.depth is not None:
        targets.update(depth=data.depth[idx][:, views], K=data.K[idx][:, views], T_view=data.T_view[idx][:, views])
    return targets


def optimise_step(loss, model, out: dict, targets: dict, opt, use_penet: bool) -> dict:
    """One optimiser step on ``loss(model, out, targets)``; returns ``{"total": float, **terms}``."""
    total, terms = loss(model, out, targets, use_penet=use_penet)
    opt.zero_grad(set_to_none=True)
    total.backward()
    opt.step()
    return {"total": float(total.detach()), **terms}


def fit(model: PersonalHandModel, data: FrameData, cfg: DeepHandMeshConfig, loss: DeepHandMeshLoss,
        steps: int, train_model: bool = True, poses: Optional[FramePoses] = None, seed: int = 0,
        use_penet: bool = True, on_step: Optional[Callable[[int, dict], None]] = None,
        optimizer_state: Optional[dict] = None, start_step: int = 0) -> tuple[FramePoses, torch.optim.Optimizer]:
    """Optimise per-frame poses and (``train_model``) the model's correctives.

    Each step draws ``cfg.batch_size`` frames and ``cfg.render_views`` of their views at
    random (the paper's C_out randomly selected views). Adam: ``cfg.lr`` for the model,
    ``cfg.pose_lr`` for the poses, both decayed by ``cfg.gamma`` at ``cfg.milestones`` (read
    as fractions of ``steps`` when below 1, else as step numbers).

    Returns the pose variables and the optimiser (its state resumes a run).
    """
    if poses is None:
        poses = FramePoses(model, data.joints)
    groups = [{"params": list(poses.parameters()), "lr": cfg.pose_lr}]
    model.requires_grad_(train_model)
    if train_model:
        groups.append({"params": model.correctives_parameters(), "lr": cfg.lr})
    opt = torch.optim.Adam(groups)
    if optimizer_state is not None:
        opt.load_state_dict(optimizer_state)
    gen = torch.Generator().manual_seed(seed)
    n, c = len(data), data.K.shape[1]
    for step in range(start_step, steps):
        decay = cfg.lr_decay(step, steps)
        opt.param_groups[0]["lr"] = cfg.pose_lr * decay
        if train_model:
            opt.param_groups[1]["lr"] = cfg.lr * decay
        idx = torch.randperm(n, generator=gen)[:min(cfg.batch_size, n)].to(data.joints.device)
        views = torch.randperm(c, generator=gen)[:min(cfg.render_views, c)].to(data.joints.device)
        out = model(poses.pose[idx], poses.trans[idx])
        terms = optimise_step(loss, model, out, frame_targets(data, idx, views), opt, use_penet)
        if on_step is not None:
            on_step(step, terms)
    model.requires_grad_(True)
    return poses, opt


def palm_vertices(weights: Tensor) -> Tensor:
    """(V, 16) skinning weights -> (V,) bool: vertices whose dominant joint is the wrist (M_γ, §6)."""
    return weights.argmax(1) == 0
