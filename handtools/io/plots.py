"""Plots of evaluation results: PCK curves of several runs in one figure.

Uses matplotlib's object API with the Agg canvas (no pyplot, no display needed).
Files are written atomically (:func:`handtools.io.files.atomic_output`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from handtools.core.eval.pck import auc
from handtools.io.files import atomic_output


def legend_label(label: str, thresholds: Sequence[float], pck: Sequence[float]) -> str:
    """Legend entry ``"<label> (AUC=0.xxx)"``; AUC over the curve's own threshold range."""
    return f"{label} (AUC={auc(thresholds, pck):.3f})"


def plot_pck(curves: Mapping[str, tuple[Sequence[float], Sequence[float]]], path,
             title: str = "PCK", unit: str = "mm", dpi: int = 120) -> Path:
    """Draw PCK curves of several runs in one plot, AUC in the legend, and save it.

    Args:
        curves: ``{label: (thresholds, pck)}``; thresholds (T,) increasing, in
            ``unit`` (mm for 3D curves from ``compute_metrics``, px for 2D);
            pck (T,) fractions in [0, 1], plotted in percent.
        path: output file; the suffix picks the format (``.png``, ``.pdf``, ``.svg``).
            Its folder must exist. An existing file is replaced.
        title: plot title. unit: x-axis unit shown in the label. dpi: raster resolution.

    Returns:
        The written path.

    Raises:
        ValueError: no curves, or a curve with mismatched or malformed arrays.
    """
    if not curves:
        raise ValueError("plot_pck: no curves given")
    path = Path(path)
    if not path.parent.is_dir():
        raise ValueError(f"plot_pck: folder {str(path.parent)!r} does not exist")
    fmt = path.suffix.lstrip(".").lower() or "png"

    fig = Figure(figsize=(6.0, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for label, (thresholds, pck) in curves.items():
        t = np.asarray(thresholds, dtype=np.float64)
        p = np.asarray(pck, dtype=np.float64)
        if t.ndim != 1 or t.shape != p.shape:
            raise ValueError(
                f"plot_pck: curve {label!r}: thresholds {t.shape} and pck {p.shape} must be equal 1-D shapes"
            )
        if not np.isfinite(p).all() or (p < 0).any() or (p > 1).any():
            raise ValueError(f"plot_pck: curve {label!r}: pck values must lie in [0, 1]")
        ax.plot(t, 100.0 * p, label=legend_label(str(label), t, p))  # auc() validates t
    ax.set_xlabel(f"error threshold ({unit})")
    ax.set_ylabel("PCK (%)")
    ax.set_ylim(0.0, 100.0)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()

    with atomic_output(path) as fh:
        fig.savefig(fh, format=fmt, dpi=dpi)
    return path
