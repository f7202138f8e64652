"""The FreiHAND benchmark's submission format (``pred.json`` for the Codalab server).

Official ``pred.py`` ``dump`` (lmb-freiburg/freihand): ``[xyz_list, verts_list]``,
N lists of 21 ``[x, y, z]`` and N lists of 778 ``[x, y, z]``, metres, camera
frame, in the order of the evaluation set.
"""

from __future__ import annotations

from handtools.core.eval._checks import as_points
from handtools.core.hand.joints import NUM_JOINTS, NUM_VERTICES

#: Samples in the official FreiHAND evaluation set (``pred.json`` must have them all, in order).
FREIHAND_EVAL_SAMPLES = 3960


def freihand_submission(pred_joints, pred_verts) -> list:
    """The structure of the FreiHAND ``pred.json`` (official ``pred.py`` ``dump``).

    Args:
        pred_joints: (N, 21, 3) float, metres, camera frame, FreiHAND joint order.
        pred_verts: (N, 778, 3) float, metres, same frame.

    Returns:
        ``[xyz_list, verts_list]``: ``xyz_list`` has N entries of 21 ``[x, y, z]``
        lists, ``verts_list`` N entries of 778; plain Python floats, ready for
        ``json.dump``. The official evaluation set has N = ``FREIHAND_EVAL_SAMPLES``.
    """
    j = as_points(pred_joints, "pred_joints", 3, count=NUM_JOINTS)
    v = as_points(pred_verts, "pred_verts", 3, count=NUM_VERTICES)
    if j.shape[0] != v.shape[0]:
        raise ValueError(f"pred_joints has {j.shape[0]} samples but pred_verts has {v.shape[0]}")
    return [j.tolist(), v.tolist()]
