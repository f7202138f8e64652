"""Reductions and weights shared by every loss: one place, so the supervised and the
self-supervised losses weigh and average terms the same way."""

from __future__ import annotations

import torch
from torch import Tensor


def check_reduction(reduction: str, allowed: tuple[str, ...], name: str) -> None:
    """Raise unless ``reduction`` is one of ``allowed``."""
    if reduction not in allowed:
        raise ValueError(f"{name}: reduction must be one of {allowed}, got {reduction!r}")


def batch_mean(per_sample: Tensor, weight, name: str) -> Tensor:
    """(B,) per-sample losses -> scalar mean, or weighted mean with (B,) ``weight``
    (``sum_b w_b l_b / sum_b w_b``; all-zero weights give 0)."""
    if weight is None:
        return per_sample.mean()
    w = torch.as_tensor(weight, dtype=per_sample.dtype, device=per_sample.device)
    if tuple(w.shape) != tuple(per_sample.shape):
        raise ValueError(f"{name}: weight must be ({per_sample.shape[0]},), got {tuple(w.shape)}")
    return (w * per_sample).sum() / w.sum().clamp_min(torch.finfo(per_sample.dtype).tiny)


def check_pair(pred: torch.Tensor, gt: torch.Tensor, name: str) -> None:
    if pred.ndim != 3:
        raise ValueError(f"{name}: pred must be (B, N, C), got {tuple(pred.shape)}")
    if pred.shape != gt.shape:
        raise ValueError(f"{name}: pred {tuple(pred.shape)} and gt {tuple(gt.shape)} must have the same shape")
    if not pred.is_floating_point():
        raise ValueError(f"{name}: pred must be floating point, got {pred.dtype}")


def weight_to(weight: torch.Tensor | None, like: torch.Tensor, shapes: tuple[int, ...], name: str) -> torch.Tensor | None:
    """Weight as a tensor broadcastable to ``like`` (B, N, C); ``shapes``: accepted ndims."""
    if weight is None:
        return None
    weight = torch.as_tensor(weight, device=like.device).to(like.dtype)
    b, n, c = like.shape
    allowed = {1: (b,), 2: (b, n), 3: (b, n, c)}
    if weight.ndim not in shapes or tuple(weight.shape) != allowed[weight.ndim]:
        expected = " or ".join(str(allowed[d]) for d in shapes)
        raise ValueError(f"{name}: weight must be {expected}, got {tuple(weight.shape)}")
    while weight.ndim < 3:
        weight = weight[..., None]
    return weight


def reduce_terms(terms: torch.Tensor, weight: torch.Tensor | None, reduction: str) -> torch.Tensor:
    if weight is None:
        if reduction == "mean":
            return terms.mean()
        return terms.sum() if reduction == "sum" else terms
    weighted = terms * weight
    if reduction == "none":
        return weighted
    total = weighted.sum()
    if reduction == "sum":
        return total
    denom = weight.expand_as(terms).sum()
    return total / denom.clamp_min(torch.finfo(terms.dtype).tiny)


