"""Atlas / Atlas+ (BoTorch GP + Thompson sampling + a Lagrangian) on the analytic model, with a small budget."""

from __future__ import annotations

import numpy as np
import pytest

from slicing.optim.bo import AtlasSettings, atlas
from slicing.optim.microopt import traffic_points
from tests.optim.slice_fixtures import analytic_qos

ETA = np.array([1 / 50, 1 / 4500])
R_MAX = np.array([50.0, 4500.0])


def test_atlas_finds_a_feasible_allocation_and_atlas_plus_needs_less_on_a_spread() -> None:
    traffic = traffic_points(np.array([3.0]), np.array([1.5]), 1.0, 5.0, 16)
    s = AtlasSettings(initial=6, iterations=12, candidates=256, seed=1)
    peak = atlas(analytic_qos, traffic, 5.0, 0.1, ETA, R_MAX, s)
    plus = atlas(analytic_qos, traffic, 5.0, 0.1, ETA, R_MAX, s.model_copy(update={"traffic": "distribution"}))
    assert peak.feasible.all() and plus.feasible.all()
    assert peak.evaluations == plus.evaluations == 18
    assert (peak.e_beta <= 0.1).all() and (plus.e_beta <= 0.1 + 1e-6).all()
    # Atlas sizes for the peak (5 users/s) of the spread; Atlas+ for the distribution, which needs less
    assert plus.objective[0] < peak.objective[0]
    best = [h for h in peak.history[0] if np.isfinite(h)]
    assert best == sorted(best, reverse=True)  # the best feasible objective so far never rises


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="beta_thresh"):
        atlas(analytic_qos, np.full((1, 4), 2.0), 5.0, 1.5, ETA, R_MAX, AtlasSettings(iterations=1))
    with pytest.raises(ValueError, match="traffic"):
        atlas(analytic_qos, np.full((1, 4), -2.0), 5.0, 0.1, ETA, R_MAX, AtlasSettings(iterations=1))
