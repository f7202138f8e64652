"""EfficientNet-B0/B3 encoders (Tan & Le, ICML 2019) without the classifier, torchvision-compatible names.

S2HAND (Chen et al., CVPR 2021, §3.1 and supplementary §2) encodes the image with an
EfficientNet and reads two of its feature maps: the last one (``m_h``, pooled into
the geometry code) and an early, high-resolution one (``m_l``, 56x56x32 at 224 px,
for texture and light).

As with :mod:`handtools.core.learning.nets.resnet`, the blocks are written here
because the torchvision wheels this project can install are CUDA builds tied to one
torch (they fail to import next to the CPU build). The modules reproduce
``torchvision.models.efficientnet_b0/b3`` parameter for parameter: ``features.0``
(stem conv + BN), ``features.1..7`` (MBConv stages, each block's ``block.N`` holding
the expand conv, the depthwise conv, squeeze-excitation ``fc1``/``fc2`` and the
projection), ``features.8`` (the 1x1 head conv), so a torchvision state dict loads by
name and shape (:func:`load_efficientnet_weights`). The test checks the parameter
counts against torchvision's published ones (B0 5,288,548 and B3 12,233,232 with the
1000-class classifier).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

import torch
from torch import nn

from handtools.core.learning.nets.resnet import load_torchvision_state

#: torchvision's B0 stage table: (expand ratio, kernel, stride, in, out, layers).
_B0_STAGES = (
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
)
#: name -> (width multiplier, depth multiplier)
EFFICIENTNET_SPECS: dict[str, tuple[float, float]] = {
    "efficientnet_b0": (1.0, 1.0),
    "efficientnet_b3": (1.2, 1.4),
}
#: The feature stage whose output is S2HAND's ``m_l`` (stride 4: 56x56 at 224 px).
LOW_STAGE = 2


def _make_divisible(v: float, divisor: int = 8) -> int:
    """torchvision's channel rounding (to a multiple of 8, never below 90 % of ``v``)."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class ConvBNAct(nn.Sequential):
    """torchvision's ``Conv2dNormActivation``: ``0`` conv (no bias), ``1`` BN, ``2`` SiLU (optional)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True):
        layers = [nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
                  nn.BatchNorm2d(cout)]
        if act:
            layers.append(nn.SiLU(inplace=True))
        super().__init__(*layers)


class SqueezeExcitation(nn.Module):
    """torchvision's ``SqueezeExcitation`` with SiLU / sigmoid (``fc1``, ``fc2`` 1x1 convs with bias)."""

    def __init__(self, channels: int, squeeze: int):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.activation = nn.SiLU(inplace=True)
        self.scale_activation = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return x * s


class MBConv(nn.Module):
    """Inverted residual block with squeeze-excitation and stochastic depth (row mode)."""

    def __init__(self, expand: int, kernel: int, stride: int, cin: int, cout: int, drop: float):
        super().__init__()
        self.use_res = stride == 1 and cin == cout
        mid = _make_divisible(cin * expand)
        layers: list[nn.Module] = []
        if mid != cin:
            layers.append(ConvBNAct(cin, mid, 1))
        layers.append(ConvBNAct(mid, mid, kernel, stride, groups=mid))
        layers.append(SqueezeExcitation(mid, max(1, cin // 4)))
        layers.append(ConvBNAct(mid, cout, 1, act=False))
        self.block = nn.Sequential(*layers)
        self.drop = drop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        if not self.use_res:
            return y
        if self.training and self.drop > 0:  # stochastic depth, one draw per sample
            keep = 1.0 - self.drop
            mask = torch.empty(y.shape[0], 1, 1, 1, device=y.device, dtype=y.dtype).bernoulli_(keep)
            y = y * mask / keep
        return y + x


class EfficientNetEncoder(nn.Module):
    """EfficientNet trunk without pooling and classifier.

    Args:
        arch: ``efficientnet_b0`` or ``efficientnet_b3``.
        stochastic_depth: torchvision's 0.2 (the drop rate grows linearly over blocks).

    ``forward(images)``: (B, 3, H, W) normalised float -> ``(m_l, m_h)``: the output
    of stage ``LOW_STAGE`` (B, ``low_channels``, H/4, W/4) and the last feature map
    (B, ``out_channels``, H/32, W/32). B0: 24 and 1280 channels; B3: 32 and 1536
    (S2HAND's supplementary Tables 2-3 use B3's widths).
    """

    def __init__(self, arch: str = "efficientnet_b0", stochastic_depth: float = 0.2):
        super().__init__()
        if arch not in EFFICIENTNET_SPECS:
            raise ValueError(f"unknown encoder {arch!r}; expected one of {sorted(EFFICIENTNET_SPECS)}")
        self.arch = arch
        width, depth = EFFICIENTNET_SPECS[arch]
        stages = [(e, k, s, _make_divisible(ci * width), _make_divisible(co * width), int(math.ceil(n * depth)))
                  for e, k, s, ci, co, n in _B0_STAGES]
        total = sum(s[-1] for s in stages)
        layers: list[nn.Module] = [ConvBNAct(3, stages[0][3], 3, 2)]
        block_id = 0
        for e, k, s, ci, co, n in stages:
            stage = []
            for i in range(n):
                stage.append(MBConv(e, k, s if i == 0 else 1, ci if i == 0 else co, co,
                                    stochastic_depth * block_id / total))
                block_id += 1
            layers.append(nn.Sequential(*stage))
        last_in = stages[-1][4]
        self.out_channels = 4 * last_in
        layers.append(ConvBNAct(last_in, self.out_channels, 1))
        self.features = nn.Sequential(*layers)
        self.low_channels = stages[LOW_STAGE - 1][4]
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
        x = images
        low = None
        for i, f in enumerate(self.features):
            x = f(x)
            if i == LOW_STAGE:
                low = x  # (B, low_channels, H/4, W/4)
        return low, x  # (B, out_channels, H/32, W/32)


def load_efficientnet_weights(encoder: EfficientNetEncoder, weights: str | os.PathLike | Mapping) -> None:
    """Load a torchvision ``efficientnet_b0/b3`` state dict (``.pth`` path or mapping);
    ``classifier.*`` is ignored, a leading ``module.`` stripped. Raises ValueError naming
    the first missing, unexpected or mis-shaped keys."""
    load_torchvision_state(encoder, weights, "classifier.")
