"""CI gates: METRIC=VALUE parsing and which results fail."""

from __future__ import annotations

import pytest

from handtools.core.eval.gates import failed_gates, parse_gate
from handtools.core.eval.metrics import METRICS


def test_parse_gate():
    assert parse_gate("pck_auc=0.8", METRICS) == ("pck_auc", 0.8)
    assert parse_gate(" mpjpe_mm =1e1", METRICS) == ("mpjpe_mm", 10.0)
    for spec, match in (("pck_aux=0.8", "unknown metric 'pck_aux'"), ("pck_auc", "expected METRIC=VALUE"),
                        ("=3", "expected METRIC=VALUE"), ("pck_auc=high", "is not a number"),
                        ("pck_auc=nan", "must be finite"), ("pck_auc=inf", "must be finite")):
        with pytest.raises(ValueError, match=match):
            parse_gate(spec, METRICS)


def test_failed_gates_are_strict():
    result = {"pck_auc": 0.8, "mpjpe_mm": 20.0}
    assert failed_gates(result, [("pck_auc", 0.8, "<"), ("mpjpe_mm", 20.0, ">")]) == []  # equal passes
    assert failed_gates(result, [("pck_auc", 0.9, "<"), ("mpjpe_mm", 19.5, ">")]) == [
        "pck_auc = 0.8 < 0.9", "mpjpe_mm = 20 > 19.5"]
