"""Predictions of a ``pretrain`` checkpoint (kind ``prior``) on single views."""

from __future__ import annotations

from handtools.core.learning.predictors import LixelPredictor, register_predictor


@register_predictor("prior", "auto", "monocular")
class PriorPredictor(LixelPredictor):
    """Monocular hand prior: u, v (+ root-relative z) per vertex, placed at the wrist depth
    (``root_depth`` or the ground-truth wrist for root-relative evaluation)."""

    mode = "monocular"
