"""Checkpoint files: one ``.pt`` per run holding state dicts, the run's config and the
hand model's identity (DESIGN.md, "Checkpoints"). Written atomically, read with
``weights_only=True`` (never unpickling code)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

from handtools import durable

#: ``format`` field of every checkpoint this package writes.
CHECKPOINT_FORMAT = "handtools-checkpoint-1"
#: The name that stands for the prior shipped in the package wherever a checkpoint path is read.
SHIPPED_PRIOR = "default"


def shipped_prior_path() -> Path:
    """Path of the prior shipped in the package, ``handtools/data/prior_default.pt``: ResNet-10
    at 64 px crops, trained on synthetic studio frames by ``bench/bench_prior.py --preset
    shipped --export`` (its ``meta["provenance"]`` holds the exact command)."""
    return Path(__file__).resolve().parents[2] / "data" / "prior_default.pt"


#: Keys every checkpoint has (the trainer writes more: optimizer, scheduler, RNG, position).
REQUIRED_KEYS = ("model", "meta")


class _ErrorKeepingFile:
    """A binary file whose first ``OSError`` is kept: ``torch.save`` turns a failed write
    into an opaque ``RuntimeError`` ("enforce fail at inline_container.cc"), and the
    caller re-raises the real cause (e.g. ``ENOSPC``) instead."""

    def __init__(self, raw):
        self.raw = raw
        self.error: Optional[OSError] = None

    def write(self, data) -> int:
        try:
            return self.raw.write(data)
        except OSError as exc:
            self.error = self.error or exc
            raise

    def flush(self) -> None:
        self.raw.flush()


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` durably: a temporary file in the target folder, flushed and fsync'ed,
    then renamed over ``path`` and the folder fsync'ed (:mod:`handtools.durable`).

    A reader never sees a partial checkpoint, and ``path`` (an older checkpoint) is
    untouched until the new one is complete. On any failure, Ctrl-C included, the
    temporary file is removed; a process killed outright leaves a temporary file named
    ``.NAME.tmp-HOST-PID-RANDOM`` that :func:`handtools.durable.clean_stale_temps`
    recognises.

    Raises:
        OSError: the write failed; ``errno`` ENOSPC/EDQUOT for a full disk or quota,
            with a one-line message naming ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = durable.temp_path(path)
    try:
        with os.fdopen(durable.create_exclusive(tmp), "wb") as raw:
            f = _ErrorKeepingFile(raw)
            try:
                torch.save(obj, f)
                raw.flush()
                os.fsync(raw.fileno())
            except RuntimeError:
                if f.error is None:
                    raise
                raise f.error from None
        durable.publish(tmp, path, overwrite=True)
    except OSError as exc:
        durable.remove_quietly(tmp)
        if durable.is_disk_full(exc):
            raise OSError(exc.errno, f"disk full: cannot write checkpoint {path}"
                          f"{_free_note(path.parent)}; the previous checkpoint, if any, is kept") from None
        raise
    except BaseException:
        durable.remove_quietly(tmp)
        raise


def _free_note(folder: Path) -> str:
    free = durable.free_bytes(folder)
    return "" if free is None else f" ({free / 1e6:.1f} MB free)"


def load_checkpoint(path: Path, map_location="cpu", meta_keys: Sequence[str] = ()) -> dict:
    """Load a handtools checkpoint with ``weights_only=True``.

    Args:
        path: the ``.pt`` file, or ``"default"`` (:data:`SHIPPED_PRIOR`) for the prior shipped
            in the package. map_location: as for ``torch.load``.
        meta_keys: keys ``meta`` must hold as well (``("kind", "net")`` for a model
            that is rebuilt from its ``meta["net"]`` configuration).

    Raises ValueError with one line naming the file when it is missing, unreadable,
    not a handtools checkpoint, or lacks a required key.
    """
    if str(path) == SHIPPED_PRIOR:
        path = shipped_prior_path()
        if not path.is_file():
            raise ValueError(f"{path}: the shipped prior is missing from this installation (reinstall handtools)")
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
    missing = [k for k in meta_keys if k not in ckpt["meta"]]
    if missing:
        raise ValueError(f"{path}: damaged checkpoint (meta lacks {', '.join(missing)})")
    if "net" in meta_keys and not isinstance(ckpt["meta"]["net"], dict):
        raise ValueError(f"{path}: damaged checkpoint (meta.net is not a configuration)")
    return ckpt


def checkpoint_kind(ckpt: dict) -> str | None:
    """The model kind recorded in a checkpoint's ``meta`` (``prior``, ``stereo``, ...)."""
    return ckpt.get("meta", {}).get("kind")
