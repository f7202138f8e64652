"""Paper defaults of DeepHandMesh (Moon, Shiratori, Lee, ECCV 2020, §4-7 and supplementary
§12-13) and a CPU preset. ``handtools personalize`` reads its option defaults from these.

Where the official code (facebookresearch/DeepHandMesh) differs from the paper, the paper
is the default and the code's choice is a value of the same field (docs/personalize.md
lists them): ``skeleton_hidden`` 256 (paper) / 64 (code); ``penet_reduction`` "sum" (eq. 2-4)
/ "mean" (code); ``penet_thumb`` True (paper: every fingertip) / False (code skips the thumb);
``depth_reduction`` "masked" (mean over the pixels of δ_c) / "all" (code: masked values
averaged over every pixel); ``lap_reduction`` "mean" (1/V) / "sum" (code: per-sample sum).
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class DeepHandMeshConfig:
    """Model, loss and optimisation settings of ``personalize``.

    Model (§5.1, supp. §13): id_code_dim N_I (32); hidden: width of the two-layer decoders of
    ΔM_β and ΔM_θ (256); skeleton_hidden: width of ΔS_β's decoder (256; code 64);
    pose_corrective: "mlp" (paper: two FC layers from θ), "linear" (MANO-style, linear in
    the joints' R - I: exported to posedirs exactly) or "none" (the base model's own
    correctives only: the shape-only baseline); skeleton_corrective (ΔS_β),
    identity_corrective (ΔM_β), skin_corrective (ΔW_β, off in the main paper);
    pose_dof: "paper28" (28 DoF: global 3 + MCP 3 + PIP 1 + DIP 1 per finger, thumb CMC 3 +
    MCP 1 + IP 1) or "full" (MANO's 48 axis-angle numbers); init_std: decoder weight init σ.

    Losses (§6): spheres_per_bone K (10); lambda_nr λ_nr (5); lambda_lap λ_lap (5);
    w_pose, w_depth, w_penet (1); lap_target "mesh" (the posed mesh, paper) or "offsets"
    (the identity corrective ΔM_β); reductions see the module docstring. w_l2: weight of
    the L2 regulariser on ΔS_β and ΔM_β (mm², supplementary §15: used for the paper's
    792-vertex model, weight not given; 0 in the main paper); w_l2_pose: the same on ΔM_θ
    (None: w_l2). close_wrist: L_depth renders the mesh with its wrist opening closed (as
    ``synth`` draws depth; False: the open mesh).
    Losses are in millimetres.

    Optimisation (§7): lr 1e-4 (Adam), epochs 35, milestones (30, 32) x gamma 0.1,
    batch_size 32, render_views C_out (6), depth_size (256 px square crops around the hand).
    pose_lr: learning rate of per-frame pose variables (``--fit-poses`` only); steps: optimiser
    steps of ``--fit-poses`` (None: derived from epochs).
    """

    id_code_dim: int = 32
    hidden: int = 256
    skeleton_hidden: int = 256
    pose_corrective: str = "mlp"
    skeleton_corrective: bool = True
    identity_corrective: bool = True
    skin_corrective: bool = False
    pose_dof: str = "paper28"
    init_std: float = 0.01

    spheres_per_bone: int = 10
    lambda_nr: float = 5.0
    lambda_lap: float = 5.0
    w_pose: float = 1.0
    w_depth: float = 1.0
    w_penet: float = 1.0
    lap_target: str = "mesh"
    penet_reduction: str = "sum"
    penet_thumb: bool = True
    depth_reduction: str = "masked"
    lap_reduction: str = "mean"
    w_l2: float = 0.0
    w_l2_pose: float | None = None
    close_wrist: bool = True

    encoder: str = "resnet50"
    image_size: int = 256
    lr: float = 1e-4
    epochs: int = 35
    milestones: tuple[int, ...] = (30, 32)
    gamma: float = 0.1
    batch_size: int = 32
    render_views: int = 6
    depth_size: int = 256
    pose_lr: float = 1e-2
    steps: int | None = None

    def lr_decay(self, step: int, steps: int) -> float:
        """The factor on the learning rates at ``step`` of ``steps``: ``gamma`` per milestone
        passed (milestones below 1 are fractions of ``steps``)."""
        marks = (int(m * steps) if m < 1 else int(m) for m in self.milestones)
        return self.gamma ** sum(step >= m for m in marks)

    def __post_init__(self):
        for name, value, allowed in (("pose_corrective", self.pose_corrective, ("mlp", "linear", "none")),
                                     ("pose_dof", self.pose_dof, ("paper28", "full")),
                                     ("lap_target", self.lap_target, ("mesh", "offsets")),
                                     ("penet_reduction", self.penet_reduction, ("sum", "mean")),
                                     ("depth_reduction", self.depth_reduction, ("masked", "all")),
                                     ("lap_reduction", self.lap_reduction, ("mean", "sum"))):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


#: The paper's settings (GPU-scale, image encoder).
PAPER = DeepHandMeshConfig()

#: The official code's choices where they differ from the paper.
CODE = replace(PAPER, skeleton_hidden=64, penet_reduction="mean", penet_thumb=False,
               depth_reduction="all", lap_reduction="sum", batch_size=8)

#: One subject on a CPU in minutes (``--fit-poses``): per-frame pose variables instead of
#: the image encoder, the MANO-resolution L2 regulariser of supplementary §15 (without it
#: the zero pose drifts: per-frame poses absorb rotated bones and a bent template), the
#: Laplacian on the identity corrective instead of the posed mesh (on 778 vertices, in mm,
#: λ_lap = 5 on the posed mesh smooths the hand itself: its Laplacian energy fell 8x in
#: 100 steps and the template error grew), step decay of every learning rate, small depth
#: crops, a linear pose corrective (exported exactly) held to its job by a stronger L2
#: (w_l2_pose = 1: 24 training poses under-determine its 135 x 2334 coefficients, and at
#: 0.01 it held a 2.3 mm constant offset, more than ΔM_β's 1.1 mm), and a learning rate for
#: a thousand steps instead of the paper's ~10^5.
CPU = replace(PAPER, w_l2=0.01, w_l2_pose=1.0, lap_target="offsets", pose_corrective="linear", pose_dof="full", lr=3e-3,
              render_views=4, depth_size=48, batch_size=16, steps=1000, milestones=(0.6, 0.85), pose_lr=1e-2)

PRESETS = {"paper": PAPER, "code": CODE, "cpu": CPU}
