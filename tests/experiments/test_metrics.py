"""Per-phase metrics of one scheme's run (slicing/experiments/metrics.py)."""

from __future__ import annotations

import numpy as np
import pytest

from slicing.experiments.metrics import phase_metrics


def test_phase_metrics_on_hand_computed_values():
    r = np.array([[[1.0, 0.5, 0.0], [0.9995, 0.2, 0.0]]])  # [T=1, N=2, S=3]
    mask = np.array([[[True, True, False], [True, True, False]]])
    m = phase_metrics(r, mask, share_sum=np.array([[1.0, 0.7]]))
    assert m["mean_satisfaction"] == pytest.approx((1 + 0.5 + 0.9995 + 0.2) / 4)
    assert m["p_satisfied"] == pytest.approx(0.5)
    assert m["mean_utility"] == pytest.approx((np.log(2) + np.log(1.5) + np.log(1.9995) + np.log(1.2)) / 2)
    assert m["max_share_sum"] == 1.0


def test_inactive_slices_do_not_count_and_no_active_slice_gives_nan():
    r = np.array([[[0.0, 1.0]], [[1.0, 0.3]]])  # [T=2, N=1, S=2]; the 0.0 and 0.3 are of inactive slices
    mask = np.array([[[False, True]], [[True, False]]])
    m = phase_metrics(r, mask, share_sum=np.array([[0.4], [0.9]]))
    assert m["mean_satisfaction"] == 1.0 and m["p_satisfied"] == 1.0 and m["max_share_sum"] == 0.9
    assert m["mean_utility"] == pytest.approx(np.log(2))  # one active slice at r = 1 in each period
    empty = phase_metrics(r, np.zeros_like(mask), share_sum=np.zeros((2, 1)))
    assert np.isnan(empty["mean_satisfaction"]) and np.isnan(empty["p_satisfied"]) and empty["mean_utility"] == 0.0
