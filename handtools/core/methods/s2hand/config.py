"""Paper defaults of S2HAND (Chen, Tu, Kang, Bao, Zhang, Zhe, Chen, Yuan, CVPR 2021).

``handtools selfsup-mono`` reads its option defaults from :data:`PAPER`; :data:`CPU`
is the small preset for a laptop CPU. Where the official code (TerenceCYJ/S2HAND)
differs from the paper, the paper is the default and the code's choice an option;
``docs/selfsup-mono.md`` lists every such place.

Loss terms (:data:`LOSS_NAMES`, each switchable with ``--no-<name>``)::

    loc      E_loc,  eq. 3   confidence-weighted SmoothL1, projected vs detected joints
    ori      E_ori,  eq. 4   bone directions
    pixel    E_pixel, eq. 6  photometric L1 (L2 over colour) inside the rendered silhouette
    ssim     E_SSIM, eq. 7
    shape    E_beta          ||beta||
    texture  E_C,  supp. eqs. 1-2
    scale    E_s,  supp. §1  (middle-finger proximal bone - 2.82 cm)^2
    angle    E_J,  supp. eqs. 3-4  joint-angle hinge
    kp2d     E_2d, eq. 10    the 2D branch (stacked hourglass) against the detections
    con      E_con, eq. 11   2D-3D consistency: projected joints vs the 2D branch's

Schedule (§4.2): with the 2D branch, stage 1 trains the 3D branch with E_3d and the 2D
branch with E_2d (separate networks, separate losses: one run of both is the paper's
two separate trainings on the same batches), ``epochs`` epochs at ``lr`` decayed by
``gamma`` at ``milestones``; stage 2 fine-tunes both with E (E_con added) for
``finetune_epochs`` at ``finetune_lr``, a fresh Adam. Without the 2D branch (``stacks =
0``) stage 2 continues E_3d at the fine-tuning rate (the same schedule, so Table 4's
rows differ only in their terms).

Weights (:attr:`S2HandConfig.weights`) are the paper's factors (supp. §2) by the name
of their subscript; the weight of each term is their product along eqs. 1, 2, 5, 8, 9
(:func:`term_weights`), so ``--weight ori=50`` changes w_ori exactly as the paper's.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

#: The loss terms, in the order of eqs. 1-11.
LOSS_NAMES = ("loc", "ori", "pixel", "ssim", "shape", "texture", "scale", "angle", "kp2d", "con")
#: Terms that need the 2D branch (stacked hourglass, S2HandNet(stacks > 0)).
BRANCH_2D_LOSSES = ("kp2d", "con")

#: Supplementary §2: w_3d = 1, w_2d = 0.001, w_con = 0.0002, w_geo = 0.001, w_photo = 0.005,
#: w_regu = 0.01, w_ori = 100, w_SSIM = 0.2, w_C = 0.5, w_s = 10000, w_J = 10.
PAPER_WEIGHTS = {
    "3d": 1.0, "2d": 0.001, "con": 0.0002, "geo": 0.001, "photo": 0.005, "regu": 0.01,
    "ori": 100.0, "ssim": 0.2, "texture": 0.5, "scale": 10000.0, "angle": 10.0,
}

#: Mean length of the middle finger's proximal phalanx (bone 9-10), metres (supp. §1: 2.82 cm).
MIDDLE_PROXIMAL_LENGTH = 0.0282
#: The paper's crop side (pixels); keypoint losses are measured in pixels of this size.
PAPER_IMAGE_SIZE = 224
#: Initial hand orientation (axis-angle, radians): the back of the hand towards the camera,
#: fingers up. The model frame has fingers along -x and the back along +y
#: (core/hand/joint_limits.py); the rotation maps +x to +y (image down, so the fingers
#: point up), +y to -z (towards the camera) and +z to -x.
INIT_ROT = (-1.2091996, -1.2091996, 1.2091996)
#: Depth parametrisation: an object ``DEPTH_SPAN`` metres wide spans the crop width at
#: the head's zero output (z = fx / W * DEPTH_SPAN * exp(d)).
DEPTH_SPAN = 0.2


def term_weights(w: dict) -> dict:
    """Weight of each term of :data:`LOSS_NAMES` from the paper's factors (eqs. 1, 2, 5, 8, 9)."""
    g = w["3d"] * w["geo"]
    p = w["3d"] * w["photo"]
    r = w["3d"] * w["regu"]
    return {
        "loc": g, "ori": g * w["ori"], "pixel": p, "ssim": p * w["ssim"], "shape": r,
        "texture": r * w["texture"], "scale": r * w["scale"], "angle": r * w["angle"],
        "kp2d": w["2d"], "con": w["con"],
    }


@dataclass(frozen=True)
class S2HandConfig:
    """Network, loss and schedule settings of ``selfsup-mono``.

    encoder: ``efficientnet_b0`` (paper §3.1), ``efficientnet_b3`` (the code's) or a ResNet.
    image_size: crop side in pixels (224).
    pool: pooling of the last feature map into v_h: ``max`` (supp. §2) or ``avg`` (the code).
    texture: ``vertex`` (per-vertex colour, paper §3.2) or ``face`` (the code's 1538 x 3).
    weights: the paper's factors (:data:`PAPER_WEIGHTS`).
    losses: terms in use (Table 4's ablation switches them off).
    con_sum: per-sample weight of eq. 6 / supp. eq. 1: ``sum`` of the 21 confidences
        (paper) or ``mean`` (the code's ``texture_con``).
    loc_form: ``paper`` (SmoothL1 per coordinate, beta 1 px, mean over 21 joints) or
        ``code`` (Huber on the joint distance with delta 5 px, weighted by con^2 and
        the code's per-joint weights, normalised by their sum).
    shape_form: ``norm`` (||beta||, paper) or ``mse`` (the code's mean of squares).
    stacks: hourglasses of the 2D branch (2, §3.3 / §4.2); 0: no 2D branch (then the
        kp2d and con terms are off).
    hourglass_features: channels inside the hourglasses (256, Newell et al.).
    epochs, batch_size, lr, milestones, gamma: stage 1 of §4.2, the branches trained
        separately (90 epochs, lr 1e-3 halved every 30, Adam, batch 64).
    finetune_*: stage 2, joint fine-tuning with E (60 epochs, lr 2.5e-4, /3 every 20);
        0 epochs: no stage 2.
    """

    encoder: str = "efficientnet_b0"
    image_size: int = PAPER_IMAGE_SIZE
    pool: str = "max"
    texture: str = "vertex"
    weights: dict = field(default_factory=lambda: dict(PAPER_WEIGHTS))
    losses: tuple[str, ...] = LOSS_NAMES
    con_sum: str = "sum"
    loc_form: str = "paper"
    shape_form: str = "norm"
    stacks: int = 2
    hourglass_features: int = 256
    epochs: int = 90
    batch_size: int = 64
    lr: float = 1e-3
    milestones: tuple[int, ...] = (30, 60)
    gamma: float = 0.5
    finetune_epochs: int = 60
    finetune_lr: float = 2.5e-4
    finetune_milestones: tuple[int, ...] = (20, 40)
    finetune_gamma: float = 1.0 / 3.0


#: The paper's settings: both branches, 90 + 60 epochs.
PAPER = S2HandConfig()
#: A small preset for a CPU: ResNet-18 at 64 px, a 2-stack hourglass of 32 channels,
#: 20 + 10 epochs.
CPU = replace(PAPER, encoder="resnet18", image_size=64, hourglass_features=32, epochs=20, batch_size=16,
              milestones=(15,), finetune_epochs=10, finetune_milestones=(5,))


def stage_losses(losses, stacks: int, stage: int) -> tuple[str, ...]:
    """Terms of a schedule stage: without a 2D branch no kp2d / con; stage 1 never con
    (the branches train separately); stage 2 all of ``losses``."""
    out = tuple(n for n in losses if stacks or n not in BRANCH_2D_LOSSES)
    return tuple(n for n in out if n != "con") if stage == 1 else out
PRESETS = {"paper": PAPER, "cpu": CPU}
