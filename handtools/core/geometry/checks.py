"""Input checks shared by the core modules: raise ``ValueError`` with a clear message."""

from __future__ import annotations

from torch import Tensor


def check_tensor(x: Tensor, name: str, shape: tuple) -> None:
    """Raise unless ``x`` is a floating tensor of ``shape`` (None = any size)."""
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch tensor, got {type(x).__name__}")
    if x.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, x.shape)):
        want = ", ".join("*" if s is None else str(s) for s in shape)
        raise ValueError(f"{name} must have shape ({want}), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be floating point, got {x.dtype}")
