"""Model-free baselines: equal shares, the traffic baseline with and without the exact budget."""

from __future__ import annotations

import numpy as np

from slicing.optim.baselines import equal_share, proportional_shares, traffic_proportional
from slicing.optim.feasible import enforce_budget
from tests.optim.helpers import assert_feasible


def test_equal_share() -> None:
    mask = np.array([[True, True, True, False], [True, False, False, False], [False] * 4, [True] * 4])
    x = equal_share(mask)
    assert_feasible(x, mask)
    np.testing.assert_allclose(x[0], [1 / 3, 1 / 3, 1 / 3, 0])
    np.testing.assert_array_equal(x[1:], [[1, 0, 0, 0], [0, 0, 0, 0], [0.25] * 4])


def test_traffic_proportional() -> None:
    mask = np.array([[True, True, True, False], [True, True, False, False], [True, True, True, True]])
    offered = np.array([[1.0, 3.0, 0.0, 50.0], [0.0, 0.0, 7.0, 0.0], [2.0, -1.0, np.nan, 2.0]])
    x = traffic_proportional(offered, mask)
    assert_feasible(x, mask)
    np.testing.assert_allclose(x[0], [0.25, 0.75, 0.0, 0.0])  # inactive slice's traffic ignored
    np.testing.assert_allclose(x[1], [0.5, 0.5, 0.0, 0.0])  # no traffic on active slices: equal shares
    np.testing.assert_allclose(x[2], [0.5, 0.0, 0.0, 0.5])  # negative / NaN offered count as 0
    rng = np.random.default_rng(3)
    big_mask = rng.random((500, 4)) < 0.7
    big = traffic_proportional(rng.exponential(5.0, (500, 4)), big_mask)
    assert_feasible(big, big_mask)
    np.testing.assert_allclose(big.sum(axis=1)[big_mask.any(axis=1)], 1.0, atol=1e-12)


def test_proportional_shares_is_the_traffic_baseline_before_the_exact_budget() -> None:
    rng = np.random.default_rng(8)
    mask = rng.random((2000, 4)) < 0.7
    offered = rng.exponential(4.0, (2000, 4)) * (rng.random((2000, 4)) < 0.8)  # some cells offer nothing
    offered[rng.random((2000, 4)) < 0.02] = np.nan
    raw = proportional_shares(offered, mask)
    assert np.all(raw[~mask] == 0) and np.all(raw >= 0)
    np.testing.assert_allclose(raw.sum(axis=1)[mask.any(axis=1)], 1.0, atol=1e-12)
    exact = traffic_proportional(offered, mask)
    np.testing.assert_array_equal(exact, enforce_budget(raw.copy()))
    over = raw.sum(axis=1) > 1.0  # an ulp over: only these rows are scaled down
    assert over.any() and np.all(exact.sum(axis=1) <= 1.0)
    np.testing.assert_array_equal(exact[~over], raw[~over])
    idle = mask.any(axis=1) & (np.where(mask, np.nan_to_num(offered), 0).sum(axis=1) == 0)
    assert idle.any()
    np.testing.assert_array_equal(raw[idle], equal_share(mask[idle]))
