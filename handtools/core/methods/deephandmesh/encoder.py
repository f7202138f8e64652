"""DeepHandMesh's image encoder and its joint training with the decoder (Moon et al., ECCV
2020, §4, §7): ``personalize --encoder``.

:class:`PoseEncoder` (§4.2): a ResNet trunk, global average pooling, two fully-connected
layers (hidden 512, ReLU after the first) and ``tanh · π`` so every output lies in (-π, π);
the output is the model's pose vector (the paper's 28 DoF, or MANO's 48 numbers with
``pose_dof="full"``). The fully-connected layers start at N(0, 0.01), zero bias (§7).

:func:`fit_encoder` trains encoder and decoder end to end with the losses of §6: each step
draws ``batch_size`` frames, one view's image of each as the encoder's input and
``render_views`` of their views for L_depth; the decoded hand is placed by §5.2's rigid
alignment of its wrist and finger roots onto the target joints (the alignment is not
differentiated: it places the hand, the encoder learns the articulation). Batches are drawn
from a generator seeded by ``(seed, step)``, so a run resumed from a checkpoint at step k
draws what the uninterrupted run would have drawn.

GPU-scale: the paper trains ResNet-50 on 256² images for 35 epochs of 404K images (four
GPUs, 9 hours). On a CPU only tiny settings run (see docs/personalize.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import Tensor, nn

from handtools.core.learning.nets import IMAGENET_MEAN, IMAGENET_STD, ResNetEncoder
from handtools.core.methods.deephandmesh.config import DeepHandMeshConfig
from handtools.core.methods.deephandmesh.fit import FrameData, frame_targets, optimise_step
from handtools.core.methods.deephandmesh.loss import DeepHandMeshLoss
from handtools.core.methods.deephandmesh.model import PersonalHandModel, kabsch

#: Joints of §5.2's rigid alignment (FreiHAND order): the wrist and the five finger roots.
ALIGN_JOINTS = (0, 1, 5, 9, 13, 17)


class PoseEncoder(nn.Module):
    """§4.2: image (B, 3, H, W) float in [0, 1] -> pose (B, pose_dim) radians in (-π, π).

    Args:
        pose_dim: outputs (28 for the paper's DoF, 48 for MANO's axis-angle pose).
        arch: ResNet trunk (``resnet50`` as the paper; ``resnet18`` etc. for small runs).
        hidden: width of the first fully-connected layer (512).
        init_std: σ of the fully-connected layers' initial weights (0.01).
    """

    def __init__(self, pose_dim: int, arch: str = "resnet50", hidden: int = 512, init_std: float = 0.01):
        super().__init__()
        self.config = {"pose_dim": int(pose_dim), "arch": arch, "hidden": int(hidden)}
        self.backbone = ResNetEncoder(arch)
        self.fc = nn.Sequential(nn.Linear(self.backbone.out_channels, hidden), nn.ReLU(), nn.Linear(hidden, pose_dim))
        for m in self.fc:
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=init_std)
                nn.init.zeros_(m.bias)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, images: Tensor) -> Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
        feat = self.backbone((images - self.mean) / self.std).mean((2, 3))  # (B, C)
        return torch.tanh(self.fc(feat)) * math.pi  # (B, pose_dim), §4.2


@dataclass
class ImageFrames:
    """A capture for the encoder: :class:`FrameData` plus one image crop per view.

    images: (F, C, S, S, 3) uint8 crops around the hand (the encoder's input).
    """

    frames: FrameData
    images: Tensor

    def __post_init__(self):
        f, c = self.frames.K.shape[:2]
        if self.images.ndim != 5 or self.images.shape[:2] != (f, c) or self.images.shape[-1] != 3:
            raise ValueError(f"images must be (F, C, S, S, 3) with F, C = {f}, {c}, got {tuple(self.images.shape)}")


def aligned_forward(model: PersonalHandModel, pose: Tensor, joints: Tensor, valid: Optional[Tensor] = None) -> dict:
    """The model at ``pose`` (B, pose_dim), rigidly moved onto the target ``joints`` (B, 21, 3)
    by the wrist and finger roots (§5.2; not differentiated). Returns the model's output dict
    with ``verts`` and ``joints`` in the targets' frame, metres."""
    out = model(pose)
    with torch.no_grad():
        idx = list(ALIGN_JOINTS)
        src, dst = out["joints"][:, idx], torch.nan_to_num(joints[:, idx])
        if valid is not None:  # unknown roots: fall back to the model's own placement there
            ok = valid[:, idx].to(src.dtype)[..., None]
            dst = ok * dst + (1 - ok) * src
        R, t = kabsch(src, dst)  # (B, 3, 3), (B, 3)
    move = lambda x: x @ R.transpose(1, 2) + t[:, None]  # noqa: E731
    return {**out, "verts": move(out["verts"]), "joints": move(out["joints"]),
            "mano_joints": move(out["mano_joints"])}


def step_batch(n: int, c: int, cfg: DeepHandMeshConfig, seed: int, step: int) -> tuple[Tensor, Tensor, Tensor]:
    """The frames (B,), each frame's input view (B,) and the rendered views (C_out,) of a step,
    from a generator seeded by (seed, step) alone."""
    gen = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(step))
    idx = torch.randperm(n, generator=gen)[:min(cfg.batch_size, n)]
    view_in = torch.randint(0, c, (len(idx),), generator=gen)
    views = torch.randperm(c, generator=gen)[:min(cfg.render_views, c)]
    return idx, view_in, views


def images_to_float(images: Tensor) -> Tensor:
    """(B, S, S, 3) uint8 -> (B, 3, S, S) float in [0, 1]."""
    return images.permute(0, 3, 1, 2).float() / 255.0


def fit_encoder(model: PersonalHandModel, encoder: PoseEncoder, data: ImageFrames, cfg: DeepHandMeshConfig,
                loss: DeepHandMeshLoss, steps: int, seed: int = 0, use_penet: bool = True,
                on_step: Optional[Callable[[int, dict, torch.optim.Optimizer], None]] = None,
                optimizer_state: Optional[dict] = None, start_step: int = 0) -> torch.optim.Optimizer:
    """Train the encoder and the person's correctives jointly (§7: Adam, ``cfg.lr`` decayed by
    ``cfg.gamma`` at ``cfg.milestones``, read as fractions of ``steps`` when below 1).

    ``on_step(step, terms, optimizer)`` runs after each step (logging, checkpoints: the state
    after step ``step`` resumes with ``start_step = step + 1``). Returns the optimiser.
    """
    fr = data.frames
    n, c = len(fr), fr.K.shape[1]
    dev = fr.joints.device
    params = model.correctives_parameters() + list(encoder.parameters())
    opt = torch.optim.Adam(params, lr=cfg.lr)
    if optimizer_state is not None:
        opt.load_state_dict(optimizer_state)
    encoder.train()
    for step in range(start_step, steps):
        opt.param_groups[0]["lr"] = cfg.lr * cfg.lr_decay(step, steps)
        idx, view_in, views = (x.to(dev) for x in step_batch(n, c, cfg, seed, step))
        pose = encoder(images_to_float(data.images[idx, view_in]))  # (B, pose_dim)
        out = aligned_forward(model, pose, fr.joints[idx], fr.joint_valid[idx])
        terms = optimise_step(loss, model, out, frame_targets(fr, idx, views), opt, use_penet)
        if on_step is not None:
            on_step(step, terms, opt)
    return opt


@torch.no_grad()
def encoder_poses(encoder: PoseEncoder, images: Tensor, batch: int = 32) -> Tensor:
    """The encoder's poses (N, pose_dim) for images (N, S, S, 3) uint8, in eval mode (the
    poses an MLP pose corrective is exported on)."""
    was = encoder.training
    encoder.eval()
    out = torch.cat([encoder(images_to_float(images[i:i + batch])) for i in range(0, len(images), batch)])
    encoder.train(was)
    return out
