"""The hand-prior encoder-decoder (Chen et al., ICCV 2021, §3.1, Fig. 2; supplementary §1).

``HandPriorNet`` = ResNet encoder (classifier removed) + image-to-lixel mesh
regressor. It is pre-trained on FreiHAND with ground-truth vertices and then
duplicated into the binocular self-supervised model (``with_z=False``: u, v
only) or the monocular variant (``with_z=True``: u, v and root-relative z).

Coordinates: ``uv`` in pixels of the input crop, pixel ``i`` covering
``[i, i + 1)`` (see :mod:`handtools.core.learning.nets.lixel`); ``z`` in metres relative
to the root joint (wrist). :func:`uvz_to_camera` lifts them to camera space
given the crop's intrinsics and the root depth.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from handtools.core.hand.joints import FINGERTIP_VERTICES, MANO_TO_FREIHAND, NUM_MANO_JOINTS, NUM_VERTICES
from handtools.core.learning.nets.lixel import LIXEL_STRIDE, LixelRegressor
from handtools.core.learning.nets.resnet import RESNET_SPECS, ResNetEncoder

#: ImageNet statistics the torchvision encoders were trained with (RGB, images in [0, 1]).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def regress_joints21(verts: torch.Tensor, J_regressor: torch.Tensor) -> torch.Tensor:
    """The 21 FreiHAND-order joints from mesh vertices.

    The hand model's joint regressor gives the 16 MANO joints; the five fingertips
    are the vertices ``FINGERTIP_VERTICES``; ``MANO_TO_FREIHAND`` reorders them.
    The regressor is linear with rows summing to 1, so it applies equally to
    camera-space xyz (metres), to image-space uv (pixels) or to (u, v, z) as in I2L-MeshNet.

    Args:
        verts: (B, 778, C) float, any units (C = 2 or 3 typically).
        J_regressor: (16, 778) float, the hand model's ``J_regressor`` (dense).

    Returns:
        (B, 21, C), same dtype/device/units as ``verts``.
    """
    if verts.ndim != 3 or verts.shape[1] != NUM_VERTICES:
        raise ValueError(f"verts must be (B, {NUM_VERTICES}, C), got {tuple(verts.shape)}")
    if J_regressor.ndim != 2 or tuple(J_regressor.shape) != (NUM_MANO_JOINTS, NUM_VERTICES):
        raise ValueError(f"J_regressor must be ({NUM_MANO_JOINTS}, {NUM_VERTICES}), got {tuple(J_regressor.shape)}")
    J_regressor = J_regressor.to(device=verts.device, dtype=verts.dtype)
    mano16 = torch.einsum("jv,bvc->bjc", J_regressor, verts)  # (B, 16, C)
    tips = verts[:, list(FINGERTIP_VERTICES)]  # (B, 5, C)
    joints = torch.cat((mano16, tips), dim=1)  # (B, 21, C) in MANO+tips order
    return joints[:, list(MANO_TO_FREIHAND)]  # (B, 21, C) FreiHAND order


def uvz_to_camera(uv: torch.Tensor, z_rel: torch.Tensor, K: torch.Tensor, root_depth: torch.Tensor) -> torch.Tensor:
    """Back-project (u, v, root-relative z) to camera space (OpenCV axes: x right, y down, z forward).

    ``Z = root_depth + z_rel``; ``(X, Y, Z) = Z * K^-1 (u, v, 1)``. ``uv`` and ``K``
    must use the same continuous pixel coordinates (handtools: pixel ``i`` covers
    ``[i, i + 1)``) and refer to the same image (the network crop: use the crop's K).

    Args:
        uv: (B, N, 2) float, pixels.
        z_rel: (B, N) float, metres relative to the root.
        K: (B, 3, 3) or (3, 3) float, intrinsics in pixels.
        root_depth: (B,) float, metres, camera-space depth of the root joint (> 0).

    Returns:
        (B, N, 3) float, metres, camera frame.
    """
    if uv.ndim != 3 or uv.shape[-1] != 2:
        raise ValueError(f"uv must be (B, N, 2), got {tuple(uv.shape)}")
    b, n = uv.shape[:2]
    if tuple(z_rel.shape) != (b, n):
        raise ValueError(f"z_rel must be ({b}, {n}), got {tuple(z_rel.shape)}")
    if K.shape[-2:] != (3, 3) or K.ndim not in (2, 3) or (K.ndim == 3 and K.shape[0] != b):
        raise ValueError(f"K must be (3, 3) or ({b}, 3, 3), got {tuple(K.shape)}")
    if tuple(root_depth.shape) != (b,):
        raise ValueError(f"root_depth must be ({b},), got {tuple(root_depth.shape)}")
    K = K.to(uv).expand(b, 3, 3)
    depth = root_depth.to(uv)[:, None] + z_rel  # (B, N)
    homog = torch.cat((uv, torch.ones_like(uv[..., :1])), dim=-1)  # (B, N, 3)
    rays = torch.linalg.solve(K, homog.transpose(1, 2)).transpose(1, 2)  # (B, N, 3), z component 1
    return rays * depth[..., None]


class HandPriorNet(nn.Module):
    """Encoder-decoder for hand prior learning: image crop → mesh vertices in (u, v[, z]).

    Args:
        encoder: ResNet name (``"resnet18"``, ``"resnet34"``, ``"resnet50"`` as the paper,
            ``"resnet101"``, ``"resnet152"``).
        image_size: input crop size in pixels, int or (H, W); multiples of 32 (paper: 256).
        with_z: regress root-relative depth too (pre-training, monocular variant);
            ``False`` for the binocular self-supervised model (u, v only).
        J_regressor: optional (16, 778) joint regressor of the hand model; when given,
            the output also holds the 21 FreiHAND-order joints. Kept as a non-persistent
            buffer: it belongs to the hand model, not to the checkpoint's weights.
        hidden_channels, depth_bins, depth_range: see :class:`LixelRegressor`.

    ``forward(images, return_heatmaps=False)``: ``images`` (B, 3, H, W) float RGB in
    [0, 1] (normalised with ImageNet mean/std inside). Returns a dict:

    * ``uv`` (B, 778, 2) crop pixels; ``z`` (B, 778) metres, root-relative (if ``with_z``);
    * ``joints_uv`` (B, 21, 2) and ``joints_z`` (B, 21) (if ``J_regressor`` was given);
    * the lixel heatmap logits if ``return_heatmaps`` (see :class:`LixelRegressor`).
    """

    def __init__(
        self,
        encoder: str = "resnet50",
        image_size: int | tuple[int, int] = 256,
        with_z: bool = True,
        J_regressor: torch.Tensor | np.ndarray | None = None,
        hidden_channels: int | None = None,
        depth_bins: int = 64,
        depth_range: float = 0.3,
    ):
        super().__init__()
        if encoder not in RESNET_SPECS:
            raise ValueError(f"unknown encoder {encoder!r}; expected one of {sorted(RESNET_SPECS)}")
        size = (image_size, image_size) if isinstance(image_size, int) else tuple(int(s) for s in image_size)
        if len(size) != 2 or any(s < 32 or s % 32 for s in size):
            raise ValueError(f"image_size must be a positive multiple of 32 (int or (H, W)), got {image_size!r}")
        self.image_size = size
        self.encoder = ResNetEncoder(encoder)
        self.lixel_regressor = LixelRegressor(
            in_channels=self.encoder.out_channels,
            num_vertices=NUM_VERTICES,
            hidden_channels=hidden_channels,
            with_z=with_z,
            depth_bins=depth_bins,
            depth_range=depth_range,
            heatmap_size=(size[0] // LIXEL_STRIDE, size[1] // LIXEL_STRIDE),
        )
        self.config = {
            "encoder": encoder,
            "image_size": list(size),
            "with_z": bool(with_z),
            "hidden_channels": self.lixel_regressor.hidden_channels,
            "depth_bins": int(depth_bins),
            "depth_range": float(depth_range),
        }
        self.register_buffer("pixel_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        J = None
        if J_regressor is not None:
            J = torch.as_tensor(J_regressor, dtype=torch.float32)
            if tuple(J.shape) != (NUM_MANO_JOINTS, NUM_VERTICES):
                raise ValueError(f"J_regressor must be ({NUM_MANO_JOINTS}, {NUM_VERTICES}), got {tuple(J.shape)}")
        self.register_buffer("J_regressor", J, persistent=False)

    def init_mean(self, uv: torch.Tensor, z: torch.Tensor | None = None) -> None:
        """Make the untrained network output a mean hand (see :meth:`LixelRegressor.init_mean`):
        ``uv`` (778, 2) crop pixels, ``z`` (778,) metres root-relative (with a z head)."""
        self.lixel_regressor.init_mean(uv, z if self.with_z else None)

    @property
    def with_z(self) -> bool:
        return self.lixel_regressor.with_z

    def forward(self, images: torch.Tensor, return_heatmaps: bool = False) -> dict[str, torch.Tensor]:
        if images.ndim != 4 or images.shape[1] != 3 or tuple(images.shape[2:]) != self.image_size:
            raise ValueError(
                f"images must be (B, 3, {self.image_size[0]}, {self.image_size[1]}), got {tuple(images.shape)}"
            )
        if not images.is_floating_point():
            raise ValueError(f"images must be float in [0, 1], got {images.dtype}")
        x = (images - self.pixel_mean.to(images.dtype)) / self.pixel_std.to(images.dtype)  # (B, 3, H, W)
        out = self.lixel_regressor(self.encoder(x), return_heatmaps=return_heatmaps)
        if self.J_regressor is not None:
            out["joints_uv"] = regress_joints21(out["uv"], self.J_regressor)  # (B, 21, 2)
            if "z" in out:
                out["joints_z"] = regress_joints21(out["z"][..., None], self.J_regressor)[..., 0]  # (B, 21)
        return out


#: The 1x1 output convolutions of the lixel heads: the image-dependent residual on top of the
#: per-bin prior logits (:meth:`LixelRegressor.init_mean`).
RESIDUAL_OUTPUTS = ("conv_x", "conv_y", "conv_z_2")


def mean_hand_state(state: dict) -> dict:
    """A copy of a :class:`HandPriorNet` state dict with the residual switched off: the lixel
    heads' output convolutions zeroed, so the network outputs the soft-argmax of its prior
    logits, the mean hand it was initialised at, whatever the image (the baseline a trained
    prior has to beat)."""
    def module(key: str) -> str:  # "lixel_regressor.conv_x.weight" -> "conv_x"
        return key.rsplit(".", 2)[-2] if key.count(".") else ""

    return {k: torch.zeros_like(v) if module(k) in RESIDUAL_OUTPUTS else v for k, v in state.items()}


def build_prior(config: dict, J_regressor=None) -> HandPriorNet:
    """Rebuild a :class:`HandPriorNet` from a checkpoint's ``meta["net"]`` config (its ``config`` attribute)."""
    return HandPriorNet(
        encoder=config["encoder"],
        image_size=tuple(config["image_size"]),
        with_z=config["with_z"],
        J_regressor=J_regressor,
        hidden_channels=config.get("hidden_channels"),
        depth_bins=config.get("depth_bins", 64),
        depth_range=config.get("depth_range", 0.3),
    )


def to_camera(out: dict, K: torch.Tensor, root_depth: torch.Tensor,
              J_regressor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Network output -> camera-space vertices (B, 778, 3) and joints (B, 21, 3), metres.

    ``out``: :class:`HandPriorNet`'s dict (``uv`` (B, 778, 2) crop pixels, optional ``z``
    (B, 778) metres). ``K`` (B, 3, 3) crop intrinsics; ``root_depth`` (B,) the wrist's
    camera depth, metres (ground truth for root-relative evaluation, or from stereo).
    A u, v-only model is placed flat at the wrist depth. Joints are regressed from the
    camera-space mesh.
    """
    z = out["z"] if "z" in out else torch.zeros_like(out["uv"][..., 0])
    # z is relative to the wrist of the *predicted* mesh: re-centre on its regressed root
    root_rel = regress_joints21(z[..., None], J_regressor)[:, 0, 0]  # (B,)
    verts = uvz_to_camera(out["uv"], z - root_rel[:, None], K, root_depth)  # (B, 778, 3)
    return verts, regress_joints21(verts, J_regressor)
