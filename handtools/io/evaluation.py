"""What ``handtools evaluate`` reads: predictions shards pooled into arrays, earlier runs' curves.

The arrays go to :func:`handtools.core.eval.metrics.compute_metrics`; this
module knows which shard datasets feed which metrics (docs/evaluate.md,
"Inputs") and turns missing or unusable ones into one-line errors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from handtools.console import log, progress
from handtools.core.eval.projection import points_behind, project_pinhole
from handtools.core.eval.registry import METRIC_GROUPS
from handtools.errors import InputError

#: Datasets every evaluated shard must hold.
REQUIRED = ["pred/joints3d", "joints3d"]
#: Datasets used when every shard holds them: meshes, and view-0 2D keypoints with intrinsics.
OPTIONAL = ("pred/verts3d", "verts3d", "keypoints2d", "K")
#: Datasets of which only view 0 is read (2D metrics are view 0's): keeps mono and stereo shards stackable.
VIEW0_ONLY = ("K", "keypoints2d")


def read_pooled(paths: Sequence[Path], require: list[str], optional: Sequence[str] = ()) -> tuple[dict, set]:
    """Concatenate datasets over all shards, in argument order.

    Args:
        paths: shard files. require: datasets every shard must have (else InputError).
        optional: datasets read when every shard has them; one that only some
            shards hold is left out with a warning.

    Returns:
        (name -> array concatenated over the shards' samples, the names read).
        ``K`` and ``keypoints2d`` keep view 0 only (shape (N, 1, ...)).
    """
    from handtools.io.shards import open_shards

    readers = open_shards(paths, require=require)
    try:
        in_all = {n for n in optional if all(n in r for r in readers)}
        for n in optional:
            partial = [str(r.path) for r in readers if n in r]
            if partial and n not in in_all:
                log.warning(f"{n} is missing from some shards (present in {len(partial)} of {len(readers)}); not used")
        names = require + sorted(in_all)
        arrays = {n: [] for n in names}
        with progress() as bar:
            task = bar.add_task("read", total=len(readers))
            for r in readers:
                for n in names:
                    a = r.read(n)
                    arrays[n].append(a[:, :1] if n in VIEW0_ONLY else a)
                bar.advance(task)
    finally:
        for r in readers:
            r.close()
    return {n: np.concatenate(v) for n, v in arrays.items()}, set(names)


@dataclass
class EvalInputs:
    """The arrays :func:`~handtools.core.eval.metrics.compute_metrics` takes, read from shards."""

    pred_joints: np.ndarray  # (N, 21, 3) metres, camera frame of view 0
    gt_joints: np.ndarray  # (N, 21, 3)
    pred_verts: Optional[np.ndarray] = None  # (N, V, 3) when every shard has meshes
    gt_verts: Optional[np.ndarray] = None
    pred_kp2d: Optional[np.ndarray] = None  # (N, 21, 2) px, predictions projected into view 0
    gt_kp2d: Optional[np.ndarray] = None  # (N, 21, 3) px + confidence, view 0

    @property
    def num_samples(self) -> int:
        return len(self.gt_joints)

    @property
    def have_mesh(self) -> bool:
        return self.pred_verts is not None

    def arrays(self) -> dict:
        """Keyword arguments of ``compute_metrics``."""
        return dict(pred_joints=self.pred_joints, gt_joints=self.gt_joints, pred_verts=self.pred_verts,
                    gt_verts=self.gt_verts, pred_kp2d=self.pred_kp2d, gt_kp2d=self.gt_kp2d)


def read_eval_inputs(paths: Sequence[Path], selected: Optional[list[str]]) -> EvalInputs:
    """Predictions and ground truth of every shard, checked against the selected metrics.

    Args:
        paths: predictions shards holding pred/joints3d beside the ground truth.
        selected: metric names chosen with ``--metric`` (their data must be in
            every shard), or None for every metric the shards allow.

    Raises:
        InputError: a shard lacks what a selected metric needs, or (2D metrics
            selected) a predicted joint lies behind the camera of view 0.
    """
    data, present = read_pooled(paths, REQUIRED, OPTIONAL)
    have_mesh = {"pred/verts3d", "verts3d"} <= present
    if selected is not None:
        mesh_sel = [k for k in selected if k in METRIC_GROUPS["mesh"]]
        if mesh_sel and not have_mesh:
            raise InputError(f"{', '.join(mesh_sel)} need pred/verts3d and verts3d in every input shard")
        kp_sel = [k for k in selected if k in METRIC_GROUPS["kp2d"]]
        if kp_sel and not {"keypoints2d", "K"} <= present:
            raise InputError(f"{', '.join(kp_sel)} need keypoints2d and K in every input shard")
    out = EvalInputs(data["pred/joints3d"], data["joints3d"])
    if have_mesh:
        out.pred_verts, out.gt_verts = data["pred/verts3d"], data["verts3d"]
    want_2d = selected is None or bool(set(selected) & set(METRIC_GROUPS["kp2d"]))
    if {"keypoints2d", "K"} <= present and want_2d:
        out.pred_kp2d, out.gt_kp2d = _projected_keypoints(data, explicit_2d=selected is not None)
    return out


def _projected_keypoints(data: dict, explicit_2d: bool):
    """Prediction joints projected into view 0 (pixels) and view-0 ground truth, or (None, None)."""
    pj = data["pred/joints3d"].astype(np.float64)  # (N, 21, 3) metres, camera frame of view 0
    behind = points_behind(pj)
    if behind:
        msg = f"{behind} predicted joint(s) lie behind the camera of view 0: 2D metrics are undefined"
        if explicit_2d:
            raise InputError(msg)
        log.warning(msg + "; skipping them")
        return None, None
    return project_pinhole(data["K"][:, 0], pj), data["keypoints2d"][:, 0]  # (N, 21, 2) px, (N, 21, 3)


def read_compare_curves(paths: Sequence[Path], curve: str) -> dict:
    """Curves of earlier runs: ``{label: (thresholds, pck)}`` from their evaluate JSON.

    A label seen twice gets a ``'`` appended. Raises InputError (naming
    ``--compare``) for a missing file, one that is not JSON, or one without ``curve``.
    """
    out = {}
    for p in paths:
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(f"--compare {p}: no such file") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"--compare {p}: not a JSON file from handtools evaluate ({exc})") from None
        c = data.get("curves", {}).get(curve) if isinstance(data, dict) else None
        if not isinstance(c, dict) or "thresholds" not in c or "pck" not in c:
            raise InputError(f"--compare {p}: has no {curve!r} curve (evaluate it with that curve's metric)")
        label = str(data.get("label") or p.stem)
        while label in out:
            label += "'"
        out[label] = (c["thresholds"], c["pck"])
    return out


def default_label(paths: Sequence[Path]) -> str:
    """The run's name: the folder of its shards when they share one, else ``run``."""
    parents = {p.resolve().parent for p in paths}
    return parents.pop().name if len(parents) == 1 else "run"
