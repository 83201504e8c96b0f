"""The figure of the imitation experiment (slicing/experiments/imitation_plots.py) from synthetic curves."""

from __future__ import annotations

import numpy as np

from slicing.experiments.imitation_plots import plot_learning_curves
from slicing.rl.settings import ImitationSettings
from tests.experiments.conftest import PNG


def test_curves_baseline_and_clone_lines(tmp_path, figures):
    s = ImitationSettings(algo="sac", iterations=3, early=2)
    curves = {"bc_warm_start": [0.8, None, 0.9], "scratch": [0.3, 0.5, 0.6]}
    path = plot_learning_curves(curves, 0.85, s, tmp_path / "curve.png", clone_reward=0.82)
    assert path.read_bytes()[:8] == PNG and path.stat().st_size > 1000
    (fig,) = figures
    (ax,) = fig.axes
    warm, scratch, base, clone = ax.lines
    assert [warm.get_label(), scratch.get_label()] == ["SAC BC warm start", "SAC from scratch"]
    assert list(warm.get_xdata()) == [1, 2, 3] and np.isnan(warm.get_ydata()[1])  # a missing iteration: a gap
    assert list(base.get_ydata()) == [0.85, 0.85] and list(clone.get_ydata()) == [0.82, 0.82]
    assert "first 2 iterations" in ax.get_title()


def test_without_a_clone_reward_there_is_no_clone_line(tmp_path, figures):
    plot_learning_curves({"scratch": [0.3]}, 0.5, ImitationSettings(iterations=1, early=1), tmp_path / "c.png")
    (fig,) = figures
    assert len(fig.axes[0].lines) == 2  # the curve and the baseline
