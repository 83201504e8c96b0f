"""The feasible set: Euclidean projection, exact float64 budget, simplex face."""

from __future__ import annotations

import numpy as np

from slicing.optim.feasible import enforce_budget, fill_slack, project, project_simplex
from tests.optim.helpers import assert_feasible


def _reference_projection(v: np.ndarray) -> np.ndarray:
    """Projection of one vector onto {x >= 0, sum <= 1} by bisection on the threshold (independent method)."""
    if np.maximum(v, 0).sum() <= 1:
        return np.maximum(v, 0)
    lo, hi = v.min() - 1.0, v.max()
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if np.maximum(v - mid, 0).sum() > 1 else (lo, mid)
    return np.maximum(v - hi, 0)


def test_project_is_the_euclidean_projection() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(0.3, 0.8, size=(400, 5))
    mask = rng.random((400, 5)) < 0.7
    out = project(x, mask)
    assert_feasible(out, mask)
    for row in range(400):
        m = mask[row]
        ref = _reference_projection(x[row, m]) if m.any() else np.zeros(0)
        np.testing.assert_allclose(out[row, m], ref, atol=1e-9)


def test_project_leaves_feasible_points_unchanged() -> None:
    rng = np.random.default_rng(1)
    mask = rng.random((300, 4)) < 0.8
    x = rng.dirichlet(np.ones(4), size=300) * rng.uniform(0, 1, size=(300, 1)) * mask
    x[:5] = np.where(mask[:5], 0.0, 0.0)
    x[5] = [0.5, 0.5, 0.0, 0.0]
    mask[5] = [True, True, False, False]
    x[6], mask[6] = [0.25, 0.25, 0.25, 0.25], True
    assert np.all(x.sum(axis=1) <= 1.0)
    np.testing.assert_array_equal(project(x, mask), x)


def test_budget_is_exact_in_float64() -> None:
    x = np.array([[0.1] * 10 + [1e-16], [0.7, 0.2, 0.1, 0, 0, 0, 0, 0, 0, 0, 0], [1 / 3] * 3 + [0.0] * 8])
    x = x + np.array([[0.0] * 10 + [3e-16], [2e-16] * 3 + [0.0] * 8, [1e-16] * 3 + [0.0] * 8])
    out = enforce_budget(x.copy())
    assert np.all(out.sum(axis=1) <= 1.0)
    rng = np.random.default_rng(2)
    v = rng.uniform(0, 3, size=(2000, 7))
    mask = np.ones_like(v, dtype=bool)
    for proj in (project, project_simplex):
        out = proj(v, mask)
        assert np.all(out.sum(axis=1) <= 1.0) and np.all(out >= 0)
        assert np.all([sum(row) <= 1.0 for row in out.tolist()])  # also in Python's left-to-right order
    np.testing.assert_allclose(project_simplex(v, mask).sum(axis=1), 1.0, atol=1e-12)


def test_project_simplex_fills_the_budget() -> None:
    x = np.array([[0.1, 0.1, 0.0], [0.0, 0.0, 0.0], [2.0, -1.0, 0.0]])
    mask = np.array([[True, True, False], [False, False, False], [True, True, True]])
    out = project_simplex(x, mask)
    np.testing.assert_allclose(out, [[0.5, 0.5, 0.0], [0, 0, 0], [1.0, 0.0, 0.0]], atol=1e-15)


def test_fill_slack_hands_the_unused_budget_out_in_proportion() -> None:
    x = np.array([[0.1, 0.3, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.7], [0.2, 0.2, 0.6], [0.5, 0.2, 0.9]])
    mask = np.array([[True, True, True], [True, False, True], [False, False, False], [True, True, True],
                     [True, True, False]])
    out = fill_slack(x, mask)
    np.testing.assert_allclose(out[0], [0.25, 0.75, 0.0], atol=1e-15)  # slack 0.6 split 1:3, the idle slice gets 0
    np.testing.assert_allclose(out[1], [0.5, 0.0, 0.5], atol=1e-15)  # no share yet: the equal share
    assert np.all(out[2] == 0)  # no active slice: nothing, even where x was set
    np.testing.assert_allclose(out[3], [0.2, 0.2, 0.6], atol=1e-15)  # full rows are kept
    np.testing.assert_allclose(out[4], [5 / 7, 2 / 7, 0.0], atol=1e-15)  # inactive entries are dropped first
    assert np.all(out.sum(axis=1) <= 1.0)
