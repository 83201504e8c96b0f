"""The base station of paper 004 (slicing/sim/basestation.py): action tables, traffic laws, the SLA test, seeding,
the direction of each slice's SSR in its bandwidth, and eq. 6's reward shaping."""

from __future__ import annotations

import math

import numpy as np
import pytest

from slicing.sim.basestation import (
    BANDWIDTH_HZ,
    BaseStation,
    _truncated_exponential,
    action_table,
    shaped_reward,
    threshold,
)


def test_action_tables_have_the_papers_sizes_and_split_the_whole_band():
    for res, size in ((1e6, 171), (200e3, 4851)):
        t = action_table(res)
        assert t.shape == (size, 3)
        assert np.allclose(t.sum(axis=1), BANDWIDTH_HZ)
        assert (t >= res).all()
        assert len({tuple(r) for r in t}) == size


def test_action_table_rejects_a_resolution_that_does_not_divide_the_band():
    with pytest.raises(ValueError, match="resolution_hz"):
        action_table(3e6)


def test_truncated_exponential_stays_under_its_cap_with_the_truncated_mean():
    x = _truncated_exponential(np.random.default_rng(0), 6.0, 12.5, 200_000)
    assert x.max() <= 12.5 and x.min() >= 0
    expected = 6.0 - 12.5 * math.exp(-12.5 / 6.0) / (1 - math.exp(-12.5 / 6.0))
    assert x.mean() == pytest.approx(expected, rel=0.01)


def test_same_seed_same_steps_and_a_new_seed_differs():
    a, b, c = BaseStation(3), BaseStation(3), BaseStation(4)
    split = np.array([2e6, 12e6, 6e6])
    ra = [a.step(split) for _ in range(2)]
    rb = [b.step(split) for _ in range(2)]
    rc = [c.step(split) for _ in range(2)]
    assert all(np.array_equal(x.arrived, y.arrived) and x.utility == y.utility for x, y in zip(ra, rb, strict=True))
    assert any(not np.array_equal(x.arrived, y.arrived) for x, y in zip(ra, rc, strict=True))


def test_counts_are_consistent_and_the_utility_is_eq5():
    bs = BaseStation(0, alpha=0.01)
    for _ in range(3):
        r = bs.step(np.array([1e6, 14e6, 5e6]))
        assert (r.successful <= r.arrived).all()
        assert np.allclose(r.ssr, np.where(r.arrived > 0, r.successful / np.maximum(r.arrived, 1), 1.0))
        assert r.utility == pytest.approx(0.01 * r.se + r.ssr.sum())
        assert r.se == pytest.approx(r.delivered_bits.sum() / (BANDWIDTH_HZ * 0.2))


def _mean_ssr(split, steps=3, seed=1):
    bs = BaseStation(seed)
    return np.mean([bs.step(np.asarray(split)).ssr for _ in range(steps)], axis=0)


def test_more_bandwidth_serves_a_slice_better():
    """Video's SSR rises with its bandwidth; URLLC fails its 1 ms budget with 1 MHz and meets it with 5 MHz."""
    low, high = _mean_ssr([4e6, 8e6, 8e6]), _mean_ssr([1e6, 14e6, 5e6])
    assert high[1] > low[1] + 0.2
    starved, fed = _mean_ssr([9e6, 10e6, 1e6]), _mean_ssr([4e6, 11e6, 5e6])
    assert fed[2] > starved[2] + 0.3


def test_bad_split_is_refused_naming_the_field():
    with pytest.raises(ValueError, match="bandwidth_hz"):
        BaseStation(0).step(np.array([10e6, 10e6, 10e6]))
    with pytest.raises(ValueError, match="bandwidth_hz"):
        BaseStation(0).step(np.array([-1.0, 10e6, 10e6]))


def test_reward_shaping_is_eq6_with_a_rising_threshold():
    g = threshold(np.array([0, 500, 1000, 5000]), 2.0, 2.75, 1000)
    assert np.allclose(g, [2.0, 2.375, 2.75, 2.75])
    assert shaped_reward(1.9, 2.0, 2.75) == 0.0
    assert shaped_reward(2.0, 2.0, 2.75) == 1.0
    assert shaped_reward(2.7, 2.0, 2.75) == 1.0
    assert shaped_reward(2.95, 2.0, 2.75) == pytest.approx(1.1)
