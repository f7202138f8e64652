"""Stacked hourglass network (Newell, Yang, Deng, ECCV 2016) with integral pose regression
(Sun, Xiao, Wei, Liang, Wei, ECCV 2018): image -> per-joint heatmaps -> 2D joints.

The 2D keypoint estimator of S2HAND (§3.3, "Extra 2D Joint Estimation"): two stacks by
default. Layout as in Newell et al.: a stem (7x7 conv stride 2, residual, max pool,
residuals) brings the image to a quarter of its side; each stack is an hourglass of
``depth`` halvings (max pool down, nearest upsampling back to the skip's size, so any
input size works), a residual, a 1x1 conv, and a 1x1 heatmap head; between stacks the
features and heatmaps are mapped back and added (intermediate supervision). Residual
modules are the pre-activation bottlenecks of the paper (BN-ReLU-conv 1x1, 3x3, 1x1).

:func:`integral_joints` is the soft-argmax of Sun et al.: softmax over each heatmap, the
expected pixel position, differentiable.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Residual(nn.Module):
    """Pre-activation bottleneck residual module of Newell et al. (cin -> cout channels)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        mid = max(cout // 2, 1)
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, mid, 1)
        self.bn2, self.conv2 = nn.BatchNorm2d(mid), nn.Conv2d(mid, mid, 3, padding=1)
        self.bn3, self.conv3 = nn.BatchNorm2d(mid), nn.Conv2d(mid, cout, 1)
        self.skip = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(F.relu(self.bn1(x)))
        y = self.conv2(F.relu(self.bn2(y)))
        y = self.conv3(F.relu(self.bn3(y)))
        return y + self.skip(x)


class Hourglass(nn.Module):
    """One hourglass of ``depth`` halvings on ``features`` channels (shape preserving)."""

    def __init__(self, depth: int, features: int):
        super().__init__()
        self.up1 = Residual(features, features)
        self.low1 = Residual(features, features)
        self.low2 = Hourglass(depth - 1, features) if depth > 1 else Residual(features, features)
        self.low3 = Residual(features, features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = self.up1(x)
        low = self.low3(self.low2(self.low1(F.max_pool2d(x, 2, ceil_mode=True))))
        return up + F.interpolate(low, size=up.shape[-2:], mode="nearest")


def integral_joints(heatmaps: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """Integral pose regression (soft-argmax): heatmaps (B, J, h, w) logits -> (B, J, 2)
    (u, v) in pixels of an ``image_size = (H, W)`` image; heatmap cell (i, j) stands for
    the pixel position ((j + 0.5) W / w, (i + 0.5) H / h) (pixel i's centre at i + 0.5,
    as :func:`~handtools.core.render.common.project`)."""
    if heatmaps.ndim != 4:
        raise ValueError(f"heatmaps must be (B, J, h, w), got {tuple(heatmaps.shape)}")
    B, J, h, w = heatmaps.shape
    H, W = image_size
    p = torch.softmax(heatmaps.flatten(2).float(), dim=-1).view(B, J, h, w)
    xs = (torch.arange(w, device=heatmaps.device, dtype=p.dtype) + 0.5) * (W / w)
    ys = (torch.arange(h, device=heatmaps.device, dtype=p.dtype) + 0.5) * (H / h)
    u = (p.sum(2) * xs).sum(-1)  # (B, J)
    v = (p.sum(3) * ys).sum(-1)
    return torch.stack([u, v], dim=-1).to(heatmaps.dtype)


class StackedHourglass(nn.Module):
    """Image (B, 3, H, W), normalised by the caller -> a list of ``stacks`` heatmap tensors
    (B, joints, ceil(H/4), ceil(W/4)), one per stack (the last is the estimate).

    Args:
        stacks: number of hourglasses (S2HAND: 2).
        features: channels inside the hourglasses (Newell et al.: 256).
        joints: heatmaps per stack (21 hand joints).
        depth: halvings per hourglass (Newell et al.: 4).
    """

    def __init__(self, stacks: int = 2, features: int = 256, joints: int = 21, depth: int = 4):
        super().__init__()
        if stacks < 1 or features < 2 or depth < 1:
            raise ValueError(f"need stacks >= 1, features >= 2, depth >= 1; got {stacks}, {features}, {depth}")
        half, quarter = max(features // 2, 1), max(features // 4, 1)  # Newell et al.: 64, 128, 256
        self.stem = nn.Sequential(
            nn.Conv2d(3, quarter, 7, 2, 3), nn.BatchNorm2d(quarter), nn.ReLU(inplace=True),
            Residual(quarter, half), nn.MaxPool2d(2, ceil_mode=True), Residual(half, half), Residual(half, features),
        )
        self.hourglasses = nn.ModuleList([Hourglass(depth, features) for _ in range(stacks)])
        self.features = nn.ModuleList([
            nn.Sequential(Residual(features, features), nn.Conv2d(features, features, 1),
                          nn.BatchNorm2d(features), nn.ReLU(inplace=True)) for _ in range(stacks)])
        self.heads = nn.ModuleList([nn.Conv2d(features, joints, 1) for _ in range(stacks)])
        self.merge_features = nn.ModuleList([nn.Conv2d(features, features, 1) for _ in range(stacks - 1)])
        self.merge_heatmaps = nn.ModuleList([nn.Conv2d(joints, features, 1) for _ in range(stacks - 1)])
        self.stacks, self.joints = stacks, joints

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
        x = self.stem(images)
        out = []
        for i in range(self.stacks):
            f = self.features[i](self.hourglasses[i](x))
            heat = self.heads[i](f)
            out.append(heat)
            if i < self.stacks - 1:
                x = x + self.merge_features[i](f) + self.merge_heatmaps[i](heat)
        return out
