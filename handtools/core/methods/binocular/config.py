"""Paper defaults of self-supervised binocular transfer (Chen, Wang, Sun, Ma, ICCV 2021,
eq. 10 and supplementary §3). ``handtools selfsup-stereo`` reads its option defaults
from :data:`PAPER`; the choices the paper leaves open are explained and measured in
``docs/selfsup-stereo.md``."""

from __future__ import annotations

from dataclasses import dataclass, field

from handtools.core.losses.image import PHOTO_ALPHA

#: The paper's loss terms (eqs. 3-9), in the order of eq. 10.
LOSS_NAMES = ("photo", "edge", "laplacian", "mask", "chamfer", "normal")
#: Our addition for the monocular variant (``--z-head``): z head vs disparity depth.
DEPTH_LOSS = "depth"


@dataclass(frozen=True)
class BinocularConfig:
    """Optimisation and loss settings of ``selfsup-stereo``.

    epochs, batch_size, lr, milestones, gamma: Adam with a step schedule (supp. §3).
    loss_weights: eq. 10's weights (and ``depth`` for the monocular variant).
    alpha: SSIM weight of the photo-consistency loss (eq. 3; Monodepth's 0.85).
    mesh_unit: scale from metres to the unit of the mesh losses (metres: 1).
    edge_reduction: reduction of eq. 5 over unique edges (the paper prints a sum).
    """

    epochs: int = 13
    batch_size: int = 4
    lr: float = 1e-5
    milestones: tuple[int, ...] = (8, 10)
    gamma: float = 0.1
    loss_weights: dict = field(default_factory=lambda: {
        "photo": 100.0, "edge": 1.0, "laplacian": 10.0, "mask": 0.1, "chamfer": 0.001, "normal": 0.001,
        DEPTH_LOSS: 1.0})
    alpha: float = PHOTO_ALPHA
    mesh_unit: float = 1.0
    edge_reduction: str = "sum"


#: The paper's settings.
PAPER = BinocularConfig()
