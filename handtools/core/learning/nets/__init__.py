"""Networks: ResNet encoders, the image-to-lixel mesh regressor and the assembled hand-prior model."""

from handtools.core.learning.nets.lixel import LIXEL_STRIDE, LixelRegressor, soft_argmax_1d
from handtools.core.learning.nets.prior import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    HandPriorNet,
    regress_joints21,
    uvz_to_camera,
)
from handtools.core.learning.nets.resnet import RESNET_SPECS, BasicBlock, Bottleneck, ResNetEncoder, load_backbone_weights

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "HandPriorNet",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "LIXEL_STRIDE",
    "LixelRegressor",
    "RESNET_SPECS",
    "ResNetEncoder",
    "load_backbone_weights",
    "regress_joints21",
    "soft_argmax_1d",
    "uvz_to_camera",
]
