"""Tests for handtools.io.plots: PCK figure written atomically, AUC in the legend."""

from __future__ import annotations

import os

import numpy as np
import pytest
from matplotlib.image import imread

from handtools.io.plots import legend_label, plot_pck


def _curves():
    t = np.linspace(0.0, 50.0, 100)
    return {"run A": (t, t / 50.0), "run B": (t, np.ones_like(t))}


def test_plot_pck_writes_png(tmp_path):
    out = plot_pck(_curves(), tmp_path / "pck.png", title="FreiHAND PA")
    assert out == tmp_path / "pck.png"
    img = imread(out)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    assert os.listdir(tmp_path) == ["pck.png"]  # no temporary file left behind


def test_plot_pck_replaces_existing_and_other_formats(tmp_path):
    target = tmp_path / "pck.svg"
    target.write_text("old")
    plot_pck(_curves(), target)
    assert target.read_text().lstrip().startswith("<?xml")
    assert sorted(os.listdir(tmp_path)) == ["pck.svg"]


def test_legend_label_reports_auc():
    t = np.linspace(0.0, 50.0, 100)
    assert legend_label("ramp", t, t / 50.0) == "ramp (AUC=0.500)"
    assert legend_label("perfect", t, np.ones_like(t)) == "perfect (AUC=1.000)"


def test_plot_pck_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="no curves"):
        plot_pck({}, tmp_path / "a.png")
    with pytest.raises(ValueError, match="equal 1-D shapes"):
        plot_pck({"x": ([0.0, 1.0], [0.5])}, tmp_path / "a.png")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        plot_pck({"x": ([0.0, 1.0], [0.5, 50.0])}, tmp_path / "a.png")
    with pytest.raises(ValueError, match="does not exist"):
        plot_pck(_curves(), tmp_path / "missing" / "a.png")
    assert os.listdir(tmp_path) == []
