"""Grid oracles: DP equals brute force, small cases by hand, grid values from the estimator."""

from __future__ import annotations

from math import comb

import numpy as np
import pytest

from slicing.models.qos_estimator import QosEstimator, tabulate
from slicing.optim.oracle import compositions, dp_oracle, grid_oracle_bruteforce, grid_values
from tests.optim.helpers import assert_feasible, mixed_mask


def test_compositions() -> None:
    k = compositions(4, 20)
    assert len(k) == comb(24, 4) and k.min() == 0 and k.sum(axis=1).max() == 20
    assert len({tuple(r) for r in k.tolist()}) == len(k)


@pytest.mark.parametrize("points", [21, 11])
def test_dp_equals_bruteforce(points: int) -> None:
    rng = np.random.default_rng(points)
    n = 300
    mask = mixed_mask(rng, n)
    mask[:10] = False  # cells without an active slice
    monotone = np.cumsum(rng.exponential(1.0, (n // 2, 4, points)), axis=2) / points
    bumpy = rng.normal(0.0, 1.0, (n - n // 2, 4, points))  # non-monotone: unused budget can be optimal
    values = np.concatenate([monotone, bumpy])
    s_bf, u_bf = grid_oracle_bruteforce(values, mask)
    s_dp, u_dp = dp_oracle(values, mask)
    np.testing.assert_array_equal(u_dp, u_bf)
    for shares, util in ((s_bf, u_bf), (s_dp, u_dp)):
        assert_feasible(shares, mask)
        k = np.rint(shares * (points - 1)).astype(int)
        assert np.all(k.sum(axis=1) <= points - 1)
        recomputed = np.where(mask, np.take_along_axis(values, k[:, :, None], axis=2)[:, :, 0], 0.0).sum(axis=1)
        np.testing.assert_allclose(recomputed, util, atol=1e-12)
    assert np.all(u_dp[:10] == 0) and np.all(s_dp[:10] == 0)
    assert np.any(s_dp[n // 2 :].sum(axis=1) < 0.99)  # the bumpy half leaves budget unused somewhere


def test_dp_small_cases_by_hand() -> None:
    values = np.array([[[0.0, 0.9, 1.0], [0.0, 0.5, 1.2], [5.0, 9.0, 9.0]],  # split beats either corner
                       [[0.0, 0.2, 1.0], [0.0, 0.5, 0.7], [5.0, 9.0, 9.0]],  # a corner beats the split
                       [[0.3, -1.0, -2.0], [0.1, 0.0, -1.0], [0.0, 0.0, 0.0]]])  # nothing allocated
    mask = np.array([[True, True, False]] * 3)  # the inactive third slice's values are ignored
    for oracle in (dp_oracle, grid_oracle_bruteforce):
        shares, util = oracle(values, mask)
        np.testing.assert_allclose(util, [1.4, 1.0, 0.4])
        np.testing.assert_allclose(shares, [[0.5, 0.5, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])


def test_grid_values(monotone_model: QosEstimator, cells: tuple[np.ndarray, np.ndarray]) -> None:
    z, mask = cells
    v = grid_values(monotone_model, z, mask, points=21)
    assert v.shape == (120, 4, 21)
    assert np.all(v[~mask] == 0)
    expected = np.log1p(tabulate(monotone_model, z, np.linspace(0, 1, 21)).astype(np.float64))
    np.testing.assert_allclose(v[mask], expected[mask])
