"""CI gates on metrics: ``METRIC=VALUE`` thresholds a run must stay above (or below).

Pure Python. ``handtools evaluate --fail-under pck_auc=0.8 --fail-over mpjpe_mm=20``
parses each option with :func:`parse_gate` and fails when :func:`failed_gates`
returns anything.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping


def parse_gate(spec: str, known: Iterable[str]) -> tuple[str, float]:
    """``"METRIC=VALUE"`` -> ``(metric, value)``.

    Args:
        spec: the option's text, e.g. ``"pck_auc=0.8"``.
        known: the metric names a gate may name (e.g. ``METRICS``).

    Raises:
        ValueError: no ``=``, an empty or unknown metric name, or a value that is
            not a finite number.
    """
    known = list(known)
    name, sep, value = spec.partition("=")
    name = name.strip()
    if not sep or not name:
        raise ValueError(f"expected METRIC=VALUE, got {spec!r}")
    if name not in known:
        raise ValueError(f"unknown metric {name!r}; known: {', '.join(known)}")
    try:
        threshold = float(value)
    except ValueError:
        raise ValueError(f"{spec!r}: {value!r} is not a number") from None
    if not math.isfinite(threshold):
        raise ValueError(f"{spec!r}: the value must be finite")
    return name, threshold


def failed_gates(result: Mapping[str, float], gates: Iterable[tuple[str, float, str]]) -> list[str]:
    """The gates a result fails, as ``"<metric> = <value> <op> <threshold>"`` lines.

    Args:
        result: metric name -> value (every gate's metric must be present).
        gates: ``(metric, threshold, op)``; op ``"<"`` fails when value < threshold
            (``--fail-under``), ``">"`` when value > threshold (``--fail-over``).
    """
    failed = []
    for name, threshold, op in gates:
        value = result[name]
        if (op == "<" and value < threshold) or (op == ">" and value > threshold):
            failed.append(f"{name} = {value:.6g} {op} {threshold:g}")
    return failed
