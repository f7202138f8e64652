"""The DeepHandMesh decoder on a MANO-format base model (Moon et al., ECCV 2020, §5).

:class:`PersonalHandModel` holds the base hand model (template M̄, skeleton S from the
joint regressor, skinning weights W, MANO's own pose correctives and shape space) as
buffers and learns, from a fixed identity code β ~ N(0, I_32):

* ΔS_β (J x 3): skeleton corrective, two FC layers (§5.1), added to the bone vectors S;
* ΔM_β (V x 3): identity-dependent per-vertex corrective, two FC layers;
* ΔM_θ (V x 3): pose-dependent per-vertex corrective from the pose (gradient not passed to
  θ, §5.1): two FC layers (``pose_corrective="mlp"``) or linear in MANO's pose feature
  R - I (``"linear"``, exported to ``posedirs`` exactly);
* ΔW_β (V x J, optional, supp. §13): skinning-weight corrective on W's support, clamped
  and renormalised.

Then eq. 1 (LBS) with smplx's kinematics (``smplx.lbs.batch_rigid_transform``, the one
:class:`handtools.core.hand.model.HandModel` runs), so an exported model reproduces it.
The β-only baseline of the paper's Table 1 is the same class with every corrective off
(``pose_corrective="none"``) and ``shape_space=True``: only MANO's 10 shape coefficients are learnt.

Units: metres inside; the decoders output millimetres (scaled by 1e-3), so the paper's
initialisation (σ = 0.01) and learning rate act on millimetre-sized numbers as in the paper.
"""

from __future__ import annotations

import numpy as np
import torch
from smplx.lbs import batch_rigid_transform, batch_rodrigues
from torch import Tensor, nn

from handtools.core.hand.joints import FINGERTIP_VERTICES, MANO_PARENTS, MANO_TO_FREIHAND, NUM_MANO_JOINTS, NUM_SHAPE
from handtools.core.methods.deephandmesh.config import DeepHandMeshConfig

MM = 1e-3


def _mlp(n_in: int, hidden: int, n_out: int, std: float) -> nn.Sequential:
    """Two fully-connected layers with a ReLU between (§5.1), weights N(0, std), zero bias (§7)."""
    net = nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, n_out))
    for m in net:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=std)
            nn.init.zeros_(m.bias)
    return net


def dof_basis(template: np.ndarray, j_regressor: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(28, 48) map from the paper's 28 DoF to MANO's axis-angle pose (``pose48 = dof @ B``).

    Global rotation 3; per finger MCP 3, PIP 1, DIP 1; thumb CMC 3, MCP 1, IP 1 (§4.1: the
    enabled DoF, others zero). A 1-DoF joint bends about the axis perpendicular to its bone
    and to the palm normal, found from the rest template (axis-angle about a fixed axis is
    the Euler angle about it); 3-DoF joints use axis-angle.
    """
    J = j_regressor @ template  # (16, 3)
    # palm normal: across the knuckles (index1 - little1) x along the hand (wrist -> middle1)
    across, along = J[1] - J[7], J[4] - J[0]
    normal = np.cross(across, along)
    normal /= np.linalg.norm(normal)
    rows = [np.eye(48)[k] for k in range(3)]
    tips = dict(zip((15, 3, 6, 12, 9), FINGERTIP_VERTICES))
    for chain in ((1, 2, 3), (4, 5, 6), (10, 11, 12), (7, 8, 9), (13, 14, 15)):
        for k, j in enumerate(chain):
            if k == 0:
                rows += [np.eye(48)[3 * j + c] for c in range(3)]
                continue
            end = J[chain[k + 1]] if k + 1 < len(chain) else template[tips[j]]
            bone = end - J[j]
            axis = np.cross(bone, normal)
            axis /= np.linalg.norm(axis)
            r = np.zeros(48)
            r[3 * j:3 * j + 3] = axis
            rows.append(r)
    basis = np.stack(rows)
    assert basis.shape == (28, 48)
    return basis


class PersonalHandModel(nn.Module):
    """DeepHandMesh's refined hand model over a MANO-format base (see the module docstring).

    Args:
        arrays: the base model (``mano_io.load_mano`` dict).
        cfg: :class:`DeepHandMeshConfig` (decoders, which correctives, pose DoF).
        shape_space: learn MANO's 10 shape coefficients (the β-only baseline).
        seed: seed of the identity code β (fixed, not learnt).
    """

    def __init__(self, arrays: dict[str, np.ndarray], cfg: DeepHandMeshConfig, shape_space: bool = False,
                 seed: int = 0):
        super().__init__()
        self.cfg = cfg
        f32 = lambda a: torch.as_tensor(np.asarray(a, np.float64), dtype=torch.float32)  # noqa: E731
        V = np.asarray(arrays["v_template"], np.float64)
        nv = V.shape[0]
        self.num_verts = nv
        self.register_buffer("v_template", f32(V))  # (V, 3)
        self.register_buffer("shapedirs", f32(np.asarray(arrays["shapedirs"])[:, :, :NUM_SHAPE]))  # (V, 3, 10)
        self.register_buffer("posedirs", f32(np.asarray(arrays["posedirs"]).reshape(nv * 3, -1).T))  # (135, 3V)
        self.register_buffer("J_regressor", f32(arrays["J_regressor"]))  # (16, V)
        self.register_buffer("weights", f32(arrays["weights"]))  # (V, 16)
        self.register_buffer("faces", torch.as_tensor(np.asarray(arrays["f"], np.int64)))  # (F, 3)
        self.register_buffer("parents", torch.as_tensor(MANO_PARENTS, dtype=torch.long).clamp_min(-1))
        self.register_buffer("_tips", torch.tensor(FINGERTIP_VERTICES))
        self.register_buffer("_to_freihand", torch.tensor(MANO_TO_FREIHAND))
        self.register_buffer("dof_basis", f32(dof_basis(V, np.asarray(arrays["J_regressor"]),
                                                        np.asarray(arrays["weights"]))))  # (28, 48)
        gen = torch.Generator().manual_seed(seed)
        self.register_buffer("id_code", torch.randn(cfg.id_code_dim, generator=gen))  # β (§5.1), fixed
        torch.manual_seed(seed)
        nj = NUM_MANO_JOINTS
        self.skeleton_dec = _mlp(cfg.id_code_dim, cfg.skeleton_hidden, nj * 3, cfg.init_std) \
            if cfg.skeleton_corrective else None
        self.identity_dec = _mlp(cfg.id_code_dim, cfg.hidden, nv * 3, cfg.init_std) \
            if cfg.identity_corrective else None
        self.pose_dec: nn.Module | None = None
        self.pose_linear: nn.Parameter | None = None
        if cfg.pose_corrective == "mlp":
            n_in = 25 if cfg.pose_dof == "paper28" else 45  # the articulation (global rotation is alignment)
            self.pose_dec = _mlp(n_in, cfg.hidden, nv * 3, cfg.init_std)
        elif cfg.pose_corrective == "linear":  # linear in R - I, millimetres per unit
            self.pose_linear = nn.Parameter(torch.zeros(9 * (nj - 1), nv * 3))
        self.skin_dec = _mlp(cfg.id_code_dim, cfg.hidden, nv * nj, cfg.init_std) if cfg.skin_corrective else None
        self.betas = nn.Parameter(torch.zeros(NUM_SHAPE)) if shape_space else None

    # ------------------------------------------------------------------ pose
    @property
    def pose_dim(self) -> int:
        """Width of the pose input: 28 (paper DoF) or 48 (MANO axis-angle)."""
        return 28 if self.cfg.pose_dof == "paper28" else 48

    def axis_angle(self, pose: Tensor) -> Tensor:
        """(B, pose_dim) -> (B, 48) MANO axis-angle (global 3 + 15 joints), radians."""
        if pose.ndim != 2 or pose.shape[1] != self.pose_dim:
            raise ValueError(f"pose must be (B, {self.pose_dim}), got {tuple(pose.shape)}")
        return pose @ self.dof_basis if self.pose_dim == 28 else pose

    # ------------------------------------------------------------------ identity
    def identity_offsets(self) -> Tensor:
        """ΔM_β (V, 3) metres (zeros when off); with ``shape_space`` MANO's shapedirs @ β."""
        d = torch.zeros_like(self.v_template)
        if self.identity_dec is not None:
            d = d + self.identity_dec(self.id_code).view(-1, 3) * MM
        if self.betas is not None:
            d = d + torch.einsum("vck,k->vc", self.shapedirs, self.betas)
        return d

    def rest_template(self) -> Tensor:
        """M̄ + ΔM_β: (V, 3) zero-pose template without pose correctives, metres."""
        return self.v_template + self.identity_offsets()

    def rest_joints(self) -> Tensor:
        """S* as joint positions (16, 3), metres: the base skeleton (regressor on the base
        template, or on the shaped template for the β baseline) plus ΔS_β on each bone."""
        base = self.v_template if self.betas is None else self.rest_template()
        J = self.J_regressor @ base  # (16, 3)
        if self.skeleton_dec is None:
            return J
        dS = self.skeleton_offsets()  # (16, 3) bone-vector correctives
        out = [J[0] + dS[0]]
        for j in range(1, J.shape[0]):  # S*_j = S_j + ΔS_j, S_j = J_j - J_p(j), accumulated root to tip
            p = MANO_PARENTS[j]
            out.append(out[p] + (J[j] - J[p]) + dS[j])
        return torch.stack(out)

    def skin_weights(self) -> Tensor:
        """W* (V, 16): W, or with ΔW_β (supp. §13) clamped at 0 on W's support and renormalised."""
        if self.skin_dec is None:
            return self.weights
        dW = self.skin_dec(self.id_code).view(self.weights.shape) * (self.weights > 0)
        w = (self.weights + dW).clamp_min(0)
        return w / w.sum(1, keepdim=True).clamp_min(1e-8)

    # ------------------------------------------------------------------ forward
    def pose_offsets(self, aa: Tensor, rot_mats: Tensor) -> Tensor:
        """ΔM_θ plus the base model's own correctives: (B, V, 3) metres. No gradient reaches θ."""
        b = aa.shape[0]
        feat = (rot_mats[:, 1:] - torch.eye(3, dtype=aa.dtype, device=aa.device)).reshape(b, -1).detach()  # (B, 135)
        return (feat @ self.posedirs).view(b, -1, 3) + self.learnt_pose_offsets(aa, rot_mats)

    def learnt_pose_offsets(self, aa: Tensor, rot_mats: Tensor) -> Tensor:
        """ΔM_θ alone: (B, V, 3) metres (zeros for the β-only baseline). No gradient reaches θ."""
        b = aa.shape[0]
        if self.pose_linear is not None:
            feat = (rot_mats[:, 1:] - torch.eye(3, dtype=aa.dtype, device=aa.device)).reshape(b, -1).detach()
            return (feat @ self.pose_linear * MM).view(b, -1, 3)
        if self.pose_dec is not None:
            theta = aa[:, 3:] if self.pose_dim == 48 else self._dof_of(aa)
            return (self.pose_dec(theta.detach()) * MM).view(b, -1, 3)
        return torch.zeros(b, self.num_verts, 3, dtype=aa.dtype, device=aa.device)

    def skeleton_offsets(self) -> Tensor:
        """ΔS_β (16, 3) metres, bone-vector correctives (zeros when off)."""
        if self.skeleton_dec is None:
            return torch.zeros_like(self.J_regressor[:, :3])
        return self.skeleton_dec(self.id_code).view(-1, 3) * MM

    def corrective_l2(self, aa: Tensor, rot_mats: Tensor) -> tuple[Tensor, Tensor]:
        """Supplementary §15's L2 regulariser of the correctives (used for the paper's 792-vertex,
        MANO-like model), in two parts so they can be weighted apart: the identity's (mean
        squared ΔS_β plus ΔM_β) and the pose corrective's (mean squared ΔM_θ, batch mean), mm².

        Apart because few training poses under-determine ΔM_θ: a linear corrective in R - I
        has 135 coefficients per vertex coordinate, and a set of poses whose R - I does not
        average to zero lets it hold a constant offset, i.e. part of the identity, that does
        not carry over to other poses.
        """
        identity = (self.skeleton_offsets() / MM).pow(2).sum(-1).mean()
        if self.identity_dec is not None:
            identity = identity + (self.identity_dec(self.id_code).view(-1, 3)).pow(2).sum(-1).mean()
        pose = (self.learnt_pose_offsets(aa, rot_mats) / MM).pow(2).sum(-1).mean()
        return identity, pose

    def _dof_of(self, aa: Tensor) -> Tensor:
        """(B, 48) -> (B, 25) the articulation DoF (least squares on the basis; exact for poses it spans)."""
        B = self.dof_basis[3:, 3:]  # (25, 45)
        return aa[:, 3:] @ torch.linalg.pinv(B)

    def forward(self, pose: Tensor, trans: Tensor | None = None) -> dict[str, Tensor]:
        """Posed meshes and joints (eq. 1).

        Args:
            pose: (B, pose_dim) radians: global rotation (about the root joint, as MANO)
                then the articulation (axis-angle or the 28 DoF).
            trans: optional (B, 3) translation, metres.

        Returns:
            dict with verts (B, V, 3), joints (B, 21, 3) FreiHAND order (16 skeleton joints +
            fingertip vertices), mano_joints (B, 16, 3), all metres.
        """
        aa = self.axis_angle(pose)  # (B, 48)
        b = aa.shape[0]
        rot = batch_rodrigues(aa.reshape(-1, 3)).view(b, -1, 3, 3)  # (B, 16, 3, 3)
        v_rest = self.rest_template()[None] + self.pose_offsets(aa, rot)  # (B, V, 3)
        J = self.rest_joints()[None].expand(b, -1, -1)  # (B, 16, 3)
        posed_j, A = batch_rigid_transform(rot, J, self.parents, dtype=aa.dtype)  # (B, 16, 3), (B, 16, 4, 4)
        W = self.skin_weights()  # (V, 16)
        T = torch.einsum("vj,bjxy->bvxy", W, A)  # (B, V, 4, 4)
        verts = (T[..., :3, :3] @ v_rest[..., None])[..., 0] + T[..., :3, 3]  # (B, V, 3)
        if trans is not None:
            verts, posed_j = verts + trans[:, None], posed_j + trans[:, None]
        joints = torch.cat([posed_j, verts[:, self._tips]], 1)[:, self._to_freihand]  # (B, 21, 3)
        return {"verts": verts, "joints": joints, "mano_joints": posed_j, "aa": aa, "rot": rot}

    def rest_mesh(self) -> Tensor:
        """LBS(0, S*, M̄*): (V, 3) the zero-pose mesh (θ = 0 gives identity transforms)."""
        return self.rest_template()

    def correctives_parameters(self) -> list[nn.Parameter]:
        """Everything learnt about the person (not the per-frame poses)."""
        return [p for p in self.parameters() if p.requires_grad]


def rotation_to_axis_angle(R: Tensor) -> Tensor:
    """(B, 3, 3) rotation matrices -> (B, 3) axis-angle (angles below pi)."""
    cos = ((R.diagonal(dim1=1, dim2=2).sum(-1) - 1) / 2).clamp(-1 + 1e-7, 1 - 1e-7)
    angle = torch.acos(cos)
    axis = torch.stack([R[:, 2, 1] - R[:, 1, 2], R[:, 0, 2] - R[:, 2, 0], R[:, 1, 0] - R[:, 0, 1]], -1)
    axis = axis / (2 * torch.sin(angle)[:, None]).clamp_min(1e-8)
    return axis * angle[:, None]


def kabsch(src: Tensor, dst: Tensor) -> tuple[Tensor, Tensor]:
    """Rigid (R, t) with ``dst ~ src @ R.T + t``: src, dst (B, N, 3) -> R (B, 3, 3), t (B, 3)."""
    cs, cd = src.mean(1, keepdim=True), dst.mean(1, keepdim=True)
    H = (src - cs).transpose(1, 2) @ (dst - cd)  # (B, 3, 3)
    U, _, Vt = torch.linalg.svd(H)
    d = torch.sign(torch.linalg.det(Vt.transpose(1, 2) @ U.transpose(1, 2)))
    D = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], -1))
    R = Vt.transpose(1, 2) @ D @ U.transpose(1, 2)
    t = cd[:, 0] - (R @ cs[:, 0, :, None])[..., 0]
    return R, t


def initial_global_pose(model: PersonalHandModel, joints: Tensor) -> tuple[Tensor, Tensor]:
    """The paper's rigid alignment (§5.2) from the model's rest skeleton to target joints, by
    the wrist and finger roots: (F, 21, 3) -> global axis-angle (F, 3) about the root and
    translation (F, 3) such that ``R (x - J0) + J0 + t`` maps the rest joints onto the targets."""
    with torch.no_grad():
        rest = model(torch.zeros(1, model.pose_dim, dtype=joints.dtype, device=joints.device))["joints"]
        idx = [0, 5, 9, 13, 17]
        src = rest[:, idx].expand(joints.shape[0], -1, -1)
        R, t = kabsch(src, joints[:, idx])
        j0 = model.rest_joints()[0]
        trans = t + (R @ j0[:, None])[..., 0] - j0  # R x + t = R (x - J0) + J0 + trans
        return rotation_to_axis_angle(R), trans

