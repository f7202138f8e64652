"""One package per paper. Each holds a config dataclass with the paper's defaults, its
loss, and its predictor registered by checkpoint kind; a method imports the shared
layers of ``handtools.core``, never another method (checked by import-linter)."""

from __future__ import annotations

import importlib
from pathlib import Path

#: The method packages whose predictors :func:`load_predictor` knows.
METHODS = ("prior", "binocular", "s2hand")


def register_predictors() -> None:
    """Register every method's predictor (importing a method's predictor module does it)."""
    for name in METHODS:
        importlib.import_module(f"handtools.core.methods.{name}.predictor")


def load_predictor(path: Path, hand, device, mode: str = "auto"):
    """The predictor for a checkpoint file of any registered kind, in ``mode``
    (``auto``, ``monocular`` or ``binocular``)."""
    register_predictors()
    from handtools.core.learning.predictors import load_predictor_from

    return load_predictor_from(path, hand, device, mode)
