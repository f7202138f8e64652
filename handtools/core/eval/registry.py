"""The names ``handtools evaluate`` reports: metrics, their groups, PCK curves.

Pure Python, no numpy or scipy, so a command module can import it at start-up
(``handtools`` imports every command module to build its CLI; the metric code in
:mod:`~handtools.core.eval.metrics` pulls in scipy, which a plain ``--help``
should not pay for).

Metric names follow ``[pa_|rr_]<metric>``: no prefix = raw (absolute camera
frame), ``pa_`` = Procrustes-aligned, ``rr_`` = root-relative.
"""

from __future__ import annotations

from collections.abc import Iterable

#: Every scalar metric ``compute_metrics`` can report, with its meaning.
METRICS: dict[str, str] = {
    "mpjpe_mm": "mean joint error, camera frame (mm)",
    "mpjpe_median_mm": "median joint error, camera frame (mm)",
    "pa_mpjpe_mm": "mean joint error after Procrustes alignment on joints (mm)",
    "pa_mpjpe_median_mm": "median joint error after Procrustes alignment (mm)",
    "rr_mpjpe_mm": "mean joint error, root (wrist) relative (mm)",
    "rr_mpjpe_median_mm": "median joint error, root relative (mm)",
    "pck_auc": "AUC of the joint PCK curve, 0-50 mm, 100 thresholds",
    "pa_pck_auc": "AUC of the Procrustes-aligned joint PCK curve, 0-50 mm",
    "rr_pck_auc": "AUC of the root-relative joint PCK curve, 0-50 mm",
    "stb_pck_auc_20_50": "AUC of the joint PCK curve, 20-50 mm (STB convention)",
    "rr_stb_pck_auc_20_50": "AUC of the root-relative joint PCK curve, 20-50 mm (STB literature)",
    "mpvpe_mm": "mean vertex error, camera frame (mm)",
    "pa_mpvpe_mm": "mean vertex error after Procrustes alignment on vertices (mm)",
    "rr_mpvpe_mm": "mean vertex error, root (wrist joint) relative (mm)",
    "pcv_auc": "AUC of the vertex PCK curve (PCV), 0-50 mm",
    "pa_pcv_auc": "AUC of the Procrustes-aligned vertex PCK curve, 0-50 mm",
    "rr_pcv_auc": "AUC of the root-relative vertex PCK curve, 0-50 mm",
    "f5": "mesh F-score at 5 mm, camera frame",
    "f15": "mesh F-score at 15 mm, camera frame",
    "pa_f5": "mesh F-score at 5 mm after Procrustes alignment",
    "pa_f15": "mesh F-score at 15 mm after Procrustes alignment",
    "rr_f5": "mesh F-score at 5 mm, root relative",
    "rr_f15": "mesh F-score at 15 mm, root relative",
    "kp2d_err_px": "mean 2D keypoint error (px)",
    "kp2d_median_px": "median 2D keypoint error (px)",
    "pck2d_auc": "AUC of the 2D PCK curve, 0-49 px",
}

#: Every PCK curve ``compute_metrics`` can report (its ``curves`` keys) -> the AUC metric of that curve.
CURVES: dict[str, str] = {
    "pck": "pck_auc", "pa_pck": "pa_pck_auc", "rr_pck": "rr_pck_auc",
    "stb_pck_20_50": "stb_pck_auc_20_50", "rr_stb_pck_20_50": "rr_stb_pck_auc_20_50",
    "pcv": "pcv_auc", "pa_pcv": "pa_pcv_auc", "rr_pcv": "rr_pcv_auc",
    "pck2d": "pck2d_auc",
}

_FREIHAND = (
    "mpjpe_mm", "pck_auc", "pa_mpjpe_mm", "pa_pck_auc",
    "mpvpe_mm", "pcv_auc", "pa_mpvpe_mm", "pa_pcv_auc",
    "f5", "f15", "pa_f5", "pa_f15",
)

#: Named groups of metrics; ``--metric`` takes a group or a single metric name.
METRIC_GROUPS: dict[str, tuple[str, ...]] = {
    "all": tuple(METRICS),
    "freihand": _FREIHAND,
    "mpjpe": tuple(k for k in METRICS if "mpjpe" in k),
    "pck": ("pck_auc", "pa_pck_auc", "rr_pck_auc"),
    "stb": ("stb_pck_auc_20_50", "rr_stb_pck_auc_20_50"),
    "mpvpe": ("mpvpe_mm", "pa_mpvpe_mm", "rr_mpvpe_mm"),
    "pcv": ("pcv_auc", "pa_pcv_auc", "rr_pcv_auc"),
    "fscore": ("f5", "f15", "pa_f5", "pa_f15", "rr_f5", "rr_f15"),
    "kp2d": ("kp2d_err_px", "kp2d_median_px", "pck2d_auc"),
    "pa": tuple(k for k in METRICS if k.startswith("pa_")),
    "rr": tuple(k for k in METRICS if k.startswith("rr_")),
}
METRIC_GROUPS["joints"] = METRIC_GROUPS["mpjpe"] + METRIC_GROUPS["pck"] + METRIC_GROUPS["stb"]
METRIC_GROUPS["mesh"] = METRIC_GROUPS["mpvpe"] + METRIC_GROUPS["pcv"] + METRIC_GROUPS["fscore"]


def resolve_metrics(names: Iterable[str] | str | None) -> list[str]:
    """Expand metric and group names into metric names, in registry order.

    Args:
        names: metric names (keys of ``METRICS``), group names (keys of
            ``METRIC_GROUPS``), one name as a string, or None for all.

    Returns:
        The selected metric names, without duplicates, in ``METRICS`` order.

    Raises:
        ValueError: an unknown name, listing the known ones.
    """
    if names is None:
        return list(METRICS)
    if isinstance(names, str):
        names = [names]
    chosen: set[str] = set()
    for name in names:
        if name in METRIC_GROUPS:
            chosen.update(METRIC_GROUPS[name])
        elif name in METRICS:
            chosen.add(name)
        else:
            raise ValueError(
                f"unknown metric {name!r}; groups: {', '.join(METRIC_GROUPS)}; "
                f"metrics: {', '.join(METRICS)}"
            )
    return [k for k in METRICS if k in chosen]
