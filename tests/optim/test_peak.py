"""Peak-alloc: the cheapest grid point at constant peak traffic, on the analytic model."""

from __future__ import annotations

import numpy as np
import torch

from slicing.optim.degradation import strict_e_beta
from slicing.optim.peak import DEFAULT_GRID, grid_evaluate, grid_points, peak_alloc
from tests.optim.slice_fixtures import analytic_qos

ETA = np.array([1 / 50, 1 / 4500])


def test_grid_evaluate_matches_the_exact_e_beta() -> None:
    pts = grid_points((np.array([10.0, 30.0]), np.array([1000.0, 3000.0])))
    got = grid_evaluate(analytic_qos, np.array([2.0, 4.0]), np.array([5.0, 3.0]), pts, chunk_rows=3)  # chunked
    for i, (x, q) in enumerate([(2.0, 5.0), (4.0, 3.0)]):
        mu, sigma = analytic_qos(torch.full((4, 1), x), torch.as_tensor(pts, dtype=torch.float32))
        want = strict_e_beta(mu, sigma, torch.full((4, 1), x), q).numpy()
        np.testing.assert_allclose(got[i], want, atol=1e-6)


def test_peak_alloc_is_the_cheapest_feasible_grid_point() -> None:
    res = peak_alloc(analytic_qos, np.array([5.0, 2.0]), q_thresh=5.0, beta_thresh=0.01, eta=ETA)
    assert res.feasible.all() and (res.e_beta <= 0.01).all()
    pts = grid_points(DEFAULT_GRID)
    beta = grid_evaluate(analytic_qos, np.array([5.0, 2.0]), np.array([5.0, 5.0]), pts)
    for i in range(2):
        assert res.objective[i] == np.min((pts @ ETA)[beta[i] <= 0.01])
    assert res.objective[1] < res.objective[0]  # less peak traffic, less resource


def test_an_infeasible_instance_gets_the_largest_allocation() -> None:
    res = peak_alloc(analytic_qos, np.array([5.0]), q_thresh=50.0, beta_thresh=0.01, eta=ETA)
    assert not res.feasible[0]
    np.testing.assert_allclose(res.r[0], [50.0, 4500.0])
