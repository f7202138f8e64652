"""Self-supervised transfer from binocular images (Chen, Wang, Sun, Ma, ICCV 2021, §3.2).

Two branches share one encoder + lixel mesh regressor, initialised from a
``pretrain`` checkpoint. Each branch predicts per-vertex (u, v) in its own crop;
depth follows from the disparity of the two branches (eq. 1), giving **absolute**
meshes in both cameras (:func:`stereo_meshes`). Training uses no labels of the
target domain, only the image pair, its calibration and skin masks:

* photo-consistency (eqs. 2–4): render the right mesh's depth, turn it into
  disparity, warp the left image into the right view (hand region only) and
  compare with the masked right image by ``alpha/2 (1 - SSIM) + (1 - alpha) L1``;
  symmetrically for the left view;
* edge loss against pseudo labels (eq. 5): the ``--init`` model's predictions on the
  same images (:func:`pseudo_meshes`), Laplacian smoothness (eq. 6), mask loss
  between the rendered silhouette and the skin mask (eq. 7), Chamfer distance
  (eq. 8) and normal consistency (eq. 9) between the left and right meshes.

Weights (eq. 10) are the paper's: :data:`LOSS_WEIGHTS`. Choices the paper leaves
open (details and measurements: ``docs/selfsup-stereo.md``):

* **Unit of the mesh losses: metres** (:data:`MESH_UNIT` = 1, the package's unit).
  Eqs. 5, 6 and 8 are in squared vertex units, so the unit alone decides how the
  paper's weights balance them against the dimensionless photo term. Measured at
  the start of adaptation (ResNet-18 prior, 64 px crops, 4 synthetic indoor pairs):
  norm of the encoder+regressor gradient of each weighted term, metres --
  photo 0.12, edge 0.35, normal 0.28, Laplacian 0.0046, mask 0.0026, Chamfer 3e-9.
  Edge, Laplacian and Chamfer gradients scale with unit squared: in millimetres edge
  is 3.5e5 and Laplacian 4.6e3, 3e6 times photo, so photo-consistency cannot matter
  (the ~1e6 edge loss seen before); in centimetres 3.5e3. Only metres leaves photo,
  edge and normal comparable (Laplacian, mask, Chamfer slight, as the paper's
  Table 2 reports); it is the only unit of the four in which photo-consistency can
  steer training at the paper's weights.
* Edge loss summed over the unique edges (:data:`EDGE_REDUCTION`, as eq. 5 prints).
* Pseudo labels (eq. 5): the ``--init`` prior's own shape (its z head) at the wrist
  depth from disparity (:func:`pseudo_meshes`); per-vertex disparity of a rough prior
  is too noisy to serve as a shape label.

**Monocular variant** (``z_head``): each branch also regresses root-relative z
per vertex (the prior's z head). For the training losses its mesh is
``(u, v, z_root + z)`` with the wrist depth ``z_root`` from the disparity of the two
branches' wrists, and a left-right depth-consistency term ties its z to the
disparity depth of the binocular meshes (weight ``depth``, our addition: the paper
only says the variant is trained "with the left-right consistency"). At test time
one image gives a root-relative mesh.
"""

from __future__ import annotations

import numpy as np
import torch

from handtools.core.learning.nets.prior import regress_joints21, uvz_to_camera
from handtools.core.methods.prior.model import build_prior
from handtools.core.losses.selfsup import (
    chamfer_loss,
    edge_loss,
    laplacian_loss,
    mask_loss,
    mesh_topology,
    normal_consistency_loss,
    photo_consistency_loss,
)
from handtools.core.geometry.stereo import disparity_from_depth, verts_from_disparity, warp_with_disparity

#: Loss weights of eq. 10 (the paper's values); ``depth`` is the monocular variant's term.
LOSS_WEIGHTS = {"photo": 100.0, "edge": 1.0, "laplacian": 10.0, "mask": 0.1, "chamfer": 0.001, "normal": 0.001,
                "depth": 1.0}

#: Paper defaults for ``handtools selfsup-stereo`` (supplementary §3).
SELFSUP_DEFAULTS = {"lr": 1e-5, "epochs": 13, "milestones": (8, 10), "gamma": 0.1, "batch_size": 4}

#: Mesh losses in metres (the package unit; scale factor from metres): see docs/selfsup-stereo.md, "Loss units".
MESH_UNIT = 1.0

#: Reduction of the edge loss over the mesh's unique edges (eq. 5 prints a sum).
EDGE_REDUCTION = "sum"


def edge_term(pred, pseudo, faces, reduction: str | None = None) -> torch.Tensor:
    """Eq. 5 as the self-supervised loss uses it: :func:`selfsup_losses.edge_loss` with
    :data:`EDGE_REDUCTION`. ``pred``, ``pseudo`` (B, 778, 3) in the loss unit
    (:data:`MESH_UNIT` x metres); ``faces`` (F, 3) or a ``MeshTopology``. Returns a scalar."""
    return edge_loss(pred, pseudo, faces, reduction=reduction or EDGE_REDUCTION)


def stereo_net_from_prior(ckpt: dict, J_regressor, z_head: bool):
    """The self-supervised model initialised from a prior checkpoint.

    The binocular model drops the prior's z head (supplementary §2: u, v only);
    the monocular variant keeps it.
    """
    cfg = dict(ckpt["meta"]["net"], with_z=bool(z_head))
    if z_head and not ckpt["meta"]["net"].get("with_z", True):
        raise ValueError("--z-head needs an --init prior trained with a z head (pretrain --z)")
    net = build_prior(cfg, J_regressor=J_regressor)
    state = {k: v for k, v in ckpt["model"].items() if z_head or ".conv_z_" not in k}
    net.load_state_dict(state, strict=True)
    return net


def stereo_meshes(out_l: dict, out_r: dict, K_l, K_r, baseline, J_regressor):
    """Absolute meshes of both branches, each in its own camera frame (metres).

    Binocular: eq. 1 per vertex. With z heads (monocular variant): the wrist depth
    from the disparity of the regressed wrists plus each branch's root-relative z.
    Returns ``(verts_l, verts_r, z_disp)`` with ``z_disp`` (B, 778) the eq.-1 depth.
    """
    xyz_l, xyz_r = verts_from_disparity(out_l["uv"], out_r["uv"], K_l, K_r, baseline)  # (B, 778, 3) each
    if "z" not in out_l:
        return xyz_l, xyz_r, xyz_l[..., 2]
    wl = regress_joints21(out_l["uv"], J_regressor)[:, :1]  # (B, 1, 2) wrist pixels
    wr = regress_joints21(out_r["uv"], J_regressor)[:, :1]
    root_l, _ = verts_from_disparity(wl, wr, K_l, K_r, baseline)  # (B, 1, 3)
    z_root = root_l[:, 0, 2]  # (B,)
    vl = uvz_to_camera(out_l["uv"], _rel(out_l, J_regressor), K_l, z_root)
    vr = uvz_to_camera(out_r["uv"], _rel(out_r, J_regressor), K_r, z_root)
    return vl, vr, xyz_l[..., 2]


def _rel(out: dict, J) -> torch.Tensor:
    """The z head's depths relative to the branch's own regressed wrist, (B, 778)."""
    z = out["z"]
    return z - regress_joints21(z[..., None], J)[:, :1, 0]


class StereoSelfSupLoss:
    """Eq. 10 for :class:`handtools.core.learning.trainer.Trainer`.

    Args:
        faces: (1538, 3); J_regressor: (16, 778) of the hand model.
        renderer: a :class:`handtools.core.render.Renderer`.
        pseudo: dict with ``left``/``right`` (N, 778, 3) metres pseudo meshes per sample.
        weights: loss weights (default :data:`LOSS_WEIGHTS`).
        enabled: names of the losses in use (ablations switch some off).
        alpha: SSIM weight of the photo-consistency loss.
    """

    def __init__(self, faces, J_regressor, renderer, pseudo: dict, weights=None, enabled=None, alpha: float = 0.85,
                 mesh_unit: float = MESH_UNIT, edge_reduction: str = EDGE_REDUCTION):
        if not isinstance(pseudo, dict) or set(pseudo) != {"left", "right"}:
            raise ValueError("pseudo must be a dict with 'left' and 'right' (N, 778, 3) pseudo meshes")
        for k in ("left", "right"):
            t = pseudo[k]
            if not isinstance(t, torch.Tensor) or t.ndim != 3 or tuple(t.shape[1:]) != (778, 3):
                raise ValueError(f"pseudo[{k!r}] must be an (N, 778, 3) tensor, got {getattr(t, 'shape', type(t))}")
        unknown = set(enabled or ()) - set(LOSS_WEIGHTS)
        if unknown:
            raise ValueError(f"unknown losses {sorted(unknown)} (known: {', '.join(LOSS_WEIGHTS)})")
        if not mesh_unit > 0:
            raise ValueError(f"mesh_unit must be positive, got {mesh_unit}")
        self.mesh_unit = float(mesh_unit)
        self.edge_reduction = edge_reduction
        self.faces = torch.as_tensor(faces, dtype=torch.long)
        self.J = torch.as_tensor(J_regressor, dtype=torch.float32)
        self.renderer = renderer
        self.pseudo = pseudo
        self.w = dict(LOSS_WEIGHTS, **(weights or {}))
        self.enabled = set(enabled if enabled is not None else ("photo", "edge", "laplacian", "mask", "chamfer", "normal"))
        self.alpha = alpha
        self.topology = None

    def _render(self, verts, K, size):
        r = self.renderer.render(verts, self.faces.to(verts.device), K, size)
        return r.silhouette, r.depth

    def __call__(self, model, batch: dict):
        dev = batch["image_l"].device
        J = self.J.to(dev)
        faces = self.faces.to(dev)
        if self.topology is None or self.topology.edges.device != dev:
            self.topology = mesh_topology(faces, 778, dev)
        K_l, K_r, b = batch["K_l"], batch["K_r"], batch["baseline"]
        size = tuple(batch["image_l"].shape[-2:])
        both = model(torch.cat([batch["image_l"], batch["image_r"]]))  # one pass for both branches
        n = batch["image_l"].shape[0]
        out_l = {k: v[:n] for k, v in both.items()}
        out_r = {k: v[n:] for k, v in both.items()}
        verts_l, verts_r, z_disp = stereo_meshes(out_l, out_r, K_l, K_r, b, J)
        terms: dict[str, torch.Tensor] = {}
        cx_off = K_l[:, 0, 2] - K_r[:, 0, 2]  # (B,) principal-point offset between the crops
        need_render = self.enabled & {"photo", "mask"}
        if need_render:
            sil_l, depth_l = self._render(verts_l, K_l, size)
            sil_r, depth_r = self._render(verts_r, K_r, size)
        if "photo" in self.enabled:  # eqs. 2-3, both branches
            disp_r, _ = disparity_from_depth(depth_r, K_r, b)
            warped_r, valid_r = warp_with_disparity(batch["image_l"], disp_r, "left_to_right", cx_off)
            disp_l, _ = disparity_from_depth(depth_l, K_l, b)
            warped_l, valid_l = warp_with_disparity(batch["image_r"], disp_l, "right_to_left", cx_off)
            terms["photo"] = photo_consistency_loss(batch["image_r"], warped_r, batch["mask_r"], self.alpha) + \
                photo_consistency_loss(batch["image_l"], warped_l, batch["mask_l"], self.alpha)
        lu_l, lu_r = verts_l * self.mesh_unit, verts_r * self.mesh_unit  # (B, 778, 3) in the loss unit (metres)
        if "edge" in self.enabled:  # eq. 5 against the init model's pseudo meshes
            idx = batch["index"].cpu()
            pl = self.pseudo["left"][idx].to(dev) * self.mesh_unit
            pr = self.pseudo["right"][idx].to(dev) * self.mesh_unit
            terms["edge"] = edge_term(lu_l, pl, self.topology, self.edge_reduction) + \
                edge_term(lu_r, pr, self.topology, self.edge_reduction)
        if "laplacian" in self.enabled:  # eq. 6
            terms["laplacian"] = laplacian_loss(lu_l, self.topology) + laplacian_loss(lu_r, self.topology)
        if "mask" in self.enabled:  # eq. 7
            terms["mask"] = mask_loss(sil_l, batch["mask_l"]) + mask_loss(sil_r, batch["mask_r"])
        # eqs. 8-9 compare the two meshes in the left camera frame
        lu_r_in_l = lu_r + torch.stack([b * self.mesh_unit, torch.zeros_like(b), torch.zeros_like(b)], -1)[:, None]
        if "chamfer" in self.enabled:
            terms["chamfer"] = chamfer_loss(lu_l, lu_r_in_l)
        if "normal" in self.enabled:
            terms["normal"] = normal_consistency_loss(lu_l, lu_r_in_l, self.topology)
        if "z" in out_l:  # monocular variant: z head agrees with the disparity depth (root-relative)
            zd = z_disp - regress_joints21(z_disp[..., None], J)[:, :1, 0]
            terms["depth"] = ((_rel(out_l, J) - zd.detach()).abs().mean() + (_rel(out_r, J) - zd.detach()).abs().mean()) * 100.0  # centimetres
        loss = sum(self.w[k] * v for k, v in terms.items())
        metrics = {f"loss_{k}": float(v.detach()) for k, v in terms.items()}
        return loss, metrics


@torch.no_grad()
def pseudo_meshes(init_ckpt: dict, J_regressor, dataset, device, batch_size: int = 16) -> dict:
    """Pseudo labels for the edge loss (eq. 5): the init model's meshes on the training pairs.

    The prior's own 3D shape (u, v and its root-relative z) in each view, placed at
    the wrist depth given by the disparity of the two views' predicted wrists — the
    "test-directly" model's estimate, with the prior's undistorted hand shape.
    Returns ``{"left": (N, 778, 3), "right": (N, 778, 3)}`` metres, CPU.
    """
    J = torch.as_tensor(J_regressor, dtype=torch.float32, device=device)
    net = build_prior(init_ckpt["meta"]["net"], J_regressor=J).to(device).eval()
    net.load_state_dict(init_ckpt["model"])
    left = torch.zeros(len(dataset), 778, 3)
    right = torch.zeros(len(dataset), 778, 3)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False)
    for batch in loader:
        batch = {k: v.to(device) for k, v in batch.items()}
        n = batch["image_l"].shape[0]
        both = net(torch.cat([batch["image_l"], batch["image_r"]]))
        out_l = {k: v[:n] for k, v in both.items()}
        out_r = {k: v[n:] for k, v in both.items()}
        # with a z head: the prior's shape at the disparity wrist depth; else eq. 1 per vertex
        vl, vr, _ = stereo_meshes(out_l, out_r, batch["K_l"], batch["K_r"], batch["baseline"], J)
        idx = batch["index"].cpu()
        left[idx], right[idx] = vl.float().cpu(), vr.float().cpu()
    return {"left": left, "right": right}


class StereoPredictor:
    """Predictions of a self-supervised (or prior) model on stereo or mono crops.

    ``mode="binocular"``: both views, depth from disparity (eq. 1): absolute meshes.
    ``mode="monocular"``: one view with the z head, root-relative; placed at the
    ground-truth wrist depth (or ``root_depth``) like the prior.
    """

    def __init__(self, ckpt: dict, hand, device: torch.device, mode: str = "auto"):
        meta = ckpt["meta"]
        self.J = hand.joint_regressor.to(device)
        self.net = build_prior(meta["net"], J_regressor=self.J).to(device).eval()
        self.net.load_state_dict(ckpt["model"])
        self.image_size = tuple(meta["net"]["image_size"])
        self.hand_identity = meta.get("hand_model", "unknown")
        self.device = device
        if mode == "auto":
            mode = "binocular"
        if mode == "monocular" and not meta["net"]["with_z"]:
            raise ValueError("this model has no z head: monocular prediction needs selfsup-stereo --z-head")
        self.mode = mode
        self.min_views = 2 if mode == "binocular" else 1
        self.needs_root_depth = mode == "monocular"

    def _images(self, images: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(images)).to(self.device).permute(0, 3, 1, 2).float() / 255.0

    @torch.no_grad()
    def predict(self, batch: dict, view: int = 0) -> dict[str, np.ndarray]:
        """Same contract as :meth:`handtools.core.learning.predictors.PriorPredictor.predict`."""
        if self.mode == "monocular":
            from handtools.core.learning.predictors import PriorPredictor

            return PriorPredictor.predict(self, batch, view)  # type: ignore[arg-type]
        K = torch.from_numpy(batch["K"].astype(np.float32)).to(self.device)  # (B, 2, 3, 3)
        b = torch.from_numpy(batch["baseline"].astype(np.float32)).to(self.device)
        n = len(K)
        both = self.net(torch.cat([self._images(batch["images"][:, 0]), self._images(batch["images"][:, 1])]))
        out_l = {k: v[:n] for k, v in both.items() if k in ("uv",)}
        out_r = {k: v[n:] for k, v in both.items() if k in ("uv",)}
        verts_l, _, _ = stereo_meshes(out_l, out_r, K[:, 0], K[:, 1], b, self.J)  # left camera = view 0
        T = batch.get("T_view")
        if T is not None and not np.allclose(T[:, 0], np.eye(4), atol=1e-6):
            raise ValueError("binocular prediction expects view 0 to be the reference camera (T_view[:, 0] = I)")
        return {
            "pred/verts3d": verts_l.cpu().numpy().astype(np.float32),
            "pred/joints3d": regress_joints21(verts_l, self.J).cpu().numpy().astype(np.float32),
            "pred/uv": out_l["uv"].cpu().numpy().astype(np.float32),
            "pred/uv_right": out_r["uv"].cpu().numpy().astype(np.float32),
        }

    # monocular mode reuses PriorPredictor.predict, which calls these
    def forward_view(self, images: np.ndarray, K: np.ndarray) -> dict:
        return self.net(self._images(images))

