"""ResNet encoders (He et al., CVPR 2016) without the classifier, torchvision-compatible names.

The binocular hand-prior model (Chen et al., ICCV 2021, supplementary §1) uses
ResNet-50 with its fully connected layer removed as the encoder. Users bring
their own ImageNet weights as a torchvision ``resnet*`` state dict (``.pth``);
:func:`load_backbone_weights` loads them, ignoring ``fc.*``.

Why the blocks are written here rather than imported from torchvision: the
torchvision wheels available to this project are CUDA builds tied to a specific
torch, so torchvision is not a dependency. The modules below reproduce
torchvision's ResNet v1.5 layout parameter for parameter (stride on the 3×3
convolution of a Bottleneck; ``conv1``, ``bn1``, ``layer1..4``,
``layerN.i.conv1/bn1/...``, ``layerN.i.downsample.0/1``), so a torchvision state
dict loads with identical names and shapes. The tests check the names and
shapes against the known architecture, and against torchvision when it imports.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch
from torch import nn

#: Architecture of each encoder: (block type, blocks per stage).
RESNET_SPECS: dict[str, tuple[str, tuple[int, int, int, int]]] = {
    # ResNet-10 (one basic block per stage; not a torchvision model, so no ImageNet weights load
    # into it): the encoder of the prior shipped in the package, small enough to ship (<20 MB in
    # float16) and twice as fast as ResNet-18 on a CPU.
    "resnet10": ("basic", (1, 1, 1, 1)),
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
    "resnet101": ("bottleneck", (3, 4, 23, 3)),
    "resnet152": ("bottleneck", (3, 8, 36, 3)),
}


def _conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv1x1(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with a residual connection (ResNet-18/34)."""

    expansion = 1

    def __init__(self, in_ch: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = _conv3x3(in_ch, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1×1 → 3×3 (strided, v1.5) → 1×1 ×4 convolutions with a residual (ResNet-50+)."""

    expansion = 4

    def __init__(self, in_ch: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = _conv1x1(in_ch, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNetEncoder(nn.Module):
    """ResNet trunk without average pooling and classifier.

    Args:
        arch: one of ``RESNET_SPECS`` (``"resnet18"``, ``"resnet34"``, ``"resnet50"``,
            ``"resnet101"``, ``"resnet152"``).
        zero_init_residual: start each residual branch's last BN at zero (as torchvision's option).

    ``forward(images)``: ``images`` (B, 3, H, W) float, already normalised; returns the
    last feature map (B, C, ceil(H/32), ceil(W/32)) with ``C = out_channels``
    (512 for ResNet-18/34, 2048 for ResNet-50/101/152).
    """

    def __init__(self, arch: str = "resnet50", zero_init_residual: bool = False):
        super().__init__()
        if arch not in RESNET_SPECS:
            raise ValueError(f"unknown encoder {arch!r}; expected one of {sorted(RESNET_SPECS)}")
        kind, layers = RESNET_SPECS[arch]
        block = BasicBlock if kind == "basic" else Bottleneck
        self.arch = arch
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self._in_ch = 64
        self.layer1 = self._make_stage(block, 64, layers[0], stride=1)
        self.layer2 = self._make_stage(block, 128, layers[1], stride=2)
        self.layer3 = self._make_stage(block, 256, layers[2], stride=2)
        self.layer4 = self._make_stage(block, 512, layers[3], stride=2)
        self.out_channels = 512 * block.expansion
        del self._in_ch

        # Initialisation as torchvision (used when no ImageNet weights are loaded).
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.zeros_(m.bn3.weight)
                elif isinstance(m, BasicBlock):
                    nn.init.zeros_(m.bn2.weight)

    def _make_stage(self, block: type[BasicBlock] | type[Bottleneck], planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self._in_ch != planes * block.expansion:
            downsample = nn.Sequential(
                _conv1x1(self._in_ch, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        stage = [block(self._in_ch, planes, stride, downsample)]
        self._in_ch = planes * block.expansion
        stage += [block(self._in_ch, planes) for _ in range(1, blocks)]
        return nn.Sequential(*stage)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
        x = self.maxpool(self.relu(self.bn1(self.conv1(images))))  # (B, 64, H/4, W/4)
        x = self.layer1(x)  # (B, 64|256, H/4, W/4)
        x = self.layer2(x)  # (B, 128|512, H/8, W/8)
        x = self.layer3(x)  # (B, 256|1024, H/16, W/16)
        return self.layer4(x)  # (B, 512|2048, H/32, W/32)


def _find_encoder(model: nn.Module) -> ResNetEncoder:
    if isinstance(model, ResNetEncoder):
        return model
    enc = getattr(model, "encoder", None)
    if isinstance(enc, ResNetEncoder):
        return enc
    raise ValueError(
        f"load_backbone_weights needs a ResNetEncoder or a model with an `.encoder` ResNetEncoder, "
        f"got {type(model).__name__}"
    )


def _first(keys: list[str], n: int = 5) -> str:
    more = f" (and {len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def _load_tensors(source: str):
    """``torch.load(source, weights_only=True)`` with one-line errors: torch's own message
    for a file holding anything but tensors advises ``weights_only=False`` (running the
    file's code), which must never be passed on."""
    if not os.path.isfile(source):
        raise ValueError(f"{source}: no such weights file")
    try:
        return torch.load(source, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises UnpicklingError, RuntimeError, EOFError ...
        if isinstance(exc, OSError) and not isinstance(exc, EOFError):
            raise ValueError(f"{source}: cannot read ({exc.strerror or type(exc).__name__})") from None
        hint = ""
        if type(exc).__name__ == "UnpicklingError" and "GLOBAL" in str(exc):
            hint = "; it holds Python objects besides tensors (save only the state dict: torch.save(model.state_dict(), f))"
        raise ValueError(f"{source}: not a file of tensors torch can load safely{hint}") from None


def load_backbone_weights(
    model: nn.Module, weights: str | os.PathLike | Mapping[str, torch.Tensor]
) -> ResNetEncoder:
    """Load a torchvision ``resnet*`` state dict (e.g. ImageNet weights) into an encoder.

    Args:
        model: a :class:`ResNetEncoder`, or a model whose ``.encoder`` is one
            (e.g. :class:`handtools.core.learning.nets.prior.HandPriorNet`).
        weights: path to a ``.pth`` file holding a torchvision state dict (read with
            ``torch.load(..., weights_only=True)``, never downloaded), or the state dict itself.

    ``fc.*`` (the classifier) is ignored, a leading ``module.`` (DataParallel) is
    stripped, and ``*.num_batches_tracked`` may be absent (old torchvision files lack
    it; it is then set to 0). Every other key must match by name and shape.

    Returns:
        The encoder that was loaded (tensors copied onto its device and dtype).

    Raises:
        ValueError: naming the first missing, unexpected or mis-shaped keys.
    """
    return load_torchvision_state(_find_encoder(model), weights, "fc.")


def load_torchvision_state(encoder: nn.Module, weights: str | os.PathLike | Mapping[str, torch.Tensor],
                           head_prefix: str) -> nn.Module:
    """Load a torchvision classification state dict into ``encoder`` (which has an ``arch`` name).

    The classifier (keys starting with ``head_prefix``, e.g. ``"fc."`` or ``"classifier."``) is
    ignored, a leading ``module.`` stripped, absent ``*.num_batches_tracked`` set to 0; every
    other key must match by name and shape. Files are read by :func:`_load_tensors`.

    Raises:
        ValueError: naming the first missing, unexpected or mis-shaped keys, or the unreadable file.
    """
    if isinstance(weights, Mapping):
        state = dict(weights)
        source = "state dict"
    else:
        source = os.fspath(weights)
        state = _load_tensors(source)
        if not isinstance(state, Mapping):
            raise ValueError(f"{source}: expected a state dict (mapping of names to tensors), got {type(state).__name__}")
        state = dict(state)
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.startswith(head_prefix)}

    own = encoder.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys: {_first(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_first(unexpected)}")
        raise ValueError(
            f"{source} does not match a torchvision {encoder.arch} ({'; '.join(parts)}); "
            f"is it a state dict of torchvision.models.{encoder.arch}?"
        )
    wrong = [
        f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}"
        for k, v in own.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if wrong:
        raise ValueError(f"{source} does not match a torchvision {encoder.arch}: shape mismatch {_first(wrong, 3)}")
    for k, v in own.items():
        if k not in state:  # num_batches_tracked absent in old files
            state[k] = torch.zeros_like(v)
    encoder.load_state_dict(state, strict=True)
    return encoder
