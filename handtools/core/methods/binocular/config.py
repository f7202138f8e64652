"""Paper defaults of self-supervised binocular transfer (Chen, Wang, Sun, Ma, ICCV 2021,
eq. 10 and supplementary §3). ``handtools selfsup-stereo`` reads its option defaults
from :data:`PAPER`; the choices the paper leaves open are explained in
``docs/selfsup-stereo.md`` and ``docs/selfsup-stereo-losses.md`` and measured by
``bench/bench_loss_deviations.py``."""

from __future__ import annotations

from dataclasses import dataclass, field

from handtools.core.losses.image import PHOTO_ALPHA

#: The paper's loss terms (eqs. 3-9), in the order of eq. 10.
LOSS_NAMES = ("photo", "edge", "laplacian", "mask", "chamfer", "normal")
#: Our addition for the monocular variant (``--z-head``): z head vs disparity depth.
DEPTH_LOSS = "depth"
#: Every term :class:`~handtools.core.methods.binocular.loss.StereoSelfSupLoss` knows.
ALL_LOSSES = LOSS_NAMES + (DEPTH_LOSS,)


@dataclass(frozen=True)
class BinocularConfig:
    """Optimisation and loss settings of ``selfsup-stereo``.

    epochs, batch_size, lr, milestones, gamma: Adam with a step schedule (supp. §3).
    loss_weights: eq. 10's weights (and ``depth`` for the monocular variant).
    alpha: SSIM weight of the photo-consistency loss (eq. 3; Monodepth's 0.85).
    mesh_unit: scale from metres to the unit of the mesh losses (eqs. 5, 6, 8;
        metres: 1). Measured: ``bench/bench_loss_deviations.py`` (gradient norms by unit).
    edge_reduction: reduction of eq. 5 over unique edges (the paper prints a sum).
    mask_reduction: reduction of eq. 7 over pixels: ``"sum"`` as the paper prints it
        (``||M - ~M||^2``), so at the paper's weight 0.1 the mask term's gradient is tens
        of times the photo term's at 64² (``bench/bench_loss_deviations.py``). ``"mean"``
        (the default until 2026-12-01) divides it by the crop's pixel count, which left
        the mask term with about 1% of photo's gradient: on the demo's data the adapted
        model's errors were then 7.5 / 12.5 / 2.9 mm higher absolute / root-relative /
        aligned over 3 seeds (docs/selfsup-stereo.md, "Mask term").
    depth_unit: scale from metres to the unit of the monocular ``depth`` term
        (``--z-head`` only; centimetres: 100).
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
    mask_reduction: str = "sum"
    depth_unit: float = 100.0


#: The paper's settings.
PAPER = BinocularConfig()
