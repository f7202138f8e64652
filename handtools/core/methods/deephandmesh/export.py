"""A personal hand model as a MANO-format model (what ``--mano`` and smplx load).

* ``v_template`` = M̄ + ΔM_β (the zero-pose template, metres);
* ``J_regressor`` re-solved so it reproduces the refined skeleton S* from that template
  exactly: each row changes least (in the L2 sense, on the vertices the row already uses),
  keeping its sum at 1 (:func:`resolve_regressor`);
* ``posedirs`` = MANO's correctives + ΔM_θ: exact for the linear pose corrective; the MLP
  corrective is fitted by least squares on the R - I features of given poses, and the
  residual is reported (:func:`export_mano`'s ``report``);
* ``weights`` = W* (with ΔW_β when learnt); shape space, faces, tree, pose PCA carried over;
* ``handtools_personal``: a JSON record (method, config, residuals, provenance).
"""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import torch
from smplx.lbs import batch_rodrigues

from handtools.core.methods.deephandmesh.model import MM, PersonalHandModel


def resolve_regressor(regressor: np.ndarray, template: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """Smallest change to a joint regressor so that ``R' @ template == joints``, rows summing to 1.

    regressor (J, V); template (V, 3); joints (J, 3). Each row j moves within its support
    (the vertices with a non-zero weight; all vertices if that is too few) by the minimum-norm
    solution of 4 linear conditions (3 coordinates + the row sum). Returns (J, V) float64.
    """
    R = np.asarray(regressor, np.float64).copy()
    T = np.asarray(template, np.float64)
    for j in range(R.shape[0]):
        support = np.flatnonzero(np.abs(R[j]) > 0)
        if len(support) < 8:
            support = np.arange(T.shape[0])
        A = np.concatenate([T[support], np.ones((len(support), 1))], 1)  # (n, 4)
        r = np.concatenate([joints[j] - R[j] @ T, [1.0 - R[j].sum()]])  # (4,)
        delta = A @ np.linalg.lstsq(A.T @ A, r, rcond=None)[0]  # min-norm: delta = A (A^T A)^-1 r
        R[j, support] += delta
    return R


@torch.no_grad()
def export_mano(model: PersonalHandModel, base: dict[str, np.ndarray], record: dict,
                fit_poses: torch.Tensor | None = None) -> tuple[dict[str, np.ndarray], dict]:
    """The personal model as MANO-format arrays, and a report of what is exact.

    Args:
        model: the trained :class:`PersonalHandModel`.
        base: the base model's arrays (carried-over keys come from here).
        record: provenance to store (command, inputs, base model identity, ...).
        fit_poses: (N, pose_dim) poses for fitting an MLP pose corrective (the training
            poses); required when ``model.cfg.pose_corrective == "mlp"``.

    Returns:
        (arrays, report): report holds ``regressor_residual_m`` (max |R' M̄* - S*|) and
        ``posedirs_residual_m`` (max vertex error of the exported pose correctives on
        ``fit_poses``; 0 for the linear corrective).
    """
    dev = model.v_template.device
    template = model.rest_template().double().cpu().numpy()  # (V, 3)
    joints = model.rest_joints().double().cpu().numpy()  # (16, 3)
    reg = resolve_regressor(base["J_regressor"], template, joints)
    nv = template.shape[0]
    posedirs = model.posedirs.double().cpu().numpy()  # (135, 3V) base
    residual = 0.0
    if model.pose_linear is not None:
        posedirs = posedirs + model.pose_linear.double().cpu().numpy() * MM
    elif model.pose_dec is not None:
        if fit_poses is None or len(fit_poses) == 0:
            raise ValueError("exporting an MLP pose corrective needs the poses to fit it on")
        aa = model.axis_angle(fit_poses.to(dev, model.v_template.dtype))
        rot = batch_rodrigues(aa.reshape(-1, 3)).view(aa.shape[0], -1, 3, 3)
        feat = (rot[:, 1:] - torch.eye(3, device=dev)).reshape(aa.shape[0], -1).double().cpu().numpy()
        target = (model.pose_offsets(aa, rot).reshape(aa.shape[0], -1).double().cpu().numpy()
                  - feat @ posedirs)  # ΔM_θ alone (N, 3V)
        # ridge least squares: few poses, 135 features
        lam = 1e-6
        P = np.linalg.solve(feat.T @ feat + lam * np.eye(feat.shape[1]), feat.T @ target)
        residual = float(np.abs((feat @ P - target).reshape(len(feat), nv, 3)).max()) if len(feat) else 0.0
        posedirs = posedirs + P
    arrays = {k: np.array(v, copy=True) for k, v in base.items()
              if k not in ("handtools_personal", "handtools_subject")}
    arrays["v_template"] = template
    arrays["J_regressor"] = reg
    arrays["J"] = reg @ template
    arrays["posedirs"] = posedirs.T.reshape(nv, 3, -1)
    arrays["weights"] = model.skin_weights().double().cpu().numpy()
    report = {
        "regressor_residual_m": float(np.abs(reg @ template - joints).max()),
        "posedirs_residual_m": residual,
        "pose_corrective": model.cfg.pose_corrective,
    }
    meta = {"method": "deephandmesh", "config": asdict(model.cfg), **record, **report}
    arrays["handtools_personal"] = np.asarray(json.dumps(meta, default=str))
    return arrays, report
