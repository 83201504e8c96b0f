"""The H0 behaviour policy: feasible, seeded, per-cell RNG, traffic baseline at epsilon 0."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from slicing.optim.explore import explore_policy

S = 4


def fake_sim(cell_ids: np.ndarray, mask: np.ndarray, period: int) -> SimpleNamespace:
    return SimpleNamespace(cell_ids=cell_ids, n_slices=mask.shape[1], period=period, slice_mask=lambda: mask)


def test_explore_policy_feasible_and_deterministic() -> None:
    gen = np.random.default_rng(4)
    n = 400
    cell_ids = np.arange(1000, 1000 + n, dtype=np.int64)
    mask = gen.random((n, S)) < 0.6
    mask[:5] = False  # cells with no active slice
    offered = gen.random((n, S)) * 20 * (gen.random((n, S)) < 0.8)
    demand = SimpleNamespace(users=offered / 2, offered_mbps=offered)
    for eps in (0.0, 0.5, 1.0):
        x = explore_policy(fake_sim(cell_ids, mask, 3), demand, eps, seed=11)
        assert x.shape == (n, S) and x.dtype == np.float64
        assert np.all(x >= 0) and np.all(x.sum(axis=1) <= 1 + 1e-12) and np.all(x[~mask] == 0)
        np.testing.assert_array_equal(x, explore_policy(fake_sim(cell_ids, mask, 3), demand, eps, seed=11))
    # epsilon = 0: traffic-proportional over active slices (equal split when none offers traffic)
    x0 = explore_policy(fake_sim(cell_ids, mask, 3), demand, 0.0, seed=11)
    has = mask.any(axis=1)
    np.testing.assert_allclose(x0[has].sum(axis=1), 1.0)
    off = np.where(mask, offered, 0.0)
    pos = off.sum(axis=1) > 0
    np.testing.assert_allclose(x0[pos], off[pos] / off[pos].sum(axis=1, keepdims=True))
    # epsilon = 1: random totals in [0.6, 1]
    x1 = explore_policy(fake_sim(cell_ids, mask, 3), demand, 1.0, seed=11)
    tot = x1[has].sum(axis=1)
    assert np.all(tot >= 0.6 - 1e-12) and np.all(tot <= 1.0 + 1e-12) and tot.std() > 0.05
    # about half the cells explore at epsilon = 0.5, and a different seed or period changes the draw
    xh = explore_policy(fake_sim(cell_ids, mask, 3), demand, 0.5, seed=11)
    frac = np.mean(~np.isclose(xh[pos], x0[pos]).all(axis=1))
    assert 0.35 < frac < 0.65
    assert not np.array_equal(xh, explore_policy(fake_sim(cell_ids, mask, 3), demand, 0.5, seed=12))
    assert not np.array_equal(xh, explore_policy(fake_sim(cell_ids, mask, 4), demand, 0.5, seed=11))
    # per-cell counter RNG: a subset of cells gets exactly the same rows
    sub = np.arange(7, n, 3)
    xs = explore_policy(fake_sim(cell_ids[sub], mask[sub], 3),
                        SimpleNamespace(users=demand.users[sub], offered_mbps=offered[sub]), 0.5, seed=11)
    np.testing.assert_array_equal(xs, xh[sub])
