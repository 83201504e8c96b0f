"""The utility function: numpy form on values, estimator form on shares, and their agreement with the callers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from slicing.models.qos_estimator import QosEstimator, tabulate
from slicing.optim.oracle import grid_values
from slicing.optim.utility import estimated_utility, estimated_utility_tensor
from slicing.sim.utility import log1p_terms, utility


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


def test_estimated_utility_is_the_sum_of_log1p_f_over_active_slices(monotone_model: QosEstimator,
                                                                   cells: tuple[np.ndarray, np.ndarray]) -> None:
    z, mask = cells
    rng = np.random.default_rng(5)
    shares = np.where(mask, rng.dirichlet(np.ones(4), len(z)), 0.0)  # [N, S]
    u = estimated_utility(monotone_model, z, mask, shares)
    assert u.dtype == np.float64 and u.shape == (len(z),)
    feats = np.concatenate([shares[..., None], z], axis=2).astype(np.float32)  # [N, S, 13]
    with torch.no_grad():
        f = monotone_model(torch.from_numpy(feats.reshape(-1, 13))).numpy().reshape(mask.shape)
    np.testing.assert_allclose(u, utility(f, mask), rtol=1e-6)
    # the numpy wrapper is the tensor form, bit for bit
    ut = estimated_utility_tensor(monotone_model, torch.from_numpy(z), torch.from_numpy(mask),
                                  torch.from_numpy(shares).float())
    np.testing.assert_array_equal(u, ut.numpy())
    assert np.all(u[~mask.any(axis=1)] == 0)
    with pytest.raises(ValueError, match="do not match"):
        estimated_utility(monotone_model, z, mask[:-1], shares[:-1])


def test_grid_values_are_the_terms_at_the_grid(monotone_model: QosEstimator,
                                               cells: tuple[np.ndarray, np.ndarray]) -> None:
    z, mask = cells
    f = tabulate(monotone_model, z, np.linspace(0, 1, 11)).astype(np.float64)
    np.testing.assert_array_equal(grid_values(monotone_model, z, mask, points=11), log1p_terms(f, mask))
