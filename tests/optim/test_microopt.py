"""MicroOpt on the analytic slice model: feasibility, near the brute-force optimum, monotone in the thresholds and
the traffic, the shared capacity, the ablation modes, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from slicing.optim.degradation import strict_e_beta
from slicing.optim.microopt import MicroOptSettings, microopt, traffic_points
from slicing.optim.peak import FINE_GRID, grid_points
from tests.optim.slice_fixtures import analytic_qos

ETA = np.array([1 / 50, 1 / 4500])
R_MAX = np.array([50.0, 4500.0])


def exact(traffic: np.ndarray, r: np.ndarray, q: np.ndarray | float) -> np.ndarray:
    x = torch.as_tensor(traffic, dtype=torch.float64)
    mu, sigma = analytic_qos(x, torch.as_tensor(r, dtype=torch.float64))
    qq = torch.as_tensor(np.broadcast_to(q, (len(r),)).copy(), dtype=torch.float64)
    return strict_e_beta(mu, sigma, x, qq).numpy()


def brute_force(traffic_row: np.ndarray, q: float, b: float) -> float:
    """The cheapest eta^T r on a fine grid meeting E[beta] <= b exactly."""
    pts = grid_points((FINE_GRID[0][::2], FINE_GRID[1][::2]))
    beta = exact(np.repeat(traffic_row[None, :], len(pts), 0), pts, q)
    return float((pts @ ETA)[beta <= b].min())


def test_feasible_and_within_two_percent_of_brute_force() -> None:
    traffic = traffic_points(np.array([5.0, 3.0, 4.0]), np.array([0.0001, 0.5, 1.5]), 1.0, 5.0, 24)
    q, b = np.array([5.0, 3.0, 4.0]), np.array([0.1, 0.3, 0.2])
    res = microopt(analytic_qos, traffic, q, b, ETA, R_MAX)
    assert res.feasible.all()
    assert (exact(traffic, res.r, q) <= b + 1e-4).all()
    np.testing.assert_allclose(res.e_beta, exact(traffic, res.r, q), atol=1e-4)
    for i in range(3):
        best = brute_force(traffic[i], q[i], b[i])
        assert res.objective[i] <= best * 1.02, (i, res.objective[i], best)
    # the dual estimate is not a certified bound on a non-convex model (module doc), but it is close to UB
    assert np.isfinite(res.lower_bound) and abs(res.gap) < 0.05


def test_monotone_in_thresholds_and_traffic() -> None:
    levels = np.array([1.0, 3.0, 5.0, 3.0, 3.0, 3.0, 3.0])
    q = np.array([5.0, 5.0, 5.0, 3.0, 4.0, 5.0, 5.0])
    b = np.array([0.1, 0.1, 0.1, 0.1, 0.1, 0.2, 0.3])
    res = microopt(analytic_qos, np.repeat(levels[:, None], 8, 1), q, b, ETA, R_MAX)
    o = res.objective
    assert o[0] < o[1] < o[2]  # more users need more resource
    assert o[3] < o[4] < o[1]  # a higher q_thresh needs more
    assert o[1] > o[5] > o[6]  # a looser beta_thresh needs less


def test_shared_capacity_is_respected_and_costs_feasibility_when_too_small() -> None:
    traffic = np.full((4, 8), 3.0)
    free = microopt(analytic_qos, traffic, 5.0, 0.1, ETA, R_MAX)
    need = free.r.sum(axis=0)
    ample = microopt(analytic_qos, traffic, 5.0, 0.1, ETA, R_MAX, capacity=need * 1.2)
    assert (ample.r.sum(axis=0) <= need * 1.2 + 1e-3).all() and ample.feasible.all()
    tight = microopt(analytic_qos, traffic, 5.0, 0.1, ETA, R_MAX, capacity=need * 0.5)
    assert (tight.r.sum(axis=0) <= need * 0.5 * 1.001).all()
    assert not tight.feasible.all()  # half the resource cannot meet every slice's constraint
    # grouped budgets: two groups, each with its own capacity
    grouped = microopt(analytic_qos, traffic, 5.0, 0.1, ETA, R_MAX, capacity=np.stack([need, need / 4]),
                       group=np.array([0, 0, 1, 1]))
    assert (grouped.r[2:].sum(axis=0) <= need / 4 * 1.001).all()


def test_ablations_violate_and_over_allocate_on_the_full_distribution() -> None:
    traffic = traffic_points(np.array([3.0, 4.0]), np.array([1.5, 1.5]), 1.0, 5.0, 32)
    out = {m: microopt(analytic_qos, traffic, 5.0, 0.1, ETA, R_MAX, settings=MicroOptSettings(mode=m))
           for m in ("distribution", "mean", "mean_minus_2sigma")}
    beta = {m: exact(traffic, v.r, 5.0) for m, v in out.items()}
    assert (beta["distribution"] <= 0.1 + 1e-4).all()
    assert (beta["mean"] > 0.1).all()  # q = mu ignores the spread: too little resource
    assert (out["mean_minus_2sigma"].objective > out["distribution"].objective).all()


def test_seeded() -> None:
    traffic = np.full((2, 6), 2.0)
    a = microopt(analytic_qos, traffic, 4.0, 0.2, ETA, R_MAX, settings=MicroOptSettings(seed=5))
    b = microopt(analytic_qos, traffic, 4.0, 0.2, ETA, R_MAX, settings=MicroOptSettings(seed=5))
    np.testing.assert_array_equal(a.r, b.r)


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"beta_thresh": 1.0}, "beta_thresh"), ({"beta_thresh": 0.0}, "beta_thresh"), ({"q_thresh": -1.0}, "q_thresh"),
    ({"traffic": np.array([[1.0, -2.0]])}, "traffic"), ({"traffic": np.zeros((1, 3))}, "traffic"),
    ({"traffic": np.array([1.0, 2.0])}, "traffic"), ({"q_thresh": np.array([1.0, 2.0, 3.0])}, "q_thresh"),
    ({"r_max": np.array([50.0])}, "r_max")])
def test_bad_input_names_the_field(kwargs: dict, field: str) -> None:
    args = {"traffic": np.full((2, 4), 2.0), "q_thresh": 5.0, "beta_thresh": 0.1, "eta": ETA, "r_max": R_MAX}
    with pytest.raises(ValueError, match=field):
        microopt(analytic_qos, **(args | kwargs))


def test_traffic_points_are_quantiles_of_the_truncated_normal() -> None:
    pts = traffic_points(np.array([3.0]), np.array([1.0]), 1.0, 5.0, 200)[0]
    assert pts.min() >= 1.0 and pts.max() <= 5.0 and np.all(np.diff(pts) >= 0)
    assert pts.mean() == pytest.approx(3.0, abs=0.02)  # symmetric truncation keeps the centre
    with pytest.raises(ValueError, match="std"):
        traffic_points(np.array([3.0]), np.array([-1.0]), 1.0, 5.0, 4)
