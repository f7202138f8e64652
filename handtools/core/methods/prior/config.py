"""Paper defaults of hand-prior pre-training (Chen et al., ICCV 2021, supplementary §1;
losses and weights from I2L-MeshNet, Moon & Lee, ECCV 2020, §3.4). ``handtools pretrain``
reads its option defaults from :data:`PAPER`."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class PriorConfig:
    """Network and optimisation settings of ``pretrain``.

    encoder: ResNet name (the paper: ResNet-50). image_size: crop side, pixels (256).
    with_z: regress root-relative depth. epochs, batch_size, lr, milestones, gamma:
    Adam with a step schedule (lr x gamma after each milestone epoch).
    loss_weights: weight of each term of :data:`LOSS_NAMES` (I2L-MeshNet: normal 0.1).
    """

    encoder: str = "resnet50"
    image_size: int = 256
    with_z: bool = True
    epochs: int = 25
    batch_size: int = 32
    lr: float = 1e-5
    milestones: tuple[int, ...] = (17, 21)
    gamma: float = 0.1
    loss_weights: dict = field(default_factory=lambda: {"vertex": 1.0, "joint": 1.0, "edge": 1.0, "normal": 0.1})


#: The paper's settings.
PAPER = PriorConfig()
