"""TensorBoard event files (``--tensorboard DIR`` of the learning commands).

A thin layer over :class:`torch.utils.tensorboard.SummaryWriter` (the ``tensorboard``
package), imported only when a run asks for it. Read the files with ``tensorboard
--logdir DIR`` or :class:`tensorboard.backend.event_processing.event_accumulator.EventAccumulator`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np


class TensorBoardWriter:
    """Scalars and images for one run, written under ``logdir`` (created if missing).

    Args:
        logdir: folder of the run's event files.
        purge_step: on ``--resume``, the step the run continues from: events an earlier,
            interrupted process wrote at or after it are hidden by TensorBoard, so a
            requeued job shows one curve, not two overlapping ones.
    """

    def __init__(self, logdir: Path, purge_step: Optional[int] = None):
        from torch.utils.tensorboard import SummaryWriter

        self.logdir = Path(logdir)
        self.logdir.mkdir(parents=True, exist_ok=True)
        self._w = SummaryWriter(log_dir=str(self.logdir), purge_step=purge_step or None, flush_secs=30)

    def scalars(self, step: int, values: dict[str, float]) -> None:
        """One point per tag at ``step``; non-finite values are written as they are."""
        for tag, value in values.items():
            self._w.add_scalar(tag, float(value), global_step=int(step))

    def image(self, tag: str, step: int, image: np.ndarray) -> None:
        """``image``: (H, W, 3) uint8 RGB."""
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image {tag!r}: expected (H, W, 3) uint8, got {image.shape} {image.dtype}")
        self._w.add_image(tag, image, global_step=int(step), dataformats="HWC")

    def text(self, tag: str, step: int, text: str) -> None:
        self._w.add_text(tag, text, global_step=int(step))

    def flush(self) -> None:
        self._w.flush()

    def close(self) -> None:
        self._w.close()
