"""The figures of the transfer experiment (slicing/experiments/transfer_plots.py) from synthetic curves."""

from __future__ import annotations

import numpy as np

from slicing.experiments.transfer_plots import plot_curves, plot_distance_gain
from tests.experiments.conftest import PNG


def test_curves_main_runs_solid_other_strategies_dashed(tmp_path, figures):
    curves = {"scratch": [0.2, 0.4], "integrated_src_1": [0.5, 0.6], "integrated_src_2": [0.3, None],
              "integrated_src_3": [0.1, 0.1], "model_src_1": [0.45, 0.5]}
    path = plot_curves(curves, "src_1", "src_2", baseline=0.55, early=1, path=tmp_path / "curves.png")
    assert path.read_bytes()[:8] == PNG and path.stat().st_size > 1000
    (fig,) = figures
    (ax,) = fig.axes
    labels = [line.get_label() for line in ax.lines]
    # integrated from a source neither nearest nor farthest is not drawn; the baseline is a reference line
    assert labels == ["from scratch (DRL)", "integrated TL from nearest (src_1)", "integrated TL from farthest (src_2)",
                      "model from src_1", "traffic-proportional baseline"]
    assert [line.get_linestyle() for line in ax.lines[:4]] == ["-", "-", "-", "--"]
    assert np.isnan(ax.lines[2].get_ydata()[1])
    assert "first 1 iterations" in ax.get_title()


def test_distance_gain_has_a_point_per_source_with_a_gain(tmp_path, figures):
    ranking = [("src_1", 0.5), ("src_2", 1.5), ("src_3", 2.0)]
    path = plot_distance_gain(ranking, {"src_1": 0.1, "src_2": -0.05, "src_3": None}, tmp_path / "dg.png")
    assert path.read_bytes()[:8] == PNG
    (fig,) = figures
    (ax,) = fig.axes
    points = np.concatenate([c.get_offsets() for c in ax.collections])
    np.testing.assert_allclose(points, [[0.5, 0.1], [1.5, -0.05]])  # src_3 (no gain) is left out
    assert [t.get_text() for t in ax.texts] == ["src_1", "src_2"]
