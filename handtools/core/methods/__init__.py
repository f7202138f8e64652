"""One package per paper. Each holds a config dataclass with the paper's defaults, its
loss, and its predictor registered by checkpoint kind; a method imports the shared
layers of ``handtools.core``, never another method (checked by import-linter)."""

from __future__ import annotations

import importlib
from pathlib import Path

#: The method packages whose predictors :func:`load_predictor` knows.
METHODS = ("prior", "binocular", "s2hand")


def load_predictor(path: Path, hand, device, mode: str = "auto"):
    """The predictor for a checkpoint file of any registered kind, in ``mode``
    (``auto``, ``monocular`` or ``binocular``)."""
    for name in METHODS:  # importing a method's predictor module registers it
        importlib.import_module(f"handtools.core.methods.{name}.predictor")
    from handtools.core.learning.predictors import load_predictor_from

    return load_predictor_from(path, hand, device, mode)
