"""The hand model: smplx's MANO layer with FreiHAND joints, mirroring and a similarity.

:class:`HandModel` subclasses :class:`smplx.MANO` (as hamer's ``MANO`` wrapper does)
and is built from arrays read by :mod:`handtools.core.hand.mano_io`, so it runs on the
official MANO file or the bundled open hand model alike. Its forward pass:

1. MANO (Romero et al. 2017, "Embodied Hands", eqs. 1-4 via ``smplx.lbs``) on the
   right-hand model: vertices ``(B, 778, 3)`` and the 16 MANO joints, metres.
2. Left hands (``is_left``) by mirroring: the right model runs on the mirrored pose
   and the x coordinate of its output is negated (see :meth:`HandModel.mirror_pose`).
3. The 21 FreiHAND joints: MANO's 16 joints plus the fingertip vertices
   ``FINGERTIP_VERTICES``, reordered with ``MANO_TO_FREIHAND``.
4. An optional similarity ``x -> scale * R(rot) @ x + trans`` applied to vertices and
   joints (``rot`` axis-angle about the model origin), e.g. weak-perspective or
   camera-frame placement predicted by a network.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass

import numpy as np
import smplx
import torch
from smplx.lbs import batch_rodrigues

from handtools.core.hand.joints import (
    FINGERTIP_VERTICES,
    MANO_TO_FREIHAND,
    NUM_MANO_JOINTS,
    NUM_SHAPE,
)
from handtools.core.hand.mano_io import (
    load_mano,
    model_identity,
    resolve_model_path,
    validate_mano_arrays,
)

#: Per-coordinate sign of a mirrored axis-angle: reflecting x maps rotation
#: vector (x, y, z) to (x, -y, -z) (the axis reflects, the angle changes sign).
_MIRROR_AXIS_ANGLE = (1.0, -1.0, -1.0)


@dataclass
class HandOutput:
    """Output of :meth:`HandModel.forward` (all in the model's dtype and device).

    verts: (B, 778, 3) mesh vertices, metres (before ``scale``).
    joints: (B, 21, 3) joints in FreiHAND order (wrist, thumb..little root to tip).
    mano_joints: (B, 16, 3) MANO's own joints in MANO order.
    """

    verts: torch.Tensor
    joints: torch.Tensor
    mano_joints: torch.Tensor


class HandModel(smplx.MANO):
    """MANO right-hand layer over ``smplx.MANO`` with FreiHAND joints and left mirroring.

    Args:
        arrays: a MANO-format model (``mano_io.load_mano``), validated here.
        identity: provenance string recorded in outputs (``mano_io.model_identity``).
        is_bundled: True when ``arrays`` is the bundled open hand model.
        use_pca: pose articulation given as PCA coefficients (``hands_components``).
        num_pca_comps: number of PCA coefficients, 1..45 (used when ``use_pca``).
        flat_hand_mean: if False, MANO's ``hands_mean`` is added to the articulation
            (pose zero = MANO's mean relaxed hand); if True, pose zero = flat hand
            and an axis-angle pose is the absolute joint rotation.
        dtype: float32 or float64 for the buffers; ``.to()`` changes device/dtype later.

    Buffers (follow ``.to()``): ``faces`` (1538, 3) int64, ``J_regressor`` (16, 778),
    ``lbs_weights`` (778, 16), ``parents`` (16,) int64, ``v_template`` (778, 3),
    ``shapedirs``, ``posedirs``, ``hand_mean`` (45,), ``hand_components`` (k, 45) when
    ``use_pca``.
    """

    # smplx prints a warning on stdout when a model has fewer than SHAPE_SPACE_DIM
    # shape directions; MANO has exactly 10, and stdout carries our pipes' data.
    SHAPE_SPACE_DIM = NUM_SHAPE

    def __init__(
        self,
        arrays: dict[str, np.ndarray],
        identity: str = "unknown",
        is_bundled: bool = False,
        use_pca: bool = False,
        num_pca_comps: int = 45,
        flat_hand_mean: bool = True,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        validate_mano_arrays(arrays, source=identity)
        if not 1 <= num_pca_comps <= 45:
            raise ValueError(f"num_pca_comps must be in 1..45, got {num_pca_comps}")
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        struct = smplx.utils.Struct(**arrays)
        with contextlib.redirect_stdout(sys.stderr):  # keep stdout clean (see above)
            super().__init__(
                model_path="",
                is_rhand=True,
                data_struct=struct,
                use_pca=use_pca,
                num_pca_comps=num_pca_comps,
                flat_hand_mean=flat_hand_mean,
                dtype=dtype,
                create_betas=False,
                create_global_orient=False,
                create_body_pose=False,
                create_hand_pose=False,
                create_transl=False,
            )
        if use_pca and not self.use_pca:
            # smplx silently switches to axis-angle when num_pca_comps == 45; a PCA
            # pose of 3 + 45 numbers must stay PCA, so restore it.
            self.use_pca = True
            self.register_buffer("hand_components", torch.tensor(
                np.asarray(arrays["hands_components"][:num_pca_comps]), dtype=dtype))
        self.identity = identity
        self.is_bundled = is_bundled
        # smplx keeps the faces as a numpy attribute; make them a long buffer instead.
        del self.faces
        self.register_buffer("faces", torch.as_tensor(
            np.asarray(arrays["f"], dtype=np.int64)))  # (1538, 3)
        self.register_buffer("_tip_vertices", torch.tensor(FINGERTIP_VERTICES))  # (5,)
        self.register_buffer("_to_freihand", torch.tensor(MANO_TO_FREIHAND))  # (21,)
        self.register_buffer("_mirror_sign", torch.tensor(
            _MIRROR_AXIS_ANGLE * NUM_MANO_JOINTS, dtype=dtype))  # (48,)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_path(
        cls,
        path: str | os.PathLike | None = None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        **kwargs,
    ) -> HandModel:
        """Build from ``path`` > ``$HANDTOOLS_MANO`` > the bundled open hand model.

        ``kwargs`` go to the constructor (``use_pca``, ``num_pca_comps``,
        ``flat_hand_mean``).
        """
        resolved = resolve_model_path(path)
        bundled = resolved is None
        if bundled:
            from handtools.core.hand.open_hand import bundled_model_path

            resolved = bundled_model_path()
        arrays = load_mano(resolved)
        model = cls(arrays, identity=model_identity(resolved, bundled=bundled),
                    is_bundled=bundled, dtype=dtype, **kwargs)
        model.source_path = resolved  # lets a method rebuild the same model with other options
        return model.to(device)

    def _apply(self, fn, *args, **kwargs):
        out = super()._apply(fn, *args, **kwargs)
        self.dtype = self.v_template.dtype  # smplx's plain attribute; keep it truthful
        return out

    # ------------------------------------------------------------------ properties
    @property
    def pose_dim(self) -> int:
        """Width of ``pose``: 48 (axis-angle) or 3 + num_pca_comps (PCA)."""
        return 3 + (self.num_pca_comps if self.use_pca else 45)

    @property
    def joint_regressor(self) -> torch.Tensor:
        """(16, 778) MANO joint regressor (rows sum to 1)."""
        return self.J_regressor

    @property
    def weights(self) -> torch.Tensor:
        """(778, 16) linear-blend-skinning weights (rows sum to 1)."""
        return self.lbs_weights

    @property
    def template(self) -> torch.Tensor:
        """(778, 3) rest-pose mean-shape vertices, metres."""
        return self.v_template

    @property
    def rest_joints(self) -> torch.Tensor:
        """(16, 3) MANO joints of the template, metres."""
        return self.J_regressor @ self.v_template

    def regress_joints(self, verts: torch.Tensor) -> torch.Tensor:
        """The 21 joints of posed meshes: the joint regressor applied to the vertices,
        completed with the fingertip vertices (the FreiHAND convention), FreiHAND order.

        Args:
            verts: (B, 778, 3) float, metres, any frame (the joints come out in it).

        Returns:
            (B, 21, 3), dtype and device of ``verts``.
        """
        j16 = torch.einsum("jv,bvc->bjc", self.J_regressor.to(verts.dtype), verts)  # (B, 16, 3)
        tips = verts[:, self._tip_vertices]  # (B, 5, 3)
        return torch.cat([j16, tips], 1)[:, self._to_freihand]  # (B, 21, 3)

    def faces_for(self, is_left: bool | torch.Tensor = False) -> torch.Tensor:
        """Triangles with outward winding for rendering a right or mirrored left hand.

        Mirroring (x -> -x) flips orientation, so left hands use reversed winding.
        Returns (1538, 3) int64 for a bool, (B, 1538, 3) for a (B,) bool tensor.
        """
        reversed_faces = self.faces[:, [0, 2, 1]]
        if isinstance(is_left, torch.Tensor) and is_left.ndim == 1:
            return torch.where(is_left.to(self.faces.device)[:, None, None],
                               reversed_faces, self.faces)
        return reversed_faces if bool(is_left) else self.faces

    # ------------------------------------------------------------------ pose helpers
    def mirror_pose(self, pose: torch.Tensor) -> torch.Tensor:
        """Left-hand pose -> right-hand pose of the mirror image (and back: involution).

        Axis-angle ``(B, 48)``: every joint's (x, y, z) becomes (x, -y, -z).
        PCA ``(B, 3 + k)``: only the global rotation is mirrored. A left-hand model is
        the mirror of the right one (its PCA components and mean are the mirrored
        right ones), so the same coefficients describe the mirrored articulation.
        """
        pose = self._check_pose(pose)
        if self.use_pca:
            return torch.cat([pose[:, :3] * self._mirror_sign[:3], pose[:, 3:]], dim=1)
        return pose * self._mirror_sign

    def full_pose(self, pose: torch.Tensor) -> torch.Tensor:
        """(B, pose_dim) pose -> (B, 48) absolute axis-angle that MANO's skinning uses:
        PCA coefficients expanded (``coef @ hands_components``) and ``hands_mean``
        added unless ``flat_hand_mean``. Radians."""
        pose = self._check_pose(pose)
        articulation = pose[:, 3:]
        if self.use_pca:
            articulation = articulation @ self.hand_components  # (B, 45)
        return torch.cat([pose[:, :3], articulation], dim=1) + self.pose_mean

    # ------------------------------------------------------------------ forward
    def forward(  # type: ignore[override]
        self,
        pose: torch.Tensor,
        shape: torch.Tensor,
        scale: torch.Tensor | None = None,
        rot: torch.Tensor | None = None,
        trans: torch.Tensor | None = None,
        is_left: bool | torch.Tensor | np.ndarray | None = None,
    ) -> HandOutput:
        """Posed hand meshes and joints.

        Args:
            pose: (B, 48) axis-angle, radians (3 global + 15 joints x 3), or
                (B, 3 + num_pca_comps) global axis-angle + PCA coefficients when built
                with ``use_pca``. For left samples, the left hand's own pose.
            shape: (B, 10) MANO shape coefficients (betas).
            scale: optional (B, 1) or (B,) isotropic scale (unitless).
            rot: optional (B, 3) axis-angle rotation applied after MANO, radians.
            trans: optional (B, 3) translation applied last, metres.
            is_left: None/False (all right), True (all left) or (B,) bool.

        Returns:
            :class:`HandOutput` with ``verts`` (B, 778, 3), ``joints`` (B, 21, 3)
            FreiHAND order, ``mano_joints`` (B, 16, 3); after the similarity
            ``x -> scale * R(rot) @ x + trans``. Same dtype/device as the model.
        """
        pose = self._check_pose(pose)
        b = pose.shape[0]
        shape = self._check_input(shape, "shape", (b, NUM_SHAPE))
        left = self._left_mask(is_left, b)  # (B,) bool or None

        if left is not None:  # run the right model on the mirrored pose of left samples
            pose = torch.where(left[:, None], self.mirror_pose(pose), pose)
        out = super().forward(betas=shape, global_orient=pose[:, :3], hand_pose=pose[:, 3:])
        verts, mano_joints = out.vertices, out.joints  # (B, 778, 3), (B, 16, 3)
        if left is not None:
            flip = torch.ones(b, 1, 3, dtype=verts.dtype, device=verts.device)
            flip[:, 0, 0] = torch.where(left, -1.0, 1.0)
            verts, mano_joints = verts * flip, mano_joints * flip

        tips = verts[:, self._tip_vertices]  # (B, 5, 3)
        joints = torch.cat([mano_joints, tips], dim=1)[:, self._to_freihand]  # (B, 21, 3)

        if rot is not None:
            rmat = batch_rodrigues(self._check_input(rot, "rot", (b, 3)))  # (B, 3, 3)
            verts, joints, mano_joints = (x @ rmat.transpose(1, 2)
                                          for x in (verts, joints, mano_joints))
        if scale is not None:
            if scale.ndim == 1:
                scale = scale[:, None]
            s = self._check_input(scale, "scale", (b, 1))[:, :, None]  # (B, 1, 1)
            verts, joints, mano_joints = verts * s, joints * s, mano_joints * s
        if trans is not None:
            t = self._check_input(trans, "trans", (b, 3))[:, None]  # (B, 1, 3)
            verts, joints, mano_joints = verts + t, joints + t, mano_joints + t
        return HandOutput(verts=verts, joints=joints, mano_joints=mano_joints)

    # ------------------------------------------------------------------ checks
    def _check_input(self, x, name: str, shape: tuple[int, ...]) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if tuple(x.shape) != shape:
            raise ValueError(f"{name} must have shape {shape}, got {tuple(x.shape)}")
        ref = self.v_template
        if x.dtype != ref.dtype or x.device != ref.device:
            raise ValueError(f"{name} is {x.dtype} on {x.device}, the hand model is "
                             f"{ref.dtype} on {ref.device}")
        return x

    def _check_pose(self, pose) -> torch.Tensor:
        if not isinstance(pose, torch.Tensor) or pose.ndim != 2:
            raise ValueError(f"pose must be a (B, {self.pose_dim}) tensor, got "
                             f"{getattr(pose, 'shape', type(pose).__name__)}")
        if pose.shape[1] != self.pose_dim:
            kind = f"PCA 3 + {self.num_pca_comps}" if self.use_pca else "axis-angle"
            raise ValueError(f"pose must have {self.pose_dim} columns ({kind}), "
                             f"got {pose.shape[1]}")
        return self._check_input(pose, "pose", tuple(pose.shape))

    def _left_mask(self, is_left, b: int) -> torch.Tensor | None:
        if is_left is None:
            return None
        device = self.v_template.device
        if isinstance(is_left, bool):
            return torch.full((b,), is_left, dtype=torch.bool, device=device) if is_left \
                else None
        left = torch.as_tensor(is_left, device=device)
        if left.shape != (b,):
            raise ValueError(f"is_left must be a bool or have shape ({b},), "
                             f"got {tuple(left.shape)}")
        return left.bool()
