"""S2HAND's 3D reconstruction network (§3.1-3.2, supplementary §2, Tables 2-3).

An encoder gives a low-level map ``m_l`` and a last map ``m_h``. ``m_h`` is pooled into
``v_h`` and passed through ``f_base`` and five heads: pose theta (30 PCA coefficients;
MANO's hand mean added by the hand model), shape beta (10), scale s, rotation R
(axis-angle), translation T. ``m_l`` goes through ``f_conv`` and two heads: texture C
(per-vertex RGB) and light L (11-d, layout of :mod:`handtools.core.render.lighting`).

:func:`decode` turns the codes into the camera-frame hand ``M = s M_0 R + T`` with the
shared :class:`~handtools.core.hand.model.HandModel` (kept outside the network, so
checkpoints never hold the MANO arrays).

Output parametrisations (the paper does not give them; our choices, see docs):

* translation: the network cannot see the crop's intrinsics, so it predicts an image
  offset (du, dv) from the crop centre in crop widths and a log depth d;
  ``T = z K^-1 (W/2 + du W, H/2 + dv H, 1)`` with ``z = fx / W * DEPTH_SPAN * exp(d)``.
* scale ``s = |1 + s_raw|`` (the code: ``|s|`` with bias 0.95); rotation
  ``R = INIT_ROT + r_raw``.
* texture ``sigmoid(logit(c_0) + raw)`` with the code's mean colour c_0 = (200, 150,
  150) / 256; light ``DEFAULT_LIGHT + raw``. Last layers start near zero (the code
  initialises them with std 0.001).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from handtools.core.hand.model import HandModel
from handtools.core.hand.joints import NUM_FACES, NUM_SHAPE, NUM_VERTICES
from handtools.core.learning.nets.efficientnet import EFFICIENTNET_SPECS, EfficientNetEncoder
from handtools.core.learning.nets.hourglass import StackedHourglass, integral_joints
from handtools.core.learning.nets.resnet import RESNET_SPECS, ResNetEncoder
from handtools.core.methods.s2hand.config import DEPTH_SPAN, INIT_ROT
from handtools.core.render.lighting import DEFAULT_LIGHT, LIGHT_DIM

NUM_PCA = 30
#: The code's mean texture colour (``texture_light_estimator.texture_mean``).
TEXTURE_MEAN = (200 / 256, 150 / 256, 150 / 256)
#: f_conv works on a 56 x 56 m_l (224 px input); other sizes are resized to it.
LOW_SIZE = 56
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ENCODERS = tuple(EFFICIENTNET_SPECS) + tuple(RESNET_SPECS)


class BatchNorm1dAny(nn.BatchNorm1d):
    """BatchNorm1d that uses its running statistics for a batch of one in training
    (the trainer's last batch may hold one sample). Same parameters and names."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] == 1:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        return super().forward(x)


class _ResNetLowHigh(nn.Module):
    """A ResNet trunk returning (layer1 output, layer4 output) like the EfficientNet encoder."""

    def __init__(self, arch: str):
        super().__init__()
        self.trunk = ResNetEncoder(arch)
        t = self.trunk
        self.low_channels = _stage_channels(t.layer1)
        self.out_channels = t.out_channels
        self.arch = arch

    def forward(self, images):
        t = self.trunk
        low = t.layer1(t.maxpool(t.relu(t.bn1(t.conv1(images)))))  # (B, 64|256, H/4, W/4)
        return low, t.layer4(t.layer3(t.layer2(low)))


def _stage_channels(stage: nn.Sequential) -> int:
    last = stage[-1]
    return (last.bn3 if hasattr(last, "bn3") else last.bn2).num_features


def _head(cin: int, hidden: tuple[int, ...], cout: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(cin, h), nn.ReLU(inplace=True)]
        cin = h
    layers.append(nn.Linear(cin, cout))
    return nn.Sequential(*layers)


class S2HandNet(nn.Module):
    """Image -> (theta, beta, s, R, T codes; texture; light).

    Args:
        encoder: one of :data:`ENCODERS`.
        image_size: crop side (pixels), recorded in the config.
        pool: ``max`` or ``avg`` pooling of m_h.
        texture: ``vertex`` (778 x 3) or ``face`` (1538 x 3).
        stacks: hourglasses of the optional 2D branch (§3.3 "Extra 2D Joint Estimation";
            the paper: 2); 0 builds none.
        hourglass_features: channels inside the hourglasses (Newell et al.: 256).

    ``forward(images, K, with_2d=True)``: images (B, 3, H, W) float in [0, 1], K (B, 3, 3)
    crop pixels. Returns a dict: ``theta`` (B, 30), ``beta`` (B, 10), ``scale`` (B, 1),
    ``rot`` (B, 3) radians, ``trans`` (B, 3) metres camera frame, ``texture`` (B, 778 or
    1538, 3) in (0, 1), ``light`` (B, 11); with a 2D branch (and ``with_2d``) also
    ``kp2d`` (B, 21, 2) crop pixels (last stack, integral regression) and ``kp2d_stacks``
    (B, stacks, 21, 2), every stack's estimate (intermediate supervision). The 2D branch
    has its own encoder (no shared weights) and is used only in training (§3.3).
    """

    def __init__(self, encoder: str = "efficientnet_b0", image_size: int = 224, pool: str = "max",
                 texture: str = "vertex", stacks: int = 0, hourglass_features: int = 256):
        super().__init__()
        if encoder not in ENCODERS:
            raise ValueError(f"unknown encoder {encoder!r} (one of {', '.join(ENCODERS)})")
        if pool not in ("max", "avg"):
            raise ValueError(f"pool must be max or avg, got {pool!r}")
        if texture not in ("vertex", "face"):
            raise ValueError(f"texture must be vertex or face, got {texture!r}")
        if stacks < 0:
            raise ValueError(f"stacks must be >= 0, got {stacks}")
        self.config = {"encoder": encoder, "image_size": int(image_size), "pool": pool, "texture": texture}
        if stacks:  # recorded only with a 2D branch: checkpoints without one keep their old config
            self.config.update(stacks=int(stacks), hourglass_features=int(hourglass_features))
        self.branch2d = StackedHourglass(stacks, hourglass_features) if stacks else None
        self.encoder = EfficientNetEncoder(encoder) if encoder in EFFICIENTNET_SPECS else _ResNetLowHigh(encoder)
        c_h, c_l = self.encoder.out_channels, self.encoder.low_channels
        # Table 2: f_base and the five geometry heads
        self.f_base = nn.Sequential(nn.Linear(c_h, 1024), BatchNorm1dAny(1024), nn.ReLU(inplace=True),
                                    nn.Linear(1024, 512), BatchNorm1dAny(512), nn.ReLU(inplace=True))
        self.f_pose = _head(512, (128,), NUM_PCA)
        self.f_shape = _head(512, (128,), NUM_SHAPE)
        self.f_trans = _head(512, (128, 32), 3)
        self.f_rot = _head(512, (128, 32), 3)
        self.f_scale = _head(512, (128, 32), 1)
        # Table 3: f_conv and the texture / light heads
        self.f_conv = nn.Sequential(
            nn.Conv2d(c_l, 48, 10, 4, 1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),  # (48, 6, 6)
            nn.Conv2d(48, 64, 3, 1, 0), nn.ReLU(inplace=True), nn.MaxPool2d(2, 2),  # (64, 2, 2)
        )
        n_tex = NUM_VERTICES if texture == "vertex" else NUM_FACES
        self.f_tex = _head(256, (64,), n_tex * 3)
        self.f_light = _head(256, (64,), LIGHT_DIM)
        for h in (self.f_pose, self.f_shape, self.f_trans, self.f_rot, self.f_scale, self.f_tex, self.f_light):
            nn.init.normal_(h[-1].weight, std=1e-3)  # start at the mean hand (the code: std 0.001)
            nn.init.zeros_(h[-1].bias)
        self.register_buffer("_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        logit = [math.log(c / (1 - c)) for c in TEXTURE_MEAN]
        self.register_buffer("_tex_logit", torch.tensor(logit), persistent=False)
        self.register_buffer("_light0", torch.tensor(DEFAULT_LIGHT), persistent=False)
        self.register_buffer("_rot0", torch.tensor(INIT_ROT), persistent=False)

    def forward(self, images: torch.Tensor, K: torch.Tensor, with_2d: bool = True) -> dict[str, torch.Tensor]:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
        B, _, H, W = images.shape
        if K.shape != (B, 3, 3):
            raise ValueError(f"K must be ({B}, 3, 3), got {tuple(K.shape)}")
        x_in = (images - self._mean) / self._std
        low, high = self.encoder(x_in)
        v = high.amax(dim=(2, 3)) if self.config["pool"] == "max" else high.mean(dim=(2, 3))  # (B, C_h)
        x = self.f_base(v)  # (B, 512)
        t = self.f_trans(x)  # (B, 3): du, dv (crop widths), log depth
        fx, cx, cy = K[:, 0, 0], K[:, 0, 2], K[:, 1, 2]
        z = fx / W * DEPTH_SPAN * torch.exp(t[:, 2])  # (B,)
        u = W / 2 + t[:, 0] * W
        vv = H / 2 + t[:, 1] * H
        trans = torch.stack([(u - cx) / fx * z, (vv - cy) / K[:, 1, 1] * z, z], dim=1)  # (B, 3), zero skew
        if low.shape[-1] != LOW_SIZE or low.shape[-2] != LOW_SIZE:
            low = F.interpolate(low, size=(LOW_SIZE, LOW_SIZE), mode="bilinear", align_corners=False)
        y = self.f_conv(low).flatten(1)  # (B, 256)
        tex = torch.sigmoid(self.f_tex(y).view(B, -1, 3) + self._tex_logit)  # (B, 778|1538, 3)
        out = {
            "theta": self.f_pose(x),
            "beta": self.f_shape(x),
            "scale": (1.0 + self.f_scale(x)).abs(),
            "rot": self._rot0 + self.f_rot(x),
            "trans": trans,
            "texture": tex,
            "light": self._light0 + self.f_light(y),
        }
        if self.branch2d is not None and with_2d:
            stacks = [integral_joints(h, (H, W)) for h in self.branch2d(x_in)]
            out["kp2d_stacks"] = torch.stack(stacks, dim=1)  # (B, S, 21, 2)
            out["kp2d"] = stacks[-1]
        return out


def build_s2hand(config: dict) -> S2HandNet:
    """The network of a checkpoint's ``meta["net"]``."""
    return S2HandNet(**config)


def decode(codes: dict, hand, is_left: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Camera-frame hand of the codes (§3.2: M = s M_0 R + T, J likewise).

    codes: ``theta`` (B, 30), ``beta`` (B, 10), ``scale`` (B, 1), ``rot`` (B, 3), ``trans`` (B, 3).
    hand: a :class:`~handtools.core.hand.model.HandModel` built with ``use_pca=True,
    num_pca_comps=30, flat_hand_mean=False`` (theta = 0 is MANO's mean hand).
    is_left: unused here: left hands are mirrored to right hands in the image (data and
    predictor), so the model always sees right hands.

    Returns ``verts`` (B, 778, 3), ``joints`` (B, 21, 3) metres, and ``pose`` (B, 48)
    MANO axis-angle (global orientation zero; the orientation is ``rot``).
    """
    if not getattr(hand, "use_pca", False) or hand.num_pca_comps != NUM_PCA:
        raise ValueError(f"the hand model must use {NUM_PCA} pose PCA components (HandModel(use_pca=True, num_pca_comps=30))")
    theta = codes["theta"]
    pose = torch.cat([theta.new_zeros(theta.shape[0], 3), theta], dim=1)  # (B, 33)
    out = hand(pose, codes["beta"], scale=codes["scale"], rot=codes["rot"], trans=codes["trans"])
    return {"verts": out.verts, "joints": out.joints, "pose": hand.full_pose(pose)}


def mano_hand(mano=None, device="cpu") -> HandModel:
    """The hand model S2HAND decodes with (30 PCA components, MANO's hand mean); ``mano``:
    a MANO file, else ``$HANDTOOLS_MANO``, else the bundled open hand model."""
    return HandModel.from_path(mano, device=device, use_pca=True, num_pca_comps=NUM_PCA, flat_hand_mean=False)
