"""The utility sum_{s active} log(1 + r_s) (slicing/sim/utility.py) against a per-cell loop, and the simulator's
report using it, by hand-computed values, and the grid broadcast of its terms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from slicing.sim.simulator import Simulator
from slicing.sim.utility import log1p_terms, utility


def test_utility_matches_a_loop_over_cells_and_active_slices():
    gen = np.random.default_rng(0)
    r = gen.random((50, 4))
    mask = gen.random((50, 4)) < 0.6
    r[~mask] = gen.choice([np.nan, -1.0, 7.0], size=(~mask).sum())  # inactive values never count
    u = utility(r, mask)
    assert u.dtype == np.float64 and u.shape == (50,)
    ref = [sum(math.log1p(r[i, s]) for s in range(4) if mask[i, s]) for i in range(50)]
    np.testing.assert_allclose(u, ref, rtol=1e-12)
    assert np.all(u[~mask.any(axis=1)] == 0.0)


def test_utility_grows_with_each_active_slice_and_ignores_inactive_ones():
    mask = np.array([[True, True, False]])
    base = np.array([[0.2, 0.5, 0.3]])
    for s in range(3):
        more = base.copy()
        more[0, s] += 0.4
        if mask[0, s]:
            assert utility(more, mask)[0] > utility(base, mask)[0]
        else:
            assert utility(more, mask)[0] == utility(base, mask)[0]
    assert utility(np.ones((1, 3)), np.ones((1, 3), bool))[0] == 3 * math.log(2.0)  # the maximum, all r = 1


def test_log1p_terms_sum_to_utility_and_the_report_uses_it(small_scenario):
    gen = np.random.default_rng(1)
    f, mask = gen.random((6, 4)), gen.random((6, 4)) < 0.7
    np.testing.assert_array_equal(log1p_terms(f, mask).sum(axis=1), utility(f, mask))
    sim = Simulator(small_scenario)
    rep = sim.step(np.where(sim.slice_mask(), 0.25, 0.0))
    np.testing.assert_array_equal(rep.utility, utility(rep.r, rep.mask))
    assert np.all(rep.utility <= rep.mask.sum(axis=1) * math.log(2.0) + 1e-12)


def test_utility() -> None:
    r = np.array([[0.5, 1.0, 0.2], [0.0, 0.3, 0.9]])
    mask = np.array([[True, False, True], [True, True, True]])
    np.testing.assert_allclose(utility(r, mask), [np.log(1.5) + np.log(1.2), np.log(1.3) + np.log(1.9)])


def test_log1p_terms_ignore_inactive_values_and_broadcast_over_a_grid() -> None:
    f = np.array([[[0.0, 0.5], [np.nan, -np.inf]], [[1.0, 1.0], [0.25, 0.0]]])  # [N=2, S=2, G=2]
    mask = np.array([[True, False], [True, True]])
    out = log1p_terms(f, mask)
    assert out.dtype == np.float64 and out.shape == (2, 2, 2)
    np.testing.assert_array_equal(out[0, 1], [0.0, 0.0])  # inactive: 0 even for NaN / -inf values
    np.testing.assert_array_equal(out[1], np.log1p(f[1]))
    with pytest.raises(ValueError, match="mask shape"):
        log1p_terms(f, mask[:1])
