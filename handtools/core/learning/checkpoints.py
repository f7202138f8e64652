"""Checkpoint files: one ``.pt`` per run holding state dicts, the run's config and the
hand model's identity (DESIGN.md, "Checkpoints"). Written atomically, read with
``weights_only=True`` (never unpickling code)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

#: ``format`` field of every checkpoint this package writes.
CHECKPOINT_FORMAT = "handtools-checkpoint-1"
#: Keys every checkpoint has (the trainer writes more: optimizer, scheduler, RNG, position).
REQUIRED_KEYS = ("model", "meta")


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temp file in the target folder, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    """Load a handtools checkpoint with ``weights_only=True``.

    Raises ValueError with one line naming the file when it is missing, unreadable,
    not a handtools checkpoint, or lacks a required key.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt files
        raise ValueError(f"{path}: not a readable checkpoint ({type(exc).__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a handtools checkpoint")
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing or not isinstance(ckpt.get("meta"), dict):
        raise ValueError(f"{path}: damaged checkpoint (missing {', '.join(missing) or 'meta'})")
    return ckpt


def checkpoint_kind(ckpt: dict) -> str | None:
    """The model kind recorded in a checkpoint's ``meta`` (``prior``, ``stereo``, ...)."""
    return ckpt.get("meta", {}).get("kind")
