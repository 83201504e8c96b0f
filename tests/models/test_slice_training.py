"""Training the slice model on a tiny grid of the ground-truth simulator: the data, the splits, the fit."""

from __future__ import annotations

import numpy as np
import pytest

from slicing.config import E2eConfig
from slicing.models.slice_training import (
    SliceModelSettings,
    cpu_bottleneck_curve,
    grid_points,
    off_grid_points,
    train_slice_model,
)
from tests.optim.slice_fixtures import TINY_SETTINGS

TINY = SliceModelSettings(**TINY_SETTINGS)


def test_the_paper_grid_has_320_points_and_the_test_points_lie_off_it() -> None:
    s = SliceModelSettings()
    grid = grid_points(s)
    assert grid.shape == (320, 3)
    off = off_grid_points(s, np.random.default_rng(0))
    assert len(off) == 64
    on_grid = (np.isin(off[:, 0], grid[:, 0]) | np.isin(off[:, 1], grid[:, 1]) | np.isin(off[:, 2], grid[:, 2]))
    assert not on_grid.any()  # every coordinate strictly between two grid values


def test_bad_grid_axis_is_refused() -> None:
    with pytest.raises(ValueError, match="grid axis"):
        grid_points(SliceModelSettings(traffic=(5.0, 1.0, 1.0)))


def test_tiny_training_learns_and_reports_every_split() -> None:
    model, report = train_slice_model(E2eConfig(seed=0), TINY)
    assert set(report.metrics) == {"train", "val", "test"}
    assert report.samples["train"] + report.samples["val"] == 27 * 6 * 4
    hist = report.history
    assert hist["train_nll"][-1] < hist["train_nll"][0]  # it learns
    assert hist["train_mse"][-1] < 0.5 * hist["train_mse"][0]
    assert not model.training and model.traffic_max == 5.0
    # more bandwidth at ample CPU: more throughput per user (the simulator's direction)
    curve = cpu_bottleneck_curve(model, 2.0, np.array([5.0, 40.0]), np.array([4000.0]))
    assert curve.shape == (2, 1) and curve[1, 0] > curve[0, 0]


def test_training_is_seeded() -> None:
    a = train_slice_model(E2eConfig(seed=0), TINY.model_copy(update={"epochs": 5}))[1]
    b = train_slice_model(E2eConfig(seed=0), TINY.model_copy(update={"epochs": 5}))[1]
    assert a.metrics == b.metrics
